/* worker.c -- one scoring thread: parse, history, score, encode, reply.
 *
 * Everything a request needs is sized at start from the limits in the
 * configuration: candidate and history buffers, two row sets, the JSON
 * arena, the reply buffer and the attention scratch.  The hot path then only
 * reads: the snapshot (by reference), the catalog hashes and this thread's
 * own SQLite connection.  The one allocation a request can cause is the
 * scratch being rebuilt when a reload changed the model's shape.
 */
#include "daemon/worker.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "attn/attn.h"
#include "attn/score.h"
#include "attn/topk.h"
#include "daemon/arena.h"
#include "daemon/log.h"
#include "daemon/proto.h"
#include "daemon/snapshot.h"
#include "store/store.h"
#include "util/set.h"

#define S_ARENA_BYTES (4u << 20)
/* Most self-attention context events a request can carry (any model's). */
#define S_CTX (ATTN_SA_MAX - 1)
#define S_TITLE_MAX 512

struct srv_worker {
    int index;
    srv_server *srv;
    pthread_t thread;
    void *sock;                  /* DEALER to the server's backend */
    store *db;                   /* this thread's connection */
    attn_scratch *scratch;       /* sized for the snapshot's model shape */
    attn_limits lim;
    srv_arena arena;             /* cJSON parse trees */
    srv_json out;                /* reply being written */
    int threaded;                /* own thread and socket, or run inline by main */
    uint64_t stage[SRV_STAGE_COUNT];  /* timings of the request being handled */
    srv_wstats stats;
    srv_metrics_view *view;      /* for the stats op */
    const char **look_ext;       /* max(max_candidates, max_history): ids to look up */
    size_t *look_len;            /* their lengths */
    uint64_t *look_hash;         /* lookup scratch */
    int64_t *look_rows;          /* lookup results */
    uint32_t *cand_rows;         /* max_candidates: known, unique, not excluded */
    const char **unknown;        /* max_candidates + max history: borrowed ext ids */
    uint32_t *excluded_rows;     /* max_candidates */
    uint32_t *hist_rows;         /* max_history + S_CTX: history, then context */
    float *hist_w;               /* max_history + S_CTX */
    store_event *events;         /* max(max_history, max_seen) */
    float *fallback_scores;      /* max_candidates */
    uint32_t *fallback_order;    /* max_k */
    util_set dedupe, seen;
    char title[S_TITLE_MAX];
};

/* ---- replies -------------------------------------------------------------- */

static void s_send(srv_worker *w, zmq_msg_t *route, uint8_t style, uint8_t kind,
                   const char *payload, size_t len)
{
    srv_done_meta meta = {.kind = kind, .style = style};
    zmq_msg_send(route, w->sock, ZMQ_SNDMORE);
    zmq_send(w->sock, &meta, sizeof meta, ZMQ_SNDMORE);
    zmq_send(w->sock, payload, len, 0);
}

static void s_count_error(srv_worker *w, int code)
{
    pthread_mutex_lock(&w->stats.lock);
    w->stats.errors[code]++;
    pthread_mutex_unlock(&w->stats.lock);
}

static void s_error(srv_worker *w, const srv_request *rq, int code, const char *why)
{
    srv_reply_error(&w->out, rq->id_json, code, why);
    s_count_error(w, code);
}

static void s_title(srv_worker *w, const srv_snapshot *snap, uint32_t row)
{
    store_err err;
    if (store_item_title(w->db, snap->cat->item_id[row], w->title, sizeof w->title, &err) !=
        STORE_OK)
        w->title[0] = 0;  /* a title is decoration: a failed lookup must not fail the rank */
}

static void s_item_key(srv_worker *w, const srv_snapshot *snap, uint32_t row, int titles)
{
    srv_json_key(&w->out, "item");
    srv_json_cstr(&w->out, store_catalog_ext(snap->cat, row));
    if (titles) {
        s_title(w, snap, row);
        srv_json_key(&w->out, "title");
        srv_json_cstr(&w->out, w->title);
    }
}

/* ---- rank ----------------------------------------------------------------- */

typedef struct s_rank_state {
    int n_cand, n_unknown, n_excluded, n_hist;
    int n_ctx;                /* self-attention context events after the history */
    const char *fallback;     /* NULL, or the reason */
} s_rank_state;

