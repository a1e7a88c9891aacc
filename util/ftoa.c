/* ftoa.c -- see ftoa.h.
 *
 * The method.  A float v > 0 reads back from every decimal inside its
 * rounding interval (lo, hi): halfway to the float below and to the float
 * above (closed when v's significand is even: ties go to even).  Both ends
 * are exact in double.  For j = the smallest useful power upwards, the
 * candidates with that many digits are the integers d next to v * 10^j;
 * the first j for which one of them lies in (lo * 10^j, hi * 10^j) gives
 * the fewest digits, and of those, the d nearest v * 10^j is taken.
 *
 * A scaled value is one product with a correctly rounded power of ten:
 * two roundings, so within 2^-52 of its true value relative to itself,
 * below 2^-18 for the numbers of up to 13 digits that arise.  A candidate farther than S_MARGIN from both ends is decided by
 * the doubles; a nearer one -- a few in a million -- by strtof over its
 * text, which glibc rounds exactly.
 */
#include "util/ftoa.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 10^j for j in -64..64, each the double nearest it (the compiler rounds
 * the literals correctly). */
#define S_P10_MAX 64
static const double s_p10[2 * S_P10_MAX + 1] = {
    1e-64, 1e-63, 1e-62, 1e-61, 1e-60, 1e-59, 1e-58, 1e-57, 1e-56, 1e-55, 1e-54, 1e-53, 1e-52,
    1e-51, 1e-50, 1e-49, 1e-48, 1e-47, 1e-46, 1e-45, 1e-44, 1e-43, 1e-42, 1e-41, 1e-40, 1e-39,
    1e-38, 1e-37, 1e-36, 1e-35, 1e-34, 1e-33, 1e-32, 1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26,
    1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13,
    1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2,
    1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32, 1e33,
    1e34, 1e35, 1e36, 1e37, 1e38, 1e39, 1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47, 1e48,
    1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55, 1e56, 1e57, 1e58, 1e59, 1e60, 1e61, 1e62, 1e63,
    1e64
};

/* The text of d * 10^-j (d > 0 an integer below 10^13), sign first when
 * neg.  The length. */
static size_t s_emit(char *out, uint64_t d, int j, int neg)
{
    char dig[24];
    int n = 0;
    while (d % 10 == 0) {   /* trailing zeros belong in the exponent */
        d /= 10;
        j--;
    }
    for (uint64_t t = d; t; t /= 10)
        n++;
    for (int i = n - 1; i >= 0; i--, d /= 10)
        dig[i] = (char)('0' + d % 10);
    int e = n - 1 - j;      /* v = d0.d1d2... * 10^e */
    char *o = out;
    if (neg)
        *o++ = '-';
    if (e >= 9 || e < -5) {
        *o++ = dig[0];
        if (n > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)n - 1);
            o += n - 1;
        }
        o += sprintf(o, "e%d", e);
        return (size_t)(o - out);
    }
    if (e < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -e - 1; i++)
            *o++ = '0';
        memcpy(o, dig, (size_t)n);
        o += n;
    } else {
        for (int i = 0; i <= e; i++)
            *o++ = i < n ? dig[i] : '0';
        if (n > e + 1) {
            *o++ = '.';
            memcpy(o, dig + e + 1, (size_t)(n - e - 1));
            o += n - e - 1;
        }
    }
    *o = 0;
    return (size_t)(o - out);
}

#define S_MARGIN (1.0 / 4096)   /* far above the 2^-17 error bound, far below 1 */

/* 1 when d * 10^-j reads back as x (> 0), 0 when not.  sl and sh are the
 * interval's ends scaled by 10^j. */
static int s_inside(double d, int j, double sl, double sh, float x)
{
    if (d > sl + S_MARGIN && d < sh - S_MARGIN)
        return 1;
    if (d < sl - S_MARGIN || d > sh + S_MARGIN)
        return 0;
    char text[UTIL_F32_MAX];
    s_emit(text, (uint64_t)d, j, 0);
    return strtof(text, NULL) == x;
}

size_t util_f32_shortest(char *out, float v)
{
    int neg = signbit(v) != 0;
    float x = fabsf(v);
    if (x == 0) {
        char *o = out;
        if (neg)
            *o++ = '-';
        memcpy(o, "0", 2);
        return (size_t)(1 + neg);
    }
    double below = nextafterf(x, 0), above = nextafterf(x, INFINITY);
    double lo = ((double)x + below) / 2;
    double hi = isinf(above) ? (double)x + ((double)x - below) / 2 : ((double)x + above) / 2;
    /* floor(e2 * log10 2) is v's decimal exponent or one less, so the first
     * j gives candidates of at most one digit. */
    int j = -(int)floor(ilogb(x) * 0.30102999566398120) - 1;
    for (int tries = 0; tries < 12; tries++, j++) {
        double p = s_p10[S_P10_MAX + j], sl = lo * p, sh = hi * p;
        if (floor(sh + S_MARGIN) < sl - S_MARGIN)
            continue;   /* no integer near the interval: more digits */
        double s = x * p, f = floor(s);
        /* The integers around s, nearest first: s's own error can put the
         * true value across an integer, so the outer two are tried too. */
        double c[4] = {f, f + 1, f - 1, f + 2};
        if (s - f > 0.5) {
            c[0] = f + 1;
            c[1] = f;
            c[2] = f + 2;
            c[3] = f - 1;
        }
        for (int i = 0; i < 4; i++)
            if (c[i] >= 1 && s_inside(c[i], j, sl, sh, x))
                return s_emit(out, (uint64_t)c[i], j, neg);
    }
    /* Unreachable: nine significant digits always read back. */
    return (size_t)snprintf(out, UTIL_F32_MAX, "%.9g", (double)v);
}
