/* kern_avx512.c -- the kernel set for AVX-512F CPUs (Skylake-SP and later).
 *
 * Compiled for AVX-512 whatever the build's -march; kern.c only calls into
 * it after checking the CPU, so the binary still runs everywhere.
 *
 * tile: a register-blocked outer-product GEMM.  Eight rows of A (each reached
 * through its own pointer, so candidate rows are read where they lie in the
 * catalog tables) times a chunk of 48 columns of B: 24 accumulators, three
 * loads of B and eight broadcasts of A per step of the inner dimension, 24
 * FMAs.  That keeps both FMA ports busy without spilling (32 zmm registers).
 *
 * logits: the same loop; its epilogue scales, biases, stores and keeps the
 * row maxima while the product is still in registers.
 *
 * softmax: 16 logits per vector, one pass; exp by vscalefps, masked to an
 * exact 0 below the normal range (padding is -inf).
 */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx2,fma")

#include "attn/kern.h"

#include <immintrin.h>
#include <math.h>

#include "attn/vexp.h"

#define S_ROWS 8

/* What a block does with its product once the inner loop is done: store it
 * (tile), or turn it into logits and keep the row maxima (logits). */
typedef struct s_epi {
    const float *bias;   /* NULL: plain tile */
    __m512 scale;
    float *raw;          /* also store the plain product here, or NULL */
    __m512 *mx;          /* S_ROWS running maxima */
} s_epi;

/* Eight rows of A times columns [0, 16 W) of B.  W is a compile-time
 * constant at each call site, and so is whether ep->bias is NULL, so the
 * accumulators stay in registers and the unused epilogue disappears. */
static inline __attribute__((always_inline)) void
s_block(const float *const *p, int K, const float *b, size_t ldb, float *c, size_t ldc,
        const int W, const s_epi *ep, size_t j0)
{
    __m512 acc[S_ROWS][3];
#pragma GCC unroll 8
    for (int r = 0; r < S_ROWS; r++)
#pragma GCC unroll 3
        for (int w = 0; w < 3; w++)
            acc[r][w] = _mm512_setzero_ps();
    for (int t = 0; t < K; t++) {
        const float *bt = b + (size_t)t * ldb;
        __m512 b0 = _mm512_loadu_ps(bt);
        __m512 b1 = W > 1 ? _mm512_loadu_ps(bt + 16) : b0;
        __m512 b2 = W > 2 ? _mm512_loadu_ps(bt + 32) : b0;
#pragma GCC unroll 8
        for (int r = 0; r < S_ROWS; r++) {
            __m512 x = _mm512_set1_ps(p[r][t]);
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
            if (W > 1)
                acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            if (W > 2)
                acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
        }
    }
    if (!ep) {
#pragma GCC unroll 8
        for (int r = 0; r < S_ROWS; r++)
#pragma GCC unroll 3
            for (int w = 0; w < W; w++)
                _mm512_storeu_ps(c + (size_t)r * ldc + 16 * w, acc[r][w]);
        return;
    }
#pragma GCC unroll 8
    for (int r = 0; r < S_ROWS; r++) {
        __m512 mx = ep->mx[r];
#pragma GCC unroll 3
        for (int w = 0; w < W; w++) {
            if (ep->raw)
                _mm512_storeu_ps(ep->raw + (size_t)r * ldc + j0 + 16 * w, acc[r][w]);
            __m512 z = _mm512_fmadd_ps(acc[r][w], ep->scale, _mm512_loadu_ps(ep->bias + j0 + 16 * w));
            _mm512_storeu_ps(c + (size_t)r * ldc + 16 * w, z);
            mx = _mm512_max_ps(mx, z);
        }
        ep->mx[r] = mx;
    }
}

/* Columns [0, ncols) in chunks of 48, then a 32 or 16 wide rest. */
static inline __attribute__((always_inline)) void
s_cols(const float *const *p, int K, const float *b, size_t ldb, int ncols, float *c,
       size_t ldc, const s_epi *ep)
{
    int j = 0;
    for (; j + 48 <= ncols; j += 48)
        s_block(p, K, b + j, ldb, c + j, ldc, 3, ep, (size_t)j);
    if (ncols - j == 32)
        s_block(p, K, b + j, ldb, c + j, ldc, 2, ep, (size_t)j);
    else if (ncols - j == 16)
        s_block(p, K, b + j, ldb, c + j, ldc, 1, ep, (size_t)j);
}

static void s_tile(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                   int ncols, float *c, size_t ldc)
{
    const float *p[S_ROWS];
    for (int r = 0; r < S_ROWS; r++)
        p[r] = a[r] + aoff;
    s_cols(p, K, b, ldb, ncols, c, ldc, NULL);
}

