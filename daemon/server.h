/* server.h -- the attnd process: client socket, dispatch, cron, signals.
 *
 *     srv_config cfg;  cfg_defaults(&cfg);  ...
 *     return srv_server_run(&cfg);        // blocks until SIGTERM/SIGINT
 *
 * Threads:
 *   main      owns the client ROUTER socket.  Reads requests; answers the
 *             main-thread ops (health, stats, info, reload) as they arrive;
 *             hands rank requests to an idle worker or a bounded queue
 *             (full queue: `busy`) and scores the queue's head itself as
 *             worker 0; forwards helpers' replies; runs the once-a-second
 *             cron (qps, metrics line, reload poll); reads signals from a
 *             signalfd.
 *   workers   one request at a time each (worker.h).
 *   loader    started per reload (reload.h).
 *   http      libmicrohttpd's, for /metrics and the probes (http.h); started
 *             first, so that /healthz answers while the first snapshot loads.
 *
 * Requests and replies between main and a helper travel through the
 * helper's lane (lane.h), and to the writer over an inproc socket; their
 * zmq_msg_t are moved, not copied.
 */
#ifndef DAEMON_SERVER_H
#define DAEMON_SERVER_H

#include "daemon/config.h"

/* Run until SIGTERM/SIGINT; the process exit status. */
int srv_server_run(const srv_config *cfg);

#endif
