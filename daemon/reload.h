/* reload.h -- building the next snapshot off the hot path, and who waits
 * for it.
 *
 * A reload starts on SIGHUP, on a `reload` request, or when the cron's
 * version poll sees a new active model or catalog.  The loader thread builds
 * the snapshot beside the serving one and writes to a pipe; the main
 * thread then publishes it (or keeps the old one) and answers every client
 * that asked.  A reload asked for while one builds joins it.
 *
 *     srv_reloader *r = srv_reloader_new(st, send_reply, server, why, sizeof why);
 *     poll on srv_reloader_fd(r):  srv_reloader_on_done(r);
 *     srv_reloader_wait(r, &route, style, id_json, len);   // a reload request
 *     srv_reloader_poll(r);                                // cron
 *     srv_reloader_free(&r);    // answers waiters `unavailable`, joins the loader
 *
 * Main thread only.
 */
#ifndef DAEMON_RELOAD_H
#define DAEMON_RELOAD_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "daemon/state.h"

/* Sends a reply to a waiting client (the server's reply path); the
 * reloader closes route afterwards. */
typedef void (*srv_reload_send_fn)(void *ctx, zmq_msg_t *route, uint8_t style, const char *buf,
                                   size_t len);

typedef struct srv_reloader srv_reloader;

srv_reloader *srv_reloader_new(srv_state *st, srv_reload_send_fn send, void *ctx, char *why,
                               size_t why_len);
void srv_reloader_free(srv_reloader **r_p);

int srv_reloader_fd(const srv_reloader *r);   /* readable: a build ended */
int srv_reloader_running(const srv_reloader *r);

/* Start a build unless one runs; reason goes to the log. */
void srv_reloader_start(srv_reloader *r, const char *reason);
/* A client's reload request: it is answered when the build ends.  Takes
 * route (moved).  -1 out of memory (the caller answers). */
int srv_reloader_wait(srv_reloader *r, zmq_msg_t *route, uint8_t style, const char *id_json,
                      size_t id_len);
/* The build ended: publish or keep, log, count, answer the waiters. */
void srv_reloader_on_done(srv_reloader *r);
/* The cron's check: reload when the active model or the catalog version
 * changed, unless that exact pair already failed to load. */
void srv_reloader_poll(srv_reloader *r);

#endif
