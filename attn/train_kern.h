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
 * and two loops carry the per-example softmax over a history window.  They
 * are vectorised across candidates, not across the window: Z and S are
 * stored event-major (row j = one history event, column c = one candidate,
 * leading dimension ld), so a vector holds one event's logits for 8 or 16
 * candidates, every lane runs its own softmax, and nothing is reduced
 * across lanes except the position-bias gradient, once per call.
 *
 *   sm_fwd  for c < n:  x_j = scale Z[j][c] + bias[j],  mx_c = max_j x_j,
 *           e_j = exp(x_j - mx_c),  inv_c = 1 / sum_j e_j,
 *           sc_c = inv_c sum_j e_j S[j][c]
 *   sm_bwd  for c < n, with a_j = e_j inv_c recomputed from mx_c and inv_c,
 *           ga = g_c a_j:  dS[j][c] += ga;  dzz = ga (S[j][c] - sc_c);
 *           dZ[j][c] += scale dzz;  dbw[j] += sum_c dzz
 *
 * The factorised softmax (train_fact.c) needs two more, elementwise over a
 * chunk's p event rows and n candidate columns:
 *
 *   fx_exp   for c < n: mx_c = max_{j<p} scale Z[j][c],
 *            E[j][c] = exp(scale Z[j][c] - mx_c),  ES[j][c] = E[j][c] S[j][c]
 *   fx_grad  with e = E[j][c], es = ES[j][c]:  E[j][c] <- scale (es A1[j][c] -
 *            e A2[j][c])  (that is dZ),  ES[j][c] <- e A1[j][c]  (dS)
 *
 * n is a multiple of 16 (callers pad the candidate dimension with zero rows
 * and g = 0); `work` is scratch of 16 x l floats.  A window entry with bias
 * ATTN_TR_NEG gets weight exactly 0.  Results agree between sets to float
 * rounding, not bitwise; a run always uses one set, so it stays
 * reproducible on its machine.
 */
#ifndef ATTN_TRAIN_KERN_H
#define ATTN_TRAIN_KERN_H

#include <stddef.h>

/* Bias of dropped events: exp of it is exactly 0, and unlike -inf it keeps
 * every product finite. */
#define ATTN_TR_NEG (-1.0e30f)

/* Candidate padding every sm_* call needs. */
#define ATTN_TR_LANES 16

typedef struct attn_tr_kern {
    const char *name;
    void (*mm_nn)(int rows, int n, int k, const float *A, size_t lda, const float *B,
                  size_t ldb, float *C, size_t ldc, int acc);
    void (*mm_tn)(int rows, int cols, int n, const float *A, size_t lda, const float *B,
                  size_t ldb, float *C, size_t ldc, int acc);
    void (*sm_fwd)(const float *Z, const float *S, size_t ld, int l, const float *bias,
                   float scale, int n, float *sc, float *mx, float *inv, float *work);
    void (*sm_bwd)(const float *Z, const float *S, size_t ld, int l, const float *bias,
                   float scale, int n, const float *g, const float *sc, const float *mx,
                   const float *inv, float *dZ, float *dS, float *dbw, float *work);
    void (*fx_exp)(const float *Z, const float *S, size_t ld, int p, int n, float scale,
                   float *mx, float *E, float *ES);
    void (*fx_grad)(float *E, float *ES, const float *A1, const float *A2, size_t ld, int p,
                    int n, float scale);
} attn_tr_kern;

/* The set for the instruction set in use (attn/isa.h: the best this CPU
 * runs, chosen once, or the one attn_kernel_select() forced -- for scoring
 * and training alike): "avx512", "avx2" or "generic". */
const attn_tr_kern *attn_tr_kern_get(void);

/* The portable set, and the vector ones (NULL if the CPU cannot run them,
 * by attn_isa_runs). */
const attn_tr_kern *attn_tr_kern_generic(void);
const attn_tr_kern *attn_tr_kern_avx2(void);
const attn_tr_kern *attn_tr_kern_avx512(void);

#endif
