/* phist.h -- bucket histograms for Prometheus: fixed upper bounds, exact
 * counts per bound.
 *
 *     srv_phist h = {0};
 *     srv_phist_add(&h, SRV_LAYOUT_LATENCY, elapsed_ns);   // per observation
 *     srv_phist_count(&h);                                // observations
 *     // prom.c exports it: cumulative _bucket{le=...}, _sum, _count
 *
 * All uint64_t and fixed size: a feature embeds one in its metrics struct
 * and copies it to a view; sums of several are element-wise.  One thread
 * may add while others read: srv_phist_add stores each word atomically
 * (relaxed), so a reader that loads each word atomically sees it whole.
 * Two adders need a lock.
 */
#ifndef DAEMON_PHIST_H
#define DAEMON_PHIST_H

#include <stdint.h>

/* A word one thread adds to and any thread reads: relaxed atomic load and
 * store (plain moves on x86-64), so a reader sees each word whole.  The
 * counters of srv_phist and of a worker's srv_wcounts go through these. */
static inline void srv_word_add(uint64_t *p, uint64_t by)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + by, __ATOMIC_RELAXED);
}

static inline uint64_t srv_word_load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Fixed upper bounds in 1-2-5 steps, the same in every process and scrape,
 * so rates and histogram_quantile() can combine them.  Counts are exact per
 * bound (a value lands in the first bucket whose bound is >= it), which the
 * log-linear util_hist cannot give at decimal bounds; util_hist stays for
 * the 1%-accurate quantiles of `stats` and the log line. */
enum srv_layout {
    SRV_LAYOUT_LATENCY = 0,  /* nanoseconds, 1 us .. 10 s; exported in seconds */
    SRV_LAYOUT_SIZE = 1,     /* counts, 0 .. 1,000,000 */
    SRV_LAYOUT_COUNT
};
#define SRV_PHIST_BOUNDS 22  /* finite bounds a layout may have */

typedef struct srv_layout_def {
    int n;                            /* finite bounds used */
    uint64_t le[SRV_PHIST_BOUNDS];    /* ascending, in the recorded unit */
    int decimals;                     /* exported = recorded / 10^decimals (9: ns -> s) */
} srv_layout_def;

const srv_layout_def *srv_layout(int layout);

typedef struct srv_phist {
    uint64_t bucket[SRV_PHIST_BOUNDS + 1];  /* per bucket, not cumulative; [n] is +Inf */
    uint64_t sum;                            /* of the values, in the recorded unit */
} srv_phist;

void srv_phist_add(srv_phist *h, int layout, uint64_t value);
uint64_t srv_phist_count(const srv_phist *h);

#endif
