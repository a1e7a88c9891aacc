/* train_int.h -- what the trainer's files share (internal to attn/train*.c).
 *
 * The trainer works in "model item" space: the items that occur in training
 * data, numbered 0..n_mi-1 in catalog (= item id) order.  A step touches
 * only its **working set**: the candidates of its examples (every model
 * item with full softmax; else the shared sampled negatives and the step's
 * targets) followed by the items of their histories.  Once per step the
 * current parameters are turned into one table over the working rows,
 *
 *     T = E [W_Q | W_K | W_V | W_Oᵀ]      (n_ws x 4m; E = text + residual)
 *
 * whose row r holds item ws2mi[r]'s query q, key k, value v and output-side
 * vector g = W_O e (so u_c . e_c = ctx_c . g_c).  With a self-attention
 * block T is n_ws x 8m, each row followed by the block's sq, sk, uk, uv
 * (E [S_Q | S_K | U_K | U_V]): still one product.  Examples only read T and
 * write its gradient dT; the step then pushes dT back through the one
 * product (attn_tr_backprop), which is why the per-example work never
 * touches d-dimensional vectors, and why a step costs the same whatever the
 * catalog's size once negatives are sampled.
 *
 * Files: train.c (API, options), train_plan.c (model items, chunks,
 * initial parameters), train_epoch.c (epochs, steps, schedule, keep-best),
 * train_set.c (a step's working set and negatives), train_step.c (a
 * thread's workspace), train_chunk.c (one chunk forward and backward, exact
 * softmax), train_fact.c (its factorised softmax), train_kern*.c (the
 * vector loops), train_net.c (tables and backprop), train_opt.c (AdamW and
 * the rate), train_grad.c (gradients for the tests).
 */
#ifndef ATTN_TRAIN_INT_H
#define ATTN_TRAIN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "attn/eval.h"
#include "attn/model.h"
#include "attn/train.h"

/* Most threads a run may use: attn_tr_par's and the run state's arrays. */
#define ATTN_TR_MAX_THREADS 64

/* ---- the working set of a step (train_set.c) ------------------------------ */

typedef struct attn_tr_set {
    int64_t n_mi;          /* model items */
    int full;              /* every model item is a candidate; row r = item r */
    uint32_t *ws2mi;       /* cap: model item of each working row */
    int32_t *mi2ws;        /* n_mi: working row of a model item, -1 if none */
    int64_t n_ws;          /* working rows now */
    int64_t cap;           /* most working rows a step can have */
    int n_cand;            /* the first n_cand rows are every example's candidates */
    int n_sampled;         /* of which the first n_sampled are sampled negatives */
    float w_sampled;       /* their weight in the loss's partition sum */
    uint32_t *perm;        /* n_mi: a permutation the negatives are drawn from */
} attn_tr_set;

/* Sized for steps of at most ws_cap working rows (capped at n_mi; full:
 * every item is a candidate row).  Returns ATTN_OK or ATTN_ENOMEM. */
int attn_tr_set_init(attn_tr_set *s, int64_t n_mi, int full, int64_t ws_cap);
void attn_tr_set_free(attn_tr_set *s);

/* Empty the set (clearing mi2ws of the rows it had); with full, every model
 * item becomes a candidate row. */
void attn_tr_set_reset(attn_tr_set *s);

/* Row of model item mi, adding it at the end if absent. */
static inline int64_t attn_tr_set_add(attn_tr_set *s, uint32_t mi)
{
    if (s->mi2ws[mi] < 0) {
        s->mi2ws[mi] = (int32_t)s->n_ws;
        s->ws2mi[s->n_ws++] = mi;
    }
    return s->mi2ws[mi];
}

/* Sampled negatives: k distinct model items drawn uniformly (a partial
 * Fisher-Yates over s->perm, seeded by rng_seed), added first as candidates
 * with the weight that makes their sum estimate the sum over every item
 * that is not otherwise a candidate.  Call on an empty set, then add the
 * step's targets (attn_tr_set_add) and attn_tr_set_close_cand. */
void attn_tr_set_sample(attn_tr_set *s, int k, uint64_t rng_seed);

/* The rows added so far are the candidates; the weight of the sampled ones
 * is fixed now that the others are known. */
void attn_tr_set_close_cand(attn_tr_set *s);

/* ---- tables and backprop (train_net.c) ------------------------------------ */

