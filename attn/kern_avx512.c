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
 * softmax: 16 logits per vector, one pass, in base 2 (vexp.h); 2^n by
 * vscalefps, masked to an exact 0 below the normal range (padding is -inf).
 *
 * av_dot: eight rows of weights times the history's value rows (read in
 * place, one pointer per event), 48 columns at a time, then dotted with g.
 */
#if defined(__x86_64__)
#pragma GCC target("avx512f,avx2,fma")

#include "attn/kern.h"

#include <immintrin.h>
#include <math.h>

#include "attn/bf16.h"
#include "attn/kern_avx512.h"
#include "attn/vexp.h"

/* One step of the inner dimension: three loads of B, eight broadcasts of A,
 * 8 W multiply-adds. */
#define S_STEP(t)                                                             \
    do {                                                                      \
        const float *bt = b + (size_t)(t) * ldb;                              \
        __m512 b0 = _mm512_loadu_ps(bt);                                      \
        __m512 b1 = W > 1 ? _mm512_loadu_ps(bt + 16) : b0;                    \
        __m512 b2 = W > 2 ? _mm512_loadu_ps(bt + 32) : b0;                    \
        _Pragma("GCC unroll 8")                                               \
        for (int r = 0; r < S_ROWS; r++) {                                    \
            __m512 x = _mm512_set1_ps(p[r][t]);                               \
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);                    \
            if (W > 1)                                                        \
                acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);                \
            if (W > 2)                                                        \
                acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);                \
        }                                                                     \
    } while (0)

/* Eight rows of A times columns [0, 16 W) of B.  W is a compile-time
 * constant at each call site, and so is whether ep->bias is NULL, so the
 * accumulators stay in registers and the unused epilogue disappears. */
static inline __attribute__((always_inline)) void
s_block(const float *const *p, int K, const float *b, size_t ldb, float *c, size_t ldc,
        const int W, const s_epi *ep, size_t j0)
{
    __m512 acc[S_ROWS][3];
    s_zero_acc(acc);
    for (int t = 0; t < K; t++)
        S_STEP(t);
    s_finish(acc, c, ldc, W, ep, j0);
}

#undef S_STEP

/* The sums of four 16-lane vectors, as one 4-lane vector. */
static inline __m128 s_hsum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
#define S_HALF(v) _mm256_add_ps(_mm512_castps512_ps256(v), \
                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
    /* Two rounds of hadd leave, in each 128-bit half, partial sums of the
     * four rows in order; adding the halves finishes them. */
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(S_HALF(a), S_HALF(b)),
                              _mm256_hadd_ps(S_HALF(c), S_HALF(d)));
#undef S_HALF
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* The last vector of 16 columns, when it holds at most this many real ones
 * (kern.h: attn_kern_bcols) and K >= S_TAIL_MIN_K, is computed as dot
 * products from B's columns as rows rather than as a block one vector wide:
 * per row, K/16 loads and multiply-adds per column and one reduction,
 * against the block's K broadcasts and 8 K multiply-adds for 16 columns,
 * real or not.  Measured (bench/ab_score.py, docs/PERFORMANCE.md): P2 and
 * P3 (K = 32, 48; 4 and 2 real columns) 6% faster; at K = 16 (P1) no
 * faster than the block. */
#define S_TAIL_MAX 8
#define S_TAIL_MIN_K 32

/* Lane j < G: the sum of d[j], for G = 2, 4 or 8; zero in the lanes keep
 * leaves out (padding) and from G on. */
static inline __attribute__((always_inline)) __m512
s_tail_sums(const __m512 *d, const int G, __mmask16 keep)
{
    const __m512 zero = _mm512_setzero_ps();
    __m128 lo = s_hsum4(d[0], d[1], G > 2 ? d[2] : zero, G > 2 ? d[3] : zero);
    __m256 u = G > 4 ? _mm256_set_m128(s_hsum4(d[4], d[5], d[6], d[7]), lo)
                     : _mm256_zextps128_ps256(lo);
    return _mm512_maskz_mov_ps(keep, _mm512_zextps256_ps512(u));
}

/* Row p's dot products with columns col[0..G), each K floats, as lanes
 * [0, G) of a vector (s_tail_sums). */
