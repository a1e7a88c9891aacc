/* train_kern_avx2.c -- the trainer's kernel set for AVX2 + FMA CPUs.
 *
 * Compiled for AVX2/FMA whatever the build's -march; attn_tr_kern_avx2()
 * hands it out only after checking the CPU.
 *
 * mm_nn / mm_tn: a 4-row x 16-column block of C lives in 8 ymm registers
 * while the shared dimension streams past (2 loads of B and 4 broadcasts of
 * A per 8 FMAs); column tails of 8 and then scalars.
 *
 * softmax: 8 candidates per vector, each lane its own softmax over the
 * window; the window's logits wait in `work` (aligned) between the passes.
 *
 * exp: exp(x) = 2^n exp(r), n = round(x log2 e), r = x - n ln 2 with ln 2
 * split in two (Cody & Waite) so that n ln2_hi is exact; exp(r) by its
 * degree-6 Taylor polynomial (|r| <= ln2/2, error ~1e-7 relative); 2^n made
 * in the exponent bits.  Inputs below -87.3 give exactly 0 -- the softmax's
 * padding relies on it.
 */
#include "attn/train_kern.h"

#include "attn/isa.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")

#include <immintrin.h>
#include <string.h>

static inline __m256 s_load_or_zero(const float *p, int acc)
{
    return acc ? _mm256_loadu_ps(p) : _mm256_setzero_ps();
}

static void s_mm_nn(int rows, int n, int k, const float *A, size_t lda, const float *B,
                    size_t ldb, float *C, size_t ldc, int acc)
{
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        int r = 0;
        for (; r + 4 <= rows; r += 4) {
            float *c0 = C + (size_t)r * ldc + j, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            __m256 x00 = s_load_or_zero(c0, acc), x01 = s_load_or_zero(c0 + 8, acc);
            __m256 x10 = s_load_or_zero(c1, acc), x11 = s_load_or_zero(c1 + 8, acc);
            __m256 x20 = s_load_or_zero(c2, acc), x21 = s_load_or_zero(c2 + 8, acc);
            __m256 x30 = s_load_or_zero(c3, acc), x31 = s_load_or_zero(c3 + 8, acc);
            const float *a0 = A + (size_t)r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
            for (int t = 0; t < k; t++) {
                const float *b = B + (size_t)t * ldb + j;
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
                __m256 v = _mm256_broadcast_ss(a0 + t);
                x00 = _mm256_fmadd_ps(v, b0, x00);
                x01 = _mm256_fmadd_ps(v, b1, x01);
                v = _mm256_broadcast_ss(a1 + t);
                x10 = _mm256_fmadd_ps(v, b0, x10);
                x11 = _mm256_fmadd_ps(v, b1, x11);
                v = _mm256_broadcast_ss(a2 + t);
                x20 = _mm256_fmadd_ps(v, b0, x20);
                x21 = _mm256_fmadd_ps(v, b1, x21);
                v = _mm256_broadcast_ss(a3 + t);
                x30 = _mm256_fmadd_ps(v, b0, x30);
                x31 = _mm256_fmadd_ps(v, b1, x31);
            }
            _mm256_storeu_ps(c0, x00);
            _mm256_storeu_ps(c0 + 8, x01);
            _mm256_storeu_ps(c1, x10);
            _mm256_storeu_ps(c1 + 8, x11);
            _mm256_storeu_ps(c2, x20);
            _mm256_storeu_ps(c2 + 8, x21);
            _mm256_storeu_ps(c3, x30);
            _mm256_storeu_ps(c3 + 8, x31);
        }
        for (; r < rows; r++) {
            float *c0 = C + (size_t)r * ldc + j;
            __m256 x00 = s_load_or_zero(c0, acc), x01 = s_load_or_zero(c0 + 8, acc);
            const float *a0 = A + (size_t)r * lda;
            for (int t = 0; t < k; t++) {
                const float *b = B + (size_t)t * ldb + j;
                __m256 v = _mm256_broadcast_ss(a0 + t);
                x00 = _mm256_fmadd_ps(v, _mm256_loadu_ps(b), x00);
                x01 = _mm256_fmadd_ps(v, _mm256_loadu_ps(b + 8), x01);
            }
            _mm256_storeu_ps(c0, x00);
            _mm256_storeu_ps(c0 + 8, x01);
        }
    }
    for (; j + 8 <= n; j += 8)
        for (int r = 0; r < rows; r++) {
            float *c0 = C + (size_t)r * ldc + j;
            __m256 x = s_load_or_zero(c0, acc);
            const float *a0 = A + (size_t)r * lda;
            for (int t = 0; t < k; t++)
                x = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + t),
                                    _mm256_loadu_ps(B + (size_t)t * ldb + j), x);
            _mm256_storeu_ps(c0, x);
        }
    for (; j < n; j++)
        for (int r = 0; r < rows; r++) {
            float x = acc ? C[(size_t)r * ldc + j] : 0.0f;
            for (int t = 0; t < k; t++)
                x += A[(size_t)r * lda + t] * B[(size_t)t * ldb + j];
            C[(size_t)r * ldc + j] = x;
        }
}

