/* reply.c -- see reply.h.  The field names here are the protocol. */
#include "daemon/reply.h"

#include <stdio.h>
#include <string.h>

#include "daemon/metric_defs.h"
#include "daemon/allowlist.h"
#include "daemon/ops.h"
#include "util/clock.h"
#include "util/utf8.h"

static void s_begin(srv_json *w, const char *id_json, int ok)
{
    srv_json_reset(w);
    srv_json_open(w, '{');
    srv_json_key(w, "id");
    srv_json_raw(w, id_json, strlen(id_json));
    srv_json_key(w, "ok");
    srv_json_bool(w, ok);
}

static void s_error(srv_json *w, const char *id_json, int code, const char *message,
                    int64_t retry_after_ms)
{
    s_begin(w, id_json, 0);
    srv_json_key(w, "error");
    srv_json_open(w, '{');
    srv_json_key(w, "code");
    srv_json_cstr(w, srv_code_name(code));
    srv_json_key(w, "message");
    srv_json_cstr(w, message);
    if (retry_after_ms >= 0) {
        srv_json_key(w, "retry_after_ms");
        srv_json_int(w, retry_after_ms);
    }
    srv_json_close(w, '}');
    srv_json_close(w, '}');
}

void srv_reply_error(srv_json *w, const char *id_json, int code, const char *message)
{
    s_error(w, id_json, code, message, -1);
}

void srv_reply_error_retry(srv_json *w, const char *id_json, int code, const char *message,
                           uint64_t retry_after_ms)
{
    s_error(w, id_json, code, message, (int64_t)retry_after_ms);
}

/* ---- rank ----------------------------------------------------------------- */

/* Items whose ext ids are fetched at once (their cache misses overlap). */
#define S_EXT_CHUNK 32

/* An item's fields; ext NULL: looked up here. */
static void s_item(srv_json *w, const srv_snapshot *snap, uint32_t row, const char *ext,
                   size_t ext_len, int titles)
{
    srv_json_key(w, "item");
    if (ext)
        srv_json_str(w, ext, ext_len);
    else
        srv_json_cstr(w, store_catalog_ext(snap->cat, row));
    if (titles) {
        size_t len;
        const char *t = srv_snapshot_title(snap, row, &len);
        srv_json_key(w, "title");
        srv_json_str(w, t, len);
    }
}

static void s_because(srv_json *w, const srv_ranked *r, int i)
{
    srv_json_key(w, "because");
    srv_json_open(w, '[');
    for (int j = 0; j < r->n_because; j++) {
        size_t at = (size_t)i * (size_t)r->n_because + (size_t)j;
        srv_json_open(w, '{');
        s_item(w, r->snap, r->because_rows[at], NULL, 0, r->titles);
        srv_json_key(w, "weight");
        srv_json_f32(w, r->because_weight[at]);
        srv_json_close(w, '}');
    }
    srv_json_close(w, ']');
}

static void s_rank_tail(srv_json *w, const srv_ranked *r)
{
    srv_json_key(w, "unknown");
    srv_json_open(w, '[');
    for (int i = 0; i < r->n_unknown; i++)
        srv_json_str(w, r->unknown[i].s, r->unknown[i].len);
    srv_json_close(w, ']');
    if (r->exclude_seen) {
        srv_json_key(w, "excluded");
        srv_json_open(w, '[');
        for (int i = 0; i < r->n_excluded; i++)
            srv_json_cstr(w, store_catalog_ext(r->snap->cat, r->excluded[i]));
        srv_json_close(w, ']');
    }
    srv_json_key(w, "fallback");
    if (r->fallback) {
        srv_json_open(w, '{');
        srv_json_key(w, "kind");
        srv_json_cstr(w, "popularity");
        srv_json_key(w, "reason");
        srv_json_cstr(w, r->fallback);
        srv_json_close(w, '}');
    } else {
        srv_json_null(w);
    }
    srv_json_key(w, "history");
    srv_json_int(w, r->history);
    srv_json_key(w, "took_us");
    srv_json_int(w, (int64_t)((util_now_ns() - r->t_recv) / 1000));
}

