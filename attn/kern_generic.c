/* kern_generic.c -- the portable kernel set: plain C, any CPU.
 *
 * The fallback when neither AVX2+FMA nor AVX-512 is available (and the
 * reference point when testing the vector kernels against each other).  It
 * follows the same algorithm as the vector files, one lane wide: the same
 * range reduction and polynomial for exp, the same two-pass softmax.
 */
#include "attn/kern.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attn/bf16.h"
#include "attn/vexp.h"

#define S_ROWS 4

static void s_tile(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                   int ncols, float *c, size_t ldc)
{
    for (int r = 0; r < S_ROWS; r++) {
        const float *ar = a[r] + aoff;
        float *cr = c + (size_t)r * ldc;
        for (int j = 0; j < ncols; j++)
            cr[j] = 0.0f;
        for (int t = 0; t < K; t++) {
            const float x = ar[t], *bt = b + (size_t)t * ldb;
            for (int j = 0; j < ncols; j++)
                cr[j] += x * bt[j];
        }
    }
}

/* 2^y for y <= 0 (or -inf): an exact 0 below the normal range, else
 * 2^n p(f) (vexp.h).  NaN propagates, so that a NaN or +inf logit makes the
 * score NaN (the request then fails with ATTN_ERANGE). */
static float s_exp2(float y)
{
    if (isnan(y))
        return y;
    if (y < ATTN_VEXP_MIN)
        return 0.0f;
    float n = floorf(y + 0.5f);
    float f = y - n;
    float p = ATTN_VEXP_C6;
    p = p * f + ATTN_VEXP_C5;
    p = p * f + ATTN_VEXP_C4;
    p = p * f + ATTN_VEXP_C3;
    p = p * f + ATTN_VEXP_C2;
    p = p * f + ATTN_VEXP_C1;
    p = p * f + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;   /* n in [-125, 0]: a normal 2^n */
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return p * two_n;
}

static void s_logits(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                     int ncols, float scale, const float *bias, float *z, float *raw,
                     size_t ldz, float *rowmax, const attn_kern_bcols *bc)
{
    (void)bc;   /* B from b alone: the dot-product tail is an AVX-512 measure */
    s_tile(a, aoff, K, b, ldb, ncols, z, ldz);
    for (int r = 0; r < S_ROWS; r++) {
        float *zr = z + (size_t)r * ldz, mx = -INFINITY;
        if (raw)
            memcpy(raw + (size_t)r * ldz, zr, (size_t)ncols * sizeof *zr);
        for (int j = 0; j < ncols; j++) {
            zr[j] = zr[j] * scale + bias[j];
            mx = zr[j] > mx ? zr[j] : mx;
        }
        rowmax[r] = mx;
    }
}

static void s_softmax_dot(const float *z, const float *s, size_t ld, int ncols,
                          const float *rowmax, float *acc)
{
    for (int r = 0; r < S_ROWS; r++) {
        const float *zr = z + (size_t)r * ld, *sr = s + (size_t)r * ld, mx = rowmax[r];
        float sum = 0.0f, dot = 0.0f;
        for (int j = 0; j < ncols; j++) {
            float e = s_exp2(zr[j] - mx);
            sum += e;
            dot += e * sr[j];
        }
        acc[r] += dot / sum;
    }
}

static void s_softmax_exp(float *z, size_t ld, int ncols, const float *rowmax, float *sum)
{
    for (int r = 0; r < S_ROWS; r++) {
        float *zr = z + (size_t)r * ld, mx = rowmax[r], s = 0.0f;
        for (int j = 0; j < ncols; j++) {
            zr[j] = s_exp2(zr[j] - mx);
            s += zr[j];
        }
        sum[r] = s;
    }
}

static void s_av_dot(const float *e, size_t lde, int L, const float *const *vrow, size_t voff,
                     int n, const float *const *grow, size_t goff, const float *sum, float *acc)
{
    for (int r = 0; r < S_ROWS; r++) {
        const float *er = e + (size_t)r * lde, *g = grow[r] + goff;
        float d = 0.0f;
        for (int j = 0; j < L; j++) {
            const float *v = vrow[j] + voff;
            float x = 0.0f;
            for (int c = 0; c < n; c++)
                x += v[c] * g[c];
            d += er[j] * x;
        }
        acc[r] += d / sum[r];
    }
}

static void s_softmax_acc(float *z, size_t ld, int ncols, const float *rowmax, float wscale,
                          float *w, size_t ldw)
{
    for (int r = 0; r < S_ROWS; r++) {
        float *zr = z + (size_t)r * ld, *wr = w + (size_t)r * ldw, mx = rowmax[r];
        float sum = 0.0f;
        for (int j = 0; j < ncols; j++) {
            zr[j] = s_exp2(zr[j] - mx);
            sum += zr[j];
        }
        float f = wscale / sum;
        for (int j = 0; j < ncols; j++)
            wr[j] += zr[j] * f;
    }
}

/* Eight columns at a time so that each run of stores is 32 contiguous bytes. */
static void s_pack(const float *const *row, size_t off, int L, int m, size_t lp, float *out)
{
    int j = 0;
    for (; j + 8 <= L; j += 8) {
        const float *r0 = row[j] + off, *r1 = row[j + 1] + off, *r2 = row[j + 2] + off,
                    *r3 = row[j + 3] + off, *r4 = row[j + 4] + off, *r5 = row[j + 5] + off,
                    *r6 = row[j + 6] + off, *r7 = row[j + 7] + off;
        for (int t = 0; t < m; t++) {
            float *o = out + (size_t)t * lp + j;
            o[0] = r0[t]; o[1] = r1[t]; o[2] = r2[t]; o[3] = r3[t];
            o[4] = r4[t]; o[5] = r5[t]; o[6] = r6[t]; o[7] = r7[t];
        }
    }
    for (; j < L; j++) {
        const float *r = row[j] + off;
        for (int t = 0; t < m; t++)
            out[(size_t)t * lp + j] = r[t];
    }
    if ((size_t)L < lp)
        for (int t = 0; t < m; t++)
            memset(out + (size_t)t * lp + L, 0, (lp - L) * sizeof *out);
}

static void s_dots(const float *q, const float *const *row, size_t off, int n, int cnt,
                   float *z)
{
    for (int i = 0; i < cnt; i++) {
        const float *r = row[i] + off;
        float acc = 0.0f;
        for (int c = 0; c < n; c++)
            acc += q[c] * r[c];
        z[i] = acc;
    }
}

static void s_axpys(float *out, const float *const *row, size_t off, int n, int cnt,
                    const float *w)
{
    for (int i = 0; i < cnt; i++) {
        const float *r = row[i] + off;
        for (int c = 0; c < n; c++)
            out[c] += w[i] * r[c];
    }
}

static void s_widen(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = attn_bf16_to_f32(src[i]);
}

static void s_narrow(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = attn_bf16_from_f32(src[i]);
}

const attn_kern attn_kern_generic = {
    .name = "generic",
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
