/* server.c -- the main thread: client socket, dispatch, cron, signals,
 * shutdown.
 *
 * Dispatch is least-recently-used, one request deep: main scores the oldest
 * queued request itself, an idle helper gets the next, and a busy one at most
 * one more (s_feed_helpers), so a slow request holds at most one other
 * hostage behind it in a helper's lane (lane.h).  Requests that find every worker
 * busy wait in one bounded FIFO here; when that is full the reply is `busy`
 * at once -- an explicit signal a client can back off on, instead of an
 * unbounded queue
 * that turns overload into timeouts.  The ops that read shared state only
 * (health, stats, info, reload) are answered as they arrive, so a full
 * queue never makes a live daemon look dead.  record goes to the writer
 * thread (writer.h) over its own pipe, bounded by record.queue_max in the
 * same way; its replies come back here like the workers', so every reply
 * passes the same byte budget and counters.
 *
 * Signals arrive through a signalfd polled with the sockets: they are
 * blocked in every thread attnd creates, so none interrupts a ZeroMQ call
 * half-way through a message (wire.h retries on EINTR all the same).
 * Threads a library started before main blocked them (OpenBLAS's pool,
 * libmicrohttpd's, which must answer /healthz during the first load) do not
 * block them; a signal delivered there runs a handler that forwards it
 * through a pipe polled beside the signalfd.
 */
#include "daemon/server.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon/arena.h"
#include "daemon/auth.h"
#include "daemon/http.h"
#include "daemon/impressions.h"
#include "daemon/log.h"
#include "daemon/ops.h"
#include "daemon/peers.h"
#include "daemon/reload.h"
#include "daemon/reply.h"
#include "daemon/snapshot.h"
#include "daemon/wire.h"
#include "daemon/worker.h"
#include "daemon/writer.h"
#include "util/clock.h"

#define S_BATCH 64          /* messages read per poll wake-up, to bound latency of the rest */
#define S_QUIET_MS 250      /* shutdown: the client socket must stay empty this long */
#define S_DRAIN_MIN_MS 2000 /* ... and is drained this long even past the grace */
#define S_QPS_SAMPLES 11    /* once a second: a 10 s window */
#define S_DROP_LOG_NS 10000000000ull   /* at most one "replies dropped" line per 10 s */
#define S_LOOK_NS 200000ull /* with work queued and no helper owing, look at most this late */
#define S_HELPER_DEPTH 2    /* requests a helper may hold: the one it scores and the next */
#define S_HOLD_MAX 4        /* replies held for one hand-over to libzmq's I/O thread */
#define S_HOLD_NS 100000ull /* ... and for at most this long (checked between requests) */
#define S_HOLD_BEHIND 4096  /* ... and never behind a request this large (a slow one) */
#define S_FULL_LOOK_NS 1000000ull /* with work queued, signals and reloads are seen this late */

/* A reply written and budgeted, waiting for the next hand-over. */
typedef struct s_held {
    zmq_msg_t route, body;
    uint8_t style;
} s_held;

typedef struct s_main {
    srv_state st;
    void *frontend;
    srv_lanes *lanes;       /* [i]: main and helper i (lane 0 unused) */
    int sig_fd;             /* signalfd */
    int sig_pipe[2];        /* the handler's forwarding pipe */
    srv_worker **workers;   /* [0] runs on this thread */
    int *owed;              /* replies each helper owes */
    int n_owed;             /* ... over all helpers */
    srv_task *queue;        /* ring of queue_max: what a lane carries, so a request
                               moves from here straight into a helper's lane */
    int q_head, q_len;
    srv_reloader *reloader;
    srv_http *http;         /* /metrics, /healthz, /readyz; NULL when metrics.bind is empty */
    void *writer_pipe;      /* PAIR to the writer thread (NULL: record.enabled = off) */
    srv_writer *writer;
    srv_peers *peers;       /* reply bytes queued per client */
    s_held held[S_HOLD_MAX];
    int n_held;
    uint64_t held_since;    /* when the oldest held reply was written */
    srv_json out;           /* errors the main thread writes itself */
    srv_metrics_view *view_now, *view_prev, *view_interval;
    uint64_t qps_ring[S_QPS_SAMPLES];
    uint64_t qps_time[S_QPS_SAMPLES];
    int qps_at, qps_filled;
    uint64_t next_metrics, next_poll, stop_deadline;
    uint64_t next_drop_log, drops_logged;
} s_main;

/* ---- replies -------------------------------------------------------------- */

/* Hand the held replies to libzmq.  A reply counts as sent only once
 * libzmq took it. */
