/* eval_pair.h -- attnctl eval --models: the model versions' per-user
 * results and their paired differences.
 *
 *     cmd_eval_pair *p = cmd_eval_pair_new(2, n_users, versions);
 *     for each protocol, seed and model k:
 *         attn_eval_run_users(..., cmd_eval_pair_hr(p), cmd_eval_pair_ndcg(p));
 *         cmd_eval_pair_add(p, protocol, k);
 *     cmd_eval_pair_print(p);                 // model k - model 0, k >= 1
 *     cmd_eval_pair_free(&p);
 *
 * Every model is scored on the same users with the same candidates (the
 * evaluator's draws depend on the seed and the user only), so user u's
 * difference b_u - a_u removes what is hard about u for both; the mean
 * difference gets the normal interval over users (attn_ab_paired), a
 * paired t interval in all but name at the hundreds of users a split has.
 * Under the sampled protocol a user's value is the mean over the seeds.
 */
#ifndef CMD_EVAL_PAIR_H
#define CMD_EVAL_PAIR_H

#include <stdint.h>

typedef struct cmd_eval_pair cmd_eval_pair;

/* n_models (2..) versions over n_users sequences; NULL on out-of-memory. */
cmd_eval_pair *cmd_eval_pair_new(int n_models, uint32_t n_users, const int64_t *versions);
void cmd_eval_pair_free(cmd_eval_pair **p);

/* The buffers one attn_eval_run_users fills, n_users each. */
double *cmd_eval_pair_hr(cmd_eval_pair *p);
double *cmd_eval_pair_ndcg(cmd_eval_pair *p);

/* Add the buffers to model k's sums under protocol (0 sampled, 1 full). */
void cmd_eval_pair_add(cmd_eval_pair *p, int protocol, int k);

/* The difference of model k (>= 1) to model 0 under protocol, metric 0
 * HR@10 or 1 NDCG@10: mean, its 95% interval, and the users paired. */
typedef struct cmd_eval_diff {
    double mean, lo, hi;
    int users;
} cmd_eval_diff;

cmd_eval_diff cmd_eval_pair_diff(const cmd_eval_pair *p, int protocol, int k, int metric);

/* A table on stdout; or, for --json, the members of a "paired" array. */
void cmd_eval_pair_print(const cmd_eval_pair *p);
void cmd_eval_pair_json(const cmd_eval_pair *p);

#endif
