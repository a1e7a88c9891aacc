/* rpush.c -- the bulk copy of histories from SQLite into Redis, and the
 * check that compares the two (push.h).
 *
 * The copy, as numbered steps:
 *   1. read the progress an earlier run left (PREFIX "push", on the node
 *      the ring gives that key) unless restarting
 *   2. scan the database's histories below that user (store_history_scan:
 *      users in descending id, each newest first, at most trim each)
 *   3. per user, append MULTI, DEL list ids, RPUSH list e1..en, ZADD ids
 *      (events with an id), EXPIRE (with a TTL), EXEC to the user's node's
 *      output buffer -- nothing is read yet: the round is one pipeline
 *   4. every batch_users users, read every node's replies (any error stops
 *      the push, the progress still naming the last round that finished),
 *      then record the progress and report it
 * Replacing a user's keys is idempotent, so a round repeated after a crash
 * changes nothing.  Replacing is also why the copy belongs before replicas
 * record into Redis (docs/OPERATIONS.md): a user's events recorded there
 * would be replaced by the database's.
 */
#include "store/hist/push.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/hist/redis_int.h"
#include "util/clock.h"
#include "util/rng.h"

typedef struct s_push {
    const store_hist_push_opts *o;
    rds_ring ring;
    rds_conf conf;
    store_hist_push_stats *st;
    uint64_t t0;
    int *pending;              /* per node: replies owed */
    /* the user being collected */
    int64_t user_id;
    char *user;
    size_t user_cap;
    int n_ev;
    uint8_t *elem;             /* trim elements of RDS_ELEM_FIXED + kind bytes */
    size_t elem_cap, elem_len;
    size_t *elem_off;          /* trim + 1 offsets */
    int64_t *ts;               /* per event, for ZADD */
    char (*score)[24];         /* per event: ts as text */
    uint8_t (*idh)[8];         /* per event */
    uint8_t *has_id;
    const char **argv;         /* 2 * trim + 4 */
    size_t *argl;
    char *key;
    size_t key_cap;
    char *key2;
    size_t key2_cap;
    /* the round */
    int round_users;
    int64_t last_done;         /* the lowest user_id of the last finished round */
    char progress_key[300];
    char source[4096];         /* the database's real path: the progress field */
    store_err err;             /* a failure inside the scan's callback */
} s_push;

/* ---- 3. one user's commands ----------------------------------------------- */

static int s_cmd(s_push *p, int node, int argc, const char **argv, const size_t *argl,
                 store_err *err)
{
    rds_node *n = &p->ring.node[node];
    if (redisAppendCommandArgv(n->c, argc, argv, argl) != REDIS_OK)
        return rds_fail(n, &p->conf, "out of memory queueing a command", err);
    p->pending[node]++;
    return STORE_OK;
}

static int s_flush_user(s_push *p, store_err *err)
{
    if (p->n_ev == 0)
        return STORE_OK;
    size_t ulen = strlen(p->user);
    int node = rds_ring_node(&p->ring, p->user, ulen);
    size_t hlen = rds_key(&p->key, &p->key_cap, p->o->prefix, 'h', p->user, ulen);
    size_t elen = rds_key(&p->key2, &p->key2_cap, p->o->prefix, 'e', p->user, ulen);
    if (!hlen || !elen)
        return store_fail(err, STORE_ERR_NOMEM, "history push: out of memory");
    const char *a[4] = {"DEL", p->key, p->key2};
    size_t l[4] = {3, hlen, elen};
    int rc = s_cmd(p, node, 1, (const char *[]){"MULTI"}, (size_t[]){5}, err);
    if (rc == STORE_OK)
        rc = s_cmd(p, node, 3, a, l, err);
    int argc = 0, ids = 0;
    p->argv[argc] = "RPUSH";
    p->argl[argc++] = 5;
    p->argv[argc] = p->key;
    p->argl[argc++] = hlen;
    for (int i = 0; i < p->n_ev; i++) {
        p->argv[argc] = (const char *)p->elem + p->elem_off[i];
        p->argl[argc++] = p->elem_off[i + 1] - p->elem_off[i];
        ids += p->has_id[i];
    }
    if (rc == STORE_OK)
        rc = s_cmd(p, node, argc, p->argv, p->argl, err);
    if (rc == STORE_OK && ids) {
        argc = 0;
        p->argv[argc] = "ZADD";
        p->argl[argc++] = 4;
        p->argv[argc] = p->key2;
        p->argl[argc++] = elen;
        for (int i = 0; i < p->n_ev; i++) {
            if (!p->has_id[i])
                continue;
            p->argl[argc] = (size_t)snprintf(p->score[i], sizeof p->score[i], "%lld",
                                             (long long)p->ts[i]);
            p->argv[argc++] = p->score[i];
            p->argv[argc] = (const char *)p->idh[i];
            p->argl[argc++] = 8;
        }
        rc = s_cmd(p, node, argc, p->argv, p->argl, err);
    }
    if (rc == STORE_OK && p->o->ttl_s > 0) {
        char ttl[24];
        size_t tl = (size_t)snprintf(ttl, sizeof ttl, "%d", p->o->ttl_s);
        const char *x[3] = {"EXPIRE", p->key, ttl}, *y[3] = {"EXPIRE", p->key2, ttl};
        size_t xl[3] = {6, hlen, tl}, yl[3] = {6, elen, tl};
        rc = s_cmd(p, node, 3, x, xl, err);
        if (rc == STORE_OK)
            rc = s_cmd(p, node, 3, y, yl, err);
    }
    if (rc == STORE_OK)
        rc = s_cmd(p, node, 1, (const char *[]){"EXEC"}, (size_t[]){4}, err);
    p->st->users++;
    p->st->events += p->n_ev;
    p->round_users++;
    p->n_ev = 0;
    p->elem_len = 0;
    return rc;
}

