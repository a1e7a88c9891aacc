/* server.c -- the main thread: client socket, dispatch, cron, reload, shutdown.
 *
 * Dispatch is least-recently-used: a worker is handed a request only when it
 * is idle, so a slow request never holds another one hostage behind it in a
 * worker's private queue.  Requests that find every worker busy wait in one
 * bounded FIFO here; when that is full the reply is `busy` at once -- an
 * explicit signal a client can back off on, instead of an unbounded queue
 * that turns overload into timeouts.
 */
#include "daemon/server.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon/arena.h"
#include "daemon/log.h"
#include "daemon/proto.h"
#include "daemon/snapshot.h"
#include "daemon/worker.h"
#include "store/store.h"
#include "util/clock.h"

#define S_LOADER_ENDPOINT "inproc://attnd-loader"
#define S_BATCH 64          /* messages read per poll wake-up, to bound latency of the rest */
#define S_QUIET_MS 250      /* shutdown: the client socket must stay empty this long */
#define S_QPS_SAMPLES 11    /* once a second: a 10 s window */

typedef struct s_pending {
    zmq_msg_t route;        /* client routing id */
    zmq_msg_t payload;
    uint64_t t_recv;
    uint8_t style;
} s_pending;

typedef struct s_waiter {   /* a client waiting for a reload to finish */
    zmq_msg_t route;
    uint8_t style;
    char *id_json;
} s_waiter;

typedef struct s_loader {
    pthread_t thread;
    int running;
    const srv_config *cfg;
    void *zctx;
    srv_snapshot *result;   /* NULL on failure */
    char why[600];
} s_loader;

typedef struct s_main {
    srv_server srv;
    void *frontend, *backend, *loader_rx;
    int sig_pipe[2];
    char (*ident)[16];      /* routing id of each worker: "w<index>" */
    int *idle;              /* stack of idle worker indexes */
    int n_idle;
    s_pending *queue;       /* ring of queue_max */
    int q_head, q_len;
    s_waiter *waiters;
    int n_waiters, cap_waiters;
    s_loader loader;
    store *poll_db;         /* cheap version checks for reload_poll */
    int64_t failed_model, failed_catalog;   /* last pair a poll-triggered reload failed on */
    int64_t trying_model, trying_catalog;
    srv_json out;           /* replies the main thread writes itself */
    srv_metrics_view *view_now, *view_prev, *view_interval;
    uint64_t qps_ring[S_QPS_SAMPLES];
    uint64_t qps_time[S_QPS_SAMPLES];
    int qps_at, qps_filled;
    uint64_t next_metrics, next_poll, stop_deadline;
} s_main;

static int s_signal_fd = -1;

uint64_t srv_now_ns(void)
{
    return util_now_ns();
}

static void s_on_signal(int sig)
{
    char c = sig == SIGHUP ? 'H' : 'T';
    int saved = errno;
    ssize_t rc = write(s_signal_fd, &c, 1);
    (void)rc;
    errno = saved;
}

/* ---- replies from the main thread ----------------------------------------- */

static void s_send_reply(s_main *m, zmq_msg_t *route, uint8_t style, const char *buf, size_t len)
{
    zmq_msg_send(route, m->frontend, ZMQ_SNDMORE);
    if (style == SRV_STYLE_REQ)
        zmq_send(m->frontend, "", 0, ZMQ_SNDMORE);
    zmq_send(m->frontend, buf, len, 0);
    atomic_fetch_add(&m->srv.counters.replied, 1);
}

/* An error answered here (busy, too_large, bad_frame, unavailable): the id
 * is read with a plain parse when the message is small enough to be cheap. */
static void s_reply_main_error(s_main *m, zmq_msg_t *route, uint8_t style,
                               const zmq_msg_t *payload, int code, const char *why)
{
    char id_json[SRV_ID_MAX * 6 + 8] = "null";
    if (payload && code != SRV_E_TOO_LARGE) {
        srv_request rq;
        cJSON *tree = NULL;
        char ignore[256];
        srv_request_parse(zmq_msg_data((zmq_msg_t *)payload), zmq_msg_size((zmq_msg_t *)payload),
                          &m->srv.cfg, &rq, &tree, ignore, sizeof ignore);
        memcpy(id_json, rq.id_json, sizeof id_json);
        /* A health probe must not fail because the queue is full. */
        if (code == SRV_E_BUSY && tree && rq.op == SRV_OP_HEALTH) {
            cJSON_Delete(tree);
            srv_write_health(&m->out, &m->srv, id_json);
            s_send_reply(m, route, style, m->out.buf, m->out.len);
            return;
        }
        cJSON_Delete(tree);
    }
    srv_reply_error(&m->out, id_json, code, why);
    atomic_fetch_add(&m->srv.counters.errors[code], 1);
    s_send_reply(m, route, style, m->out.buf, m->out.len);
}

