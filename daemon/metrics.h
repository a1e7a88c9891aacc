/* metrics.h -- counters and latency histograms, per worker and for the server.
 *
 * Each worker records into its own srv_wstats under its own mutex (never
 * contended except when metrics are collected), so the hot path shares no
 * cache line with other workers.  The main thread's counters are atomics.
 * srv_metrics_collect() merges everything into one view that both the
 * periodic logfmt line and the `stats` op render.
 */
#ifndef DAEMON_METRICS_H
#define DAEMON_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "util/hist.h"
#include "daemon/experiment.h"
#include "daemon/proto.h"

#define SRV_OPS_MAX 16   /* rows the op table may grow to (ops.c checks) */

enum srv_stage {
    SRV_STAGE_PARSE,    /* UTF-8 check, JSON parse, validation */
    SRV_STAGE_HISTORY,  /* user lookup, history query, id mapping */
    SRV_STAGE_SCORE,    /* attention scoring and top-k */
    SRV_STAGE_ENCODE,   /* titles and reply JSON */
    SRV_STAGE_TOTAL,    /* receive by the server to reply sent by the worker */
    SRV_STAGE_COUNT
};

/* An experiment arm's share: its requests, fallbacks and total latency. */
typedef struct srv_arm_stats {
    uint64_t requests;
    uint64_t fallbacks;
    util_hist total;                     /* nanoseconds, receive to reply */
} srv_arm_stats;

typedef struct srv_wstats {
    pthread_mutex_t lock;
    uint64_t ops[SRV_OPS_MAX];           /* requests by op, by table row (parsed ones) */
    uint64_t errors[SRV_CODE_COUNT];     /* error replies by code */
    uint64_t fallbacks;                  /* rank replies that used the popularity prior */
    util_hist stage[SRV_STAGE_COUNT];    /* nanoseconds */
    srv_arm_stats arm[SRV_ARMS_MAX];     /* by experiment arm */
} srv_wstats;

typedef struct srv_counters {
    atomic_uint_fast64_t errors[SRV_CODE_COUNT];  /* error replies sent by the main thread */
    atomic_uint_fast64_t received;                /* messages read from the socket */
    atomic_uint_fast64_t replied;                 /* replies written to the socket */
    atomic_uint_fast64_t dropped;                 /* replies dropped: the client's queue was
                                                     full (it does not read) */
    atomic_uint_fast64_t unroutable;              /* replies to a client that had gone */
    atomic_int in_flight;                         /* received, not yet replied */
    atomic_int queued;                            /* waiting for a worker */
    atomic_uint_fast64_t reloads, reload_failures;
    atomic_uint_fast64_t qps_milli;               /* replies/s x 1000, over the last 10 s */
} srv_counters;

typedef struct srv_metrics_view {
    double uptime_s;
    double qps;
    uint64_t received, replied, dropped, unroutable;
    uint64_t ops[SRV_OPS_MAX];
    uint64_t errors[SRV_CODE_COUNT];
    uint64_t fallbacks, reloads, reload_failures;
    int in_flight, queued;
    util_hist stage[SRV_STAGE_COUNT];
    srv_arm_stats arm[SRV_ARMS_MAX];
    uint64_t rss_bytes;
    uint64_t jemalloc_allocated;   /* 0 without jemalloc (sanitizer builds) */
    int64_t model_version, catalog_version;
    uint32_t items;
} srv_metrics_view;

void srv_wstats_init(srv_wstats *ws);
void srv_wstats_destroy(srv_wstats *ws);

/* Merge n worker stats and the counters into view (uptime, versions and
 * items are left for the caller). */
void srv_metrics_collect(srv_metrics_view *view, srv_wstats *const *ws, int n,
                         srv_counters *counters);

/* view minus an earlier view, for per-interval quantiles. */
void srv_metrics_interval(srv_metrics_view *out, const srv_metrics_view *now,
                          const srv_metrics_view *before);

/* One logfmt line body (no timestamp/level) into buf; exp names the arms. */
void srv_metrics_logfmt(const srv_metrics_view *v, const srv_experiment *exp, char *buf,
                        size_t len);

/* Stage names ("parse", ... "total"), for the log line and replies. */
const char *srv_stage_name(int stage);

uint64_t srv_rss_bytes(void);
uint64_t srv_jemalloc_allocated(void);

#endif