static void s_mm_tn(int rows, int cols, int n, const float *A, size_t lda, const float *B,
                    size_t ldb, float *C, size_t ldc, int acc)
{
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        int p = 0;
        for (; p + 4 <= cols; p += 4) {
            float *c0 = C + (size_t)p * ldc + j, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            __m256 x00 = s_load_or_zero(c0, acc), x01 = s_load_or_zero(c0 + 8, acc);
            __m256 x10 = s_load_or_zero(c1, acc), x11 = s_load_or_zero(c1 + 8, acc);
            __m256 x20 = s_load_or_zero(c2, acc), x21 = s_load_or_zero(c2 + 8, acc);
            __m256 x30 = s_load_or_zero(c3, acc), x31 = s_load_or_zero(c3 + 8, acc);
            for (int r = 0; r < rows; r++) {
                const float *b = B + (size_t)r * ldb + j, *a = A + (size_t)r * lda + p;
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
                __m256 v = _mm256_broadcast_ss(a);
                x00 = _mm256_fmadd_ps(v, b0, x00);
                x01 = _mm256_fmadd_ps(v, b1, x01);
                v = _mm256_broadcast_ss(a + 1);
                x10 = _mm256_fmadd_ps(v, b0, x10);
                x11 = _mm256_fmadd_ps(v, b1, x11);
                v = _mm256_broadcast_ss(a + 2);
                x20 = _mm256_fmadd_ps(v, b0, x20);
                x21 = _mm256_fmadd_ps(v, b1, x21);
                v = _mm256_broadcast_ss(a + 3);
                x30 = _mm256_fmadd_ps(v, b0, x30);
                x31 = _mm256_fmadd_ps(v, b1, x31);
            }
            _mm256_storeu_ps(c0, x00);
            _mm256_storeu_ps(c0 + 8, x01);
            _mm256_storeu_ps(c1, x10);
            _mm256_storeu_ps(c1 + 8, x11);
            _mm256_storeu_ps(c2, x20);
            _mm256_storeu_ps(c2 + 8, x21);
            _mm256_storeu_ps(c3, x30);
            _mm256_storeu_ps(c3 + 8, x31);
        }
        for (; p < cols; p++) {
            float *c0 = C + (size_t)p * ldc + j;
            __m256 x00 = s_load_or_zero(c0, acc), x01 = s_load_or_zero(c0 + 8, acc);
            for (int r = 0; r < rows; r++) {
                const float *b = B + (size_t)r * ldb + j;
                __m256 v = _mm256_broadcast_ss(A + (size_t)r * lda + p);
                x00 = _mm256_fmadd_ps(v, _mm256_loadu_ps(b), x00);
                x01 = _mm256_fmadd_ps(v, _mm256_loadu_ps(b + 8), x01);
            }
            _mm256_storeu_ps(c0, x00);
            _mm256_storeu_ps(c0 + 8, x01);
        }
    }
    for (; j + 8 <= n; j += 8)
        for (int p = 0; p < cols; p++) {
            float *c0 = C + (size_t)p * ldc + j;
            __m256 x = s_load_or_zero(c0, acc);
            for (int r = 0; r < rows; r++)
                x = _mm256_fmadd_ps(_mm256_broadcast_ss(A + (size_t)r * lda + p),
                                    _mm256_loadu_ps(B + (size_t)r * ldb + j), x);
            _mm256_storeu_ps(c0, x);
        }
    for (; j < n; j++)
        for (int p = 0; p < cols; p++) {
            float x = acc ? C[(size_t)p * ldc + j] : 0.0f;
            for (int r = 0; r < rows; r++)
                x += A[(size_t)r * lda + p] * B[(size_t)r * ldb + j];
            C[(size_t)p * ldc + j] = x;
        }
}