/* Look up n ids at once (their misses overlap) into w->look_rows. */
static void s_lookup(srv_worker *w, const srv_snapshot *snap, int n)
{
    for (int i = 0; i < n; i++)
        w->look_len[i] = strlen(w->look_ext[i]);
    store_catalog_find_many(snap->cat, w->look_ext, w->look_len, n, w->look_hash,
                            w->look_rows);
}

/* Map candidates to rows: unknown ones listed, duplicates ranked once. */
static void s_map_candidates(srv_worker *w, const srv_snapshot *snap, const srv_request *rq,
                             s_rank_state *st)
{
    int n = 0;
    for (const cJSON *e = rq->candidates->child; e; e = e->next)
        w->look_ext[n++] = e->valuestring;
    s_lookup(w, snap, n);
    util_set_clear(&w->dedupe);
    for (int i = 0; i < n; i++) {
        int64_t row = w->look_rows[i];
        if (row < 0)
            w->unknown[st->n_unknown++] = w->look_ext[i];
        else if (util_set_add(&w->dedupe, (uint32_t)row))
            w->cand_rows[st->n_cand++] = (uint32_t)row;
    }
}

/* A known event, newest first: into the history while it has room, then
 * into the self-attention context after it (weights: history only). */
static void s_take_event(srv_worker *w, const srv_snapshot *snap, s_rank_state *st,
                         uint32_t row, float weight)
{
    if (st->n_hist < snap->l_hist) {
        w->hist_rows[st->n_hist] = row;
        w->hist_w[st->n_hist] = weight;
        st->n_hist++;
    } else if (st->n_ctx < snap->l_ctx) {
        w->hist_rows[st->n_hist + st->n_ctx++] = row;
    }
}

/* Anonymous history: the request lists it oldest first; attention wants
 * newest first.  cJSON links an array's first element back to its last, so
 * walking prev from there visits the newest max_history entries newest
 * first (and, for a model with a self-attention block, up to l_ctx more as
 * its context); older ones are ignored, as the newest events of a user
 * would be.  Unknown items are reported among the first max_history. */
static void s_map_history(srv_worker *w, const srv_snapshot *snap, const srv_request *rq,
                          s_rank_state *st)
{
    const cJSON *first = rq->history->child;
    const cJSON *e = first->prev;
    const cJSON *wt = rq->weights ? rq->weights->child->prev : NULL;
    const int max_history = w->srv->cfg.max_history;
    int n = 0, limit = max_history + snap->l_ctx;
    for (; n < limit; n++) {
        w->look_ext[n] = e->valuestring;
        w->hist_w[n] = wt ? (float)wt->valuedouble : 1.0f;
        if (e == first) {
            n++;
            break;
        }
        e = e->prev;
        wt = wt ? wt->prev : NULL;
    }
    s_lookup(w, snap, n);
    for (int i = 0; i < n; i++) {
        int64_t row = w->look_rows[i];
        if (row < 0) {
            if (i < max_history)
                w->unknown[st->n_unknown++] = w->look_ext[i];
        } else {
            /* i >= n_hist + n_ctx: compacting never overwrites ahead. */
            s_take_event(w, snap, st, (uint32_t)row, w->hist_w[i]);
        }
    }
    if (st->n_hist == 0)
        st->fallback = "unknown_history";
}

/* Known user: newest events from SQLite.  With exclude_seen, read up to
 * max_seen events: all of them feed the seen set, the newest l_hist known
 * ones are the history. */