static void s_logits(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                     int ncols, float scale, const float *bias, float *z, float *raw,
                     size_t ldz, float *rowmax)
{
    const float *p[S_ROWS];
    __m512 mx[S_ROWS];
    for (int r = 0; r < S_ROWS; r++) {
        p[r] = a[r] + aoff;
        mx[r] = _mm512_set1_ps(-INFINITY);
    }
    s_epi ep = {.bias = bias, .scale = _mm512_set1_ps(scale), .raw = raw, .mx = mx};
    s_cols(p, K, b, ldb, ncols, z, ldz, &ep);
    for (int r = 0; r < S_ROWS; r++)
        rowmax[r] = _mm512_reduce_max_ps(mx[r]);
}

/* exp(x) for x <= 0 (or -inf); see vexp.h.  Below ATTN_VEXP_MIN the result
 * is an exact 0, never a subnormal: subnormal results cost a microcode
 * assist of a hundred cycles or more, and padding (-inf) would pay it for
 * every lane.  NaN propagates (NLT_UQ keeps it, max returns its second
 * operand when one is NaN): that is how a NaN or +inf logit reaches the
 * score and makes the request fail with ATTN_ERANGE. */
static inline __m512 s_exp(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(ATTN_VEXP_MIN);
    __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ);
    x = _mm512_max_ps(lo, x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(ATTN_VEXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(ATTN_VEXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(ATTN_VEXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(ATTN_VEXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN_VEXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN_VEXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN_VEXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN_VEXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(keep, p, n);
}

/* Eight 16-lane vectors to their eight sums, as one 8-lane vector. */
static inline __m256 s_hsum8(const __m512 v[S_ROWS])
{
    __m256 h[S_ROWS];
    for (int r = 0; r < S_ROWS; r++)
        h[r] = _mm256_add_ps(_mm512_castps512_ps256(v[r]),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[r]), 1)));
    /* hadd pairs lanes within 128-bit halves; two rounds leave, in each half,
     * partial sums of four rows; adding the halves finishes them. */
    __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
    __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(h[4], h[5]), _mm256_hadd_ps(h[6], h[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

/* All eight rows advance together: eight independent exp chains keep the
 * FMA ports busy where one row at a time would wait on latency, and the
 * eight sums and dots are reduced and divided as vectors. */
static void s_softmax_dot(const float *z, const float *s, size_t ld, int ncols,
                          const float *rowmax, float *acc)
{
    __m512 vm[S_ROWS], sum[S_ROWS], dot[S_ROWS];
    for (int r = 0; r < S_ROWS; r++) {
        vm[r] = _mm512_set1_ps(rowmax[r]);
        sum[r] = dot[r] = _mm512_setzero_ps();
    }
    for (int j = 0; j < ncols; j += 16) {
#pragma GCC unroll 8
        for (int r = 0; r < S_ROWS; r++) {
            __m512 e = s_exp(_mm512_sub_ps(_mm512_loadu_ps(z + (size_t)r * ld + j), vm[r]));
            sum[r] = _mm512_add_ps(sum[r], e);
            dot[r] = _mm512_fmadd_ps(e, _mm512_loadu_ps(s + (size_t)r * ld + j), dot[r]);
        }
    }
    __m256 res = _mm256_div_ps(s_hsum8(dot), s_hsum8(sum));
    _mm256_storeu_ps(acc, _mm256_add_ps(_mm256_loadu_ps(acc), res));
}

static void s_softmax_acc(float *z, size_t ld, int ncols, const float *rowmax, float wscale,
                          float *w, size_t ldw)
{
    for (int r = 0; r < S_ROWS; r++) {
        float *zr = z + (size_t)r * ld, *wr = w + (size_t)r * ldw;
        const __m512 vm = _mm512_set1_ps(rowmax[r]);
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < ncols; j += 16) {
            __m512 e = s_exp(_mm512_sub_ps(_mm512_loadu_ps(zr + j), vm));
            _mm512_storeu_ps(zr + j, e);
            sum = _mm512_add_ps(sum, e);
        }
        const __m512 f = _mm512_set1_ps(wscale / _mm512_reduce_add_ps(sum));
        for (int j = 0; j < ncols; j += 16)
            _mm512_storeu_ps(wr + j, _mm512_fmadd_ps(_mm512_loadu_ps(zr + j), f,
                                                     _mm512_loadu_ps(wr + j)));
    }
}

const attn_kern attn_kern_avx512 = {
    .name = "avx512",
    .rows = S_ROWS,
    .tile = s_tile,
    .logits = s_logits,
    .softmax_dot = s_softmax_dot,
    .softmax_acc = s_softmax_acc,
};

#endif
