/* ftoa.h -- the shortest decimal text of a float that reads back as the
 * same float.
 *
 *     char buf[UTIL_F32_MAX];
 *     size_t n = util_f32_shortest(buf, 1.82f);     // "1.82", n = 4
 *     strtof(buf, NULL) == 1.82f                    // always, bit for bit
 *
 * Why: a reply carries one score per item, and "%.9g" (round-trips, but
 * prints 1.82000005) or "%.6g" (short, but loses the float) both cost
 * glibc's multi-precision path, ~2,000 instructions a number.  Here the
 * digits come from double arithmetic whose error is bounded; the rare
 * candidate that lands inside that bound is settled by strtof, which is
 * exact, so the answer is always right and almost always cheap.
 */
#ifndef UTIL_FTOA_H
#define UTIL_FTOA_H

#include <stddef.h>

/* Longest output plus NUL: "-1.23456789e-45". */
#define UTIL_F32_MAX 24

/* Write v as the JSON number with the fewest significant digits that
 * strtof reads back as v (of those, the one nearest v), NUL-terminated;
 * plain decimals for 1e-5 <= |v| < 1e9, an exponent otherwise.  Returns
 * the length.  v must be finite (JSON has no NaN or infinity: the caller
 * decides what they become). */
size_t util_f32_shortest(char *out, float v);

#endif
