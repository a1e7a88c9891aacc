/* cmd_hpush.c -- 'attnctl history push|check DB redis://...': the histories
 * of a database copied into Redis for replicas (store/hist/push.h), and a
 * sample of users compared between the two.
 *
 *     attnctl history push demo.db redis://127.0.0.1:6379 --trim 1000
 *     attnctl history check demo.db redis://127.0.0.1:6379 --sample 500
 *
 * --prefix and --trim must be what the replicas' [history] section says.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/hist/push.h"
#include "tools/cmd.h"
#include "util/clock.h"
#include "util/opt.h"

typedef struct s_args {
    const char *db, *urls, *prefix;
    int trim, ttl, batch, timeout_ms, restart, quiet, sample;
    uint64_t seed;
} s_args;

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
    {"REDIS", NULL, NULL, UTIL_OPT_STR(s_args, urls)},
};

#define S_COMMON                                                                            \
    {"prefix", "P", "key prefix, as history.prefix", UTIL_OPT_STR(s_args, prefix)},        \
    {"trim", "N", "newest events per user, as history.trim",                                \
     UTIL_OPT_INT(s_args, trim, 1, 1000000)},                                               \
    {"timeout-ms", "MS", "one Redis reply, at most", UTIL_OPT_INT(s_args, timeout_ms, 1,    \
                                                                  3600000)}

static const util_opt s_push_opts[] = {
    S_COMMON,
    {"ttl", "S", "expire each user's keys after S seconds, as history.ttl (0 = never)",
     UTIL_OPT_INT(s_args, ttl, 0, 2000000000)},
    {"batch", "N", "users per pipelined round (the progress is saved after each)",
     UTIL_OPT_INT(s_args, batch, 1, 1000000)},
    {"restart", NULL, "copy everything again, ignoring an earlier run's progress",
     UTIL_OPT_FLAG(s_args, restart, 1)},
    {"quiet", NULL, "no progress line", UTIL_OPT_FLAG(s_args, quiet, 1)},
};

static const util_opt s_check_opts[] = {
    S_COMMON,
    {"sample", "N", "users compared", UTIL_OPT_INT(s_args, sample, 1, 10000000)},
    {"seed", "S", "which users", UTIL_OPT_U64(s_args, seed, 0, UINT64_MAX)},
};

static const util_opt_cmd s_push_cmd = {
    .prog = "attnctl history push",
    .about = "Copy every user's newest events (--trim) from DB into Redis, replacing what\n"
             "Redis held for them: one transaction per user, pipelined over every node.\n"
             "REDIS lists the nodes as history.redis does.  An interrupted push resumes\n"
             "where it stopped when run again; a finished one is not repeated (--restart).\n"
             "Run it before replicas record into Redis: their events would be replaced.",
    UTIL_OPT_ROWS(s_push_opts),
    UTIL_OPT_ARGS(s_pos),
};

static const util_opt_cmd s_check_cmd = {
    .prog = "attnctl history check",
    .about = "Compare the newest --trim events of a sample of DB's users with what attnd's\n"
             "Redis backend reads for them.  Exit 1 when any differ.",
    UTIL_OPT_ROWS(s_check_opts),
    UTIL_OPT_ARGS(s_pos),
};

typedef struct s_tty {
    int tty;
    double last;
} s_tty;

/* The progress line: rewritten in place on a terminal, every 2 s elsewhere. */
static void s_progress(void *ctx, const store_hist_push_stats *st)
{
    s_tty *t = ctx;
    if (!st->done && !t->tty && st->seconds - t->last < 2.0)
        return;
    t->last = st->seconds;
    double rate = st->seconds > 0 ? (double)st->events / st->seconds : 0;
    fprintf(stderr, "%shistory push: %lld/%lld users, %lld events, %.0f events/s%s",
            t->tty ? "\r" : "", (long long)(st->users + st->resumed), (long long)st->users_total,
            (long long)st->events, rate, t->tty && !st->done ? "" : "\n");
}

int cmd_history_push(int argc, char **argv)
{
    s_args a = {.prefix = "attn:", .trim = 1000, .batch = 1000, .timeout_ms = 10000};
    int rc = util_opt_main(&s_push_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    s_tty tty = {.tty = isatty(2)};
    store_hist_push_opts o = {.db = a.db, .urls = a.urls, .prefix = a.prefix, .trim = a.trim,
                              .ttl_s = a.ttl, .connect_ms = 2000, .timeout_ms = a.timeout_ms,
                              .batch_users = a.batch, .restart = a.restart,
                              .progress = a.quiet ? NULL : s_progress, .ctx = &tty};
    store_hist_push_stats st;
    store_err err;
    if (store_hist_push(&o, &st, &err) != STORE_OK) {
        if (tty.tty && !a.quiet)
            fputc('\n', stderr);
        fprintf(stderr, "attnctl history push: %s (run it again to resume)\n", err.msg);
        return 1;
    }
    if (st.already)
        printf("%s: already pushed to %s (--restart copies it again)\n", a.db, a.urls);
    else
        printf("%s: %lld users, %lld events pushed in %.2f s (%.0f events/s)%s\n", a.db,
               (long long)st.users, (long long)st.events, st.seconds,
               st.seconds > 0 ? (double)st.events / st.seconds : 0.0,
               st.resumed ? ", resumed" : "");
    return 0;
}

int cmd_history_check(int argc, char **argv)
{
    s_args a = {.prefix = "attn:", .trim = 1000, .timeout_ms = 2000, .sample = 200, .seed = 1};
    int rc = util_opt_main(&s_check_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    store_hist_redis_opts ro = {.urls = a.urls, .prefix = a.prefix, .connect_ms = 2000,
                                .timeout_ms = a.timeout_ms, .retry_ms = 0, .trim = a.trim};
    store_hist_check_stats st;
    store_err err;
    if (store_hist_check(a.db, &ro, a.sample, a.seed, &st, &err) != STORE_OK) {
        fprintf(stderr, "attnctl history check: %s\n", err.msg);
        return 1;
    }
    printf("%s: %d users compared with %s, %d differ\n", a.db, st.users, a.urls, st.differ);
    if (st.differ)
        printf("  %s\n", st.first);
    return st.differ ? 1 : 0;
}
