/* train_kern.c -- the portable kernel set and the choice between sets.
 *
 * The portable loops are the specification the vector set must match;
 * they run on any CPU and in the tests (attn_kernel_select("generic")).
 */
#include "attn/train_kern.h"

#include "attn/isa.h"
#include "attn/train.h"

#include <math.h>
#include <string.h>

static void s_mm_nn(int rows, int n, int k, const float *A, size_t lda, const float *B,
                    size_t ldb, float *C, size_t ldc, int acc)
{
    for (int r = 0; r < rows; r++) {
        float *c = C + (size_t)r * ldc;
        if (!acc)
            memset(c, 0, (size_t)n * sizeof *c);
        for (int t = 0; t < k; t++) {
            const float a = A[(size_t)r * lda + t];
            const float *b = B + (size_t)t * ldb;
            for (int j = 0; j < n; j++)
                c[j] += a * b[j];
        }
    }
}

static void s_mm_tn(int rows, int cols, int n, const float *A, size_t lda, const float *B,
                    size_t ldb, float *C, size_t ldc, int acc)
{
    if (!acc)
        for (int p = 0; p < cols; p++)
            memset(C + (size_t)p * ldc, 0, (size_t)n * sizeof *C);
    for (int r = 0; r < rows; r++) {
        const float *b = B + (size_t)r * ldb;
        for (int p = 0; p < cols; p++) {
            const float a = A[(size_t)r * lda + p];
            float *c = C + (size_t)p * ldc;
            for (int j = 0; j < n; j++)
                c[j] += a * b[j];
        }
    }
}

static void s_sm_fwd(const float *Z, const float *S, size_t ld, int l, const float *bias,
                     float scale, int n, float *sc, float *mx, float *inv, float *work)
{
    for (int c = 0; c < n; c++) {
        float m = ATTN_TR_NEG;
        for (int j = 0; j < l; j++) {
            work[j] = scale * Z[(size_t)j * ld + c] + bias[j];
            m = work[j] > m ? work[j] : m;
        }
        float sum = 0.0f, dot = 0.0f;
        for (int j = 0; j < l; j++) {
            const float e = expf(work[j] - m);
            sum += e;
            dot += e * S[(size_t)j * ld + c];
        }
        mx[c] = m;
        inv[c] = 1.0f / sum;
        sc[c] = dot * inv[c];
    }
}

static void s_sm_bwd(const float *Z, const float *S, size_t ld, int l, const float *bias,
                     float scale, int n, const float *g, const float *sc, const float *mx,
                     const float *inv, float *dZ, float *dS, float *dbw, float *work)
{
    for (int j = 0; j < l; j++)
        work[j] = 0.0f;
    for (int c = 0; c < n; c++) {
        if (g[c] == 0.0f)
            continue;
        const float ginv = g[c] * inv[c];
        for (int j = 0; j < l; j++) {
            const size_t at = (size_t)j * ld + c;
            const float ga = ginv * expf(scale * Z[at] + bias[j] - mx[c]);
            const float dzz = ga * (S[at] - sc[c]);
            dS[at] += ga;
            dZ[at] += scale * dzz;
            work[j] += dzz;
        }
    }
    for (int j = 0; j < l; j++)
        dbw[j] += work[j];
}

static void s_fx_exp(const float *Z, const float *S, size_t ld, int p, int n, float scale,
                     float *mx, float *E, float *ES)
{
    for (int c = 0; c < n; c++) {
        float m = ATTN_TR_NEG;
        for (int j = 0; j < p; j++)
            m = fmaxf(m, scale * Z[(size_t)j * ld + c]);
        mx[c] = m;
        for (int j = 0; j < p; j++) {
            const size_t at = (size_t)j * ld + c;
            E[at] = expf(scale * Z[at] - m);
            ES[at] = E[at] * S[at];
        }
    }
}

static void s_fx_grad(float *E, float *ES, const float *A1, const float *A2, size_t ld, int p,
                      int n, float scale)
{
    for (int j = 0; j < p; j++)
        for (int c = 0; c < n; c++) {
            const size_t at = (size_t)j * ld + c;
            const float e = E[at], es = ES[at];
            E[at] = scale * (es * A1[at] - e * A2[at]);
            ES[at] = e * A1[at];
        }
}

static const attn_tr_kern s_generic = {"generic", s_mm_nn, s_mm_tn, s_sm_fwd, s_sm_bwd,
                                       s_fx_exp, s_fx_grad};

const attn_tr_kern *attn_tr_kern_generic(void)
{
    return &s_generic;
}

/* The level in use comes from isa.c, the one mechanism every attn/ kernel
 * family shares (attn_kernel_select() forces it for scoring and training
 * at once); a level without a trainer set of its own gets the best below. */
const attn_tr_kern *attn_tr_kern_get(void)
{
    const attn_tr_kern *k = NULL;
    switch (attn_isa_get()) {
    case ATTN_ISA_AVX512BF16:   /* training is in float: nothing of its own here */
    case ATTN_ISA_AVX512:
        k = attn_tr_kern_avx512();
        break;
    case ATTN_ISA_AVX2:
        k = attn_tr_kern_avx2();
        break;
    default:
        break;
    }
    return k ? k : &s_generic;
}

const char *attn_train_kernel_name(void)
{
    return attn_tr_kern_get()->name;
}
