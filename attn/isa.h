/* isa.h -- which vector instruction set the attn/ kernels use (internal).
 *
 * One mechanism for every kernel family in attn/: the scoring kernels
 * (kern.c) and the trainer's (train_kern.c) both ask attn_isa_get() for the
 * level in use and map it to the best set they have at or below it.  The
 * CPU is tested here and nowhere else, so the two families can never
 * disagree about what this machine runs, and attn_kernel_select() (score.h)
 * forces both at once.
 *
 *     switch (attn_isa_get()) {
 *     case ATTN_ISA_AVX512: return &my_avx512_set;
 *     case ATTN_ISA_AVX2:   return &my_avx2_set;
 *     default:              return &my_generic_set;
 *     }
 */
#ifndef ATTN_ISA_H
#define ATTN_ISA_H

/* Ordered: a level implies every one before it. */
typedef enum attn_isa {
    ATTN_ISA_GENERIC = 0,   /* plain C, any CPU */
    ATTN_ISA_AVX2 = 1,      /* AVX2 + FMA (Haswell and later) */
    ATTN_ISA_AVX512 = 2,    /* AVX-512F + AVX2 + FMA (Skylake-SP and later) */
    ATTN_ISA_AVX512BF16 = 3,/* and AVX512-BF16 (Cooper Lake, Sapphire Rapids, Zen 4
                               and later): bfloat16 tables skip the widening */
    ATTN_ISA_N
} attn_isa;

/* 1 if this CPU, and the OS (which must save the wide registers), run the
 * level; from CPUID through GCC's __builtin_cpu_supports. */
int attn_isa_runs(attn_isa isa);

/* The level in use: the best this CPU runs, chosen once, or the one forced
 * by attn_kernel_select().  Cheap enough to call per request. */
attn_isa attn_isa_get(void);

/* "generic", "avx2", "avx512", "avx512bf16"; NULL for a value outside the enum. */
const char *attn_isa_name(attn_isa isa);

#endif
