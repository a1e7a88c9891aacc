/* topk.c -- deterministic top-k by a bounded heap.
 *
 * The output array doubles as the heap: while scanning, idx[0..k) is a
 * binary min-heap under the ranking order (its root is the worst of the best
 * seen so far), so a new index only costs a comparison unless it beats the
 * root.  At the end the heap is sorted in place by repeatedly moving the root
 * to the back, which leaves the best first.  O(n log k), no allocation.
 *
 * Comparisons go through an integer key whose unsigned order is the ranking
 * order: the score's bits made monotonic (sign flipped for positives, all
 * bits for negatives; -0 folded onto +0 so that they tie, as == says), then
 * the complement of the index, so that a lower index ranks first.  One
 * integer compare replaces a float compare and an index compare.
 *
 * For float scores and k <= S_KEYS_MAX (the request path), the heap holds the
 * keys themselves, in a stack array: a heap level is then two loads and a
 * compare instead of a chain index -> score -> key, which made a
 * 100-candidate top-10 about four times faster.  Larger k, and doubles, use
 * a heap of indexes in the output array.
 *
 * The order is total, so the result does not depend on the scan or the
 * heap's shape: equal inputs give equal outputs on every machine.
 */
#include "attn/topk.h"

#include <string.h>

/* Ranking keys: larger is better. */
static inline uint64_t s_key_f32(const float *s, uint32_t i)
{
    float x = s[i] + 0.0f;                 /* -0 + 0 = +0 */
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return ((uint64_t)b << 32) | (uint32_t)~i;
}

/* A double's monotonic bits need all 64, so its key is a pair compared
 * lexicographically (the f64 variant serves tests and evaluation, not the
 * request path). */
typedef struct s_key2 {
    uint64_t hi;
    uint32_t lo;
} s_key2;

static inline s_key2 s_key_f64(const double *s, uint32_t i)
{
    double x = s[i] + 0.0;
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    b = (b & 0x8000000000000000ull) ? ~b : (b | 0x8000000000000000ull);
    return (s_key2){b, ~i};
}

#define S_LESS_f32(a, b) ((a) < (b))
#define S_LESS_f64(a, b) ((a).hi < (b).hi || ((a).hi == (b).hi && (a).lo < (b).lo))

#define S_TOPK(SFX, T, K)                                                     \
    /* Restore the min-heap (worst at the root) below position i. */         \
    static void s_sift_##SFX(const T *s, uint32_t *h, int size, int i)         \
    {                                                                         \
        uint32_t x = h[i];                                                    \
        K kx = s_key_##SFX(s, x);                                             \
        for (;;) {                                                            \
            int c = 2 * i + 1;                                                \
            if (c >= size)                                                    \
                break;                                                        \
            K kc = s_key_##SFX(s, h[c]);                                      \
            if (c + 1 < size) {                                               \
                K kr = s_key_##SFX(s, h[c + 1]);                              \
                int right = S_LESS_##SFX(kr, kc);                             \
                c += right;                                                   \
                kc = right ? kr : kc;                                         \
            }                                                                 \
            if (!S_LESS_##SFX(kc, kx))                                        \
                break;                                                        \
            h[i] = h[c];                                                      \
            i = c;                                                            \
        }                                                                     \
        h[i] = x;                                                             \
    }                                                                         \
                                                                              \
    static int s_topk_ind_##SFX(const T *s, int n, int k, uint32_t *idx)       \
    {                                                                         \
        if (n <= 0 || k <= 0)                                                 \
            return 0;                                                         \
        if (k > n)                                                            \
            k = n;                                                            \
        for (int i = 0; i < k; i++)                                           \
            idx[i] = (uint32_t)i;                                             \
        for (int i = k / 2 - 1; i >= 0; i--)                                  \
            s_sift_##SFX(s, idx, k, i);                                       \
        /* Every index in the heap is below i, so i loses any tie: only a    \
         * strictly larger score than the root's gets in.  The scan is then  \
         * one compare against a register, whatever n is. */                 \
        T thr = s[idx[0]];                                                    \
        for (int i = k; i < n; i++)                                           \
            if (s[i] > thr) {                                                 \
                idx[0] = (uint32_t)i;                                         \
                s_sift_##SFX(s, idx, k, 0);                                   \
                thr = s[idx[0]];                                              \
            }                                                                 \
        /* Heap sort: the root is the worst; park it at the end. */          \
        for (int size = k; size > 1; size--) {                                \
            uint32_t t = idx[0];                                              \
            idx[0] = idx[size - 1];                                           \
            idx[size - 1] = t;                                                \
            s_sift_##SFX(s, idx, size - 1, 0);                                \
        }                                                                     \
        return k;                                                             \
    }

S_TOPK(f32, float, uint64_t)
S_TOPK(f64, double, s_key2)

int attn_topk_f64(const double *s, int n, int k, uint32_t *idx)
{
    return s_topk_ind_f64(s, n, k, idx);
}

#define S_KEYS_MAX 512

/* The key heaps keep a sentinel (the largest key) at h[size], so that the
 * smaller of two children is picked without a branch even when the second
 * one does not exist. */

/* Restore the min-heap of keys below position i. */
static void s_sift_keys(uint64_t *h, int size, int i)
{
    uint64_t x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= size)
            break;
        c += h[c + 1] < h[c];
        if (h[c] >= x)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Replace the root by x (which beats it), Floyd's way: walk the hole down to
 * a leaf along the smaller children, with no data-dependent exit to
 * mispredict, then move x up from there; an entry that beats the worst
 * usually belongs near the bottom, so that second walk is short. */
static void s_replace_root(uint64_t *h, int size, uint64_t x)
{
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= size)
            break;
        c += h[c + 1] < h[c];
        h[i] = h[c];
        i = c;
    }
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h[p] <= x)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

int attn_topk_f32(const float *s, int n, int k, uint32_t *idx)
{
    if (n <= 0 || k <= 0)
        return 0;
    if (k > n)
        k = n;
    if (k > S_KEYS_MAX)
        return s_topk_ind_f32(s, n, k, idx);
    uint64_t h[S_KEYS_MAX + 1];
    for (int i = 0; i < k; i++)
        h[i] = s_key_f32(s, (uint32_t)i);
    h[k] = UINT64_MAX;
    for (int i = k / 2 - 1; i >= 0; i--)
        s_sift_keys(h, k, i);
    /* As in s_topk_ind: only a strictly larger score than the root's. */
    float thr = s[(uint32_t)~h[0]];
    for (int i = k; i < n; i++)
        if (s[i] > thr) {
            s_replace_root(h, k, s_key_f32(s, (uint32_t)i));
            thr = s[(uint32_t)~h[0]];
        }
    /* Pop the worst into the last free output slot; the slot it leaves in
     * the heap becomes the sentinel. */
    for (int size = k; size > 0; size--) {
        idx[size - 1] = (uint32_t)~h[0];
        h[0] = h[size - 1];
        h[size - 1] = UINT64_MAX;
        s_sift_keys(h, size - 1, 0);
    }
    return k;
}