/* The index in a worker's routing id "w<index>"; -1 if it is not one.
 * Frames are not NUL-terminated: parse within the frame's size. */
static int s_worker_index(zmq_msg_t *ident)
{
    const char *p = zmq_msg_data(ident);
    size_t n = zmq_msg_size(ident);
    if (n < 2 || n > 10 || p[0] != 'w')
        return -1;
    int index = 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        index = index * 10 + (p[i] - '0');
    }
    return index;
}

/* ---- dispatch ------------------------------------------------------------- */

static void s_dispatch(s_main *m, int worker, zmq_msg_t *route, zmq_msg_t *payload,
                       uint64_t t_recv, uint8_t style)
{
    srv_task_meta meta = {.t_recv_ns = t_recv, .style = style};
    zmq_send(m->backend, m->ident[worker], strlen(m->ident[worker]), ZMQ_SNDMORE);
    zmq_msg_send(route, m->backend, ZMQ_SNDMORE);
    zmq_send(m->backend, &meta, sizeof meta, ZMQ_SNDMORE);
    zmq_msg_send(payload, m->backend, 0);
}

static void s_worker_idle(s_main *m, int worker)
{
    if (m->q_len > 0) {
        s_pending *p = &m->queue[m->q_head];
        m->q_head = (m->q_head + 1) % m->srv.cfg.queue_max;
        m->q_len--;
        atomic_fetch_sub(&m->srv.counters.queued, 1);
        s_dispatch(m, worker, &p->route, &p->payload, p->t_recv, p->style);
        zmq_msg_close(&p->route);
        zmq_msg_close(&p->payload);
        return;
    }
    m->idle[m->n_idle++] = worker;
}

/* Read every frame of one client message.  Returns the number of frames
 * (frames past the third are read and dropped but counted). */
