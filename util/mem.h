/* mem.h -- arrays aligned to 64 bytes: a cache line, and the widest vector
 * load the kernels issue, so no row straddles two lines.
 *
 *     float *w = util_zalloc64(rows * cols, sizeof(float));   // zeroed
 *     if (!w)
 *         return NOMEM;
 *     ...
 *     free(w);
 *
 * n == 0 allocates one element, so NULL always means failure: n * size
 * overflowing size_t, or no memory.
 */
#ifndef UTIL_MEM_H
#define UTIL_MEM_H

#include <stddef.h>

void *util_alloc64(size_t n, size_t size);    /* contents undefined */
void *util_zalloc64(size_t n, size_t size);   /* zeroed */

#endif
