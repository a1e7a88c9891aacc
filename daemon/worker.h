/* worker.h -- a scoring thread.
 *
 * Created by the server at start, one per configured worker; it connects a
 * DEALER to the server's inproc backend, says READY, then answers one
 * request at a time until it receives an empty message (stop).
 */
#ifndef DAEMON_WORKER_H
#define DAEMON_WORKER_H

#include <pthread.h>

#include "daemon/json_out.h"
#include "daemon/metrics.h"
#include "daemon/server.h"

#define SRV_BACKEND "inproc://attnd-workers"

typedef struct srv_worker srv_worker;

/* Allocate a worker (buffers sized from srv->cfg) and start its thread.
 * NULL with a reason on failure (database open, memory). */
srv_worker *srv_worker_start(srv_server *srv, int index, char *why, size_t why_len);

/* Join the thread (after it was told to stop) and free everything. */
void srv_worker_join(srv_worker **worker_p);

srv_wstats *srv_worker_stats(srv_worker *w);

/* The health reply; also written by the main thread when the queue is full,
 * so that a full queue never makes a live daemon look dead. */
void srv_write_health(srv_json *o, srv_server *srv, const char *id_json);

#endif