static int s_user_history(srv_worker *w, const srv_snapshot *snap, const srv_request *rq,
                          s_rank_state *st, char *why, size_t why_len)
{
    store_err err;
    int64_t uid;
    int rc = store_user_id(w->db, rq->user, strlen(rq->user), &uid, &err);
    if (rc == STORE_ERR_NOTFOUND) {
        st->fallback = "unknown_user";
        return 0;
    }
    int want = snap->l_hist + snap->l_ctx;
    if (rq->exclude_seen && w->srv->cfg.max_seen > want)
        want = w->srv->cfg.max_seen;
    int n = 0;
    if (rc == STORE_OK)
        rc = store_history(w->db, uid, want, w->events, &n, &err);
    if (rc != STORE_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return -1;
    }
    if (rq->exclude_seen)
        util_set_clear(&w->seen);
    for (int i = 0; i < n; i++) {
        int64_t row = store_catalog_row(snap->cat, w->events[i].item_id);
        if (row < 0)
            continue;  /* not embedded, or gone from the catalog */
        if (rq->exclude_seen)
            util_set_add(&w->seen, (uint32_t)row);
        float wt = w->events[i].weight;
        if (wt > 0 && isfinite(wt))
            s_take_event(w, snap, st, (uint32_t)row, wt);
    }
    if (st->n_hist == 0)
        st->fallback = "no_history";
    if (rq->exclude_seen) {
        int kept = 0;
        for (int i = 0; i < st->n_cand; i++) {
            uint32_t row = w->cand_rows[i];
            if (util_set_has(&w->seen, row))
                w->excluded_rows[st->n_excluded++] = row;
            else
                w->cand_rows[kept++] = row;
        }
        st->n_cand = kept;
    }
    return 0;
}

static void s_write_rank_tail(srv_worker *w, const srv_snapshot *snap, const srv_request *rq,
                              const s_rank_state *st, uint64_t t_recv)
{
    srv_json *o = &w->out;
    srv_json_key(o, "unknown");
    srv_json_open(o, '[');
    for (int i = 0; i < st->n_unknown; i++)
        srv_json_cstr(o, w->unknown[i]);
    srv_json_close(o, ']');
    if (rq->exclude_seen) {
        srv_json_key(o, "excluded");
        srv_json_open(o, '[');
        for (int i = 0; i < st->n_excluded; i++)
            srv_json_cstr(o, store_catalog_ext(snap->cat, w->excluded_rows[i]));
        srv_json_close(o, ']');
    }
    srv_json_key(o, "fallback");
    if (st->fallback) {
        srv_json_open(o, '{');
        srv_json_key(o, "kind");
        srv_json_cstr(o, "popularity");
        srv_json_key(o, "reason");
        srv_json_cstr(o, st->fallback);
        srv_json_close(o, '}');
    } else {
        srv_json_null(o);
    }
    srv_json_key(o, "history");
    srv_json_int(o, st->n_hist);
    srv_json_key(o, "took_us");
    srv_json_int(o, (int64_t)((srv_now_ns() - t_recv) / 1000));
    srv_json_close(o, '}');
}

