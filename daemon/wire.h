/* wire.h -- ZeroMQ sends and receives that a signal cannot break.
 *
 * attnd takes its signals through a signalfd, so none should interrupt a
 * ZeroMQ call; these wrappers retry on EINTR anyway, because a call that
 * fails half-way through a multi-frame message loses a reply or strands a
 * worker (issue: SIGHUP in a tight loop under load).  They return what
 * libzmq returns; errno (zmq_errno) tells other failures apart.
 */
#ifndef DAEMON_WIRE_H
#define DAEMON_WIRE_H

#include <stddef.h>
#include <zmq.h>

int srv_wire_recv(void *sock, zmq_msg_t *msg, int flags);
int srv_wire_send_msg(void *sock, zmq_msg_t *msg, int flags);
int srv_wire_send(void *sock, const void *buf, size_t len, int flags);
int srv_wire_poll(zmq_pollitem_t *items, int n, long timeout_ms);

/* Read the rest of a multi-frame message and drop it (after an error). */
void srv_wire_discard_more(void *sock);

#endif