static int s_recv_message(void *sock, zmq_msg_t f[3], int flags)
{
    int n = 0;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, n == 0 ? flags : 0) < 0) {
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

static void s_on_frontend(s_main *m)
{
    const srv_config *cfg = &m->srv.cfg;
    for (int batch = 0; batch < S_BATCH; batch++) {
        zmq_msg_t f[3];
        for (int i = 0; i < 3; i++)
            zmq_msg_init(&f[i]);
        int n = s_recv_message(m->frontend, f, ZMQ_DONTWAIT);
        if (n == 0) {
            for (int i = 0; i < 3; i++)
                zmq_msg_close(&f[i]);
            return;
        }
        uint64_t t_recv = srv_now_ns();
        atomic_fetch_add(&m->srv.counters.received, 1);
        /* [route]["" delimiter]?[payload]: REQ peers always add the delimiter. */
        uint8_t style = n >= 2 && zmq_msg_size(&f[1]) == 0 ? SRV_STYLE_REQ : SRV_STYLE_BARE;
        int payload_at = style == SRV_STYLE_REQ ? 2 : 1;
        if (n != payload_at + 1) {
            s_reply_main_error(m, &f[0], style, NULL, SRV_E_BAD_FRAME,
                               n <= payload_at ? "message: no payload frame"
                                               : "message: expected one JSON frame, got several");
        } else if (zmq_msg_size(&f[payload_at]) > (size_t)cfg->max_message_bytes) {
            char why[160];
            snprintf(why, sizeof why, "message: %zu bytes, more than limits.max_message_bytes (%d)",
                     zmq_msg_size(&f[payload_at]), cfg->max_message_bytes);
            s_reply_main_error(m, &f[0], style, NULL, SRV_E_TOO_LARGE, why);
        } else if (atomic_load(&m->srv.stopping)) {
            s_reply_main_error(m, &f[0], style, &f[payload_at], SRV_E_UNAVAILABLE,
                               "shutting down: send to another instance or retry later");
        } else if (m->n_idle > 0 && m->q_len > 0) {
            /* This thread already has the queue head to score; a helper takes this. */
            atomic_fetch_add(&m->srv.counters.in_flight, 1);
            s_dispatch(m, m->idle[--m->n_idle], &f[0], &f[payload_at], t_recv, style);
        } else if (m->q_len < cfg->queue_max) {
            s_pending *p = &m->queue[(m->q_head + m->q_len) % cfg->queue_max];
            zmq_msg_init(&p->route);
            zmq_msg_init(&p->payload);
            zmq_msg_move(&p->route, &f[0]);
            zmq_msg_move(&p->payload, &f[payload_at]);
            p->t_recv = t_recv;
            p->style = style;
            m->q_len++;
            atomic_fetch_add(&m->srv.counters.in_flight, 1);
            atomic_fetch_add(&m->srv.counters.queued, 1);
        } else {
            s_reply_main_error(m, &f[0], style, &f[payload_at], SRV_E_BUSY,
                               "every worker is busy and the queue is full; retry with backoff");
        }
        for (int i = 0; i < 3; i++)
            zmq_msg_close(&f[i]);
    }
}

/* ---- reload --------------------------------------------------------------- */

static void *s_loader_main(void *arg)
{
    s_loader *l = arg;
    l->result = NULL;
    if (srv_snapshot_build(l->cfg, &l->result, l->why, sizeof l->why) != 0)
        l->result = NULL;
    void *tx = zmq_socket(l->zctx, ZMQ_PAIR);
    zmq_connect(tx, S_LOADER_ENDPOINT);
    zmq_send(tx, "", 0, 0);
    zmq_close(tx);
    return NULL;
}

static void s_reload_start(s_main *m, const char *reason)
{
    if (m->loader.running)
        return;  /* waiters join the build under way */
    srv_log(SRV_INFO, "msg=\"reload started\" reason=%s", reason);
    m->loader.cfg = &m->srv.cfg;
    m->loader.zctx = m->srv.zctx;
    if (pthread_create(&m->loader.thread, NULL, s_loader_main, &m->loader) != 0) {
        srv_log(SRV_ERROR, "msg=\"reload failed\" reason=\"cannot start the loader thread\"");
        return;
    }
    m->loader.running = 1;
}

static void s_answer_waiters(s_main *m, const srv_snapshot *snap, const char *why)
{
    for (int i = 0; i < m->n_waiters; i++) {
        s_waiter *wt = &m->waiters[i];
        if (snap) {
            srv_reply_begin(&m->out, wt->id_json);
            srv_json_bool(&m->out, 1);
            srv_json_key(&m->out, "model");
            srv_json_int(&m->out, snap->model_version);
            srv_json_key(&m->out, "catalog");
            srv_json_int(&m->out, snap->catalog_version);
            srv_json_key(&m->out, "items");
            srv_json_int(&m->out, snap->cat->n);
            srv_json_key(&m->out, "took_ms");
            srv_json_num(&m->out, snap->build_ms);
            srv_json_close(&m->out, '}');
        } else {
            srv_reply_error(&m->out, wt->id_json, why ? SRV_E_RELOAD_FAILED : SRV_E_UNAVAILABLE,
                            why ? why : "shutting down before the reload finished");
            atomic_fetch_add(&m->srv.counters.errors[why ? SRV_E_RELOAD_FAILED
                                                          : SRV_E_UNAVAILABLE], 1);
        }
        s_send_reply(m, &wt->route, wt->style, m->out.buf, m->out.len);
        zmq_msg_close(&wt->route);
        free(wt->id_json);
        atomic_fetch_sub(&m->srv.counters.in_flight, 1);
    }
    m->n_waiters = 0;
}

static void s_on_loader(s_main *m)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    zmq_msg_recv(&msg, m->loader_rx, 0);
    zmq_msg_close(&msg);
    pthread_join(m->loader.thread, NULL);
    m->loader.running = 0;
    srv_snapshot *snap = m->loader.result;
    m->loader.result = NULL;
    if (snap) {
        srv_log(SRV_INFO,
                "msg=reloaded model=%lld catalog=%lld items=%u build_ms=%.1f bytes=%zu",
                (long long)snap->model_version, (long long)snap->catalog_version, snap->cat->n,
                snap->build_ms, snap->bytes);
        atomic_fetch_add(&m->srv.counters.reloads, 1);
        m->failed_model = m->failed_catalog = -2;
        /* A reference for the waiters' reply: publishing may free nothing of it. */
        atomic_fetch_add(&snap->refs, 1);
        srv_snapshot_publish(snap);
        s_answer_waiters(m, snap, NULL);
        srv_snapshot_release(&snap);
    } else {
        srv_log(SRV_ERROR, "msg=\"reload failed, the previous snapshot keeps serving\" reason=\"%s\"",
                m->loader.why);
        atomic_fetch_add(&m->srv.counters.reload_failures, 1);
        m->failed_model = m->trying_model;
        m->failed_catalog = m->trying_catalog;
        s_answer_waiters(m, NULL, m->loader.why);
    }
}