static void s_rank(srv_worker *w, const srv_request *rq, uint64_t t_recv, uint64_t *stage)
{
    srv_snapshot *snap = srv_snapshot_acquire();
    if (!snap) {
        s_error(w, rq, SRV_E_UNAVAILABLE, "no catalog and model loaded yet");
        return;
    }
    char why[600];
    s_rank_state st = {0};
    uint64_t t0 = srv_now_ns();
    s_map_candidates(w, snap, rq, &st);
    if (rq->user) {
        if (s_user_history(w, snap, rq, &st, why, sizeof why)) {
            s_error(w, rq, SRV_E_STORE, why);
            srv_snapshot_release(&snap);
            return;
        }
    } else {
        s_map_history(w, snap, rq, &st);
    }
    uint64_t t1 = srv_now_ns();
    stage[SRV_STAGE_HISTORY] = t1 - t0;

    /* The scratch follows the model's shape; a reload may have changed it. */
    if (!w->scratch || !attn_scratch_fits(w->scratch, snap->tables)) {
        attn_scratch_free(&w->scratch);
        w->scratch = attn_scratch_new(snap->tables, &w->lim);
        if (!w->scratch) {
            s_error(w, rq, SRV_E_INTERNAL, "out of memory for the scoring scratch");
            srv_snapshot_release(&snap);
            return;
        }
    }
    attn_result res = {0};
    const uint32_t *order = NULL;
    const float *scores = NULL;
    int n_res = 0;
    if (st.n_cand > 0 && !st.fallback) {
        attn_request ar = {.hist = w->hist_rows, .hist_weight = w->hist_w, .n_hist = st.n_hist,
                           .n_ctx = st.n_ctx, .cand = w->cand_rows, .n_cand = st.n_cand,
                           .k = rq->k, .explain = rq->explain};
        int rc = attn_score(snap->tables, &ar, w->scratch, &res);
        if (rc != ATTN_OK) {
            snprintf(why, sizeof why, "scoring failed: %s", attn_strerror(rc));
            srv_log(SRV_ERROR, "msg=\"scoring failed\" worker=%d id=%s status=%s", w->index,
                    rq->id_json, attn_strerror(rc));
            s_error(w, rq, SRV_E_INTERNAL, why);
            srv_snapshot_release(&snap);
            return;
        }
        order = res.cand;
        scores = res.score;
        n_res = res.n;
    } else if (st.n_cand > 0) {
        for (int i = 0; i < st.n_cand; i++)
            w->fallback_scores[i] = snap->popularity[w->cand_rows[i]];
        n_res = attn_topk_f32(w->fallback_scores, st.n_cand, rq->k, w->fallback_order);
        order = w->fallback_order;
    }
    uint64_t t2 = srv_now_ns();
    stage[SRV_STAGE_SCORE] = t2 - t1;

    srv_json *o = &w->out;
    srv_reply_begin(o, rq->id_json);
    srv_json_bool(o, 1);
    srv_json_key(o, "model");
    srv_json_int(o, snap->model_version);
    srv_json_key(o, "catalog");
    srv_json_int(o, snap->catalog_version);
    srv_json_key(o, "items");
    srv_json_open(o, '[');
    for (int i = 0; i < n_res; i++) {
        uint32_t row = w->cand_rows[order[i]];
        srv_json_open(o, '{');
        s_item_key(w, snap, row, rq->titles);
        srv_json_key(o, "score");
        srv_json_num(o, scores ? scores[i] : w->fallback_scores[order[i]]);
        if (scores && rq->explain > 0) {
            srv_json_key(o, "because");
            srv_json_open(o, '[');
            for (int j = 0; j < res.n_explain; j++) {
                size_t at = (size_t)i * (size_t)res.n_explain + (size_t)j;
                srv_json_open(o, '{');
                s_item_key(w, snap, w->hist_rows[res.because[at]], rq->titles);
                srv_json_key(o, "weight");
                srv_json_num(o, res.because_weight[at]);
                srv_json_close(o, '}');
            }
            srv_json_close(o, ']');
        }
        srv_json_close(o, '}');
    }
    srv_json_close(o, ']');
    s_write_rank_tail(w, snap, rq, &st, t_recv);
    stage[SRV_STAGE_ENCODE] = srv_now_ns() - t2;
    if (st.fallback) {
        pthread_mutex_lock(&w->stats.lock);
        w->stats.fallbacks++;
        pthread_mutex_unlock(&w->stats.lock);
    }
    srv_snapshot_release(&snap);
}

/* ---- health, info, stats -------------------------------------------------- */

void srv_write_health(srv_json *o, srv_server *srv, const char *id_json)
{
    srv_snapshot *snap = srv_snapshot_acquire();
    srv_reply_begin(o, id_json);
    srv_json_bool(o, 1);
    srv_json_key(o, "live");
    srv_json_bool(o, 1);
    srv_json_key(o, "ready");
    srv_json_bool(o, snap && !atomic_load(&srv->stopping));
    srv_json_key(o, "model");
    srv_json_int(o, snap ? snap->model_version : -1);
    srv_json_key(o, "catalog");
    srv_json_int(o, snap ? snap->catalog_version : -1);
    srv_json_key(o, "items");
    srv_json_int(o, snap ? snap->cat->n : 0);
    srv_json_key(o, "uptime_s");
    srv_json_int(o, (int64_t)((srv_now_ns() - srv->started_ns) / 1000000000u));
    srv_json_close(o, '}');
    srv_snapshot_release(&snap);
}

