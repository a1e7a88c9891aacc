/* eval_int.h -- what the evaluator's files share (internal to attn/eval*.c).
 */
#ifndef ATTN_EVAL_INT_H
#define ATTN_EVAL_INT_H

#include "attn/eval.h"

/* Transition counts by distance (eval_trans.c), up to `window` events
 * apart, over each user's training events.  NULL on out-of-memory. */
typedef struct attn_eval_trans attn_eval_trans;

attn_eval_trans *attn_eval_trans_new(const attn_seqs *s, int window);
void attn_eval_trans_free(attn_eval_trans **t_p);
int attn_eval_trans_window(const attn_eval_trans *t);

/* The transition score of every candidate of q with this window (at most
 * the built one) and decay; acc is n_rows zeros, returned zeroed. */
void attn_eval_trans_score(const attn_eval_trans *t, int window, double decay,
                           const attn_eval_query *q, double *acc, double *score);

#endif
