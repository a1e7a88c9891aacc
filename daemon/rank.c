/* rank.c -- the rank op, in the order a request goes through it:
 *
 *   1. parse       the request's fields into srv_rank_args (srv_rank_parse)
 *   2. candidates  ids to catalog rows: unknown ones listed, duplicates once
 *   3. history     the user's newest events (or the anonymous list) to rows,
 *                  then the self-attention context; exclude_seen filters
 *   4. score       attention over the tables (or the popularity prior when
 *                  there is no usable history), top-k, explanations
 *   5. encode      srv_reply_rank writes the answer
 *
 * Every buffer is sized once from the limits (srv_rank_buf_new); a request
 * allocates nothing but the scratch after a reload changed the model shape.
 */
#include "daemon/rank.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/topk.h"
#include "daemon/impressions.h"
#include "daemon/log.h"
#include "daemon/reply.h"
#include "daemon/snapshot.h"
#include "store/hist/hist.h"
#include "util/clock.h"
#include "util/set.h"

/* Most self-attention context events a request can carry (any model's). */
#define S_CTX (ATTN_SA_MAX - 1)

struct srv_rank_buf {
    int max_history;
    const char **look_ext;       /* ids to look up: max(candidates, history + context) */
    size_t *look_len;
    uint64_t *look_hash;         /* lookup scratch */
    int64_t *look_rows;          /* lookup results */
    float *look_w;               /* weights of looked-up anonymous history items */
    uint32_t *cand_rows;         /* max_candidates: known, unique, not excluded */
    srv_str *unknown;            /* max_candidates + max_history */
    uint32_t *excluded_rows;     /* max_candidates */
    uint32_t *hist_rows;         /* max_history + S_CTX: history, then context */
    float *hist_w;
    store_event *events;         /* max(max_seen, max_history + S_CTX) */
    float *fallback_scores;      /* max_candidates */
    uint32_t *order;             /* max_k: fallback ranking */
    uint32_t *res_rows;          /* max_k */
    float *res_score;            /* max_k */
    uint32_t *because_rows;      /* max_k x max_explain */
    int64_t *imp_items;          /* max_k: a sampled reply's item ids, for the impression log */
    util_set dedupe, seen;       /* duplicate candidates; items the user has seen */
};

/* What steps 2-4 found out about one request. */
typedef struct s_rank_state {
    const srv_model *m;       /* the model that scores this request */
    int model_at;             /* its index in the snapshot */
    int arm;                  /* experiment arm, or -1 */
    int n_cand, n_unknown, n_excluded, n_hist;
    int n_ctx;                /* self-attention context events after the history */
    int n_unknown_cand;       /* of n_unknown, candidate ids (the rest: history ids) */
    int fallback;             /* enum srv_fallback */
} s_rank_state;

/* ---- buffers -------------------------------------------------------------- */

void srv_rank_buf_free(srv_rank_buf **buf_p)
{
    srv_rank_buf *b = *buf_p;
    if (!b)
        return;
    *buf_p = NULL;
    free(b->look_ext);
    free(b->look_len);
    free(b->look_hash);
    free(b->look_rows);
    free(b->look_w);
    free(b->cand_rows);
    free(b->unknown);
    free(b->excluded_rows);
    free(b->hist_rows);
    free(b->hist_w);
    free(b->events);
    free(b->fallback_scores);
    free(b->order);
    free(b->res_rows);
    free(b->res_score);
    free(b->because_rows);
    free(b->imp_items);
    util_set_free(&b->dedupe);
    util_set_free(&b->seen);
    free(b);
}

