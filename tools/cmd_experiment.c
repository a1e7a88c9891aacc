/* cmd_experiment.c -- 'attnctl experiment report DB': how each arm of an
 * experiment did, from the impressions attnd logged and the events that
 * followed them (tools/exp_report.h computes; this prints).
 */
#include <stdio.h>
#include <string.h>

#include "tools/cmd.h"
#include "tools/exp_report.h"
#include "util/opt.h"

typedef struct s_keys {
    const char *path[EXP_KEYS_MAX];
    int n;
} s_keys;

typedef struct s_args {
    int what;                   /* 0: report (the only one so far) */
    const char *db;
    const char *key;
    s_keys old;
    const char *control;
    int k;
    int64_t window;
    int64_t since;
    int json;
} s_args;

static int s_old_key(void *field, const char *value, char *why, size_t why_len)
{
    s_keys *k = field;
    if (k->n == EXP_KEYS_MAX - 1) {
        snprintf(why, why_len, "at most %d old keys", EXP_KEYS_MAX - 1);
        return -1;
    }
    k->path[k->n++] = value;
    return 0;
}

static const char *const s_whats[] = {"report", NULL};

static const util_opt s_pos[] = {
    {"report", NULL, NULL, UTIL_OPT_ENUM(s_args, what, s_whats, NULL)},
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
};

static const util_opt s_opts[] = {
    {"key", "FILE", "the mask key attnd hashes users with (security.mask_key)",
     UTIL_OPT_STR(s_args, key), .def = "none: impressions logged unmasked only"},
    {"old-key", "FILE", "a key used earlier in the experiment (repeatable)",
     UTIL_OPT_CALL(s_args, old, s_old_key), .def = ""},
    {"k", "K", "an impression is a hit when a top-K item is touched",
     UTIL_OPT_INT(s_args, k, 1, 1000)},
    {"window", "SECONDS", "how long after an impression its events count",
     UTIL_OPT_I64(s_args, window, 1, INT64_C(31536000))},
    {"since", "UNIX", "impressions from this time on", UTIL_OPT_I64(s_args, since, 0, INT64_MAX)},
    {"control", "ARM", "the arm the others are compared with (default: control)",
     UTIL_OPT_STR(s_args, control), .def = ""},
    {"json", NULL, "one JSON object instead of the table", UTIL_OPT_FLAG(s_args, json, 1)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl experiment",
    .about = "Per arm of an experiment: hit rate at K and MRR of the impressions attnd logged\n"
             "(experiment.log_impressions), against the events each user had within the\n"
             "window after, with 95% intervals over users and each arm's difference from\n"
             "the control.  docs/OPERATIONS.md explains how to read it.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
};

static void s_stat_json(const char *key, const attn_ab_stat *s)
{
    printf("\"%s\":{\"mean\":%.6f,\"lo\":%.6f,\"hi\":%.6f}", key, s->mean, s->lo, s->hi);
}

static void s_print_json(const exp_report *r)
{
    printf("{\"impressions\":%lld,\"joined\":%lld,\"unknown_key\":%lld,\"unknown_user\":%lld,"
           "\"control\":\"%s\",\"arms\":[", (long long)r->impressions, (long long)r->joined,
           (long long)r->unknown_key, (long long)r->unknown_user, r->arm[r->control].name);
    for (int a = 0; a < r->n_arms; a++) {
        const exp_arm_result *x = &r->arm[a];
        printf("%s{\"arm\":\"%s\",\"impressions\":%lld,\"users\":%d,", a ? "," : "", x->name,
               (long long)x->impressions, x->hit.n);
        s_stat_json("hit", &x->hit);
        printf(",");
        s_stat_json("mrr", &x->rr);
        printf(",");
        s_stat_json("hit_diff", &x->hit_diff);
        printf(",");
        s_stat_json("mrr_diff", &x->rr_diff);
        printf("}");
    }
    printf("]}\n");
}

static const char *s_verdict(const attn_ab_stat *d)
{
    return d->lo > 0 ? "better" : d->hi < 0 ? "worse" : "no difference shown";
}

static void s_print(const exp_report *r, const s_args *a)
{
    printf("%-14s %8s %6s  %-26s %-26s\n", "arm", "impr.", "users", "hit@k [95% CI]",
           "MRR [95% CI]");
    for (int i = 0; i < r->n_arms; i++) {
        const exp_arm_result *x = &r->arm[i];
        printf("%-14s %8lld %6d  %.4f [%.4f, %.4f]   %.4f [%.4f, %.4f]\n", x->name,
               (long long)x->impressions, x->hit.n, x->hit.mean, x->hit.lo, x->hit.hi,
               x->rr.mean, x->rr.lo, x->rr.hi);
    }
    const exp_arm_result *c = &r->arm[r->control];
    for (int i = 0; i < r->n_arms; i++) {
        const exp_arm_result *x = &r->arm[i];
        if (i == r->control)
            continue;
        printf("%s - %s: hit@%d %+.4f [%+.4f, %+.4f] (%s), MRR %+.4f [%+.4f, %+.4f] (%s)\n",
               x->name, c->name, a->k, x->hit_diff.mean, x->hit_diff.lo, x->hit_diff.hi,
               s_verdict(&x->hit_diff), x->rr_diff.mean, x->rr_diff.lo, x->rr_diff.hi,
               s_verdict(&x->rr_diff));
    }
    printf("impressions %lld, joined %lld", (long long)r->impressions, (long long)r->joined);
    if (r->unknown_user)
        printf(", %lld of users no longer in the database", (long long)r->unknown_user);
    printf("\n");
    if (r->unknown_key)
        printf("not joined: %lld impressions hashed under key %s, which was not given "
               "(--old-key FILE)\n", (long long)r->unknown_key, r->unknown_key_ids);
}

int cmd_experiment(int argc, char **argv)
{
    s_args a = {.k = 10, .window = 86400};
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    util_mask keys[EXP_KEYS_MAX];
    int n = 0;
    char why[600];
    const char *paths[EXP_KEYS_MAX];
    if (a.key)
        paths[n++] = a.key;
    for (int i = 0; i < a.old.n; i++)
        paths[n++] = a.old.path[i];
    for (int i = 0; i < n; i++)
        if (util_mask_load(&keys[i], paths[i], why, sizeof why)) {
            fprintf(stderr, "attnctl experiment: %s\n", why);
            return 1;
        }
    exp_report_opts o = {.db = a.db, .keys = keys, .n_keys = n, .k = a.k, .window = a.window,
                         .since = a.since, .control = a.control};
    exp_report *r;
    if (exp_report_run(&o, &r, why, sizeof why)) {
        fprintf(stderr, "attnctl experiment: %s\n", why);
        return 1;
    }
    if (a.json)
        s_print_json(r);
    else
        s_print(r, &a);
    exp_report_free(&r);
    return 0;
}
