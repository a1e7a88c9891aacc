/* push.h -- copying histories from an attnd database into Redis, and
 * checking the copy (`attnctl history push|check`).
 *
 *     store_hist_push_opts o = {.db = "demo.db", .urls = "redis://127.0.0.1:6379",
 *                               .prefix = "attn:", .trim = 1000, .connect_ms = 1000,
 *                               .timeout_ms = 10000, .batch_users = 2000};
 *     store_hist_push_stats st;  store_err err;
 *     if (store_hist_push(&o, &st, &err) != STORE_OK)   // rerun: it resumes
 *         die("%s", err.msg);
 *     store_hist_check_stats ck;
 *     store_hist_check("demo.db", &redis_opts, 200, 7, &ck, &err);  // ck.differ == 0
 *
 * Each user's Redis history is replaced by their newest `trim` events from
 * the database (and the ids of those that have one), one MULTI/EXEC per
 * user, pipelined: batch_users users per round on every node at once.
 * Progress is kept in Redis itself (PREFIX "push" hash, field = the
 * database's real path, value = the last user_id a finished round
 * covered), so an interrupted push continues where it stopped; a finished
 * one is not repeated unless asked (restart).  Users go in descending
 * user_id, the order the interactions' primary key walks without a sort.
 */
#ifndef STORE_HIST_PUSH_H
#define STORE_HIST_PUSH_H

#include <stdint.h>

#include "store/hist/hist.h"

typedef struct store_hist_push_stats {
    int64_t users_total;     /* users with events in the database */
    int64_t users, events;   /* copied by this run */
    int64_t resumed;         /* users an earlier run had copied (skipped) */
    double seconds;          /* this run's time so far */
    int done;                /* every user is copied (by this run or earlier ones) */
    int already;             /* a previous run had finished: nothing was copied */
} store_hist_push_stats;

typedef struct store_hist_push_opts {
    const char *db;
    const char *urls;        /* as history.redis */
    const char *prefix;      /* as history.prefix */
    int trim;                /* newest events copied per user, as history.trim */
    int ttl_s;               /* as history.ttl; 0 = none */
    int connect_ms, timeout_ms;
    int batch_users;         /* users per pipelined round */
    int restart;             /* ignore an earlier run's progress */
    void (*progress)(void *ctx, const store_hist_push_stats *st);   /* after each round */
    void *ctx;
} store_hist_push_opts;

int store_hist_push(const store_hist_push_opts *o, store_hist_push_stats *st, store_err *err);

typedef struct store_hist_check_stats {
    int users;               /* compared */
    int differ;              /* whose histories differ */
    char first[600];         /* the first difference, described */
} store_hist_check_stats;

/* Compare the newest ro->trim events of `sample` users drawn from the
 * database (seeded) with what the Redis backend reads for them. */
int store_hist_check(const char *db, const store_hist_redis_opts *ro, int sample, uint64_t seed,
                     store_hist_check_stats *st, store_err *err);

#endif
