/* train_run.h -- the state of one training run, shared by train.c (the
 * outline), train_plan.c (everything sized before the first step) and
 * train_epoch.c (epochs, steps, schedule, keep-best).  Internal.
 */
#ifndef ATTN_TRAIN_RUN_H
#define ATTN_TRAIN_RUN_H

#include "attn/train_int.h"

typedef struct attn_tr_state {
    const attn_train_data *data;  /* the caller's data, seqs.refit as the options say */
    const attn_train_opts *o;
    attn_train_progress_fn progress;
    void *pctx;
    attn_train_report *rep;
    char *why;
    size_t why_len;
    double t_start;               /* monotonic seconds at the start */
    /* the plan (train_plan.c) */
    int32_t *row2mi;              /* n_rows: model item of a catalog row, or -1 */
    uint32_t *mi2row;             /* n_mi */
    int64_t n_mi;
    attn_tr_chunk *chunks;        /* every chunk of every user */
    size_t n_chunks;
    uint64_t examples;
    int64_t *param_index;         /* n_rows: row2mi widened, for validation */
    attn_model *md;               /* the parameters */
    attn_model *ema;              /* their moving average, or NULL */
    attn_model *best;             /* the kept epoch's, or NULL */
    attn_tr_adam adam;
    attn_tr_grad grad;
    attn_tr_set set;
    attn_tr_net *net;
    attn_tr_ws *ws[ATTN_TR_MAX_THREADS];
    int threads;
    attn_tr_view view;
    attn_tr_run run;
    /* the epoch */
    attn_tr_chunk *order;         /* n_chunks, shuffled */
    int *owner;                   /* thread of each chunk of the batch */
    size_t b0, b1;                /* the batch: order[b0, b1) */
    int status[ATTN_TR_MAX_THREADS];
    /* the schedule */
    uint64_t step;                /* steps taken */
    double warm_steps, total_steps;  /* from the epochs' real step counts */
    double lr;                    /* the last step's rate */
    double t_warm;                /* seconds from t_start to the end of warm-up; -1 before */
    /* keep-best */
    double best_ndcg;
    int bad_epochs;
    double slowest_epoch_s;       /* the time budget's estimate of the next epoch */
} attn_tr_state;

/* train_plan.c: model items, chunks, parameters, buffers.  ATTN_OK, or
 * ATTN_EINVAL / ATTN_ENOMEM with st->why set. */
int attn_tr_plan(attn_tr_state *st);
void attn_tr_state_free(attn_tr_state *st);

/* train_epoch.c: one epoch of steps, then validation and keep-best.
 * *stop is set when training should end after it (patience, callback).
 * ATTN_OK or an error with st->why set. */
int attn_tr_epoch(attn_tr_state *st, int epoch, int *stop);

/* The model as saved: a copy with item biases centred (a constant shift
 * changes no ranking among model items, and makes zero -- what an item
 * unknown to the model gets -- the average).  NULL on out-of-memory. */
attn_model *attn_tr_export(const attn_model *md);

#endif
