/* record.c -- the record op: events in, durable, then the answer.
 *
 *   1. parse (any thread that parses: the writer)   every field checked, the
 *      message names the event by index; a bad one fails the whole request
 *      before anything is stored, as the importer refuses a bad line
 *   2. stage (the writer, srv_record_run)          items resolved through the
 *      snapshot's catalog (an O(1) hash), then the database for items it
 *      does not hold (imported, not yet embedded); an item known to neither
 *      is that event's rejection, named in the reply, and the rest go in.
 *      Strings are copied into the batch's pool: the request's own arena is
 *      reset before the batch commits.
 *   3. commit (srv_rec_batch_commit)              one store_hist_append for
 *      every request staged: one transaction, durable when it returns
 *   4. answer (srv_rec_batch_reply)               per request: stored,
 *      duplicates by index, rejected by index and item
 *
 * An event without an event_id is identified by (user, item, ts, kind): its
 * derived id is the interactions primary key itself, so it costs no index
 * entry (docs/SCHEMA.md).
 */
#include "daemon/record.h"

#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/reply.h"
#include "daemon/snapshot.h"
#include "util/clock.h"

#define S_NONE SIZE_MAX   /* an absent string in the pool */

typedef struct s_req {
    size_t id_off;          /* its id as JSON, in the pool */
    uint64_t t_recv;
    int first, n;           /* its events: ev[first .. first + n) */
} s_req;

typedef struct s_ev {
    int app;                /* index into app[], or -1: its item is unknown */
    size_t item_off;        /* the item as sent, in the pool (to name a rejection) */
    uint32_t item_len;
} s_ev;

/* Pool offsets of an appended event's strings, made pointers at commit. */
typedef struct s_app_str {
    size_t user, kind, event_id;
} s_app_str;

struct srv_rec_batch {
    int max_events;            /* record.max_batch */
    s_req *req;                /* max_events: a request holds at least one event */
    int n_req;
    s_ev *ev;                  /* max_events, in request order */
    int n_ev;
    store_hist_event *app;     /* the events to append (item known) */
    s_app_str *app_str;
    uint8_t *outcome;          /* per app[], after the commit */
    int n_app;
    char *pool;                /* every string, NUL-terminated; grows by doubling */
    size_t pool_len, pool_cap;
    int *dups;                 /* reply scratch: limits.max_record_events each */
    srv_rec_reject *rejects;
};

/* ---- 1. parse ------------------------------------------------------------- */

/* A string field with a byte limit (absent and not required: s NULL). */
static int s_str(srv_fields *f, const char *name, int required, uint32_t max, srv_str *out)
{
    if (srv_field_str(f, name, required, out))
        return -1;
    if (out->s && out->len > max)
        return srv_fields_fail(f, "%s: %u bytes, at most %u", name, out->len, max);
    return 0;
}

static int s_event(srv_fields *f, int i, int n, void *ctx)
{
    srv_record_args *a = ctx;
    if (i == 0 && !(a->ev = srv_fields_alloc(f, (size_t)n * sizeof *a->ev)))
        return srv_fields_fail(f, "out of memory");
    srv_rec_event *e = &a->ev[i];
    return s_str(f, "user", 1, SRV_REC_EXT_MAX, &e->user) ||
           s_str(f, "item", 1, SRV_REC_EXT_MAX, &e->item) ||
           srv_field_i64(f, "ts", 1, INT64_MIN, INT64_MAX, 0, &e->ts) ||
           s_str(f, "kind", 0, SRV_REC_KIND_MAX, &e->kind) ||
           srv_field_float(f, "weight", FLT_MIN, FLT_MAX, 1.0f, &e->weight) ||
           s_str(f, "event_id", 0, SRV_REC_EVENT_ID_MAX, &e->event_id) ? -1 : 0;
}

int srv_record_parse(srv_fields *f, void **args)
{
    const srv_config *cfg = srv_fields_config(f);
    srv_record_args *a = srv_fields_alloc(f, sizeof *a);
    if (!a)
        return srv_fields_fail(f, "out of memory");
    if (srv_field_each(f, "events", cfg->max_record_events, "limits.max_record_events", s_event,
                       a, &a->n))
        return -1;
    *args = a;
    return 0;
}

/* ---- the batch ------------------------------------------------------------ */

void srv_rec_batch_free(srv_rec_batch **b_p)
{
    srv_rec_batch *b = *b_p;
    if (!b)
        return;
    *b_p = NULL;
    free(b->req);
    free(b->ev);
    free(b->app);
    free(b->app_str);
    free(b->outcome);
    free(b->pool);
    free(b->dups);
    free(b->rejects);
    free(b);
}