/* ---- 4. a round's replies ------------------------------------------------- */

/* A reply of the pipeline: an error anywhere in it (inside EXEC's array
 * too) stops the push. */
static int s_reply_ok(s_push *p, rds_node *n, const redisReply *r, store_err *err)
{
    int rc = rds_check(n, &p->conf, r, "history push", err);
    if (rc != STORE_OK)
        return rc;
    if (r->type == REDIS_REPLY_NIL)
        return store_fail(err, STORE_ERR_IO, "history push: %s: a transaction was aborted",
                          n->url);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR)
            return store_fail(err, STORE_ERR_IO, "history push: %s: %.300s", n->url,
                              r->element[i]->str);
    return STORE_OK;
}

static int s_progress_set(s_push *p, const char *value, store_err *err)
{
    rds_node *n = &p->ring.node[rds_ring_node(&p->ring, p->progress_key,
                                              strlen(p->progress_key))];
    redisReply *r = redisCommand(n->c, "HSET %s %s %s", p->progress_key, p->source, value);
    int rc = s_reply_ok(p, n, r, err);
    if (r)
        freeReplyObject(r);
    return rc;
}

static int s_drain(s_push *p, store_err *err)
{
    for (int k = 0; k < p->ring.n; k++) {
        rds_node *n = &p->ring.node[k];
        for (; p->pending[k] > 0; p->pending[k]--) {
            void *r = NULL;
            if (redisGetReply(n->c, &r) != REDIS_OK)
                r = NULL;
            int rc = s_reply_ok(p, n, r, err);
            if (r)
                freeReplyObject(r);
            if (rc != STORE_OK)
                return rc;
        }
    }
    return STORE_OK;
}

static int s_round(s_push *p, store_err *err)
{
    int rc = s_drain(p, err);
    if (rc != STORE_OK)
        return rc;
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)p->user_id);
    rc = s_progress_set(p, v, err);
    p->round_users = 0;
    p->st->seconds = (double)(util_now_ns() - p->t0) / 1e9;
    if (rc == STORE_OK && p->o->progress)
        p->o->progress(p->o->ctx, p->st);
    return rc;
}

/* ---- 2. the scan ------------------------------------------------------------ */

static int s_on_event(void *ctx, const store_scan_event *ev)
{
    s_push *p = ctx;
    store_err *err = &p->err;
    int rc = STORE_OK;
    if (ev->user_id != p->user_id) {
        rc = s_flush_user(p, err);
        if (rc == STORE_OK && p->round_users >= p->o->batch_users)
            rc = s_round(p, err);
        if (rc != STORE_OK)
            return rc;
        size_t len = strlen(ev->user) + 1;
        if (len > p->user_cap) {
            char *u = realloc(p->user, len);
            if (!u)
                return store_fail(err, STORE_ERR_NOMEM, "history push: out of memory");
            p->user = u;
            p->user_cap = len;
        }
        memcpy(p->user, ev->user, len);
        p->user_id = ev->user_id;
    }
    size_t need = p->elem_len + RDS_ELEM_FIXED + strlen(ev->kind);
    if (need > p->elem_cap) {
        size_t cap = p->elem_cap * 2 > need ? p->elem_cap * 2 : need;
        uint8_t *e = realloc(p->elem, cap);
        if (!e)
            return store_fail(err, STORE_ERR_NOMEM, "history push: out of memory");
        p->elem = e;
        p->elem_cap = cap;
    }
    int i = p->n_ev++;
    p->elem_off[i] = p->elem_len;
    p->elem_len += rds_encode(p->elem + p->elem_len, ev->ts, ev->item_id, ev->weight, ev->kind);
    p->elem_off[i + 1] = p->elem_len;
    p->ts[i] = ev->ts;
    p->has_id[i] = ev->event_id != NULL;
    if (ev->event_id)
        rds_id_hash(ev->event_id, p->idh[i]);
    return STORE_OK;
}

