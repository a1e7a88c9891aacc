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
 *
 * av_dot: six rows of weights times the value rows, 16 columns at a time.
 */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma")

#include "attn/kern.h"

#include <immintrin.h>
#include <math.h>

#include "attn/bf16.h"
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
                     size_t ldz, float *rowmax, const attn_kern_bcols *bc)
{
    (void)bc;   /* B from b alone: the dot-product tail is an AVX-512 measure */
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

/* 2^(z - max) in place and the row sums; all six rows per step for
 * independent exp chains. */
static void s_softmax_exp(float *z, size_t ld, int ncols, const float *rowmax, float *sum)
{
    __m256 vm[S_ROWS], sm[S_ROWS];
    for (int r = 0; r < S_ROWS; r++) {
        vm[r] = _mm256_set1_ps(rowmax[r]);
        sm[r] = _mm256_setzero_ps();
    }
    for (int j = 0; j < ncols; j += 8) {
#pragma GCC unroll 6
        for (int r = 0; r < S_ROWS; r++) {
            float *zr = z + (size_t)r * ld + j;
            __m256 e = s_exp2(_mm256_sub_ps(_mm256_loadu_ps(zr), vm[r]));
            _mm256_storeu_ps(zr, e);
            sm[r] = _mm256_add_ps(sm[r], e);
        }
    }
    for (int r = 0; r < S_ROWS; r++)
        sum[r] = s_hsum(sm[r]);
}

/* Six rows of weights times the value rows, 16 columns at a time (masked to
 * n), dotted with g: the s_block pattern with the value rows as B. */
static void s_av_dot(const float *e, size_t lde, int L, const float *const *vrow, size_t voff,
                     int n, const float *const *grow, size_t goff, const float *sum, float *acc)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 part[S_ROWS];
    for (int r = 0; r < S_ROWS; r++)
        part[r] = _mm256_setzero_ps();
    for (int j0 = 0; j0 < n; j0 += 16) {
        const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - j0), lane);
        const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - j0 - 8), lane);
        __m256 a[S_ROWS][2];
#pragma GCC unroll 6
        for (int r = 0; r < S_ROWS; r++)
            a[r][0] = a[r][1] = _mm256_setzero_ps();
        for (int t = 0; t < L; t++) {
            const float *vt = vrow[t] + voff + j0;
            __m256 b0 = _mm256_maskload_ps(vt, m0), b1 = _mm256_maskload_ps(vt + 8, m1);
#pragma GCC unroll 6
            for (int r = 0; r < S_ROWS; r++) {
                __m256 x = _mm256_broadcast_ss(e + (size_t)r * lde + t);
                a[r][0] = _mm256_fmadd_ps(x, b0, a[r][0]);
                a[r][1] = _mm256_fmadd_ps(x, b1, a[r][1]);
            }
        }
#pragma GCC unroll 6
        for (int r = 0; r < S_ROWS; r++) {
            const float *gr = grow[r] + goff + j0;
            part[r] = _mm256_fmadd_ps(a[r][0], _mm256_maskload_ps(gr, m0), part[r]);
            part[r] = _mm256_fmadd_ps(a[r][1], _mm256_maskload_ps(gr + 8, m1), part[r]);
        }
    }
    for (int r = 0; r < S_ROWS; r++)
        acc[r] += s_hsum(part[r]) / sum[r];
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
 * halves, then an exchange of halves.  Unrolled so the rows stay in
 * registers. */
static inline __attribute__((always_inline)) void s_transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int g = 0; g < 2; g++) {
        u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

/* 8 history rows by 8 coordinates at a time; rows past L are read through
 * the caller's padded pointers (kern.h), coordinates past m are masked. */
static void s_pack(const float *const *row, size_t off, int L, int m, size_t lp, float *out)
{
    (void)L;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t j0 = 0; j0 < lp; j0 += 8) {
        const float *p[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            p[i] = row[j0 + i] + off;
        for (int t0 = 0; t0 < m; t0 += 8) {
            int nt = m - t0 < 8 ? m - t0 : 8;
            __m256i mt = _mm256_cmpgt_epi32(_mm256_set1_epi32(nt), lane);
            __m256 r[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                r[i] = _mm256_maskload_ps(p[i] + t0, mt);
            s_transpose8(r);
            float *o = out + (size_t)t0 * lp + j0;
            if (nt == 8) {
#pragma GCC unroll 8
                for (int x = 0; x < 8; x++)
                    _mm256_storeu_ps(o + (size_t)x * lp, r[x]);
            } else {
                for (int x = 0; x < nt; x++)
                    _mm256_storeu_ps(o + (size_t)x * lp, r[x]);
            }
        }
    }
}

/* Self-attention block: 8 columns a vector, the tail in scalar code. */
static void s_dots(const float *q, const float *const *row, size_t off, int n, int cnt,
                   float *z)
{
    for (int i = 0; i < cnt; i++) {
        const float *r = row[i] + off;
        __m256 acc = _mm256_setzero_ps();
        int c = 0;
        for (; c + 8 <= n; c += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_loadu_ps(r + c), acc);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        float s = _mm_cvtss_f32(h);
        for (; c < n; c++)
            s += q[c] * r[c];
        z[i] = s;
    }
}

static void s_axpys(float *out, const float *const *row, size_t off, int n, int cnt,
                    const float *w)
{
    int c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 acc = _mm256_loadu_ps(out + c);
        for (int i = 0; i < cnt; i++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(w[i]), _mm256_loadu_ps(row[i] + off + c), acc);
        _mm256_storeu_ps(out + c, acc);
    }
    for (; c < n; c++)
        for (int i = 0; i < cnt; i++)
            out[c] += w[i] * row[i][off + c];
}

/* bfloat16 is the top half of a float: widening is a shift. */
static void s_widen(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
    }
    for (; i < n; i++)
        dst[i] = attn_bf16_to_f32(src[i]);
}

/* Round to nearest even on the bits (bf16.h), NaN kept, sixteen at a time:
 * packus packs within 128-bit lanes, the permute puts them in order. */
static inline __m256i s_round16(__m256 x)
{
    const __m256i b = _mm256_castps_si256(x);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(b, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    __m256i nan = _mm256_or_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
}

static void s_narrow(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i lo = s_round16(_mm256_loadu_ps(src + i));
        __m256i hi = s_round16(_mm256_loadu_ps(src + i + 8));
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
        _mm256_storeu_si256((__m256i *)(dst + i), p);
    }
    for (; i < n; i++)
        dst[i] = attn_bf16_from_f32(src[i]);
}

const attn_kern attn_kern_avx2 = {
    .name = "avx2",
    .rows = S_ROWS,
    .tile = s_tile,
    .logits = s_logits,
    .softmax_exp = s_softmax_exp,
    .av_dot = s_av_dot,
    .softmax_dot = s_softmax_dot,
    .softmax_acc = s_softmax_acc,
    .pack = s_pack,
    .dots = s_dots,
    .axpys = s_axpys,
    .widen = s_widen,
    .narrow = s_narrow,
};

#endif
