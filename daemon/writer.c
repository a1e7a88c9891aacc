/* writer.c -- the writer thread (writer.h).
 *
 * Why one writer: SQLite has one write lock per database.  N threads each
 * committing their own request would queue on that lock and pay a commit
 * (and, at synchronous = full, an fsync) each; one thread committing what
 * has queued pays one commit for the lot, so throughput grows with load
 * instead of collapsing under it.  Rank workers read through their own
 * read-only connections (WAL: readers never wait for the writer, and see
 * each commit as soon as it returns).
 *
 * Why the writer parses: the scoring workers stay free for rank (their
 * latency is the product), and the main thread stays a router.  The writer
 * has its own parse arenas like a worker.
 *
 * The loop, as numbered steps:
 *   1. wait for a request (a second at most: then housekeeping)
 *   2. take every request waiting, staging each into the batch, until none
 *      is waiting, the batch is full, or it has been open max_delay_ms; a
 *      request that does not fit commits the batch before it is staged.
 *      With linger_ms, a batch first stays open that long (asleep while
 *      nothing is waiting), then goes on from there as if opened then
 *   3. commit the batch (one transaction), then send every reply
 *   4. housekeeping: checkpoint the WAL once it has grown (store_hist_idle),
 *      after the replies, so its fsync is in nobody's acknowledgement
 */
#include "daemon/writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "daemon/arena.h"
#include "daemon/history.h"
#include "daemon/log.h"
#include "daemon/ops.h"
#include "daemon/record.h"
#include "daemon/reply.h"
#include "daemon/wire.h"
#include "daemon/worker.h"
#include "util/clock.h"
#include "util/proc.h"

#define S_JSON_ARENA_BYTES (4u << 20)
#define S_IDLE_MS 1000

struct srv_writer {
    srv_state *st;
    srv_wres res;                /* hist (read-write), db (item lookups), batch */
    pthread_t thread;
    int started;                 /* the thread runs */
    void *sock;                  /* PAIR to main */
    srv_arena json_arena;        /* cJSON parse trees */
    srv_arena args_arena;        /* one request's fields, reset once it is staged */
    srv_json out;                /* the reply being written */
    srv_wstats stats;            /* ops and errors, merged with the workers' */
    zmq_msg_t *route;            /* per staged request: its client */
    uint8_t *style;
    uint64_t *ack_ns;            /* per staged request: its latency, for the metrics */
    uint64_t opened_ns;          /* when the open batch staged its first request, or
                                    ended its linger: max_delay_ms counts from here */
    int lingered;                /* the open batch has had its linger (or has none) */
    uint64_t failures_logged;    /* failed batches already logged */
};

/* ---- replies -------------------------------------------------------------- */

/* Hand w->out back to main for the client at route (consumed). */
static void s_send(srv_writer *w, zmq_msg_t *route, uint8_t style)
{
    srv_done_meta meta = {.kind = SRV_DONE_REPLY, .style = style};
    if (srv_wire_send_msg(w->sock, route, ZMQ_SNDMORE) < 0 ||
        srv_wire_send(w->sock, &meta, sizeof meta, ZMQ_SNDMORE) < 0 ||
        srv_wire_send(w->sock, w->out.buf, w->out.len, 0) < 0)
        srv_log(SRV_ERROR, "msg=\"writer cannot hand a reply back\" reason=\"%s\"",
                zmq_strerror(zmq_errno()));
}

/* n replies of op with code, in the registry (metrics.h): requests by op
 * and code.  Record requests have no stages: rank's latency histograms
 * stay rank's (record's own are in rec_metrics.h). */
static void s_count(srv_writer *w, const srv_op *op, int code, int n)
{
    uint64_t skipped[SRV_STAGE_COUNT];
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        skipped[s] = SRV_STAGE_SKIPPED;
    srv_obs o = {.op_row = srv_op_row(op), .code = code, .counted = 1, .stage = skipped,
                 .arm = -1};
    for (int i = 0; i < n; i++)
        srv_wstats_note(&w->stats, &o);
}

/* ---- 3. commit, then answer ----------------------------------------------- */

