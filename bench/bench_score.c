/* bench_score.c -- attnd's scoring path in-process, one thread, per shape.
 *
 * For each reference shape (P1..P4, docs/PERFORMANCE.md) this program
 *
 *   1. makes a random catalog (unit-length rows) and a random model of the
 *      trained shape (dense W_Q, W_K, W_V, W_O, position bias, item bias),
 *      builds the fast path's tables (ATTN_PRECOMPUTE_ALL, and again NONE);
 *   2. pre-generates a pool of requests (L distinct history rows with event
 *      weights, N distinct candidates) and times attn_score on requests drawn
 *      at random from the pool, one clock_gettime pair per request, after a
 *      warm-up pass over the whole pool -- so the rows a request touches are
 *      as cold as they would be in a server facing many users -- in rounds
 *      the modes take in turn (S_ROUNDS), keeping each mode's best;
 *   3. measures OpenBLAS sgemm on one thread, once at a large representative
 *      shape (the FLOP-bound limit) and once at each request's own shapes;
 *   4. writes everything the Python peers need into DIR/<shape>.bin --
 *      weights, catalog, request pool, and attnd's top-k for the first
 *      --check requests -- so all three score the same inputs with the same
 *      weights, and the peers can check they return the same top-k.
 *
 * Output: one JSON object per line on stdout (bench/run collects them).
 *
 * The file layout (little-endian) is
 *   int32 hdr[16] = {magic 'ATBN', version 1, d, m, heads, L, N, items, pool,
 *                    k, n_check, 0...};  float32 hdr_f[4] = {scale, 0...}
 *   f32 wq[d*m] wk[d*m] wv[d*m] wo[m*d] pos_bias[L] item_bias[items] emb[items*d]
 *   u32 hist[pool*L]  f32 hist_w[pool*L]  u32 cand[pool*N]
 *   u32 top[n_check*k] (indexes into the request's cand[])  f32 top_score[n_check*k]
 * (bench/peer_common.py reads it.)
 */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/score.h"
#include "attn/topk.h"
#include "bench/bench.h"
#include "bench/bench_peak.h"

#define S_K 10
#define S_MAGIC 0x4E425441   /* "ATBN" */

typedef bench_shape s_shape;

typedef struct s_opts {
    char shapes[64];
    size_t items;
    double seconds;     /* timed seconds per shape and mode */
    int pool;
    int check;
    const char *out;    /* directory for the peers' files, or NULL */
    uint64_t seed;
    int sgemm_only;
    int ref;            /* requests checked against attn_score_ref */
    char modes[64];     /* "all,bf16,none,bf16-widen": which tables to time */
    int agree;          /* requests on which bf16 tables are compared with f32 ones */
    int self_attn;      /* > 0: give the model a self-attention block of this window */
    int ffn;            /* > 0: and the block a feed-forward layer of this width */
    int identity;       /* the identity model (no projections) of the shape's d and heads */
} s_opts;

/* One shape's data, shared by both table modes. */
typedef struct s_data {
    const s_shape *sh;
    int m;
    size_t items;
    float *emb;
    attn_model *md;
    int64_t *pidx;
    uint32_t *hist, *cand;
    float *hist_w;
    int pool;
    int ctx;            /* self-attention context rows per request (window - 1) */
    uint32_t *hctx;     /* with a block: pool x (L + ctx), history then context */
} s_data;

static void s_die(const char *what, int st)
{
    fprintf(stderr, "bench_score: %s: %s\n", what, attn_strerror(st));
    exit(1);
}

/* ---- sgemm ---------------------------------------------------------------------- */

/* GFLOP/s of C = A B (M x K times K x N) on one thread: the best single
 * call over ~0.5 s (after a warm-up call).  Best, not median: the question
 * is what the core can do; noise from the neighbours only ever slows it
 * down.  Single calls (6-60 ms at 1024x1024x384), not 0.1 s windows: a
 * window almost always holds a neighbour's time slice on a busy machine,
 * and the scoring rates it is compared with leave those out
 * (BENCH_STEADY_CUT). */
