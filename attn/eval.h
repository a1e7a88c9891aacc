/* eval.h -- leave-one-out evaluation: split, candidates, metrics, baselines.
 *
 *     attn_seqs s = {.n_users = U, .n_rows = N, .off = off, .row = row};
 *     attn_eval_opts o;
 *     attn_eval_defaults(&o);                 // test split, 100 sampled negatives, k 10
 *     attn_eval_base *b = attn_eval_base_new(&s, emb, N, d, d, NULL);
 *     attn_eval_result r;
 *     if (attn_eval_run(&s, &o, attn_eval_popularity, b, &r) == ATTN_OK)
 *         printf("HR@10 %.3f NDCG@10 %.3f over %u users\n", r.hr, r.ndcg, r.users);
 *     attn_eval_base_free(&b);
 *
 * The split (SASRec's, Kang & McAuley 2018): every user's events in
 * chronological order -- timestamp, then item id, the same order serving
 * uses -- the last event is the test target, the one before it the
 * validation target, and everything before the validation target is
 * training data.  A query's history is every event before its target.
 *
 * Two protocols rank the target among candidates:
 *   sampled  the target and n_neg items drawn uniformly, without
 *            replacement, from the catalog rows the user never interacted
 *            with (in any split);
 *   full     every catalog row except the items of the query's history
 *            (the target stays a candidate even if it is also in the
 *            history).
 * Rank is 0-based and pessimistic: a candidate scoring equal to the target
 * (after the tie key, if the scorer gives one) counts as ahead of it, so a
 * constant scorer can never look good.  HR@k = [rank < k], NDCG@k =
 * 1/log2(rank + 2) when rank < k (one relevant item, so the ideal DCG is 1).
 *
 * Scorers are callbacks; the baselines below and the served model
 * (attn_eval_model, through the daemon's fast path) are all scorers, so
 * every method sees exactly the same queries and candidates.
 */
#ifndef ATTN_EVAL_H
#define ATTN_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include "attn/model.h"
#include "attn/score.h"
#include "util/rng.h"

/* Every user's time-ordered events, as catalog rows.  Borrowed arrays. */
typedef struct attn_seqs {
    uint32_t n_users;         /* sequences */
    uint32_t n_rows;          /* catalog rows: every row[] entry is < n_rows */
    const uint64_t *off;      /* n_users + 1: user u owns events off[u]..off[u+1]-1 */
    const uint32_t *row;      /* catalog row of each event, oldest first per user */
    const float *weight;      /* weight of each event (finite, > 0), or NULL = all 1 */
    int refit;                /* 0: the last two events of a user are held out;
                                 1: only the last (the validation target is
                                 training data too: a model refit for the test
                                 split, and the baselines that face it) */
} attn_seqs;

/* ATTN_OK if the arrays are consistent (offsets ascending, rows < n_rows,
 * weights finite and > 0), else ATTN_EINVAL with the first problem in why. */
int attn_seqs_check(const attn_seqs *s, char *why, size_t why_len);

enum attn_eval_split {
    ATTN_EVAL_TEST = 0,    /* target: each user's last event */
    ATTN_EVAL_VALID = 1,   /* target: the second-to-last event */
};

enum attn_eval_protocol {
    ATTN_EVAL_SAMPLED = 0, /* target + n_neg uniformly sampled unseen items */
    ATTN_EVAL_FULL = 1,    /* every catalog item but the history's */
};

/* Events of a user that are training data: all but the last two (the last
 * one with refit). */
static inline uint64_t attn_eval_train_len(const attn_seqs *s, uint32_t u)
{
    uint64_t n = s->off[u + 1] - s->off[u], held = s->refit ? 1 : 2;
    return n > held ? n - held : 0;
}

/* Position (0-based, within the user's events) of the user's target in
 * split, or -1 when it has none: a target needs at least one event before
 * it, so the test split needs 2 events and the validation split 3. */
int64_t attn_eval_target(const attn_seqs *s, uint32_t u, int split);

/* A small deterministic generator (splitmix64, util/rng.h), shared by the
 * evaluator and the trainer so that a seed means the same draws everywhere. */
typedef struct attn_eval_rng {
    uint64_t s;
} attn_eval_rng;

static inline uint64_t attn_eval_rng_next(attn_eval_rng *r)
{
    return util_splitmix64(&r->s);
}

/* A generator for one stream, e.g. (seed, user): independent of the order
 * in which streams are visited, so results do not depend on threading. */
