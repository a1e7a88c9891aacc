/* reload.c -- see reload.h.
 *
 * A poll-triggered reload that failed is not retried until the versions
 * change again, so a broken model does not make attnd rebuild it every few
 * seconds; SIGHUP and requests always try.
 */
#include "daemon/reload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/auth.h"
#include "daemon/log.h"
#include "daemon/ops.h"
#include "daemon/reply.h"
#include "daemon/snapshot.h"
#include "util/clock.h"

typedef struct s_waiter {
    zmq_msg_t route;
    uint8_t style;
    char *id_json;
} s_waiter;

struct srv_reloader {
    srv_state *st;
    srv_reload_send_fn send;
    void *ctx;
    int done[2];               /* pipe: the loader writes a byte when its build ends */
    pthread_t thread;
    int running;
    srv_snapshot *result;      /* the loader's build, NULL on failure */
    char why[600];
    s_waiter *waiters;
    int n_waiters, cap_waiters;
    store *poll_db;            /* cheap version checks */
    int64_t failed_model, failed_catalog;   /* last pair a poll-triggered build failed on */
    int64_t trying_model, trying_catalog;   /* the pair being built; -2: not a poll's */
    uint64_t failed_ino, trying_ino;        /* the same for a file renamed over the path */
    srv_json out;
};

