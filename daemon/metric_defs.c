/* metric_defs.c -- the metrics table: every number attnd reports, named
 * once (see metric_defs.h).  Rows with a log key appear in the logfmt line
 * in this order.  docs/OPERATIONS.md lists the families; a test checks
 * that every Prometheus name here is documented there.
 */
#include "daemon/metric_defs.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon/ops.h"
#include "daemon/state.h"

static const char *s_op_code(const srv_metrics_view *v, int i, char *buf, size_t len)
{
    (void)v;
    int row = i / SRV_CODE_COUNT, code = i % SRV_CODE_COUNT, n_ops;
    const srv_op *ops = srv_ops(&n_ops);
    if (row >= n_ops && row != SRV_OP_NONE)
        return NULL;
    snprintf(buf, len, "op=\"%s\",code=\"%s\"", row == SRV_OP_NONE ? "none" : ops[row].name,
             srv_code_name(code));
    return buf;
}

static const char *s_stage(const srv_metrics_view *v, int i, char *buf, size_t len)
{
    (void)v;
    snprintf(buf, len, "stage=\"%s\"", srv_stage_name(i));
    return buf;
}

static const char *s_fallback(const srv_metrics_view *v, int i, char *buf, size_t len)
{
    (void)v;
    const char *name = srv_fallback_name(i);
    if (!name)
        return NULL;
    snprintf(buf, len, "reason=\"%s\"", name);
    return buf;
}

static const char *s_version(const srv_metrics_view *v, int i, char *buf, size_t len)
{
    (void)v;
    (void)i;
    snprintf(buf, len, "version=\"%s\"", SRV_VERSION);
    return buf;
}

/* Arms by their configured names; none beyond the experiment's. */
static const char *s_arm(const srv_metrics_view *v, int i, char *buf, size_t len)
{
    if (!v->exp || i >= v->exp->n)
        return NULL;
    snprintf(buf, len, "arm=\"%s\"", v->exp->arm[i].name);
    return buf;
}

/* Record events by outcome (rec_metrics.h). */
static const char *s_rec_outcome(const srv_metrics_view *v, int i, char *buf, size_t len)
{
    (void)v;
    snprintf(buf, len, "outcome=\"%s\"", srv_rec_outcome_name(i));
    return buf;
}

static const char *s_refusal(const srv_metrics_view *v, int i, char *buf, size_t len)
{
    (void)v;
    snprintf(buf, len, "reason=\"%s\"", srv_refusal_name(i));
    return buf;
}

