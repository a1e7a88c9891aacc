/* worker.c -- one worker: resources, the handle step and the thread loop.
 *
 * Everything a request needs is sized at start from the limits: the two
 * arenas (cJSON's parse tree, then the op's parsed fields), the reply
 * buffer, rank's buffers and the attention scratch.  The hot path then only
 * reads the snapshot (by reference), the catalog hashes and this worker's
 * own history handle (a read-only SQLite connection).
 */
#include "daemon/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "daemon/arena.h"
#include "daemon/history.h"
#include "daemon/log.h"
#include "daemon/ops.h"
#include "daemon/rank.h"
#include "daemon/reply.h"
#include "daemon/snapshot.h"
#include "util/clock.h"

#define S_JSON_ARENA_BYTES (4u << 20)

struct srv_worker {
    srv_state *st;
    srv_wres res;                /* what handlers borrow */
    pthread_t thread;
    srv_lane *lane;              /* a helper's hand-off with main; NULL: run by main */
    srv_arena json_arena;        /* cJSON parse trees */
    srv_arena args_arena;        /* the parsed request's fields */
    srv_json out;                /* the reply being written */
    uint64_t stage[SRV_STAGE_COUNT];  /* timings of the request being handled */
    srv_obs obs;                 /* what it counts for, recorded by srv_worker_done */
    srv_wstats stats;
};

/* ---- handling ------------------------------------------------------------- */

/* The request's counts, recorded with its timings in srv_worker_done (one
 * lock per request).  A reload's reply is counted by the reloader, which
 * sends it when the build ends. */
static void s_observe(srv_worker *w, const srv_request *rq, const srv_call *c)
{
    w->obs = (srv_obs){.op_row = srv_op_row(rq->op), .code = c->code,
                       .counted = c->outcome != SRV_OUT_RELOAD, .stage = w->stage,
                       .arm = c->arm, .ranked = c->ranked, .fallback = c->fallback,
                       .candidates = c->n_candidates, .history = c->n_history,
                       .unknown_candidates = c->n_unknown};
}

/* A reply past limits.max_reply_bytes is replaced by an error saying so:
 * one request may not queue unbounded bytes at a client. */
static void s_bound_reply(srv_worker *w, srv_call *c)
{
    if (w->out.oom) {
        srv_json_free(&w->out);
        if (srv_json_init(&w->out, 1 << 16) == 0)
            srv_call_error(c, SRV_E_INTERNAL, "out of memory writing the reply");
        return;
    }
    size_t max = (size_t)w->st->cfg.max_reply_bytes;
    if (c->outcome == SRV_OUT_REPLY && w->out.len > max) {
        char why[300];
        snprintf(why, sizeof why, "reply: %zu bytes, more than limits.max_reply_bytes (%zu); ask "
                                  "for fewer results, explanations or no titles", w->out.len, max);
        srv_call_error(c, SRV_E_TOO_LARGE, why);
    }
}

int srv_worker_handle(srv_worker *w, uint64_t t_recv, int role, const char *buf, size_t len)
{
    if (!w->lane)
        srv_arena_bind(&w->json_arena);
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        w->stage[s] = SRV_STAGE_SKIPPED;
    uint64_t t0 = util_now_ns();
    srv_request rq;
    char why[600];
    int code = srv_request_parse(buf, len, &w->st->cfg, &w->args_arena, &rq, why, sizeof why);
    srv_arena_reset(&w->json_arena);
    w->stage[SRV_STAGE_PARSE] = util_now_ns() - t0;
    srv_call c = {.state = w->st, .res = &w->res, .out = &w->out, .rq = &rq, .t_recv = t_recv,
                  .stage = w->stage, .outcome = SRV_OUT_REPLY, .code = SRV_OK,
                  .role = role, .arm = -1};
    if (code != SRV_OK)
        srv_call_error(&c, code, why);
    else if (srv_call_allowed(&c))
        rq.op->run(&c);
    if (c.outcome == SRV_OUT_RELOAD) {
        srv_json_reset(&w->out);
        srv_json_raw(&w->out, rq.id_json, strlen(rq.id_json));
    }
    s_bound_reply(w, &c);
    s_observe(w, &rq, &c);
    srv_arena_reset(&w->args_arena);
    if (!w->lane)
        srv_arena_bind(NULL);
    return c.outcome;
}

