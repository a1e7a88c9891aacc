/* train_int.h -- what the trainer's files share (internal to attn/train*.c).
 *
 * The trainer works in "model item" space: the items that occur in training
 * data, numbered 0..n_mi-1 in catalog (= item id) order.  Once per step the
 * current parameters are turned into one table,
 *
 *     T = E [W_Q | W_K | W_V | W_Oᵀ]      (n_mi x 4m; E = text + residual)
 *
 * whose row i holds item i's query q, key k, value v and output-side
 * vector g = W_O e (so u_c . e_c = ctx_c . g_c).  With a self-attention
 * block T is n_mi x 8m, each row followed by the block's sq, sk, uk, uv
 * (E [S_Q | S_K | U_K | U_V]): still one product.  Examples only read T and
 * write its gradient dT; the step then pushes dT back through the one
 * product (attn_tr_backprop), which is why the per-example work never
 * touches d-dimensional vectors.
 */
#ifndef ATTN_TRAIN_INT_H
#define ATTN_TRAIN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "attn/eval.h"
#include "attn/model.h"
#include "attn/train.h"

/* The parameters turned into per-step tables. */
typedef struct attn_tr_net {
    const attn_model *md;  /* the parameters (borrowed) */
    int d, m, heads, dh, l_max;
    int sa_len;            /* self-attention window, 0 = none */
    int tw;                /* row width of T: 4m, or 8m with self-attention */
    int64_t n_mi;          /* model items */
    float *text;           /* n_mi x d frozen text embeddings of the model items */
    float *E;              /* n_mi x d effective embeddings */
    float *W;              /* d x tw: [W_Q | W_K | W_V | W_Oᵀ (| S_Q | S_K | U_K | U_V)] */
    float *WT;             /* tw x d: W transposed, for dE = dT Wᵀ */
    float *T;              /* n_mi x tw: [q | k | v | g (| sq | sk | uk | uv)] per item */
} attn_tr_net;

/* Offsets of the four parts within a row of T or dT, in units of m. */
enum { ATTN_TR_Q = 0, ATTN_TR_K = 1, ATTN_TR_V = 2, ATTN_TR_G = 3,
       ATTN_TR_SQ = 4, ATTN_TR_SK = 5, ATTN_TR_UK = 6, ATTN_TR_UV = 7 };

/* How the candidates of an example are chosen. */
enum attn_tr_mode {
    ATTN_TR_FULL = 0,      /* every model item (minus the history's, if masked) */
    ATTN_TR_SAMPLED = 1,   /* the target + neg uniform draws outside the user's items */
    ATTN_TR_EXPLICIT = 2,  /* given lists (tests) */
};

/* The view of the data an engine needs. */
typedef struct attn_tr_view {
    const attn_seqs *seqs;
    const int32_t *row2mi;   /* n_rows: model item of a catalog row, or -1 */
} attn_tr_view;

/* Per-thread workspace: gradient accumulators and chunk buffers. */
typedef struct attn_tr_ws attn_tr_ws;

/* Limits a workspace is sized for. */
typedef struct attn_tr_shape {
    int mode;        /* enum attn_tr_mode */
    int neg;         /* SAMPLED: negatives per example */
    int n_cand;      /* EXPLICIT: candidates per example */
    int chunk;       /* most targets per chunk */
} attn_tr_shape;

attn_tr_ws *attn_tr_ws_new(const attn_tr_net *net, const attn_tr_shape *sh);
void attn_tr_ws_free(attn_tr_ws **ws_p);

/* Gradient accumulators of a workspace (dT n_mi x tw, dbias n_mi, dpos
 * l_max, dsa_pos sa_len) and its summed loss; attn_tr_ws_zero clears them. */
float *attn_tr_ws_dT(attn_tr_ws *ws);
float *attn_tr_ws_dbias(attn_tr_ws *ws);
float *attn_tr_ws_dpos(attn_tr_ws *ws);
float *attn_tr_ws_dsa_pos(attn_tr_ws *ws);
double attn_tr_ws_loss(const attn_tr_ws *ws);
void attn_tr_ws_zero(attn_tr_ws *ws);

/* One chunk: user u's targets t0..t1-1 (1 <= t0 < t1).  Adds the loss of
 * each example (times loss_scale) to the accumulators.  rng_seed and epoch
 * seed the per-example draws (negatives, dropout); cand is the EXPLICIT
 * lists, (t1 - t0) x n_cand.  Returns ATTN_OK or ATTN_ERANGE (a non-finite
 * score). */
typedef struct attn_tr_chunk {
    uint32_t u, t0, t1;
} attn_tr_chunk;

typedef struct attn_tr_run {
    int mode;
    int neg;
    int mask;          /* enum attn_train_mask (FULL) */
    double dropout;
    uint64_t seed;
    uint64_t epoch;
    float loss_scale;
    int use_item_bias;
    const uint32_t *cand;   /* EXPLICIT */
    int n_cand;
} attn_tr_run;

int attn_tr_chunk_run(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                      const attn_tr_chunk *ch, const attn_tr_run *run);

/* ---- tables and backprop (train_net.c) ---- */

/* Allocate the net for md's shapes over the model items' text (rows
 * mi2row[0..n_mi) of emb).  NULL on out-of-memory. */
attn_tr_net *attn_tr_net_new(const attn_model *md, const float *emb, size_t ld,
                             const uint32_t *mi2row);
void attn_tr_net_free(attn_tr_net **net_p);

/* Recompute E, W and T from net->md, splitting rows over threads. */
void attn_tr_net_tables(attn_tr_net *net, int threads);

/* Push dT back through T = E W: fills grad->wq, wk, wv, wo (and residual,
 * if grad has one; sa_q, sa_k, sa_uk, sa_uv with a block) from dT;
 * grad->item_bias, pos_bias and sa_pos are copied from dbias, dpos and
 * dsa_pos.  threads split rows; partial sums are added in a fixed
 * order.  Returns ATTN_OK or ATTN_ENOMEM. */
int attn_tr_backprop(const attn_tr_net *net, const float *dT, const float *dbias,
                     const float *dpos, const float *dsa_pos, attn_model *grad, int threads);

/* Run fn(arg, i) for i in [0, n) on n threads (the caller is thread 0);
 * if a thread cannot be started its share runs on the caller, so the
 * results never depend on it. */
void attn_tr_par(int n, void (*fn)(void *arg, int i), void *arg);

/* ---- optimizer (train_opt.c) ---- */

typedef struct attn_tr_adam {
    attn_model *m1, *m2;     /* first and second moments, shaped like the model */
    uint64_t t;              /* steps taken */
} attn_tr_adam;

int attn_tr_adam_init(attn_tr_adam *a, const attn_model *md);
void attn_tr_adam_free(attn_tr_adam *a);

/* avg = decay avg + (1 - decay) md, array by array (same shapes). */
void attn_tr_ema(attn_model *avg, const attn_model *md, double decay);

/* Global L2 norm of every gradient array in grad (double accumulation). */
double attn_tr_grad_norm(const attn_model *grad);

/* One AdamW step on md with grad scaled by gscale; wd applies to the
 * matrices and the residual, not to the biases. */
void attn_tr_adam_step(attn_tr_adam *a, attn_model *md, const attn_model *grad,
                       double gscale, double lr, double beta1, double beta2, double wd);

#endif
