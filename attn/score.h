/* score.h -- scoring candidates for one user: fast path and reference.
 *
 *     attn_tables *t;                    // once per model/catalog load
 *     attn_tables_build(&t, model, emb, n, dim, param_index, ATTN_PRECOMPUTE_ALL, 2);
 *     attn_limits lim = {.max_cand = 1000, .max_hist = 200, .max_k = 100, .max_explain = 5};
 *     attn_scratch *s = attn_scratch_new(t, &lim);    // once per worker
 *
 *     attn_request rq = {.hist = rows, .n_hist = 50, .cand = crows, .n_cand = 100,
 *                        .k = 10, .explain = 3};
 *     attn_result res;
 *     if (attn_score(t, &rq, s, &res) == ATTN_OK)      // no allocation here
 *         for (int i = 0; i < res.n; i++) use(res.cand[i], res.score[i]);
 *
 * Indexes everywhere are catalog rows (0..n-1) of the embedding matrix the
 * tables were built from.  History rows are newest first: hist[0] has position
 * 0 and gets pos_bias[0].
 *
 * The reference implementation computes the same thing with plain loops and
 * double accumulation straight from the model's matrices; it allocates, is
 * slow, and exists as the oracle the fast path is tested against.
 *
 * Threads: tables are read-only once built and may be shared by any number
 * of threads; a scratch belongs to one thread at a time.  docs/MODEL.md has
 * the formula, the tie rules, the memory each precompute mode costs and the
 * measured speed.
 */
#ifndef ATTN_SCORE_H
#define ATTN_SCORE_H

#include <stddef.h>
#include <stdint.h>
#include "attn/model.h"

typedef enum attn_precompute {
    ATTN_PRECOMPUTE_ALL = 0,   /* per-item Q, K, V and W_O-projected rows at load */
    ATTN_PRECOMPUTE_NONE = 1,  /* keep only embeddings; project per request */
} attn_precompute;

/* What the tables' rows are stored in.  The arithmetic is float either way:
 * a request widens the rows it reads.  docs/MODEL.md (bf16 tables) has the
 * error bound and docs/PERFORMANCE.md what it buys. */
typedef enum attn_precision {
    ATTN_PRECISION_F32 = 0,    /* float: the fast path agrees with the reference to ~1e-6 */
    ATTN_PRECISION_BF16 = 1,   /* bfloat16 (8 significant bits): half the memory and the
                                  traffic; the tables own every row they read, so the
                                  caller's embeddings may be freed after the build */
} attn_precision;

/* How to build tables (attn_tables_build_opts). */
typedef struct attn_tables_opts {
    attn_precompute mode;      /* what is precomputed */
    attn_precision precision;  /* what the rows are stored in */
    int threads;               /* >= 1: threads splitting the build */
} attn_tables_opts;

typedef struct attn_tables attn_tables;
typedef struct attn_scratch attn_scratch;

typedef struct attn_limits {
    int max_cand;      /* candidates per request */
    int max_hist;      /* history items per request */
    int max_k;         /* results per request */
    int max_explain;   /* explaining history items per result */
} attn_limits;

typedef struct attn_request {
    const uint32_t *hist;       /* n_hist (+ n_ctx) catalog rows, newest first */
    const float *hist_weight;   /* n_hist event weights > 0, or NULL = all 1 */
    int n_hist;                 /* >= 1, <= limits and <= model->l_max */
    int n_ctx;                  /* >= 0: older events after the history in hist[],
                                   context for a self-attention block only (the
                                   events before the oldest attended one, as in
                                   training); the first sa_len - 1 are used, the
                                   rest and all of them without a block ignored */
    const uint32_t *cand;       /* n_cand catalog rows (duplicates allowed) */
    int n_cand;                 /* >= 1 */
    int k;                      /* >= 1; fewer results if n_cand < k */
    int explain;                /* >= 0; fewer if n_hist < explain */
} attn_request;

/* Ranked results.  The arrays live in the scratch and stay valid until its
 * next use.  Order: score descending, ties by lower request index first. */
typedef struct attn_result {
    int n;                   /* results: min(k, n_cand) */
    int n_explain;           /* entries per result: min(explain, distinct history rows) */
    const uint32_t *cand;    /* n: index into request cand[] */
    const float *score;      /* n */
    const uint32_t *because; /* n * n_explain: index into request hist[] of a distinct
                                row (its newest position); the weight of a row that
                                appears at several positions is their sum; largest
                                first, ties newer first */
    const float *because_weight; /* n * n_explain: that weight, in [0, 1] (an exact
                                    0 only when a very sharp softmax underflows) */
} attn_result;

/* Build the per-model tables over a catalog.  emb is n x d with row stride ld
 * floats; the tables keep a pointer to it when they need it (identity model,
 * or PRECOMPUTE_NONE), so it must outlive them.  param_index[r] is the index of
 * catalog row r in the model's per-item arrays or -1; NULL means no row has
 * one; the tables copy what they need of it.  threads (>= 1) splits the
 * precomputation.  The model is copied (and checked: attn_model_check).
 * Returns ATTN_OK, ATTN_EINVAL (bad model, ld < d, a param_index entry outside
 * [-1, n_items)) or ATTN_ENOMEM; *out is NULL unless ATTN_OK. */
