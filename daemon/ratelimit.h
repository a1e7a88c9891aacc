/* ratelimit.h -- a token bucket per caller, so that one caller cannot starve
 * the others.
 *
 *     srv_ratelimit *rl = srv_ratelimit_new(200.0, 50, 65536);  // 200/s, burst 50
 *     uint64_t retry_ns;
 *     if (!srv_ratelimit_take(rl, key, key_len, util_now_ns(), &retry_ns))
 *         reply rate_limited, "retry after retry_ns";
 *     srv_ratelimit_sweep(rl, util_now_ns());                 // cron: forget full buckets
 *     srv_ratelimit_free(&rl);
 *
 * A caller is a byte string: an authenticated CURVE key, or a peer's
 * address when access control is off.  Each bucket holds up to `burst`
 * tokens and refills at `rate` per second; a request takes one.  A bucket
 * that has refilled completely is the same as no bucket, so the sweep
 * forgets it: the table holds only callers that were recently busy, and at
 * most `max_callers` of them (past that, new callers share one overflow
 * bucket rather than grow memory for a scan of fresh addresses).
 *
 * Main thread only: no locks.
 */
#ifndef DAEMON_RATELIMIT_H
#define DAEMON_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define SRV_RATELIMIT_KEY_MAX 64   /* longer caller names are cut (addresses, keys fit) */

typedef struct srv_ratelimit srv_ratelimit;

/* rate > 0 tokens/s, burst >= 1, max_callers >= 1.  NULL out of memory. */
srv_ratelimit *srv_ratelimit_new(double rate, int burst, size_t max_callers);
void srv_ratelimit_free(srv_ratelimit **rl_p);   /* accepts NULL */

/* Take a token for the caller key[0..len).  1 when it had one; 0 when it
 * is over its rate, with *retry_ns the time until its next token. */
int srv_ratelimit_take(srv_ratelimit *rl, const void *key, size_t len, uint64_t now_ns,
                       uint64_t *retry_ns);

/* Forget callers whose bucket is full again.  Returns the callers kept. */
size_t srv_ratelimit_sweep(srv_ratelimit *rl, uint64_t now_ns);

#endif