static double s_sgemm_gflops(int M, int N, int K, int trans_b)
{
    float *a = bench_alloc((size_t)M * K * sizeof(float));
    float *b = bench_alloc((size_t)K * N * sizeof(float));
    float *c = bench_alloc((size_t)M * N * sizeof(float));
    bench_rng r = {.s = 7};
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = bench_uniform(&r);
    for (size_t i = 0; i < (size_t)K * N; i++)
        b[i] = bench_uniform(&r);
    double best = 0;
    uint64_t start = util_now_ns();
    for (int call = 0; call < 1000 && (call < 6 || util_now_ns() - start < 500000000u); call++) {
        uint64_t t0 = util_now_ns();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                    1.0f, a, K, b, trans_b ? K : N, 0.0f, c, N);
        double g = 2.0 * M * N * K / ((double)(util_now_ns() - t0) / 1e9) / 1e9;
        if (call > 0 && g > best)
            best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* The rate sgemm reaches on the request's own products: per head, Z = Q_h K_hᵀ
 * and S = G_h V_hᵀ, N x L x m/H each.  Reported beside the limit to show
 * what handing these small GEMMs to BLAS one by one would get. */
static double s_sgemm_request(const s_shape *sh)
{
    const int dh = sh->d / sh->heads;   /* m = d */
    float *q = bench_alloc((size_t)sh->N * sh->d * sizeof(float));
    float *k = bench_alloc((size_t)sh->L * sh->d * sizeof(float));
    float *z = bench_alloc((size_t)sh->N * sh->L * sizeof(float));
    bench_rng r = {.s = 9};
    for (size_t i = 0; i < (size_t)sh->N * sh->d; i++)
        q[i] = bench_uniform(&r);
    for (size_t i = 0; i < (size_t)sh->L * sh->d; i++)
        k[i] = bench_uniform(&r);
    double best = 0;
    for (int trial = 0; trial < 3; trial++) {
        uint64_t t0 = util_now_ns(), t;
        long it = 0;
        do {
            for (int pass = 0; pass < 2; pass++)
                for (int h = 0; h < sh->heads; h++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, sh->N, sh->L, dh, 1.0f,
                                q + h * dh, sh->d, k + h * dh, sh->d, 0.0f, z, sh->L);
            it++;
        } while ((t = util_now_ns() - t0) < 50000000u);
        double g = 4.0 * sh->N * sh->L * sh->d * (double)it / ((double)t / 1e9) / 1e9;
        if (g > best)
            best = g;
    }
    free(q);
    free(k);
    free(z);
    return best;
}

/* ---- memory -------------------------------------------------------------------- */

/* The other physical limit: a request must bring in the precomputed rows it
 * uses -- q and g (2m floats) of each candidate, k and v (2m floats) of each
 * history item -- from a table far larger than the caches.  This times
 * exactly that traffic and nothing else: the same row indexes as the
 * request pool, in a table of the same size with rows of 4m elements (floats,
 * or bfloat16 for those tables: esize 2) laid out as attn/tables.h lays them
 * out ([q g | k v]), every cache line of the
 * needed halves read once, with software prefetch S_AHEAD rows ahead (as
 * the fast path does).  Its rate is the memory-bound limit the FLOP-bound
 * one leaves out.  Returns the median microseconds per request. */
static volatile float s_sink;
#ifndef S_AHEAD
#define S_AHEAD 16
#endif

static double s_gather_us(const s_data *D, double seconds, size_t esize)
{
    const s_shape *sh = D->sh;
    /* Floats standing for 2m elements of esize bytes: the same lines. */
    const size_t half = 2 * (size_t)D->m * esize / sizeof(float), stride = 2 * half;
    float *tab = bench_alloc(D->items * stride * sizeof(float));
    for (size_t i = 0; i < D->items * stride; i++)
        tab[i] = 1.0f;   /* touch every page before timing */
    size_t cap = 1 << 16, n = 0;
    double *us = bench_alloc(cap * sizeof *us);
    bench_rng r = {.s = 4242};
    float acc[16] = {0};
    uint64_t start = util_now_ns();
    while ((util_now_ns() - start < (uint64_t)(seconds * 1e9) || n < 50) && n < cap) {
        int p = (int)bench_below(&r, (uint32_t)D->pool);
        const uint32_t *c = D->cand + (size_t)p * sh->N, *h = D->hist + (size_t)p * sh->L;
        uint64_t t0 = util_now_ns();
        const int nr = sh->N + sh->L;
#define S_ROW(i) ((i) < sh->N ? tab + (size_t)c[(i)] * stride \
                              : tab + (size_t)h[(i) - sh->N] * stride + half)
        /* Rows are independent, so ask for them S_AHEAD rows early: the
         * misses overlap instead of queueing behind each other. */
        for (int i = 0; i < nr && i < S_AHEAD; i++)
            for (size_t x = 0; x < half; x += 16)
                __builtin_prefetch(S_ROW(i) + x, 0, 3);
        for (int i = 0; i < nr; i++) {
            if (i + S_AHEAD < nr)
                for (size_t x = 0; x < half; x += 16)
                    __builtin_prefetch(S_ROW(i + S_AHEAD) + x, 0, 3);
            /* One load per 64-byte line brings the whole line in: the
             * arithmetic stays negligible and only the traffic is timed. */
            const float *row = S_ROW(i);
            for (size_t x = 0; x < half; x += 16)
                acc[x / 16 % 16] += row[x];
        }
#undef S_ROW
        us[n++] = (double)(util_now_ns() - t0) / 1e3;
    }
    float sum = 0;
    for (int l = 0; l < 16; l++)
        sum += acc[l];
    s_sink = sum;
    bench_stats st = bench_summarise(us, n, 1);
    free(us);
    free(tab);
    return st.p50_us;
}