static void s_info(srv_worker *w, const srv_request *rq)
{
    const srv_config *cfg = &w->srv->cfg;
    srv_snapshot *snap = srv_snapshot_acquire();
    srv_json *o = &w->out;
    srv_reply_begin(o, rq->id_json);
    srv_json_bool(o, 1);
    srv_json_key(o, "version");
    srv_json_cstr(o, SRV_VERSION);
    srv_json_key(o, "protocol");
    srv_json_int(o, 1);
    srv_json_key(o, "endpoint");
    srv_json_cstr(o, cfg->bind);
    srv_json_key(o, "workers");
    srv_json_int(o, w->srv->n_workers);
    srv_json_key(o, "db");
    srv_json_cstr(o, cfg->db);
    if (snap) {
        const attn_model *m = snap->model;
        srv_json_key(o, "model");
        srv_json_open(o, '{');
        srv_json_key(o, "version");
        srv_json_int(o, snap->model_version);
        srv_json_key(o, "d");
        srv_json_int(o, m->d);
        srv_json_key(o, "m");
        srv_json_int(o, m->m);
        srv_json_key(o, "heads");
        srv_json_int(o, m->heads);
        srv_json_key(o, "l_max");
        srv_json_int(o, m->l_max);
        srv_json_key(o, "identity");
        srv_json_bool(o, !m->wq && !m->wk && !m->wv && !m->wo);
        srv_json_key(o, "self_attn");
        srv_json_int(o, m->sa_len);
        srv_json_key(o, "precompute");
        srv_json_cstr(o, cfg->precompute == CFG_PRECOMPUTE_NONE ? "none" : "all");
        srv_json_key(o, "table_bytes");
        srv_json_int(o, (int64_t)attn_tables_bytes(snap->tables));
        srv_json_close(o, '}');
        srv_json_key(o, "catalog");
        srv_json_open(o, '{');
        srv_json_key(o, "version");
        srv_json_int(o, snap->catalog_version);
        srv_json_key(o, "items");
        srv_json_int(o, snap->cat->n);
        srv_json_key(o, "unembedded");
        srv_json_int(o, snap->cat->n_unembedded);
        srv_json_key(o, "dim");
        srv_json_int(o, snap->cat->dim);
        srv_json_key(o, "bytes");
        srv_json_int(o, (int64_t)store_catalog_bytes(snap->cat));
        srv_json_close(o, '}');
        srv_json_key(o, "snapshot_build_ms");
        srv_json_num(o, snap->build_ms);
        srv_json_key(o, "history_used");
        srv_json_int(o, snap->l_hist);
        srv_json_key(o, "history_context");
        srv_json_int(o, snap->l_ctx);
    }
    srv_json_key(o, "limits");
    srv_json_open(o, '{');
    srv_json_key(o, "max_message_bytes");
    srv_json_int(o, cfg->max_message_bytes);
    srv_json_key(o, "max_candidates");
    srv_json_int(o, cfg->max_candidates);
    srv_json_key(o, "max_k");
    srv_json_int(o, cfg->max_k);
    srv_json_key(o, "max_explain");
    srv_json_int(o, cfg->max_explain);
    srv_json_key(o, "max_history");
    srv_json_int(o, cfg->max_history);
    srv_json_key(o, "max_seen");
    srv_json_int(o, cfg->max_seen);
    srv_json_key(o, "queue_max");
    srv_json_int(o, cfg->queue_max);
    srv_json_close(o, '}');
    srv_json_close(o, '}');
    srv_snapshot_release(&snap);
}

static void s_stats(srv_worker *w, const srv_request *rq)
{
    srv_server *srv = w->srv;
    srv_wstats *all[256];
    int n = srv->n_workers < 256 ? srv->n_workers : 256;
    for (int i = 0; i < n; i++)
        all[i] = srv_worker_stats(srv->workers[i]);
    srv_metrics_collect(w->view, all, n, &srv->counters);
    w->view->uptime_s = (srv_now_ns() - srv->started_ns) / 1e9;
    srv_snapshot *snap = srv_snapshot_acquire();
    w->view->model_version = snap ? snap->model_version : -1;
    w->view->catalog_version = snap ? snap->catalog_version : -1;
    w->view->items = snap ? snap->cat->n : 0;
    srv_snapshot_release(&snap);
    srv_reply_begin(&w->out, rq->id_json);
    srv_json_bool(&w->out, 1);
    srv_metrics_json(w->view, &w->out);
    srv_json_close(&w->out, '}');
}

/* ---- the loop ------------------------------------------------------------- */

