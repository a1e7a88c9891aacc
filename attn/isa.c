/* isa.c -- choosing the vector instruction set for every attn/ kernel family.
 *
 * The choice is made once, on first use, from CPUID; attn_kernel_select()
 * (declared in score.h, the library's public face for it) can force a level
 * so that tests run every implementation the machine has against the
 * reference and benchmarks can compare them.
 */
#include "attn/isa.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/score.h"

static const char *const s_names[ATTN_ISA_N] = {"generic", "avx2", "avx512",
                                                         "avx512bf16"};

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static attn_isa s_best = ATTN_ISA_GENERIC;   /* set once by s_detect */
static atomic_int s_forced = -1;             /* -1: automatic */

int attn_isa_runs(attn_isa isa)
{
    switch (isa) {
    case ATTN_ISA_GENERIC:
        return 1;
#if defined(__x86_64__)
    case ATTN_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case ATTN_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    case ATTN_ISA_AVX512BF16:
        return attn_isa_runs(ATTN_ISA_AVX512) && __builtin_cpu_supports("avx512bf16");
#endif
    default:
        return 0;
    }
}

static void s_detect(void)
{
    for (int i = ATTN_ISA_N - 1; i > ATTN_ISA_GENERIC; i--)
        if (attn_isa_runs((attn_isa)i)) {
            s_best = (attn_isa)i;
            return;
        }
}

attn_isa attn_isa_get(void)
{
    int f = atomic_load_explicit(&s_forced, memory_order_acquire);
    if (f >= 0)
        return (attn_isa)f;
    pthread_once(&s_once, s_detect);
    return s_best;
}

const char *attn_isa_name(attn_isa isa)
{
    return (int)isa >= 0 && isa < ATTN_ISA_N ? s_names[isa] : NULL;
}

const char *attn_kernel_name(void)
{
    return s_names[attn_isa_get()];
}

int attn_kernel_select(const char *name)
{
    if (!name || strcmp(name, "auto") == 0) {
        atomic_store_explicit(&s_forced, -1, memory_order_release);
        return ATTN_OK;
    }
    for (int i = 0; i < ATTN_ISA_N; i++)
        if (strcmp(name, s_names[i]) == 0) {
            if (!attn_isa_runs((attn_isa)i))
                return ATTN_EINVAL;
            atomic_store_explicit(&s_forced, i, memory_order_release);
            return ATTN_OK;
        }
    return ATTN_EINVAL;
}
