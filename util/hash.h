/* hash.h -- FNV-1a and a 64-bit finaliser: the non-cryptographic string
 * hash every module uses, so that a value once hashed hashes the same in
 * every room (and on every replica: experiment arms depend on it).
 *
 *     uint64_t h = util_fnv1a(UTIL_FNV_OFFSET, "u42", 3);   // FNV-1a 64
 *     h = util_fnv1a(h, more, n);                           // continued
 *     uint64_t mixed = util_hash_mix(h);                    // for tables, arms
 *
 * FNV-1a's low bits are weak for power-of-two tables; util_hash_mix (the
 * finaliser of MurmurHash3's 64-bit variant) spreads every input bit over
 * every output bit.  Neither is keyed or collision-resistant: anything an
 * adversary controls and that must not collide on purpose uses a keyed
 * hash instead (libsodium, util/mask).
 */
#ifndef UTIL_HASH_H
#define UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_FNV_OFFSET 0xcbf29ce484222325ull
#define UTIL_FNV_PRIME 0x100000001b3ull

/* FNV-1a 64 continued from h over p[0..n). */
static inline uint64_t util_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * UTIL_FNV_PRIME;
    return h;
}

static inline uint64_t util_hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

#endif
