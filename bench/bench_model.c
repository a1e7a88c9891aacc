/* bench_model.c -- give a generated database a model of the trained shape.
 *
 * `attnctl gen` leaves the identity model (one head, no projections) active;
 * serving that would benchmark a cheaper computation than a trained model's.
 * Training a real one takes minutes and its speed does not depend on the
 * values, so the end-to-end and start-up benchmarks use this instead: a
 * random model with dense W_Q, W_K, W_V, W_O of the requested heads and
 * width, a position bias and an item bias for every embedded item (bench.h
 * says how the values are drawn), saved with store_model_save and activated.
 *
 *     bench_model DB --heads 4 [--m M] [--l-max 200] [--seed 1]
 *
 * Prints {"version":V,...} on success.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "store/store.h"
#include "store/store_int.h"   /* store_sqlite: one raw query */

/* item_id of every embedded item, ascending: the rows the daemon's catalog
 * will hold, so every one of them has an item bias. */
static int64_t *s_item_ids(store *db, int64_t *n_out)
{
    sqlite3 *sq = store_sqlite(db);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sq, "SELECT item_id FROM items WHERE embedding IS NOT NULL "
                               "ORDER BY item_id", -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_model: %s\n", sqlite3_errmsg(sq));
        exit(1);
    }
    size_t cap = 1 << 16, n = 0;
    int64_t *ids = malloc(cap * sizeof *ids);
    while (ids && sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            int64_t *g = realloc(ids, 2 * cap * sizeof *ids);
            if (!g) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = g;
            cap *= 2;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (!ids) {
        fprintf(stderr, "bench_model: out of memory\n");
        exit(1);
    }
    *n_out = (int64_t)n;
    return ids;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int heads = 0, m = 0, l_max = 200;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-' && !path)
            path = a;
        else if (!strcmp(a, "--heads") && v)
            heads = atoi(argv[++i]);
        else if (!strcmp(a, "--m") && v)
            m = atoi(argv[++i]);
        else if (!strcmp(a, "--l-max") && v)
            l_max = atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && v)
            seed = strtoull(argv[++i], NULL, 10);
        else
            path = NULL, heads = -1;
    }
    if (!path || heads < 1) {
        fprintf(stderr, "usage: bench_model DB --heads H [--m M] [--l-max L] [--seed S]\n");
        return 2;
    }
    store *db;
    store_err err;
    if (store_open(&db, path, STORE_READWRITE, 5000, &err) != STORE_OK) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    int d = store_dim(db);
    if (m <= 0)
        m = d;
    int64_t n;
    int64_t *ids = s_item_ids(db, &n);
    bench_rng r = {.s = seed};
    attn_model *md = bench_model(d, m, heads, l_max, n, ids, &r);
    char config[160];
    snprintf(config, sizeof config, "{\"source\":\"bench_model\",\"seed\":%llu}",
             (unsigned long long)seed);
    int64_t version;
    uint64_t t0 = util_now_ns();
    int rc = store_model_save(db, md, config, NULL, 1, &version, &err);
    double ms = (double)(util_now_ns() - t0) / 1e6;
    attn_model_free(&md);
    free(ids);
    store_close(&db);
    if (rc != STORE_OK) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    printf("{\"version\":%lld,\"d\":%d,\"m\":%d,\"heads\":%d,\"l_max\":%d,\"items\":%lld,"
           "\"save_ms\":%.0f}\n",
           (long long)version, d, m, heads, l_max, (long long)n, ms);
    return 0;
}