static inline __attribute__((always_inline)) __m512
s_tail_row(const float *p, int K, const float *const *col, const int G, __mmask16 keep)
{
    __m512 d[S_TAIL_MAX];
#pragma GCC unroll 8
    for (int j = 0; j < S_TAIL_MAX; j++)
        d[j] = _mm512_setzero_ps();
    int t = 0;
    for (; t + 16 <= K; t += 16) {
        const __m512 x = _mm512_loadu_ps(p + t);
#pragma GCC unroll 8
        for (int j = 0; j < G; j++)
            d[j] = _mm512_fmadd_ps(x, _mm512_loadu_ps(col[j] + t), d[j]);
    }
    if (t < K) {
        const __mmask16 m = (__mmask16)((1u << (K - t)) - 1u);
        const __m512 x = _mm512_maskz_loadu_ps(m, p + t);
#pragma GCC unroll 8
        for (int j = 0; j < G; j++)
            d[j] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, col[j] + t), d[j]);
    }
    return s_tail_sums(d, G, keep);
}

/* The last vector of columns, j0 + [0, 16), whose n real ones (1 to G) are
 * dot products with B's columns as rows; the padding's product is 0.  The
 * same epilogue as a block's. */
static inline __attribute__((always_inline)) void
s_tail_g(const float *const *p, int K, const attn_kern_bcols *bc, int j0, int n, float *c,
         size_t ldc, const s_epi *ep, const int G)
{
    const float *col[S_TAIL_MAX];
#pragma GCC unroll 8
    for (int j = 0; j < G; j++)   /* repeats past n: finite, then masked */
        col[j] = bc->row[j0 + (j < n ? j : n - 1)] + bc->off;
    const __mmask16 keep = (__mmask16)((1u << n) - 1u);
    __m512 acc[S_ROWS][3];
#pragma GCC unroll 8
    for (int r = 0; r < S_ROWS; r++)
        acc[r][0] = s_tail_row(p[r], K, col, G, keep);
    s_finish(acc, c, ldc, 1, ep, (size_t)j0);
}

static void s_tail(const float *const *p, int K, const attn_kern_bcols *bc, int j0, float *c,
                   size_t ldc, const s_epi *ep)
{
    const int n = bc->n - j0;
    if (n <= 2)
        s_tail_g(p, K, bc, j0, n, c, ldc, ep, 2);
    else if (n <= 4)
        s_tail_g(p, K, bc, j0, n, c, ldc, ep, 4);
    else
        s_tail_g(p, K, bc, j0, n, c, ldc, ep, 8);
}

/* Columns [0, ncols) in chunks of 48, then a 32 or 16 wide rest (a few real
 * columns of the 16 as dot products, given bc). */
static inline __attribute__((always_inline)) void
s_cols(const float *const *p, int K, const float *b, size_t ldb, int ncols, float *c,
       size_t ldc, const s_epi *ep, const attn_kern_bcols *bc)
{
    int j = 0;
    for (; j + 48 <= ncols; j += 48)
        s_block(p, K, b + j, ldb, c + j, ldc, 3, ep, (size_t)j);
    if (ncols - j == 32)
        s_block(p, K, b + j, ldb, c + j, ldc, 2, ep, (size_t)j);
    else if (ncols - j == 16) {
        const int real = bc ? bc->n - j : 0;
        if (K >= S_TAIL_MIN_K && real > 0 && real <= S_TAIL_MAX)
            s_tail(p, K, bc, j, c + j, ldc, ep);
        else
            s_block(p, K, b + j, ldb, c + j, ldc, 1, ep, (size_t)j);
    }
}

static void s_tile(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                   int ncols, float *c, size_t ldc)
{
    const float *p[S_ROWS];
    for (int r = 0; r < S_ROWS; r++)
        p[r] = a[r] + aoff;
    s_cols(p, K, b, ldb, ncols, c, ldc, NULL, NULL);
}

static void s_logits(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                     int ncols, float scale, const float *bias, float *z, float *raw,
                     size_t ldz, float *rowmax, const attn_kern_bcols *bc)
{
    const float *p[S_ROWS];
    __m512 mx[S_ROWS];
    for (int r = 0; r < S_ROWS; r++) {
        p[r] = a[r] + aoff;
        mx[r] = _mm512_set1_ps(-INFINITY);
    }
    s_epi ep = {.bias = bias, .scale = _mm512_set1_ps(scale), .raw = raw, .mx = mx};
    s_cols(p, K, b, ldb, ncols, z, ldz, &ep, bc);
    for (int r = 0; r < S_ROWS; r++)
        rowmax[r] = _mm512_reduce_max_ps(mx[r]);
}

