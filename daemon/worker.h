/* worker.h -- a scoring worker: its resources, and optionally its thread.
 *
 * The server creates `workers` of these at start.  Worker 0 belongs to the
 * main thread (no thread, no lane: what it handles crosses no thread
 * boundary, and main-thread ops run on it too); the others are threads
 * that take requests from their lane (lane.h) and answer them there, one
 * at a time, until the lane says stop.
 *
 *     int outcome = srv_worker_handle(w, t_recv, role, buf, len);   // worker 0
 *     size_t n;  const char *reply = srv_worker_reply(w, &n);
 *     ... send it (SRV_OUT_RELOAD: it is the request id instead) ...
 *     srv_worker_done(w, t_recv);                             // record timings
 *
 * A worker reads the shared state and its own resources, never another
 * worker's.
 */
#ifndef DAEMON_WORKER_H
#define DAEMON_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/lane.h"
#include "daemon/metrics.h"
#include "daemon/state.h"

enum srv_style { SRV_STYLE_BARE = 0, SRV_STYLE_REQ = 1 };  /* REQ: empty delimiter frame */
enum srv_done_kind {
    SRV_DONE_LOST = 0,    /* no reply: the helper ran out of memory copying it */
    SRV_DONE_REPLY = 1,   /* forward the payload to the client */
    SRV_DONE_RELOAD = 2,  /* the client asked to reload; payload is its id as JSON */
};

typedef struct srv_worker srv_worker;

/* Allocate a worker (buffers sized from st->cfg) and, with a lane, start
 * its thread on it.  NULL with a reason on failure (database open, memory). */
srv_worker *srv_worker_start(srv_state *st, int index, srv_lane *lane, char *why, size_t why_len);

/* Handle one request from a caller holding role (enum srv_role): an op
 * whose row needs more is answered `forbidden`.  The reply is in
 * srv_worker_reply() until the next call.  Returns the outcome (enum
 * srv_outcome of ops.h). */
int srv_worker_handle(srv_worker *w, uint64_t t_recv, int role, const char *buf, size_t len);
const char *srv_worker_reply(const srv_worker *w, size_t *len);
/* Record the request: its counts and stage timings, total measured from
 * t_recv to now. */
void srv_worker_done(srv_worker *w, uint64_t t_recv);

/* Join the thread (after it was told to stop) and free everything.
 * Accepts NULL. */
void srv_worker_join(srv_worker **worker_p);

/* The worker's statistics, for the state's registry. */
srv_wstats *srv_worker_stats(srv_worker *w);

#endif