static void s_flush(srv_writer *w)
{
    srv_rec_batch *b = w->res.batch;
    int n = srv_rec_batch_requests(b);
    if (n == 0)
        return;
    srv_rec_batch_report rep;
    store_err err = {0};
    int rc = srv_rec_batch_commit(b, w->res.hist, &rep, &err);
    if (rc != STORE_OK) {
        /* One line per failed batch would flood the log while an import
         * holds the lock: the first, then every hundredth. */
        if (w->failures_logged++ % 100 == 0)
            srv_log(SRV_WARN, "msg=\"record batch failed: nothing stored\" requests=%d "
                    "code=%s reason=\"%s\" failures=%llu", n, store_strerror(rc), err.msg,
                    (unsigned long long)w->failures_logged);
    }
    const srv_op *op = srv_op_find("record", 6);
    for (int k = 0; k < n; k++)
        s_count(w, op, srv_rec_batch_code(b, k, rc), 1);
    /* The figures first: a client that asks for stats right after its
     * reply must find its events counted. */
    uint64_t now = util_now_ns();
    for (int k = 0; k < n; k++)
        w->ack_ns[k] = now - srv_rec_batch_t_recv(b, k);
    rep.ack_ns = w->ack_ns;
    srv_rec_batch_done(&w->st->rec, &rep);
    for (int k = 0; k < n; k++) {
        srv_rec_batch_reply(b, k, rc, &err, &w->out);
        s_send(w, &w->route[k], w->style[k]);
        zmq_msg_close(&w->route[k]);
    }
    srv_rec_batch_reset(b);
}

/* ---- 2. take a request ---------------------------------------------------- */

/* Parse and run one request: staged, or answered at once. */
static void s_handle(srv_writer *w, zmq_msg_t *route, const srv_task_meta *tm,
                     zmq_msg_t *payload)
{
    srv_request rq;
    char why[600];
    int code = srv_request_parse(zmq_msg_data(payload), zmq_msg_size(payload), &w->st->cfg,
                                 &w->args_arena, &rq, why, sizeof why);
    srv_arena_reset(&w->json_arena);
    srv_rec_batch *b = w->res.batch;
    /* A request must fit a batch whole: commit the open one first. */
    if (code == SRV_OK && rq.op->run == srv_record_run &&
        ((const srv_record_args *)rq.args)->n > srv_rec_batch_room(b))
        s_flush(w);
    uint64_t stage[SRV_STAGE_COUNT] = {0};
    srv_call c = {.state = w->st, .res = &w->res, .out = &w->out, .rq = &rq,
                  .t_recv = tm->t_recv_ns, .stage = stage, .outcome = SRV_OUT_REPLY,
                  .role = tm->role, .arm = -1};
    if (code != SRV_OK)
        srv_call_error(&c, code, why);
    else if (srv_call_allowed(&c))
        rq.op->run(&c);
    srv_arena_reset(&w->args_arena);
    if (c.outcome == SRV_OUT_DEFER) {   /* counted with the batch's outcome */
        int k = srv_rec_batch_requests(b) - 1;
        if (k == 0) {
            w->opened_ns = util_now_ns();
            w->lingered = w->st->cfg.record_linger_ms == 0;
        }
        zmq_msg_init(&w->route[k]);
        zmq_msg_move(&w->route[k], route);
        w->style[k] = tm->style;
        return;
    }
    /* Anything else answers now (errors; an op that was never meant to be
     * here is answered by its own run, which says so). */
    s_count(w, rq.op, c.code, 1);
    s_send(w, route, tm->style);
}

/* One message off the pipe.  1 handled, 0 none waiting (flags
 * ZMQ_DONTWAIT), -1 stop (main's empty message, or the context ended). */