static void *s_loader(void *arg)
{
    srv_reloader *r = arg;
    r->result = NULL;
    if (srv_snapshot_build(&r->st->cfg, &r->st->exp, &r->result, r->why, sizeof r->why) != 0)
        r->result = NULL;
    /* A pipe, not an inproc PAIR: a PAIR takes one peer at a time, and a
     * loader started right after the last one could find the old
     * connection not yet gone and wait forever. */
    char c = 1;
    while (write(r->done[1], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

srv_reloader *srv_reloader_new(srv_state *st, srv_reload_send_fn send, void *ctx, char *why,
                               size_t why_len)
{
    srv_reloader *r = calloc(1, sizeof *r);
    if (!r || srv_json_init(&r->out, 1024)) {
        free(r);
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    r->st = st;
    r->send = send;
    r->ctx = ctx;
    r->done[0] = r->done[1] = -1;
    r->failed_model = r->failed_catalog = -2;
    r->trying_model = r->trying_catalog = -2;
    if (pipe2(r->done, O_CLOEXEC) != 0) {
        snprintf(why, why_len, "cannot create the loader's pipe: %s", strerror(errno));
        srv_reloader_free(&r);
        return NULL;
    }
    return r;
}

int srv_reloader_fd(const srv_reloader *r)
{
    return r->done[0];
}

int srv_reloader_running(const srv_reloader *r)
{
    return r->running;
}

/* model/catalog: the versions a poll saw (-2 for SIGHUP and requests),
 * remembered so that a failed poll-triggered build is not retried. */
static void s_start(srv_reloader *r, const char *reason, int64_t model, int64_t catalog)
{
    if (r->running)
        return;   /* waiters join the build under way */
    if (strcmp(reason, "replaced"))
        r->trying_ino = 0;
    r->trying_model = model;
    r->trying_catalog = catalog;
    srv_log(SRV_INFO, "msg=\"reload started\" reason=%s", reason);
    if (pthread_create(&r->thread, NULL, s_loader, r) != 0) {
        srv_log(SRV_ERROR, "msg=\"reload failed\" reason=\"cannot start the loader thread\"");
        return;
    }
    r->running = 1;
    atomic_store(&r->st->loader_running, 1);
}

/* SIGHUP and the reload op also re-read the allow-list, whatever the
 * snapshot build does: revoking a key must not wait for a model. */
void srv_reloader_start(srv_reloader *r, const char *reason)
{
    srv_auth_reload(r->st->auth);
    s_start(r, reason, -2, -2);
}

/* Reply to every waiter: the new snapshot, or why there is none. */
static void s_answer(srv_reloader *r, const srv_snapshot *snap, const char *why)
{
    int row = srv_op_row(srv_op_find("reload", 6));
    for (int i = 0; i < r->n_waiters; i++) {
        s_waiter *wt = &r->waiters[i];
        int code = SRV_OK;
        if (snap) {
            srv_reply_reloaded(&r->out, wt->id_json, snap);
        } else {
            code = why ? SRV_E_RELOAD_FAILED : SRV_E_UNAVAILABLE;
            srv_reply_error(&r->out, wt->id_json, code,
                            why ? why : "shutting down before the reload finished");
        }
        srv_counters_reply(&r->st->counters, row, code);
        r->send(r->ctx, &wt->route, wt->style, r->out.buf, r->out.len);
        zmq_msg_close(&wt->route);
        free(wt->id_json);
    }
    r->n_waiters = 0;
}

int srv_reloader_wait(srv_reloader *r, zmq_msg_t *route, uint8_t style, const char *id_json,
                      size_t id_len)
{
    if (r->n_waiters == r->cap_waiters) {
        int cap = r->cap_waiters ? r->cap_waiters * 2 : 8;
        s_waiter *w = realloc(r->waiters, (size_t)cap * sizeof *w);
        if (!w)
            return -1;
        r->waiters = w;
        r->cap_waiters = cap;
    }
    s_waiter *wt = &r->waiters[r->n_waiters];
    wt->id_json = strndup(id_json, id_len);
    if (!wt->id_json)
        return -1;
    zmq_msg_init(&wt->route);
    zmq_msg_move(&wt->route, route);
    wt->style = style;
    r->n_waiters++;
    srv_reloader_start(r, "request");
    return 0;
}

void srv_reloader_on_done(srv_reloader *r)
{
    char c;
    while (read(r->done[0], &c, 1) < 0 && errno == EINTR)
        ;
    pthread_join(r->thread, NULL);
    r->running = 0;
    atomic_store(&r->st->loader_running, 0);
    srv_snapshot *snap = r->result;
    r->result = NULL;
    if (!snap) {
        srv_log(SRV_ERROR, "msg=\"reload failed, the previous snapshot keeps serving\" "
                           "reason=\"%s\"", r->why);
        atomic_fetch_add(&r->st->counters.reload_failures, 1);
        r->failed_model = r->trying_model;
        r->failed_catalog = r->trying_catalog;
        r->failed_ino = r->trying_ino;
        s_answer(r, NULL, r->why);
        return;
    }
    srv_log(SRV_INFO, "msg=reloaded model=%lld catalog=%lld items=%u build_ms=%.1f bytes=%zu",
            (long long)snap->model_version, (long long)snap->catalog_version, snap->cat->n,
            snap->build_ms, snap->bytes);
    atomic_fetch_add(&r->st->counters.reloads, 1);
    r->failed_model = r->failed_catalog = -2;
    r->failed_ino = 0;
    /* A reference for the waiters' reply: publishing may free nothing of it. */
    atomic_fetch_add(&snap->refs, 1);
    srv_snapshot_publish(snap);
    srv_state_published(r->st, snap);
    s_answer(r, snap, NULL);
    srv_snapshot_release(&snap);
}

/* A file renamed over the path (a new snapshot distributed to the
 * replicas): 1 when the serving snapshot was built from another file. */
static int s_replaced(srv_reloader *r, uint64_t *ino)
{
    struct stat sb;
    if (stat(r->st->cfg.db, &sb) != 0)
        return 0;   /* gone for a moment: keep serving, look again next time */
    srv_snapshot *snap = srv_snapshot_acquire();
    int replaced = snap && ((uint64_t)sb.st_ino != snap->file_ino ||
                            (uint64_t)sb.st_dev != snap->file_dev);
    srv_snapshot_release(&snap);
    *ino = (uint64_t)sb.st_ino;
    return replaced;
}

void srv_reloader_poll(srv_reloader *r)
{
    if (r->running)
        return;
    uint64_t ino = 0;
    if (s_replaced(r, &ino)) {
        store_close(&r->poll_db);   /* it reads the old file */
        if (ino != r->failed_ino) {
            r->trying_ino = ino;
            s_start(r, "replaced", -2, -2);
        }
        return;
    }
    store_err err;
    if (!r->poll_db &&
        store_open(&r->poll_db, r->st->cfg.db, STORE_READONLY, 100, &err) != STORE_OK) {
        srv_log(SRV_WARN, "msg=\"reload poll cannot open the database\" reason=\"%s\"", err.msg);
        return;
    }
    int64_t model = -1, catalog = 0;
    if (store_model_active(r->poll_db, &model, &err) != STORE_OK ||
        store_catalog_version(r->poll_db, &catalog, &err) != STORE_OK) {
        /* Busy or replaced: no verdict this round (not "version 0"). */
        srv_log(SRV_WARN, "msg=\"reload poll failed\" reason=\"%s\"", err.msg);
        store_close(&r->poll_db);   /* reopen next time: the file may have been replaced */
        return;
    }
    srv_snapshot *snap = srv_snapshot_acquire();
    int changed = !snap || snap->model_version != model || snap->catalog_version != catalog;
    srv_snapshot_release(&snap);
    if (!changed || (model == r->failed_model && catalog == r->failed_catalog))
        return;
    s_start(r, "poll", model, catalog);
}

void srv_reloader_free(srv_reloader **r_p)
{
    srv_reloader *r = *r_p;
    if (!r)
        return;
    *r_p = NULL;
    s_answer(r, NULL, NULL);
    if (r->running) {
        pthread_join(r->thread, NULL);
        srv_snapshot_release(&r->result);
    }
    for (int i = 0; i < 2; i++)
        if (r->done[i] >= 0)
            close(r->done[i]);
    store_close(&r->poll_db);
    srv_json_free(&r->out);
    free(r->waiters);
    free(r);
}