srv_rank_buf *srv_rank_buf_new(const srv_config *cfg)
{
    srv_rank_buf *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    /* History buffers also hold the context of any self-attention block. */
    size_t hist_cap = (size_t)cfg->max_history + S_CTX;
    size_t n_events = (size_t)cfg->max_seen > hist_cap ? (size_t)cfg->max_seen : hist_cap;
    size_t n_look = (size_t)cfg->max_candidates > hist_cap ? (size_t)cfg->max_candidates
                                                           : hist_cap;
    size_t n_cand = (size_t)cfg->max_candidates, n_k = (size_t)cfg->max_k;
    b->max_history = cfg->max_history;
    b->look_ext = malloc(n_look * sizeof *b->look_ext);
    b->look_len = malloc(n_look * sizeof *b->look_len);
    b->look_hash = malloc(n_look * sizeof *b->look_hash);
    b->look_rows = malloc(n_look * sizeof *b->look_rows);
    b->look_w = malloc(n_look * sizeof *b->look_w);
    b->cand_rows = malloc(n_cand * sizeof *b->cand_rows);
    b->unknown = malloc((n_cand + (size_t)cfg->max_history) * sizeof *b->unknown);
    b->excluded_rows = malloc(n_cand * sizeof *b->excluded_rows);
    b->hist_rows = malloc(hist_cap * sizeof *b->hist_rows);
    b->hist_w = malloc(hist_cap * sizeof *b->hist_w);
    b->events = malloc(n_events * sizeof *b->events);
    b->fallback_scores = malloc(n_cand * sizeof *b->fallback_scores);
    b->order = malloc(n_k * sizeof *b->order);
    b->res_rows = malloc(n_k * sizeof *b->res_rows);
    b->res_score = malloc(n_k * sizeof *b->res_score);
    b->because_rows = malloc(n_k * ((size_t)cfg->max_explain + 1) * sizeof *b->because_rows);
    b->imp_items = malloc(n_k * sizeof *b->imp_items);
    if (!b->look_ext || !b->look_len || !b->look_hash || !b->look_rows || !b->look_w ||
        !b->cand_rows || !b->unknown || !b->excluded_rows || !b->hist_rows || !b->hist_w ||
        !b->events || !b->fallback_scores || !b->order || !b->res_rows || !b->res_score ||
        !b->because_rows || !b->imp_items || util_set_init(&b->dedupe, (uint32_t)n_cand, 0) ||
        util_set_init(&b->seen, (uint32_t)n_events, 0)) {
        srv_rank_buf_free(&b);
        return NULL;
    }
    return b;
}

/* ---- 1. parse ------------------------------------------------------------- */

int srv_rank_parse(srv_fields *f, void **args)
{
    const srv_config *cfg = srv_fields_config(f);
    srv_rank_args *a = srv_fields_alloc(f, sizeof *a);
    if (!a)
        return srv_fields_fail(f, "out of memory");
    int has_user = srv_field_present(f, "user"), has_hist = srv_field_present(f, "history");
    if (has_user == has_hist)
        return srv_fields_fail(f, "user, history: exactly one of them is required");
    if (has_user ? srv_field_str(f, "user", 1, &a->user)
                 : srv_field_strs(f, "history", cfg->max_message_bytes, NULL, &a->history,
                                  &a->n_history))
        return -1;
    if (srv_field_present(f, "weights")) {
        if (!has_hist)
            return srv_fields_fail(f, "weights: only allowed with history");
        if (srv_field_floats(f, "weights", a->n_history, FLT_MIN, FLT_MAX, &a->weights))
            return -1;
    }
    if (!srv_field_present(f, "candidates"))
        return srv_fields_fail(f, "candidates: missing");
    if (srv_field_strs(f, "candidates", cfg->max_candidates, "limits.max_candidates", &a->cand,
                       &a->n_cand) ||
        srv_field_int(f, "k", 1, cfg->max_k, cfg->default_k, &a->k) ||
        srv_field_int(f, "explain", 0, cfg->max_explain, 0, &a->explain) ||
        srv_field_bool(f, "exclude_seen", 0, &a->exclude_seen) ||
        srv_field_bool(f, "titles", 0, &a->titles))
        return -1;
    if (a->exclude_seen && !has_user)
        return srv_fields_fail(f, "exclude_seen: only allowed with user");
    if (srv_field_int(f, "model", 0, INT_MAX, -1, &a->model) ||
        srv_field_str(f, "session", 0, &a->session))
        return -1;
    if (a->titles && !cfg->titles)
        return srv_fields_fail(f, "titles: this server does not load titles (server.titles "
                                  "= off)");
    *args = a;
    return 0;
}

/* ---- 2. candidates -------------------------------------------------------- */

/* Look up n ids at once (their cache misses overlap) into look_rows. */
static void s_lookup(srv_rank_buf *b, const srv_snapshot *snap, const srv_str *ids, int n)
{
    for (int i = 0; i < n; i++) {
        b->look_ext[i] = ids[i].s;
        b->look_len[i] = ids[i].len;
    }
    store_catalog_find_many(snap->cat, b->look_ext, b->look_len, n, b->look_hash, b->look_rows);
}

