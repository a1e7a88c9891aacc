/* bench_scale.c -- how scoring time and memory grow with N, L, d and the
 * catalog size.
 *
 * Around a base shape (P2: d = m = 128, H = 4, L = 100, N = 200, a 100,000
 * item catalog) one parameter moves at a time:
 *
 *   N      candidates      25 .. 2000
 *   L      history          10 .. 200
 *   d      dimension (= m)  32 .. 512, H = 4
 *   items  catalog       10,000 .. 1,000,000, in both precompute modes, and
 *                        with bf16 tables
 *
 * Each point reports single-thread requests/s and p50/p99 of attn_score
 * (requests drawn at random from a pool, as in bench_score) and the memory
 * it takes: the catalog's embeddings, the tables attn_tables_bytes reports,
 * the per-worker scratch, and the time to build the tables on 2 threads.
 * The catalog sweep reuses one 1M-row catalog (its first n rows), so only
 * the tables are rebuilt per point.  JSON lines on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/score.h"
#include "bench/bench.h"

#define S_K 10

typedef struct s_point {
    const char *sweep;
    int d, H, L, N;
    size_t items;
    attn_precompute mode;
    attn_precision prec;
} s_point;

static double s_seconds = 0.3;
static int s_pool = 256;

static void s_die(const char *what, int st)
{
    fprintf(stderr, "bench_scale: %s: %s\n", what, attn_strerror(st));
    exit(1);
}

/* Time one point on existing tables: a pool of random requests, warm-up,
 * then random draws for s_seconds (at least 100 requests). */
static void s_run(const s_point *pt, const attn_tables *t, size_t items, double build_ms,
                  size_t catalog_bytes, bench_rng *r)
{
    attn_limits lim = {.max_cand = pt->N, .max_hist = pt->L, .max_k = S_K, .max_explain = 0};
    attn_scratch *s = attn_scratch_new(t, &lim);
    if (!s)
        s_die("attn_scratch_new", ATTN_ENOMEM);
    uint32_t *perm = bench_alloc(items * sizeof *perm);
    for (size_t i = 0; i < items; i++)
        perm[i] = (uint32_t)i;
    uint32_t *hist = bench_alloc((size_t)s_pool * pt->L * sizeof *hist);
    uint32_t *cand = bench_alloc((size_t)s_pool * pt->N * sizeof *cand);
    for (int p = 0; p < s_pool; p++) {
        bench_distinct(perm, (uint32_t)items, pt->L, r, hist + (size_t)p * pt->L);
        bench_distinct(perm, (uint32_t)items, pt->N, r, cand + (size_t)p * pt->N);
    }
    free(perm);
    attn_result res;
    size_t cap = 1 << 16, n = 0;
    double *us = bench_alloc(cap * sizeof *us);
    uint64_t w0 = util_now_ns();
    for (int p = 0; p < s_pool && util_now_ns() - w0 < (uint64_t)(s_seconds * 0.25e9); p++) {
        attn_request rq = {.hist = hist + (size_t)p * pt->L, .n_hist = pt->L,
                           .cand = cand + (size_t)p * pt->N, .n_cand = pt->N, .k = S_K};
        int st = attn_score(t, &rq, s, &res);
        if (st != ATTN_OK)
            s_die("attn_score", st);
    }
    uint64_t start = util_now_ns();
    while ((util_now_ns() - start < (uint64_t)(s_seconds * 1e9) || n < 100) && n < cap) {
        int p = (int)bench_below(r, (uint32_t)s_pool);
        attn_request rq = {.hist = hist + (size_t)p * pt->L, .n_hist = pt->L,
                           .cand = cand + (size_t)p * pt->N, .n_cand = pt->N, .k = S_K};
        uint64_t t0 = util_now_ns();
        int st = attn_score(t, &rq, s, &res);
        uint64_t t1 = util_now_ns();
        if (st != ATTN_OK)
            s_die("attn_score", st);
        us[n++] = (double)(t1 - t0) / 1e3;
    }
    bench_stats bs = bench_summarise(us, n, (double)(util_now_ns() - start) / 1e9);
    printf("{\"kind\":\"scale\",\"sweep\":\"%s\",\"mode\":\"%s\",\"d\":%d,\"m\":%d,\"H\":%d,"
           "\"L\":%d,\"N\":%d,\"items\":%zu,\"n\":%zu,\"rps\":%.1f,\"p50_us\":%.2f,"
           "\"p99_us\":%.2f,\"flops\":%.0f,\"catalog_bytes\":%zu,\"table_bytes\":%zu,"
           "\"scratch_bytes\":%zu,\"build_ms\":%.1f}\n",
           pt->sweep,
           pt->prec == ATTN_PRECISION_BF16 ? "bf16" : pt->mode == ATTN_PRECOMPUTE_ALL ? "all" : "none",
           pt->d, pt->d, pt->H,
           pt->L, pt->N, items, bs.n, bs.rps, bs.p50_us, bs.p99_us,
           4.0 * pt->N * pt->L * pt->d, catalog_bytes, attn_tables_bytes(t),
           attn_scratch_bytes(s), build_ms);
    fflush(stdout);
    free(us);
    free(hist);
    free(cand);
    attn_scratch_free(&s);
}