/* The parameters turned into per-step tables over the working rows. */
typedef struct attn_tr_net {
    const attn_model *md;  /* the parameters (borrowed) */
    const attn_tr_set *set;  /* the working set (borrowed) */
    int d, m, heads, dh, l_max;
    int sa_len;            /* self-attention window, 0 = none */
    int ffn;               /* the block's feed-forward width, 0 = none */
    int tw;                /* row width of T: 4m, or 8m with self-attention */
    int64_t n_mi;          /* model items */
    const float *emb;      /* catalog text embeddings (borrowed), row stride ld */
    size_t ld;
    const uint32_t *mi2row;  /* n_mi: catalog row of a model item (borrowed) */
    float *E;              /* cap x d effective embeddings of the working rows */
    float *W;              /* d x tw: [W_Q | W_K | W_V | W_Oᵀ (| S_Q | S_K | U_K | U_V)] */
    float *WT;             /* tw x d: W transposed, for dE = dT Wᵀ */
    float *T;              /* cap x tw: [q | k | v | g (| sq | sk | uk | uv)] per row */
    float *QT, *GT;        /* m x ldc: the candidates' q and g, transposed, zero padded */
    int ldc;               /* candidates rounded up to ATTN_TR_LANES */
    float *F1T, *F2T;      /* the feed-forward's W1ᵀ (ffn x 2m) and W2ᵀ (2m x ffn) */
} attn_tr_net;

/* Floats of a feed-forward layer's gradient, laid out [W1 | b1 | W2 | b2]. */
static inline size_t attn_tr_ffn_size(int m, int ffn)
{
    return (size_t)ffn * (4 * (size_t)m + 1) + 2 * (size_t)m;
}

/* Offsets of the parts within a row of T or dT, in units of m. */
enum { ATTN_TR_Q = 0, ATTN_TR_K = 1, ATTN_TR_V = 2, ATTN_TR_G = 3,
       ATTN_TR_SQ = 4, ATTN_TR_SK = 5, ATTN_TR_UK = 6, ATTN_TR_UV = 7 };

/* A net for md's shapes over set's rows; the text of model item i is row
 * mi2row[i] of emb.  NULL on out-of-memory. */
attn_tr_net *attn_tr_net_new(const attn_model *md, const attn_tr_set *set, const float *emb,
                             size_t ld, const uint32_t *mi2row);
void attn_tr_net_free(attn_tr_net **net_p);

/* Recompute E, W, T and the candidates' QT, GT from net->md for the set's
 * rows, splitting rows over threads. */
void attn_tr_net_tables(attn_tr_net *net, int threads);

/* Gradients of a step: the dense parameters in a model without per-item
 * arrays, and the per-item ones by working row. */
typedef struct attn_tr_grad {
    attn_model *dense;     /* wq .. wo, pos_bias, the block; no item arrays */
    float *dres;           /* cap x d: residual gradient of each working row */
    float *dbias;          /* cap: item-bias gradient of each working row */
} attn_tr_grad;

int attn_tr_grad_init(attn_tr_grad *g, const attn_model *md, int64_t cap);
void attn_tr_grad_free(attn_tr_grad *g);

/* Push dT back through T = E W: fills g->dense's matrices from dT, g->dres
 * (if md has residuals) from dT Wᵀ, and copies dbias, dpos, dsa_pos and
 * dffn (the feed-forward's, attn_tr_ffn_size floats; NULL without one).  threads
 * split rows; partial sums are added in a fixed order.  ATTN_OK or
 * ATTN_ENOMEM. */
int attn_tr_backprop(const attn_tr_net *net, const float *dT, const float *dbias,
                     const float *dpos, const float *dsa_pos, const float *dffn,
                     attn_tr_grad *g, int threads);

/* Run fn(arg, i) for i in [0, n) on n threads (the caller is thread 0);
 * if a thread cannot be started its share runs on the caller, so the
 * results never depend on it. */
void attn_tr_par(int n, void (*fn)(void *arg, int i), void *arg);

/* ---- one chunk of examples (train_step.c, train_chunk.c) ------------------ */

/* How an example's candidates are weighted. */
enum attn_tr_mode {
    ATTN_TR_FULL = 0,      /* every candidate of the set, history masked as asked */
    ATTN_TR_EXPLICIT = 2,  /* given lists, repeats counted (tests) */
};

/* The view of the data a chunk needs. */
typedef struct attn_tr_view {
    const attn_seqs *seqs;
    const int32_t *row2mi;   /* n_rows: model item of a catalog row, or -1 */
} attn_tr_view;

/* Per-thread workspace: gradient accumulators and chunk buffers. */
typedef struct attn_tr_ws attn_tr_ws;

/* Sized for chunks of at most `chunk` targets against the net's candidates. */
attn_tr_ws *attn_tr_ws_new(const attn_tr_net *net, int chunk);
void attn_tr_ws_free(attn_tr_ws **ws_p);

