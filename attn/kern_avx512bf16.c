/* kern_avx512bf16.c -- a head's two products straight from bfloat16 rows,
 * for CPUs with AVX512-BF16 (kern.h: attn_kern_dp).
 *
 * The register blocking of kern_avx512.c's tile: eight rows of A, each
 * through its own pointer, times 48 columns of B; 24 accumulators.  A step
 * is a pair of A's inner dimension: each row's pair is one 32-bit
 * broadcast, each vector of B holds 16 columns' pairs, and vdpbf16ps adds
 * both products of every pair.  So a step loads half the bytes of B and
 * broadcasts half as often per multiply-add as the float kernel, and
 * nothing is widened: the candidates' rows are read where they lie in the
 * tables.  The products of bfloat16 values are exact in float; the sums
 * round as an FMA's would (flushing subnormal inputs and results to zero,
 * which is all vdpbf16ps does differently: a change far below the bound
 * docs/MODEL.md §5.2.1 allows bfloat16 tables).  A last vector of columns
 * that holds two real ones or fewer (L = 50 pads to 64) rides along with
 * the block before it (s_block_tail2).
 *
 * Compiled for AVX-512 with BF16 whatever the build's -march; kern.c only
 * hands it out after isa.c has checked the CPU.
 */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512bf16,avx2,fma")

#include "attn/kern.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "attn/kern_avx512.h"

/* A row's pair at p, in every lane. */
static inline __attribute__((always_inline)) __m512bh s_pair(const uint16_t *p)
{
    uint32_t x;
    memcpy(&x, p, sizeof x);
    return (__m512bh)_mm512_set1_epi32((int)x);
}

static inline __attribute__((always_inline)) __m512bh s_load(const uint32_t *p)
{
    return (__m512bh)_mm512_loadu_si512(p);
}

/* Pairs [0, K2) of eight rows times columns [0, 16 W) of B, then the
 * epilogue (kern_avx512.h). */
static inline __attribute__((always_inline)) void
s_block(const uint16_t *const *p, int K2, const uint32_t *b, size_t ldb, float *c, size_t ldc,
        const int W, const s_epi *ep, size_t j0)
{
    __m512 acc[S_ROWS][3];
    s_zero_acc(acc);
    for (int t = 0; t < K2; t++) {
        const uint32_t *bt = b + (size_t)t * ldb;
        __m512bh b0 = s_load(bt);
        __m512bh b1 = W > 1 ? s_load(bt + 16) : b0;
        __m512bh b2 = W > 2 ? s_load(bt + 32) : b0;
#pragma GCC unroll 8
        for (int r = 0; r < S_ROWS; r++) {
            __m512bh x = s_pair(p[r] + 2 * (size_t)t);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
            if (W > 1)
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
            if (W > 2)
                acc[r][2] = _mm512_dpbf16_ps(acc[r][2], x, b2);
        }
    }
    s_finish(acc, c, ldc, W, ep, j0);
}

/* The block of 48 columns before the last vector, and that vector's (at
 * most) two real columns in one more accumulator: lane 2r + c holds row r
 * times column 48 + c.  Each row's pair is broadcast once for its three
 * products and moved into lanes 2r and 2r + 1 of the tail's A, and B's two
 * columns repeat in every lane pair (a 64-bit broadcast): one vdpbf16ps a
 * step for the tail instead of a one-vector block's eight, whose products
 * were 14 of 16 padding.  Past the two columns the logits come out -inf
 * (the caller's bias there is -inf too) and the tile and raw 0. */