/* 2^y for y <= 0 (or -inf); see vexp.h.  Below ATTN_VEXP_MIN the result is
 * an exact 0, never a subnormal (which would cost a microcode assist, and
 * the -inf of padding would pay it on every lane).  scalef needs no clamp:
 * whatever n and f hold in the dropped lanes, the mask zeroes them.  NaN
 * propagates (NLT_UQ keeps it): that is how a NaN or +inf logit reaches the
 * score and makes the request fail with ATTN_ERANGE.
 *
 * n = round(y) by adding and subtracting 1.5 * 2^23, which leaves y rounded
 * to an integer (to nearest, even on ties, as roundscale would) for any
 * |y| < 2^22; the lanes outside that are the dropped ones.  Two adds that
 * either FMA port takes rather than roundscale's two micro-ops on one port:
 * 7.3 instead of 8.0 cycles per vector of exponentials (measured). */
static inline __m512 s_exp2(__m512 y)
{
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __mmask16 keep = _mm512_cmp_ps_mask(y, _mm512_set1_ps(ATTN_VEXP_MIN), _CMP_NLT_UQ);
    __m512 n = _mm512_sub_ps(_mm512_add_ps(y, magic), magic);
    __m512 f = _mm512_sub_ps(y, n);
    __m512 p = _mm512_set1_ps(ATTN_VEXP_C6);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(ATTN_VEXP_C5));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(ATTN_VEXP_C4));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(ATTN_VEXP_C3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(ATTN_VEXP_C2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(ATTN_VEXP_C1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(keep, p, n);
}

/* Four rows advance together: four independent exp chains keep the FMA
 * ports busy where one row at a time would wait on latency, and the sums and
 * dots are reduced and divided as vectors.  Four, not eight, so that the
 * twelve accumulators and the exp's constants fit the 32 registers. */
static inline __attribute__((always_inline)) void
s_softmax_dot4(const float *z, const float *s, size_t ld, int ncols, const float *rowmax,
               float *acc)
{
    const __m512 m0 = _mm512_set1_ps(rowmax[0]), m1 = _mm512_set1_ps(rowmax[1]);
    const __m512 m2 = _mm512_set1_ps(rowmax[2]), m3 = _mm512_set1_ps(rowmax[3]);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m512 d0 = s0, d1 = s0, d2 = s0, d3 = s0;
    const float *z1 = z + ld, *z2 = z + 2 * ld, *z3 = z + 3 * ld;
    const float *t1 = s + ld, *t2 = s + 2 * ld, *t3 = s + 3 * ld;
    for (int j = 0; j < ncols; j += 16) {
        __m512 e0 = s_exp2(_mm512_sub_ps(_mm512_loadu_ps(z + j), m0));
        __m512 e1 = s_exp2(_mm512_sub_ps(_mm512_loadu_ps(z1 + j), m1));
        __m512 e2 = s_exp2(_mm512_sub_ps(_mm512_loadu_ps(z2 + j), m2));
        __m512 e3 = s_exp2(_mm512_sub_ps(_mm512_loadu_ps(z3 + j), m3));
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
        s2 = _mm512_add_ps(s2, e2);
        s3 = _mm512_add_ps(s3, e3);
        d0 = _mm512_fmadd_ps(e0, _mm512_loadu_ps(s + j), d0);
        d1 = _mm512_fmadd_ps(e1, _mm512_loadu_ps(t1 + j), d1);
        d2 = _mm512_fmadd_ps(e2, _mm512_loadu_ps(t2 + j), d2);
        d3 = _mm512_fmadd_ps(e3, _mm512_loadu_ps(t3 + j), d3);
    }
    __m128 res = _mm_div_ps(s_hsum4(d0, d1, d2, d3), s_hsum4(s0, s1, s2, s3));
    _mm_storeu_ps(acc, _mm_add_ps(_mm_loadu_ps(acc), res));
}

static void s_softmax_dot(const float *z, const float *s, size_t ld, int ncols,
                          const float *rowmax, float *acc)
{
    s_softmax_dot4(z, s, ld, ncols, rowmax, acc);
    s_softmax_dot4(z + 4 * ld, s + 4 * ld, ld, ncols, rowmax + 4, acc + 4);
}

/* 2^(z - max) in place and the sums, four rows at a time (independent exp
 * chains, as in s_softmax_dot4). */
static inline __attribute__((always_inline)) void
s_softmax_exp4(float *z, size_t ld, int ncols, const float *rowmax, float *sum)
{
    const __m512 m0 = _mm512_set1_ps(rowmax[0]), m1 = _mm512_set1_ps(rowmax[1]);
    const __m512 m2 = _mm512_set1_ps(rowmax[2]), m3 = _mm512_set1_ps(rowmax[3]);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    float *z1 = z + ld, *z2 = z + 2 * ld, *z3 = z + 3 * ld;
    for (int j = 0; j < ncols; j += 16) {
        __m512 e0 = s_exp2(_mm512_sub_ps(_mm512_loadu_ps(z + j), m0));
        __m512 e1 = s_exp2(_mm512_sub_ps(_mm512_loadu_ps(z1 + j), m1));
        __m512 e2 = s_exp2(_mm512_sub_ps(_mm512_loadu_ps(z2 + j), m2));
        __m512 e3 = s_exp2(_mm512_sub_ps(_mm512_loadu_ps(z3 + j), m3));
        _mm512_storeu_ps(z + j, e0);
        _mm512_storeu_ps(z1 + j, e1);
        _mm512_storeu_ps(z2 + j, e2);
        _mm512_storeu_ps(z3 + j, e3);
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
        s2 = _mm512_add_ps(s2, e2);
        s3 = _mm512_add_ps(s3, e3);
    }
    _mm_storeu_ps(sum, s_hsum4(s0, s1, s2, s3));
}

static void s_softmax_exp(float *z, size_t ld, int ncols, const float *rowmax, float *sum)
{
    s_softmax_exp4(z, ld, ncols, rowmax, sum);
    s_softmax_exp4(z + 4 * ld, ld, ncols, rowmax + 4, sum + 4);
}

/* Up to three vectors from p: masked (mk, the last partial chunk) or not;
 * unused ones repeat the first. */
static inline __attribute__((always_inline)) void
s_load3(const float *p, const int W, const __mmask16 *mk, __m512 *x0, __m512 *x1, __m512 *x2)
{
    if (mk) {
        *x0 = _mm512_maskz_loadu_ps(mk[0], p);
        *x1 = W > 1 ? _mm512_maskz_loadu_ps(mk[1], p + 16) : *x0;
        *x2 = W > 2 ? _mm512_maskz_loadu_ps(mk[2], p + 32) : *x0;
    } else {
        *x0 = _mm512_loadu_ps(p);
        *x1 = W > 1 ? _mm512_loadu_ps(p + 16) : *x0;
        *x2 = W > 2 ? _mm512_loadu_ps(p + 32) : *x0;
    }
}

/* Columns [j0, j0 + 16 W) of the weighted value sum for eight rows, dotted
 * with g into part[].  The same register blocking as s_block with the roles
 * turned: the values are the B rows, one pointer per history event, and the
 * eight rows' weights are the broadcasts.  Masked loads only in the last,
 * partial chunk (mk == NULL: a whole one): keeping masks live through the
 * loop costs a third of its speed (measured, P3: 870 against 620 cycles). */
static inline __attribute__((always_inline)) void
s_av_block(const float *e, size_t lde, int L, const float *const *vrow, size_t voff,
           const float *const *g, size_t j0, const int W, const __mmask16 *mk,
           __m512 part[S_ROWS])
{
    __m512 acc[S_ROWS][3];
    const float *er[S_ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < S_ROWS; r++) {
        er[r] = e + (size_t)r * lde;
#pragma GCC unroll 3
        for (int w = 0; w < 3; w++)
            acc[r][w] = _mm512_setzero_ps();
    }
    for (int t = 0; t < L; t++) {
        const float *vt = vrow[t] + voff + j0;
        __m512 b0, b1, b2;
        s_load3(vt, W, mk, &b0, &b1, &b2);
#pragma GCC unroll 8
        for (int r = 0; r < S_ROWS; r++) {
            __m512 x = _mm512_set1_ps(er[r][t]);
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
            if (W > 1)
                acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            if (W > 2)
                acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < S_ROWS; r++) {
        const float *gr = g[r] + j0;
        __m512 g0, g1, g2;
        s_load3(gr, W, mk, &g0, &g1, &g2);
        __m512 d = _mm512_fmadd_ps(acc[r][0], g0, part[r]);
        if (W > 1)
            d = _mm512_fmadd_ps(acc[r][1], g1, d);
        if (W > 2)
            d = _mm512_fmadd_ps(acc[r][2], g2, d);
        part[r] = d;
    }
}

static void s_av_dot(const float *e, size_t lde, int L, const float *const *vrow, size_t voff,
                     int n, const float *const *grow, size_t goff, const float *sum, float *acc)
{
    const float *g[S_ROWS];
    __m512 part[S_ROWS];
    for (int r = 0; r < S_ROWS; r++) {
        g[r] = grow[r] + goff;
        part[r] = _mm512_setzero_ps();
    }
    int j0 = 0;
    for (; j0 + 48 <= n; j0 += 48)
        s_av_block(e, lde, L, vrow, voff, g, (size_t)j0, 3, NULL, part);
    int rest = n - j0;
    if (rest == 32) {
        s_av_block(e, lde, L, vrow, voff, g, (size_t)j0, 2, NULL, part);
    } else if (rest == 16) {
        s_av_block(e, lde, L, vrow, voff, g, (size_t)j0, 1, NULL, part);
    } else if (rest > 0) {
        __mmask16 mk[3];
        for (int w = 0; w < 3; w++) {
            int c = rest - 16 * w;
            mk[w] = c >= 16 ? (__mmask16)0xFFFF : c > 0 ? (__mmask16)((1u << c) - 1u) : 0;
        }
        if (rest > 32)
            s_av_block(e, lde, L, vrow, voff, g, (size_t)j0, 3, mk, part);
        else if (rest > 16)
            s_av_block(e, lde, L, vrow, voff, g, (size_t)j0, 2, mk, part);
        else
            s_av_block(e, lde, L, vrow, voff, g, (size_t)j0, 1, mk, part);
    }
    __m128 d0 = s_hsum4(part[0], part[1], part[2], part[3]);
    __m128 d1 = s_hsum4(part[4], part[5], part[6], part[7]);
    _mm_storeu_ps(acc, _mm_add_ps(_mm_loadu_ps(acc), _mm_div_ps(d0, _mm_loadu_ps(sum))));
    _mm_storeu_ps(acc + 4, _mm_add_ps(_mm_loadu_ps(acc + 4), _mm_div_ps(d1, _mm_loadu_ps(sum + 4))));
}

static void s_softmax_acc(float *z, size_t ld, int ncols, const float *rowmax, float wscale,
                          float *w, size_t ldw)
{
    for (int r = 0; r < S_ROWS; r++) {
        float *zr = z + (size_t)r * ld, *wr = w + (size_t)r * ldw;
        const __m512 vm = _mm512_set1_ps(rowmax[r]);
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < ncols; j += 16) {
            __m512 e = s_exp2(_mm512_sub_ps(_mm512_loadu_ps(zr + j), vm));
            _mm512_storeu_ps(zr + j, e);
            sum = _mm512_add_ps(sum, e);
        }
        const __m512 f = _mm512_set1_ps(wscale / _mm512_reduce_add_ps(sum));
        for (int j = 0; j < ncols; j += 16)
            _mm512_storeu_ps(wr + j, _mm512_fmadd_ps(_mm512_loadu_ps(zr + j), f,
                                                     _mm512_loadu_ps(wr + j)));
    }
}

/* Transpose the 16 x 16 block r in place: 16 unpacks of floats, 16 of pairs,
 * then 32 shuffles of 128-bit lanes (after the first two stages, lane k of
 * u[4g + c] holds column 4k + c of rows 4g..4g+3).  Fully unrolled so that
 * all 16 rows stay in registers (a loop here spills them to the stack). */
static inline __attribute__((always_inline)) void s_transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 x01 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 y01 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 x23 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
        __m512 y23 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
        r[c] = _mm512_shuffle_f32x4(x01, y01, _MM_SHUFFLE(2, 0, 2, 0));
        r[4 + c] = _mm512_shuffle_f32x4(x01, y01, _MM_SHUFFLE(3, 1, 3, 1));
        r[8 + c] = _mm512_shuffle_f32x4(x23, y23, _MM_SHUFFLE(2, 0, 2, 0));
        r[12 + c] = _mm512_shuffle_f32x4(x23, y23, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* 16 history rows by 16 coordinates at a time.  Rows past L are read as
 * row L-1 again (the caller pads the pointers with repeats): the padding
 * columns then hold finite values, which is all they need, since their
 * bias is -inf and their weight exactly 0 (kern.h).  Coordinates past m
 * are masked off on load and their output rows are not stored. */
static void s_pack(const float *const *row, size_t off, int L, int m, size_t lp, float *out)
{
    (void)L;
    for (size_t j0 = 0; j0 < lp; j0 += 16) {
        const float *p[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            p[i] = row[j0 + i] + off;
        for (int t0 = 0; t0 < m; t0 += 16) {
            int nt = m - t0 < 16 ? m - t0 : 16;
            __mmask16 mt = (__mmask16)((1u << nt) - 1u);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = _mm512_maskz_loadu_ps(mt, p[i] + t0);
            s_transpose16(r);
            float *o = out + (size_t)t0 * lp + j0;
            if (nt == 16) {
#pragma GCC unroll 16
                for (int x = 0; x < 16; x++)
                    _mm512_storeu_ps(o + (size_t)x * lp, r[x]);
            } else {
                for (int x = 0; x < nt; x++)
                    _mm512_storeu_ps(o + (size_t)x * lp, r[x]);
            }
        }
    }
}

/* Self-attention block: 16 columns a vector, the tail masked. */
static void s_dots(const float *q, const float *const *row, size_t off, int n, int cnt,
                   float *z)
{
    for (int i = 0; i < cnt; i++) {
        const float *r = row[i] + off;
        __m512 acc = _mm512_setzero_ps();
        int c = 0;
        for (; c + 16 <= n; c += 16)
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), _mm512_loadu_ps(r + c), acc);
        if (c < n) {
            __mmask16 k = (__mmask16)((1u << (n - c)) - 1);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, q + c), _mm512_maskz_loadu_ps(k, r + c),
                                  acc);
        }
        z[i] = _mm512_reduce_add_ps(acc);
    }
}

