/* handshake.c -- see handshake.h.
 *
 * Only connections mid-handshake are kept.  A verdict pinned to its
 * connection settles it at once (a refusal is reported there and then);
 * a held one settles the next mid-handshake connection to close.  A
 * connection the table does not know when it closes was settled already,
 * or forgotten in a flood of simultaneous handshakes: either way nothing
 * is reported for it.
 */
#include "daemon/handshake.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

#include "daemon/auth.h"
#include "util/clock.h"

/* libzmq ends a handshake that takes longer than ZMQ_HANDSHAKE_IVL (30 s
 * unless set): a connection still open this long after ACCEPTED finished
 * its handshake, and may take a held success. */
#define S_SETTLED_NS 35000000000ull

enum s_verdict { S_READY, S_ZAP_REFUSED, S_FAILED };

void srv_hs_init(srv_hs *h)
{
    memset(h, 0, sizeof *h);
    for (int i = 0; i < SRV_HS_CONNS; i++)
        h->conn[i].fd = -1;
}

static void s_address(struct srv_hs_conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    snprintf(c->addr, sizeof c->addr, "unknown");
    c->port = 0;
    if (getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0)
        return;   /* already gone */
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, c->addr, sizeof c->addr);
        c->port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, c->addr, sizeof c->addr);
        c->port = ntohs(in6->sin6_port);
    } else if (ss.ss_family == AF_UNIX) {
        snprintf(c->addr, sizeof c->addr, "ipc");
    }
}

/* The one connection mid-handshake, or NULL when there are none or several.
 * Connections open past any handshake's time limit take held successes
 * first, so that one overlap does not blur every verdict after it. */
static struct srv_hs_conn *s_only_handshaking(srv_hs *h)
{
    struct srv_hs_conn *only = NULL;
    uint64_t now = util_now_ns();
    int n = 0;
    for (int i = 0; i < SRV_HS_CONNS; i++) {
        struct srv_hs_conn *c = &h->conn[i];
        if (c->fd < 0)
            continue;
        if (h->oks > 0 && now - c->since > S_SETTLED_NS) {
            h->oks--;
            c->fd = -1;
            continue;
        }
        only = c;
        n++;
    }
    return n == 1 ? only : NULL;
}

static void s_verdict(srv_hs *h, int verdict, int reason, srv_hs_refuse_fn refused, void *ctx)
{
    struct srv_hs_conn *c = s_only_handshaking(h);
    if (c) {
        if (verdict == S_FAILED)
            refused(ctx, reason, c->addr, c->port);
        c->fd = -1;
    } else if (verdict == S_READY) {
        h->oks++;
    } else if (verdict == S_ZAP_REFUSED) {
        h->auths++;
    } else if (h->n_fails < (int)(sizeof h->fails / sizeof h->fails[0])) {
        h->fails[h->n_fails++] = reason;
    }
}

/* A mid-handshake connection closed: settle it with a held verdict,
 * failures first (a failing connection closes right after its failure
 * event); with none held it was abandoned. */
static void s_closed(srv_hs *h, int fd, srv_hs_refuse_fn refused, void *ctx)
{
    struct srv_hs_conn *c = NULL;
    for (int i = 0; i < SRV_HS_CONNS && !c; i++)
        if (h->conn[i].fd == fd)
            c = &h->conn[i];
    if (!c)
        return;   /* settled already */
    c->fd = -1;
    if (h->n_fails) {
        int reason = h->fails[0];
        memmove(h->fails, h->fails + 1, (size_t)(--h->n_fails) * sizeof h->fails[0]);
        refused(ctx, reason, c->addr, c->port);
    } else if (h->auths) {
        h->auths--;
    } else if (h->oks) {
        h->oks--;
    } else {
        refused(ctx, SRV_REFUSED_HANDSHAKE, c->addr, c->port);
    }
}

void srv_hs_event(srv_hs *h, uint16_t event, uint32_t value, srv_hs_refuse_fn refused,
                  void *ctx)
{
    switch (event) {
    case ZMQ_EVENT_ACCEPTED: {
        struct srv_hs_conn *c = &h->conn[h->next];
        h->next = (h->next + 1) % SRV_HS_CONNS;
        c->fd = (int)value;
        c->since = util_now_ns();
        s_address(c);
        break;
    }
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        s_verdict(h, S_READY, 0, refused, ctx);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        s_verdict(h, S_ZAP_REFUSED, 0, refused, ctx);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        s_verdict(h, S_FAILED, value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                                   ? SRV_REFUSED_PLAINTEXT : SRV_REFUSED_HANDSHAKE,
                  refused, ctx);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        s_verdict(h, S_FAILED, SRV_REFUSED_HANDSHAKE, refused, ctx);
        break;
    case ZMQ_EVENT_DISCONNECTED:
        s_closed(h, (int)value, refused, ctx);
        break;
    default:
        break;
    }
}