/* ---- data ----------------------------------------------------------------------- */

static void s_make_data(s_data *D, const s_shape *sh, const s_opts *o, int shape_index)
{
    bench_rng r = {.s = o->seed * 1000003u + (uint64_t)shape_index};
    memset(D, 0, sizeof *D);
    D->sh = sh;
    D->m = sh->d;
    D->items = o->items;
    D->pool = o->pool;
    D->emb = bench_catalog(o->items, sh->d, &r);
    D->md = bench_model(sh->d, D->m, sh->heads, sh->L, (int64_t)o->items, NULL, &r);
    if (o->identity) {   /* no projections: q = g = k = v = the embedding */
        float **w[4] = {&D->md->wq, &D->md->wk, &D->md->wv, &D->md->wo};
        for (int i = 0; i < 4; i++) {
            free(*w[i]);
            *w[i] = NULL;
        }
    }
    D->pidx = bench_alloc(o->items * sizeof *D->pidx);
    for (size_t i = 0; i < o->items; i++)
        D->pidx[i] = (int64_t)i;   /* item ids are 0..n-1: row r has parameters r */
    D->hist = bench_alloc((size_t)o->pool * sh->L * sizeof *D->hist);
    D->hist_w = bench_alloc((size_t)o->pool * sh->L * sizeof *D->hist_w);
    D->cand = bench_alloc((size_t)o->pool * sh->N * sizeof *D->cand);
    if (o->self_attn > 0) {
        /* A block of the model's scale: random S_Q, S_K, U_K, U_V. */
        if (attn_model_add_sa(D->md, o->self_attn) != ATTN_OK)
            s_die("attn_model_add_sa", ATTN_EINVAL);
        const size_t dm = (size_t)sh->d * D->m;
        float *w[4] = {D->md->sa_q, D->md->sa_k, D->md->sa_uk, D->md->sa_uv};
        for (int k = 0; k < 4; k++)
            for (size_t i = 0; i < dm; i++)
                w[k][i] = bench_uniform(&r) / sqrtf((float)sh->d);
        if (o->ffn > 0) {   /* random W1, b1, W2, b2 of the same scale */
            if (attn_model_add_ffn(D->md, o->ffn) != ATTN_OK)
                s_die("attn_model_add_ffn", ATTN_EINVAL);
            const size_t fw = 2 * (size_t)D->m * o->ffn;
            for (size_t i = 0; i < fw; i++) {
                D->md->ffn_w1[i] = bench_uniform(&r) / sqrtf(2.0f * D->m);
                D->md->ffn_w2[i] = bench_uniform(&r) / sqrtf((float)o->ffn);
            }
            for (int i = 0; i < o->ffn; i++)
                D->md->ffn_b1[i] = bench_uniform(&r) * 0.1f;
        }
        D->ctx = o->self_attn - 1;
        D->hctx = bench_alloc((size_t)o->pool * (sh->L + D->ctx) * sizeof *D->hctx);
    }
    uint32_t *perm = bench_alloc(o->items * sizeof *perm);
    for (size_t i = 0; i < o->items; i++)
        perm[i] = (uint32_t)i;
    for (int p = 0; p < o->pool; p++) {
        if (D->hctx) {
            uint32_t *hc = D->hctx + (size_t)p * (sh->L + D->ctx);
            bench_distinct(perm, (uint32_t)o->items, sh->L + D->ctx, &r, hc);
            memcpy(D->hist + (size_t)p * sh->L, hc, (size_t)sh->L * sizeof *hc);
        } else {
            bench_distinct(perm, (uint32_t)o->items, sh->L, &r, D->hist + (size_t)p * sh->L);
        }
        /* Event weights as the daemon sees them (view 1, like 2, ...):
         * they enter the logits as log w, so they are part of the check. */
        for (int j = 0; j < sh->L; j++)
            D->hist_w[(size_t)p * sh->L + j] = 0.5f + 1.5f * (bench_uniform(&r) + 1.0f) * 0.5f;
        bench_distinct(perm, (uint32_t)o->items, sh->N, &r, D->cand + (size_t)p * sh->N);
    }
    free(perm);
}