srv_rec_batch *srv_rec_batch_new(const srv_config *cfg)
{
    srv_rec_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    size_t n = (size_t)cfg->record_max_batch, per = (size_t)cfg->max_record_events;
    b->max_events = cfg->record_max_batch;
    b->req = malloc(n * sizeof *b->req);
    b->ev = malloc(n * sizeof *b->ev);
    b->app = malloc(n * sizeof *b->app);
    b->app_str = malloc(n * sizeof *b->app_str);
    b->outcome = malloc(n);
    b->pool_cap = 1 << 16;
    b->pool = malloc(b->pool_cap);
    b->dups = malloc(per * sizeof *b->dups);
    b->rejects = malloc(per * sizeof *b->rejects);
    if (!b->req || !b->ev || !b->app || !b->app_str || !b->outcome || !b->pool || !b->dups ||
        !b->rejects)
        srv_rec_batch_free(&b);
    return b;
}

int srv_rec_batch_events(const srv_rec_batch *b) { return b->n_ev; }
int srv_rec_batch_requests(const srv_rec_batch *b) { return b->n_req; }
int srv_rec_batch_room(const srv_rec_batch *b) { return b->max_events - b->n_ev; }
uint64_t srv_rec_batch_t_recv(const srv_rec_batch *b, int k) { return b->req[k].t_recv; }

void srv_rec_batch_reset(srv_rec_batch *b)
{
    b->n_req = b->n_ev = b->n_app = 0;
    b->pool_len = 0;
}

/* Copy len bytes and a NUL into the pool; its offset, or S_NONE out of
 * memory (s NULL: S_NONE, nothing copied). */
static size_t s_pool(srv_rec_batch *b, const char *s, size_t len, int *oom)
{
    if (!s)
        return S_NONE;
    if (b->pool_len + len + 1 > b->pool_cap) {
        size_t cap = b->pool_cap;
        while (b->pool_len + len + 1 > cap)
            cap *= 2;
        char *grown = realloc(b->pool, cap);
        if (!grown) {
            *oom = 1;
            return S_NONE;
        }
        b->pool = grown;
        b->pool_cap = cap;
    }
    size_t at = b->pool_len;
    memcpy(b->pool + at, s, len);
    b->pool[at + len] = '\0';
    b->pool_len += len + 1;
    return at;
}

/* ---- 2. stage ------------------------------------------------------------- */

/* The item's id: the catalog first, then the database (an item imported but
 * not embedded, or added since the snapshot).  1 found, 0 unknown, -1 the
 * lookup failed (why). */
static int s_item(srv_call *c, const srv_snapshot *snap, const srv_str *item, int64_t *id,
                  char *why, size_t why_len)
{
    int64_t row = store_catalog_find(snap->cat, item->s, item->len);
    if (row >= 0) {
        *id = snap->cat->item_id[row];
        return 1;
    }
    store_err err;
    int rc = store_item_id(c->res->db, item->s, item->len, id, &err);
    if (rc == STORE_OK)
        return 1;
    if (rc == STORE_ERR_NOTFOUND)
        return 0;
    snprintf(why, why_len, "%s", err.msg);
    return -1;
}

/* Stage one event; -1 with why when a lookup failed or memory ran out. */
static int s_stage_event(srv_call *c, srv_rec_batch *b, const srv_snapshot *snap,
                         const srv_rec_event *e, char *why, size_t why_len)
{
    int oom = 0;
    s_ev *ev = &b->ev[b->n_ev];
    ev->item_off = s_pool(b, e->item.s, e->item.len, &oom);
    ev->item_len = e->item.len;
    ev->app = -1;
    int64_t item_id;
    int found = s_item(c, snap, &e->item, &item_id, why, why_len);
    if (found < 0)
        return -1;
    if (found) {
        ev->app = b->n_app;
        b->app[b->n_app] = (store_hist_event){.item_id = item_id, .ts = e->ts,
                                              .weight = e->weight};
        s_app_str *str = &b->app_str[b->n_app];
        str->user = s_pool(b, e->user.s, e->user.len, &oom);
        str->kind = s_pool(b, e->kind.s, e->kind.len, &oom);
        str->event_id = s_pool(b, e->event_id.s, e->event_id.len, &oom);
        b->n_app++;
    }
    b->n_ev++;
    if (oom) {
        snprintf(why, why_len, "out of memory staging the events");
        return -1;
    }
    return 0;
}

void srv_record_run(srv_call *c)
{
    const srv_record_args *a = c->rq->args;
    srv_rec_batch *b = c->res->batch;
    if (!b || a->n > srv_rec_batch_room(b)) {
        srv_call_error(c, SRV_E_INTERNAL, b ? "record: the writer's batch has no room (a bug)"
                                            : "record reached a thread that is not the writer");
        return;
    }
    srv_snapshot *snap = srv_snapshot_acquire();
    if (!snap) {
        srv_call_error(c, SRV_E_UNAVAILABLE, "no catalog loaded yet");
        return;
    }
    /* All of the request or none of it: a failure rolls the batch back here. */
    int n_ev = b->n_ev, n_app = b->n_app;
    size_t pool_len = b->pool_len;
    int oom = 0;
    char why[600];
    s_req *r = &b->req[b->n_req];
    r->id_off = s_pool(b, c->rq->id_json, strlen(c->rq->id_json), &oom);
    r->t_recv = c->t_recv;
    r->first = b->n_ev;
    r->n = a->n;
    int rc = oom ? -1 : 0;
    if (oom)
        snprintf(why, sizeof why, "out of memory staging the events");
    for (int i = 0; rc == 0 && i < a->n; i++)
        rc = s_stage_event(c, b, snap, &a->ev[i], why, sizeof why);
    srv_snapshot_release(&snap);
    if (rc != 0) {
        b->n_ev = n_ev;
        b->n_app = n_app;
        b->pool_len = pool_len;
        srv_call_error(c, SRV_E_STORE, why);
        return;
    }
    b->n_req++;
    c->outcome = SRV_OUT_DEFER;
}