void srv_reply_rank(srv_json *w, const char *id_json, const srv_ranked *r)
{
    s_begin(w, id_json, 1);
    srv_json_key(w, "model");
    srv_json_int(w, r->model);
    srv_json_key(w, "arm");
    if (r->arm)
        srv_json_cstr(w, r->arm);
    else
        srv_json_null(w);
    srv_json_key(w, "catalog");
    srv_json_int(w, r->snap->catalog_version);
    srv_json_key(w, "items");
    srv_json_open(w, '[');
    const char *ext[S_EXT_CHUNK];
    size_t ext_len[S_EXT_CHUNK];
    for (int i = 0; i < r->n; i++) {
        if (i % S_EXT_CHUNK == 0)
            store_catalog_ext_many(r->snap->cat, r->rows + i,
                                   r->n - i < S_EXT_CHUNK ? r->n - i : S_EXT_CHUNK, ext, ext_len);
        srv_json_open(w, '{');
        s_item(w, r->snap, r->rows[i], ext[i % S_EXT_CHUNK], ext_len[i % S_EXT_CHUNK],
               r->titles);
        srv_json_key(w, "score");
        srv_json_f32(w, r->score[i]);
        if (r->n_because > 0)
            s_because(w, r, i);
        srv_json_close(w, '}');
    }
    srv_json_close(w, ']');
    s_rank_tail(w, r);
    srv_json_close(w, '}');
}

/* ---- record --------------------------------------------------------------- */

#define S_REJECT_ITEM_MAX 64   /* bytes of a rejected item echoed back (config.c bounds the reply) */

void srv_reply_recorded(srv_json *w, const char *id_json, const srv_recorded *r)
{
    s_begin(w, id_json, 1);
    srv_json_key(w, "stored");
    srv_json_int(w, r->stored);
    srv_json_key(w, "duplicates");
    srv_json_open(w, '[');
    for (int i = 0; i < r->n_duplicates; i++)
        srv_json_int(w, r->duplicates[i]);
    srv_json_close(w, ']');
    srv_json_key(w, "rejected");
    srv_json_open(w, '[');
    for (int i = 0; i < r->n_rejected; i++) {
        const srv_rec_reject *x = &r->rejected[i];
        srv_json_open(w, '{');
        srv_json_key(w, "index");
        srv_json_int(w, x->index);
        srv_json_key(w, "item");
        srv_json_str(w, x->item, util_utf8_cut(x->item, x->len, S_REJECT_ITEM_MAX));
        srv_json_key(w, "reason");
        srv_json_cstr(w, x->reason);
        srv_json_close(w, '}');
    }
    srv_json_close(w, ']');
    srv_json_key(w, "took_us");
    srv_json_int(w, (int64_t)((util_now_ns() - r->t_recv) / 1000));
    srv_json_close(w, '}');
}

/* ---- health, info, stats, reload ------------------------------------------ */

void srv_reply_health(srv_json *w, const char *id_json, const srv_state *st,
                      const srv_snapshot *snap)
{
    s_begin(w, id_json, 1);
    srv_json_key(w, "live");
    srv_json_bool(w, 1);
    srv_json_key(w, "ready");
    srv_json_bool(w, snap && !srv_state_unready(st));
    srv_json_key(w, "model");
    srv_json_int(w, snap ? snap->model_version : -1);
    srv_json_key(w, "catalog");
    srv_json_int(w, snap ? snap->catalog_version : -1);
    srv_json_key(w, "items");
    srv_json_int(w, snap ? snap->cat->n : 0);
    srv_json_key(w, "uptime_s");
    srv_json_int(w, (int64_t)((util_now_ns() - st->started_ns) / 1000000000u));
    srv_json_close(w, '}');
}

static void s_kv_int(srv_json *w, const char *key, int64_t v)
{
    srv_json_key(w, key);
    srv_json_int(w, v);
}

static void s_kv_num(srv_json *w, const char *key, double v)
{
    srv_json_key(w, key);
    srv_json_num(w, v);
}

