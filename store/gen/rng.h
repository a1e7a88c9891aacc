/* rng.h -- the demo generator's own random numbers (xoshiro256**).
 *
 *     store_gen_rng r;
 *     store_gen_rng_seed(&r, seed, STORE_GEN_STREAM_USER, user_index);
 *     uint32_t k = store_gen_below(&r, 10);      // 0..9, unbiased
 *     double x = store_gen_uniform(&r);          // [0, 1)
 *
 * Why not rand(): its sequence differs between C libraries and its state is
 * global, so 'same seed, same database' would not hold.  xoshiro256** is
 * small, fast, and its output is defined bit for bit.
 *
 * Every item and every user draws from its own stream, seeded from
 * (seed, stream kind, index) through splitmix64.  So one user's history does
 * not depend on the order users are generated in, and a change to how items
 * are drawn does not shift every user's history.
 *
 * Only + - * / and sqrt are used on doubles (all correctly rounded by IEEE
 * 754), never exp/log/pow/cos, whose last bit differs between libms: the
 * same seed gives byte-identical databases on any conforming platform.
 * (-std=c11 also keeps GCC from contracting a*b+c into an FMA.)
 */
#ifndef STORE_GEN_RNG_H
#define STORE_GEN_RNG_H

#include <stdint.h>

#include "util/rng.h"

/* Stream kinds: one per kind of thing drawn, so streams never overlap. */
enum store_gen_stream {
    STORE_GEN_STREAM_WORLD = 1,  /* topic ranks, centroids */
    STORE_GEN_STREAM_ITEM = 2,   /* an item's blend, theme and date */
    STORE_GEN_STREAM_TITLE = 5,  /* an item's title and embedding noise */
    STORE_GEN_STREAM_WORD = 3,   /* a vocabulary word's vector (index = word hash) */
    STORE_GEN_STREAM_USER = 4,   /* a user's interests and history */
};

typedef util_xoshiro store_gen_rng;   /* xoshiro256** (util/rng.h) */

/* Seed a stream: (seed, kind, index) folded through splitmix64, then the
 * xoshiro state from that word. */
static inline void store_gen_rng_seed(store_gen_rng *r, uint64_t seed, int kind,
                                      uint64_t index)
{
    uint64_t x = seed;
    x = util_splitmix64(&x) ^ ((uint64_t)kind * 0xD1B54A32D192ED03ull);
    x = util_splitmix64(&x) ^ index;
    util_xoshiro_seed(r, x);
}

static inline uint64_t store_gen_next(store_gen_rng *r)
{
    return util_xoshiro_next(r);
}

/* [0, 1) with 53 random bits. */
static inline double store_gen_uniform(store_gen_rng *r)
{
    return util_rng_unit(store_gen_next(r));
}

/* Uniform in [0, n), n > 0, without modulo bias. */
static inline uint32_t store_gen_below(store_gen_rng *r, uint32_t n)
{
    return util_xoshiro_below(r, n);
}

/* True with probability p. */
static inline int store_gen_chance(store_gen_rng *r, double p)
{
    return store_gen_uniform(r) < p;
}

/* Approximately N(0, 1): the sum of three uniforms (Irwin-Hall), centred and
 * scaled to variance 1.  Bounded at +-3, which is what noise on an
 * embedding wants, and needs no log/cos (see above). */
static inline double store_gen_normal(store_gen_rng *r)
{
    double s = store_gen_uniform(r) + store_gen_uniform(r) + store_gen_uniform(r);
    return (s - 1.5) * 2.0;
}

#endif
