/* mem.c -- see mem.h. */
#include "util/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *util_alloc64(size_t n, size_t size)
{
    void *p = NULL;
    if (n == 0)
        n = 1;
    if (size == 0 || n > SIZE_MAX / size || posix_memalign(&p, 64, n * size) != 0)
        return NULL;
    return p;
}

void *util_zalloc64(size_t n, size_t size)
{
    void *p = util_alloc64(n, size);
    if (p)
        memset(p, 0, (n ? n : 1) * size);
    return p;
}