/* Tables over the first `items` rows of emb for model md. */
static attn_tables *s_build(const attn_model *md, const float *emb, size_t items,
                            const int64_t *pidx, attn_precompute mode, attn_precision prec,
                            double *ms)
{
    attn_tables *t;
    uint64_t t0 = util_now_ns();
    attn_tables_opts o = {mode, prec, 2};
    int st = attn_tables_build_opts(&t, md, emb, items, (size_t)md->d, pidx, &o);
    if (st != ATTN_OK)
        s_die("attn_tables_build", st);
    *ms = (double)(util_now_ns() - t0) / 1e6;
    return t;
}

int main(int argc, char **argv)
{
    size_t max_items = 1000000;
    const char *only = "N,L,d,items";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            s_seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--max-items") && i + 1 < argc)
            max_items = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--sweeps") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_scale [--seconds S] [--max-items N] "
                            "[--sweeps N,L,d,items]\n");
            return 2;
        }
    }
    const int H = 4, base_d = 128, base_L = 100, base_N = 200;
    const size_t base_items = 100000;
    bench_rng r = {.s = 2024};
    size_t top = max_items > base_items ? max_items : base_items;
    int64_t *pidx = bench_alloc(top * sizeof *pidx);
    for (size_t i = 0; i < top; i++)
        pidx[i] = (int64_t)i;

    /* N and L: one catalog and one set of tables; only the scratch changes. */
    if (strstr(only, "N") || strstr(only, "L")) {
        float *emb = bench_catalog(base_items, base_d, &r);
        attn_model *md = bench_model(base_d, base_d, H, 200, (int64_t)base_items, NULL, &r);
        double ms;
        attn_tables *t = s_build(md, emb, base_items, pidx, ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32, &ms);
        static const int Ns[] = {25, 50, 100, 200, 500, 1000, 2000};
        static const int Ls[] = {10, 25, 50, 100, 200};
        if (strstr(only, "N"))
            for (size_t i = 0; i < sizeof Ns / sizeof Ns[0]; i++) {
                s_point pt = {"N", base_d, H, base_L, Ns[i], base_items, ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32};
                s_run(&pt, t, base_items, ms, base_items * base_d * sizeof(float), &r);
            }
        if (strstr(only, "L"))
            for (size_t i = 0; i < sizeof Ls / sizeof Ls[0]; i++) {
                s_point pt = {"L", base_d, H, Ls[i], base_N, base_items, ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32};
                s_run(&pt, t, base_items, ms, base_items * base_d * sizeof(float), &r);
            }
        attn_tables_free(&t);
        attn_model_free(&md);
        free(emb);
    }

    if (strstr(only, "d")) {
        static const int ds[] = {32, 64, 128, 256, 384, 512};
        for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
            float *emb = bench_catalog(base_items, ds[i], &r);
            attn_model *md = bench_model(ds[i], ds[i], H, 200, (int64_t)base_items, NULL, &r);
            double ms;
            attn_tables *t = s_build(md, emb, base_items, pidx, ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32, &ms);
            s_point pt = {"d", ds[i], H, base_L, base_N, base_items, ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32};
            s_run(&pt, t, base_items, ms, base_items * (size_t)ds[i] * sizeof(float), &r);
            attn_tables_free(&t);
            attn_model_free(&md);
            free(emb);
        }
    }

    if (strstr(only, "items")) {
        static const size_t ns[] = {10000, 30000, 100000, 300000, 1000000, 3000000};
        float *emb = bench_catalog(max_items, base_d, &r);
        for (size_t i = 0; i < sizeof ns / sizeof ns[0] && ns[i] <= max_items; i++) {
            /* The same weights at every size (same seed), and item biases
             * for exactly this catalog, so the model's own per-item memory
             * grows with it as it would in the daemon. */
            bench_rng mr = {.s = 77};
            attn_model *md = bench_model(base_d, base_d, H, 200, (int64_t)ns[i], NULL, &mr);
            for (int mode = 0; mode < 3; mode++) {
                attn_precompute pm = mode == 2 ? ATTN_PRECOMPUTE_NONE : ATTN_PRECOMPUTE_ALL;
                attn_precision pp = mode == 1 ? ATTN_PRECISION_BF16 : ATTN_PRECISION_F32;
                double ms;
                attn_tables *t = s_build(md, emb, ns[i], pidx, pm, pp, &ms);
                s_point pt = {"items", base_d, H, base_L, base_N, ns[i], pm, pp};
                s_run(&pt, t, ns[i], ms, ns[i] * base_d * sizeof(float), &r);
                attn_tables_free(&t);
            }
            attn_model_free(&md);
        }
        free(emb);
    }
    free(pidx);
    return 0;
}
