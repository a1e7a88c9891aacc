/* vexp.h -- the fast path's exponential, 2^y for y <= 0 (internal).
 *
 * The softmax runs in base 2: score.c folds log2(e) into the logit scale and
 * bias once per request, so the kernels need 2^y rather than e^x and the
 * usual range reduction (a multiply by log2 e and a two-constant Cody-Waite
 * subtraction) shrinks to one exact subtraction:
 *
 *     n = round(y),  f = y - n in [-1/2, 1/2],  2^y = 2^n 2^f.
 *
 * 2^f = e^(f ln 2) is its Taylor polynomial to degree 6, coefficients
 * (ln 2)^k / k!: the truncation error is below (ln2/2)^7 / 7! = 1.2e-7
 * relative, about one float ulp, well inside the 1e-6 the scorer needs.
 *
 * Below ATTN_VEXP_MIN the result is an exact 0: 2^-125 is the last power
 * for which 2^n 2^f (2^f >= 0.707) is still a normal float.  Subnormal
 * results would cost a microcode assist each, and after the softmax's max
 * subtraction (the max term is exactly 1) such terms cannot change a float
 * sum anyway.
 */
#ifndef ATTN_VEXP_H
#define ATTN_VEXP_H

#define ATTN_VEXP_MIN (-125.0f)
#define ATTN_VEXP_LOG2E 1.44269504088896341f
#define ATTN_VEXP_C1 0.693147180559945309f     /* (ln 2)^k / k! */
#define ATTN_VEXP_C2 0.240226506959100712f
#define ATTN_VEXP_C3 0.0555041086648215800f
#define ATTN_VEXP_C4 0.00961812910762847716f
#define ATTN_VEXP_C5 0.00133335581464284434f
#define ATTN_VEXP_C6 0.000154035303933816100f

#endif
