/* server.h -- the attnd process: broker loop, workers, reloads, shutdown.
 *
 *     srv_config cfg;  cfg_defaults(&cfg);  ...
 *     return srv_server_run(&cfg);        // blocks until SIGTERM/SIGINT
 *
 * Threads:
 *   main      owns the client ROUTER socket.  Reads requests, hands each to an
 *             idle worker or a bounded queue (full queue: `busy`), forwards
 *             replies, runs the once-a-second cron (qps, metrics line, reload
 *             poll) and handles signals.
 *   workers   one request at a time each: parse, history, score, encode.  Own
 *             SQLite connection, scratch arena, JSON buffers; no allocation
 *             on the hot path.
 *   loader    started per reload: builds the next snapshot off the hot path.
 *
 * Messages between main and workers travel over inproc sockets and are moved,
 * not copied (zmq_msg_t ownership passes with zmq_msg_send).
 */
#ifndef DAEMON_SERVER_H
#define DAEMON_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "daemon/config.h"
#include "daemon/metrics.h"

#define SRV_VERSION "0.1.0"

/* Frame 2 of a main -> worker message. */
typedef struct srv_task_meta {
    uint64_t t_recv_ns;   /* CLOCK_MONOTONIC when main read the request */
    uint8_t style;        /* enum srv_style: how to frame the reply */
} srv_task_meta;

/* Frame 2 of a worker -> main message. */
typedef struct srv_done_meta {
    uint8_t kind;         /* enum srv_done_kind */
    uint8_t style;
} srv_done_meta;

enum srv_style { SRV_STYLE_BARE = 0, SRV_STYLE_REQ = 1 };  /* REQ: empty delimiter frame */
enum srv_done_kind {
    SRV_DONE_READY = 0,   /* a worker's first message: it can take work */
    SRV_DONE_REPLY = 1,   /* forward the payload to the client */
    SRV_DONE_RELOAD = 2,  /* the client asked to reload; payload is its id as JSON */
};

struct srv_worker;

typedef struct srv_server {
    srv_config cfg;
    void *zctx;
    int n_workers;
    struct srv_worker **workers;
    srv_counters counters;
    uint64_t started_ns;        /* CLOCK_MONOTONIC at start */
    atomic_int stopping;        /* SIGTERM seen: not ready any more */
} srv_server;

int srv_server_run(const srv_config *cfg);

uint64_t srv_now_ns(void);      /* CLOCK_MONOTONIC */

#endif
