/* kern.c -- choosing the kernel set (kern.h) for this CPU.
 *
 * The choice is made once, on first use, from CPUID (GCC's
 * __builtin_cpu_supports, which also checks that the OS saves the wide
 * registers).  attn_kernel_select() can force a set, so that tests run every
 * implementation the machine has against the reference and benchmarks can
 * compare them.
 */
#include "attn/kern.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/score.h"

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static const attn_kern *s_best = &attn_kern_generic;       /* set once by s_detect */
static _Atomic(const attn_kern *) s_forced;                 /* NULL = automatic */

static int s_supported(const attn_kern *k)
{
    if (k == &attn_kern_generic)
        return 1;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (k == &attn_kern_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    if (k == &attn_kern_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return 0;
}

static void s_detect(void)
{
#if defined(__x86_64__)
    if (s_supported(&attn_kern_avx512))
        s_best = &attn_kern_avx512;
    else if (s_supported(&attn_kern_avx2))
        s_best = &attn_kern_avx2;
#endif
}

const attn_kern *attn_kern_get(void)
{
    const attn_kern *k = atomic_load_explicit(&s_forced, memory_order_acquire);
    if (k)
        return k;
    pthread_once(&s_once, s_detect);
    return s_best;
}

const char *attn_kernel_name(void)
{
    return attn_kern_get()->name;
}

int attn_kernel_select(const char *name)
{
    if (!name || strcmp(name, "auto") == 0) {
        atomic_store_explicit(&s_forced, NULL, memory_order_release);
        return ATTN_OK;
    }
    const attn_kern *all[] = {
        &attn_kern_generic,
#if defined(__x86_64__)
        &attn_kern_avx2, &attn_kern_avx512,
#endif
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, all[i]->name) == 0) {
            if (!s_supported(all[i]))
                return ATTN_EINVAL;
            atomic_store_explicit(&s_forced, all[i], memory_order_release);
            return ATTN_OK;
        }
    return ATTN_EINVAL;
}