/* One loaded model: its shape, its memory, and the arms it serves. */
static void s_model_obj(srv_json *w, const srv_state *st, const srv_snapshot *snap,
                        const srv_model *sm)
{
    const attn_model *m = sm->model;
    srv_json_open(w, '{');
    s_kv_int(w, "version", sm->version);
    srv_json_key(w, "active");
    srv_json_bool(w, sm == &snap->models[0]);
    s_kv_int(w, "d", m->d);
    s_kv_int(w, "m", m->m);
    s_kv_int(w, "heads", m->heads);
    s_kv_int(w, "l_max", m->l_max);
    srv_json_key(w, "identity");
    srv_json_bool(w, !m->wq && !m->wk && !m->wv && !m->wo);
    s_kv_int(w, "self_attn", m->sa_len);
    s_kv_int(w, "ffn", m->ffn);
    srv_json_key(w, "precompute");
    srv_json_cstr(w, st->cfg.precompute == CFG_PRECOMPUTE_NONE ? "none" : "all");
    srv_json_key(w, "precision");
    srv_json_cstr(w, cfg_enum_name("model.precision", sm->precision));
    s_kv_int(w, "table_bytes", (int64_t)attn_tables_bytes(sm->tables));
    s_kv_int(w, "bytes", (int64_t)sm->bytes);
    srv_json_key(w, "arms");
    srv_json_open(w, '[');
    for (int i = 0; i < st->exp.n; i++)
        if (&snap->models[snap->arm_model[i]] == sm)
            srv_json_cstr(w, st->exp.arm[i].name);
    srv_json_close(w, ']');
    srv_json_close(w, '}');
}

static void s_info_model(srv_json *w, const srv_state *st, const srv_snapshot *snap)
{
    srv_json_key(w, "model");
    s_model_obj(w, st, snap, &snap->models[0]);
    srv_json_key(w, "models");
    srv_json_open(w, '[');
    for (int i = 0; i < snap->n_models; i++)
        s_model_obj(w, st, snap, &snap->models[i]);
    srv_json_close(w, ']');
    srv_json_key(w, "catalog");
    srv_json_open(w, '{');
    s_kv_int(w, "version", snap->catalog_version);
    s_kv_int(w, "items", snap->cat->n);
    s_kv_int(w, "unembedded", snap->cat->n_unembedded);
    s_kv_int(w, "dim", snap->cat->dim);
    s_kv_int(w, "bytes", (int64_t)store_catalog_bytes(snap->cat));
    s_kv_int(w, "title_bytes", (int64_t)snap->title_bytes);
    srv_json_close(w, '}');
    s_kv_num(w, "snapshot_build_ms", snap->build_ms);
    s_kv_int(w, "history_used", snap->models[0].l_hist);
    s_kv_int(w, "history_context", snap->models[0].l_ctx);
}

static void s_info_history(srv_json *w, const srv_config *cfg)
{
    srv_json_key(w, "history");
    srv_json_open(w, '{');
    srv_json_key(w, "backend");
    srv_json_cstr(w, cfg->hist_backend == CFG_HIST_REDIS ? "redis" : "sqlite");
    if (cfg->hist_backend == CFG_HIST_REDIS) {
        srv_json_key(w, "redis");
        srv_json_cstr(w, cfg->hist_redis);
        s_kv_int(w, "trim", cfg->hist_trim);
        s_kv_int(w, "timeout_ms", cfg->hist_timeout_ms);
    }
    srv_json_close(w, '}');
}

/* What only an admin sees: where things are on this host. */
static void s_info_admin(srv_json *w, const srv_state *st)
{
    const srv_config *cfg = &st->cfg;
    srv_json_key(w, "endpoint");
    srv_json_cstr(w, cfg->bind);
    srv_json_key(w, "metrics");   /* the HTTP listener, "host:port"; null without one */
    if (st->metrics_port > 0) {
        char host[256], addr[300];
        int port;
        cfg_hostport_split(cfg->metrics_bind, host, sizeof host, &port);
        snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                 st->metrics_port);
        srv_json_cstr(w, addr);
    } else {
        srv_json_null(w);
    }
    srv_json_key(w, "db");
    srv_json_cstr(w, cfg->db);
    srv_json_key(w, "security");
    srv_json_open(w, '{');
    srv_json_key(w, "mode");
    srv_json_cstr(w, cfg->security == CFG_SECURITY_CURVE ? "curve" : "none");
    if (cfg->security == CFG_SECURITY_CURVE) {
        srv_json_key(w, "server_key");
        srv_json_cstr(w, cfg->server_key);
        srv_json_key(w, "clients");
        srv_json_cstr(w, cfg->clients);
    }
    s_kv_num(w, "rate_per_key", cfg->rate_per_key);
    s_kv_int(w, "burst", cfg->burst);
    srv_json_close(w, '}');
    s_info_history(w, cfg);   /* its nodes are hosts too */
}

