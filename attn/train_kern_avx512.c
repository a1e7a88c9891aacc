/* train_kern_avx512.c -- the trainer's kernel set for AVX-512 (F) CPUs.
 *
 * The same loops as train_kern_avx2.c, sixteen lanes wide: 16 candidates
 * per softmax vector, where full-softmax training spends its time; matrix
 * tails are handled with lane masks instead of scalar loops.  attn_tr_kern_avx512() hands the
 * set out only after checking the CPU.
 */
#include "attn/train_kern.h"

#include "attn/isa.h"

#if defined(__x86_64__)
#pragma GCC target("avx512f,fma")

#include <immintrin.h>

/* Lanes [0, n) of 16, n in 0..16. */
static inline __mmask16 s_mask(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

static inline __m512 s_ld(const float *p, __mmask16 k)
{
    return _mm512_maskz_loadu_ps(k, p);
}

static void s_mm_nn(int rows, int n, int k, const float *A, size_t lda, const float *B,
                    size_t ldb, float *C, size_t ldc, int acc)
{
    for (int j = 0; j < n; j += 32) {
        const __mmask16 k0 = s_mask(n - j), k1 = s_mask(n - j - 16);
        int r = 0;
        for (; r + 4 <= rows; r += 4) {
            float *c0 = C + (size_t)r * ldc + j, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            const __m512 z = _mm512_setzero_ps();
            __m512 x00 = acc ? s_ld(c0, k0) : z, x01 = acc ? s_ld(c0 + 16, k1) : z;
            __m512 x10 = acc ? s_ld(c1, k0) : z, x11 = acc ? s_ld(c1 + 16, k1) : z;
            __m512 x20 = acc ? s_ld(c2, k0) : z, x21 = acc ? s_ld(c2 + 16, k1) : z;
            __m512 x30 = acc ? s_ld(c3, k0) : z, x31 = acc ? s_ld(c3 + 16, k1) : z;
            const float *a0 = A + (size_t)r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
            for (int t = 0; t < k; t++) {
                const float *b = B + (size_t)t * ldb + j;
                const __m512 b0 = s_ld(b, k0), b1 = s_ld(b + 16, k1);
                __m512 v = _mm512_set1_ps(a0[t]);
                x00 = _mm512_fmadd_ps(v, b0, x00);
                x01 = _mm512_fmadd_ps(v, b1, x01);
                v = _mm512_set1_ps(a1[t]);
                x10 = _mm512_fmadd_ps(v, b0, x10);
                x11 = _mm512_fmadd_ps(v, b1, x11);
                v = _mm512_set1_ps(a2[t]);
                x20 = _mm512_fmadd_ps(v, b0, x20);
                x21 = _mm512_fmadd_ps(v, b1, x21);
                v = _mm512_set1_ps(a3[t]);
                x30 = _mm512_fmadd_ps(v, b0, x30);
                x31 = _mm512_fmadd_ps(v, b1, x31);
            }
            _mm512_mask_storeu_ps(c0, k0, x00);
            _mm512_mask_storeu_ps(c0 + 16, k1, x01);
            _mm512_mask_storeu_ps(c1, k0, x10);
            _mm512_mask_storeu_ps(c1 + 16, k1, x11);
            _mm512_mask_storeu_ps(c2, k0, x20);
            _mm512_mask_storeu_ps(c2 + 16, k1, x21);
            _mm512_mask_storeu_ps(c3, k0, x30);
            _mm512_mask_storeu_ps(c3 + 16, k1, x31);
        }
        for (; r < rows; r++) {
            float *c0 = C + (size_t)r * ldc + j;
            const __m512 z = _mm512_setzero_ps();
            __m512 x00 = acc ? s_ld(c0, k0) : z, x01 = acc ? s_ld(c0 + 16, k1) : z;
            const float *a0 = A + (size_t)r * lda;
            for (int t = 0; t < k; t++) {
                const float *b = B + (size_t)t * ldb + j;
                const __m512 v = _mm512_set1_ps(a0[t]);
                x00 = _mm512_fmadd_ps(v, s_ld(b, k0), x00);
                x01 = _mm512_fmadd_ps(v, s_ld(b + 16, k1), x01);
            }
            _mm512_mask_storeu_ps(c0, k0, x00);
            _mm512_mask_storeu_ps(c0 + 16, k1, x01);
        }
    }
}

static void s_mm_tn(int rows, int cols, int n, const float *A, size_t lda, const float *B,
                    size_t ldb, float *C, size_t ldc, int acc)
{
    for (int j = 0; j < n; j += 32) {
        const __mmask16 k0 = s_mask(n - j), k1 = s_mask(n - j - 16);
        int p = 0;
        for (; p + 4 <= cols; p += 4) {
            float *c0 = C + (size_t)p * ldc + j, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            const __m512 z = _mm512_setzero_ps();
            __m512 x00 = acc ? s_ld(c0, k0) : z, x01 = acc ? s_ld(c0 + 16, k1) : z;
            __m512 x10 = acc ? s_ld(c1, k0) : z, x11 = acc ? s_ld(c1 + 16, k1) : z;
            __m512 x20 = acc ? s_ld(c2, k0) : z, x21 = acc ? s_ld(c2 + 16, k1) : z;
            __m512 x30 = acc ? s_ld(c3, k0) : z, x31 = acc ? s_ld(c3 + 16, k1) : z;
            for (int r = 0; r < rows; r++) {
                const float *b = B + (size_t)r * ldb + j, *a = A + (size_t)r * lda + p;
                const __m512 b0 = s_ld(b, k0), b1 = s_ld(b + 16, k1);
                __m512 v = _mm512_set1_ps(a[0]);
                x00 = _mm512_fmadd_ps(v, b0, x00);
                x01 = _mm512_fmadd_ps(v, b1, x01);
                v = _mm512_set1_ps(a[1]);
                x10 = _mm512_fmadd_ps(v, b0, x10);
                x11 = _mm512_fmadd_ps(v, b1, x11);
                v = _mm512_set1_ps(a[2]);
                x20 = _mm512_fmadd_ps(v, b0, x20);
                x21 = _mm512_fmadd_ps(v, b1, x21);
                v = _mm512_set1_ps(a[3]);
                x30 = _mm512_fmadd_ps(v, b0, x30);
                x31 = _mm512_fmadd_ps(v, b1, x31);
            }
            _mm512_mask_storeu_ps(c0, k0, x00);
            _mm512_mask_storeu_ps(c0 + 16, k1, x01);
            _mm512_mask_storeu_ps(c1, k0, x10);
            _mm512_mask_storeu_ps(c1 + 16, k1, x11);
            _mm512_mask_storeu_ps(c2, k0, x20);
            _mm512_mask_storeu_ps(c2 + 16, k1, x21);
            _mm512_mask_storeu_ps(c3, k0, x30);
            _mm512_mask_storeu_ps(c3 + 16, k1, x31);
        }
        for (; p < cols; p++) {
            float *c0 = C + (size_t)p * ldc + j;
            const __m512 z = _mm512_setzero_ps();
            __m512 x00 = acc ? s_ld(c0, k0) : z, x01 = acc ? s_ld(c0 + 16, k1) : z;
            for (int r = 0; r < rows; r++) {
                const float *b = B + (size_t)r * ldb + j;
                const __m512 v = _mm512_set1_ps(A[(size_t)r * lda + p]);
                x00 = _mm512_fmadd_ps(v, s_ld(b, k0), x00);
                x01 = _mm512_fmadd_ps(v, s_ld(b + 16, k1), x01);
            }
            _mm512_mask_storeu_ps(c0, k0, x00);
            _mm512_mask_storeu_ps(c0 + 16, k1, x01);
        }
    }
}

/* exp(x) for x <= 0; below -87.3 exactly 0 (see train_kern_avx2.c). */
static inline __m512 s_exp(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-87.3f);
    const __mmask16 ok = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_ps(x, lo);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440054690583e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n),
                                                         _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(ok, p, _mm512_castsi512_ps(e));
}

