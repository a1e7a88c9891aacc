/* kern_avx2.c -- the kernel set for AVX2 + FMA CPUs (Haswell and later).
 *
 * Compiled for AVX2/FMA whatever the build's -march; kern.c only calls into
 * it after checking the CPU.
 *
 * tile: six rows of A times 16 columns of B (two ymm): 12 accumulators, two
 * loads of B and six broadcasts per step, 12 FMAs; 15 of the 16 ymm registers.
 *
 * logits: the same loop; its epilogue scales, biases, stores and keeps the
 * row maxima while the product is still in registers.
 *
 * softmax: 8 logits per vector, one pass, in base 2 (vexp.h); 2^n is built
 * in the exponent bits, which is why it flushes to 0 below ATTN_VEXP_MIN.
 */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")

#include "attn/kern.h"

#include <immintrin.h>
#include <math.h>

#include "attn/vexp.h"

#define S_ROWS 6

/* Six rows of A times columns [j, j + 16) of B into acc. */
static inline __attribute__((always_inline)) void
s_block(const float *const *p, int K, const float *b, size_t ldb, __m256 acc[S_ROWS][2])
{
#pragma GCC unroll 6
    for (int r = 0; r < S_ROWS; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int t = 0; t < K; t++) {
        const float *bt = b + (size_t)t * ldb;
        __m256 b0 = _mm256_loadu_ps(bt), b1 = _mm256_loadu_ps(bt + 8);
#pragma GCC unroll 6
        for (int r = 0; r < S_ROWS; r++) {
            __m256 x = _mm256_broadcast_ss(p[r] + t);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
    }
}

static void s_tile(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                   int ncols, float *c, size_t ldc)
{
    const float *p[S_ROWS];
    for (int r = 0; r < S_ROWS; r++)
        p[r] = a[r] + aoff;
    for (int j = 0; j < ncols; j += 16) {
        __m256 acc[S_ROWS][2];
        s_block(p, K, b + j, ldb, acc);
#pragma GCC unroll 6
        for (int r = 0; r < S_ROWS; r++) {
            _mm256_storeu_ps(c + (size_t)r * ldc + j, acc[r][0]);
            _mm256_storeu_ps(c + (size_t)r * ldc + j + 8, acc[r][1]);
        }
    }
}

static inline float s_hmax(__m256 v)
{
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

static inline float s_hsum(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

static void s_logits(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                     int ncols, float scale, const float *bias, float *z, float *raw,
                     size_t ldz, float *rowmax)
{
    const float *p[S_ROWS];
    __m256 mx[S_ROWS];
    const __m256 vs = _mm256_set1_ps(scale);
    for (int r = 0; r < S_ROWS; r++) {
        p[r] = a[r] + aoff;
        mx[r] = _mm256_set1_ps(-INFINITY);
    }
    for (int j = 0; j < ncols; j += 16) {
        __m256 acc[S_ROWS][2];
        s_block(p, K, b + j, ldb, acc);
        const __m256 b0 = _mm256_loadu_ps(bias + j), b1 = _mm256_loadu_ps(bias + j + 8);
#pragma GCC unroll 6
        for (int r = 0; r < S_ROWS; r++) {
            float *zr = z + (size_t)r * ldz + j;
            if (raw) {
                _mm256_storeu_ps(raw + (size_t)r * ldz + j, acc[r][0]);
                _mm256_storeu_ps(raw + (size_t)r * ldz + j + 8, acc[r][1]);
            }
            __m256 z0 = _mm256_fmadd_ps(acc[r][0], vs, b0);
            __m256 z1 = _mm256_fmadd_ps(acc[r][1], vs, b1);
            _mm256_storeu_ps(zr, z0);
            _mm256_storeu_ps(zr + 8, z1);
            mx[r] = _mm256_max_ps(mx[r], _mm256_max_ps(z0, z1));
        }
    }
    for (int r = 0; r < S_ROWS; r++)
        rowmax[r] = s_hmax(mx[r]);
}

/* 2^y for y <= 0 (or -inf); see vexp.h.  An exact 0 below the normal range
 * (a subnormal result would cost a microcode assist); the clamp keeps n
 * where (n + 127) << 23 is a valid exponent.  NaN propagates (NLT_UQ keeps
 * it, max returns its second operand when one is NaN), which is how a NaN or
 * +inf logit makes the score NaN and the request ATTN_ERANGE. */
static inline __m256 s_exp2(__m256 y)
{
    const __m256 lo = _mm256_set1_ps(ATTN_VEXP_MIN);
    __m256 keep = _mm256_cmp_ps(y, lo, _CMP_NLT_UQ);
    y = _mm256_max_ps(lo, y);
    __m256 n = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(y, n);
    __m256 p = _mm256_set1_ps(ATTN_VEXP_C6);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_VEXP_C5));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_VEXP_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_VEXP_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_VEXP_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_VEXP_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    /* n in [-125, 0]: (n + 127) << 23 is the bit pattern of a normal 2^n. */
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                      _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(bits)), keep);
}

