/* kern.h -- the inner loops of the fast path, one set per instruction set.
 * Internal to attn/: score.c and tables.c drive these; nothing else should.
 *
 * Four loops carry all the arithmetic of a request (and pack lays out the
 * history for them):
 *
 *   tile         C = A B for a few rows of A (a small GEMM whose A rows are
 *                reached through pointers, so candidate rows are read in
 *                place from the catalog tables, never gathered);
 *   logits       the same product for Z = Q K, finished while it is still in
 *                registers: z = scale Z + bias is stored together with each
 *                row's maximum, which saves the softmax a pass;
 *   softmax_dot  for a few rows, sum_j softmax(z)_j S_j in one fused
 *                exp / sum / dot pass;
 *   softmax_acc  the same softmax, accumulated as weights (explanations).
 *
 * The softmax is in base 2: 2^(z - max z), with log2(e) folded into the
 * caller's scale and bias (vexp.h).  Padding columns carry a bias of -inf:
 * their z is -inf and their weight exactly 0, so no loop needs a tail mask.
 *
 * Each implementation lives in its own file compiled for its own target
 * (kern_avx512.c, kern_avx2.c) plus the portable kern_generic.c; kern.c picks
 * the best one the CPU supports once, at first use, so the binary runs on any
 * x86-64.  Implementations agree to within float rounding, not bitwise.
 */
#ifndef ATTN_KERN_H
#define ATTN_KERN_H

#include <stddef.h>

/* Column padding every caller must respect: ncols and ld of B and C are
 * multiples of this (floats), so every kernel can work in whole vectors. */
#define ATTN_KERN_COLS 16
/* The most rows any kernel processes per call; buffers size for it. */
#define ATTN_KERN_MAX_ROWS 16

typedef struct attn_kern {
    const char *name;   /* "avx512", "avx2", "generic" */
    int rows;           /* R: rows of A per tile / softmax call, <= ATTN_KERN_MAX_ROWS */

    /* C[r][0..ncols) = sum_{t<K} a[r][aoff + t] * B[t][0..ncols) for r < R.
     * B and C are row-major with leading dimensions ldb, ldc; ncols, ldb and
     * ldc are multiples of ATTN_KERN_COLS.  All R pointers a[r] must be valid
     * (pad with repeats).  No alignment is required. */
    void (*tile)(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                 int ncols, float *c, size_t ldc);

    /* As tile, then for r < R and j < ncols: z[r][j] = C[r][j] scale + bias[j],
     * stored at z (and the plain C[r][j] at raw, unless raw is NULL), both with
     * leading dimension ldz; rowmax[r] = max_j z[r][j].  z = -inf (padding,
     * or an underflowing logit) is allowed and gets weight 0. */
    void (*logits)(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                   int ncols, float scale, const float *bias, float *z, float *raw,
                   size_t ldz, float *rowmax);

    /* For r < R: acc[r] += sum_j 2^(z_j - rowmax[r]) S[r][j] / sum_j 2^(z_j - rowmax[r]),
     * j < ncols.  Z and S have leading dimension ld; S may be the raw output
     * of logits.  A NaN or +inf logit (overflowing inputs) makes acc[r] NaN:
     * 2^y propagates NaN, and inf - inf is NaN.  That is the only check the
     * fast path needs: a non-finite score is ATTN_ERANGE. */
    void (*softmax_dot)(const float *z, const float *s, size_t ld, int ncols,
                        const float *rowmax, float *acc);

    /* For r < R and j < ncols: w[r][j] += wscale softmax2(z[r])_j.
     * Overwrites Z (it keeps the exponentials between passes). */
    void (*softmax_acc)(float *z, size_t ld, int ncols, const float *rowmax, float wscale,
                        float *w, size_t ldw);

    /* out (m x lp, row-major) = the L m-vectors at row[j] + off as columns,
     * columns [L, lp) zero; lp is L rounded up to ATTN_KERN_COLS.  The
     * history's transpose, so that a head's keys are a contiguous B for tile. */
    void (*pack)(const float *const *row, size_t off, int L, int m, size_t lp, float *out);
} attn_kern;

extern const attn_kern attn_kern_generic;
#if defined(__x86_64__)
extern const attn_kern attn_kern_avx2;
extern const attn_kern attn_kern_avx512;
#endif

/* The kernel set in use: chosen once from the CPU's features, or the one
 * forced by attn_kernel_select() (score.h).  Never NULL. */
const attn_kern *attn_kern_get(void);

#endif