static void s_sm_fwd(const float *Z, const float *S, size_t ld, int l, const float *bias,
                     float scale, int n, float *sc, float *mx, float *inv, float *work)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int c = 0; c < n; c += 16) {
        __m512 m = _mm512_set1_ps(ATTN_TR_NEG);
        for (int j = 0; j < l; j++) {
            __m512 x = _mm512_fmadd_ps(vs, _mm512_loadu_ps(Z + (size_t)j * ld + c),
                                       _mm512_set1_ps(bias[j]));
            _mm512_store_ps(work + 16 * j, x);
            m = _mm512_max_ps(m, x);
        }
        __m512 sum = _mm512_setzero_ps(), dot = _mm512_setzero_ps();
        for (int j = 0; j < l; j++) {
            __m512 e = s_exp(_mm512_sub_ps(_mm512_load_ps(work + 16 * j), m));
            sum = _mm512_add_ps(sum, e);
            dot = _mm512_fmadd_ps(e, _mm512_loadu_ps(S + (size_t)j * ld + c), dot);
        }
        const __m512 iv = _mm512_div_ps(_mm512_set1_ps(1.0f), sum);
        _mm512_storeu_ps(mx + c, m);
        _mm512_storeu_ps(inv + c, iv);
        _mm512_storeu_ps(sc + c, _mm512_mul_ps(dot, iv));
    }
}