static void s_add_waiter(s_main *m, zmq_msg_t *route, uint8_t style, const char *id, size_t len)
{
    if (m->n_waiters == m->cap_waiters) {
        int cap = m->cap_waiters ? m->cap_waiters * 2 : 8;
        s_waiter *w = realloc(m->waiters, (size_t)cap * sizeof *w);
        if (!w) {
            s_reply_main_error(m, route, style, NULL, SRV_E_INTERNAL, "out of memory");
            atomic_fetch_sub(&m->srv.counters.in_flight, 1);
            return;
        }
        m->waiters = w;
        m->cap_waiters = cap;
    }
    s_waiter *wt = &m->waiters[m->n_waiters];
    wt->id_json = strndup(id, len);
    if (!wt->id_json) {
        s_reply_main_error(m, route, style, NULL, SRV_E_INTERNAL, "out of memory");
        atomic_fetch_sub(&m->srv.counters.in_flight, 1);
        return;
    }
    zmq_msg_init(&wt->route);
    zmq_msg_move(&wt->route, route);
    wt->style = style;
    m->n_waiters++;
    m->trying_model = m->trying_catalog = -2;
    s_reload_start(m, "request");
}

/* Cheap version check: reload when the active model or catalog changed,
 * unless that exact pair already failed to load. */
static void s_poll_versions(s_main *m)
{
    if (m->loader.running)
        return;
    store_err err;
    if (!m->poll_db &&
        store_open(&m->poll_db, m->srv.cfg.db, STORE_READONLY, 100, &err) != STORE_OK) {
        srv_log(SRV_WARN, "msg=\"reload poll cannot open the database\" reason=\"%s\"", err.msg);
        return;
    }
    int64_t model = -1, catalog = 0;
    char buf[32];
    if (store_model_active(m->poll_db, &model, &err) != STORE_OK) {
        srv_log(SRV_WARN, "msg=\"reload poll failed\" reason=\"%s\"", err.msg);
        store_close(&m->poll_db);  /* reopen next time: the file may have been replaced */
        return;
    }
    if (store_meta_get(m->poll_db, "catalog_version", buf, sizeof buf, &err) == STORE_OK)
        catalog = strtoll(buf, NULL, 10);
    srv_snapshot *snap = srv_snapshot_acquire();
    int changed = !snap || snap->model_version != model || snap->catalog_version != catalog;
    srv_snapshot_release(&snap);
    if (!changed || (model == m->failed_model && catalog == m->failed_catalog))
        return;
    m->trying_model = model;
    m->trying_catalog = catalog;
    s_reload_start(m, "poll");
}

/* ---- backend -------------------------------------------------------------- */