void srv_reply_info(srv_json *w, const char *id_json, const srv_state *st,
                    const srv_snapshot *snap, int role)
{
    const srv_config *cfg = &st->cfg;
    s_begin(w, id_json, 1);
    srv_json_key(w, "version");
    srv_json_cstr(w, SRV_VERSION);
    s_kv_int(w, "protocol", 1);
    srv_json_key(w, "role");
    srv_json_cstr(w, srv_role_name(role));
    s_kv_int(w, "workers", st->n_workers);
    srv_json_key(w, "kernel");   /* the instruction set scoring runs on (docs/MODEL.md §5.4) */
    srv_json_cstr(w, attn_kernel_name());
    if (role >= SRV_ROLE_ADMIN)
        s_info_admin(w, st);
    /* A snapshot file's checksum: every replica serving the same one says
     * the same here (null when serving a database). */
    srv_json_key(w, "snapshot_checksum");
    if (snap && snap->checksum[0])
        srv_json_cstr(w, snap->checksum);
    else
        srv_json_null(w);
    if (snap)
        s_info_model(w, st, snap);
    srv_json_key(w, "limits");
    srv_json_open(w, '{');
    s_kv_int(w, "max_message_bytes", cfg->max_message_bytes);
    s_kv_int(w, "max_reply_bytes", cfg->max_reply_bytes);
    s_kv_int(w, "max_candidates", cfg->max_candidates);
    s_kv_int(w, "max_k", cfg->max_k);
    s_kv_int(w, "max_explain", cfg->max_explain);
    s_kv_int(w, "max_history", cfg->max_history);
    s_kv_int(w, "max_seen", cfg->max_seen);
    s_kv_int(w, "queue_max", cfg->queue_max);
    s_kv_int(w, "max_record_events", cfg->max_record_events);
    srv_json_close(w, '}');
    srv_json_key(w, "record");
    srv_json_open(w, '{');
    srv_json_key(w, "enabled");
    srv_json_bool(w, cfg->record_enabled);
    srv_json_key(w, "synchronous");
    srv_json_cstr(w, cfg->record_synchronous == CFG_SYNC_FULL ? "full" : "normal");
    s_kv_int(w, "max_batch", cfg->record_max_batch);
    s_kv_int(w, "max_delay_ms", cfg->record_max_delay_ms);
    s_kv_int(w, "linger_ms", cfg->record_linger_ms);
    s_kv_int(w, "queue_max", cfg->record_queue_max);
    srv_json_close(w, '}');
    srv_json_close(w, '}');
}

static void s_quantiles(srv_json *w, const util_hist *h)
{
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    static const char *qn[] = {"p50", "p90", "p99", "p999"};
    for (int q = 0; q < 4; q++) {
        srv_json_key(w, qn[q]);
        srv_json_num(w, util_hist_quantile(h, qs[q]) / 1e3);
    }
}

static void s_latency(srv_json *w, const srv_metrics_view *v)
{
    srv_json_key(w, "latency_us");
    srv_json_open(w, '{');
    for (int s = 0; s < SRV_STAGE_COUNT; s++) {
        const util_hist *h = &v->stage[s];
        srv_json_key(w, srv_stage_name(s));
        srv_json_open(w, '{');
        s_kv_int(w, "count", (int64_t)h->n);
        s_quantiles(w, h);
        s_kv_num(w, "max", h->n ? h->max / 1e3 : 0);
        srv_json_close(w, '}');
    }
    srv_json_close(w, '}');
}

static void s_counts(srv_json *w, const srv_metrics_view *v)
{
    int n_ops;
    const srv_op *ops = srv_ops(&n_ops);
    srv_json_key(w, "ops");
    srv_json_open(w, '{');
    for (int k = 0; k < n_ops; k++)
        s_kv_int(w, ops[k].name, (int64_t)v->ops[k]);
    srv_json_close(w, '}');
    srv_json_key(w, "errors");
    srv_json_open(w, '{');
    for (int k = 1; k < SRV_CODE_COUNT; k++)
        s_kv_int(w, srv_code_name(k), (int64_t)v->errors[k]);
    srv_json_close(w, '}');
}

/* Quantiles of a histogram; scale divides its values (1e3: ns -> us). */
static void s_hist_summary(srv_json *w, const char *key, const util_hist *h, double scale)
{
    srv_json_key(w, key);
    srv_json_open(w, '{');
    s_kv_int(w, "count", (int64_t)h->n);
    s_kv_num(w, "p50", util_hist_quantile(h, 0.5) / scale);
    s_kv_num(w, "p99", util_hist_quantile(h, 0.99) / scale);
    s_kv_num(w, "max", h->n ? h->max / scale : 0);
    srv_json_close(w, '}');
}

