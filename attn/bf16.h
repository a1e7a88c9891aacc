/* bf16.h -- bfloat16 <-> float, one value at a time (internal to attn/).
 *
 * bfloat16 is the top half of a float: the same sign and 8-bit exponent,
 * and 7 of the 23 fraction bits (8 significant bits with the implicit one).
 * Widening is exact; narrowing rounds to nearest, ties to even, so a
 * normal value's relative error is at most 2^-8 (ATTN_BF16_U): a unit in
 * the 8th significant bit is 2^-7 of the leading bit's weight, half of it
 * 2^-8, and the value is at least that weight -- unless it is so large that
 * it rounds to inf (subnormals err by at most half the smallest spacing).
 * NaN stays NaN.  The kernel sets (kern.h: widen, narrow) do the same on
 * whole rows; these are the specification they are tested against.
 */
#ifndef ATTN_BF16_H
#define ATTN_BF16_H

#include <stdint.h>
#include <string.h>

/* The unit roundoff of bfloat16: |narrow(x) - x| <= ATTN_BF16_U |x|. */
#define ATTN_BF16_U (1.0 / 256.0)

static inline float attn_bf16_to_f32(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline uint16_t attn_bf16_from_f32(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    if ((b & 0x7FFFFFFFu) > 0x7F800000u)      /* NaN: keep it one, quiet */
        return (uint16_t)((b >> 16) | 0x40u);
    /* Adding 0x7FFF rounds half down, plus the kept part's last bit rounds
     * ties to even; a carry into the exponent is the correct rounding up
     * (and at the top of the range it reaches inf, as it should). */
    return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

#endif
