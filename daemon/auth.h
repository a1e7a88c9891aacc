/* auth.h -- who may talk to attnd, in which role, how fast (docs/SECURITY.md).
 *
 *     srv_auth *a = srv_auth_new(zctx, &cfg, why, sizeof why);  // before any bind
 *     srv_auth_frontend(a, router, why, sizeof why);            // before zmq_bind
 *     ... per request, main thread:
 *     int role;  uint64_t retry_ns;
 *     int code = srv_auth_admit(a, &route, &payload, now, &role, &retry_ns, why, sizeof why);
 *     if (code != SRV_OK) reply code (rate_limited: retry after retry_ns);
 *     else hand the request on with role; the op's row says what role it needs
 *     ... SIGHUP / reload:  srv_auth_reload(a);
 *     srv_auth_unwatch(a, router);  zmq_close(router);
 *     zmq_ctx_term(zctx);                                       // the ZAP thread ends here
 *     srv_auth_free(&a);
 *
 * security.mode = curve.  The client ROUTER is a CURVE server with the
 * secret key of security.server_key.  libzmq asks a ZAP handler (RFC 27) on
 * inproc://zeromq.zap.01 about each client that completes the CURVE
 * handshake; ours runs on a thread of its own and answers 200 for a key in
 * the allow-list, with the key (Z85) as the connection's User-Id, and 400
 * for any other key.  Every message then carries that User-Id
 * (zmq_msg_gets), and the main thread looks the key up in the *current*
 * list per request: a key revoked by a reload is refused on connections
 * made before the reload too, and a key moved to another role has it at
 * once.  Clients that fail before ZAP -- plain text, a wrong server key,
 * bytes that are not ZMTP -- are seen through a socket monitor.  Each
 * refusal is counted and logged once per (reason, peer, key), at most ten
 * lines a second (srv_sec_view counts the lines held back).
 *
 * security.mode = none.  No ZAP thread; every caller holds every role.
 *
 * Fairness, both modes: with security.rate_per_key > 0 each caller -- its
 * key, or its peer address (or connection) in mode none -- has a token
 * bucket (ratelimit.h), checked here before a request is queued.
 *
 * Threads: srv_auth_admit, _reload and _cron are for the main thread,
 * _collect for any; the ZAP thread reads the allow-list under a mutex,
 * which the main thread takes only to swap in a new list.
 */
#ifndef DAEMON_AUTH_H
#define DAEMON_AUTH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "daemon/config.h"

#define SRV_ZAP_ENDPOINT "inproc://zeromq.zap.01"   /* fixed by RFC 27 */

/* Why a caller was turned away. */
enum srv_refusal {
    SRV_REFUSED_KEY = 0,      /* its key is not in security.clients (ZAP said 400) */
    SRV_REFUSED_PLAINTEXT,    /* it did not speak CURVE (libzmq saw the mechanism mismatch) */
    SRV_REFUSED_HANDSHAKE,    /* no CURVE handshake: a wrong server key, a plain-text client
                                 that saw the mismatch first and hung up, a scan */
    SRV_REFUSED_REVOKED,      /* a request on a connection whose key a reload removed */
    SRV_REFUSED_COUNT
};

/* The security counters, written by the ZAP thread and the main thread. */
typedef struct srv_sec_counters {
    atomic_uint_fast64_t refused[SRV_REFUSED_COUNT];
    atomic_uint_fast64_t accepted;        /* CURVE handshakes ZAP let in */
    atomic_uint_fast64_t log_suppressed;  /* refusal lines held back by the log limit */
} srv_sec_counters;

/* What `stats` and the metrics line show. */
typedef struct srv_sec_view {
    int mode;                             /* enum cfg_security */
    uint64_t refused[SRV_REFUSED_COUNT];
    uint64_t accepted, log_suppressed;
    uint64_t keys;                        /* keys in the allow-list now */
    uint64_t allow_reloads, allow_reload_failures;
} srv_sec_view;

/* "unknown_key", "plaintext", "handshake", "revoked". */
const char *srv_refusal_name(int reason);

typedef struct srv_auth srv_auth;

/* Read the server key (refusing one that group or others can read) and the
 * allow-list, bind the ZAP endpoint and start its thread (curve); set up
 * the rate limiter (rate_per_key > 0).  Must run before any client socket
 * binds.  NULL with why. */
srv_auth *srv_auth_new(void *zctx, const srv_config *cfg, char *why, size_t why_len);

/* Make router a CURVE server and watch its handshakes (curve); nothing in
 * mode none.  Call before zmq_bind.  0, or -1 with why. */
int srv_auth_frontend(srv_auth *a, void *router, char *why, size_t why_len);

/* Stop watching router's handshakes; call it before closing router.  A
 * monitor still attached while its socket closes under a terminating
 * context can lose an event half-sent, and libzmq then leaks its frames. */
void srv_auth_unwatch(srv_auth *a, void *router);

/* Decide whether the request in payload (from the client route) goes on:
 * SRV_OK with *role; SRV_E_FORBIDDEN (revoked key) or SRV_E_RATE_LIMITED
 * (*retry_ns: when to come back) with why.  now is CLOCK_MONOTONIC. */
int srv_auth_admit(srv_auth *a, zmq_msg_t *route, zmq_msg_t *payload, uint64_t now,
                   int *role, uint64_t *retry_ns, char *why, size_t why_len);

/* Re-read security.clients; on failure the old list stays and the reason
 * is logged.  Main thread.  0 or -1. */
int srv_auth_reload(srv_auth *a);

/* Once a second from cron: forget idle buckets, log what the limit held back. */
void srv_auth_cron(srv_auth *a, uint64_t now);

/* The counters into v (zeroed when a is NULL).  Any thread; atomic loads
 * only, no lock. */
void srv_auth_collect(srv_auth *a, srv_sec_view *v);

/* Join the ZAP thread (it ends when the context terminates) and free.
 * Call after zmq_ctx_term.  Accepts NULL. */
void srv_auth_free(srv_auth **a_p);

#endif
