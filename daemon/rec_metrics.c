/* rec_metrics.c -- see rec_metrics.h. */
#include "daemon/rec_metrics.h"

#include "daemon/metrics.h"

#include <stdio.h>
#include <string.h>

static const char *const s_outcomes[SRV_REC_OUTCOMES] = {"stored", "duplicate", "rejected"};

const char *srv_rec_outcome_name(int outcome)
{
    return outcome >= 0 && outcome < SRV_REC_OUTCOMES ? s_outcomes[outcome] : NULL;
}

void srv_rec_stats_init(srv_rec_stats *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    util_hist_reset(&s->batch_events);
    util_hist_reset(&s->commit_ns);
    util_hist_reset(&s->ack_ns);
}

void srv_rec_stats_destroy(srv_rec_stats *s)
{
    pthread_mutex_destroy(&s->lock);
}

void srv_rec_batch_done(srv_rec_stats *s, const srv_rec_batch_report *r)
{
    srv_rec_counts *c = &s->c;
    uint64_t events = (uint64_t)(r->stored + r->duplicates + r->rejected);
    srv_word_add(&c->requests, (uint64_t)r->requests);
    srv_word_add(&c->batches, 1);
    if (r->failed) {
        srv_word_add(&c->failed_batches, 1);
    } else {
        srv_word_add(&c->events[SRV_REC_STORED], (uint64_t)r->stored);
        srv_word_add(&c->events[SRV_REC_DUPLICATE], (uint64_t)r->duplicates);
        srv_word_add(&c->events[SRV_REC_REJECTED], (uint64_t)r->rejected);
        srv_phist_add(&c->batch_ph, SRV_LAYOUT_SIZE, events);
        srv_phist_add(&c->commit_ph, SRV_LAYOUT_LATENCY, r->commit_ns);
    }
    for (int i = 0; r->ack_ns && i < r->requests; i++)
        srv_phist_add(&c->ack_ph, SRV_LAYOUT_LATENCY, r->ack_ns[i]);
    pthread_mutex_lock(&s->lock);
    if (!r->failed) {
        util_hist_add(&s->batch_events, events);
        util_hist_add(&s->commit_ns, r->commit_ns);
    }
    for (int i = 0; r->ack_ns && i < r->requests; i++)
        util_hist_add(&s->ack_ns, r->ack_ns[i]);
    pthread_mutex_unlock(&s->lock);
}

void srv_rec_tick(srv_rec_stats *s, uint64_t now)
{
    uint64_t *cur = s->ring[s->ring_at];
    for (int k = 0; k < SRV_REC_OUTCOMES; k++)
        cur[k] = srv_word_load(&s->c.events[k]);
    s->ring_ns[s->ring_at] = now;
    int oldest = s->ring_filled < SRV_REC_RING - 1 ? 0 : (s->ring_at + 1) % SRV_REC_RING;
    if (oldest != s->ring_at && now > s->ring_ns[oldest])
        for (int k = 0; k < SRV_REC_OUTCOMES; k++)
            atomic_store(&s->rate_milli[k],
                         (uint64_t)((double)(cur[k] - s->ring[oldest][k]) * 1e12 /
                                    (double)(now - s->ring_ns[oldest])));
    s->ring_at = (s->ring_at + 1) % SRV_REC_RING;
    if (s->ring_filled < SRV_REC_RING)
        s->ring_filled++;
}

void srv_rec_collect(srv_rec_stats *s, srv_rec_view *v, int flags)
{
    /* Word by word: the writer may be storing any of them meanwhile. */
    const uint64_t *from = (const uint64_t *)&s->c;
    uint64_t *to = (uint64_t *)&v->c;
    for (size_t i = 0; i < sizeof s->c / sizeof(uint64_t); i++)
        to[i] = srv_word_load(&from[i]);
    v->queued = atomic_load(&s->queued);
    v->stored_per_s = (double)atomic_load(&s->rate_milli[SRV_REC_STORED]) / 1000.0;
    v->duplicates_per_s = (double)atomic_load(&s->rate_milli[SRV_REC_DUPLICATE]) / 1000.0;
    v->rejected_per_s = (double)atomic_load(&s->rate_milli[SRV_REC_REJECTED]) / 1000.0;
    v->quantiles = (flags & SRV_COLLECT_QUANTILES) != 0;
    if (!v->quantiles)
        return;
    pthread_mutex_lock(&s->lock);
    v->batch_events = s->batch_events;
    v->commit_ns = s->commit_ns;
    v->ack_ns = s->ack_ns;
    pthread_mutex_unlock(&s->lock);
}

void srv_rec_interval(srv_rec_view *out, const srv_rec_view *now, const srv_rec_view *before)
{
    *out = *now;
    util_hist_sub(&out->batch_events, &before->batch_events);
    util_hist_sub(&out->commit_ns, &before->commit_ns);
    util_hist_sub(&out->ack_ns, &before->ack_ns);
}

void srv_rec_logfmt(const srv_rec_view *v, char *buf, size_t len, size_t *at)
{
    if (*at >= len || !v->quantiles)
        return;
    int w = snprintf(buf + *at, len - *at,
                     " rec_batch_p50=%llu rec_batch_p99=%llu rec_commit_p50_us=%.1f "
                     "rec_commit_p99_us=%.1f rec_ack_p50_us=%.1f rec_ack_p99_us=%.1f",
                     (unsigned long long)util_hist_quantile(&v->batch_events, 0.5),
                     (unsigned long long)util_hist_quantile(&v->batch_events, 0.99),
                     util_hist_quantile(&v->commit_ns, 0.5) / 1e3,
                     util_hist_quantile(&v->commit_ns, 0.99) / 1e3,
                     util_hist_quantile(&v->ack_ns, 0.5) / 1e3,
                     util_hist_quantile(&v->ack_ns, 0.99) / 1e3);
    if (w > 0)
        *at += (size_t)w;
}
