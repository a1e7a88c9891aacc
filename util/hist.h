/* hist.h -- latency histogram with bounded relative error.
 *
 *     static util_hist h;                      // 43 KiB: static or heap, not the stack
 *     util_hist_reset(&h);
 *     util_hist_add(&h, util_now_ns() - t0);   // per request
 *     uint64_t p99 = util_hist_quantile(&h, 0.99);   // within 1/256 of the truth
 *     util_hist_merge(&total, &h);             // per-thread histograms into one
 *
 * Log-linear buckets: each power of two is split into UTIL_HIST_SUB linear
 * sub-buckets, so a reported quantile is within 1/UTIL_HIST_SUB (< 1%) of the
 * true value (in fact within 1/(2 UTIL_HIST_SUB): buckets report midpoints).
 * Values are unsigned integers (nanoseconds by convention); values below
 * UTIL_HIST_SUB are exact, and the bounded error holds up to at least
 * 2^UTIL_HIST_POW2 (precisely: below 2^(UTIL_HIST_POW2 + 7), about 6.5 days
 * in ns); larger ones land in the last bucket and max keeps the truth.
 * Fixed size, no allocation, safe to copy with memcpy; not thread-safe.
 */
#ifndef UTIL_HIST_H
#define UTIL_HIST_H

#include <stdint.h>

#define UTIL_HIST_SUB 128
#define UTIL_HIST_POW2 42
#define UTIL_HIST_BUCKETS ((UTIL_HIST_POW2 + 1) * UTIL_HIST_SUB)

typedef struct util_hist {
    uint64_t n;                          /* values recorded */
    uint64_t sum;                        /* their sum (for the mean) */
    uint64_t min, max;                   /* exact extremes; min is UINT64_MAX when empty */
    uint64_t bucket[UTIL_HIST_BUCKETS];  /* counts */
} util_hist;

void util_hist_reset(util_hist *h);
void util_hist_add(util_hist *h, uint64_t value);
void util_hist_merge(util_hist *dst, const util_hist *src);
/* dst minus an earlier copy of itself (an interval of a cumulative
 * histogram).  min and max stay dst's cumulative ones, which only loosens
 * the clamp of the interval's quantiles; an empty interval is reset. */
void util_hist_sub(util_hist *dst, const util_hist *before);
/* Value at quantile q in [0, 1] (0 = min, 1 = max); 0 when empty.  Returns
 * the midpoint of the bucket holding the rank, clamped to [min, max]. */
uint64_t util_hist_quantile(const util_hist *h, double q);

#endif