static inline __m256 s_exp(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.3f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440054690583e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                   _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

static void s_sm_fwd(const float *Z, const float *S, size_t ld, int l, const float *bias,
                     float scale, int n, float *sc, float *mx, float *inv, float *work)
{
    const __m256 vs = _mm256_set1_ps(scale);
    for (int c = 0; c < n; c += 8) {
        __m256 m = _mm256_set1_ps(ATTN_TR_NEG);
        for (int j = 0; j < l; j++) {
            __m256 x = _mm256_fmadd_ps(vs, _mm256_loadu_ps(Z + (size_t)j * ld + c),
                                       _mm256_set1_ps(bias[j]));
            _mm256_store_ps(work + 8 * j, x);
            m = _mm256_max_ps(m, x);
        }
        __m256 sum = _mm256_setzero_ps(), dot = _mm256_setzero_ps();
        for (int j = 0; j < l; j++) {
            __m256 e = s_exp(_mm256_sub_ps(_mm256_load_ps(work + 8 * j), m));
            sum = _mm256_add_ps(sum, e);
            dot = _mm256_fmadd_ps(e, _mm256_loadu_ps(S + (size_t)j * ld + c), dot);
        }
        const __m256 iv = _mm256_div_ps(_mm256_set1_ps(1.0f), sum);
        _mm256_storeu_ps(mx + c, m);
        _mm256_storeu_ps(inv + c, iv);
        _mm256_storeu_ps(sc + c, _mm256_mul_ps(dot, iv));
    }
}

/* Horizontal sum in a fixed order (so results depend only on the inputs). */
static inline float s_hsum(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
}

static void s_sm_bwd(const float *Z, const float *S, size_t ld, int l, const float *bias,
                     float scale, int n, const float *g, const float *sc, const float *mx,
                     const float *inv, float *dZ, float *dS, float *dbw, float *work)
{
    const __m256 vs = _mm256_set1_ps(scale);
    for (int j = 0; j < l; j++)
        _mm256_store_ps(work + 8 * j, _mm256_setzero_ps());
    for (int c = 0; c < n; c += 8) {
        const __m256 gv = _mm256_loadu_ps(g + c);
        if (_mm256_movemask_ps(_mm256_cmp_ps(gv, _mm256_setzero_ps(), _CMP_NEQ_UQ)) == 0)
            continue;
        const __m256 ginv = _mm256_mul_ps(gv, _mm256_loadu_ps(inv + c));
        const __m256 m = _mm256_loadu_ps(mx + c), scv = _mm256_loadu_ps(sc + c);
        for (int j = 0; j < l; j++) {
            const size_t at = (size_t)j * ld + c;
            __m256 x = _mm256_fmadd_ps(vs, _mm256_loadu_ps(Z + at), _mm256_set1_ps(bias[j]));
            __m256 ga = _mm256_mul_ps(ginv, s_exp(_mm256_sub_ps(x, m)));
            __m256 sv = _mm256_loadu_ps(S + at);
            __m256 dzz = _mm256_mul_ps(ga, _mm256_sub_ps(sv, scv));
            _mm256_storeu_ps(dS + at, _mm256_add_ps(_mm256_loadu_ps(dS + at), ga));
            _mm256_storeu_ps(dZ + at, _mm256_fmadd_ps(vs, dzz, _mm256_loadu_ps(dZ + at)));
            _mm256_store_ps(work + 8 * j, _mm256_add_ps(_mm256_load_ps(work + 8 * j), dzz));
        }
    }
    for (int j = 0; j < l; j++)
        dbw[j] += s_hsum(_mm256_load_ps(work + 8 * j));
}

static void s_fx_exp(const float *Z, const float *S, size_t ld, int p, int n, float scale,
                     float *mx, float *E, float *ES)
{
    const __m256 vs = _mm256_set1_ps(scale);
    for (int c = 0; c < n; c += 8) {
        __m256 m = _mm256_set1_ps(ATTN_TR_NEG);
        for (int j = 0; j < p; j++)
            m = _mm256_max_ps(m, _mm256_mul_ps(vs, _mm256_loadu_ps(Z + (size_t)j * ld + c)));
        _mm256_storeu_ps(mx + c, m);
        for (int j = 0; j < p; j++) {
            const size_t at = (size_t)j * ld + c;
            const __m256 e = s_exp(_mm256_fmsub_ps(vs, _mm256_loadu_ps(Z + at), m));
            _mm256_storeu_ps(E + at, e);
            _mm256_storeu_ps(ES + at, _mm256_mul_ps(e, _mm256_loadu_ps(S + at)));
        }
    }
}

static void s_fx_grad(float *E, float *ES, const float *A1, const float *A2, size_t ld, int p,
                      int n, float scale)
{
    const __m256 vs = _mm256_set1_ps(scale);
    for (int j = 0; j < p; j++)
        for (int c = 0; c < n; c += 8) {
            const size_t at = (size_t)j * ld + c;
            const __m256 e = _mm256_loadu_ps(E + at), es = _mm256_loadu_ps(ES + at);
            const __m256 a1 = _mm256_loadu_ps(A1 + at), a2 = _mm256_loadu_ps(A2 + at);
            _mm256_storeu_ps(E + at, _mm256_mul_ps(vs, _mm256_fmsub_ps(es, a1, _mm256_mul_ps(e, a2))));
            _mm256_storeu_ps(ES + at, _mm256_mul_ps(e, a1));
        }
}

static const attn_tr_kern s_avx2 = {"avx2", s_mm_nn, s_mm_tn, s_sm_fwd, s_sm_bwd, s_fx_exp,
                                     s_fx_grad};

const attn_tr_kern *attn_tr_kern_avx2(void)
{
    return attn_isa_runs(ATTN_ISA_AVX2) ? &s_avx2 : NULL;
}

#else

const attn_tr_kern *attn_tr_kern_avx2(void)
{
    return NULL;
}

#endif
