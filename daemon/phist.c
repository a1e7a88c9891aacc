/* phist.c -- see phist.h. */
#include "daemon/phist.h"

#include <assert.h>

/* Latency: 1-2-5 steps from 1 us to 10 s.  Request stages run from ~2 us
 * (parse of a health request) to tens of ms (a 10k-candidate rank); 10 s is
 * the longest a request may usefully take (clients time out sooner).  Three
 * buckets a decade keep histogram_quantile()'s linear interpolation within
 * a factor 2-2.5 of the truth at 25 series per histogram (23 buckets, _sum,
 * _count); the exact
 * quantiles are the log line's and `stats`' (util_hist, within 1%).
 * Sizes: 0 (an empty history), then 1-2-5 steps to the largest limit a
 * request can reach (limits.max_candidates <= 1,000,000). */
static const srv_layout_def s_layouts[SRV_LAYOUT_COUNT] = {
    [SRV_LAYOUT_LATENCY] = {22, {1000ull, 2000ull, 5000ull, 10000ull, 20000ull, 50000ull,
                                 100000ull, 200000ull, 500000ull, 1000000ull, 2000000ull,
                                 5000000ull, 10000000ull, 20000000ull, 50000000ull,
                                 100000000ull, 200000000ull, 500000000ull, 1000000000ull,
                                 2000000000ull, 5000000000ull, 10000000000ull}, 9},
    [SRV_LAYOUT_SIZE] = {20, {0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
                              10000, 20000, 50000, 100000, 200000, 500000, 1000000}, 0},
};

const srv_layout_def *srv_layout(int layout)
{
    assert(layout >= 0 && layout < SRV_LAYOUT_COUNT);
    return &s_layouts[layout];
}

void srv_phist_add(srv_phist *h, int layout, uint64_t value)
{
    const srv_layout_def *l = &s_layouts[layout];
    int b = 0;
    while (b < l->n && value > l->le[b])
        b++;
    srv_word_add(&h->bucket[b], 1);
    srv_word_add(&h->sum, value);
}

uint64_t srv_phist_count(const srv_phist *h)
{
    uint64_t n = 0;
    for (int b = 0; b <= SRV_PHIST_BOUNDS; b++)
        n += h->bucket[b];
    return n;
}
