/* kern.h -- the inner loops of the fast path, one set per instruction set.
 * Internal to attn/: score.c and tables.c drive these; nothing else should.
 *
 * The loops that carry the arithmetic of a request (and pack lays out the
 * history for them):
 *
 *   tile         C = A B for a few rows of A (a small GEMM whose A rows are
 *                reached through pointers, so candidate rows are read in
 *                place from the catalog tables, never gathered);
 *   logits       the same product for Z = Q K, finished while it is still in
 *                registers: z = scale Z + bias is stored together with each
 *                row's maximum, which saves the softmax a pass;
 *   softmax_exp  for a few rows, e = 2^(z - max) in place and its row sums;
 *   av_dot       for the same rows, sum_j e_j (v_j . g) / sum: the weighted
 *                sum of the history's values (rows read in place through
 *                pointers, no transpose), dotted with the candidate's g;
 *   softmax_dot  sum_j softmax(z)_j S_j in one fused pass, for the identity
 *                model, whose S is the raw logits product itself;
 *   softmax_acc  the softmax, accumulated as weights (explanations);
 *   widen/narrow bfloat16 rows to floats and back (tables of that precision).
 *
 * The softmax is in base 2: 2^(z - max z), with log2(e) folded into the
 * caller's scale and bias (vexp.h).  Padding columns carry a bias of -inf:
 * their z is -inf and their weight exactly 0, so no loop needs a tail mask.
 *
 * Each implementation lives in its own file compiled for its own target
 * (kern_avx512.c, kern_avx2.c) plus the portable kern_generic.c, and the
 * bfloat16 products of kern_avx512bf16.c (attn_kern_dp below); kern.c maps
 * the instruction set isa.c chose (the best the CPU runs, once, at first use)
 * to its set, so the binary runs on any x86-64.  Implementations agree to
 * within float rounding, not bitwise (and with a self-attention block the
 * pair path rounds the block's k', v' to bfloat16 too: docs/MODEL.md
 * §5.2.1).
 */
#ifndef ATTN_KERN_H
#define ATTN_KERN_H

#include <stddef.h>
#include <stdint.h>

/* Column padding every caller must respect: ncols and ld of B and C are
 * multiples of this (floats), so every kernel can work in whole vectors. */
#define ATTN_KERN_COLS 16
/* The most rows any kernel processes per call; buffers size for it. */
#define ATTN_KERN_MAX_ROWS 16

/* B's columns again, as rows: column j of B is the K floats at row[j] + off,
 * for j < n; columns from n on are padding.  score.c has the history's keys
 * in both layouts, and L = 50 pads to 64 columns: a last vector of 16 that
 * holds 2 real ones.  A kernel may compute such a vector's few real columns
 * as dot products from the rows (kern_avx512.c does), and then gives each
 * padding column in it a product of exactly 0 (raw 0, z = bias: -inf).
 * NULL: B from b alone. */
typedef struct attn_kern_bcols {
    const float *const *row;
    size_t off;
    int n;
} attn_kern_bcols;

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
     * or an underflowing logit) is allowed and gets weight 0.  bc: B's
     * columns as rows too, or NULL (attn_kern_bcols). */
    void (*logits)(const float *const *a, size_t aoff, int K, const float *b, size_t ldb,
                   int ncols, float scale, const float *bias, float *z, float *raw,
                   size_t ldz, float *rowmax, const attn_kern_bcols *bc);

    /* For r < R and j < ncols: z[r][j] = 2^(z[r][j] - rowmax[r]), in place;
     * sum[r] = the row's sum.  ld and ncols as for tile. */
    void (*softmax_exp)(float *z, size_t ld, int ncols, const float *rowmax, float *sum);

    /* For r < R: acc[r] += (sum_{j<L} e[r][j] v_j) . g_r / sum[r], where
     * v_j = vrow[j] + voff and g_r = grow[r] + goff are n-vectors (any n >= 1,
     * read in place: no alignment, no padding) and e has leading dimension
     * lde.  The second half of the attention after softmax_exp: weighting the
     * values and dotting with g costs L n + n multiply-adds per row, where
     * forming S = G Vᵀ first would cost lp n and need V transposed.  A NaN or
     * inf anywhere makes acc[r] NaN or inf: the caller checks the scores. */
    void (*av_dot)(const float *e, size_t lde, int L, const float *const *vrow, size_t voff,
                   int n, const float *const *grow, size_t goff, const float *sum,
                   float *acc);

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

    /* out (m x lp, row-major) = the m-vectors at row[j] + off as columns,
     * j < lp, where lp is L rounded up to ATTN_KERN_COLS.  The history's
     * transpose, so that a head's keys are a contiguous B for tile.  Columns
     * past L need only be finite (their bias is -inf): the vector sets copy
     * whatever rows row[L..lp) point to -- the caller pads the pointers with
     * repeats of real rows -- rather than spend a branch per row on zeros.
     * The AVX-512 set copies elements bit for bit, so rows of bfloat16 pairs read as
     * 32-bit elements go through it too (score.c, for attn_kern_dp). */
    void (*pack)(const float *const *row, size_t off, int L, int m, size_t lp, float *out);

    /* The self-attention block's two loops (score.c), over a few rows reached
     * through pointers:
     *   dots    z[i] = q[0..n) . row[i][off..off+n),            i < cnt
     *   axpys   out[0..n) += sum_{i < cnt} w[i] row[i][off..off+n)
     * Any n >= 1 (vector sets mask the tail). */
    void (*dots)(const float *q, const float *const *row, size_t off, int n, int cnt, float *z);
    void (*axpys)(float *out, const float *const *row, size_t off, int n, int cnt,
                  const float *w);

    /* bfloat16 tables (bf16.h has the format and the rounding):
     *   widen    dst[0..n) = src[0..n) as floats, exactly;
     *   narrow   dst[0..n) = src[0..n) rounded to bfloat16, to nearest,
     *            ties to even (NaN stays NaN).
     * Any n; no alignment.  A request widens the rows it reads into its
     * scratch (the arithmetic stays in float), the table build narrows. */
    void (*widen)(const uint16_t *src, float *dst, size_t n);
    void (*narrow)(const float *src, uint16_t *dst, size_t n);
} attn_kern;

