/* hist.h -- latency histogram with bounded relative error.
 *
 * Log-linear buckets: each power of two is split into ATTN_HIST_SUB linear
 * sub-buckets, so a reported quantile is within 1/ATTN_HIST_SUB (< 1%) of the
 * true value (in fact within 1/(2 ATTN_HIST_SUB): buckets report midpoints).
 * Values are unsigned integers (nanoseconds by convention); values below
 * ATTN_HIST_SUB are exact, and the bounded error holds up to at least
 * 2^ATTN_HIST_POW2 (precisely: below 2^(ATTN_HIST_POW2 + 7), about 6.5 days
 * in ns); larger ones land in the last bucket and max keeps the truth.
 * Fixed size, no allocation, safe to copy with memcpy; not thread-safe.
 */
#ifndef ATTN_HIST_H
#define ATTN_HIST_H

#include <stdint.h>

#define ATTN_HIST_SUB 128
#define ATTN_HIST_POW2 42
#define ATTN_HIST_BUCKETS ((ATTN_HIST_POW2 + 1) * ATTN_HIST_SUB)

typedef struct attn_hist {
    uint64_t n;                          /* values recorded */
    uint64_t sum;                        /* their sum (for the mean) */
    uint64_t min, max;                   /* exact extremes; min is UINT64_MAX when empty */
    uint64_t bucket[ATTN_HIST_BUCKETS];  /* counts */
} attn_hist;

void attn_hist_reset(attn_hist *h);
void attn_hist_add(attn_hist *h, uint64_t value);
void attn_hist_merge(attn_hist *dst, const attn_hist *src);
/* Value at quantile q in [0, 1] (0 = min, 1 = max); 0 when empty.  Returns
 * the midpoint of the bucket holding the rank, clamped to [min, max]. */
uint64_t attn_hist_quantile(const attn_hist *h, double q);

#endif
