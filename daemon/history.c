/* history.c -- see history.h. */
#include "daemon/history.h"

#include <stdio.h>

#include "daemon/log.h"

/* The sqlite backend over a snapshot would read no histories (a reader)
 * or write them into a file meant to be replaced (the writer). */
static int s_refuse_snapshot(const srv_config *cfg, char *why, size_t why_len)
{
    store *db;
    store_err err;
    if (store_open(&db, cfg->db, STORE_READONLY, cfg->busy_timeout_ms, &err) != STORE_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return -1;
    }
    int snap = store_is_snapshot(db);
    store_close(&db);
    if (snap) {
        snprintf(why, why_len, "%s is a snapshot (no histories): serve it with "
                 "history.backend = redis", cfg->db);
        return -1;
    }
    return 0;
}

static int s_open_redis(const srv_config *cfg, int writable, store_hist **out, char *why,
                        size_t why_len)
{
    store_hist_redis_opts o = {.urls = cfg->hist_redis, .prefix = cfg->hist_prefix,
                               .connect_ms = cfg->hist_connect_ms,
                               .timeout_ms = cfg->hist_timeout_ms,
                               .retry_ms = cfg->hist_retry_ms, .trim = cfg->hist_trim,
                               .ttl_s = cfg->hist_ttl, .writable = writable};
    store_err err;
    if (store_hist_redis_open(out, &o, &err) != STORE_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return -1;
    }
    /* A node down at start is not fatal -- replicas may start before
     * Redis, and a lost node costs only its users -- but it is said once. */
    if (writable && store_hist_redis_ping(*out, &err) != STORE_OK)
        srv_log(SRV_WARN, "msg=\"history backend redis: a node does not answer yet; its "
                "users get unavailable until it does\" reason=\"%s\"", err.msg);
    return 0;
}

int srv_history_open(const srv_config *cfg, int writable, store_hist **out, char *why,
                     size_t why_len)
{
    if (cfg->hist_backend == CFG_HIST_REDIS)
        return s_open_redis(cfg, writable, out, why, why_len);
    if (s_refuse_snapshot(cfg, why, why_len))
        return -1;
    store_hist_sqlite_opts o = {.path = cfg->db, .busy_ms = cfg->busy_timeout_ms,
                                .writable = writable,
                                .synchronous_full = cfg->record_synchronous == CFG_SYNC_FULL,
                                .checkpoint_pages = cfg->record_checkpoint_pages,
                                .checkpoint_idle = cfg->record_priority == CFG_PRIORITY_IDLE,
                                .cache_kib = writable ? 65536 : 0};
    store_err err;
    if (store_hist_sqlite_open(out, &o, &err) != STORE_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return -1;
    }
    return 0;
}
