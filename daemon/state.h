/* state.h -- what every thread of attnd may read: the configuration, the
 * counters, the start time and the stopping flag.
 *
 * The main thread creates it before any other thread and frees it after
 * joining them all; the fields below `counters` are written by their
 * owners only (the comment on each says who), everything else is fixed
 * once threads run.  Handlers receive it through their srv_call.
 */
#ifndef DAEMON_STATE_H
#define DAEMON_STATE_H

#include <stdatomic.h>
#include <stdint.h>

#include "daemon/config.h"
#include "daemon/experiment.h"
#include "daemon/metrics.h"

#define SRV_VERSION "0.2.0"

typedef struct srv_state {
    srv_config cfg;
    srv_experiment exp;         /* the arms, parsed from cfg at start */
    void *zctx;                 /* the ZeroMQ context */
    int n_workers;              /* scoring workers, worker 0 run inline by main */
    srv_wstats **wstats;        /* n_workers: each worker's, written by its owner only
                                   (worker 0's by main), read under its lock */
    srv_counters counters;      /* atomics: main thread's counters */
    uint64_t started_ns;        /* CLOCK_MONOTONIC at start */
    atomic_int stopping;        /* SIGTERM seen: not ready any more (main writes) */
    atomic_int loader_running;  /* a reload is building (main writes) */
    atomic_uint_fast64_t last_reload_ns;  /* CLOCK_MONOTONIC of the last publish (main writes) */
} srv_state;

/* Every worker's statistics and the counters merged into v, with uptime
 * and the serving snapshot's versions.  Any thread. */
void srv_state_collect(srv_state *st, srv_metrics_view *v);

#endif
