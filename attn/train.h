/* train.h -- learning a model version: next-item prediction over histories.
 *
 *     attn_train_data data = {.emb = cat->emb, .n_rows = cat->n, .ld = d, .d = d,
 *                             .item_id = cat->item_id, .seqs = ds->seqs};
 *     attn_train_opts o;
 *     attn_train_defaults(&o, d);
 *     o.epochs = 30;
 *     attn_model *md;
 *     attn_train_report rep;
 *     char why[256];
 *     if (attn_train(&data, &o, on_progress, ctx, &md, &rep, why, sizeof why) != ATTN_OK)
 *         die("%s", why);
 *     store_model_save(db, md, config, metrics, 0, &version, &err);
 *     attn_model_free(&md);
 *
 * The task (docs/TRAINING.md): every user's events in chronological order
 * (attn_seqs; ties in time by item id, as served), the last two held out
 * (validation and test targets, attn/eval.h; only the last with refit), and
 * every other event t >= 1 is a training example: predict it from the l_max
 * events before it, newest first, scored exactly as the daemon scores
 * (docs/MODEL.md):
 *
 *   z[h][c][j] = scale (e_c W_Q)_h . (e_j W_K')_h + pos_bias[j] + log w_j
 *   score_c    = sum_h sum_j softmax_j(z[h][c][:]) (e_j W_V')_h . (e_c W_Oᵀ)_h + bias_c
 *
 * with e_i = text_i + residual_i, and e_j W_K', e_j W_V' the history event's
 * key and value after the self-attention block over its sa_len - 1
 * predecessors (docs/MODEL.md §2.1; plain e_j W_K, e_j W_V without one).
 * The loss is the softmax cross-entropy of the true next item among the
 * candidates: every item of the model (full softmax), or `neg` items drawn
 * uniformly per step and shared by its examples, with the step's targets
 * (sampled softmax, the draws weighted to stand for the rest of the
 * catalog).  AdamW with linear warm-up then a half cosine (or a constant
 * rate), global gradient-norm clipping,
 * decoupled weight decay on the matrices and residuals, dropout of history
 * events; early stopping on the validation split's NDCG@10, scored through
 * the served fast path.
 *
 * The model's items are those that occur in training data; the others keep
 * their text embedding and a zero bias (item biases are centred so that
 * zero is the average item).  Text embeddings are never changed; an item
 * whose text vector is zero (no text) starts with a random residual, its
 * learned vector.
 *
 * Threads: each batch is split into fixed per-thread shares and the
 * gradients are summed in thread order, so a run is a function of (data,
 * options) -- same seed and thread count, same bits.  No BLAS: the trainer's
 * products are skinny and run one per thread, on its own vector loops
 * (attn_train_kernel_name says which set this CPU got).
 */
#ifndef ATTN_TRAIN_H
#define ATTN_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include "attn/eval.h"
#include "attn/model.h"

/* What the trainer learns from.  Borrowed for the call. */
typedef struct attn_train_data {
    const float *emb;        /* n_rows x d text embeddings, row stride ld */
    size_t n_rows;           /* catalog rows */
    size_t ld;
    int d;
    const int64_t *item_id;  /* n_rows, strictly ascending: row r holds item_id[r] */
    attn_seqs seqs;          /* every user's events as rows (seqs.n_rows == n_rows) */
} attn_train_data;

/* Items left out of an example's candidates, full or sampled (the target
 * never is). */
enum attn_train_mask {
    ATTN_TRAIN_MASK_NONE = 0,     /* every model item is a candidate */
    ATTN_TRAIN_MASK_HISTORY = 1,  /* not the items of the example's history */
    ATTN_TRAIN_MASK_USER = 2,     /* not any item of the user's training data */
};

typedef struct attn_train_opts {
    int epochs;            /* most passes over the data (default 40) */
    int m;                 /* attention width (default d) */
    int heads;             /* default 2 */
    int l_max;             /* history events used per prediction (default 50) */
    double lr;             /* peak learning rate (default 3e-3) */
    double warmup;         /* warm-up, in epochs (default 1) */
    int cosine;            /* after warm-up, decay the rate along a half cosine
                              to 0 at the last epoch or at the end of the
                              time budget, whichever comes first (default 1;
                              0: constant) */
    double ema;            /* if > 0, validate and keep an exponential moving
                              average of the weights, this decay per step
                              (Polyak averaging; default 0 = off) */
    double weight_decay;   /* decoupled, on W_* and residuals (default 0.01) */
    double clip;           /* global gradient-norm clip, 0 = none (default 5) */
    double dropout;        /* probability of dropping a history event (default 0.05) */
    double beta1, beta2;   /* Adam moments (0.9, 0.98) */
    int batch;             /* examples per step (default 256) */
    int neg;               /* sampled negatives shared by each step's examples
                              (default 1024); 0 (or at least the model's
                              items) = full softmax */
    int mask;              /* which of the user's items are not
                              negatives (enum attn_train_mask; default HISTORY) */
    int residual;          /* learn the per-item residual (default 1) */
    int item_bias;         /* learn the item bias (default 1) */
    uint64_t seed;         /* initialisation, order, negatives, dropout (default 1) */
    int threads;           /* default 2 */
    int patience;          /* stop after this many epochs without a better
                              validation NDCG@10 (on the cosine, counting
                              only epochs past its midpoint); 0 = never
                              (default 5) */
    int val_protocol;      /* ATTN_EVAL_FULL (default) or ATTN_EVAL_SAMPLED */
    uint32_t val_users;    /* validate on about this many users (a fixed
                              sample, attn_eval_opts.max_users); 0 = all,
                              unless users x catalog rows > 2e8: then
                              2e8 / rows of them (at least 1000) */
    int refit;             /* train on the validation targets too, exactly
                              `epochs` epochs, no validation (needs patience
                              0): the final fit once a run with validation
                              has chosen the options (default 0) */
    int chunk;             /* most targets of one user processed together (64) */
    int sa_len;            /* history self-attention window (events, the event
                              itself included), 0 = no block (default 16) */
    int ffn;               /* width of a feed-forward layer on the block's
                              [k' | v'] rows, a multiple of 16; 0 = none
                              (default 0; needs the block) */
    double ffn_dropout;    /* probability of dropping each of its hidden units
                              in training (default 0.2) */
    double time_budget;    /* seconds: no epoch is started that, at the pace of
                              the slowest so far, would end past this; 0 = no
                              limit; refit ignores it (default 1500) */
} attn_train_opts;