static void s_free_data(s_data *D)
{
    free(D->emb);
    attn_model_free(&D->md);
    free(D->pidx);
    free(D->hist);
    free(D->hist_w);
    free(D->cand);
    free(D->hctx);
}

static attn_request s_request(const s_data *D, int p)
{
    const s_shape *sh = D->sh;
    return (attn_request){.hist = D->hctx ? D->hctx + (size_t)p * (sh->L + D->ctx)
                                          : D->hist + (size_t)p * sh->L,
                          .hist_weight = D->hist_w + (size_t)p * sh->L,
                          .n_hist = sh->L,
                          .n_ctx = D->ctx,
                          .cand = D->cand + (size_t)p * sh->N,
                          .n_cand = sh->N,
                          .k = S_K,
                          .explain = 0};
}

/* ---- timing --------------------------------------------------------------------- */

/* Warm up (the code, the branch predictors, the scratch; the pool's rows
 * stay mostly cold, as they would in a server facing many users) for a
 * quarter of the timed period or one pass over the pool, whichever ends
 * first; then time requests drawn at random from the pool until `seconds`
 * have passed (and at least 200 requests). */
static bench_stats s_time(const attn_tables *t, attn_scratch *s, const s_data *D, double seconds,
                          uint64_t seed)
{
    attn_result res;
    uint64_t w0 = util_now_ns();
    for (int p = 0; p < D->pool && util_now_ns() - w0 < (uint64_t)(seconds * 0.25e9); p++) {
        attn_request rq = s_request(D, p);
        int st = attn_score(t, &rq, s, &res);
        if (st != ATTN_OK)
            s_die("attn_score", st);
    }
    size_t cap = 1 << 16, n = 0;
    double *us = bench_alloc(cap * sizeof *us);
    bench_rng r = {.s = seed};
    uint64_t start = util_now_ns(), limit = (uint64_t)(seconds * 1e9);
    while ((util_now_ns() - start < limit || n < 200) && n < cap) {
        attn_request rq = s_request(D, (int)bench_below(&r, (uint32_t)D->pool));
        uint64_t t0 = util_now_ns();
        int st = attn_score(t, &rq, s, &res);
        uint64_t t1 = util_now_ns();
        if (st != ATTN_OK)
            s_die("attn_score", st);
        us[n++] = (double)(t1 - t0) / 1e3;
    }
    double wall = (double)(util_now_ns() - start) / 1e9;
    bench_stats stats = bench_summarise(us, n, wall);
    free(us);
    return stats;
}

/* Largest relative difference between the fast path and the reference
 * oracle over the first n pool requests: a guard that the tables being
 * timed really compute the model (the peers' check then covers them too). */
static double s_ref_error(const attn_tables *t, attn_scratch *s, const s_data *D, int n)
{
    const int N = D->sh->N;
    float *fast = bench_alloc((size_t)N * sizeof *fast);
    double *ref = bench_alloc((size_t)N * sizeof *ref);
    double worst = 0;
    for (int p = 0; p < n && p < D->pool; p++) {
        attn_request rq = s_request(D, p);
        int st = attn_score_all(t, &rq, s, fast);
        if (st != ATTN_OK)
            s_die("attn_score_all", st);
        st = attn_score_ref(D->md, D->emb, D->items, (size_t)D->sh->d, D->pidx, &rq, ref, NULL);
        if (st != ATTN_OK)
            s_die("attn_score_ref", st);
        double scale = 0;
        for (int c = 0; c < N; c++)
            scale = fmax(scale, fabs(ref[c]));
        for (int c = 0; c < N; c++)
            worst = fmax(worst, fabs(fast[c] - ref[c]) / (scale > 0 ? scale : 1));
    }
    free(fast);
    free(ref);
    return worst;
}

/* ---- the peers' file ------------------------------------------------------------- */