static inline __attribute__((always_inline)) void
s_block_tail2(const uint16_t *const *p, int K2, const uint32_t *b, size_t ldb, float *c,
              size_t ldc, const s_epi *ep, size_t j0)
{
    __m512 acc[S_ROWS][3];
    s_zero_acc(acc);
    __m512 tail = _mm512_setzero_ps();
    for (int t = 0; t < K2; t++) {
        const uint32_t *bt = b + (size_t)t * ldb;
        __m512bh b0 = s_load(bt), b1 = s_load(bt + 16), b2 = s_load(bt + 32);
        long long two;
        memcpy(&two, bt + 48, sizeof two);
        __m512i ta = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int r = 0; r < S_ROWS; r++) {
            __m512i xi = (__m512i)s_pair(p[r] + 2 * (size_t)t);
            __m512bh x = (__m512bh)xi;
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
            acc[r][2] = _mm512_dpbf16_ps(acc[r][2], x, b2);
            ta = _mm512_mask_mov_epi32(ta, (__mmask16)(3u << (2 * r)), xi);
        }
        tail = _mm512_dpbf16_ps(tail, (__m512bh)ta, (__m512bh)_mm512_set1_epi64(two));
    }
    s_finish(acc, c, ldc, 3, ep, j0);
    /* Row r's two columns from lanes 2r, 2r + 1 to lanes 0, 1 of its own vector. */
    const __m512 pad = ep ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
    __m512 tz = tail;
    if (ep) {
        long long bias2;
        memcpy(&bias2, ep->bias + j0 + 48, sizeof bias2);
        tz = _mm512_fmadd_ps(tail, ep->scale, _mm512_castsi512_ps(_mm512_set1_epi64(bias2)));
    }
#pragma GCC unroll 8
    for (int r = 0; r < S_ROWS; r++) {
        const __m512i at = _mm512_set1_epi64((long long)(2 * r + 1) << 32 | (2 * r));
        __m512 zr = _mm512_mask_permutexvar_ps(pad, 0x3, at, tz);
        _mm512_storeu_ps(c + (size_t)r * ldc + 48, zr);
        if (ep) {
            if (ep->raw)
                _mm512_storeu_ps(ep->raw + (size_t)r * ldc + j0 + 48,
                                 _mm512_maskz_permutexvar_ps(0x3, at, tail));
            ep->mx[r] = _mm512_max_ps(ep->mx[r], zr);
        }
    }
}

/* Columns [0, ncols) in chunks of 48, then a 32 or 16 wide rest; a last
 * vector with at most two real columns (nreal) after a chunk of 48 goes
 * with that chunk (s_block_tail2). */
static inline __attribute__((always_inline)) void
s_cols(const uint16_t *const *p, int K2, const uint32_t *b, size_t ldb, int ncols, int nreal,
       float *c, size_t ldc, const s_epi *ep)
{
    const int tail2 = ncols >= 64 && ncols % 48 == 16 && nreal <= ncols - 14;
    const int wide = tail2 ? ncols - 64 : ncols;
    int j = 0;
    for (; j + 48 <= wide; j += 48)
        s_block(p, K2, b + j, ldb, c + j, ldc, 3, ep, (size_t)j);
    if (tail2)
        s_block_tail2(p, K2, b + j, ldb, c + j, ldc, ep, (size_t)j);
    else if (ncols - j == 32)
        s_block(p, K2, b + j, ldb, c + j, ldc, 2, ep, (size_t)j);
    else if (ncols - j == 16)
        s_block(p, K2, b + j, ldb, c + j, ldc, 1, ep, (size_t)j);
}

static void s_tile(const uint16_t *const *a, size_t aoff, int K2, const uint32_t *b, size_t ldb,
                   int ncols, int nreal, float *c, size_t ldc)
{
    const uint16_t *p[S_ROWS];
    for (int r = 0; r < S_ROWS; r++)
        p[r] = a[r] + aoff;
    s_cols(p, K2, b, ldb, ncols, nreal, c, ldc, NULL);
}

static void s_logits(const uint16_t *const *a, size_t aoff, int K2, const uint32_t *b,
                     size_t ldb, int ncols, int nreal, float scale, const float *bias, float *z,
                     float *raw, size_t ldz, float *rowmax)
{
    const uint16_t *p[S_ROWS];
    __m512 mx[S_ROWS];
    for (int r = 0; r < S_ROWS; r++) {
        p[r] = a[r] + aoff;
        mx[r] = _mm512_set1_ps(-INFINITY);
    }
    s_epi ep = {.bias = bias, .scale = _mm512_set1_ps(scale), .raw = raw, .mx = mx};
    s_cols(p, K2, b, ldb, ncols, nreal, z, ldz, &ep);
    for (int r = 0; r < S_ROWS; r++)
        rowmax[r] = _mm512_reduce_max_ps(mx[r]);
}

const attn_kern_dp attn_kern_avx512bf16 = {
    .name = "avx512bf16",
    .rows = S_ROWS,
    .tile = s_tile,
    .logits = s_logits,
};

#endif