static void s_flush_replies(s_main *m)
{
    srv_counters *c = &m->st.counters;
    for (int i = 0; i < m->n_held; i++) {
        s_held *h = &m->held[i];
        if (srv_wire_send_msg(m->frontend, &h->route, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            atomic_fetch_add(zmq_errno() == EHOSTUNREACH ? &c->unroutable : &c->dropped, 1);
            zmq_msg_close(&h->route);
            zmq_msg_close(&h->body);
            continue;
        }
        zmq_msg_close(&h->route);
        if (h->style == SRV_STYLE_REQ)
            srv_wire_send(m->frontend, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        if (srv_wire_send_msg(m->frontend, &h->body, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&h->body);
            atomic_fetch_add(&c->dropped, 1);
            continue;
        }
        atomic_fetch_add(&c->replied, 1);
    }
    m->n_held = 0;
}

/* Every reply leaves through here.  A client over its byte budget (it does
 * not read) gets nothing, counted; one that has gone is counted too.
 * Replies are held while main works through a queue, until it would sleep,
 * S_HOLD_MAX are held, or the oldest has waited S_HOLD_NS: each hand-over
 * wakes libzmq's I/O thread (an eventfd write, ~8 us of this guest's time
 * with the wake-up), which then writes all that was held in one send. */
static void s_send_reply(s_main *m, zmq_msg_t *route, uint8_t style, const char *buf, size_t len)
{
    s_held *h = &m->held[m->n_held];
    int rc = srv_peers_reply(m->peers, route, buf, len, &h->body);
    if (rc != SRV_PEER_OK) {
        atomic_fetch_add(&m->st.counters.dropped, 1);
        return;
    }
    zmq_msg_init(&h->route);
    zmq_msg_copy(&h->route, route);
    h->style = style;
    if (m->n_held++ == 0)
        m->held_since = util_now_ns();
    if (m->n_held == S_HOLD_MAX)
        s_flush_replies(m);
}

static void s_send_cb(void *ctx, zmq_msg_t *route, uint8_t style, const char *buf, size_t len)
{
    s_main *m = ctx;
    s_send_reply(m, route, style, buf, len);
    atomic_fetch_sub(&m->st.counters.in_flight, 1);   /* a reload waiter */
}

/* An error answered here (busy, too_large, bad_frame, unavailable), counted
 * under the request's op (NULL: it could not be read). */
static void s_reply_error(s_main *m, zmq_msg_t *route, uint8_t style, const char *id_json,
                          const srv_op *op, int code, const char *why)
{
    srv_reply_error(&m->out, id_json, code, why);
    srv_counters_reply(&m->st.counters, srv_op_row(op), code);
    s_send_reply(m, route, style, m->out.buf, m->out.len);
}

/* ---- handling on this thread ---------------------------------------------- */

/* Run a request on worker 0 and send (or park) its answer.  Takes route. */
static void s_handle_here(s_main *m, zmq_msg_t *route, uint8_t style, const zmq_msg_t *payload,
                          uint64_t t_recv, int role, int was_in_flight)
{
    srv_worker *w = m->workers[0];
    int outcome = srv_worker_handle(w, t_recv, role, zmq_msg_data((zmq_msg_t *)payload),
                                    zmq_msg_size((zmq_msg_t *)payload));
    size_t len;
    const char *reply = srv_worker_reply(w, &len);
    if (outcome == SRV_OUT_RELOAD) {
        if (!was_in_flight)
            atomic_fetch_add(&m->st.counters.in_flight, 1);
        if (srv_reloader_wait(m->reloader, route, style, reply, len) != 0)
            s_send_cb(m, route, style, "", 0);   /* out of memory: nothing better to say */
    } else {
        s_send_reply(m, route, style, reply, len);
        if (was_in_flight)
            atomic_fetch_sub(&m->st.counters.in_flight, 1);
    }
    srv_worker_done(w, t_recv);
}

/* The oldest queued request, scored on this thread: no hand-off, so no
 * thread wake-ups beyond libzmq's own I/O thread. */
static void s_process_inline(s_main *m)
{
    srv_task *p = &m->queue[m->q_head];
    m->q_head = (m->q_head + 1) % m->st.cfg.queue_max;
    m->q_len--;
    atomic_fetch_sub(&m->st.counters.queued, 1);
    if (m->n_held > 0 && zmq_msg_size(&p->payload) > S_HOLD_BEHIND)
        s_flush_replies(m);
    s_handle_here(m, &p->route, p->style, &p->payload, p->t_recv_ns, p->role, 1);
    zmq_msg_close(&p->route);
    zmq_msg_close(&p->payload);
}

/* ---- dispatch ------------------------------------------------------------- */

/* Moves the request out of p into the helper's lane. */
static void s_dispatch(s_main *m, int worker, srv_task *p)
{
    if (srv_lane_give(srv_lanes_at(m->lanes, worker), p) != 0) {
        /* main never gives more than a lane holds but for a bug: say so, answer */
        srv_log(SRV_ERROR, "msg=\"cannot hand a request to a worker: its lane is full\" "
                "worker=%d", worker);
        s_reply_error(m, &p->route, p->style, "null", NULL, SRV_E_INTERNAL,
                      "internal: a worker's lane was full");
        atomic_fetch_sub(&m->st.counters.in_flight, 1);
        return;
    }
    m->owed[worker]++;
    m->n_owed++;
}

static void s_enqueue(s_main *m, zmq_msg_t *route, zmq_msg_t *payload, uint64_t t_recv,
                      uint8_t style, uint8_t role)
{
    srv_task *p = &m->queue[(m->q_head + m->q_len) % m->st.cfg.queue_max];
    zmq_msg_init(&p->route);
    zmq_msg_init(&p->payload);
    zmq_msg_move(&p->route, route);
    zmq_msg_move(&p->payload, payload);
    p->t_recv_ns = t_recv;
    p->style = style;
    p->role = role;
    m->q_len++;
    atomic_fetch_add(&m->st.counters.in_flight, 1);
    atomic_fetch_add(&m->st.counters.queued, 1);
}

/* Hand queued requests to helpers, idle ones first, while more than keep
 * are queued: this thread keeps the oldest to score itself (keep = 1),
 * which costs no hand-off, unless the queue is full.  A busy helper takes a
 * second request: then it starts it the moment it has replied, instead of
 * idling until this thread has finished scoring and looks again, and needs
 * no wake-up for it.  The price is bounded: a slow request holds at most
 * one other behind it. */
static void s_feed_helpers(s_main *m, int keep)
{
    for (int depth = 1; depth <= S_HELPER_DEPTH; depth++)
        for (int w = 1; w < m->st.n_workers && m->q_len > keep; w++) {
            if (m->owed[w] >= depth)
                continue;
            srv_task *p = &m->queue[m->q_head];
            m->q_head = (m->q_head + 1) % m->st.cfg.queue_max;
            m->q_len--;
            atomic_fetch_sub(&m->st.counters.queued, 1);
            s_dispatch(m, w, p);
            zmq_msg_close(&p->route);
            zmq_msg_close(&p->payload);
        }
}

/* A request for the writer: handed over, or refused at once when recording
 * is off or the writer's queue is full. */
static void s_to_writer(s_main *m, zmq_msg_t *route, zmq_msg_t *payload, uint64_t t_recv,
                        uint8_t style, const srv_op *op, const char *id_json, uint8_t role)
{
    srv_rec_stats *rec = &m->st.rec;
    if (!m->writer) {
        s_reply_error(m, route, style, id_json, op, SRV_E_UNAVAILABLE,
                      "recording is off on this server (record.enabled = off)");
        return;
    }
    if (atomic_load(&rec->queued) >= m->st.cfg.record_queue_max) {
        s_reply_error(m, route, style, id_json, op, SRV_E_BUSY,
                      "the writer's queue is full (record.queue_max); retry with backoff");
        return;
    }
    srv_task_meta meta = {.t_recv_ns = t_recv, .style = style, .role = role};
    if (srv_wire_send_msg(m->writer_pipe, route, ZMQ_SNDMORE) < 0 ||
        srv_wire_send(m->writer_pipe, &meta, sizeof meta, ZMQ_SNDMORE) < 0 ||
        srv_wire_send_msg(m->writer_pipe, payload, 0) < 0) {
        srv_log(SRV_ERROR, "msg=\"cannot hand a request to the writer\" reason=\"%s\"",
                zmq_strerror(zmq_errno()));
        return;
    }
    atomic_fetch_add(&rec->queued, 1);
    atomic_fetch_add(&m->st.counters.in_flight, 1);
}

/* Read every frame of one client message.  Returns the number of frames
 * (frames past the third are read and dropped but counted). */
static int s_recv_message(void *sock, zmq_msg_t f[3], int flags)
{
    int n = 0;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (srv_wire_recv(sock, &part, n == 0 ? flags : 0) < 0) {
            zmq_msg_close(&part);
            return n;
        }
        int more = zmq_msg_more(&part);
        if (n < 3)
            zmq_msg_move(&f[n], &part);
        zmq_msg_close(&part);
        n++;
        if (!more)
            return n;
    }
}

/* One well-framed request of acceptable size: answer, hand over, queue or
 * refuse it. */
/* Who is asking (a revoked key) and how fast (token buckets), before any
 * queue, so that a flood costs its sender and not the others.  The
 * caller's role (enum srv_role), or -1 when it was refused and answered. */
static int s_admit(s_main *m, zmq_msg_t *route, zmq_msg_t *payload, uint64_t t_recv,
                   uint8_t style, const char *id_json, const srv_op *op)
{
    char why[200];
    int role;
    uint64_t retry_ns;
    int code = srv_auth_admit(m->st.auth, route, payload, t_recv, &role, &retry_ns, why,
                              sizeof why);
    if (code == SRV_OK)
        return role;
    if (code == SRV_E_RATE_LIMITED) {
        srv_reply_error_retry(&m->out, id_json, code, why, (retry_ns + 999999) / 1000000);
        srv_counters_reply(&m->st.counters, srv_op_row(op), code);
        s_send_reply(m, route, style, m->out.buf, m->out.len);
    } else {
        s_reply_error(m, route, style, id_json, op, code, why);
    }
    return -1;
}

static void s_route(s_main *m, zmq_msg_t *route, zmq_msg_t *payload, uint64_t t_recv,
                    uint8_t style)
{
    const srv_op *op;
    char id_json[SRV_ID_JSON_MAX];
    srv_request_peek(zmq_msg_data(payload), zmq_msg_size(payload), &op, id_json);
    int role = s_admit(m, route, payload, t_recv, style, id_json, op);
    if (role < 0)
        return;
    if (op && op->at == SRV_AT_MAIN)
        s_handle_here(m, route, style, payload, t_recv, role, 0);
    else if (op && op->at == SRV_AT_WRITER && !atomic_load(&m->st.stopping))
        s_to_writer(m, route, payload, t_recv, style, op, id_json, (uint8_t)role);
    else if (atomic_load(&m->st.stopping))
        s_reply_error(m, route, style, id_json, op, SRV_E_UNAVAILABLE,
                      "shutting down: send to another instance or retry later");
    else {
        if (m->q_len == m->st.cfg.queue_max)
            s_feed_helpers(m, 0);   /* full: a helper with room makes room */
        if (m->q_len == m->st.cfg.queue_max) {
            s_reply_error(m, route, style, id_json, op, SRV_E_BUSY,
                          "every worker is busy and the queue is full; retry with backoff");
            return;
        }
        s_enqueue(m, route, payload, t_recv, style, (uint8_t)role);
        s_feed_helpers(m, 1);
    }
}

static void s_on_frontend(s_main *m)
{
    for (int batch = 0; batch < S_BATCH; batch++) {
        zmq_msg_t f[3];
        for (int i = 0; i < 3; i++)
            zmq_msg_init(&f[i]);
        int n = s_recv_message(m->frontend, f, ZMQ_DONTWAIT);
        if (n > 0) {
            atomic_fetch_add(&m->st.counters.received, 1);
            /* [route]["" delimiter]?[payload]: REQ peers always add the delimiter. */
            uint8_t style = n >= 2 && zmq_msg_size(&f[1]) == 0 ? SRV_STYLE_REQ : SRV_STYLE_BARE;
            int at = style == SRV_STYLE_REQ ? 2 : 1;
            size_t size = n == at + 1 ? zmq_msg_size(&f[at]) : 0;
            char why[160];
            if (n != at + 1)
                s_reply_error(m, &f[0], style, "null", NULL, SRV_E_BAD_FRAME,
                              n <= at ? "message: no payload frame"
                                      : "message: expected one JSON frame, got several");
            else if (size > (size_t)m->st.cfg.max_message_bytes) {
                snprintf(why, sizeof why, "message: %zu bytes, more than "
                         "limits.max_message_bytes (%d)", size, m->st.cfg.max_message_bytes);
                s_reply_error(m, &f[0], style, "null", NULL, SRV_E_TOO_LARGE, why);
            } else
                s_route(m, &f[0], &f[at], util_now_ns(), style);
        }
        for (int i = 0; i < 3; i++)
            zmq_msg_close(&f[i]);
        if (n == 0)
            return;
    }
}

/* ---- lanes: what helpers hand back ----------------------------------------- */

static void s_on_lanes(s_main *m)
{
    srv_done d;
    for (int w = 1; w < m->st.n_workers; w++) {
        srv_lane *l = srv_lanes_at(m->lanes, w);
        while (m->owed[w] > 0 && srv_lane_collect(l, &d)) {
            m->owed[w]--;
            m->n_owed--;
            if (d.kind == SRV_DONE_REPLY) {
                s_send_reply(m, &d.route, d.style, zmq_msg_data(&d.body), zmq_msg_size(&d.body));
                atomic_fetch_sub(&m->st.counters.in_flight, 1);
            } else if (d.kind == SRV_DONE_RELOAD) {
                if (srv_reloader_wait(m->reloader, &d.route, d.style, zmq_msg_data(&d.body),
                                      zmq_msg_size(&d.body)) != 0)
                    s_send_cb(m, &d.route, d.style, "", 0);
            } else {
                s_reply_error(m, &d.route, d.style, "null", NULL, SRV_E_INTERNAL,
                              "out of memory handing the reply over");
                atomic_fetch_sub(&m->st.counters.in_flight, 1);
            }
            zmq_msg_close(&d.route);
            zmq_msg_close(&d.body);
        }
    }
}

/* ---- the writer's replies --------------------------------------------------- */

static void s_on_writer(s_main *m)
{
    for (;;) {
        zmq_msg_t f[3];
        for (int i = 0; i < 3; i++)
            zmq_msg_init(&f[i]);
        int n = 0;
        while (n < 3 && srv_wire_recv(m->writer_pipe, &f[n], n ? 0 : ZMQ_DONTWAIT) >= 0 &&
               (++n == 3 || zmq_msg_more(&f[n - 1])))
            ;
        if (n == 3) {
            srv_done_meta dm = {0};
            if (zmq_msg_size(&f[1]) == sizeof dm)
                memcpy(&dm, zmq_msg_data(&f[1]), sizeof dm);
            s_send_reply(m, &f[0], dm.style, zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
            atomic_fetch_sub(&m->st.counters.in_flight, 1);
            atomic_fetch_sub(&m->st.rec.queued, 1);
        } else if (n > 0) {
            srv_wire_discard_more(m->writer_pipe);
        }
        for (int i = 0; i < 3; i++)
            zmq_msg_close(&f[i]);
        if (n == 0)
            return;
    }
}

/* ---- cron ----------------------------------------------------------------- */

static void s_metrics_line(s_main *m)
{
    srv_state_collect(&m->st, m->view_now, SRV_COLLECT_QUANTILES);
    srv_metrics_interval(m->view_interval, m->view_now, m->view_prev);
    char line[4096];
    srv_metrics_logfmt(m->view_interval, line, sizeof line);
    srv_log(SRV_INFO, "%s", line);
    srv_metrics_view *t = m->view_prev;
    m->view_prev = m->view_now;
    m->view_now = t;
}

static void s_qps(s_main *m, uint64_t now)
{
    /* qps over the last ten seconds, from a ring of reply counts. */
    m->qps_ring[m->qps_at] = atomic_load(&m->st.counters.replied);
    m->qps_time[m->qps_at] = now;
    int oldest = m->qps_filled < S_QPS_SAMPLES - 1 ? 0 : (m->qps_at + 1) % S_QPS_SAMPLES;
    if (m->qps_at != oldest && now > m->qps_time[oldest]) {
        double rate = (double)(m->qps_ring[m->qps_at] - m->qps_ring[oldest]) * 1e9 /
                      (double)(now - m->qps_time[oldest]);
        atomic_store(&m->st.counters.qps_milli, (uint64_t)(rate * 1000));
    }
    m->qps_at = (m->qps_at + 1) % S_QPS_SAMPLES;
    if (m->qps_filled < S_QPS_SAMPLES)
        m->qps_filled++;
}

/* Replies dropped for clients that do not read: one line per 10 s at most,
 * so that such a client cannot flood the log either. */
static void s_log_drops(s_main *m, uint64_t now)
{
    uint64_t dropped = atomic_load(&m->st.counters.dropped);
    if (dropped == m->drops_logged || now < m->next_drop_log)
        return;
    srv_log(SRV_WARN, "msg=\"replies dropped: a client is not reading\" dropped=%llu total=%llu "
            "budget_bytes=%d", (unsigned long long)(dropped - m->drops_logged),
            (unsigned long long)dropped, m->st.cfg.peer_buffer_bytes);
    m->drops_logged = dropped;
    m->next_drop_log = now + S_DROP_LOG_NS;
}

static void s_cron(s_main *m, uint64_t now)
{
    const srv_config *cfg = &m->st.cfg;
    srv_counters_sample(&m->st.counters);
    s_qps(m, now);
    srv_rec_tick(&m->st.rec, now);
    s_log_drops(m, now);
    srv_peers_sweep(m->peers);
    srv_auth_cron(m->st.auth, now);
    if (cfg->metrics_interval > 0 && now >= m->next_metrics) {
        s_metrics_line(m);
        m->next_metrics = now + (uint64_t)(cfg->metrics_interval * 1e9);
    }
    if (cfg->reload_poll > 0 && now >= m->next_poll && !atomic_load(&m->st.stopping)) {
        srv_reloader_poll(m->reloader);
        m->next_poll = now + (uint64_t)(cfg->reload_poll * 1e9);
    }
}

/* ---- signals -------------------------------------------------------------- */

static int s_sig_write = -1;

static void s_forward(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    if (s_sig_write >= 0) {
        ssize_t rc = write(s_sig_write, &c, 1);
        (void)rc;
    }
    errno = saved;
}

static void s_on_signo(s_main *m, int signo)
{
    if (signo == SIGHUP) {
        if (!atomic_load(&m->st.stopping))
            srv_reloader_start(m->reloader, "SIGHUP");
    } else if (!atomic_load(&m->st.stopping)) {
        atomic_store(&m->st.stopping, 1);
        m->stop_deadline = util_now_ns() + (uint64_t)(m->st.cfg.shutdown_grace * 1e9);
        srv_log(SRV_INFO, "msg=\"stopping: finishing in-flight requests\" in_flight=%d",
                atomic_load(&m->st.counters.in_flight));
    }
}

static void s_on_signal(s_main *m)
{
    struct signalfd_siginfo si;
    while (read(m->sig_fd, &si, sizeof si) == (ssize_t)sizeof si)
        s_on_signo(m, (int)si.ssi_signo);
    unsigned char c[16];
    ssize_t n;
    while ((n = read(m->sig_pipe[0], c, sizeof c)) > 0)
        for (ssize_t i = 0; i < n; i++)
            s_on_signo(m, c[i]);
}

/* Block the signals attnd handles in this thread and every thread created
 * after, read them from a signalfd, and forward those that land on a
 * foreign thread through the pipe. */
static int s_signals(s_main *m)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
        pipe2(m->sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    s_sig_write = m->sig_pipe[1];
    struct sigaction sa = {.sa_handler = s_forward};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    m->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return m->sig_fd < 0 ? -1 : 0;
}

/* ---- start and stop ------------------------------------------------------- */

/* Worker 0 runs on this thread; the others get threads of their own, each
 * with its lane to this one. */
static int s_start_workers(s_main *m)
{
    srv_state *st = &m->st;
    char why[600];
    for (int i = 0; i < st->n_workers; i++) {
        m->workers[i] = srv_worker_start(st, i, i > 0 ? srv_lanes_at(m->lanes, i) : NULL, why,
                                         sizeof why);
        if (!m->workers[i]) {
            srv_log(SRV_ERROR, "msg=\"cannot start worker\" reason=\"%s\"", why);
            return -1;
        }
        st->wstats[i] = srv_worker_stats(m->workers[i]);
    }
    return 0;
}

/* The writer, when recording is on: its pipe, then its thread, which opens
 * the database read-write -- a file attnd may not write stops start-up
 * here with the reason. */
static int s_start_writer(s_main *m)
{
    srv_state *st = &m->st;
    st->n_wstats = st->n_workers;
    if (!st->cfg.record_enabled)
        return 0;
    int hwm = 0;   /* unbounded: record.queue_max is the bound */
    char why[700];
    m->writer_pipe = zmq_socket(st->zctx, ZMQ_PAIR);
    if (!m->writer_pipe || zmq_setsockopt(m->writer_pipe, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(m->writer_pipe, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_bind(m->writer_pipe, SRV_WRITER_PIPE) != 0) {
        srv_log(SRV_ERROR, "msg=\"cannot bind the writer's pipe\" reason=\"%s\"",
                zmq_strerror(zmq_errno()));
        return -1;
    }
    m->writer = srv_writer_start(st, why, sizeof why);
    if (!m->writer) {
        srv_log(SRV_ERROR, "msg=\"cannot start the writer\" reason=\"%s\"", why);
        return -1;
    }
    st->wstats[st->n_wstats++] = srv_writer_stats(m->writer);
    return 0;
}

static void s_stop_workers(s_main *m)
{
    for (int i = 1; i < m->st.n_workers; i++)
        if (m->workers[i])
            srv_lane_stop(srv_lanes_at(m->lanes, i));
    for (int i = 0; i < m->st.n_workers; i++)
        srv_worker_join(&m->workers[i]);
}

static int s_clamp(long v, long lo, long hi)
{
    return (int)(v < lo ? lo : v > hi ? hi : v);
}

static int s_bind_frontend(s_main *m)
{
    const srv_config *cfg = &m->st.cfg;
    m->frontend = zmq_socket(m->st.zctx, ZMQ_ROUTER);
    /* Oversize requests within 4x the limit get a `too_large` reply; beyond
     * that libzmq drops the connection rather than buffer the bytes. */
    int64_t maxmsg = (int64_t)cfg->max_message_bytes * 4 + 4096;
    /* Replies are bounded in bytes per client (peers.h); the message HWM is
     * only a backstop.  Requests: a client's unread ones stall its
     * connection (TCP back-pressure) past its byte budget, never drop. */
    int sndhwm = 1000000;
    int rcvhwm = s_clamp(cfg->peer_buffer_bytes / cfg->max_message_bytes, 16, 100000);
    int mandatory = 1;   /* an unroutable reply is an error we count, not a silent drop */
    char why[600];
    if (m->frontend && srv_auth_frontend(m->st.auth, m->frontend, why, sizeof why)) {
        srv_log(SRV_ERROR, "msg=\"cannot set up access control\" reason=\"%s\"", why);
        return -1;
    }
    if (!m->frontend || zmq_setsockopt(m->frontend, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        zmq_setsockopt(m->frontend, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) ||
        zmq_setsockopt(m->frontend, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) ||
        zmq_setsockopt(m->frontend, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory) ||
        zmq_bind(m->frontend, cfg->bind) != 0) {
        srv_log(SRV_ERROR, "msg=\"cannot bind\" endpoint=%s reason=\"%s\"", cfg->bind,
                zmq_strerror(zmq_errno()));
        return -1;
    }
    char ep[256];
    size_t eplen = sizeof ep;
    zmq_getsockopt(m->frontend, ZMQ_LAST_ENDPOINT, ep, &eplen);
    srv_log(SRV_INFO, "msg=listening endpoint=%s workers=%d queue_max=%d peer_buffer_bytes=%d "
            "security=%s kernel=%s", ep, m->st.n_workers, cfg->queue_max, cfg->peer_buffer_bytes,
            cfg->security == CFG_SECURITY_CURVE ? "curve" : "none", attn_kernel_name());
    return 0;
}

/* Shutdown, once nothing is in flight: answer `unavailable` to whatever
 * reaches the client socket -- everything queued there, and what is still
 * in transit from a client's burst -- until it has stayed empty for
 * S_QUIET_MS, or the grace ends.  Not one batch: a burst larger than
 * S_BATCH that the loop had not read yet would otherwise get silence.  When
 * the grace has ended (or nearly), the drain still gets S_DRAIN_MIN_MS: a
 * request libzmq had not handed over yet when a busy main ran out of grace
 * deserves its `unavailable` as much as a queued one. */
static void s_drain_frontend(s_main *m)
{
    uint64_t end = util_now_ns() + (uint64_t)S_DRAIN_MIN_MS * 1000000u;
    if (end < m->stop_deadline)
        end = m->stop_deadline;
    for (;;) {
        s_flush_replies(m);
        zmq_pollitem_t it = {.socket = m->frontend, .events = ZMQ_POLLIN};
        int rc = srv_wire_poll(&it, 1, S_QUIET_MS);
        if (rc <= 0 || util_now_ns() >= end)
            return;
        s_on_frontend(m);
    }
}

/* The grace ended with requests still queued: each gets `unavailable`
 * rather than silence. */
static void s_refuse_queue(s_main *m)
{
    while (m->q_len > 0) {
        srv_task *p = &m->queue[m->q_head];
        char id_json[SRV_ID_JSON_MAX];
        const srv_op *op;
        srv_request_peek(zmq_msg_data(&p->payload), zmq_msg_size(&p->payload), &op, id_json);
        s_reply_error(m, &p->route, p->style, id_json, op, SRV_E_UNAVAILABLE,
                      "shutting down: the grace period ended before this request was served");
        zmq_msg_close(&p->route);
        zmq_msg_close(&p->payload);
        m->q_head = (m->q_head + 1) % m->st.cfg.queue_max;
        m->q_len--;
        atomic_fetch_sub(&m->st.counters.queued, 1);
        atomic_fetch_sub(&m->st.counters.in_flight, 1);
    }
}

/* 1 when shutdown is complete. */
static int s_stop_step(s_main *m, uint64_t now)
{
    int in_flight = atomic_load(&m->st.counters.in_flight);
    int expired = now >= m->stop_deadline;
    if ((in_flight > 0 || srv_reloader_running(m->reloader)) && !expired)
        return 0;
    if (expired)
        s_refuse_queue(m);
    s_drain_frontend(m);
    in_flight = atomic_load(&m->st.counters.in_flight);
    if (in_flight)
        srv_log(SRV_WARN, "msg=\"shutdown grace expired\" in_flight=%d", in_flight);
    return 1;
}

static void s_loop(s_main *m)
{
    uint64_t next_cron = util_now_ns(), last_look = 0, last_full_look = 0;
    int looked = 0;   /* the last turn looked */
    for (;;) {
        uint64_t now = util_now_ns();
        if (now >= next_cron) {
            s_cron(m, now);
            next_cron = now + 1000000000ull;
        }
        if (m->n_held > 0 && now - m->held_since >= S_HOLD_NS)
            s_flush_replies(m);
        if (atomic_load(&m->st.stopping) && s_stop_step(m, now))
            return;
        /* Replies first (a look at each lane, no system call): they free
         * helpers for the requests queued or read next. */
        if (m->n_owed > 0) {
            s_on_lanes(m);
            s_feed_helpers(m, 1);
        }
        /* Queued work and no helper to answer (1 worker, or all idle): score
         * the next one without looking.  A look costs three system calls,
         * and the requests it would find queue behind these anyway; what is
         * answered on reading (health, stats, busy) waits S_LOOK_NS at most.
         * With every helper holding its next request as well, one turn may
         * go without a look: a helper has a request's time of work left. */
        int helpers_full = m->n_owed == S_HELPER_DEPTH * (m->st.n_workers - 1);
        if (m->q_len > 0 && (m->n_owed == 0 || (helpers_full && looked)) &&
            now - last_look < S_LOOK_NS) {
            s_process_inline(m);
            looked = 0;
            continue;
        }
        last_look = now;
        looked = 1;
        /* With work queued, a look is a read of each socket until it has
         * nothing: zmq_poll would add a poll of every descriptor and a check
         * of each socket's mailbox (getpid and poll) before those reads --
         * three of the five system calls a look costs.  The descriptors
         * (signals, reloads) are polled at least every S_FULL_LOOK_NS, and
         * whenever this thread is about to sleep. */
        if (m->q_len > 0 && now - last_full_look < S_FULL_LOOK_NS) {
            if (m->writer_pipe && atomic_load(&m->st.rec.queued) > 0)
                s_on_writer(m);
            s_on_frontend(m);
            s_feed_helpers(m, 1);
            if (m->q_len > 0)
                s_process_inline(m);
            continue;
        }
        last_full_look = now;
        zmq_pollitem_t items[6] = {
            {.socket = m->frontend, .events = ZMQ_POLLIN},
            {.fd = srv_reloader_fd(m->reloader), .events = ZMQ_POLLIN},
            {.fd = m->sig_fd, .events = ZMQ_POLLIN},
            {.fd = m->sig_pipe[0], .events = ZMQ_POLLIN},
        };
        /* Each socket in the set costs libzmq a look at its mailbox (two
         * system calls) every turn: the writer's pipe is watched only while
         * it owes an answer, which is the only thing it ever sends here. */
        int n = 4, at_lanes = -1, at_writer = -1;
        long timeout_ms = (long)((next_cron - now) / 1000000) + 1;
        if (atomic_load(&m->st.stopping) && timeout_ms > 50)
            timeout_ms = 50;
        if (m->q_len > 0)
            timeout_ms = 0;   /* work is waiting: only look, never sleep */
        else
            s_flush_replies(m);   /* ... else nothing is held while main sleeps */
        /* A sleep with helpers owing: they write the lanes' eventfd when
         * they answer, unless an answer is already there. */
        if (m->n_owed > 0 && timeout_ms != 0) {
            int efd = srv_lanes_sleep(m->lanes);
            if (efd < 0) {
                timeout_ms = 0;
            } else {
                at_lanes = n;
                items[n++] = (zmq_pollitem_t){.fd = efd, .events = ZMQ_POLLIN};
            }
        }
        if (m->writer_pipe && atomic_load(&m->st.rec.queued) > 0) {
            at_writer = n;
            items[n++] = (zmq_pollitem_t){.socket = m->writer_pipe, .events = ZMQ_POLLIN};
        }
        int rc = srv_wire_poll(items, n, timeout_ms);
        if (at_lanes >= 0)
            srv_lanes_woke(m->lanes, items[at_lanes].revents & ZMQ_POLLIN);
        if (rc < 0) {
            srv_log(SRV_ERROR, "msg=\"poll failed\" reason=\"%s\"", zmq_strerror(zmq_errno()));
            return;
        }
        if (m->n_owed > 0)
            s_on_lanes(m);
        if (at_writer >= 0 && (items[at_writer].revents & ZMQ_POLLIN))
            s_on_writer(m);
        if (items[0].revents & ZMQ_POLLIN)
            s_on_frontend(m);
        if (items[1].revents & ZMQ_POLLIN)
            srv_reloader_on_done(m->reloader);
        if ((items[2].revents | items[3].revents) & ZMQ_POLLIN)
            s_on_signal(m);
        /* Helpers take what they may; this thread scores the oldest. */
        s_feed_helpers(m, 1);
        if (m->q_len > 0)
            s_process_inline(m);
    }
}

static void s_cleanup(s_main *m)
{
    srv_http_stop(&m->http);   /* first: it reads the workers' statistics and the snapshot */
    srv_reloader_free(&m->reloader);
    for (int i = 0; i < m->q_len; i++) {
        srv_task *p = &m->queue[(m->q_head + i) % m->st.cfg.queue_max];
        zmq_msg_close(&p->route);
        zmq_msg_close(&p->payload);
    }
    if (m->workers)
        s_stop_workers(m);
    srv_lanes_free(&m->lanes);   /* after the helpers stopped: closes what they left */
    srv_imp_stop(&m->st.imp);   /* after the workers: nothing offers any more */
    srv_writer_stop(&m->writer, m->writer_pipe);
    srv_snapshot_publish(NULL);
    srv_state_published(&m->st, NULL);
    /* Replies still queued get the rest of the grace (2 s at least) to leave. */
    uint64_t now = util_now_ns();
    int linger = 0, flush_ms = 2000;
    if (atomic_load(&m->st.stopping) && m->stop_deadline > now + 2000000000ull)
        flush_ms = (int)((m->stop_deadline - now) / 1000000);
    if (m->frontend) {
        s_flush_replies(m);
        srv_auth_unwatch(m->st.auth, m->frontend);
        zmq_setsockopt(m->frontend, ZMQ_LINGER, &flush_ms, sizeof flush_ms);
        zmq_close(m->frontend);
    }
    if (m->writer_pipe) {
        zmq_setsockopt(m->writer_pipe, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(m->writer_pipe);
    }
    if (m->st.zctx)
        zmq_ctx_term(m->st.zctx);
    srv_auth_free(&m->st.auth);   /* its thread ended with the context */
    srv_peers_free(&m->peers);   /* after the context: no reply callback can run */
    srv_json_free(&m->out);
    free(m->view_now);
    free(m->view_prev);
    free(m->view_interval);
    free(m->queue);
    free(m->owed);
    free(m->workers);
    free(m->st.wstats);
    srv_rec_stats_destroy(&m->st.rec);
    if (m->sig_fd >= 0)
        close(m->sig_fd);
    /* No handler may write into the pipe once its descriptor can be reused. */
    if (s_sig_write >= 0) {
        signal(SIGTERM, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        s_sig_write = -1;
    }
    for (int i = 0; i < 2; i++)
        if (m->sig_pipe[i] >= 0)
            close(m->sig_pipe[i]);
}

/* The operators' HTTP listener, first of all: /healthz answers (and
 * /readyz says "starting") while a large first snapshot loads. */
static int s_start_http(s_main *m)
{
    if (!m->st.cfg.metrics_bind[0])
        return 0;
    char why[600];
    m->http = srv_http_start(&m->st, why, sizeof why);
    if (!m->http) {
        srv_log(SRV_ERROR, "msg=\"cannot start the metrics listener\" reason=\"%s\"", why);
        return -1;
    }
    m->st.metrics_port = srv_http_port(m->http);
    srv_log(SRV_INFO, "msg=\"metrics listening\" bind=%s port=%d paths=/metrics,/healthz,/readyz",
            m->st.cfg.metrics_bind, m->st.metrics_port);
    return 0;
}

/* The key user ids are hashed with.  Impressions hashed under a key that
 * dies with the process could never be joined with events: that is a
 * configuration error, not something to find out after the experiment. */
static int s_mask(srv_state *st)
{
    const srv_config *cfg = &st->cfg;
    char why[600];
    st->mask_ids = cfg->mask_ids;
    if (!cfg->mask_ids)
        srv_log(SRV_WARN, "msg=\"user ids are not masked (security.mask_ids = off): they may "
                          "reach the impressions table and logs\"");
    if (cfg->mask_key[0] ? util_mask_load(&st->mask, cfg->mask_key, why, sizeof why)
                         : util_mask_random(&st->mask) ? snprintf(why, sizeof why, "libsodium "
                                                         "cannot initialise") : 0) {
        srv_log(SRV_ERROR, "msg=\"cannot load the mask key\" reason=\"%s\"", why);
        return -1;
    }
    if (cfg->mask_ids && !cfg->mask_key[0] && cfg->exp_log_impressions > 0) {
        srv_log(SRV_ERROR, "msg=\"experiment.log_impressions needs security.mask_key: users "
                           "hashed under a key made for this run could never be joined with "
                           "their events (attnctl keygen --mask FILE)\"");
        return -1;
    }
    return 0;
}

/* The first snapshot, before anything binds: a database that cannot be
 * served stops start-up with the reason. */
static int s_first_snapshot(srv_state *st)
{
    srv_snapshot *snap = NULL;
    char why[600];
    if (srv_snapshot_build(&st->cfg, &st->exp, &snap, why, sizeof why) != 0) {
        srv_log(SRV_ERROR, "msg=\"cannot load the catalog and model\" reason=\"%s\"", why);
        return -1;
    }
    srv_log(SRV_INFO, "msg=loaded model=%lld models=%d catalog=%lld items=%u unembedded=%u "
            "build_ms=%.1f bytes=%zu title_bytes=%zu", (long long)snap->model_version,
            snap->n_models, (long long)snap->catalog_version, snap->cat->n,
            snap->cat->n_unembedded, snap->build_ms, snap->bytes, snap->title_bytes);
    srv_snapshot_publish(snap);
    srv_state_published(st, snap);
    return 0;
}

static int s_alloc(s_main *m)
{
    const srv_config *cfg = &m->st.cfg;
    size_t n = (size_t)m->st.n_workers;
    m->owed = calloc(n, sizeof *m->owed);
    m->lanes = srv_lanes_new((int)n);
    m->workers = calloc(n, sizeof *m->workers);
    m->st.wstats = calloc(n + 1, sizeof *m->st.wstats);   /* the workers', the writer's */
    m->queue = calloc((size_t)cfg->queue_max, sizeof *m->queue);
    m->view_now = calloc(1, sizeof *m->view_now);
    m->view_prev = calloc(1, sizeof *m->view_prev);
    m->view_interval = calloc(1, sizeof *m->view_interval);
    m->peers = srv_peers_new((size_t)cfg->peer_buffer_bytes);
    m->st.zctx = zmq_ctx_new();
    if (!m->owed || !m->lanes || !m->workers || !m->st.wstats || !m->queue || !m->view_now ||
        !m->view_prev || !m->view_interval || !m->peers || !m->st.zctx ||
        srv_json_init(&m->out, 1 << 14))
        return -1;
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        util_hist_reset(&m->view_prev->stage[s]);
    for (int a = 0; a < SRV_ARMS_MAX; a++)
        util_hist_reset(&m->view_prev->arm_total[a]);
    return 0;
}

/* Sockets, the reloader and the workers, in that order. */
static int s_start(s_main *m)
{
    char why[600];
    if (s_alloc(m)) {
        srv_log(SRV_ERROR, "msg=\"cannot allocate the server\"");
        return -1;
    }
    /* The ZAP handler is bound before the client socket: libzmq lets in
     * every CURVE client while no handler answers. */
    m->st.auth = srv_auth_new(m->st.zctx, &m->st.cfg, why, sizeof why);
    if (!m->st.auth) {
        srv_log(SRV_ERROR, "msg=\"cannot start access control\" reason=\"%s\"", why);
        return -1;
    }
    m->reloader = srv_reloader_new(&m->st, s_send_cb, m, why, sizeof why);
    if (!m->reloader) {
        srv_log(SRV_ERROR, "msg=\"cannot start the reloader\" reason=\"%s\"", why);
        return -1;
    }
    m->st.imp = srv_imp_start(&m->st, why, sizeof why);
    if (!m->st.imp && why[0]) {
        srv_log(SRV_ERROR, "msg=\"cannot start the impression log\" reason=\"%s\"", why);
        return -1;
    }
    return s_start_workers(m) || s_start_writer(m) || s_bind_frontend(m) ? -1 : 0;
}

int srv_server_run(const srv_config *cfg)
{
    s_main *m = calloc(1, sizeof *m);
    if (!m) {
        srv_log(SRV_ERROR, "msg=\"out of memory\"");
        return 1;
    }
    m->sig_fd = m->sig_pipe[0] = m->sig_pipe[1] = -1;
    m->st.cfg = *cfg;
    m->st.started_ns = util_now_ns();
    m->st.started_wall_ns = util_wall_ns();
    srv_rec_stats_init(&m->st.rec);
    int cores = cfg_cores() < 256 ? cfg_cores() : 256;
    m->st.n_workers = cfg->workers > 0 ? cfg->workers : cores;
    srv_log_set_level(cfg->log_level);
    srv_arena_install_cjson();
    /* One BLAS thread per worker: requests run in parallel, not GEMMs. */
    openblas_set_num_threads(1);
    srv_log(SRV_INFO, "msg=starting version=%s db=%s openblas_core=%s openblas_coretype=%s",
            SRV_VERSION, cfg->db, openblas_get_corename(),
            getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset");
    int status = 1;
    char why[600];
    if (srv_experiment_parse(cfg->exp_arms, cfg->exp_salt, &m->st.exp, why, sizeof why)) {
        srv_log(SRV_ERROR, "msg=\"bad configuration\" reason=\"%s\"", why);
        free(m);
        return 1;
    }
    if (s_mask(&m->st) || s_start_http(m) || s_first_snapshot(&m->st)) {
        srv_http_stop(&m->http);
        free(m);
        return 1;
    }
    /* Before any other thread exists, so that all of them inherit the mask
     * (the HTTP thread's signals are forwarded, see s_forward). */
    if (s_signals(m)) {
        srv_log(SRV_ERROR, "msg=\"cannot set up signal handling\" reason=\"%s\"", strerror(errno));
    } else if (s_start(m) == 0) {
        srv_counters_sample(&m->st.counters);
        atomic_store(&m->st.serving, 1);
        m->next_metrics = util_now_ns() + (uint64_t)(cfg->metrics_interval * 1e9);
        m->next_poll = util_now_ns() + (uint64_t)(cfg->reload_poll * 1e9);
        s_loop(m);
        if (cfg->metrics_interval > 0)
            s_metrics_line(m);
        status = 0;
    }
    s_cleanup(m);
    srv_log(SRV_INFO, "msg=stopped status=%d", status);
    free(m);
    return status;
}
