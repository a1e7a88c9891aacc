/* metrics.c -- see metrics.h. */
#include "daemon/metrics.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/metric_defs.h"
#include "util/proc.h"

#ifdef ATTN_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static const char *s_stage_names[SRV_STAGE_COUNT] = {"parse", "history", "score", "encode",
                                                      "total"};

const char *srv_stage_name(int stage)
{
    return stage >= 0 && stage < SRV_STAGE_COUNT ? s_stage_names[stage] : "unknown";
}

static const char *s_fallback_names[SRV_FB_COUNT] = {NULL, "unknown_user", "no_history",
                                                      "unknown_history"};

const char *srv_fallback_name(int fallback)
{
    return fallback > 0 && fallback < SRV_FB_COUNT ? s_fallback_names[fallback] : NULL;
}

/* ---- per worker ---------------------------------------------------------------- */

_Static_assert(sizeof(srv_wcounts) % sizeof(uint64_t) == 0,
               "srv_wcounts is summed as an array of uint64_t");

void srv_wstats_init(srv_wstats *ws)
{
    memset(ws, 0, sizeof *ws);
    pthread_mutex_init(&ws->lock, NULL);
    for (int i = 0; i < SRV_STAGE_COUNT; i++)
        util_hist_reset(&ws->stage[i]);
    for (int a = 0; a < SRV_ARMS_MAX; a++)
        util_hist_reset(&ws->arm_total[a]);
}

void srv_wstats_destroy(srv_wstats *ws)
{
    pthread_mutex_destroy(&ws->lock);
}

void srv_wstats_note(srv_wstats *ws, const srv_obs *o)
{
    srv_wcounts *c = &ws->c;
    if (o->counted)
        srv_word_add(&c->requests[o->op_row][o->code], 1);
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        if (o->stage[s] != SRV_STAGE_SKIPPED)
            srv_phist_add(&c->stage[s], SRV_LAYOUT_LATENCY, o->stage[s]);
    if (o->ranked) {
        srv_word_add(&c->fallbacks[o->fallback], 1);
        srv_word_add(&c->unknown_candidates, (uint64_t)o->unknown_candidates);
        srv_phist_add(&c->candidates, SRV_LAYOUT_SIZE, (uint64_t)o->candidates);
        srv_phist_add(&c->history, SRV_LAYOUT_SIZE, (uint64_t)o->history);
    }
    uint64_t total = o->stage[SRV_STAGE_TOTAL];
    if (o->arm >= 0) {
        srv_word_add(&c->arm_requests[o->arm], 1);
        srv_word_add(&c->arm_fallbacks[o->arm], o->fallback != SRV_FB_NONE);
        srv_phist_add(&c->arm_total[o->arm], SRV_LAYOUT_LATENCY, total);
    }
    pthread_mutex_lock(&ws->lock);
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        if (o->stage[s] != SRV_STAGE_SKIPPED)
            util_hist_add(&ws->stage[s], o->stage[s]);
    if (o->arm >= 0)
        util_hist_add(&ws->arm_total[o->arm], total);
    pthread_mutex_unlock(&ws->lock);
}

void srv_counters_reply(srv_counters *c, int op_row, int code)
{
    atomic_fetch_add(&c->requests[op_row][code], 1);
}

void srv_counters_sample(srv_counters *c)
{
    atomic_store(&c->rss_bytes, srv_rss_bytes());
    atomic_store(&c->jemalloc_allocated, srv_jemalloc_allocated());
}

/* ---- collecting ------------------------------------------------------------------ */

/* Sum a worker's counts word by word, each read whole (srv_word_load). */
static void s_add_words(srv_wcounts *dst, const srv_wcounts *src)
{
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;
    for (size_t i = 0; i < sizeof *dst / sizeof *d; i++)
        d[i] += srv_word_load(&s[i]);
}

/* The fine histograms (220 KiB a worker) only when quantiles are asked
 * for: `stats` and the log line, on the main thread. */
static void s_collect_workers(srv_metrics_view *v, srv_wstats *const *ws, int n, int flags)
{
    for (int i = 0; i < n; i++) {
        s_add_words(&v->w, &ws[i]->c);
        if (!(flags & SRV_COLLECT_QUANTILES))
            continue;
        pthread_mutex_lock(&ws[i]->lock);
        for (int s = 0; s < SRV_STAGE_COUNT; s++)
            util_hist_merge(&v->stage[s], &ws[i]->stage[s]);
        for (int a = 0; a < SRV_ARMS_MAX; a++)
            util_hist_merge(&v->arm_total[a], &ws[i]->arm_total[a]);
        pthread_mutex_unlock(&ws[i]->lock);
    }
}

static void s_derive(srv_metrics_view *v)
{
    for (int r = 0; r < SRV_OP_ROWS; r++)
        for (int k = 0; k < SRV_CODE_COUNT; k++) {
            v->ops[r] += v->w.requests[r][k];
            v->errors[k] += v->w.requests[r][k];
        }
    v->errors[SRV_OK] = 0;   /* errors are codes other than ok */
    for (int f = 1; f < SRV_FB_COUNT; f++)
        v->fallbacks_total += v->w.fallbacks[f];
    v->busy = v->errors[SRV_E_BUSY];
}

