/* kern_avx512.h -- what the AVX-512 kernel files share (internal to attn/;
 * include only from a file compiled for AVX-512: kern_avx512.c,
 * kern_avx512bf16.c).
 *
 * A register block is S_ROWS rows by up to three vectors of columns: 24
 * accumulators.  Its epilogue either stores the product (tile) or turns it
 * into logits while it is still in registers (logits): scaled, biased,
 * stored, and each row's running maximum kept.
 */
#ifndef ATTN_KERN_AVX512_H
#define ATTN_KERN_AVX512_H

#include <immintrin.h>
#include <stddef.h>

#define S_ROWS 8

/* What a block does with its product once the inner loop is done: store it
 * (tile), or turn it into logits and keep the row maxima (logits). */
typedef struct s_epi {
    const float *bias;   /* NULL: plain tile */
    __m512 scale;
    float *raw;          /* also store the plain product here, or NULL */
    __m512 *mx;          /* S_ROWS running maxima */
} s_epi;

/* The block's product is done: store it (tile), or turn it into logits and
 * keep the row maxima. */
static inline __attribute__((always_inline)) void
s_finish(__m512 acc[S_ROWS][3], float *c, size_t ldc, const int W, const s_epi *ep, size_t j0)
{
    if (!ep) {
#pragma GCC unroll 8
        for (int r = 0; r < S_ROWS; r++)
#pragma GCC unroll 3
            for (int w = 0; w < W; w++)
                _mm512_storeu_ps(c + (size_t)r * ldc + 16 * w, acc[r][w]);
        return;
    }
#pragma GCC unroll 8
    for (int r = 0; r < S_ROWS; r++) {
        __m512 mx = ep->mx[r];
#pragma GCC unroll 3
        for (int w = 0; w < W; w++) {
            if (ep->raw)
                _mm512_storeu_ps(ep->raw + (size_t)r * ldc + j0 + 16 * w, acc[r][w]);
            __m512 z = _mm512_fmadd_ps(acc[r][w], ep->scale, _mm512_loadu_ps(ep->bias + j0 + 16 * w));
            _mm512_storeu_ps(c + (size_t)r * ldc + 16 * w, z);
            mx = _mm512_max_ps(mx, z);
        }
        ep->mx[r] = mx;
    }
}

/* The accumulators of one block, zeroed. */
static inline __attribute__((always_inline)) void s_zero_acc(__m512 acc[S_ROWS][3])
{
#pragma GCC unroll 8
    for (int r = 0; r < S_ROWS; r++)
#pragma GCC unroll 3
        for (int w = 0; w < 3; w++)
            acc[r][w] = _mm512_setzero_ps();
}

#endif
