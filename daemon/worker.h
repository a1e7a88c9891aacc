/* worker.h -- everything one request needs, and optionally a thread to run it.
 *
 * The server creates `workers` of these at start.  Worker 0 is run inline by
 * the main thread (no thread, no socket: a request it handles crosses no
 * thread boundary); the others are threads that connect a DEALER to the
 * server's inproc backend, say READY, then answer one request at a time
 * until they receive an empty message (stop).
 *
 *     int kind = srv_worker_handle(w, t_recv, buf, len);   // inline use
 *     size_t n;  const char *reply = srv_worker_reply(w, &n);
 *     ... send reply (kind SRV_DONE_RELOAD: it is the request id instead) ...
 *     srv_worker_done(w, t_recv);                          // record timings
 */
#ifndef DAEMON_WORKER_H
#define DAEMON_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "daemon/json_out.h"
#include "daemon/metrics.h"
#include "daemon/server.h"

#define SRV_BACKEND "inproc://attnd-workers"

typedef struct srv_worker srv_worker;

/* Allocate a worker (buffers sized from srv->cfg) and, if threaded, start
 * its thread.  NULL with a reason on failure (database open, memory). */
srv_worker *srv_worker_start(srv_server *srv, int index, int threaded, char *why,
                             size_t why_len);

/* Handle one request; the reply is in srv_worker_reply() until the next
 * call.  Returns SRV_DONE_REPLY, or SRV_DONE_RELOAD when the request asks
 * for a reload (the "reply" is then the request's id as JSON). */
int srv_worker_handle(srv_worker *w, uint64_t t_recv, const char *buf, size_t len);
const char *srv_worker_reply(const srv_worker *w, size_t *len);
/* Record the request's stage timings, total measured from t_recv to now. */
void srv_worker_done(srv_worker *w, uint64_t t_recv);

/* Join the thread (after it was told to stop) and free everything. */
void srv_worker_join(srv_worker **worker_p);

srv_wstats *srv_worker_stats(srv_worker *w);

/* The health reply; also written by the main thread when the queue is full,
 * so that a full queue never makes a live daemon look dead. */
void srv_write_health(srv_json *o, srv_server *srv, const char *id_json);

#endif