/* ---- 1. and the whole copy -------------------------------------------------- */

static void s_free(s_push *p)
{
    rds_ring_free(&p->ring);
    free(p->pending);
    free(p->user);
    free(p->elem);
    free(p->elem_off);
    free(p->ts);
    free(p->score);
    free(p->idh);
    free(p->has_id);
    free(p->argv);
    free(p->argl);
    free(p->key);
    free(p->key2);
}

static int s_alloc(s_push *p, store_err *err)
{
    size_t t = (size_t)p->o->trim;
    p->pending = calloc((size_t)p->ring.n, sizeof *p->pending);
    p->elem_cap = t * 12 + 64;
    p->elem = malloc(p->elem_cap);
    p->elem_off = malloc((t + 1) * sizeof *p->elem_off);
    p->ts = malloc(t * sizeof *p->ts);
    p->score = malloc(t * sizeof *p->score);
    p->idh = malloc(t * sizeof *p->idh);
    p->has_id = malloc(t);
    p->argv = malloc((2 * t + 4) * sizeof *p->argv);
    p->argl = malloc((2 * t + 4) * sizeof *p->argl);
    if (!p->pending || !p->elem || !p->elem_off || !p->ts || !p->score || !p->idh ||
        !p->has_id || !p->argv || !p->argl)
        return store_fail(err, STORE_ERR_NOMEM, "history push: out of memory");
    return STORE_OK;
}

/* Connect every node, and read where an earlier run stopped (*below:
 * INT64_MAX for the start, -1 when it had finished). */
static int s_start(s_push *p, int64_t *below, store_err *err)
{
    for (int k = 0; k < p->ring.n; k++) {
        int rc = rds_ready(&p->ring.node[k], &p->conf, err);
        if (rc != STORE_OK)
            return rc;
    }
    *below = INT64_MAX;
    if (p->o->restart)
        return STORE_OK;
    rds_node *n = &p->ring.node[rds_ring_node(&p->ring, p->progress_key,
                                              strlen(p->progress_key))];
    redisReply *r = redisCommand(n->c, "HGET %s %s", p->progress_key, p->source);
    int rc = rds_check(n, &p->conf, r, "reading the progress", err);
    if (rc == STORE_OK && r->type == REDIS_REPLY_STRING)
        *below = !strcmp(r->str, "done") ? -1 : strtoll(r->str, NULL, 10);
    if (r)
        freeReplyObject(r);
    return rc;
}

/* The database's user count, and how many an earlier run covered. */
static int s_counts(const char *db_path, int64_t below, store_hist_push_stats *st,
                    store_err *err)
{
    store *db;
    int rc = store_open(&db, db_path, STORE_READONLY, 5000, err);
    if (rc != STORE_OK)
        return rc;
    int64_t above = 0;
    rc = store_users_count(db, INT64_MIN, &st->users_total, err);
    if (rc == STORE_OK && below != INT64_MAX)
        rc = store_users_count(db, below < 0 ? INT64_MIN : below, &above, err);
    st->resumed = above;
    store_close(&db);
    return rc;
}

int store_hist_push(const store_hist_push_opts *o, store_hist_push_stats *st, store_err *err)
{
    memset(st, 0, sizeof *st);
    if (!o || !o->db || o->trim < 1 || o->batch_users < 1 || o->ttl_s < 0 || !o->prefix)
        return store_fail(err, STORE_ERR_INVAL, "store_hist_push: bad options");
    s_push p = {.o = o, .st = st, .t0 = util_now_ns(), .user_id = INT64_MIN,
                .conf = {o->connect_ms, o->timeout_ms, 0}};
    if (!realpath(o->db, p.source))
        return store_fail(err, STORE_ERR_IO, "%s: no such file", o->db);
    snprintf(p.progress_key, sizeof p.progress_key, "%spush", o->prefix);
    int rc = rds_ring_init(&p.ring, o->urls, err);
    if (rc != STORE_OK)
        return rc;
    int64_t below = INT64_MAX;
    rc = s_alloc(&p, err);
    if (rc == STORE_OK)
        rc = s_start(&p, &below, err);
    if (rc == STORE_OK)
        rc = s_counts(o->db, below, st, err);
    if (rc == STORE_OK && below < 0) {
        st->done = st->already = 1;
        s_free(&p);
        return STORE_OK;
    }
    store *db = NULL;
    if (rc == STORE_OK)
        rc = store_open(&db, o->db, STORE_READONLY, 5000, err);
    if (rc == STORE_OK) {
        rc = store_history_scan(db, below, o->trim, s_on_event, &p, &p.err);
        if (rc != STORE_OK && err)
            *err = p.err;
    }
    store_close(&db);
    if (rc == STORE_OK)
        rc = s_flush_user(&p, err);
    if (rc == STORE_OK)
        rc = s_drain(&p, err);
    if (rc == STORE_OK)
        rc = s_progress_set(&p, "done", err);
    st->seconds = (double)(util_now_ns() - p.t0) / 1e9;
    st->done = rc == STORE_OK;
    if (rc == STORE_OK && o->progress)
        o->progress(o->ctx, st);
    s_free(&p);
    return rc;
}

