/* topk.h -- deterministic top-k selection.
 *
 * Order: larger score first; equal scores by smaller index first.  NaN never
 * reaches here (callers check), so the order is total.
 */
#ifndef ATTN_TOPK_H
#define ATTN_TOPK_H

#include <stdint.h>

/* Write the indexes of the k best of scores[0..n) to idx, best first.
 * k is clipped to n; returns the number written.  O(n log k), no allocation. */
int attn_topk_f32(const float *scores, int n, int k, uint32_t *idx);
int attn_topk_f64(const double *scores, int n, int k, uint32_t *idx);

#endif
