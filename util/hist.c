/* hist.c -- log-linear latency histogram.
 *
 * Layout: values below UTIL_HIST_SUB get one bucket each (exact).  Above
 * that, the values [2^p, 2^(p+1)) share group p - 6 and are split into
 * UTIL_HIST_SUB equal sub-buckets of width 2^(p-7).  Reporting a bucket's
 * midpoint is then off by at most half a width, 2^(p-8), against a value of
 * at least 2^p: a relative error below 1/256.  With UTIL_HIST_POW2 + 1
 * groups the exact range ends at 2^(UTIL_HIST_POW2 + 7) (2^49 ns is about
 * 6.5 days); anything larger is counted in the last bucket.
 */
#include "util/hist.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#define S_SUB_BITS 7
static_assert((1 << S_SUB_BITS) == UTIL_HIST_SUB, "UTIL_HIST_SUB must be 2^S_SUB_BITS");

static int s_bucket(uint64_t v)
{
    if (v < UTIL_HIST_SUB)
        return (int)v;
    int p = 63 - __builtin_clzll(v);              /* p >= S_SUB_BITS */
    int group = p - S_SUB_BITS + 1;
    if (group > UTIL_HIST_POW2)
        return UTIL_HIST_BUCKETS - 1;
    int sub = (int)(v >> (p - S_SUB_BITS)) - UTIL_HIST_SUB;
    return group * UTIL_HIST_SUB + sub;
}

/* The value a bucket reports: its midpoint, rounded down. */
static uint64_t s_mid(int b)
{
    int group = b / UTIL_HIST_SUB, sub = b % UTIL_HIST_SUB;
    if (group == 0)
        return (uint64_t)sub;
    int shift = group - 1;                        /* width is 2^shift */
    uint64_t lo = (uint64_t)(UTIL_HIST_SUB + sub) << shift;
    return lo + (((uint64_t)1 << shift) - 1) / 2;
}

void util_hist_reset(util_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void util_hist_add(util_hist *h, uint64_t value)
{
    h->n++;
    h->sum += value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
    h->bucket[s_bucket(value)]++;
}

void util_hist_merge(util_hist *dst, const util_hist *src)
{
    dst->n += src->n;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    for (int b = 0; b < UTIL_HIST_BUCKETS; b++)
        dst->bucket[b] += src->bucket[b];
}

void util_hist_sub(util_hist *dst, const util_hist *before)
{
    dst->n -= before->n;
    dst->sum -= before->sum;
    for (int b = 0; b < UTIL_HIST_BUCKETS; b++)
        dst->bucket[b] -= before->bucket[b];
    if (dst->n == 0)
        util_hist_reset(dst);
}

uint64_t util_hist_quantile(const util_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    if (!(q > 0.0))          /* also NaN */
        return h->min;
    if (q >= 1.0)
        return h->max;
    /* The value of rank ceil(q n), 1-based: the smallest v with at least
     * q n recorded values <= v. */
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int b = 0; b < UTIL_HIST_BUCKETS; b++) {
        seen += h->bucket[b];
        if (seen >= rank) {
            uint64_t v = s_mid(b);
            return v < h->min ? h->min : v > h->max ? h->max : v;
        }
    }
    return h->max;           /* unreachable when n matches the buckets */
}
