/* state.h -- what every thread of attnd may read: the configuration, the
 * counters, the start time and the stopping flag.
 *
 * The main thread creates it before any other thread and frees it after
 * joining them all; the fields below `counters` are written by their
 * owners only (the comment on each says who), everything else is fixed
 * once threads run -- but for `wstats`, which the HTTP thread (started
 * before the workers, so that /healthz answers during a long first load)
 * reads only once `serving` says it is complete.  Handlers receive the
 * state through their srv_call.
 */
#ifndef DAEMON_STATE_H
#define DAEMON_STATE_H

#include <stdatomic.h>
#include <stdint.h>

#include "daemon/config.h"
#include "daemon/experiment.h"
#include "daemon/metrics.h"
#include "util/mask.h"

#define SRV_VERSION "0.2.0"

typedef struct srv_state {
    srv_config cfg;
    srv_experiment exp;         /* the arms, parsed from cfg at start */
    util_mask mask;             /* the key user ids are hashed with (logs, impressions) */
    int mask_ids;               /* hash user ids wherever they would be written */
    struct srv_imp *imp;        /* the impression log, or NULL */
    void *zctx;                 /* the ZeroMQ context */
    int n_workers;              /* scoring workers, worker 0 run inline by main */
    srv_wstats **wstats;        /* n_wstats: each worker's, then the writer's; written by
                                   its owner only (worker 0's by main), read under its lock */
    int n_wstats;
    srv_counters counters;      /* atomics: main thread's counters */
    srv_rec_stats rec;          /* the record path's (rec_metrics.h): the writer adds,
                                   main counts its queue */
    struct srv_auth *auth;      /* access control and fairness (auth.h); set before the
                                   client socket binds, freed after every thread ends */
    uint64_t started_ns;        /* CLOCK_MONOTONIC at start */
    uint64_t started_wall_ns;   /* Unix time at start */
    int metrics_port;           /* the HTTP listener's port; 0 without one */
    atomic_int serving;         /* workers started: wstats complete (main writes) */
    atomic_int stopping;        /* SIGTERM seen: not ready any more (main writes) */
    atomic_int loader_running;  /* a reload is building (main writes) */
    /* The serving snapshot's facts, for threads that must not take the
     * snapshot's mutex (the HTTP listener): srv_state_published writes them. */
    atomic_int loaded;          /* a snapshot is serving */
    atomic_uint_fast64_t loaded_wall_ns;  /* Unix time it was published */
    atomic_int_fast64_t model_version, catalog_version, items;
} srv_state;

struct srv_snapshot;

/* Main, right after srv_snapshot_publish(snap) (NULL: none serves any
 * more): record what serves, for srv_state_collect and readiness. */
void srv_state_published(srv_state *st, const struct srv_snapshot *snap);

/* Every worker's statistics and the counters merged into v, with uptime
 * and the serving snapshot's versions.  Any thread; flags as for
 * srv_metrics_collect.  Without SRV_COLLECT_QUANTILES it reads atomics
 * only: no lock a worker takes. */
void srv_state_collect(srv_state *st, srv_metrics_view *v, int flags);

/* Why attnd is not ready ("shutting down", ...), or NULL when it is:
 * a snapshot is loaded, the workers run and no SIGTERM was seen. */
const char *srv_state_unready(const srv_state *st);

/* text (a request id, which a client may fill with a user id) as it may
 * appear in a log line: "h:" and its keyed hash when ids are masked, else
 * the text cut to 64 bytes.  Returns buf (at least 80 bytes). */
const char *srv_state_loggable(const srv_state *st, const char *text, size_t len, char *buf,
                               size_t cap);

#endif