static void s_write(FILE *f, const void *p, size_t size, size_t n, const char *path)
{
    if (n && fwrite(p, size, n, f) != n) {
        fprintf(stderr, "bench_score: writing %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void s_write_peer_file(const attn_tables *t, attn_scratch *s, const s_data *D,
                              const s_opts *o)
{
    const s_shape *sh = D->sh;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", o->out, sh->name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "bench_score: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    int n_check = o->check < D->pool ? o->check : D->pool;
    int32_t hdr[16] = {S_MAGIC, 1, sh->d, D->m, sh->heads, sh->L, sh->N, (int32_t)D->items,
                       D->pool, S_K, n_check};
    float hdr_f[4] = {D->md->scale};
    s_write(f, hdr, sizeof hdr[0], 16, path);
    s_write(f, hdr_f, sizeof hdr_f[0], 4, path);
    size_t dm = (size_t)sh->d * D->m;
    s_write(f, D->md->wq, sizeof(float), dm, path);
    s_write(f, D->md->wk, sizeof(float), dm, path);
    s_write(f, D->md->wv, sizeof(float), dm, path);
    s_write(f, D->md->wo, sizeof(float), dm, path);
    s_write(f, D->md->pos_bias, sizeof(float), (size_t)sh->L, path);
    s_write(f, D->md->item_bias, sizeof(float), D->items, path);
    s_write(f, D->emb, sizeof(float), D->items * sh->d, path);
    s_write(f, D->hist, sizeof(uint32_t), (size_t)D->pool * sh->L, path);
    s_write(f, D->hist_w, sizeof(float), (size_t)D->pool * sh->L, path);
    s_write(f, D->cand, sizeof(uint32_t), (size_t)D->pool * sh->N, path);
    for (int pass = 0; pass < 2; pass++)
        for (int p = 0; p < n_check; p++) {
            attn_request rq = s_request(D, p);
            attn_result res;
            int st = attn_score(t, &rq, s, &res);
            if (st != ATTN_OK)
                s_die("attn_score", st);
            if (res.n != S_K) {
                fprintf(stderr, "bench_score: %d results, expected %d\n", res.n, S_K);
                exit(1);
            }
            if (pass == 0)
                s_write(f, res.cand, sizeof(uint32_t), S_K, path);
            else
                s_write(f, res.score, sizeof(float), S_K, path);
        }
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_score: closing %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* ---- bfloat16 against float tables ------------------------------------------------ */

/* Of the f32 top-k A and the bf16 top-k B of one request, the candidates
 * in only one of them (a in A, b in B) must be within the bound the oracle
 * derives for bf16 tables (attn_score_ref_bound): f32(a) - f32(b) <=
 * bound(a) + bound(b) + 1e-4 max|score|.  Returns the worst ratio of the
 * two sides (> 1: the bound is broken, and the suite stops). */
static double s_swap_check(const s_data *D, int p, const float *s32, const uint32_t *a,
                           const uint32_t *b, int n, double *gap_rel)
{
    attn_request rq = s_request(D, p);
    uint32_t rows[2 * S_K];
    for (int i = 0; i < n; i++) {
        rows[i] = rq.cand[a[i]];
        rows[n + i] = rq.cand[b[i]];
    }
    rq.cand = rows;
    rq.n_cand = 2 * n;
    double bound[2 * S_K], scale = 0, worst = 0;
    attn_tables_opts o = {ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_BF16, 1};
    int st = attn_score_ref_bound(D->md, D->emb, D->items, (size_t)D->sh->d, D->pidx, &rq, &o,
                                  bound, NULL);
    if (st != ATTN_OK)
        s_die("attn_score_ref_bound", st);
    for (int c = 0; c < D->sh->N; c++)
        scale = fmax(scale, fabs(s32[c]));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double gap = (double)s32[a[i]] - s32[b[j]];
            worst = fmax(worst, gap / (bound[i] + bound[n + j] + 1e-4 * scale));
            *gap_rel = fmax(*gap_rel, gap / (scale > 0 ? scale : 1));
        }
    return worst;
}

/* bf16 tables against the f32 ones on the first n pool requests: how many
 * of f32's top-k bf16 keeps (overlap), how often the order is the same,
 * the largest score difference, and the bound check of every swap (and the
 * largest f32 gap of a swapped pair, relative to the request's largest
 * |score|). */
static void s_agree(const attn_tables *t32, const attn_tables *t16, const s_data *D, int n)
{
    const int N = D->sh->N;
    attn_limits lim = {.max_cand = N, .max_hist = D->sh->L, .max_k = S_K, .max_explain = 0};
    attn_scratch *x32 = attn_scratch_new(t32, &lim), *x16 = attn_scratch_new(t16, &lim);
    float *s32 = bench_alloc((size_t)N * sizeof *s32), *s16 = bench_alloc((size_t)N * sizeof *s16);
    if (!x32 || !x16)
        s_die("attn_scratch_new", ATTN_ENOMEM);
    n = n < D->pool ? n : D->pool;
    long kept = 0, same = 0, swapped = 0;
    double diff = 0, worst = 0, gap = 0;
    for (int p = 0; p < n; p++) {
        attn_request rq = s_request(D, p);
        uint32_t top32[S_K], top16[S_K], a[S_K], b[S_K];
        if (attn_score_all(t32, &rq, x32, s32) != ATTN_OK ||
            attn_score_all(t16, &rq, x16, s16) != ATTN_OK)
            s_die("attn_score_all", ATTN_ERANGE);
        int k = attn_topk_f32(s32, N, S_K, top32);
        attn_topk_f32(s16, N, S_K, top16);
        double scale = 0, d = 0;
        for (int c = 0; c < N; c++) {
            scale = fmax(scale, fabs(s32[c]));
            d = fmax(d, fabs((double)s16[c] - s32[c]));
        }
        diff = fmax(diff, d / (scale > 0 ? scale : 1));
        same += memcmp(top32, top16, sizeof top32) == 0;
        int na = 0, nb = 0;
        for (int i = 0; i < k; i++) {
            int in16 = 0, in32 = 0;
            for (int j = 0; j < k; j++) {
                in16 |= top16[j] == top32[i];
                in32 |= top32[j] == top16[i];
            }
            kept += in16;
            if (!in16)
                a[na++] = top32[i];
            if (!in32)
                b[nb++] = top16[i];
        }
        if (na > 0) {
            swapped++;
            worst = fmax(worst, s_swap_check(D, p, s32, a, b, na, &gap));
        }
    }
    printf("{\"kind\":\"agree\",\"shape\":\"%s\",\"requests\":%d,\"k\":%d,\"overlap\":%.5f,"
           "\"identical\":%.4f,\"max_rel_diff\":%.3g,\"swapped_requests\":%ld,"
           "\"worst_swap_of_bound\":%.3g,\"worst_swap_gap_rel\":%.3g}\n",
           D->sh->name, n, S_K, (double)kept / ((double)n * S_K), (double)same / n, diff,
           swapped, worst, gap);
    fflush(stdout);
    if (worst > 1.0) {
        fprintf(stderr, "bench_score: %s: bf16 swapped candidates whose f32 scores differ by "
                        "%.3g times the bound\n", D->sh->name, worst);
        exit(1);
    }
    attn_scratch_free(&x32);
    attn_scratch_free(&x16);
    free(s32);
    free(s16);
}

/* ---- one shape -------------------------------------------------------------------- */

/* "bf16-widen" is bf16 tables on the float kernels (attn_kernel_select
 * "avx512"), the path CPUs without AVX512-BF16 take: beside "bf16" it
 * measures what the bfloat16 products (kern.h: attn_kern_dp) buy.  Timed
 * only where they are in use. */
static const struct {
    attn_precompute mode;
    attn_precision prec;
    const char *name;
    const char *kernel;   /* forced for this mode, or NULL: automatic */
} s_modes[] = {{ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32, "all", NULL},
               {ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_BF16, "bf16", NULL},
               {ATTN_PRECOMPUTE_NONE, ATTN_PRECISION_F32, "none", NULL},
               {ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_BF16, "bf16-widen", "avx512"}};
#define S_NMODES (sizeof s_modes / sizeof s_modes[0])

/* 1 if the comma-separated list holds name as a whole item ("bf16" is not
 * in "bf16-widen"). */
static int s_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

static attn_tables *s_build(const s_data *D, size_t mi, double *ms)
{
    attn_tables *t;
    uint64_t b0 = util_now_ns();
    attn_tables_opts to = {s_modes[mi].mode, s_modes[mi].prec, 2};
    int st = attn_tables_build_opts(&t, D->md, D->emb, D->items, (size_t)D->sh->d, D->pidx, &to);
    if (st != ATTN_OK)
        s_die("attn_tables_build", st);
    *ms = (double)(util_now_ns() - b0) / 1e6;
    return t;
}

/* Rounds per mode: the modes take turns, S_ROUNDS times, and each keeps
 * its best round.  The machine is shared: a neighbour's burst only ever
 * slows a round down, and taking turns spreads it over every mode alike,
 * so the ratios between modes hold even when the absolute rates do not. */
#define S_ROUNDS 3

/* Build, check and time every mode asked for, then compare bf16 tables
 * with f32 ones (built for that if "all" was not asked for). */
static void s_run_shape(const s_data *D, const s_opts *o)
{
    const s_shape *sh = D->sh;
    /* The identity's one product per head is both Z and S. */
    double flops = (o->identity ? 2.0 : 4.0) * sh->N * sh->L * D->m;
    double g_req = s_sgemm_request(sh);
    attn_limits lim = {.max_cand = sh->N, .max_hist = sh->L, .max_k = S_K, .max_explain = 0};
    attn_tables *t[S_NMODES] = {0};
    attn_scratch *s[S_NMODES] = {0};
    bench_stats best[S_NMODES] = {{0}};
    double build_ms[S_NMODES] = {0}, err[S_NMODES] = {0};
    const char *level = attn_kernel_name();   /* --kernel's, or automatic */
    for (size_t mi = 0; mi < S_NMODES; mi++) {
        if (!s_listed(o->modes, s_modes[mi].name))
            continue;
        if (s_modes[mi].kernel && (strcmp(attn_kernel_name(), "avx512bf16") != 0 ||
                                   attn_kernel_select(s_modes[mi].kernel) != ATTN_OK))
            continue;
        t[mi] = s_build(D, mi, &build_ms[mi]);
        if (!(s[mi] = attn_scratch_new(t[mi], &lim)))
            s_die("attn_scratch_new", ATTN_ENOMEM);
        err[mi] = s_modes[mi].mode == ATTN_PRECOMPUTE_ALL ? s_ref_error(t[mi], s[mi], D, o->ref) : -1;
        attn_kernel_select(level);
    }
    for (int round = 0; round < S_ROUNDS; round++)
        for (size_t mi = 0; mi < S_NMODES; mi++) {
            if (!t[mi])
                continue;
            if (s_modes[mi].kernel)
                attn_kernel_select(s_modes[mi].kernel);
            bench_stats bs = s_time(t[mi], s[mi], D, o->seconds / S_ROUNDS, 12345 + round);
            attn_kernel_select(level);
            if (bs.rps > best[mi].rps)
                best[mi] = bs;
        }
    for (size_t mi = 0; mi < S_NMODES; mi++) {
        if (!t[mi])
            continue;
        double esize = s_modes[mi].prec == ATTN_PRECISION_F32 ? 4 : 2;
        double gather_us = s_gather_us(D, o->seconds * 0.5, (size_t)esize);
        double bytes = (double)(sh->N + sh->L) * 2 * D->m * esize;
        printf("{\"kind\":\"score\",\"shape\":\"%s\",\"impl\":\"attnd\",\"mode\":\"%s\","
               "\"d\":%d,\"m\":%d,\"H\":%d,\"L\":%d,\"N\":%d,\"items\":%zu,"
               "\"n\":%zu,\"rps\":%.1f,\"rps_wall\":%.1f,\"cut\":%zu,\"p50_us\":%.2f,"
               "\"p99_us\":%.2f,\"mean_us\":%.2f,\"rounds\":%d,\"flops\":%.0f,\"sgemm_request_gflops\":%.2f,\"table_bytes\":%zu,"
               "\"scratch_bytes\":%zu,\"build_ms\":%.1f,\"ref_rel_err\":%.3g,"
               "\"row_bytes\":%.0f,\"gather_us\":%.2f,\"self_attn\":%d,\"ffn\":%d}\n",
               sh->name, s_modes[mi].name, sh->d, D->m, sh->heads, sh->L, sh->N, D->items,
               best[mi].n, best[mi].rps, best[mi].rps_wall, best[mi].cut, best[mi].p50_us,
               best[mi].p99_us, best[mi].mean_us,
               S_ROUNDS, flops, g_req, attn_tables_bytes(t[mi]), attn_scratch_bytes(s[mi]),
               build_ms[mi], err[mi], bytes, gather_us, o->self_attn, o->ffn);
        fflush(stdout);
    }
    if (t[0] && o->out)
        s_write_peer_file(t[0], s[0], D, o);
    if (t[1] && o->agree > 0) {
        if (!t[0])
            t[0] = s_build(D, 0, &build_ms[0]);
        s_agree(t[0], t[1], D, o->agree);
    }
    for (size_t mi = 0; mi < S_NMODES; mi++) {
        attn_scratch_free(&s[mi]);
        attn_tables_free(&t[mi]);
    }
}

/* ---- main ------------------------------------------------------------------------ */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench_score [--shapes P1,P2,P3,P4] [--items N] [--seconds S] [--pool N]\n"
            "                   [--check N] [--ref N] [--out DIR] [--seed S]\n"
            "                   [--modes all,bf16,none,bf16-widen] [--agree N] [--sgemm-only] [--self-attn W]\n"
            "                   [--ffn F] [--kernel auto|generic|avx2|avx512|avx512bf16] [--identity]\n"
            "Times attn_score in-process on one thread for each reference shape and\n"
            "writes DIR/<shape>.bin for the numpy and PyTorch peers.  JSON lines on stdout.\n");
}