static void s_on_backend(s_main *m)
{
    for (;;) {
        zmq_msg_t ident, route, meta, payload;
        zmq_msg_init(&ident);
        if (zmq_msg_recv(&ident, m->backend, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ident);
            return;
        }
        zmq_msg_init(&route);
        zmq_msg_init(&meta);
        zmq_msg_init(&payload);
        zmq_msg_recv(&route, m->backend, 0);
        zmq_msg_recv(&meta, m->backend, 0);
        zmq_msg_recv(&payload, m->backend, 0);
        int worker = s_worker_index(&ident);
        srv_done_meta dm = {0};
        if (zmq_msg_size(&meta) == sizeof dm)
            memcpy(&dm, zmq_msg_data(&meta), sizeof dm);
        if (dm.kind == SRV_DONE_REPLY) {
            s_send_reply(m, &route, dm.style, zmq_msg_data(&payload), zmq_msg_size(&payload));
            atomic_fetch_sub(&m->srv.counters.in_flight, 1);
        } else if (dm.kind == SRV_DONE_RELOAD) {
            s_add_waiter(m, &route, dm.style, zmq_msg_data(&payload), zmq_msg_size(&payload));
        }
        if (worker >= 0 && worker < m->srv.n_workers)
            s_worker_idle(m, worker);
        zmq_msg_close(&ident);
        zmq_msg_close(&route);
        zmq_msg_close(&meta);
        zmq_msg_close(&payload);
    }
}

/* ---- cron ----------------------------------------------------------------- */

static void s_metrics_line(s_main *m)
{
    srv_wstats *all[256];
    int n = m->srv.n_workers < 256 ? m->srv.n_workers : 256;
    for (int i = 0; i < n; i++)
        all[i] = srv_worker_stats(m->srv.workers[i]);
    srv_metrics_collect(m->view_now, all, n, &m->srv.counters);
    srv_snapshot *snap = srv_snapshot_acquire();
    m->view_now->model_version = snap ? snap->model_version : -1;
    m->view_now->catalog_version = snap ? snap->catalog_version : -1;
    m->view_now->items = snap ? snap->cat->n : 0;
    srv_snapshot_release(&snap);
    srv_metrics_interval(m->view_interval, m->view_now, m->view_prev);
    char line[3072];
    srv_metrics_logfmt(m->view_interval, line, sizeof line);
    srv_log(SRV_INFO, "%s", line);
    srv_metrics_view *t = m->view_prev;
    m->view_prev = m->view_now;
    m->view_now = t;
}

static void s_cron(s_main *m, uint64_t now)
{
    /* qps over the last ten seconds, from a ring of reply counts. */
    m->qps_ring[m->qps_at] = atomic_load(&m->srv.counters.replied);
    m->qps_time[m->qps_at] = now;
    int oldest = m->qps_filled < S_QPS_SAMPLES - 1 ? 0 : (m->qps_at + 1) % S_QPS_SAMPLES;
    if (m->qps_at != oldest && now > m->qps_time[oldest]) {
        double rate = (m->qps_ring[m->qps_at] - m->qps_ring[oldest]) * 1e9 /
                      (double)(now - m->qps_time[oldest]);
        atomic_store(&m->srv.counters.qps_milli, (uint64_t)(rate * 1000));
    }
    m->qps_at = (m->qps_at + 1) % S_QPS_SAMPLES;
    if (m->qps_filled < S_QPS_SAMPLES)
        m->qps_filled++;
    const srv_config *cfg = &m->srv.cfg;
    if (cfg->metrics_interval > 0 && now >= m->next_metrics) {
        s_metrics_line(m);
        m->next_metrics = now + (uint64_t)(cfg->metrics_interval * 1e9);
    }
    if (cfg->reload_poll > 0 && now >= m->next_poll && !atomic_load(&m->srv.stopping)) {
        s_poll_versions(m);
        m->next_poll = now + (uint64_t)(cfg->reload_poll * 1e9);
    }
}

/* ---- start and stop ------------------------------------------------------- */

static int s_on_signal_pipe(s_main *m)
{
    char c[16];
    ssize_t n = read(m->sig_pipe[0], c, sizeof c);
    for (ssize_t i = 0; i < n; i++) {
        if (c[i] == 'H') {
            m->trying_model = m->trying_catalog = -2;
            s_reload_start(m, "SIGHUP");
        } else if (!atomic_load(&m->srv.stopping)) {
            atomic_store(&m->srv.stopping, 1);
            m->stop_deadline = srv_now_ns() + (uint64_t)(m->srv.cfg.shutdown_grace * 1e9);
            srv_log(SRV_INFO, "msg=\"stopping: finishing in-flight requests\" in_flight=%d",
                    atomic_load(&m->srv.counters.in_flight));
        }
    }
    return 0;
}

/* Worker 0 runs inline on this thread; the others get threads of their own
 * and announce themselves before they can be routed to. */
