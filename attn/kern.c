/* kern.c -- the scoring kernel set (kern.h) for the instruction set in use.
 *
 * isa.c decides the level, once, for every kernel family in attn/; this
 * only maps it to a set.
 */
#include "attn/kern.h"

#include "attn/isa.h"

const attn_kern *attn_kern_get(void)
{
    switch (attn_isa_get()) {
#if defined(__x86_64__)
    case ATTN_ISA_AVX512BF16:   /* the same float set; the pairs are attn_kern_dp's */
    case ATTN_ISA_AVX512:
        return &attn_kern_avx512;
    case ATTN_ISA_AVX2:
        return &attn_kern_avx2;
#endif
    default:
        return &attn_kern_generic;
    }
}

const attn_kern_dp *attn_kern_dp_get(void)
{
#if defined(__x86_64__)
    if (attn_isa_get() == ATTN_ISA_AVX512BF16)
        return &attn_kern_avx512bf16;
#endif
    return NULL;
}