/* The two products of a head straight from bfloat16 rows, on CPUs with
 * vdpbf16ps (AVX512-BF16), for bfloat16 tables: that instruction multiplies
 * 16 pairs of bfloat16 and adds both products of a pair to a float, twice
 * the multiply-adds of an FMA per instruction.  A's rows are bfloat16, read
 * in place (the candidates' rows in the tables, never widened); B is
 * pair-interleaved: element [t][j] is 32 bits holding B's rows 2t and 2t+1
 * of column j (the low half the first), which is what pack makes of the
 * history's rows read as pairs.  So the inner dimension is K2 pairs.
 *
 *   tile     C[r][0..ncols) = sum_{t<K2} a[r][aoff+2t] B[2t][.] + a[r][aoff+2t+1] B[2t+1][.]
 *   logits   the same product finished as attn_kern's logits is (raw too).
 *
 * Columns [nreal, ncols) are padding: the caller's bias there is -inf, and
 * a kernel may skip their products.  Their logits are -inf all the same;
 * the tile's C and the raw product there are finite, otherwise unspecified.
 *
 * Otherwise as attn_kern's tile and logits, with the same rows per call
 * (score.c runs two products per head here, the logits and S = G Vᵀ, and
 * then softmax_dot). */
typedef struct attn_kern_dp {
    const char *name;
    int rows;
    void (*tile)(const uint16_t *const *a, size_t aoff, int K2, const uint32_t *b, size_t ldb,
                 int ncols, int nreal, float *c, size_t ldc);
    void (*logits)(const uint16_t *const *a, size_t aoff, int K2, const uint32_t *b,
                   size_t ldb, int ncols, int nreal, float scale, const float *bias, float *z,
                   float *raw, size_t ldz, float *rowmax);
} attn_kern_dp;

extern const attn_kern attn_kern_generic;
#if defined(__x86_64__)
extern const attn_kern attn_kern_avx2;
extern const attn_kern attn_kern_avx512;
extern const attn_kern_dp attn_kern_avx512bf16;
#endif

/* The kernel set for the instruction set in use (isa.h): chosen once from
 * the CPU's features, or forced by attn_kernel_select() (score.h).  Never
 * NULL. */
const attn_kern *attn_kern_get(void);

/* The bfloat16 products for the level in use, or NULL where it has none:
 * bfloat16 tables are then widened to floats and go through attn_kern. */
const attn_kern_dp *attn_kern_dp_get(void);

/* Ask for the cache line holding p (read, all cache levels).  An asm
 * statement rather than __builtin_prefetch: GCC 12 deletes a loop of
 * __builtin_prefetch calls as dead code once it can bound the trip count
 * (measured: the scoring loop's prefetches vanished from the object file),
 * and an asm volatile cannot be removed. */
static inline void attn_prefetch(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#elif defined(__aarch64__)
    __asm__ volatile("prfm pldl1keep, %0" : : "Q"(*(const char *)p));
#else
    __builtin_prefetch(p, 0, 3);
#endif
}

#endif