/* Gradient accumulators of a workspace by working row (dT cap x tw, dbias
 * cap), dpos l_max, dsa_pos sa_len, dffn (attn_tr_ffn_size, NULL without a
 * feed-forward layer), and its summed loss; attn_tr_ws_zero
 * clears the first n_ws rows and the rest. */
float *attn_tr_ws_dT(attn_tr_ws *ws);
float *attn_tr_ws_dbias(attn_tr_ws *ws);
float *attn_tr_ws_dpos(attn_tr_ws *ws);
float *attn_tr_ws_dsa_pos(attn_tr_ws *ws);
float *attn_tr_ws_dffn(attn_tr_ws *ws);
double attn_tr_ws_loss(const attn_tr_ws *ws);
void attn_tr_ws_zero(attn_tr_ws *ws, int64_t n_ws);

/* One chunk: user u's targets t0..t1-1 (1 <= t0 < t1). */
typedef struct attn_tr_chunk {
    uint32_t u, t0, t1;
} attn_tr_chunk;

typedef struct attn_tr_run {
    int mode;          /* enum attn_tr_mode */
    int mask;          /* enum attn_train_mask */
    double dropout;
    double ffn_dropout;    /* of the feed-forward's hidden units */
    uint64_t seed;
    uint64_t epoch;
    float loss_scale;
    int use_item_bias;
    const uint32_t *cand;   /* EXPLICIT: the chunk's lists, (t1 - t0) x n_cand model items */
    int n_cand;
} attn_tr_run;

/* Adds the loss of each example of ch (times loss_scale) and its gradient
 * to ws.  Every event of the chunk's windows (and their self-attention
 * context) and every target must be a working row of the net's set.
 * Returns ATTN_OK or ATTN_ERANGE (a non-finite score). */
int attn_tr_chunk_run(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                      const attn_tr_chunk *ch, const attn_tr_run *run);

/* The events of ch whose rows the chunk reads -- its windows and their
 * self-attention context -- as offsets [*lo, *hi) into the user's events
 * (the targets are candidates, not among them). */
static inline void attn_tr_chunk_span(const attn_tr_chunk *ch, int l_max, int sa_len,
                                      uint32_t *lo, uint32_t *hi)
{
    const uint32_t c0 = ch->t0 > (uint32_t)l_max ? ch->t0 - (uint32_t)l_max : 0;
    const uint32_t ctx = sa_len > 1 ? (uint32_t)sa_len - 1 : 0;
    *lo = c0 > ctx ? c0 - ctx : 0;
    *hi = ch->t1 - 1;
}

/* ---- optimizer (train_opt.c) ---------------------------------------------- */

typedef struct attn_tr_adam {
    attn_model *m1, *m2;     /* first and second moments, shaped like the model */
    uint64_t t;              /* steps taken */
} attn_tr_adam;

int attn_tr_adam_init(attn_tr_adam *a, const attn_model *md);
void attn_tr_adam_free(attn_tr_adam *a);

/* The learning rate at step `at` (1-based) of a run planned for `total`
 * steps, `elapsed` seconds after training began: a linear warm-up over
 * `warm` steps, then o->lr, or with o->cosine a half cosine from o->lr to
 * 0 over the progress f = max((at - warm) / (total - warm),
 * (elapsed - t_warm) / (time_budget - t_warm)) -- the decay ends with
 * whichever comes first, the planned steps or the time budget (when one is
 * set and refit is off); t_warm is the elapsed time when warm-up ended.
 * Pure: train_epoch.c feeds it the clock, the tests their own numbers. */
double attn_tr_rate(const attn_train_opts *o, double warm, double total, double at,
                    double elapsed, double t_warm);

/* avg = decay avg + (1 - decay) md, array by array (same shapes). */
void attn_tr_ema(attn_model *avg, const attn_model *md, double decay);

/* Global L2 norm of a step's gradient (double accumulation). */
double attn_tr_grad_norm(const attn_tr_grad *g, int64_t n_ws, int d);

/* One AdamW step on md with the gradient scaled by gscale: dense arrays
 * whole, per-item arrays on the working rows only (lazily: a row's moments
 * move when it has a gradient).  wd applies to the matrices and the
 * residuals, not to the biases. */
typedef struct attn_tr_hyper {
    double lr, beta1, beta2, wd, gscale;
    int item_bias;     /* update the item bias */
} attn_tr_hyper;

void attn_tr_adam_step(attn_tr_adam *a, attn_model *md, const attn_tr_grad *g,
                       const attn_tr_set *set, const attn_tr_hyper *h);

#endif
