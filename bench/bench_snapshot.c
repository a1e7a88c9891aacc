/* bench_snapshot.c -- what attnd's snapshot build costs, step by step.
 *
 * The same steps as daemon/snapshot.c, in the same order, each timed:
 * open the database, load the catalog (one aligned matrix + hashes), load
 * the active model, map catalog rows to the model's items, count
 * popularity, build the tables (every core, as attnd does), and -- for
 * tables that keep their own copy of every row (bfloat16) -- give the
 * catalog's float matrix back.  Then RSS and peak RSS, so the memory a
 * daemon would hold is measured, not added up.
 *
 *     bench_snapshot DB [--precision f32|bf16] [--precompute all|none] [--threads N]
 *
 * Prints one JSON object.  Used by bench/run's start-up section beside
 * attnd's own exec -> ready, so the steps can be told apart: which one is
 * above a second, and whether it is the larger part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/attn.h"
#include "attn/score.h"
#include "bench/bench.h"
#include "store/store.h"

typedef struct s_args {
    const char *db;
    attn_tables_opts o;
} s_args;

static int s_parse(int argc, char **argv, s_args *a)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    *a = (s_args){.o = {ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32, cores > 0 ? (int)cores : 1}};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (k[0] != '-' && !a->db) {
            a->db = k;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (!strcmp(k, "--precision") && (!strcmp(v, "f32") || !strcmp(v, "bf16")))
            a->o.precision = !strcmp(v, "f32") ? ATTN_PRECISION_F32 : ATTN_PRECISION_BF16;
        else if (!strcmp(k, "--precompute") && (!strcmp(v, "all") || !strcmp(v, "none")))
            a->o.mode = !strcmp(v, "all") ? ATTN_PRECOMPUTE_ALL : ATTN_PRECOMPUTE_NONE;
        else if (!strcmp(k, "--threads") && atoi(v) >= 1)
            a->o.threads = atoi(v);
        else
            return -1;
    }
    return a->db ? 0 : -1;
}

static double s_ms(uint64_t *t)
{
    uint64_t now = util_now_ns();
    double ms = (double)(now - *t) / 1e6;
    *t = now;
    return ms;
}

int main(int argc, char **argv)
{
    s_args a;
    if (s_parse(argc, argv, &a) != 0) {
        fprintf(stderr, "usage: bench_snapshot DB [--precision f32|bf16] "
                        "[--precompute all|none] [--threads N]\n");
        return 2;
    }
    uint64_t t0 = util_now_ns(), t = t0;
    double ms[7];
    store *db = NULL;
    store_catalog *cat = NULL;
    attn_model *md = NULL;
    store_err err = {0};
    if (store_open(&db, a.db, STORE_READONLY, 5000, &err) != STORE_OK ||
        (ms[0] = s_ms(&t), store_catalog_load(db, &cat, &err)) != STORE_OK ||
        (ms[1] = s_ms(&t), store_model_load(db, STORE_MODEL_ACTIVE, &md, &err)) != STORE_OK) {
        fprintf(stderr, "bench_snapshot: %s\n", err.msg);
        return 1;
    }
    ms[2] = s_ms(&t);
    int64_t *pidx = bench_alloc((size_t)cat->n * sizeof *pidx);
    float *pop = bench_alloc((size_t)cat->n * sizeof *pop);
    for (size_t r = 0; r < cat->n; r++)
        pidx[r] = attn_model_item_index(md, cat->item_id[r]);
    ms[3] = s_ms(&t);
    if (store_catalog_popularity(db, cat, pop, &err) != STORE_OK) {
        fprintf(stderr, "bench_snapshot: %s\n", err.msg);
        return 1;
    }
    ms[4] = s_ms(&t);
    attn_tables *tab;
    int st = attn_tables_build_opts(&tab, md, cat->emb, cat->n, (size_t)cat->dim, pidx, &a.o);
    if (st != ATTN_OK) {
        fprintf(stderr, "bench_snapshot: building tables: %s\n", attn_strerror(st));
        return 1;
    }
    ms[5] = s_ms(&t);
    int dropped = !attn_tables_borrows_emb(tab);
    if (dropped)
        store_catalog_drop_emb(cat);
    ms[6] = s_ms(&t);
    printf("{\"precision\":\"%s\",\"precompute\":\"%s\",\"threads\":%d,\"items\":%u,\"dim\":%d,"
           "\"open_ms\":%.1f,\"catalog_ms\":%.1f,\"model_ms\":%.1f,\"param_index_ms\":%.1f,"
           "\"popularity_ms\":%.1f,\"tables_ms\":%.1f,\"drop_ms\":%.1f,\"total_ms\":%.1f,"
           "\"catalog_dropped\":%s,\"catalog_bytes\":%zu,\"table_bytes\":%zu,"
           "\"rss\":%zu,\"peak_rss\":%zu}\n",
           a.o.precision == ATTN_PRECISION_F32 ? "f32" : "bf16",
           a.o.mode == ATTN_PRECOMPUTE_ALL ? "all" : "none", a.o.threads, cat->n, cat->dim,
           ms[0], ms[1], ms[2], ms[3], ms[4], ms[5], ms[6], (double)(t - t0) / 1e6,
           dropped ? "true" : "false", store_catalog_bytes(cat), attn_tables_bytes(tab),
           bench_proc_kb_field("VmRSS"), bench_proc_kb_field("VmHWM"));
    attn_tables_free(&tab);
    attn_model_free(&md);
    store_catalog_free(&cat);
    store_close(&db);
    free(pidx);
    free(pop);
    return 0;
}
