/* vexp.h -- constants of the fast path's exp(x), x <= 0 (internal).
 *
 * exp(x) = 2^n exp(r) with n = round(x / ln 2) and r = x - n ln 2, so that
 * |r| <= ln2/2.  ln 2 is split in two (Cody and Waite) so that n ln2_hi is
 * exact for every n we meet and r keeps full precision.  exp(r) is its
 * Taylor polynomial to degree 6: the truncation error is below
 * (ln2/2)^7 / 7! = 1.2e-7 relative, about one float ulp, well inside the
 * 1e-6 the scorer needs.  Below ATTN_VEXP_MIN the result is flushed to 0: it
 * would be under FLT_MIN, and after the softmax's max subtraction (the max
 * term is exactly 1) such terms cannot change a float sum.
 */
#ifndef ATTN_VEXP_H
#define ATTN_VEXP_H

#define ATTN_VEXP_MIN (-87.3f)              /* exp(-87.3) = 1.2e-38 > FLT_MIN */
#define ATTN_VEXP_LOG2E 1.44269504088896341f
#define ATTN_VEXP_LN2_HI 0.693359375f        /* 355/512: 9 significant bits */
#define ATTN_VEXP_LN2_LO (-2.12194440054690583e-4f)  /* ln 2 - 355/512 */
#define ATTN_VEXP_C2 (1.0f / 2.0f)
#define ATTN_VEXP_C3 (1.0f / 6.0f)
#define ATTN_VEXP_C4 (1.0f / 24.0f)
#define ATTN_VEXP_C5 (1.0f / 120.0f)
#define ATTN_VEXP_C6 (1.0f / 720.0f)

#endif
