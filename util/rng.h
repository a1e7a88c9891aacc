/* rng.h -- the project's random numbers: splitmix64, xoshiro256**, xorshift64.
 *
 *     uint64_t s = seed;                       // splitmix64: the state is one word
 *     uint64_t x = util_splitmix64(&s);        // advances s, returns 64 random bits
 *     double u = util_rng_unit(x);             // [0, 1) from the top 53 bits
 *     uint32_t k = util_rng_scale(util_splitmix64(&s), 10);   // 0..9
 *
 *     util_xoshiro r;
 *     util_xoshiro_seed(&r, seed);             // four splitmix64 outputs of seed
 *     uint32_t j = util_xoshiro_below(&r, 10); // 0..9, no modulo bias
 *
 * Why our own and not rand(): rand's sequence differs between C libraries
 * and its state is global, so "same seed, same database / same negatives /
 * same model" would not hold.  Both generators here are defined bit for bit
 * (Steele, Lea & Flood 2014; Blackman & Vigna 2018), and every stream the
 * project draws -- the demo generator, the evaluator's negatives, the
 * trainer's shuffles and dropout, the embedder's SVD test matrix, test and
 * benchmark data -- goes through these functions, so a change here changes
 * results everywhere: the suite in tests/check_util.c pins the outputs.
 *
 * splitmix64 is one add and a mixing function: cheap, and any seed
 * (including 0) is fine; use it where one stream per (seed, key) is
 * derived on the fly.  xoshiro256** has a 2^256 period and better
 * statistical quality for long streams; its four words must not all be
 * zero, which util_xoshiro_seed guarantees.
 *
 * The hot functions are static inline: the evaluator and the trainer draw
 * one number per example.
 */
#ifndef UTIL_RNG_H
#define UTIL_RNG_H

#include <stdint.h>

/* The splitmix64 increment (2^64 / golden ratio, odd). */
#define UTIL_SPLITMIX_GAMMA 0x9E3779B97F4A7C15ull

/* Advance *state by the increment and return the mixed value. */
static inline uint64_t util_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UTIL_SPLITMIX_GAMMA);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* [0, 1) from the top 53 bits of x: every double of the form k / 2^53. */
static inline double util_rng_unit(uint64_t x)
{
    return (double)(x >> 11) * 0x1.0p-53;
}

/* (0, 1] from the top 53 bits of x (the midpoints k / 2^53 + 2^-54; the
 * last rounds to 1): never 0, so safe under log(). */
static inline double util_rng_open_unit(uint64_t x)
{
    return ((double)(x >> 11) + 0.5) * 0x1.0p-53;
}

/* x scaled into [0, n), n >= 1, by a 64x32 multiply (Lemire 2019, without
 * the rejection step: the bias is below n / 2^64). */
static inline uint32_t util_rng_scale(uint64_t x, uint32_t n)
{
    return (uint32_t)(((unsigned __int128)x * n) >> 64);
}

/* xorshift64 (Marsaglia 2003, shifts 13, 7, 17): three shifts, for jitter
 * and sampling where speed matters more than quality.  *state must not be
 * 0 (it would stay 0); returns the new state. */
static inline uint64_t util_xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* xoshiro256** state: never all zero. */
typedef struct util_xoshiro {
    uint64_t s[4];
} util_xoshiro;

static inline uint64_t util_rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t util_xoshiro_next(util_xoshiro *r)
{
    uint64_t *s = r->s;
    uint64_t out = util_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = util_rotl64(s[3], 45);
    return out;
}

/* The state from four consecutive splitmix64 outputs of seed (never four
 * zeros: splitmix64 is a bijection of its counter, and four consecutive
 * counters cannot all map to 0). */
void util_xoshiro_seed(util_xoshiro *r, uint64_t seed);

/* Uniform in [0, n), n >= 1, without modulo bias: draws below 2^64 mod n
 * are rejected, so every residue is equally likely. */
uint32_t util_xoshiro_below(util_xoshiro *r, uint32_t n);

/* Two independent N(0, 1) values by Box-Muller from two splitmix64 draws
 * of *state (the first gives the radius through util_rng_open_unit, the
 * second the angle through util_rng_unit).  Uses log, sqrt, cos and sin,
 * so the last bit may differ between libms; the demo generator, which
 * promises identical files everywhere, does not use it. */
void util_splitmix_gauss2(uint64_t *state, double out[2]);

#endif