int attn_tables_build(attn_tables **out, const attn_model *model, const float *emb,
                      size_t n, size_t ld, const int64_t *param_index,
                      attn_precompute mode, int threads);

/* The same with every option: attn_tables_build is this with
 * {mode, ATTN_PRECISION_F32, threads}.  With ATTN_PRECISION_BF16 the rows
 * the tables would have aliased (the embeddings themselves: identity model,
 * PRECOMPUTE_NONE) are copied in bfloat16 too, so attn_tables_borrows_emb
 * is 0.  ATTN_EINVAL also for an unknown precision or NULL opts. */
int attn_tables_build_opts(attn_tables **out, const attn_model *model, const float *emb,
                           size_t n, size_t ld, const int64_t *param_index,
                           const attn_tables_opts *opts);

/* Accepts NULL; sets *tables_p = NULL. */
void attn_tables_free(attn_tables **tables_p);

/* 1 if the tables read the caller's embeddings after the build (float
 * tables of the identity model, or with PRECOMPUTE_NONE): emb must outlive
 * them.  0: the caller may free emb once the build returned. */
int attn_tables_borrows_emb(const attn_tables *t);

/* The options the tables were built with ({ALL, F32, 1} for NULL). */
attn_tables_opts attn_tables_options(const attn_tables *t);

size_t attn_tables_bytes(const attn_tables *t);  /* memory the tables own */
size_t attn_tables_rows(const attn_tables *t);
const attn_model *attn_tables_model(const attn_tables *t);

/* A scratch arena for one thread, sized once for these tables and limits.
 * NULL on out-of-memory or bad limits.  Usable with any tables of the same
 * d, m and heads (attn_scratch_fits tells). */
attn_scratch *attn_scratch_new(const attn_tables *t, const attn_limits *lim);
int attn_scratch_fits(const attn_scratch *s, const attn_tables *t);
void attn_scratch_free(attn_scratch **scratch_p);
size_t attn_scratch_bytes(const attn_scratch *s);

/* Score and rank.  Never allocates.  Returns ATTN_OK, ATTN_EINVAL (bad rows,
 * n_hist < 1, weights not finite and > 0, a scratch that does not fit),
 * ATTN_ELIMIT (beyond the scratch's limits, or n_hist > model->l_max: the
 * caller truncates the history) or ATTN_ERANGE (a score came out
 * non-finite: overflowing inputs).  On error *out has n = 0. */
int attn_score(const attn_tables *t, const attn_request *rq, attn_scratch *s,
               attn_result *out);

/* Score every candidate without ranking: scores[i] for rq->cand[i].  k and
 * explain are ignored.  Used by evaluation.  Same returns as attn_score. */
int attn_score_all(const attn_tables *t, const attn_request *rq, attn_scratch *s,
                   float *scores);

/* The oracle.  Effective embedding of row r is emb[r] + residual of its
 * param_index entry; scores[i] for rq->cand[i]; weights, if not NULL, gets
 * n_cand x n_hist head-averaged attention weights.  Allocates; returns
 * ATTN_OK, ATTN_EINVAL or ATTN_ENOMEM. */
int attn_score_ref(const attn_model *model, const float *emb, size_t n, size_t ld,
                   const int64_t *param_index, const attn_request *rq,
                   double *scores, double *weights);

/* How far rounding the tables' rows to opts->precision (not the float
 * arithmetic) may move each score: bound[i] for rq->cand[i], an upper
 * bound on |tables of that precision - float tables|, and (wbound, if not
 * NULL) on each head-averaged attention weight of that candidate.  Zero for
 * ATTN_PRECISION_F32.  Computed from the model's own matrices in double,
 * like attn_score_ref; score_ref.c and docs/MODEL.md derive it from bf16's
 * 8-bit significand.  Allocates; ATTN_OK, ATTN_EINVAL or ATTN_ENOMEM. */
int attn_score_ref_bound(const attn_model *model, const float *emb, size_t n, size_t ld,
                         const int64_t *param_index, const attn_request *rq,
                         const attn_tables_opts *opts, double *bound, double *wbound);

/* The vector instruction set every attn/ kernel family uses -- the fast
 * path's and the trainer's alike (attn/isa.h): "avx512", "avx2" or
 * "generic", chosen from the CPU at first use.  Borrowed string. */
const char *attn_kernel_name(void);

/* Force an instruction set by name, for scoring and training at once, or
 * back to automatic with NULL or "auto" (for tests and benchmarks).
 * ATTN_EINVAL if the name is unknown or this CPU cannot run it.  Not to be
 * called while another thread is scoring or training. */
int attn_kernel_select(const char *name);

#endif
