/* wire.c -- see wire.h. */
#include "daemon/wire.h"

#include <errno.h>

int srv_wire_recv(void *sock, zmq_msg_t *msg, int flags)
{
    int rc;
    while ((rc = zmq_msg_recv(msg, sock, flags)) < 0 && zmq_errno() == EINTR)
        ;
    return rc;
}

int srv_wire_send_msg(void *sock, zmq_msg_t *msg, int flags)
{
    int rc;
    while ((rc = zmq_msg_send(msg, sock, flags)) < 0 && zmq_errno() == EINTR)
        ;
    return rc;
}

int srv_wire_send(void *sock, const void *buf, size_t len, int flags)
{
    int rc;
    while ((rc = zmq_send(sock, buf, len, flags)) < 0 && zmq_errno() == EINTR)
        ;
    return rc;
}

int srv_wire_poll(zmq_pollitem_t *items, int n, long timeout_ms)
{
    int rc;
    while ((rc = zmq_poll(items, n, timeout_ms)) < 0 && zmq_errno() == EINTR)
        ;
    return rc;
}

void srv_wire_discard_more(void *sock)
{
    int more = 1;
    size_t size = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &size) == 0 && more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        int rc = srv_wire_recv(sock, &part, 0);
        zmq_msg_close(&part);
        if (rc < 0)
            return;
    }
}
