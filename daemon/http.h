/* http.h -- attnd's HTTP listener for operators, served by libmicrohttpd on
 * its own thread, apart from the ZeroMQ socket clients use.
 *
 *     srv_http *h = srv_http_start(&st, why, sizeof why);   // metrics.bind
 *     if (!h) die("%s", why);       // "metrics.bind 127.0.0.1:9464: Address in use"
 *     srv_log(..., srv_http_port(h));                      // port 0 asked: the one bound
 *     ...
 *     srv_http_stop(&h);            // before the workers' statistics are freed
 *
 *   GET /metrics   200, Prometheus text format 0.0.4 (prom.h)
 *   GET /healthz   200 "ok" while the process runs
 *   GET /readyz    200 "ready", or 503 with the reason (srv_state_unready)
 *   other paths    404; other methods on these paths 405
 *
 * The thread reads atomics only: the counters, each worker's counts (relaxed
 * loads of words only that worker stores), the serving snapshot's facts and
 * the RSS and jemalloc figures main's cron samples.  It takes no lock a
 * worker takes, so a worker never waits on it, even when it is preempted
 * mid-scrape on a busy machine.  Connections are bounded in number, idle time and
 * request bytes (the [metrics] keys), so a slow or hostile client costs at
 * most that and never reaches a worker.
 */
#ifndef DAEMON_HTTP_H
#define DAEMON_HTTP_H

#include <stddef.h>

#include "daemon/state.h"

typedef struct srv_http srv_http;

/* Listen on st->cfg.metrics_bind and serve until srv_http_stop.  NULL with
 * the reason in why when the address does not resolve or cannot be bound.
 * st must outlive the listener. */
srv_http *srv_http_start(srv_state *st, char *why, size_t why_len);

/* The port bound (the configured one, or the one the kernel picked for 0). */
int srv_http_port(const srv_http *h);

/* Stop listening, close every connection, join the thread.  Accepts NULL. */
void srv_http_stop(srv_http **h_p);

#endif
