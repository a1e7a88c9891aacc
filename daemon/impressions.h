/* impressions.h -- the experiment log: a sample of rank replies, written to
 * the database by a thread of its own.
 *
 *     srv_imp *log = srv_imp_start(&st, why, sizeof why);  // NULL: not logging
 *     ... a worker, after a rank reply to a user:
 *     if (srv_imp_sampled(log, &rng))
 *         srv_imp_offer(log, user, len, arm, model, item_ids, n);   // never blocks on SQLite
 *     srv_imp_stop(&log);                                  // writes what is queued
 *
 * The request path only copies the impression into a bounded queue under a
 * mutex held for that copy; a thread with its own read-write connection
 * drains the queue in batches, one transaction each.  When the writer falls
 * behind and the queue is full, the impression is dropped and counted --
 * an experiment's statistics tolerate a thinner sample, a ranking does not
 * tolerate waiting.  Users are stored as keyed hashes (util/mask.h), never
 * as their ids.
 */
#ifndef DAEMON_IMPRESSIONS_H
#define DAEMON_IMPRESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/state.h"

typedef struct srv_imp srv_imp;

/* Start the thread when experiment.log_impressions > 0; NULL (and why
 * empty) when it is 0; NULL with why on failure (the database cannot be
 * opened for writing, memory). */
srv_imp *srv_imp_start(srv_state *st, char *why, size_t why_len);

/* Whether this reply is in the sample: a draw from the caller's own
 * generator state against the configured ratio. */
int srv_imp_sampled(const srv_imp *log, uint64_t *rng);

/* Queue one impression (copied).  0, or -1 when it was dropped (queue
 * full, memory); either way it is counted in st->counters. */
int srv_imp_offer(srv_imp *log, const char *user, size_t user_len, const char *arm,
                  int64_t model, const int64_t *item_ids, int n);

/* Write what is queued, stop the thread, free.  Accepts NULL. */
void srv_imp_stop(srv_imp **log_p);

#endif