const char *srv_worker_reply(const srv_worker *w, size_t *len)
{
    *len = w->out.len;
    return w->out.buf;
}

void srv_worker_done(srv_worker *w, uint64_t t_recv)
{
    w->stage[SRV_STAGE_TOTAL] = util_now_ns() - t_recv;
    srv_wstats_note(&w->stats, &w->obs);
}

srv_wstats *srv_worker_stats(srv_worker *w)
{
    return &w->stats;
}

/* ---- the thread ----------------------------------------------------------- */

/* One task: handle it, hand the reply (a copy: the buffer is reused) back. */
static void s_serve_one(srv_worker *w, srv_task *t)
{
    int outcome = srv_worker_handle(w, t->t_recv_ns, t->role, zmq_msg_data(&t->payload),
                                    zmq_msg_size(&t->payload));
    srv_done d = {.kind = outcome == SRV_OUT_RELOAD ? SRV_DONE_RELOAD : SRV_DONE_REPLY,
                  .style = t->style};
    zmq_msg_init(&d.route);
    zmq_msg_move(&d.route, &t->route);
    if (zmq_msg_init_size(&d.body, w->out.len) == 0) {
        memcpy(zmq_msg_data(&d.body), w->out.buf, w->out.len);
    } else {
        srv_log(SRV_ERROR, "msg=\"worker cannot hand a reply back\" worker=%d reason=\"out of "
                "memory\"", w->res.index);
        zmq_msg_init(&d.body);
        d.kind = SRV_DONE_LOST;
    }
    srv_lane_answer(w->lane, &d);
    srv_worker_done(w, t->t_recv_ns);
    zmq_msg_close(&t->payload);
}

static void *s_thread(void *arg)
{
    srv_worker *w = arg;
    srv_arena_bind(&w->json_arena);
    srv_task t;
    while (srv_lane_take(w->lane, &t))
        s_serve_one(w, &t);
    srv_arena_bind(NULL);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------- */

static void s_free(srv_worker *w)
{
    store_hist_close(&w->res.hist);
    for (int i = 0; i < SRV_MODELS_MAX; i++)
        attn_scratch_free(&w->res.scratch[i]);
    srv_rank_buf_free(&w->res.rank);
    srv_arena_free(&w->json_arena);
    srv_arena_free(&w->args_arena);
    srv_json_free(&w->out);
    srv_wstats_destroy(&w->stats);
    free(w);
}

srv_worker *srv_worker_start(srv_state *st, int index, srv_lane *lane, char *why, size_t why_len)
{
    const srv_config *cfg = &st->cfg;
    srv_worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    w->st = st;
    w->res.index = index;
    w->res.rng = util_now_ns() ^ ((uint64_t)index * 0x9E3779B97F4A7C15ull);
    srv_wstats_init(&w->stats);
    char reason[600];
    if (srv_history_open(cfg, 0, &w->res.hist, reason, sizeof reason) != 0) {
        snprintf(why, why_len, "worker %d: %s", index, reason);
        s_free(w);
        return NULL;
    }
    w->res.lim = (attn_limits){.max_cand = cfg->max_candidates, .max_hist = cfg->max_history,
                               .max_k = cfg->max_k, .max_explain = cfg->max_explain};
    /* Strings copied from a request never exceed its size; the arrays that
     * point at them are bounded by the candidate and history limits. */
    size_t args_bytes = (size_t)cfg->max_message_bytes + 64 * 1024 +
                        ((size_t)cfg->max_candidates + (size_t)cfg->max_history) * 16;
    w->res.rank = srv_rank_buf_new(cfg);
    if (!w->res.rank || srv_arena_init(&w->json_arena, S_JSON_ARENA_BYTES) ||
        srv_arena_init(&w->args_arena, args_bytes) || srv_json_init(&w->out, 1 << 16)) {
        snprintf(why, why_len, "worker %d: out of memory for its buffers", index);
        s_free(w);
        return NULL;
    }
    srv_snapshot *snap = srv_snapshot_acquire();
    for (int i = 0; snap && i < snap->n_models; i++)
        w->res.scratch[i] = attn_scratch_new(snap->models[i].tables, &w->res.lim);
    srv_snapshot_release(&snap);
    w->lane = lane;
    if (lane && pthread_create(&w->thread, NULL, s_thread, w) != 0) {
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
    if (w->lane)
        pthread_join(w->thread, NULL);
    s_free(w);
}