/* The record path's figures (rec_metrics.h); the quantiles when collected. */
static void s_record_stats(srv_json *w, const srv_rec_view *r)
{
    srv_json_key(w, "record");
    srv_json_open(w, '{');
    s_kv_int(w, "requests", (int64_t)r->c.requests);
    s_kv_int(w, "stored", (int64_t)r->c.events[SRV_REC_STORED]);
    s_kv_int(w, "duplicates", (int64_t)r->c.events[SRV_REC_DUPLICATE]);
    s_kv_int(w, "rejected", (int64_t)r->c.events[SRV_REC_REJECTED]);
    s_kv_num(w, "stored_per_s", r->stored_per_s);
    s_kv_num(w, "duplicates_per_s", r->duplicates_per_s);
    s_kv_num(w, "rejected_per_s", r->rejected_per_s);
    s_kv_int(w, "queued", r->queued);
    s_kv_int(w, "batches", (int64_t)r->c.batches);
    s_kv_int(w, "failed_batches", (int64_t)r->c.failed_batches);
    if (r->quantiles) {
        s_hist_summary(w, "batch_events", &r->batch_events, 1);
        s_hist_summary(w, "commit_us", &r->commit_ns, 1e3);
        s_hist_summary(w, "ack_us", &r->ack_ns, 1e3);
    }
    srv_json_close(w, '}');
}

static void s_arms(srv_json *w, const srv_metrics_view *v)
{
    srv_json_key(w, "arms");
    srv_json_open(w, '{');
    for (int a = 0; v->exp && a < v->exp->n; a++) {
        const srv_experiment *exp = v->exp;
        srv_json_key(w, exp->arm[a].name);
        srv_json_open(w, '{');
        s_kv_int(w, "requests", (int64_t)v->w.arm_requests[a]);
        s_kv_int(w, "fallbacks", (int64_t)v->w.arm_fallbacks[a]);
        srv_json_key(w, "latency_us");
        srv_json_open(w, '{');
        s_quantiles(w, &v->arm_total[a]);
        srv_json_close(w, '}');
        srv_json_close(w, '}');
    }
    srv_json_close(w, '}');
}

static void s_security(srv_json *w, const srv_sec_view *s)
{
    srv_json_key(w, "security");
    srv_json_open(w, '{');
    srv_json_key(w, "mode");
    srv_json_cstr(w, s->mode == CFG_SECURITY_CURVE ? "curve" : "none");
    s_kv_int(w, "keys", (int64_t)s->keys);
    s_kv_int(w, "accepted", (int64_t)s->accepted);
    srv_json_key(w, "refused");
    srv_json_open(w, '{');
    for (int r = 0; r < SRV_REFUSED_COUNT; r++)
        s_kv_int(w, srv_refusal_name(r), (int64_t)s->refused[r]);
    srv_json_close(w, '}');
    s_kv_int(w, "refusals_not_logged", (int64_t)s->log_suppressed);
    s_kv_int(w, "allow_reloads", (int64_t)s->allow_reloads);
    s_kv_int(w, "allow_reload_failures", (int64_t)s->allow_reload_failures);
    srv_json_close(w, '}');
}

/* The table's scalars with a stats key (metric_defs.c), then the families:
 * requests by op and by error code, latency quantiles per stage, and the
 * experiment's arms. */
void srv_reply_stats(srv_json *w, const char *id_json, const srv_metrics_view *v)
{
    s_begin(w, id_json, 1);
    int n;
    const srv_metric *defs = srv_metric_defs(&n);
    for (int i = 0; i < n; i++) {
        if (!defs[i].stats)
            continue;
        srv_json_key(w, defs[i].stats);
        if (srv_metric_is_int(&defs[i]))
            srv_json_int(w, srv_metric_i64(&defs[i], v, 0));
        else
            srv_json_num(w, srv_metric_f64(&defs[i], v, 0));
    }
    s_counts(w, v);
    s_latency(w, v);
    s_arms(w, v);
    s_record_stats(w, &v->rec);
    s_security(w, &v->sec);
    srv_json_close(w, '}');
}

void srv_reply_reloaded(srv_json *w, const char *id_json, const srv_snapshot *snap)
{
    s_begin(w, id_json, 1);
    s_kv_int(w, "model", snap->model_version);
    s_kv_int(w, "catalog", snap->catalog_version);
    s_kv_int(w, "items", snap->cat->n);
    s_kv_num(w, "took_ms", snap->build_ms);
    srv_json_close(w, '}');
}
