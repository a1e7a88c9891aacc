/* rng.c -- see rng.h. */
#include "util/rng.h"

#include <math.h>

void util_xoshiro_seed(util_xoshiro *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = util_splitmix64(&seed);
}

uint32_t util_xoshiro_below(util_xoshiro *r, uint32_t n)
{
    uint64_t floor = (0 - (uint64_t)n) % n;   /* 2^64 mod n */
    uint64_t x;
    do
        x = util_xoshiro_next(r);
    while (x < floor);
    return (uint32_t)(x % n);
}

void util_splitmix_gauss2(uint64_t *state, double out[2])
{
    double u = util_rng_open_unit(util_splitmix64(state));
    double v = util_rng_unit(util_splitmix64(state));
    double r = sqrt(-2.0 * log(u));
    out[0] = r * cos(2 * M_PI * v);
    out[1] = r * sin(2 * M_PI * v);
}