static const srv_metric s_defs[] = {
    /* traffic */
    SRV_GAUGE(NULL, qps, "qps", "qps", "replies per second over the last 10 s"),
    SRV_COUNTERS_BY("attnd_requests_total", w.requests[0][0], SRV_OP_ROWS * SRV_CODE_COUNT,
                    s_op_code, "Requests answered, by op (none: unreadable) and result code."),
    SRV_COUNTER("attnd_replies_sent_total", replied, "requests", "requests",
                "Replies handed to the client socket."),
    SRV_COUNTER("attnd_messages_received_total", received, "received", NULL,
                "Messages read from the client socket."),
    SRV_GAUGE("attnd_in_flight_requests", in_flight, "in_flight", "in_flight",
              "Requests received and not yet answered."),
    SRV_GAUGE("attnd_queue_depth", queued, "queued", "queued",
              "Requests waiting for a worker."),
    SRV_COUNTER("attnd_busy_replies_total", busy, "busy", "busy",
                "Requests refused with busy: every worker busy and the queue full."),
    SRV_GAUGE(NULL, fallbacks_total, "fallbacks", "fallbacks",
              "rank replies ranked by the popularity prior"),
    SRV_COUNTER("attnd_replies_dropped_total", dropped, "dropped", "dropped",
                "Replies dropped because the client's reply buffer was full (it does not read)."),
    SRV_COUNTER("attnd_replies_unroutable_total", unroutable, "unroutable", NULL,
                "Replies to clients that had disconnected."),
    /* latency */
    SRV_HISTOGRAM("attnd_request_duration_seconds", w.stage[SRV_STAGE_TOTAL],
                  SRV_LAYOUT_LATENCY,
                  "Time from reading a request to handing its reply over, queueing included."),
    SRV_HISTOGRAMS_BY("attnd_request_stage_duration_seconds", w.stage[0], SRV_LAYOUT_LATENCY,
                      SRV_STAGE_TOTAL, s_stage,
                      "Time in each stage of a request: parse, history, score, encode."),
    /* rank */
    SRV_HISTOGRAM("attnd_rank_candidates", w.candidates, SRV_LAYOUT_SIZE,
                  "Candidates per rank request, as sent."),
    SRV_HISTOGRAM("attnd_rank_history_length", w.history, SRV_LAYOUT_SIZE,
                  "History items a rank request used (0 when it fell back)."),
    SRV_COUNTER("attnd_rank_unknown_candidates_total", w.unknown_candidates,
                "unknown_candidates", "unknown_candidates",
                "Candidate ids not in the catalog, reported back in `unknown`."),
    SRV_COUNTERS_BY("attnd_rank_fallbacks_total", w.fallbacks[0], SRV_FB_COUNT, s_fallback,
                    "Rank replies ranked by the popularity prior, by reason."),
    /* the experiment (experiment.arms): one series per configured arm */
    SRV_COUNTERS_BY("attnd_experiment_requests_total", w.arm_requests[0], SRV_ARMS_MAX, s_arm,
                    "Rank requests served by each experiment arm."),
    SRV_COUNTERS_BY("attnd_experiment_fallbacks_total", w.arm_fallbacks[0], SRV_ARMS_MAX,
                    s_arm, "Rank replies of each arm ranked by the popularity prior."),
    SRV_HISTOGRAMS_BY("attnd_experiment_request_duration_seconds", w.arm_total[0],
                      SRV_LAYOUT_LATENCY, SRV_ARMS_MAX, s_arm,
                      "Time from reading a rank request to handing its reply over, by arm."),
    /* record (rec_metrics.h): the writer's */
    SRV_COUNTERS_BY("attnd_record_events_total", rec.c.events[0], SRV_REC_OUTCOMES,
                    s_rec_outcome, "Events of record requests, by outcome: stored, duplicate "
                    "(stored before), rejected (unknown item)."),
    SRV_COUNTER(NULL, rec.c.events[SRV_REC_STORED], NULL, "rec_stored",
                "events stored since start"),
    SRV_GAUGE(NULL, rec.stored_per_s, NULL, "rec_stored_per_s",
              "events stored per second over the last 10 s"),
    SRV_GAUGE(NULL, rec.duplicates_per_s, NULL, "rec_duplicates_per_s",
              "duplicate events per second over the last 10 s"),
    SRV_GAUGE(NULL, rec.rejected_per_s, NULL, "rec_rejected_per_s",
              "rejected events per second over the last 10 s"),
    SRV_GAUGE("attnd_record_queue_depth", rec.queued, NULL, "rec_queue",
              "Record requests at the writer: received, not yet answered."),
    SRV_COUNTER("attnd_record_batches_total", rec.c.batches, NULL, NULL,
                "Transactions the writer ran, one per batch of record requests."),
    SRV_COUNTER("attnd_record_failed_batches_total", rec.c.failed_batches, NULL, NULL,
                "Batches that failed (the database locked past the busy timeout, or failing): "
                "nothing of them was stored."),
    SRV_HISTOGRAM("attnd_record_batch_events", rec.c.batch_ph, SRV_LAYOUT_SIZE,
                  "Events per writer transaction."),
    SRV_HISTOGRAM("attnd_record_commit_duration_seconds", rec.c.commit_ph, SRV_LAYOUT_LATENCY,
                  "Time to append one batch, begin to durable."),
    SRV_HISTOGRAM("attnd_record_ack_duration_seconds", rec.c.ack_ph, SRV_LAYOUT_LATENCY,
                  "Time from reading a record request to handing its reply over, the commit "
                  "included."),
    /* the snapshot */
    SRV_GAUGE("attnd_model_version", model_version, "model", "model",
              "Version of the serving model (0: the identity model)."),
    SRV_GAUGE("attnd_catalog_version", catalog_version, "catalog", "catalog",
              "catalog_version of the serving snapshot."),
    SRV_GAUGE("attnd_catalog_items", items, "items", "items",
              "Items in the serving catalog."),
    SRV_GAUGE("attnd_last_reload_timestamp_seconds", loaded_time_s, NULL, NULL,
              "Unix time the serving snapshot was published (start-up load included)."),
    SRV_COUNTER("attnd_reloads_total", reloads, "reloads", NULL,
                "Snapshots built and published after start-up."),
    SRV_COUNTER("attnd_impressions_logged_total", imp_logged, "impressions_logged",
                "impressions", "Rank replies written to the impressions table "
                "(experiment.log_impressions)."),
    SRV_COUNTER("attnd_impressions_dropped_total", imp_dropped, "impressions_dropped",
                "impressions_dropped", "Sampled impressions dropped: the writer's queue was "
                "full or its write failed."),
    SRV_COUNTER("attnd_reload_failures_total", reload_failures, "reload_failures", NULL,
                "Reloads that failed; the previous snapshot kept serving."),
    SRV_GAUGE("attnd_ready", ready, "ready", NULL,
              "1 when a snapshot is loaded and attnd is not shutting down."),
    /* access control (docs/SECURITY.md; `stats` has them under "security") */
    SRV_COUNTERS_BY("attnd_security_refusals_total", sec.refused[0], SRV_REFUSED_COUNT,
                    s_refusal, "Clients refused by access control, by reason."),
    SRV_COUNTER("attnd_security_handshakes_accepted_total", sec.accepted, NULL, NULL,
                "CURVE handshakes the allow-list let in."),
    SRV_GAUGE("attnd_security_allowed_keys", sec.keys, NULL, NULL,
              "Keys in the allow-list now."),
    SRV_COUNTER("attnd_security_refusal_logs_suppressed_total", sec.log_suppressed, NULL, NULL,
                "Refusal log lines held back by the log limit."),
    SRV_COUNTER("attnd_security_allowlist_reloads_total", sec.allow_reloads, NULL, NULL,
                "Allow-lists re-read and swapped in (SIGHUP, the reload op)."),
    SRV_COUNTER("attnd_security_allowlist_reload_failures_total", sec.allow_reload_failures,
                NULL, NULL, "Allow-list re-reads that failed; the previous list stayed."),
    /* the process */
    SRV_GAUGE("attnd_resident_memory_bytes", rss_bytes, "rss_bytes", "rss_bytes",
              "Resident set size."),
    SRV_GAUGE("attnd_jemalloc_allocated_bytes", jemalloc_allocated, "jemalloc_allocated",
              "jemalloc_allocated", "Bytes allocated through jemalloc (0 without it)."),
    SRV_GAUGE("attnd_workers", workers, "workers", NULL, "Scoring workers."),
    SRV_GAUGE("attnd_start_time_seconds", start_time_s, NULL, NULL,
              "Unix time attnd started."),
    SRV_GAUGE(NULL, uptime_s, "uptime_s", NULL, "seconds since start"),
    SRV_GAUGES_BY("attnd_build_info", build_info, 1, s_version,
                  "Always 1; the labels say which attnd this is."),
};

