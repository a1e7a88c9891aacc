/* trim.h -- a model with a part cut out, for `attnctl model trim`.
 *
 *     attn_model *t = attn_trim_head(md, 2);     // heads-1 heads, same head width
 *     attn_model *u = attn_trim_block(md);       // no self-attention block
 *     attn_model *f = attn_trim_ffn(md);         // the block without its feed-forward
 *
 * A head is m/H columns of W_Q, W_K, W_V (and of the block's four
 * projections) and the same rows of W_O; cutting it leaves the other heads'
 * attention exactly as it was, so the trimmed model scores what the original
 * scores with that head's rows of W_O set to zero (the tests check it
 * against the reference scorer).  With a self-attention block the block's
 * logits are a dot product over all m columns scaled by 1/sqrt(m): the
 * cut keeps the scale (S_Q is rescaled) but loses the head's columns'
 * share of the dot product, which is why `model trim` measures every cut on
 * validation data instead of assuming.  The block's feed-forward layer mixes
 * all 2m entries of [k' | v'] too: a head cut drops the head's rows of W1,
 * columns of W2 and entries of b2 (exact only if those rows of W1 were
 * zero), and is refused (ATTN_EINVAL) when m - m/H is not a multiple of 8,
 * which the layer needs.  Scale, position biases and per-item parameters
 * are kept.
 */
#ifndef ATTN_TRIM_H
#define ATTN_TRIM_H

#include "attn/model.h"

/* A copy of md without head h (0 <= h < heads, heads > 1, projections
 * present).  NULL with *status ATTN_EINVAL or ATTN_ENOMEM. */
attn_model *attn_trim_head(const attn_model *md, int h, int *status);

/* A copy of md without its self-attention block, and so without the
 * block's feed-forward layer (ATTN_EINVAL if it has none).  NULL with
 * *status set on failure. */
attn_model *attn_trim_block(const attn_model *md, int *status);

/* A copy of md without its feed-forward layer, the block kept (ATTN_EINVAL
 * if it has none).  NULL with *status set on failure. */
attn_model *attn_trim_ffn(const attn_model *md, int *status);

#endif