static void s_sm_bwd(const float *Z, const float *S, size_t ld, int l, const float *bias,
                     float scale, int n, const float *g, const float *sc, const float *mx,
                     const float *inv, float *dZ, float *dS, float *dbw, float *work)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int j = 0; j < l; j++)
        _mm512_store_ps(work + 16 * j, _mm512_setzero_ps());
    for (int c = 0; c < n; c += 16) {
        const __m512 gv = _mm512_loadu_ps(g + c);
        if (_mm512_cmp_ps_mask(gv, _mm512_setzero_ps(), _CMP_NEQ_UQ) == 0)
            continue;
        const __m512 ginv = _mm512_mul_ps(gv, _mm512_loadu_ps(inv + c));
        const __m512 m = _mm512_loadu_ps(mx + c), scv = _mm512_loadu_ps(sc + c);
        for (int j = 0; j < l; j++) {
            const size_t at = (size_t)j * ld + c;
            __m512 x = _mm512_fmadd_ps(vs, _mm512_loadu_ps(Z + at), _mm512_set1_ps(bias[j]));
            __m512 ga = _mm512_mul_ps(ginv, s_exp(_mm512_sub_ps(x, m)));
            __m512 dzz = _mm512_mul_ps(ga, _mm512_sub_ps(_mm512_loadu_ps(S + at), scv));
            _mm512_storeu_ps(dS + at, _mm512_add_ps(_mm512_loadu_ps(dS + at), ga));
            _mm512_storeu_ps(dZ + at, _mm512_fmadd_ps(vs, dzz, _mm512_loadu_ps(dZ + at)));
            _mm512_store_ps(work + 16 * j, _mm512_add_ps(_mm512_load_ps(work + 16 * j), dzz));
        }
    }
    for (int j = 0; j < l; j++)
        dbw[j] += _mm512_reduce_add_ps(_mm512_load_ps(work + 16 * j));
}

static void s_fx_exp(const float *Z, const float *S, size_t ld, int p, int n, float scale,
                     float *mx, float *E, float *ES)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int c = 0; c < n; c += 16) {
        __m512 m = _mm512_set1_ps(ATTN_TR_NEG);
        for (int j = 0; j < p; j++)
            m = _mm512_max_ps(m, _mm512_mul_ps(vs, _mm512_loadu_ps(Z + (size_t)j * ld + c)));
        _mm512_storeu_ps(mx + c, m);
        for (int j = 0; j < p; j++) {
            const size_t at = (size_t)j * ld + c;
            const __m512 e = s_exp(_mm512_fmsub_ps(vs, _mm512_loadu_ps(Z + at), m));
            _mm512_storeu_ps(E + at, e);
            _mm512_storeu_ps(ES + at, _mm512_mul_ps(e, _mm512_loadu_ps(S + at)));
        }
    }
}

static void s_fx_grad(float *E, float *ES, const float *A1, const float *A2, size_t ld, int p,
                      int n, float scale)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int j = 0; j < p; j++)
        for (int c = 0; c < n; c += 16) {
            const size_t at = (size_t)j * ld + c;
            const __m512 e = _mm512_loadu_ps(E + at), es = _mm512_loadu_ps(ES + at);
            const __m512 a1 = _mm512_loadu_ps(A1 + at), a2 = _mm512_loadu_ps(A2 + at);
            _mm512_storeu_ps(E + at, _mm512_mul_ps(vs, _mm512_fmsub_ps(es, a1, _mm512_mul_ps(e, a2))));
            _mm512_storeu_ps(ES + at, _mm512_mul_ps(e, a1));
        }
}

static const attn_tr_kern s_avx512 = {"avx512", s_mm_nn, s_mm_tn, s_sm_fwd, s_sm_bwd, s_fx_exp,
                                     s_fx_grad};

const attn_tr_kern *attn_tr_kern_avx512(void)
{
    return attn_isa_runs(ATTN_ISA_AVX512) ? &s_avx512 : NULL;
}

#else

const attn_tr_kern *attn_tr_kern_avx512(void)
{
    return NULL;
}

#endif
