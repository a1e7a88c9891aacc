/* blob.c -- the byte order of every blob, and the finiteness check.
 *
 * Embeddings and tensors are stored little-endian so that a database file
 * moves between hosts.  On little-endian hosts (every machine we build for)
 * decoding is a memcpy; the byte-swapping branch keeps big-endian hosts
 * correct rather than silently wrong.
 */
#include "store/store_int.h"

#include <string.h>

static uint32_t s_bswap32(uint32_t x)
{
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

static uint64_t s_bswap64(uint64_t x)
{
    return ((uint64_t)s_bswap32((uint32_t)x) << 32) | s_bswap32((uint32_t)(x >> 32));
}

void store_f32_decode(float *dst, const void *src, size_t n)
{
    if (STORE_HOST_LE) {
        memcpy(dst, src, n * sizeof *dst);
        return;
    }
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        u = s_bswap32(u);
        memcpy(dst + i, &u, 4);
    }
}

void store_f32_encode(void *dst, const float *src, size_t n)
{
    /* The same swap both ways. */
    store_f32_decode(dst, src, n);
}

void store_i64_decode(int64_t *dst, const void *src, size_t n)
{
    if (STORE_HOST_LE) {
        memcpy(dst, src, n * sizeof *dst);
        return;
    }
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, p + 8 * i, 8);
        u = s_bswap64(u);
        memcpy(dst + i, &u, 8);
    }
}

void store_i64_encode(void *dst, const int64_t *src, size_t n)
{
    store_i64_decode(dst, src, n);
}

/* Exponent bits all ones: NaN or infinity. */
static int s_nonfinite_bits(uint32_t u)
{
    return (u & 0x7f800000u) == 0x7f800000u;
}

ptrdiff_t store_first_nonfinite(const float *x, size_t n)
{
    /* A float is NaN or infinite exactly when |bits| >= 0x7f800000.  The
     * inner loop has a constant trip count and a max reduction, which GCC
     * vectorises even at -O2; only a dirty chunk is searched element by
     * element.  The catalog load runs this over every embedding. */
    enum { CHUNK = 64 };
    size_t i = 0;
    for (; i + CHUNK <= n; i += CHUNK) {
        uint32_t top = 0;
        for (size_t k = 0; k < CHUNK; k++) {
            uint32_t u;
            memcpy(&u, x + i + k, 4);
            u &= 0x7fffffffu;
            top = u > top ? u : top;
        }
        if (top >= 0x7f800000u)
            break;
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, 4);
        if (s_nonfinite_bits(u))
            return (ptrdiff_t)i;
    }
    return -1;
}
