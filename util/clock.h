/* clock.h -- the monotonic clock every module times itself with.
 *
 *     uint64_t t0 = util_now_ns();
 *     ... work ...
 *     double ms = (util_now_ns() - t0) / 1e6;
 *
 * CLOCK_MONOTONIC: never steps back when the wall clock is set, so a
 * duration measured with it cannot come out negative.
 */
#ifndef UTIL_CLOCK_H
#define UTIL_CLOCK_H

#include <stdint.h>

uint64_t util_now_ns(void);   /* nanoseconds since an arbitrary fixed point */
double util_now_s(void);      /* the same in seconds */

/* CLOCK_REALTIME: Unix time, for timestamps others read (a metric saying
 * when something happened); never for durations, it can step. */
uint64_t util_wall_ns(void);

#endif
