/* rec_metrics.h -- what the record path counts, in one struct with one
 * collect function; metric_defs.c names its fields for /metrics, `stats`
 * and the log line like every other metric.
 *
 *     srv_rec_stats_init(&st->rec);                        // main, before the writer starts
 *     atomic_fetch_add(&st->rec.queued, 1);                // main: handed to the writer
 *     srv_rec_batch_done(&st->rec, &batch_report);         // the writer, after a commit
 *     srv_rec_tick(&st->rec, util_now_ns());               // main's once-a-second cron
 *     srv_rec_collect(&st->rec, &view->rec, flags);        // srv_state_collect
 *
 * The writer is the only thread that adds.  Its counts and Prometheus
 * histograms are words it stores with relaxed atomics, which a collector
 * loads without a lock (a scrape never makes the writer wait); the fine
 * histograms behind the quantiles of `stats` and the log line are under
 * the lock, taken once per batch by the writer and only by collectors that
 * ask for quantiles.  Main owns the queue gauge and the rate ring: rates
 * are over the last ten seconds, so the line and `stats` agree.
 */
#ifndef DAEMON_REC_METRICS_H
#define DAEMON_REC_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/phist.h"
#include "util/hist.h"

#define SRV_REC_RING 11   /* one sample a second: a ten-second window */

/* Events by outcome, the index of srv_rec_counts.events. */
enum srv_rec_outcome { SRV_REC_STORED, SRV_REC_DUPLICATE, SRV_REC_REJECTED, SRV_REC_OUTCOMES };
const char *srv_rec_outcome_name(int outcome);   /* "stored", "duplicate", "rejected" */

/* One committed (or failed) batch, as the writer saw it. */
typedef struct srv_rec_batch_report {
    int requests;                 /* answered by this batch */
    int stored, duplicates, rejected;   /* events */
    uint64_t commit_ns;           /* the backend's append: begin to durable */
    int failed;                   /* the append failed: every request got an error */
    const uint64_t *ack_ns;       /* requests: received by main to reply handed back */
} srv_rec_batch_report;

/* The writer's words: only uint64_t, one writer, relaxed atomic stores. */
typedef struct srv_rec_counts {
    uint64_t events[SRV_REC_OUTCOMES];
    uint64_t requests, batches, failed_batches;
    srv_phist batch_ph;           /* events per batch (SRV_LAYOUT_SIZE) */
    srv_phist commit_ph;          /* ns (SRV_LAYOUT_LATENCY) */
    srv_phist ack_ph;             /* ns */
} srv_rec_counts;

typedef struct srv_rec_stats {
    srv_rec_counts c;                  /* lock-free, see above */
    pthread_mutex_t lock;              /* the fine histograms only */
    util_hist batch_events;            /* events per batch */
    util_hist commit_ns;               /* append latency, nanoseconds */
    util_hist ack_ns;                  /* received to answered, nanoseconds */
    atomic_int queued;                 /* record requests at the writer (main writes) */
    /* main's cron only: */
    uint64_t ring[SRV_REC_RING][SRV_REC_OUTCOMES];
    uint64_t ring_ns[SRV_REC_RING];
    int ring_at, ring_filled;
    atomic_uint_fast64_t rate_milli[SRV_REC_OUTCOMES];   /* per second x 1000, the window */
} srv_rec_stats;

/* What a metrics view holds of it. */
typedef struct srv_rec_view {
    srv_rec_counts c;
    int64_t queued;
    double stored_per_s, duplicates_per_s, rejected_per_s;
    int quantiles;                     /* the fine histograms below were filled */
    util_hist batch_events, commit_ns, ack_ns;
} srv_rec_view;

void srv_rec_stats_init(srv_rec_stats *s);
void srv_rec_stats_destroy(srv_rec_stats *s);
void srv_rec_batch_done(srv_rec_stats *s, const srv_rec_batch_report *r);
void srv_rec_tick(srv_rec_stats *s, uint64_t now_ns);
/* flags: SRV_COLLECT_QUANTILES (metrics.h) also copies the fine
 * histograms, under the lock; without it no lock is taken. */
void srv_rec_collect(srv_rec_stats *s, srv_rec_view *out, int flags);
/* The fine histograms of now minus before (the rest stays cumulative). */
void srv_rec_interval(srv_rec_view *out, const srv_rec_view *now, const srv_rec_view *before);
/* " rec_batch_p50=... rec_ack_p99_us=..." (the quantiles over the
 * interval; the scalars are metric_defs.c rows) appended at buf + *at. */
void srv_rec_logfmt(const srv_rec_view *v, char *buf, size_t len, size_t *at);

#endif