static int s_take(srv_writer *w, int flags)
{
    zmq_msg_t route, meta, payload;
    zmq_msg_init(&route);
    if (srv_wire_recv(w->sock, &route, flags) < 0) {
        zmq_msg_close(&route);
        return zmq_errno() == EAGAIN ? 0 : -1;
    }
    if (!zmq_msg_more(&route)) {
        zmq_msg_close(&route);
        return -1;
    }
    zmq_msg_init(&meta);
    zmq_msg_init(&payload);
    int rc = -1;
    if (srv_wire_recv(w->sock, &meta, 0) >= 0 && srv_wire_recv(w->sock, &payload, 0) >= 0) {
        srv_task_meta tm = {0};
        if (zmq_msg_size(&meta) == sizeof tm)
            memcpy(&tm, zmq_msg_data(&meta), sizeof tm);
        s_handle(w, &route, &tm, &payload);
        rc = 1;
    }
    zmq_msg_close(&route);
    zmq_msg_close(&meta);
    zmq_msg_close(&payload);
    return rc;
}

/* A batch in its linger whose linger is over goes on as a batch without
 * one, opened now: more while requests keep coming, for max_delay_ms. */
static void s_end_linger(srv_writer *w, uint64_t now)
{
    if (!w->lingered && now - w->opened_ns >= (uint64_t)w->st->cfg.record_linger_ms * 1000000u) {
        w->lingered = 1;
        w->opened_ns = now;
    }
}

/* The open batch takes more: it has room, and it is in its linger or has
 * been open (since the linger) less than max_delay_ms. */
static int s_open(srv_writer *w)
{
    const srv_rec_batch *b = w->res.batch;
    if (srv_rec_batch_requests(b) == 0)
        return 1;
    if (srv_rec_batch_room(b) == 0)
        return 0;
    uint64_t now = util_now_ns();
    s_end_linger(w, now);
    return !w->lingered || now - w->opened_ns < (uint64_t)w->st->cfg.record_max_delay_ms * 1000000u;
}

/* Nothing is waiting: if the open batch is in its linger, sleep out the
 * rest of it and say so (1), so the caller looks again (and s_open ends
 * the linger).  A sleep, not a poll on the pipe: a poll would wake the
 * writer for every request that arrives meanwhile; asleep, it wakes once
 * per batch. */
static int s_linger(const srv_writer *w)
{
    if (srv_rec_batch_requests(w->res.batch) == 0 || w->lingered)
        return 0;
    uint64_t until = w->opened_ns + (uint64_t)w->st->cfg.record_linger_ms * 1000000u;
    uint64_t now = util_now_ns();
    if (now < until) {
        uint64_t left = until - now;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                              .tv_nsec = (long)(left % 1000000000u)};
        nanosleep(&ts, NULL);
    }
    return 1;
}

/* ---- 4. housekeeping ------------------------------------------------------ */

static void s_idle(srv_writer *w)
{
    store_err err;
    if (store_hist_idle(w->res.hist, &err) != STORE_OK)
        srv_log(SRV_WARN, "msg=\"history housekeeping failed\" reason=\"%s\"", err.msg);
}

/* ---- the thread ----------------------------------------------------------- */

