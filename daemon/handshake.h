/* handshake.h -- which connections to the CURVE socket never completed a
 * handshake, and why, from the socket monitor's events.
 *
 *     srv_hs hs;
 *     srv_hs_init(&hs);
 *     for each monitor event (event, value):
 *         srv_hs_event(&hs, event, value, on_refused, ctx);
 *     // on_refused(ctx, SRV_REFUSED_PLAINTEXT, "10.1.2.3", 51234) once per
 *     // connection that closed without a handshake (not for ZAP refusals:
 *     // the ZAP handler counts those itself)
 *
 * libzmq's monitor (4.3) names the connection in ACCEPTED and DISCONNECTED
 * only (their value is the fd); HANDSHAKE_SUCCEEDED and the HANDSHAKE_FAILED_*
 * events carry no fd.  They come in stream order, though: a connection's
 * handshake events fall between its ACCEPTED and its DISCONNECTED.  So an
 * event is pinned to a connection when exactly one is mid-handshake, and
 * otherwise held as an unattributed verdict for the next mid-handshake
 * connection to close (failures first: a failing connection closes right
 * after its failure event).  A connection that closes with no verdict at all was
 * abandoned mid-handshake: a plain-text client that saw the mechanism
 * mismatch first and hung up, a scan, a client killed half-way.  Totals are
 * exact; which address gets which reason is exact unless handshakes
 * overlap.  The peer address is read with getpeername when ACCEPTED is
 * seen, so a connection that was already gone by then has none.
 *
 * One thread (the ZAP thread).
 */
#ifndef DAEMON_HANDSHAKE_H
#define DAEMON_HANDSHAKE_H

#include <stdint.h>

#define SRV_HS_CONNS 256   /* connections tracked at once; older ones are forgotten */
#define SRV_HS_ADDR 64

typedef void (*srv_hs_refuse_fn)(void *ctx, int reason, const char *addr, unsigned port);

/* Fields are private. */
typedef struct srv_hs {
    struct srv_hs_conn {         /* a connection mid-handshake */
        int fd;                  /* -1: free */
        unsigned port;           /* 0: none (ipc) or unknown */
        uint64_t since;          /* CLOCK_MONOTONIC of its ACCEPTED */
        char addr[SRV_HS_ADDR];
    } conn[SRV_HS_CONNS];
    int next;                    /* where the next ACCEPTED goes */
    int fails[16];               /* unattributed failure reasons, FIFO */
    int n_fails;
    int oks;                     /* unattributed successes */
    int auths;                   /* unattributed ZAP refusals */
} srv_hs;

void srv_hs_init(srv_hs *h);

/* Feed one monitor event: ZMQ_EVENT_ACCEPTED, _DISCONNECTED,
 * _HANDSHAKE_SUCCEEDED, _HANDSHAKE_FAILED_NO_DETAIL, _PROTOCOL, _AUTH
 * (others are ignored).  Calls refused for a connection that closed
 * without completing its handshake. */
void srv_hs_event(srv_hs *h, uint16_t event, uint32_t value, srv_hs_refuse_fn refused,
                  void *ctx);

#endif
