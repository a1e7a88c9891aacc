/* peers.h -- how many reply bytes each client has queued in attnd.
 *
 * libzmq bounds a ROUTER's queue per client in messages, not bytes, and a
 * reply can be anything from 100 bytes to megabytes: a high-water mark
 * small enough to bound a client that never reads would drop the replies of
 * an honest client that pipelines small requests.  So replies are counted
 * in bytes here: each reply message is built over a buffer whose free
 * callback (run by libzmq once the bytes are on the socket, or dropped)
 * gives its bytes back to the client it was for.  A reply that would take a
 * client past its budget is not queued at all; the caller counts it.
 *
 *     srv_peers *p = srv_peers_new(64 << 20);
 *     zmq_msg_t msg;
 *     int rc = srv_peers_reply(p, &route, buf, len, &msg);   // main thread only
 *     if (rc == SRV_PEER_OK) zmq_msg_send(&msg, sock, 0); else dropped++;
 *     srv_peers_sweep(p);                                     // cron: forget idle clients
 *     srv_peers_free(&p);      // after zmq_ctx_term: no callback can run any more
 */
#ifndef DAEMON_PEERS_H
#define DAEMON_PEERS_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

enum srv_peer_rc {
    SRV_PEER_OK = 0,
    SRV_PEER_FULL = 1,    /* the client already holds its budget of unsent replies */
    SRV_PEER_NOMEM = 2,
};

typedef struct srv_peers srv_peers;

srv_peers *srv_peers_new(size_t budget_bytes);
/* Frees the table.  Call it after zmq_ctx_term, when libzmq has released
 * every message (and run every callback).  Accepts NULL. */
void srv_peers_free(srv_peers **peers_p);

/* Build *msg (initialised here on SRV_PEER_OK) holding a copy of buf for
 * the client whose routing id is route. */
int srv_peers_reply(srv_peers *p, const zmq_msg_t *route, const void *buf, size_t len,
                    zmq_msg_t *msg);

/* Forget clients with nothing queued that were not replied to since the
 * previous sweep.  Returns the clients still known. */
size_t srv_peers_sweep(srv_peers *p);

/* Bytes queued for all clients (atomic read; any thread). */
uint64_t srv_peers_queued(const srv_peers *p);

#endif