static void s_map_candidates(srv_rank_buf *b, const srv_snapshot *snap, const srv_rank_args *a,
                             s_rank_state *st)
{
    s_lookup(b, snap, a->cand, a->n_cand);
    util_set_clear(&b->dedupe);
    for (int i = 0; i < a->n_cand; i++) {
        int64_t row = b->look_rows[i];
        if (row < 0)
            b->unknown[st->n_unknown++] = a->cand[i];
        else if (util_set_add(&b->dedupe, (uint32_t)row))
            b->cand_rows[st->n_cand++] = (uint32_t)row;
    }
}

/* ---- 3. history ----------------------------------------------------------- */

/* A known event, newest first: into the history while it has room, then
 * into the self-attention context after it (weights: history only). */
static void s_take_event(srv_rank_buf *b, s_rank_state *st, uint32_t row, float weight)
{
    if (st->n_hist < st->m->l_hist) {
        b->hist_rows[st->n_hist] = row;
        b->hist_w[st->n_hist] = weight;
        st->n_hist++;
    } else if (st->n_ctx < st->m->l_ctx) {
        b->hist_rows[st->n_hist + st->n_ctx++] = row;
    }
}

/* Anonymous history, listed oldest first: the newest max_history entries,
 * newest first (and up to l_ctx more as a block's context); older ones are
 * ignored, as a user's older events would be.  Unknown items are reported
 * among the first max_history. */
static void s_map_anonymous(srv_rank_buf *b, const srv_snapshot *snap, const srv_rank_args *a,
                            s_rank_state *st)
{
    int limit = b->max_history + st->m->l_ctx;
    int n = a->n_history < limit ? a->n_history : limit;
    for (int i = 0; i < n; i++) {
        int from = a->n_history - 1 - i;
        b->look_ext[i] = a->history[from].s;
        b->look_len[i] = a->history[from].len;
        b->look_w[i] = a->weights ? a->weights[from] : 1.0f;
    }
    store_catalog_find_many(snap->cat, b->look_ext, b->look_len, n, b->look_hash, b->look_rows);
    for (int i = 0; i < n; i++) {
        int64_t row = b->look_rows[i];
        if (row >= 0)
            s_take_event(b, st, (uint32_t)row, b->look_w[i]);
        else if (i < b->max_history)
            b->unknown[st->n_unknown++] = a->history[a->n_history - 1 - i];
    }
    if (st->n_hist == 0)
        st->fallback = SRV_FB_UNKNOWN_HISTORY;
}

/* Candidates the user has seen move to the excluded list. */
static void s_exclude_seen(srv_rank_buf *b, s_rank_state *st)
{
    int kept = 0;
    for (int i = 0; i < st->n_cand; i++) {
        uint32_t row = b->cand_rows[i];
        if (util_set_has(&b->seen, row))
            b->excluded_rows[st->n_excluded++] = row;
        else
            b->cand_rows[kept++] = row;
    }
    st->n_cand = kept;
}

/* A user's events are looked up this many at a time: enough for the
 * catalog's misses to overlap, little enough for the stack. */
#define S_ROW_CHUNK 64

/* Known user: their newest events.  With exclude_seen, read up to max_seen
 * events: all of them feed the seen set, the newest l_hist known ones are
 * the history.  When the store failed, the reply's code (a history node
 * that does not answer is `unavailable`, anything else `store`) with why. */