/* Rows advance together for independent exp chains (see kern_avx512.c). */
static void s_softmax_dot(const float *z, const float *s, size_t ld, int ncols,
                          const float *rowmax, float *acc)
{
    __m256 vm[S_ROWS], sum[S_ROWS], dot[S_ROWS];
    for (int r = 0; r < S_ROWS; r++) {
        vm[r] = _mm256_set1_ps(rowmax[r]);
        sum[r] = dot[r] = _mm256_setzero_ps();
    }
    for (int j = 0; j < ncols; j += 8) {
#pragma GCC unroll 6
        for (int r = 0; r < S_ROWS; r++) {
            __m256 e = s_exp2(_mm256_sub_ps(_mm256_loadu_ps(z + (size_t)r * ld + j), vm[r]));
            sum[r] = _mm256_add_ps(sum[r], e);
            dot[r] = _mm256_fmadd_ps(e, _mm256_loadu_ps(s + (size_t)r * ld + j), dot[r]);
        }
    }
    for (int r = 0; r < S_ROWS; r++)
        acc[r] += s_hsum(dot[r]) / s_hsum(sum[r]);
}

static void s_softmax_acc(float *z, size_t ld, int ncols, const float *rowmax, float wscale,
                          float *w, size_t ldw)
{
    for (int r = 0; r < S_ROWS; r++) {
        float *zr = z + (size_t)r * ld, *wr = w + (size_t)r * ldw;
        const __m256 vm = _mm256_set1_ps(rowmax[r]);
        __m256 sum = _mm256_setzero_ps();
        for (int j = 0; j < ncols; j += 8) {
            __m256 e = s_exp2(_mm256_sub_ps(_mm256_loadu_ps(zr + j), vm));
            _mm256_storeu_ps(zr + j, e);
            sum = _mm256_add_ps(sum, e);
        }
        const __m256 f = _mm256_set1_ps(wscale / s_hsum(sum));
        for (int j = 0; j < ncols; j += 8)
            _mm256_storeu_ps(wr + j, _mm256_fmadd_ps(_mm256_loadu_ps(zr + j), f,
                                                     _mm256_loadu_ps(wr + j)));
    }
}

/* Transpose the 8 x 8 block r in place: unpacks, shuffles within 128-bit
 * halves, then an exchange of halves. */
static inline void s_transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 2; g++) {
        u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

/* 8 history rows by 8 coordinates at a time; rows past L read as zeros
 * (the padding columns), coordinates past m are masked off. */
static void s_pack(const float *const *row, size_t off, int L, int m, size_t lp, float *out)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int j0 = 0; j0 < (int)lp; j0 += 8) {
        int nr = L - j0 < 8 ? L - j0 : 8;
        for (int t0 = 0; t0 < m; t0 += 8) {
            int nt = m - t0 < 8 ? m - t0 : 8;
            __m256i mt = _mm256_cmpgt_epi32(_mm256_set1_epi32(nt), lane);
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = i < nr ? _mm256_maskload_ps(row[j0 + i] + off + t0, mt)
                              : _mm256_setzero_ps();
            s_transpose8(r);
            for (int x = 0; x < nt; x++)
                _mm256_storeu_ps(out + (size_t)(t0 + x) * lp + j0, r[x]);
        }
    }
}

const attn_kern attn_kern_avx2 = {
    .name = "avx2",
    .rows = S_ROWS,
    .tile = s_tile,
    .logits = s_logits,
    .softmax_dot = s_softmax_dot,
    .softmax_acc = s_softmax_acc,
    .pack = s_pack,
};

#endif