/* ---- the check ---------------------------------------------------------------- */

typedef struct s_sample {
    char **user;
    int n, cap;
    int64_t seen;
    uint64_t rng;
} s_sample;

/* Reservoir sampling: every user equally likely, one pass. */
static int s_sample_user(void *ctx, int kind, const char *ext)
{
    s_sample *s = ctx;
    if (kind != STORE_EXT_USER)
        return STORE_OK;
    int64_t at = s->seen++;
    if (s->n < s->cap) {
        at = s->n++;
    } else {
        at = (int64_t)(util_splitmix64(&s->rng) % (uint64_t)s->seen);
        if (at >= s->cap)
            return STORE_OK;
        free(s->user[at]);
    }
    s->user[at] = strdup(ext);
    return s->user[at] ? STORE_OK : STORE_ERR_NOMEM;
}

/* Compare one user's histories; a difference is described into st. */
static int s_check_user(store *db, store_hist *h, const char *user, int trim, store_event *a,
                        store_event *b, store_hist_check_stats *st, store_err *err)
{
    int64_t uid;
    int na = 0, nb = 0;
    int rc = store_user_id(db, user, strlen(user), &uid, err);
    if (rc == STORE_OK)
        rc = store_history(db, uid, trim, a, &na, err);
    if (rc != STORE_OK)
        return rc;
    store_err e;
    int rr = store_hist_read(h, user, strlen(user), trim, b, &nb, &e);
    if (rr == STORE_ERR_UNAVAILABLE) {
        if (err)
            *err = e;
        return rr;
    }
    if (rr == STORE_ERR_NOTFOUND)
        rr = STORE_OK;   /* Redis keeps no empty list: no events either way */
    int at = -1;
    if (rr != STORE_OK || na != nb)
        at = na < nb ? na : nb;
    for (int i = 0; at < 0 && i < na; i++)
        if (a[i].item_id != b[i].item_id || a[i].ts != b[i].ts || a[i].weight != b[i].weight)
            at = i;
    st->users++;
    if (at >= 0 && st->differ++ == 0)
        snprintf(st->first, sizeof st->first, "user '%.200s': %d events in the database, %d "
                 "in Redis (%s), first difference at position %d", user, na,
                 rr == STORE_OK ? nb : 0, rr == STORE_OK ? "read" : store_strerror(rr), at);
    return STORE_OK;
}

int store_hist_check(const char *db_path, const store_hist_redis_opts *ro, int sample,
                     uint64_t seed, store_hist_check_stats *st, store_err *err)
{
    memset(st, 0, sizeof *st);
    if (sample < 1 || !ro || ro->trim < 1)
        return store_fail(err, STORE_ERR_INVAL, "store_hist_check: bad arguments");
    s_sample s = {.cap = sample, .rng = seed, .user = calloc((size_t)sample, sizeof(char *))};
    store_event *a = malloc((size_t)ro->trim * sizeof *a);
    store_event *b = malloc((size_t)ro->trim * sizeof *b);
    store *db = NULL;
    store_hist *h = NULL;
    int rc = s.user && a && b ? STORE_OK
                              : store_fail(err, STORE_ERR_NOMEM, "history check: out of memory");
    if (rc == STORE_OK)
        rc = store_ext_ids_file(db_path, 1, s_sample_user, &s, err);
    if (rc == STORE_OK)
        rc = store_open(&db, db_path, STORE_READONLY, 5000, err);
    if (rc == STORE_OK)
        rc = store_hist_redis_open(&h, ro, err);
    for (int i = 0; rc == STORE_OK && i < s.n; i++)
        rc = s_check_user(db, h, s.user[i], ro->trim, a, b, st, err);
    store_hist_close(&h);
    store_close(&db);
    for (int i = 0; i < s.n; i++)
        free(s.user[i]);
    free(s.user);
    free(a);
    free(b);
    return rc;
}
