/* train_kern.h -- the trainer's inner loops, one set per instruction set.
 * Internal to attn/train*.c.
 *
 * Two small matrix products cover every product of a training step (the
 * shapes are skinny -- a head is 16-64 wide -- and the trainer runs one per
 * thread, so a tuned loop beats calling a BLAS that may have picked a slow
 * core, and keeps the threads free of any library lock):
 *
 *   mm_nn   C[r][0..n) (+)= sum_{t<k} A[r][t] B[t][0..n)          r < rows
 *   mm_tn   C[p][0..n) (+)= sum_{r<rows} A[r][p] B[r][0..n)        p < cols
 *
 * and two loops carry the per-example softmax over a history window of n8
 * entries (a multiple of 8, padded with bias ATTN_TR_NEG so the padding gets
 * weight exactly 0):
 *
 *   softmax_fwd  e[j] = exp(scale z[j] + bias[j] - max); returns
 *                sum_j e[j] s[j] / sum_j e[j] and sets *inv = 1 / sum_j e[j]
 *   softmax_bwd  with ga = ginv e[j]:  ds[j] += ga;  dzz = ga (s[j] - sc);
 *                dz[j] += scale dzz;  dbw[j] += dzz
 *
 * Results agree between sets to float rounding, not bitwise; a run always
 * uses one set, so it stays reproducible on its machine.
 */
#ifndef ATTN_TRAIN_KERN_H
#define ATTN_TRAIN_KERN_H

#include <stddef.h>

/* Bias of padding and dropped events: exp of it is exactly 0, and unlike
 * -inf it keeps every product finite. */
#define ATTN_TR_NEG (-1.0e30f)

typedef struct attn_tr_kern {
    const char *name;
    void (*mm_nn)(int rows, int n, int k, const float *A, size_t lda, const float *B,
                  size_t ldb, float *C, size_t ldc, int acc);
    void (*mm_tn)(int rows, int cols, int n, const float *A, size_t lda, const float *B,
                  size_t ldb, float *C, size_t ldc, int acc);
    float (*softmax_fwd)(const float *z, const float *bias, float scale, int n8,
                         const float *s, float *e, float *inv);
    void (*softmax_bwd)(const float *e, const float *s, float sc, float ginv, float scale,
                        int n8, float *dz, float *ds, float *dbw);
} attn_tr_kern;

/* The best set this CPU runs ("avx512", "avx2" or "generic"), chosen once. */
const attn_tr_kern *attn_tr_kern_get(void);

/* The portable set, and the vector ones (NULL if the CPU cannot run them). */
const attn_tr_kern *attn_tr_kern_generic(void);
const attn_tr_kern *attn_tr_kern_avx2(void);
const attn_tr_kern *attn_tr_kern_avx512(void);

/* Force a set for the rest of the process: "generic", "avx2", "avx512" or NULL for
 * the automatic choice.  Returns 0, or -1 if this CPU cannot run it.  For
 * tests; not while training runs. */
int attn_tr_kern_select(const char *name);

#endif
