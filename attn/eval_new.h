/* eval_new.h -- ranking quality on items a model never saw.
 *
 *     uint8_t *fresh = ...;                  // n_rows flags: the held-out items
 *     attn_eval_new_train t;                 // what a model trained before them saw
 *     attn_eval_new_train_make(&seqs, fresh, &t);
 *     attn_eval_base *b = attn_eval_base_new(&t.seqs, emb, d, d, NULL);
 *     attn_eval_new_opts o;
 *     attn_eval_new_defaults(&o);            // sampled, 100 negatives, k 10
 *     attn_eval_new_result r;
 *     attn_eval_new_run(&seqs, fresh, &o, attn_eval_popularity, b, &r);
 *     printf("NDCG@10 %.3f over %llu events\n", r.ndcg, (unsigned long long)r.queries);
 *
 * Every event whose item is flagged fresh is a query: its history is every
 * event of the user before it (time order, newest first, as serving gives
 * it), and it needs at least one.  The target is ranked among
 *   sampled  n_neg rows drawn uniformly, without replacement, from the rows
 *            the user never interacted with (fresh or not);
 *   full     every row but the history's;
 *   fresh    every fresh row but the history's: which of the new items.
 * Ranks, HR@k and NDCG@k are eval.h's (pessimistic ties); the means are
 * over queries.  The scorers are eval.h's callbacks, so the baselines and
 * the served model see the same queries and candidates.
 */
#ifndef ATTN_EVAL_NEW_H
#define ATTN_EVAL_NEW_H

#include <stdint.h>
#include "attn/eval.h"

enum attn_eval_new_protocol {
    ATTN_EVAL_NEW_SAMPLED = 0,
    ATTN_EVAL_NEW_FULL = 1,
    ATTN_EVAL_NEW_FRESH = 2,
};

typedef struct attn_eval_new_opts {
    int protocol;     /* enum attn_eval_new_protocol */
    int n_neg;        /* sampled: negatives per query, default 100 */
    uint64_t seed;    /* sampled: which negatives */
    int k;            /* cut-off, default 10 */
} attn_eval_new_opts;

void attn_eval_new_defaults(attn_eval_new_opts *o);

typedef struct attn_eval_new_result {
    double hr, ndcg;        /* means over the queries */
    uint64_t queries;       /* events of fresh items ranked */
    uint32_t users;         /* users with at least one query */
    uint64_t no_history;    /* events of fresh items that were a user's first: skipped */
    uint64_t short_neg;     /* sampled: queries with fewer unseen rows than n_neg */
} attn_eval_new_result;

/* Rank every fresh event of s (fresh: n_rows flags).  ATTN_OK, ATTN_EINVAL
 * (bad seqs or options), ATTN_ENOMEM, ATTN_ERANGE (a non-finite score) or
 * the scorer's error. */
int attn_eval_new_run(const attn_seqs *s, const uint8_t *fresh, const attn_eval_new_opts *o,
                      attn_eval_fn fn, void *ctx, attn_eval_new_result *out);

/* s without the events of fresh rows: the data of a model trained before
 * they arrived, for the baselines to learn from.  Owned arrays. */
typedef struct attn_eval_new_train {
    attn_seqs seqs;           /* points into the arrays below; refit 0 */
    uint64_t *off;
    uint32_t *row;
    float *weight;            /* NULL when s has none */
} attn_eval_new_train;

int attn_eval_new_train_make(const attn_seqs *s, const uint8_t *fresh, attn_eval_new_train *out);
void attn_eval_new_train_free(attn_eval_new_train *t);   /* accepts a zeroed struct */

#endif