static int s_map_user(srv_call *c, const srv_snapshot *snap, const srv_rank_args *a,
                      s_rank_state *st, char *why, size_t why_len)
{
    srv_rank_buf *b = c->res->rank;
    int want = st->m->l_hist + st->m->l_ctx;
    if (a->exclude_seen && c->state->cfg.max_seen > want)
        want = c->state->cfg.max_seen;
    store_err err;
    int n = 0;
    int rc = store_hist_read(c->res->hist, a->user.s, a->user.len, want, b->events, &n, &err);
    if (rc == STORE_ERR_NOTFOUND) {
        st->fallback = SRV_FB_UNKNOWN_USER;
        return 0;
    }
    if (rc != STORE_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return rc == STORE_ERR_UNAVAILABLE ? SRV_E_UNAVAILABLE : SRV_E_STORE;
    }
    util_set_clear(&b->seen);
    for (int at = 0; at < n; at += S_ROW_CHUNK) {
        int64_t ids[S_ROW_CHUNK], rows[S_ROW_CHUNK];
        uint64_t scratch[S_ROW_CHUNK];
        int chunk = n - at < S_ROW_CHUNK ? n - at : S_ROW_CHUNK;
        for (int i = 0; i < chunk; i++)
            ids[i] = b->events[at + i].item_id;
        store_catalog_row_many(snap->cat, ids, chunk, scratch, rows);
        for (int i = 0; i < chunk; i++) {
            if (rows[i] < 0)
                continue;  /* not embedded, or gone from the catalog */
            if (a->exclude_seen)
                util_set_add(&b->seen, (uint32_t)rows[i]);
            float wt = b->events[at + i].weight;
            if (wt > 0 && isfinite(wt))
                s_take_event(b, st, (uint32_t)rows[i], wt);
        }
    }
    if (st->n_hist == 0)
        st->fallback = SRV_FB_NO_HISTORY;
    if (a->exclude_seen)
        s_exclude_seen(b, st);
    return 0;
}

/* ---- 4. score ------------------------------------------------------------- */

/* One scratch per model slot, following that model's shape: a reload may
 * have changed it, and alternating arms must not rebuild it per request. */
static attn_scratch *s_fit_scratch(srv_wres *res, const s_rank_state *st)
{
    attn_scratch **s = &res->scratch[st->model_at];
    if (*s && attn_scratch_fits(*s, st->m->tables))
        return *s;
    attn_scratch_free(s);
    *s = attn_scratch_new(st->m->tables, &res->lim);
    return *s;
}

/* Attention ranking into r (results, explanations).  -1 with why. */
static int s_score(srv_call *c, const srv_rank_args *a, const s_rank_state *st, srv_ranked *r,
                   char *why, size_t why_len)
{
    srv_rank_buf *b = c->res->rank;
    attn_scratch *scratch = s_fit_scratch(c->res, st);
    if (!scratch) {
        snprintf(why, why_len, "out of memory for the scoring scratch");
        return -1;
    }
    attn_request ar = {.hist = b->hist_rows, .hist_weight = b->hist_w, .n_hist = st->n_hist,
                       .n_ctx = st->n_ctx, .cand = b->cand_rows, .n_cand = st->n_cand,
                       .k = a->k, .explain = a->explain};
    attn_result res = {0};
    int rc = attn_score(st->m->tables, &ar, scratch, &res);
    if (rc != ATTN_OK) {
        snprintf(why, why_len, "scoring failed: %s", attn_strerror(rc));
        char id[80];
        srv_log(SRV_ERROR, "msg=\"scoring failed\" worker=%d id=%s status=%s", c->res->index,
                srv_state_loggable(c->state, c->rq->id_json, strlen(c->rq->id_json), id,
                                   sizeof id), attn_strerror(rc));
        return -1;
    }
    for (int i = 0; i < res.n; i++) {
        b->res_rows[i] = b->cand_rows[res.cand[i]];
        b->res_score[i] = res.score[i];
    }
    int per = a->explain > 0 ? res.n_explain : 0;
    for (int i = 0; i < res.n * per; i++)
        b->because_rows[i] = b->hist_rows[res.because[i]];
    r->n = res.n;
    r->n_because = per;
    r->because_weight = res.because_weight;
    return 0;
}

/* No usable history: rank by interaction count. */
static void s_score_popular(srv_rank_buf *b, const srv_snapshot *snap, const srv_rank_args *a,
                            const s_rank_state *st, srv_ranked *r)
{
    for (int i = 0; i < st->n_cand; i++)
        b->fallback_scores[i] = snap->popularity[b->cand_rows[i]];
    r->n = st->n_cand > 0 ? attn_topk_f32(b->fallback_scores, st->n_cand, a->k, b->order) : 0;
    for (int i = 0; i < r->n; i++) {
        b->res_rows[i] = b->cand_rows[b->order[i]];
        b->res_score[i] = b->fallback_scores[b->order[i]];
    }
}

/* ---- 0. which model --------------------------------------------------------- */