static int s_start_workers(s_main *m)
{
    srv_server *srv = &m->srv;
    char why[600];
    for (int i = 0; i < srv->n_workers; i++) {
        srv->workers[i] = srv_worker_start(srv, i, i > 0, why, sizeof why);
        if (!srv->workers[i]) {
            srv_log(SRV_ERROR, "msg=\"cannot start worker\" reason=\"%s\"", why);
            return -1;
        }
    }
    int ready = 0, want = srv->n_workers - 1;
    uint64_t deadline = srv_now_ns() + 10000000000ull;
    while (ready < want && srv_now_ns() < deadline) {
        zmq_pollitem_t it = {.socket = m->backend, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t parts[4];
        for (int p = 0; p < 4; p++) {
            zmq_msg_init(&parts[p]);
            zmq_msg_recv(&parts[p], m->backend, 0);
        }
        int worker = s_worker_index(&parts[0]);
        for (int p = 0; p < 4; p++)
            zmq_msg_close(&parts[p]);
        if (worker < 1 || worker >= srv->n_workers)
            continue;
        m->idle[m->n_idle++] = worker;
        ready++;
    }
    if (ready < want) {
        srv_log(SRV_ERROR, "msg=\"workers did not start\" ready=%d of=%d", ready, want);
        return -1;
    }
    return 0;
}

/* Handle the oldest queued request on this thread: no hand-off, so no
 * thread wake-ups beyond libzmq's own I/O thread. */
static void s_process_inline(s_main *m)
{
    s_pending *p = &m->queue[m->q_head];
    m->q_head = (m->q_head + 1) % m->srv.cfg.queue_max;
    m->q_len--;
    atomic_fetch_sub(&m->srv.counters.queued, 1);
    struct srv_worker *w = m->srv.workers[0];
    int kind = srv_worker_handle(w, p->t_recv, zmq_msg_data(&p->payload),
                                 zmq_msg_size(&p->payload));
    size_t len;
    const char *reply = srv_worker_reply(w, &len);
    if (kind == SRV_DONE_RELOAD) {
        s_add_waiter(m, &p->route, p->style, reply, len);
    } else {
        s_send_reply(m, &p->route, p->style, reply, len);
        atomic_fetch_sub(&m->srv.counters.in_flight, 1);
    }
    srv_worker_done(w, p->t_recv);
    zmq_msg_close(&p->route);
    zmq_msg_close(&p->payload);
}

static void s_stop_workers(s_main *m)
{
    for (int i = 1; i < m->srv.n_workers; i++) {
        if (!m->srv.workers[i])
            continue;
        zmq_send(m->backend, m->ident[i], strlen(m->ident[i]), ZMQ_SNDMORE);
        zmq_send(m->backend, "", 0, 0);
    }
    for (int i = 0; i < m->srv.n_workers; i++)
        srv_worker_join(&m->srv.workers[i]);
}

static int s_bind_frontend(s_main *m)
{
    const srv_config *cfg = &m->srv.cfg;
    m->frontend = zmq_socket(m->srv.zctx, ZMQ_ROUTER);
    /* Oversize requests within 4x the limit get a `too_large` reply; beyond
     * that libzmq drops the connection rather than buffer the bytes. */
    int64_t maxmsg = (int64_t)cfg->max_message_bytes * 4 + 4096;
    int hwm = 100000;
    zmq_setsockopt(m->frontend, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(m->frontend, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(m->frontend, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_bind(m->frontend, cfg->bind) != 0) {
        srv_log(SRV_ERROR, "msg=\"cannot bind\" endpoint=%s reason=\"%s\"", cfg->bind,
                zmq_strerror(zmq_errno()));
        return -1;
    }
    char ep[256];
    size_t eplen = sizeof ep;
    zmq_getsockopt(m->frontend, ZMQ_LAST_ENDPOINT, ep, &eplen);
    srv_log(SRV_INFO, "msg=listening endpoint=%s workers=%d queue_max=%d", ep, m->srv.n_workers,
            cfg->queue_max);
    return 0;
}

/* Shutdown, once nothing is in flight: answer `unavailable` to whatever
 * reaches the client socket -- everything queued there, and what is still
 * in transit from a client's burst -- until it has stayed empty for
 * S_QUIET_MS, or the grace ends.  Not one batch: a burst larger than
 * S_BATCH that the loop had not read yet would otherwise get silence. */
static void s_drain_frontend(s_main *m)
{
    for (;;) {
        zmq_pollitem_t it = {.socket = m->frontend, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&it, 1, S_QUIET_MS);
        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc <= 0 || srv_now_ns() >= m->stop_deadline)
            return;
        s_on_frontend(m);
    }
}

static void s_loop(s_main *m)
{
    uint64_t next_cron = srv_now_ns();
    for (;;) {
        uint64_t now = srv_now_ns();
        if (now >= next_cron) {
            s_cron(m, now);
            next_cron = now + 1000000000ull;
        }
        if (atomic_load(&m->srv.stopping)) {
            int in_flight = atomic_load(&m->srv.counters.in_flight);
            if ((in_flight == 0 && !m->loader.running) || now >= m->stop_deadline) {
                s_drain_frontend(m);
                if (in_flight)
                    srv_log(SRV_WARN, "msg=\"shutdown grace expired\" in_flight=%d", in_flight);
                return;
            }
        }
        zmq_pollitem_t items[4] = {
            {.socket = m->backend, .events = ZMQ_POLLIN},
            {.socket = m->frontend, .events = ZMQ_POLLIN},
            {.socket = m->loader_rx, .events = ZMQ_POLLIN},
            {.fd = m->sig_pipe[0], .events = ZMQ_POLLIN},
        };
        long timeout_ms = (long)((next_cron - now) / 1000000) + 1;
        if (atomic_load(&m->srv.stopping) && timeout_ms > 50)
            timeout_ms = 50;
        if (m->q_len > 0)
            timeout_ms = 0;   /* work is waiting: only look, never sleep */
        int rc = zmq_poll(items, 4, timeout_ms);
        if (rc < 0) {
            if (zmq_errno() == EINTR)
                continue;
            srv_log(SRV_ERROR, "msg=\"poll failed\" reason=\"%s\"", zmq_strerror(zmq_errno()));
            return;
        }
        /* Replies first: they free workers for the requests read next. */
        if (items[0].revents & ZMQ_POLLIN)
            s_on_backend(m);
        if (items[1].revents & ZMQ_POLLIN)
            s_on_frontend(m);
        if (items[2].revents & ZMQ_POLLIN)
            s_on_loader(m);
        if (items[3].revents & ZMQ_POLLIN)
            s_on_signal_pipe(m);
        /* Idle helpers took what they could; this thread scores the next one. */
        if (m->q_len > 0)
            s_process_inline(m);
    }
}

static void s_cleanup(s_main *m)
{
    s_answer_waiters(m, NULL, NULL);
    if (m->loader.running) {
        pthread_join(m->loader.thread, NULL);
        srv_snapshot_release(&m->loader.result);
    }
    for (int i = 0; i < m->q_len; i++) {
        s_pending *p = &m->queue[(m->q_head + i) % m->srv.cfg.queue_max];
        zmq_msg_close(&p->route);
        zmq_msg_close(&p->payload);
    }
    if (m->srv.workers)
        s_stop_workers(m);
    srv_snapshot_publish(NULL);
    /* Replies still queued get the rest of the grace (2 s at least) to leave. */
    uint64_t now = srv_now_ns();
    int linger = 0, flush_ms = 2000;
    if (atomic_load(&m->srv.stopping) && m->stop_deadline > now + 2000000000ull)
        flush_ms = (int)((m->stop_deadline - now) / 1000000);
    if (m->frontend)
        zmq_setsockopt(m->frontend, ZMQ_LINGER, &flush_ms, sizeof flush_ms);
    void *socks[] = {m->frontend, m->backend, m->loader_rx};
    for (int i = 0; i < 3; i++)
        if (socks[i]) {
            if (i)
                zmq_setsockopt(socks[i], ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(socks[i]);
        }
    if (m->srv.zctx)
        zmq_ctx_term(m->srv.zctx);
    store_close(&m->poll_db);
    srv_json_free(&m->out);
    free(m->view_now);
    free(m->view_prev);
    free(m->view_interval);
    free(m->waiters);
    free(m->queue);
    free(m->idle);
    free(m->ident);
    free(m->srv.workers);
    if (m->sig_pipe[0] >= 0) {
        close(m->sig_pipe[0]);
        close(m->sig_pipe[1]);
    }
}

int srv_server_run(const srv_config *cfg)
{
    s_main *m = calloc(1, sizeof *m);
    if (!m) {
        srv_log(SRV_ERROR, "msg=\"out of memory\"");
        return 1;
    }
    int status = 1;
    m->srv.cfg = *cfg;
    m->srv.started_ns = srv_now_ns();
    m->srv.n_workers = cfg->workers > 0 ? cfg->workers : cfg_cores();
    m->failed_model = m->failed_catalog = -2;
    m->sig_pipe[0] = m->sig_pipe[1] = -1;
    srv_log_set_level(cfg->log_level);
    srv_arena_install_cjson();
    /* One BLAS thread per worker: requests run in parallel, not GEMMs. */
    openblas_set_num_threads(1);
    srv_log(SRV_INFO, "msg=starting version=%s db=%s openblas_core=%s openblas_coretype=%s",
            SRV_VERSION, cfg->db, openblas_get_corename(),
            getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset");

    srv_snapshot *snap = NULL;
    char why[600];
    if (srv_snapshot_build(cfg, &snap, why, sizeof why) != 0) {
        srv_log(SRV_ERROR, "msg=\"cannot load the catalog and model\" reason=\"%s\"", why);
        free(m);
        return 1;
    }
    srv_log(SRV_INFO, "msg=loaded model=%lld catalog=%lld items=%u unembedded=%u build_ms=%.1f "
            "bytes=%zu", (long long)snap->model_version, (long long)snap->catalog_version,
            snap->cat->n, snap->cat->n_unembedded, snap->build_ms, snap->bytes);
    srv_snapshot_publish(snap);

    /* Signals go to the main thread only: block them while the other threads
     * (libzmq's, workers, loader) are created, so they inherit the mask. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    signal(SIGPIPE, SIG_IGN);

    m->idle = calloc((size_t)m->srv.n_workers, sizeof *m->idle);
    m->ident = calloc((size_t)m->srv.n_workers, sizeof *m->ident);
    for (int i = 0; m->ident && i < m->srv.n_workers; i++)
        snprintf(m->ident[i], sizeof m->ident[i], "w%d", i);
    m->srv.workers = calloc((size_t)m->srv.n_workers, sizeof *m->srv.workers);
    m->queue = calloc(cfg->queue_max > 0 ? (size_t)cfg->queue_max : 1, sizeof *m->queue);
    m->view_now = calloc(1, sizeof *m->view_now);
    m->view_prev = calloc(1, sizeof *m->view_prev);
    m->view_interval = calloc(1, sizeof *m->view_interval);
    m->srv.zctx = zmq_ctx_new();
    if (!m->idle || !m->ident || !m->srv.workers || !m->queue || !m->view_now || !m->view_prev ||
        !m->view_interval || !m->srv.zctx || srv_json_init(&m->out, 1 << 14) ||
        pipe2(m->sig_pipe, O_CLOEXEC | O_NONBLOCK)) {
        srv_log(SRV_ERROR, "msg=\"cannot allocate the server\"");
        goto done;
    }
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        util_hist_reset(&m->view_prev->stage[s]);
    m->backend = zmq_socket(m->srv.zctx, ZMQ_ROUTER);
    m->loader_rx = zmq_socket(m->srv.zctx, ZMQ_PAIR);
    if (zmq_bind(m->backend, SRV_BACKEND) || zmq_bind(m->loader_rx, S_LOADER_ENDPOINT)) {
        srv_log(SRV_ERROR, "msg=\"cannot bind inproc sockets\" reason=\"%s\"",
                zmq_strerror(zmq_errno()));
        goto done;
    }
    if (s_start_workers(m) || s_bind_frontend(m))
        goto done;

    s_signal_fd = m->sig_pipe[1];
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    m->next_metrics = srv_now_ns() + (uint64_t)(cfg->metrics_interval * 1e9);
    m->next_poll = srv_now_ns() + (uint64_t)(cfg->reload_poll * 1e9);
    s_loop(m);
    if (cfg->metrics_interval > 0)
        s_metrics_line(m);
    status = 0;
done:
    s_cleanup(m);
    srv_log(SRV_INFO, "msg=stopped status=%d", status);
    free(m);
    return status;
}