void attn_train_defaults(attn_train_opts *o, int d);

/* Check options against the data's dimension: ATTN_OK or ATTN_EINVAL with a
 * one-line reason naming the option. */
int attn_train_check_opts(const attn_train_opts *o, int d, char *why, size_t why_len);

/* Passed to the progress callback after every step and at the end of
 * every epoch (end_of_epoch = 1, with the validation metrics). */
typedef struct attn_train_progress {
    int epoch;              /* 1-based */
    int epochs;             /* the most there will be */
    int end_of_epoch;
    uint64_t step, steps;   /* steps done in this epoch / per epoch */
    double loss;            /* mean training loss so far in this epoch */
    double lr;              /* the learning rate of the last step */
    double val_hr, val_ndcg;   /* end of epoch: validation HR@10 / NDCG@10 */
    double best_ndcg;       /* best validation NDCG@10 so far */
    int best_epoch;
    double examples_per_s;  /* training throughput of this epoch */
    double elapsed_s;       /* since training started */
    double eta_s;           /* estimate of the time left if no early stop */
} attn_train_progress;

/* Return nonzero to stop training (the best model so far is returned). */
typedef int (*attn_train_progress_fn)(void *ctx, const attn_train_progress *p);

typedef struct attn_train_report {
    uint32_t users;          /* users with at least one training example */
    uint32_t users_single;   /* users with exactly one event: skipped */
    uint32_t users_short;    /* users with 2-3 events (2 with refit): no training example */
    uint64_t examples;       /* training examples per epoch */
    int64_t items;           /* items in the model (occur in training data) */
    int epochs_run;
    int best_epoch;          /* the returned model's epoch (0: initial) */
    double val_hr, val_ndcg; /* its validation metrics */
    uint32_t val_users;      /* users in the validation split */
    double loss;             /* mean training loss of its epoch */
    double seconds;          /* wall time of training */
    int stopped;             /* 1 if the callback stopped training */
    int out_of_time;         /* 1 if the time budget ended training */
} attn_train_report;

/* Train a model.  *out gets a new model (free with attn_model_free): the
 * best epoch's parameters by validation NDCG@10, version 0 (the store
 * numbers it), item_ids the items of training data.  A step costs its own
 * examples and candidates, not the catalog, once negatives are sampled.  Returns ATTN_OK, or
 * ATTN_EINVAL with a reason in why (options; too few interactions: no
 * training example or no validation target), ATTN_ENOMEM, ATTN_ERANGE (the
 * loss diverged to a non-finite value; try a lower lr). */
int attn_train(const attn_train_data *data, const attn_train_opts *o,
               attn_train_progress_fn progress, void *ctx, attn_model **out,
               attn_train_report *rep, char *why, size_t why_len);

/* The trainer's vector loops on this CPU: "avx512", "avx2" or "generic".
 * Borrowed string. */
const char *attn_train_kernel_name(void);

/* ---- exposed for tests -----------------------------------------------------
 * The loss (summed over examples, not averaged) and its gradient with
 * respect to every parameter of md, for the examples (user u, target
 * position t) listed, with no dropout.  md holds the model's items
 * (item_ids, item_bias, residual may be NULL); every event of those users
 * up to t must be a model item.  Candidates: every model item (mask as in
 * opts) or, if cand is not NULL, cand[e * n_cand ...] (model item indexes,
 * the true item first, repeats counted) for example e.  grad has md's shapes
 * (attn_model_new with a residual if md has one) and is overwritten.
 * Returns ATTN_OK, ATTN_EINVAL or ATTN_ENOMEM. */
typedef struct attn_train_example {
    uint32_t user;
    uint32_t t;
} attn_train_example;

int attn_train_grad(const attn_train_data *data, const attn_model *md,
                    const attn_train_example *ex, int n_ex, const uint32_t *cand, int n_cand,
                    int mask, double *loss, attn_model *grad);

#endif