/* A model the request names, else the user's (or session's) experiment arm,
 * else the active model.  -1 with the error sent. */
static int s_pick_model(srv_call *c, const srv_snapshot *snap, const srv_rank_args *a,
                        s_rank_state *st)
{
    const srv_experiment *exp = &c->state->exp;
    st->arm = -1;
    if (a->model >= 0) {
        char why[160];
        if (c->state->cfg.models_named == CFG_NAMED_ADMIN && c->role != SRV_ROLE_ADMIN) {
            srv_call_error(c, SRV_E_FORBIDDEN, "model: only admin callers may name a model "
                                               "(models.named = admin)");
            return -1;
        }
        st->m = srv_snapshot_model(snap, a->model);
        if (!st->m) {
            snprintf(why, sizeof why, "model: version %d is not loaded (models.serve names the "
                     "versions kept beside the active one)", a->model);
            srv_call_error(c, SRV_E_UNKNOWN_MODEL, why);
            return -1;
        }
    } else if (exp->n > 0) {
        const srv_str *key = a->user.s ? &a->user : a->session.s ? &a->session : NULL;
        st->arm = srv_experiment_arm(exp, key ? key->s : NULL, key ? key->len : 0);
        st->m = &snap->models[snap->arm_model[st->arm]];
    } else {
        st->m = &snap->models[0];
    }
    st->model_at = (int)(st->m - snap->models);
    c->arm = st->arm;
    return 0;
}

/* ---- the op --------------------------------------------------------------- */

void srv_rank_run(srv_call *c)
{
    const srv_rank_args *a = c->rq->args;
    srv_rank_buf *b = c->res->rank;
    srv_snapshot *snap = srv_snapshot_acquire();
    if (!snap) {
        srv_call_error(c, SRV_E_UNAVAILABLE, "no catalog and model loaded yet");
        return;
    }
    char why[600];
    s_rank_state st = {0};
    if (s_pick_model(c, snap, a, &st))
        goto done;
    uint64_t t0 = util_now_ns();
    s_map_candidates(b, snap, a, &st);
    st.n_unknown_cand = st.n_unknown;
    int code = SRV_OK;
    if (!a->user.s)
        s_map_anonymous(b, snap, a, &st);
    else if ((code = s_map_user(c, snap, a, &st, why, sizeof why)) != SRV_OK) {
        srv_call_error(c, code, why);
        goto done;
    }
    uint64_t t1 = util_now_ns();
    c->stage[SRV_STAGE_HISTORY] = t1 - t0;
    srv_ranked r = {.snap = snap, .model = st.m->version,
                    .arm = st.arm >= 0 ? c->state->exp.arm[st.arm].name : NULL,
                    .rows = b->res_rows, .score = b->res_score,
                    .because_rows = b->because_rows, .unknown = b->unknown,
                    .n_unknown = st.n_unknown, .exclude_seen = a->exclude_seen,
                    .excluded = b->excluded_rows, .n_excluded = st.n_excluded,
                    .fallback = srv_fallback_name(st.fallback), .history = st.n_hist,
                    .titles = a->titles, .t_recv = c->t_recv};
    if (st.fallback)
        s_score_popular(b, snap, a, &st, &r);
    else if (st.n_cand > 0 && s_score(c, a, &st, &r, why, sizeof why)) {
        srv_call_error(c, SRV_E_INTERNAL, why);
        goto done;
    }
    uint64_t t2 = util_now_ns();
    c->stage[SRV_STAGE_SCORE] = t2 - t1;
    srv_reply_rank(c->out, c->rq->id_json, &r);
    c->stage[SRV_STAGE_ENCODE] = util_now_ns() - t2;
    if (a->user.s && srv_imp_sampled(c->state->imp, &c->res->rng)) {
        for (int i = 0; i < r.n; i++)
            b->imp_items[i] = snap->cat->item_id[b->res_rows[i]];
        srv_imp_offer(c->state->imp, a->user.s, a->user.len, r.arm, r.model, b->imp_items, r.n);
    }
    c->ranked = 1;
    c->fallback = st.fallback;
    c->n_candidates = a->n_cand;
    c->n_history = st.n_hist;
    c->n_unknown = st.n_unknown_cand;
done:
    srv_snapshot_release(&snap);
}