int srv_worker_handle(srv_worker *w, uint64_t t_recv, const char *buf, size_t len)
{
    if (!w->threaded)
        srv_arena_bind(&w->arena);
    memset(w->stage, 0, sizeof w->stage);
    uint64_t t0 = srv_now_ns();
    srv_request rq;
    cJSON *tree = NULL;
    char why[600];
    int code = srv_request_parse(buf, len, &w->srv->cfg, &rq, &tree, why, sizeof why);
    w->stage[SRV_STAGE_PARSE] = srv_now_ns() - t0;
    int kind = SRV_DONE_REPLY;
    if (code != SRV_OK) {
        s_error(w, &rq, code, why);
    } else {
        pthread_mutex_lock(&w->stats.lock);
        w->stats.ops[rq.op]++;
        pthread_mutex_unlock(&w->stats.lock);
        switch (rq.op) {
        case SRV_OP_RANK: s_rank(w, &rq, t_recv, w->stage); break;
        case SRV_OP_HEALTH: srv_write_health(&w->out, w->srv, rq.id_json); break;
        case SRV_OP_INFO: s_info(w, &rq); break;
        case SRV_OP_STATS: s_stats(w, &rq); break;
        case SRV_OP_RELOAD:
            /* The main thread owns reloads; it answers when the build ends. */
            kind = SRV_DONE_RELOAD;
            srv_json_reset(&w->out);
            srv_json_raw(&w->out, rq.id_json, strlen(rq.id_json));
            break;
        }
    }
    cJSON_Delete(tree);
    srv_arena_reset(&w->arena);
    if (w->out.oom) {
        srv_json_free(&w->out);
        if (srv_json_init(&w->out, 1 << 16) == 0)
            s_error(w, &rq, SRV_E_INTERNAL, "out of memory writing the reply");
    }
    if (!w->threaded)
        srv_arena_bind(NULL);
    return kind;
}

const char *srv_worker_reply(const srv_worker *w, size_t *len)
{
    *len = w->out.len;
    return w->out.buf;
}

void srv_worker_done(srv_worker *w, uint64_t t_recv)
{
    w->stage[SRV_STAGE_TOTAL] = srv_now_ns() - t_recv;
    pthread_mutex_lock(&w->stats.lock);
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        if (w->stage[s] || s == SRV_STAGE_TOTAL)
            util_hist_add(&w->stats.stage[s], w->stage[s]);
    pthread_mutex_unlock(&w->stats.lock);
}

static void *s_main(void *arg)
{
    srv_worker *w = arg;
    srv_arena_bind(&w->arena);
    srv_done_meta ready = {.kind = SRV_DONE_READY};
    zmq_send(w->sock, "", 0, ZMQ_SNDMORE);
    zmq_send(w->sock, &ready, sizeof ready, ZMQ_SNDMORE);
    zmq_send(w->sock, "", 0, 0);
    for (;;) {
        zmq_msg_t route, meta, payload;
        zmq_msg_init(&route);
        if (zmq_msg_recv(&route, w->sock, 0) < 0) {
            zmq_msg_close(&route);
            if (zmq_errno() == EINTR)
                continue;
            break;  /* context terminated */
        }
        if (!zmq_msg_more(&route)) {  /* a lone empty frame: stop */
            zmq_msg_close(&route);
            break;
        }
        zmq_msg_init(&meta);
        zmq_msg_init(&payload);
        zmq_msg_recv(&meta, w->sock, 0);
        zmq_msg_recv(&payload, w->sock, 0);
        srv_task_meta tm = {0};
        if (zmq_msg_size(&meta) == sizeof tm)
            memcpy(&tm, zmq_msg_data(&meta), sizeof tm);
        int kind = srv_worker_handle(w, tm.t_recv_ns, zmq_msg_data(&payload),
                                     zmq_msg_size(&payload));
        s_send(w, &route, tm.style, (uint8_t)kind, w->out.buf, w->out.len);
        srv_worker_done(w, tm.t_recv_ns);
        zmq_msg_close(&route);
        zmq_msg_close(&meta);
        zmq_msg_close(&payload);
    }
    srv_arena_bind(NULL);
    return NULL;
}

srv_wstats *srv_worker_stats(srv_worker *w)
{
    return &w->stats;
}

static void s_free(srv_worker *w)
{
    if (w->sock)
        zmq_close(w->sock);
    store_close(&w->db);
    attn_scratch_free(&w->scratch);
    srv_arena_free(&w->arena);
    srv_json_free(&w->out);
    srv_wstats_destroy(&w->stats);
    free(w->view);
    free(w->look_ext);
    free(w->look_len);
    free(w->look_hash);
    free(w->look_rows);
    free(w->cand_rows);
    free(w->unknown);
    free(w->excluded_rows);
    free(w->hist_rows);
    free(w->hist_w);
    free(w->events);
    free(w->fallback_scores);
    free(w->fallback_order);
    util_set_free(&w->dedupe);
    util_set_free(&w->seen);
    free(w);
}