static void *s_thread(void *arg)
{
    srv_writer *w = arg;
    pthread_setname_np(pthread_self(), "attnd-writer");   /* for top -H and perf */
    if (w->st->cfg.record_priority == CFG_PRIORITY_IDLE && util_sched_idle() != 0)
        srv_log(SRV_WARN, "msg=\"record.priority = idle refused; the writer runs at normal "
                "priority\" reason=\"%s\"", strerror(errno));
    srv_arena_bind(&w->json_arena);
    for (;;) {
        zmq_pollitem_t it = {.socket = w->sock, .events = ZMQ_POLLIN};
        int ready = srv_wire_poll(&it, 1, S_IDLE_MS);   /* 1. */
        if (ready < 0)
            break;
        if (ready == 0) {
            s_idle(w);
            continue;
        }
        int rc;
        do {                                            /* 2. */
            rc = s_take(w, ZMQ_DONTWAIT);
            if (rc == 0 && s_linger(w))
                rc = 1;
        } while (rc == 1 && s_open(w));
        s_flush(w);                                     /* 3. */
        if (rc < 0)
            break;
        s_idle(w);                                      /* 4. */
    }
    srv_arena_bind(NULL);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------- */

static void s_free(srv_writer *w)
{
    if (w->sock)
        zmq_close(w->sock);
    store_hist_close(&w->res.hist);
    store_close(&w->res.db);
    srv_rec_batch_free(&w->res.batch);
    srv_arena_free(&w->json_arena);
    srv_arena_free(&w->args_arena);
    srv_json_free(&w->out);
    srv_wstats_destroy(&w->stats);
    free(w->route);
    free(w->style);
    free(w->ack_ns);
    free(w);
}

static int s_alloc(srv_writer *w, char *why, size_t why_len)
{
    const srv_config *cfg = &w->st->cfg;
    size_t n = (size_t)cfg->record_max_batch;
    size_t args_bytes = (size_t)cfg->max_message_bytes + 64 * 1024 +
                        (size_t)cfg->max_record_events * 96;
    w->res.batch = srv_rec_batch_new(cfg);
    w->route = malloc(n * sizeof *w->route);
    w->style = malloc(n);
    w->ack_ns = malloc(n * sizeof *w->ack_ns);
    if (!w->res.batch || !w->route || !w->style || !w->ack_ns ||
        srv_arena_init(&w->json_arena, S_JSON_ARENA_BYTES) ||
        srv_arena_init(&w->args_arena, args_bytes) || srv_json_init(&w->out, 1 << 16)) {
        snprintf(why, why_len, "writer: out of memory for its buffers");
        return -1;
    }
    return 0;
}

/* The read-write history handle, and a read-only connection for item
 * lookups the snapshot's catalog cannot answer. */
static int s_open_store(srv_writer *w, char *why, size_t why_len)
{
    const srv_config *cfg = &w->st->cfg;
    char reason[600];
    if (srv_history_open(cfg, 1, &w->res.hist, reason, sizeof reason) != 0) {
        snprintf(why, why_len, "writer: %s (record.enabled = off serves without writing)",
                 reason);
        return -1;
    }
    store_err err;
    if (store_open(&w->res.db, cfg->db, STORE_READONLY, cfg->busy_timeout_ms, &err) != STORE_OK) {
        snprintf(why, why_len, "writer: %s", err.msg);
        return -1;
    }
    return 0;
}

srv_writer *srv_writer_start(srv_state *st, char *why, size_t why_len)
{
    srv_writer *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(why, why_len, "writer: out of memory");
        return NULL;
    }
    w->st = st;
    w->res.index = -1;
    srv_wstats_init(&w->stats);
    if (s_alloc(w, why, why_len) || s_open_store(w, why, why_len)) {
        s_free(w);
        return NULL;
    }
    int linger = 0, hwm = 0;   /* unbounded: main bounds the queue (record.queue_max) */
    w->sock = zmq_socket(st->zctx, ZMQ_PAIR);
    if (!w->sock || zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(w->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(w->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_connect(w->sock, SRV_WRITER_PIPE) != 0) {
        snprintf(why, why_len, "writer: connect %s: %s", SRV_WRITER_PIPE,
                 zmq_strerror(zmq_errno()));
        s_free(w);
        return NULL;
    }
    if (pthread_create(&w->thread, NULL, s_thread, w) != 0) {
        snprintf(why, why_len, "writer: cannot start its thread");
        s_free(w);
        return NULL;
    }
    w->started = 1;
    srv_log(SRV_INFO, "msg=\"writer started\" history=%s synchronous=%s max_batch=%d "
            "max_delay_ms=%d linger_ms=%d queue_max=%d", store_hist_name(w->res.hist),
            st->cfg.record_synchronous == CFG_SYNC_FULL ? "full" : "normal",
            st->cfg.record_max_batch, st->cfg.record_max_delay_ms, st->cfg.record_linger_ms,
            st->cfg.record_queue_max);
    return w;
}

void srv_writer_stop(srv_writer **w_p, void *main_pipe)
{
    srv_writer *w = *w_p;
    if (!w)
        return;
    *w_p = NULL;
    if (w->started) {
        srv_wire_send(main_pipe, "", 0, 0);
        pthread_join(w->thread, NULL);
    }
    s_free(w);
}

srv_wstats *srv_writer_stats(srv_writer *w)
{
    return &w->stats;
}