/* ---- 3. commit ------------------------------------------------------------ */

static const char *s_at(const srv_rec_batch *b, size_t off)
{
    return off == S_NONE ? NULL : b->pool + off;
}

int srv_rec_batch_commit(srv_rec_batch *b, store_hist *h, srv_rec_batch_report *rep,
                         store_err *err)
{
    memset(rep, 0, sizeof *rep);
    rep->requests = b->n_req;
    rep->rejected = b->n_ev - b->n_app;
    if (b->n_app == 0)
        return STORE_OK;   /* every item unknown: nothing to write */
    /* The pool stops growing here: its offsets become pointers. */
    for (int i = 0; i < b->n_app; i++) {
        b->app[i].user = s_at(b, b->app_str[i].user);
        b->app[i].kind = s_at(b, b->app_str[i].kind);
        b->app[i].event_id = s_at(b, b->app_str[i].event_id);
    }
    uint64_t t0 = util_now_ns();
    int rc = store_hist_append(h, b->app, b->n_app, b->outcome, err);
    rep->commit_ns = util_now_ns() - t0;
    if (rc != STORE_OK) {
        rep->failed = 1;
        return rc;
    }
    for (int i = 0; i < b->n_app; i++) {
        rep->stored += b->outcome[i] == STORE_HIST_STORED;
        rep->duplicates += b->outcome[i] == STORE_HIST_DUPLICATE;
        rep->rejected += b->outcome[i] == STORE_HIST_NO_ITEM;
    }
    return STORE_OK;
}

/* ---- 4. answer ------------------------------------------------------------ */

/* 1 when an event of request k was on a history node that failed. */
static int s_unavailable(const srv_rec_batch *b, const s_req *r)
{
    for (int i = 0; i < r->n; i++) {
        int app = b->ev[r->first + i].app;
        if (app >= 0 && b->outcome[app] == STORE_HIST_UNAVAILABLE)
            return 1;
    }
    return 0;
}

int srv_rec_batch_code(const srv_rec_batch *b, int k, int rc)
{
    if (rc == STORE_ERR_BUSY)
        return SRV_E_BUSY;
    if (rc == STORE_ERR_UNAVAILABLE || (rc == STORE_OK && s_unavailable(b, &b->req[k])))
        return SRV_E_UNAVAILABLE;
    return rc == STORE_OK ? SRV_OK : SRV_E_STORE;
}

void srv_rec_batch_reply(const srv_rec_batch *b, int k, int rc, const store_err *err,
                         srv_json *out)
{
    const s_req *r = &b->req[k];
    const char *id_json = s_at(b, r->id_off);
    if (srv_rec_batch_code(b, k, rc) == SRV_E_UNAVAILABLE) {
        /* Events on the nodes that answered may be stored: a resend is
         * safe, they are duplicates then. */
        char why[700];
        snprintf(why, sizeof why, "%s; nothing of this request on that node was stored, "
                 "resend it (what was stored elsewhere counts as duplicates)", err->msg);
        srv_reply_error(out, id_json, SRV_E_UNAVAILABLE, why);
        return;
    }
    if (rc == STORE_ERR_BUSY) {
        char why[700];
        snprintf(why, sizeof why, "the database is locked by another writer (an import?); "
                 "nothing was stored, retry with backoff: %s", err->msg);
        srv_reply_error(out, id_json, SRV_E_BUSY, why);
        return;
    }
    if (rc != STORE_OK) {
        srv_reply_error(out, id_json, SRV_E_STORE, err->msg);
        return;
    }
    srv_recorded rec = {.duplicates = b->dups, .rejected = b->rejects, .t_recv = r->t_recv};
    for (int i = 0; i < r->n; i++) {
        const s_ev *ev = &b->ev[r->first + i];
        int outcome = ev->app < 0 ? STORE_HIST_NO_ITEM : b->outcome[ev->app];
        if (outcome == STORE_HIST_STORED)
            rec.stored++;
        else if (outcome == STORE_HIST_DUPLICATE)
            b->dups[rec.n_duplicates++] = i;
        else
            b->rejects[rec.n_rejected++] = (srv_rec_reject){
                .index = i, .item = b->pool + ev->item_off, .len = ev->item_len,
                .reason = "unknown_item"};
    }
    srv_reply_recorded(out, id_json, &rec);
}