static void s_axpys(float *out, const float *const *row, size_t off, int n, int cnt,
                    const float *w)
{
    for (int c = 0; c < n; c += 16) {
        __mmask16 k = n - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - c)) - 1);
        __m512 acc = _mm512_maskz_loadu_ps(k, out + c);
        for (int i = 0; i < cnt; i++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(w[i]), _mm512_maskz_loadu_ps(k, row[i] + off + c),
                                  acc);
        _mm512_mask_storeu_ps(out + c, k, acc);
    }
}

/* bfloat16 is the top half of a float: widening is a shift.  Two vectors
 * per step: a request widens every row it reads (score.c), so this loop is
 * on the hot path of bf16 tables. */
static void s_widen(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        __m512i b = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i + 16)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(a, 16)));
        _mm512_storeu_ps(dst + i + 16, _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)));
    }
    for (; i + 16 <= n; i += 16) {
        __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(a, 16)));
    }
    for (; i < n; i++)
        dst[i] = attn_bf16_to_f32(src[i]);
}

/* Round to nearest even on the bits (bf16.h), NaN kept.  Integer
 * arithmetic, so it needs only AVX-512F (vcvtneps2bf16 would need
 * AVX512-BF16, and this runs once per table build, not per request). */
static void s_narrow(const float *src, uint16_t *dst, size_t n)
{
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7FFF);
    const __m512i quiet = _mm512_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(src + i);
        __m512i b = _mm512_castps_si512(x), hi = _mm512_srli_epi32(b, 16);
        __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(b, _mm512_add_epi32(_mm512_and_si512(hi, one), half)), 16);
        __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, quiet));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; i++)
        dst[i] = attn_bf16_from_f32(src[i]);
}

const attn_kern attn_kern_avx512 = {
    .name = "avx512",
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
