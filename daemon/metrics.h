/* metrics.h -- the one metrics registry: what attnd counts, and the view
 * that the logfmt line, the `stats` op and /metrics all render, so the
 * three never disagree.
 *
 *     srv_wstats_note(ws, &obs);                       // a worker, per request
 *     srv_metrics_collect(v, wstats, n, &counters, 0); // any thread: sums
 *
 * Where the numbers live:
 *   srv_wstats    per worker.  Its counts (srv_wcounts) have one writer, the
 *                 worker, which stores each word with a relaxed atomic store
 *                 and takes no lock; a collector reads them word by word with
 *                 relaxed atomic loads, so a scrape never makes a worker
 *                 wait, even when the scraping thread is preempted.  The fine
 *                 histograms (quantiles for `stats` and the log line, on the
 *                 main thread) are under the worker's own mutex.
 *   srv_counters  the main thread's and the reloader's: atomics, and RSS and
 *                 jemalloc's figures sampled by main's cron once a second.
 * srv_metrics_collect() sums them into a srv_metrics_view; metric_defs.c
 * names each view field for the outside (Prometheus name, `stats` key, log
 * key) in one table row.  A view is a snapshot of many independent words:
 * each one is exact, but a histogram's _sum may trail its buckets by the
 * request being recorded at that moment.
 *
 * Adding a metric:
 *   - counted by a worker per request: a uint64_t (or srv_phist) field in
 *     srv_wcounts, set in srv_wstats_note; the sum over workers needs no code
 *     (srv_wcounts is summed as an array of uint64_t);
 *   - counted elsewhere: an atomic in srv_counters and a line in
 *     srv_metrics_collect, or a feature's own small struct embedded in the
 *     view and filled by its own collect function from srv_state_collect;
 *   - then one row in metric_defs.c.
 * Counters only ever grow: nothing here is reset, a reload included.
 */
#ifndef DAEMON_METRICS_H
#define DAEMON_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "daemon/auth.h"
#include "daemon/experiment.h"
#include "daemon/phist.h"
#include "daemon/proto.h"
#include "util/hist.h"
#include "daemon/rec_metrics.h"

#define SRV_OPS_MAX 16                  /* rows the op table may grow to (ops.c checks) */
#define SRV_OP_NONE SRV_OPS_MAX         /* requests whose op could not be read */
#define SRV_OP_ROWS (SRV_OPS_MAX + 1)

enum srv_stage {
    SRV_STAGE_PARSE,    /* UTF-8 check, JSON parse, validation */
    SRV_STAGE_HISTORY,  /* user lookup, history query, id mapping */
    SRV_STAGE_SCORE,    /* attention scoring and top-k */
    SRV_STAGE_ENCODE,   /* titles and reply JSON */
    SRV_STAGE_TOTAL,    /* receive by the server to reply sent by the worker */
    SRV_STAGE_COUNT
};

/* A stage a request did not reach (rank failing before scoring). */
#define SRV_STAGE_SKIPPED UINT64_MAX

/* Why a rank reply came from the popularity prior (0: it did not). */
enum srv_fallback {
    SRV_FB_NONE = 0,
    SRV_FB_UNKNOWN_USER,     /* the user id is not in the database */
    SRV_FB_NO_HISTORY,       /* the user has no usable events */
    SRV_FB_UNKNOWN_HISTORY,  /* none of an anonymous history's ids is in the catalog */
    SRV_FB_COUNT
};
const char *srv_fallback_name(int fallback);   /* "unknown_user", ...; NULL for none */

/* ---- per worker ------------------------------------------------------------ */

/* What a worker counts.  Only uint64_t (and srv_phist, all uint64_t), so
 * that workers' counts are summed word by word. */
typedef struct srv_wcounts {
    uint64_t requests[SRV_OP_ROWS][SRV_CODE_COUNT];  /* replies by op row and code */
    uint64_t fallbacks[SRV_FB_COUNT];                /* rank replies from the prior, by reason */
    uint64_t unknown_candidates;                     /* candidate ids not in the catalog */
    srv_phist stage[SRV_STAGE_COUNT];                /* ns, per stage */
    srv_phist candidates;                            /* candidates per rank request */
    srv_phist history;                               /* history items used per rank request */
    uint64_t arm_requests[SRV_ARMS_MAX];             /* by experiment arm (experiment.h) */
    uint64_t arm_fallbacks[SRV_ARMS_MAX];
    srv_phist arm_total[SRV_ARMS_MAX];               /* ns, receive to reply */
} srv_wcounts;

typedef struct srv_wstats {
    srv_wcounts c;                       /* the worker's relaxed atomic stores, no lock */
    pthread_mutex_t lock;                /* guards the fine histograms only */
    util_hist stage[SRV_STAGE_COUNT];    /* ns, fine-grained: quantiles */
    util_hist arm_total[SRV_ARMS_MAX];   /* ns, by experiment arm */
} srv_wstats;

