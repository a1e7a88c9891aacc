/* topk.c -- deterministic top-k by a bounded heap.
 *
 * The output array doubles as the heap: while scanning, idx[0..size) is a
 * binary min-heap under the ranking order (its root is the worst of the best
 * seen so far), so a new index only costs a comparison unless it beats the
 * root.  At the end the heap is sorted in place by repeatedly moving the root
 * to the back, which leaves the best first.  O(n log k), no allocation.
 *
 * The order is total (score descending, then index ascending), so the result
 * does not depend on the scan or the heap's shape: equal inputs give equal
 * outputs on every machine.
 */
#include "attn/topk.h"

/* One implementation for both element types: the comparison is the only
 * thing that differs.  "better" = ranks strictly earlier. */
#define S_TOPK(SFX, T)                                                        \
    static int s_better_##SFX(const T *s, uint32_t a, uint32_t b)               \
    {                                                                          \
        return s[a] > s[b] || (s[a] == s[b] && a < b);                         \
    }                                                                          \
                                                                               \
    /* Restore the min-heap (worst at the root) below position i. */          \
    static void s_sift_##SFX(const T *s, uint32_t *h, int size, int i)          \
    {                                                                          \
        for (;;) {                                                             \
            int l = 2 * i + 1, r = l + 1, w = i;                               \
            if (l < size && s_better_##SFX(s, h[w], h[l]))                      \
                w = l;                                                         \
            if (r < size && s_better_##SFX(s, h[w], h[r]))                      \
                w = r;                                                         \
            if (w == i)                                                        \
                return;                                                        \
            uint32_t t = h[i];                                                 \
            h[i] = h[w];                                                       \
            h[w] = t;                                                          \
            i = w;                                                             \
        }                                                                      \
    }                                                                          \
                                                                               \
    int attn_topk_##SFX(const T *s, int n, int k, uint32_t *idx)                          \
    {                                                                          \
        if (n <= 0 || k <= 0)                                                  \
            return 0;                                                          \
        if (k > n)                                                             \
            k = n;                                                             \
        for (int i = 0; i < k; i++)                                            \
            idx[i] = (uint32_t)i;                                              \
        for (int i = k / 2 - 1; i >= 0; i--)                                   \
            s_sift_##SFX(s, idx, k, i);                                         \
        /* Every index in the heap is below i, so i loses any tie: only a   \
         * strictly larger score than the root's gets in.  The scan is then  \
         * one compare against a register, whatever n is. */                  \
        T thr = s[idx[0]];                                                     \
        for (int i = k; i < n; i++)                                            \
            if (s[i] > thr) {                                                  \
                idx[0] = (uint32_t)i;                                          \
                s_sift_##SFX(s, idx, k, 0);                                     \
                thr = s[idx[0]];                                               \
            }                                                                  \
        /* Heap sort: the root is the worst; park it at the end. */           \
        for (int size = k; size > 1; size--) {                                 \
            uint32_t t = idx[0];                                               \
            idx[0] = idx[size - 1];                                            \
            idx[size - 1] = t;                                                 \
            s_sift_##SFX(s, idx, size - 1, 0);                                  \
        }                                                                      \
        return k;                                                              \
    }

S_TOPK(f32, float)
S_TOPK(f64, double)
