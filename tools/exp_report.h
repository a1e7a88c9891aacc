/* exp_report.h -- an experiment's outcome: impressions joined with the
 * events that followed them.
 *
 *     exp_report_opts o = {.db = "ml.db", .keys = keys, .n_keys = 1, .k = 10,
 *                          .window = 86400};
 *     exp_report *r;  char why[600];
 *     if (exp_report_run(&o, &r, why, sizeof why)) die(why);
 *     for (int a = 0; a < r->n_arms; a++)
 *         printf("%s %.3f\n", r->arm[a].name, r->arm[a].hit.mean);
 *     exp_report_free(&r);
 *
 * An impression counts as a hit at k when, within `window` seconds after
 * it, the user interacted with one of its items ranked in the top k; its
 * reciprocal rank is 1/r for the best-ranked such item (0 for none).  Per
 * arm: the mean over users of each user's mean over their impressions,
 * with 95% intervals, and each other arm's difference from the control
 * (attn/abtest.h says why users, not impressions, are the unit).
 *
 * Impressions carry a keyed hash of the user (util/mask.h).  They are
 * joined by hashing every user's ext_id under the keys given; impressions
 * under a key not given are counted and reported, never guessed.
 */
#ifndef TOOLS_EXP_REPORT_H
#define TOOLS_EXP_REPORT_H

#include <stdint.h>

#include "attn/abtest.h"
#include "util/mask.h"

#define EXP_ARMS_MAX 16
#define EXP_KEYS_MAX 8

typedef struct exp_report_opts {
    const char *db;
    const util_mask *keys;       /* the current key first, then older ones */
    int n_keys;
    int k;                       /* hit at k */
    int64_t window;              /* seconds after an impression */
    int64_t since;               /* impressions from this unix time on */
    const char *control;         /* the arm the others are compared with; NULL: "control",
                                    else the first arm by name */
} exp_report_opts;

typedef struct exp_arm_result {
    char name[64];               /* "(none)" for impressions without an arm */
    int64_t impressions;
    attn_ab_stat hit;            /* over users */
    attn_ab_stat rr;
    attn_ab_stat hit_diff, rr_diff;   /* this arm minus the control (zero for the control) */
} exp_arm_result;

typedef struct exp_report {
    int n_arms;
    exp_arm_result arm[EXP_ARMS_MAX];
    int control;                 /* index of the control arm */
    int64_t impressions, joined;
    int64_t unknown_key;         /* impressions under a key not given */
    char unknown_key_ids[200];   /* their key ids, comma-separated */
    int64_t unknown_user;        /* hashed under a given key, but no such user now */
} exp_report;

/* 0, or -1 with why (the database, no impressions, memory). */
int exp_report_run(const exp_report_opts *o, exp_report **out, char *why, size_t why_len);
void exp_report_free(exp_report **r_p);   /* accepts NULL */

#endif