void srv_metrics_collect(srv_metrics_view *v, srv_wstats *const *ws, int n,
                         srv_counters *c, int flags)
{
    memset(v, 0, offsetof(srv_metrics_view, stage));
    v->quantiles = (flags & SRV_COLLECT_QUANTILES) != 0;
    if (v->quantiles) {
        for (int s = 0; s < SRV_STAGE_COUNT; s++)
            util_hist_reset(&v->stage[s]);
        for (int a = 0; a < SRV_ARMS_MAX; a++)
            util_hist_reset(&v->arm_total[a]);
    }
    if (ws)
        s_collect_workers(v, ws, n, flags);
    for (int r = 0; r < SRV_OP_ROWS; r++)
        for (int k = 0; k < SRV_CODE_COUNT; k++)
            v->w.requests[r][k] += atomic_load(&c->requests[r][k]);
    s_derive(v);
    v->received = atomic_load(&c->received);
    v->replied = atomic_load(&c->replied);
    v->dropped = atomic_load(&c->dropped);
    v->unroutable = atomic_load(&c->unroutable);
    v->in_flight = atomic_load(&c->in_flight);
    v->queued = atomic_load(&c->queued);
    v->reloads = atomic_load(&c->reloads);
    v->reload_failures = atomic_load(&c->reload_failures);
    v->imp_logged = atomic_load(&c->imp_logged);
    v->imp_dropped = atomic_load(&c->imp_dropped);
    v->qps = (double)atomic_load(&c->qps_milli) / 1000.0;
    v->rss_bytes = atomic_load(&c->rss_bytes);
    v->jemalloc_allocated = atomic_load(&c->jemalloc_allocated);
    v->build_info = 1;
}

/* Histograms are cumulative; an interval is the bucket-wise difference. */
void srv_metrics_interval(srv_metrics_view *out, const srv_metrics_view *now,
                          const srv_metrics_view *before)
{
    *out = *now;
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        util_hist_sub(&out->stage[s], &before->stage[s]);
    for (int a = 0; a < SRV_ARMS_MAX; a++)
        util_hist_sub(&out->arm_total[a], &before->arm_total[a]);
    srv_rec_interval(&out->rec, &now->rec, &before->rec);
}

/* The table's logged scalars in table order, then each stage's quantiles
 * over the interval, the error codes that occurred, and each experiment
 * arm's requests, fallbacks and p99 over the interval. */
void srv_metrics_logfmt(const srv_metrics_view *v, char *buf, size_t len)
{
    size_t n = 0;
#define PUT(...) \
    do { \
        int w_ = snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__); \
        if (w_ > 0) n += (size_t)w_; \
    } while (0)
    PUT("msg=metrics");
    int n_defs;
    const srv_metric *defs = srv_metric_defs(&n_defs);
    for (int i = 0; i < n_defs; i++) {
        if (!defs[i].log)
            continue;
        char val[64];
        if (defs[i].type == SRV_MT_F64)   /* rates: a tenth is plenty */
            snprintf(val, sizeof val, "%.1f", srv_metric_f64(&defs[i], v, 0));
        else
            srv_metric_print(&defs[i], v, 0, val, sizeof val);
        PUT(" %s=%s", defs[i].log, val);
    }
    for (int s = 0; s < SRV_STAGE_COUNT && v->quantiles; s++) {
        const util_hist *h = &v->stage[s];
        PUT(" %s_p50_us=%.1f %s_p99_us=%.1f %s_p999_us=%.1f", s_stage_names[s],
            util_hist_quantile(h, 0.50) / 1e3, s_stage_names[s], util_hist_quantile(h, 0.99) / 1e3,
            s_stage_names[s], util_hist_quantile(h, 0.999) / 1e3);
    }
    for (int k = 1; k < SRV_CODE_COUNT; k++)
        if (v->errors[k])
            PUT(" err_%s=%llu", srv_code_name(k), (unsigned long long)v->errors[k]);
    for (int r = 0; r < SRV_REFUSED_COUNT; r++)
        if (v->sec.refused[r])
            PUT(" refused_%s=%llu", srv_refusal_name(r), (unsigned long long)v->sec.refused[r]);
    for (int a = 0; v->exp && a < v->exp->n && v->quantiles; a++)
        PUT(" arm_%s_requests=%llu arm_%s_fallbacks=%llu arm_%s_p99_us=%.1f",
            v->exp->arm[a].name, (unsigned long long)v->w.arm_requests[a], v->exp->arm[a].name,
            (unsigned long long)v->w.arm_fallbacks[a], v->exp->arm[a].name,
            util_hist_quantile(&v->arm_total[a], 0.99) / 1e3);
    if (v->quantiles)
        srv_rec_logfmt(&v->rec, buf, len, &n);
#undef PUT
}

uint64_t srv_rss_bytes(void)
{
    return util_rss_bytes(0);
}

uint64_t srv_jemalloc_allocated(void)
{
#ifdef ATTN_WITH_JEMALLOC
    /* jemalloc caches its statistics; bumping the epoch refreshes them. */
    uint64_t epoch = 1;
    size_t sz = sizeof epoch;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t allocated = 0;
    sz = sizeof allocated;
    if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0)
        return 0;
    return allocated;
#else
    return 0;
#endif
}