#define S_NDEFS ((int)(sizeof s_defs / sizeof s_defs[0]))

const srv_metric *srv_metric_defs(int *n)
{
    *n = S_NDEFS;
    return s_defs;
}

static const void *s_at(const srv_metric *m, const srv_metrics_view *v, int i)
{
    return (const char *)v + m->offset + (size_t)i * m->stride;
}

int srv_metric_is_int(const srv_metric *m)
{
    return m->type == SRV_MT_U64 || m->type == SRV_MT_I64 || m->type == SRV_MT_INT;
}

int64_t srv_metric_i64(const srv_metric *m, const srv_metrics_view *v, int i)
{
    const void *p = s_at(m, v, i);
    switch (m->type) {
    case SRV_MT_U64: return (int64_t)*(const uint64_t *)p;
    case SRV_MT_I64: return *(const int64_t *)p;
    case SRV_MT_INT: return *(const int *)p;
    case SRV_MT_F64: return (int64_t)*(const double *)p;
    default: return 0;
    }
}

double srv_metric_f64(const srv_metric *m, const srv_metrics_view *v, int i)
{
    if (m->type == SRV_MT_F64)
        return *(const double *)s_at(m, v, i);
    if (m->type == SRV_MT_U64)
        return (double)*(const uint64_t *)s_at(m, v, i);
    return (double)srv_metric_i64(m, v, i);
}

int srv_metric_print(const srv_metric *m, const srv_metrics_view *v, int i, char *buf,
                     size_t len)
{
    const void *p = s_at(m, v, i);
    switch (m->type) {
    case SRV_MT_U64: return snprintf(buf, len, "%" PRIu64, *(const uint64_t *)p);
    case SRV_MT_I64: return snprintf(buf, len, "%" PRId64, *(const int64_t *)p);
    case SRV_MT_INT: return snprintf(buf, len, "%d", *(const int *)p);
    case SRV_MT_F64: return snprintf(buf, len, "%.17g", *(const double *)p);
    default: return snprintf(buf, len, "0");   /* a histogram has no single value */
    }
}

const srv_phist *srv_metric_phist(const srv_metric *m, const srv_metrics_view *v, int i)
{
    return m->type == SRV_MT_PHIST ? s_at(m, v, i) : NULL;
}