static inline attn_eval_rng attn_eval_rng_for(uint64_t seed, uint64_t a, uint64_t b)
{
    attn_eval_rng r = {seed ^ 0x6174746E65766C31ull};
    r.s = attn_eval_rng_next(&r) ^ a;
    r.s = attn_eval_rng_next(&r) ^ (b * 0xD6E8FEB86659FD93ull);
    attn_eval_rng_next(&r);
    return r;
}

/* Uniform in [0, n), n >= 1 (Lemire's multiply-shift; the bias is below
 * n / 2^64, far under anything measurable here). */
static inline uint32_t attn_eval_rng_below(attn_eval_rng *r, uint32_t n)
{
    return util_rng_scale(attn_eval_rng_next(r), n);
}

/* Uniform double in [0, 1). */
static inline double attn_eval_rng_unit(attn_eval_rng *r)
{
    return util_rng_unit(attn_eval_rng_next(r));
}

/* ---- metrics --------------------------------------------------------------- */

/* 0-based pessimistic rank of cand target among n scores: the candidates
 * with a larger score, or an equal score and a tie key >= the target's
 * (tie may be NULL: no tie key). */
int attn_eval_rank(const double *score, const double *tie, int n, int target);

/* 1/log2(rank + 2) if rank < k, else 0. */
double attn_eval_ndcg(int rank, int k);

/* 1 if rank < k, else 0. */
double attn_eval_hr(int rank, int k);

/* ---- the runner ------------------------------------------------------------ */

typedef struct attn_eval_opts {
    int split;        /* enum attn_eval_split */
    int protocol;     /* enum attn_eval_protocol */
    int n_neg;        /* sampled: negatives per user, default 100 */
    uint64_t seed;    /* sampled: which negatives; random baseline: which scores */
    int k;            /* cut-off, default 10 */
    uint32_t max_users;  /* 0 = every user with a target; else every s-th
                            user only (s = ceil(users / max_users)), a fixed
                            sample that bounds the cost on big data */
} attn_eval_opts;

void attn_eval_defaults(attn_eval_opts *o);

/* One query.  Arrays are borrowed for the call. */
typedef struct attn_eval_query {
    uint32_t user;              /* sequence index */
    uint64_t seed;              /* the run's seed (random scorers use it) */
    const uint32_t *hist;       /* every event before the target, newest first */
    const float *hist_weight;   /* their weights, or NULL = all 1 */
    int n_hist;                 /* >= 1 */
    const uint32_t *cand;       /* candidates; cand[0] is the target */
    int n_cand;
} attn_eval_query;

/* A scorer writes score[i] for q->cand[i], and may write a tie key tie[i]
 * (zeroed before the call) that orders equal scores, larger first.
 * Returns ATTN_OK or an error that stops the run. */
typedef int (*attn_eval_fn)(void *ctx, const attn_eval_query *q, double *score, double *tie);

typedef struct attn_eval_result {
    double hr, ndcg;      /* means over the users evaluated */
    uint32_t users;       /* users evaluated */
    uint32_t skipped;     /* users without a target in the split (too few events) */
    uint32_t short_neg;   /* sampled: users with fewer unseen items than n_neg
                             (all of them were used) */
} attn_eval_result;

/* The candidates of user u's query: cand[0] = the target, then the
 * negatives (sampled) or the unseen rest of the catalog (full).  cand must
 * hold n_rows entries; mark is n_rows zero bytes, returned zeroed.  Sets
 * *n_cand (0 if the user has no target in the split).  ATTN_OK or
 * ATTN_EINVAL. */
int attn_eval_candidates(const attn_seqs *s, uint32_t u, const attn_eval_opts *o,
                         uint8_t *mark, uint32_t *cand, int *n_cand);

/* Evaluate fn over every user with a target.  Returns ATTN_OK, ATTN_EINVAL
 * (bad seqs or options), ATTN_ENOMEM, ATTN_ERANGE (a score or tie key was
 * not finite) or the scorer's error.  users == 0 is not an error: the
 * caller decides what to say. */
int attn_eval_run(const attn_seqs *s, const attn_eval_opts *o, attn_eval_fn fn, void *ctx,
                  attn_eval_result *out);

/* The same, also writing each user's HR@k and NDCG@k to hr_u[u] and
 * ndcg_u[u] (s->n_users entries each; either may be NULL); NAN for users
 * not evaluated.  Two scorers run with the same options see the same
 * users and candidates, so these pair up (attn_ab_paired, attn/abtest.h). */
int attn_eval_run_users(const attn_seqs *s, const attn_eval_opts *o, attn_eval_fn fn, void *ctx,
                        attn_eval_result *out, double *hr_u, double *ndcg_u);

