/* metrics.c -- see metrics.h. */
#include "daemon/metrics.h"

#include "util/proc.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef ATTN_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static const char *s_stage_names[SRV_STAGE_COUNT] = {"parse", "history", "score", "encode",
                                                      "total"};

const char *srv_stage_name(int stage)
{
    return stage >= 0 && stage < SRV_STAGE_COUNT ? s_stage_names[stage] : "unknown";
}

void srv_wstats_init(srv_wstats *ws)
{
    memset(ws, 0, sizeof *ws);
    pthread_mutex_init(&ws->lock, NULL);
    for (int i = 0; i < SRV_STAGE_COUNT; i++)
        util_hist_reset(&ws->stage[i]);
    for (int a = 0; a < SRV_ARMS_MAX; a++)
        util_hist_reset(&ws->arm[a].total);
}

void srv_wstats_destroy(srv_wstats *ws)
{
    pthread_mutex_destroy(&ws->lock);
}

void srv_metrics_collect(srv_metrics_view *v, srv_wstats *const *ws, int n,
                         srv_counters *c)
{
    memset(v, 0, sizeof *v);
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        util_hist_reset(&v->stage[s]);
    for (int a = 0; a < SRV_ARMS_MAX; a++)
        util_hist_reset(&v->arm[a].total);
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&ws[i]->lock);
        for (int k = 0; k < SRV_OPS_MAX; k++)
            v->ops[k] += ws[i]->ops[k];
        for (int k = 0; k < SRV_CODE_COUNT; k++)
            v->errors[k] += ws[i]->errors[k];
        v->fallbacks += ws[i]->fallbacks;
        for (int s = 0; s < SRV_STAGE_COUNT; s++)
            util_hist_merge(&v->stage[s], &ws[i]->stage[s]);
        for (int a = 0; a < SRV_ARMS_MAX; a++) {
            v->arm[a].requests += ws[i]->arm[a].requests;
            v->arm[a].fallbacks += ws[i]->arm[a].fallbacks;
            util_hist_merge(&v->arm[a].total, &ws[i]->arm[a].total);
        }
        pthread_mutex_unlock(&ws[i]->lock);
    }
    for (int k = 0; k < SRV_CODE_COUNT; k++)
        v->errors[k] += atomic_load(&c->errors[k]);
    v->received = atomic_load(&c->received);
    v->replied = atomic_load(&c->replied);
    v->dropped = atomic_load(&c->dropped);
    v->unroutable = atomic_load(&c->unroutable);
    v->in_flight = atomic_load(&c->in_flight);
    v->queued = atomic_load(&c->queued);
    v->reloads = atomic_load(&c->reloads);
    v->reload_failures = atomic_load(&c->reload_failures);
    v->qps = atomic_load(&c->qps_milli) / 1000.0;
    v->rss_bytes = srv_rss_bytes();
    v->jemalloc_allocated = srv_jemalloc_allocated();
}

/* Histograms are cumulative; an interval is the bucket-wise difference. */
static void s_hist_minus(util_hist *h, const util_hist *b)
{
    h->n -= b->n;
    h->sum -= b->sum;
    for (int i = 0; i < UTIL_HIST_BUCKETS; i++)
        h->bucket[i] -= b->bucket[i];
    /* The interval's own extremes are not kept: min and max stay the
     * cumulative ones, which only loosens the clamp on its quantiles. */
    if (h->n == 0) {
        h->min = UINT64_MAX;
        h->max = 0;
    }
}

void srv_metrics_interval(srv_metrics_view *out, const srv_metrics_view *now,
                          const srv_metrics_view *before)
{
    *out = *now;
    for (int s = 0; s < SRV_STAGE_COUNT; s++)
        s_hist_minus(&out->stage[s], &before->stage[s]);
    for (int a = 0; a < SRV_ARMS_MAX; a++)
        s_hist_minus(&out->arm[a].total, &before->arm[a].total);
}

void srv_metrics_logfmt(const srv_metrics_view *v, const srv_experiment *exp, char *buf,
                        size_t len)
{
    size_t n = 0;
#define PUT(...) \
    do { \
        int w_ = snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__); \
        if (w_ > 0) n += (size_t)w_; \
    } while (0)
    PUT("msg=metrics qps=%.1f requests=%llu in_flight=%d queued=%d busy=%llu fallbacks=%llu "
        "dropped=%llu", v->qps, (unsigned long long)v->replied, v->in_flight, v->queued,
        (unsigned long long)v->errors[SRV_E_BUSY], (unsigned long long)v->fallbacks,
        (unsigned long long)v->dropped);
    for (int s = 0; s < SRV_STAGE_COUNT; s++) {
        const util_hist *h = &v->stage[s];
        PUT(" %s_p50_us=%.1f %s_p99_us=%.1f %s_p999_us=%.1f", s_stage_names[s],
            util_hist_quantile(h, 0.50) / 1e3, s_stage_names[s], util_hist_quantile(h, 0.99) / 1e3,
            s_stage_names[s], util_hist_quantile(h, 0.999) / 1e3);
    }
    for (int k = 1; k < SRV_CODE_COUNT; k++)
        if (v->errors[k])
            PUT(" err_%s=%llu", srv_code_name(k), (unsigned long long)v->errors[k]);
    for (int a = 0; a < exp->n; a++)
        PUT(" arm_%s_requests=%llu arm_%s_fallbacks=%llu arm_%s_p99_us=%.1f", exp->arm[a].name,
            (unsigned long long)v->arm[a].requests, exp->arm[a].name,
            (unsigned long long)v->arm[a].fallbacks, exp->arm[a].name,
            util_hist_quantile(&v->arm[a].total, 0.99) / 1e3);
    PUT(" model=%lld catalog=%lld items=%u rss_bytes=%llu jemalloc_allocated=%llu",
        (long long)v->model_version, (long long)v->catalog_version, v->items,
        (unsigned long long)v->rss_bytes, (unsigned long long)v->jemalloc_allocated);
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