srv_worker *srv_worker_start(srv_server *srv, int index, int threaded, char *why,
                             size_t why_len)
{
    const srv_config *cfg = &srv->cfg;
    srv_worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    w->index = index;
    w->srv = srv;
    w->threaded = threaded;
    srv_wstats_init(&w->stats);
    store_err err;
    if (store_open(&w->db, cfg->db, STORE_READONLY, cfg->busy_timeout_ms, &err) != STORE_OK) {
        snprintf(why, why_len, "worker %d: %s", index, err.msg);
        s_free(w);
        return NULL;
    }
    /* History buffers also hold the context of any self-attention block. */
    const int hist_cap = cfg->max_history + S_CTX;
    int n_events = cfg->max_seen > hist_cap ? cfg->max_seen : hist_cap;
    size_t n_unknown = (size_t)cfg->max_candidates + (size_t)cfg->max_history;
    w->lim = (attn_limits){.max_cand = cfg->max_candidates, .max_hist = cfg->max_history,
                           .max_k = cfg->max_k, .max_explain = cfg->max_explain};
    w->view = malloc(sizeof *w->view);
    size_t n_look = (size_t)(cfg->max_candidates > hist_cap ? cfg->max_candidates : hist_cap);
    w->look_ext = malloc(sizeof *w->look_ext * n_look);
    w->look_len = malloc(sizeof *w->look_len * n_look);
    w->look_hash = malloc(sizeof *w->look_hash * n_look);
    w->look_rows = malloc(sizeof *w->look_rows * n_look);
    w->cand_rows = malloc(sizeof *w->cand_rows * (size_t)cfg->max_candidates);
    w->unknown = malloc(sizeof *w->unknown * n_unknown);
    w->excluded_rows = malloc(sizeof *w->excluded_rows * (size_t)cfg->max_candidates);
    w->hist_rows = malloc(sizeof *w->hist_rows * (size_t)hist_cap);
    w->hist_w = malloc(sizeof *w->hist_w * (size_t)hist_cap);
    w->events = malloc(sizeof *w->events * (size_t)n_events);
    w->fallback_scores = malloc(sizeof *w->fallback_scores * (size_t)cfg->max_candidates);
    w->fallback_order = malloc(sizeof *w->fallback_order * (size_t)cfg->max_k);
    if (!w->view || !w->look_ext || !w->look_len || !w->look_hash || !w->look_rows ||
        !w->cand_rows || !w->unknown || !w->excluded_rows || !w->hist_rows ||
        !w->hist_w || !w->events || !w->fallback_scores || !w->fallback_order ||
        util_set_init(&w->dedupe, (uint32_t)cfg->max_candidates, 0) ||
        util_set_init(&w->seen, (uint32_t)n_events, 0) ||
        srv_arena_init(&w->arena, S_ARENA_BYTES) || srv_json_init(&w->out, 1 << 16)) {
        snprintf(why, why_len, "worker %d: out of memory for its buffers", index);
        s_free(w);
        return NULL;
    }
    srv_snapshot *snap = srv_snapshot_acquire();
    if (snap) {
        w->scratch = attn_scratch_new(snap->tables, &w->lim);
        srv_snapshot_release(&snap);
    }
    if (!threaded)
        return w;
    w->sock = zmq_socket(srv->zctx, ZMQ_DEALER);
    char ident[16];
    int ilen = snprintf(ident, sizeof ident, "w%d", index);
    int linger = 0;
    zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, ident, (size_t)ilen);
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(w->sock, SRV_BACKEND) != 0) {
        snprintf(why, why_len, "worker %d: connect %s: %s", index, SRV_BACKEND,
                 zmq_strerror(zmq_errno()));
        s_free(w);
        return NULL;
    }
    if (pthread_create(&w->thread, NULL, s_main, w) != 0) {
        snprintf(why, why_len, "worker %d: cannot start its thread", index);
        s_free(w);
        return NULL;
    }
    return w;
}

void srv_worker_join(srv_worker **worker_p)
{
    srv_worker *w = *worker_p;
    if (!w)
        return;
    *worker_p = NULL;
    if (w->threaded)
        pthread_join(w->thread, NULL);
    s_free(w);
}
