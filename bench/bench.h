/* bench.h -- helpers shared by the benchmark programs (header only, because
 * the Makefile turns every bench .c file into its own program).
 *
 *     bench_rng r = {.s = 42};
 *     float *emb = bench_catalog(100000, 64, &r);          // unit rows, 64-byte aligned
 *     attn_model *md = bench_model(64, 64, 4, 200, 100000, NULL, &r);
 *     uint64_t t0 = util_now_ns();  ...  double us = (util_now_ns() - t0) / 1e3;
 *     bench_stats st = bench_summarise(samples_us, n, wall_s);   // sorts samples
 *
 * Everything here is deterministic given the seed, so two runs (and the
 * Python peers, which read what bench_score writes) see the same numbers.
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/model.h"
#include "util/clock.h"
#include "util/rng.h"

/* ---- the reference shapes (DESIGN.md section 8; m = d) ---------------------------- */

typedef struct bench_shape {
    const char *name;
    int d, heads, L, N;
} bench_shape;

static const bench_shape bench_shapes[] = {
    {"P1", 64, 4, 50, 100},
    {"P2", 128, 4, 100, 200},
    {"P3", 384, 8, 50, 100},
    {"P4", 384, 8, 200, 1000},
};
#define BENCH_N_SHAPES (sizeof bench_shapes / sizeof bench_shapes[0])

/* The shape called name, or NULL. */
static inline const bench_shape *bench_shape_find(const char *name)
{
    for (size_t i = 0; i < BENCH_N_SHAPES; i++)
        if (strcmp(bench_shapes[i].name, name) == 0)
            return &bench_shapes[i];
    return NULL;
}

/* ---- random numbers ----------------------------------------------------------
 * splitmix64 (util/rng.h): tiny, fast, and good enough for test data; no libc rand() so the
 * data is the same on every machine. */

typedef struct bench_rng {
    uint64_t s;
} bench_rng;

static inline uint64_t bench_u64(bench_rng *r)
{
    return util_splitmix64(&r->s);
}

/* Uniform in [-1, 1). */
static inline float bench_uniform(bench_rng *r)
{
    return (float)((double)(bench_u64(r) >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* Uniform integer in [0, n). */
static inline uint32_t bench_below(bench_rng *r, uint32_t n)
{
    return (uint32_t)(((bench_u64(r) >> 32) * (uint64_t)n) >> 32);
}

/* ---- data ------------------------------------------------------------------- */

static inline void *bench_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        fprintf(stderr, "bench: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

/* n x d embeddings, each row L2-normalised like real text embeddings.
 * Uniform components rather than Gaussian: the direction is all that
 * matters here, and a catalog of a million rows is generated in a second. */
static inline float *bench_catalog(size_t n, int d, bench_rng *r)
{
    float *e = bench_alloc(n * (size_t)d * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float *x = e + i * (size_t)d;
        double ss = 0;
        for (int c = 0; c < d; c++) {
            x[c] = bench_uniform(r);
            ss += (double)x[c] * x[c];
        }
        float inv = (float)(1.0 / sqrt(ss > 0 ? ss : 1));
        for (int c = 0; c < d; c++)
            x[c] *= inv;
    }
    return e;
}

/* A model with the shape a trained one has: dense random W_Q, W_K, W_V
 * (d x m) and W_O (m x d), a decaying position bias and an item bias for
 * every item.  Entries have unit variance, so with unit-length embeddings
 * q and k have unit-variance components and the scaled logits
 * q_h.k_h / sqrt(m/H) have a standard deviation of about 1: a softmax that
 * is neither flat nor one-hot, as in a trained model.  item_ids (ascending)
 * may be NULL, meaning 0..n_items-1.  Exits on out-of-memory. */
static inline attn_model *bench_model(int d, int m, int heads, int l_max, int64_t n_items,
                                      const int64_t *item_ids, bench_rng *r)
{
    attn_model *md = attn_model_new(d, m, heads, l_max, n_items, 0);
    if (!md) {
        fprintf(stderr, "bench: cannot make a d=%d m=%d H=%d model\n", d, m, heads);
        exit(1);
    }
    const float a = sqrtf(3.0f);   /* U(-a, a) has unit variance */
    float *w[4] = {md->wq, md->wk, md->wv, md->wo};
    for (int i = 0; i < 4; i++)
        for (size_t t = 0; t < (size_t)d * m; t++)
            w[i][t] = a * bench_uniform(r);
    for (int j = 0; j < l_max; j++)
        md->pos_bias[j] = -0.02f * (float)j + 0.1f * bench_uniform(r);
    for (int64_t i = 0; i < n_items; i++) {
        md->item_ids[i] = item_ids ? item_ids[i] : i;
        md->item_bias[i] = 0.1f * bench_uniform(r);
    }
    md->version = 1;
    return md;
}

/* k distinct values in [0, n) into out, by a partial Fisher-Yates shuffle of
 * perm (a permutation of 0..n-1 that the caller keeps between draws). */
static inline void bench_distinct(uint32_t *perm, uint32_t n, int k, bench_rng *r,
                                  uint32_t *out)
{
    for (int i = 0; i < k; i++) {
        uint32_t j = (uint32_t)i + bench_below(r, n - (uint32_t)i);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        out[i] = perm[i];
    }
}

/* ---- statistics --------------------------------------------------------------- */

typedef struct bench_stats {
    size_t n;        /* timed requests */
    double rps;      /* steady rate: requests over the time spent in them, leaving out
                        those the scheduler interrupted (BENCH_STEADY_CUT) */
    double rps_wall; /* n / wall time of the timed loop, interruptions and all */
    size_t cut;      /* requests left out of rps */
    double p50_us, p99_us, mean_us;
} bench_stats;

/* A request that took more than this many times the median was descheduled
 * part-way (the machine is shared: a neighbour's time slice is ~4 ms, a P1
 * request 30 us, and nothing in the scorer makes one request of a shape take
 * ten times another).  The steady rate leaves such requests out, so that
 * rates compare with limits measured as a best or a median; the wall rate
 * is reported beside it. */
#define BENCH_STEADY_CUT 10.0

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of n sorted values, nearest rank. */
static inline double bench_quantile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)ceil(q * (double)n);
    return sorted[i ? i - 1 : 0];
}

/* Sorts us[] in place. */
static inline bench_stats bench_summarise(double *us, size_t n, double wall_s)
{
    bench_stats st = {.n = n};
    qsort(us, n, sizeof *us, bench_cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += us[i];
    st.rps_wall = wall_s > 0 ? (double)n / wall_s : 0;
    st.p50_us = bench_quantile(us, n, 0.50);
    double kept = 0, cut_at = BENCH_STEADY_CUT * st.p50_us;
    size_t nk = 0;
    for (size_t i = 0; i < n && us[i] <= cut_at; i++, nk++)
        kept += us[i];
    st.cut = n - nk;
    st.rps = kept > 0 ? (double)nk / (kept / 1e6) : st.rps_wall;
    st.p99_us = bench_quantile(us, n, 0.99);
    st.mean_us = n ? sum / (double)n : 0;
    return st;
}

/* ---- process memory ------------------------------------------------------------ */

/* A "VmRSS" / "VmHWM" field of /proc/self/status in bytes, or 0. */
static inline size_t bench_proc_kb_field(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kb = 0, flen = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kb = (size_t)strtoull(line + flen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}

#endif