static int s_parse(int argc, char **argv, s_opts *o)
{
    *o = (s_opts){.items = 100000, .seconds = 0.6, .pool = 1024, .check = 32, .seed = 1,
                  .ref = 2, .agree = 1000};
    snprintf(o->shapes, sizeof o->shapes, "P1,P2,P3,P4");
    snprintf(o->modes, sizeof o->modes, "all,bf16,none,bf16-widen");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--sgemm-only")) {
            o->sgemm_only = 1;
            continue;
        }
        if (!strcmp(a, "--identity")) {
            o->identity = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            exit(0);
        }
        if (!v) {
            s_usage(stderr);
            return -1;
        }
        i++;
        if (!strcmp(a, "--shapes"))
            snprintf(o->shapes, sizeof o->shapes, "%s", v);
        else if (!strcmp(a, "--items"))
            o->items = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--seconds"))
            o->seconds = atof(v);
        else if (!strcmp(a, "--pool"))
            o->pool = atoi(v);
        else if (!strcmp(a, "--check"))
            o->check = atoi(v);
        else if (!strcmp(a, "--modes"))
            snprintf(o->modes, sizeof o->modes, "%s", v);
        else if (!strcmp(a, "--ref"))
            o->ref = atoi(v);
        else if (!strcmp(a, "--agree"))
            o->agree = atoi(v);
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--seed"))
            o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--self-attn"))
            o->self_attn = atoi(v);
        else if (!strcmp(a, "--ffn"))
            o->ffn = atoi(v);
        else if (!strcmp(a, "--kernel")) {   /* the level every mode runs (bf16-widen aside) */
            if (attn_kernel_select(v) != ATTN_OK) {
                fprintf(stderr, "bench_score: this CPU does not run kernel set '%s'\n", v);
                return -1;
            }
        } else {
            s_usage(stderr);
            return -1;
        }
    }
    if (o->identity && (o->self_attn || o->out)) {
        fprintf(stderr, "bench_score: --identity has no block, and no peers (--out)\n");
        return -1;
    }
    if (o->self_attn < 0 || o->self_attn > ATTN_SA_MAX || (o->self_attn && o->out)) {
        fprintf(stderr, "bench_score: --self-attn is 0..%d, and the peers (--out) have no "
                        "self-attention block\n", ATTN_SA_MAX);
        return -1;
    }
    if (o->ffn && (!o->self_attn || o->ffn % 16 || o->ffn < 16 || o->ffn > ATTN_FFN_MAX)) {
        fprintf(stderr, "bench_score: --ffn needs --self-attn and a multiple of 16 in 16..%d\n",
                ATTN_FFN_MAX);
        return -1;
    }
    if (o->items < 2000 || o->pool < 1 || o->check < 0 || o->seconds <= 0 || o->agree < 0) {
        fprintf(stderr, "bench_score: need --items >= 2000, --pool >= 1, --seconds > 0\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_opts o;
    if (s_parse(argc, argv, &o) != 0)
        return 2;
    /* One thread everywhere: the comparison is per core. */
    openblas_set_num_threads(1);
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    /* The representative shape: a thousand candidates against 1024 columns
     * with the inner dimension of the largest model, d = 384.  Large enough
     * that sgemm runs at its steady rate on this core. */
    double g_ref = s_sgemm_gflops(1024, 1024, 384, 0);
    printf("{\"kind\":\"env\",\"openblas_core\":\"%s\",\"openblas_coretype\":\"%s\","
           "\"openblas_config\":\"%s\",\"attn_kernel\":\"%s\"}\n",
           openblas_get_corename(), coretype ? coretype : "unset", openblas_get_config(),
           attn_kernel_name());
    printf("{\"kind\":\"sgemm\",\"M\":1024,\"N\":1024,\"K\":384,\"gflops\":%.2f}\n", g_ref);
    fflush(stdout);
    if (o.sgemm_only)
        return 0;
    printf("{\"kind\":\"peak\",\"fma_gflops\":%.2f,\"dpbf16_gflops\":%.2f,"
           "\"vnni_gops\":%.2f}\n", bench_peak_fma(), bench_peak_dpbf16(), bench_peak_vnni());

    for (size_t si = 0; si < BENCH_N_SHAPES; si++) {
        const s_shape *sh = &bench_shapes[si];
        if (!strstr(o.shapes, sh->name))
            continue;
        s_data D;
        s_make_data(&D, sh, &o, (int)si);
        s_run_shape(&D, &o);
        s_free_data(&D);
    }
    return 0;
}