/* ---- baselines --------------------------------------------------------------
 * One object holds what they learn from the training data (each user's
 * events but the last two, or the last one when seqs->refit): item counts
 * and windowed transition counts.
 * Each baseline is an attn_eval_fn taking it as ctx. */
typedef struct attn_eval_base attn_eval_base;

typedef struct attn_eval_base_opts {
    int window;       /* transition: how many recent items vote, default 8;
                         also the farthest pair distance counted, so the
                         largest window attn_eval_base_set_transition and
                         attn_eval_base_tune can choose */
    double decay;     /* transition: weight of distance k is decay^(k-1), default 0.5 */
} attn_eval_base_opts;

/* emb (n_rows x d, row stride ld floats) is the text embedding matrix the
 * centroid baseline uses; borrowed, must outlive the object.  o may be NULL
 * (defaults).  NULL on out-of-memory or bad arguments. */
attn_eval_base *attn_eval_base_new(const attn_seqs *s, const float *emb, size_t ld, int d,
                                   const attn_eval_base_opts *o);
void attn_eval_base_free(attn_eval_base **base_p);

/* Training-data count of catalog row r (the popularity prior). */
double attn_eval_base_count(const attn_eval_base *b, uint32_t r);

/* Uniform random scores from (query seed, user). */
int attn_eval_random(void *base, const attn_eval_query *q, double *score, double *tie);
/* Training-data interaction counts. */
int attn_eval_popularity(void *base, const attn_eval_query *q, double *score, double *tie);
/* Cosine between the candidate's text embedding and the mean of the whole
 * history's (popularity breaks ties). */
int attn_eval_centroid(void *base, const attn_eval_query *q, double *score, double *tie);
/* sum over the window's history items h (distance k = 1 for the newest) of
 * decay^(k-1) * count(h -> c), where count(a -> b) adds decay^(k-1) for
 * every training pair with b k <= window events after a; popularity breaks
 * ties (so it falls back to popularity for an unknown history). */
int attn_eval_transition(void *base, const attn_eval_query *q, double *score, double *tie);

/* The transition baseline's window (at most the one it was built with)
 * and decay.  ATTN_OK or ATTN_EINVAL. */
int attn_eval_base_set_transition(attn_eval_base *b, int window, double decay);

/* The transition baseline tuned: windows 1, 2, 4, ... up to the built one
 * (and it), decays 0.25, 0.5, 0.75, 1; the pair with the best NDCG@10 over
 * the sequences the base was built on, with options o -- the validation
 * split, so that the test targets choose nothing.  It is set in b. */
typedef struct attn_eval_tuned {
    int window;
    double decay;
    double hr, ndcg;      /* its scores where it was tuned */
    int tried;            /* grid points */
} attn_eval_tuned;

int attn_eval_base_tune(attn_eval_base *b, const attn_eval_opts *o, attn_eval_tuned *out);

/* ---- the served model -------------------------------------------------------
 * Scores through the daemon's own fast path (attn_tables_build +
 * attn_score_all), never through training code, with at most l_max of the
 * newest history events and their weights (and the older ones as context
 * for a self-attention block, as the daemon passes them). */
typedef struct attn_eval_model attn_eval_model;

/* Tables for model over the catalog emb (n x d, stride ld); param_index[r]
 * is row r's index in the model's per-item arrays or -1 (NULL: none).  Both
 * are copied or borrowed as attn_tables_build does: emb must outlive the
 * object.  Returns ATTN_OK, ATTN_EINVAL (shapes) or ATTN_ENOMEM. */
int attn_eval_model_new(attn_eval_model **out, const attn_model *model, const float *emb,
                        size_t n, size_t ld, const int64_t *param_index, int threads);
/* The same with the tables' options (attn_tables_build_opts): e.g. bfloat16
 * tables, to measure what a daemon serving them would answer.
 * attn_eval_model_new is this with {ALL, F32, threads}. */
int attn_eval_model_new_opts(attn_eval_model **out, const attn_model *model, const float *emb,
                             size_t n, size_t ld, const int64_t *param_index,
                             const attn_tables_opts *opts);
void attn_eval_model_free(attn_eval_model **em_p);
int attn_eval_model_score(void *em, const attn_eval_query *q, double *score, double *tie);

/* The param_index of a model over a catalog whose row r holds item_id[r]:
 * a new array of n entries (free()), NULL on out-of-memory. */
int64_t *attn_eval_param_index(const attn_model *model, const int64_t *item_id, size_t n);

#endif