/* One answered request, as the worker saw it. */
typedef struct srv_obs {
    int op_row;                           /* srv_op_row(op) */
    int code;                             /* SRV_OK or the error replied */
    int counted;                          /* 0: the reply is counted by whoever sends it */
    const uint64_t *stage;                /* SRV_STAGE_COUNT ns, or SRV_STAGE_SKIPPED */
    int arm;                              /* its experiment arm, or -1 */
    int ranked;                           /* a rank answered with results: the fields below */
    int fallback;                         /* enum srv_fallback */
    int candidates, history, unknown_candidates;
} srv_obs;

void srv_wstats_init(srv_wstats *ws);
void srv_wstats_destroy(srv_wstats *ws);
/* Record one request (its worker only): the counts without a lock, the
 * fine histograms under one lock and unlock. */
void srv_wstats_note(srv_wstats *ws, const srv_obs *o);

/* ---- the main thread's ------------------------------------------------------ */

typedef struct srv_counters {
    atomic_uint_fast64_t requests[SRV_OP_ROWS][SRV_CODE_COUNT];  /* replies main and the
                                                      reloader wrote: busy, bad_frame, reload */
    atomic_uint_fast64_t received;                /* messages read from the socket */
    atomic_uint_fast64_t replied;                 /* replies written to the socket */
    atomic_uint_fast64_t dropped;                 /* replies dropped: the client's queue was
                                                     full (it does not read) */
    atomic_uint_fast64_t unroutable;              /* replies to a client that had gone */
    atomic_int in_flight;                         /* received, not yet replied */
    atomic_int queued;                            /* waiting for a worker */
    atomic_uint_fast64_t reloads, reload_failures;
    atomic_uint_fast64_t imp_logged, imp_dropped; /* impressions written; dropped (queue full,
                                                     write failed) */
    atomic_uint_fast64_t qps_milli;               /* replies/s x 1000, over the last 10 s */
    atomic_uint_fast64_t rss_bytes;               /* sampled by srv_counters_sample */
    atomic_uint_fast64_t jemalloc_allocated;
} srv_counters;

void srv_counters_reply(srv_counters *c, int op_row, int code);
/* Read RSS and jemalloc's allocated bytes into c: main's cron, once a
 * second.  Reading them takes kernel and jemalloc locks that a worker's
 * allocation may need, so the threads that render metrics do not. */
void srv_counters_sample(srv_counters *c);

/* ---- the view ------------------------------------------------------------------ */

typedef struct srv_metrics_view {
    srv_wcounts w;                       /* workers' counts, plus main's replies */
    /* derived from w for `stats` and the log line */
    uint64_t ops[SRV_OP_ROWS];           /* requests by op row */
    uint64_t errors[SRV_CODE_COUNT];     /* replies by code, every op */
    uint64_t fallbacks_total, busy;
    /* main thread's */
    uint64_t received, replied, dropped, unroutable, reloads, reload_failures;
    uint64_t imp_logged, imp_dropped;
    int64_t in_flight, queued;
    double qps;
    /* process and state (srv_state_collect) */
    double uptime_s, start_time_s, loaded_time_s;   /* loaded: Unix time of the serving
                                                       snapshot's publication */
    uint64_t rss_bytes;
    uint64_t jemalloc_allocated;         /* 0 without jemalloc (sanitizer builds) */
    int64_t model_version, catalog_version, items;
    int64_t workers, ready, build_info;  /* build_info is always 1 (labels carry the facts) */
    const srv_experiment *exp;           /* names the arms (labels); NULL: no experiment */
    int quantiles;                       /* the fine histograms below were filled */
    util_hist stage[SRV_STAGE_COUNT];    /* ns; only with SRV_COLLECT_QUANTILES */
    util_hist arm_total[SRV_ARMS_MAX];   /* ns; only with SRV_COLLECT_QUANTILES */
    srv_rec_view rec;                    /* the record path (rec_metrics.h) */
    srv_sec_view sec;                    /* access control (auth.h: srv_auth_collect) */
} srv_metrics_view;

enum { SRV_COLLECT_QUANTILES = 1 };

/* Merge n worker stats and the counters into view (uptime, versions and
 * the rest of the state are left to srv_state_collect).  Without
 * SRV_COLLECT_QUANTILES it takes no lock at all. */
void srv_metrics_collect(srv_metrics_view *view, srv_wstats *const *ws, int n,
                         srv_counters *counters, int flags);

/* view minus an earlier view, for per-interval quantiles. */
void srv_metrics_interval(srv_metrics_view *out, const srv_metrics_view *now,
                          const srv_metrics_view *before);

/* One logfmt line body (no timestamp/level) into buf; v->exp names the arms. */
void srv_metrics_logfmt(const srv_metrics_view *v, char *buf, size_t len);

/* Stage names ("parse", ... "total"), for the log line and replies. */
const char *srv_stage_name(int stage);

uint64_t srv_rss_bytes(void);
uint64_t srv_jemalloc_allocated(void);

#endif
