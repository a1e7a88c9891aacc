/* lane.h -- main and one helper worker: requests one way, replies the other.
 *
 * Two single-producer single-consumer rings of SRV_LANE_SLOTS each.  Passing
 * a request or a reply is a few atomic operations; a system call happens
 * only to wake a side that sleeps.  A helper sleeps on a futex (the lane's
 * bell) when it has nothing to do; main sleeps in its poll, whose set then
 * holds the lanes' shared eventfd, which a helper writes only when main
 * said it would sleep (srv_lanes_sleep).  The ZeroMQ inproc pipe this
 * replaces cost both sides a wake-up -- an eventfd write, getpid, poll and
 * read -- for most hand-offs, even with both threads busy.
 *
 * Main keeps at most SRV_LANE_SLOTS requests owed per helper (its own
 * count), so neither ring can overflow.
 *
 *     main                                  helper
 *     srv_lane_give(l, &task)     ──►       srv_lane_take(l, &task)  (waits)
 *     srv_lane_collect(l, &done)  ◄──       srv_lane_answer(l, &done)
 */
#ifndef DAEMON_LANE_H
#define DAEMON_LANE_H

#include <stdatomic.h>
#include <stdint.h>
#include <zmq.h>

#define SRV_LANE_SLOTS 4   /* a power of two, at least the requests a helper may owe */

/* main -> helper. */
typedef struct srv_task {
    zmq_msg_t route, payload;
    uint64_t t_recv_ns;   /* CLOCK_MONOTONIC when main read the request */
    uint8_t style;        /* enum srv_style: how to frame the reply */
    uint8_t role;         /* enum srv_role: what the caller may do (auth.h) */
} srv_task;

/* helper -> main. */
typedef struct srv_done {
    zmq_msg_t route, body;   /* body: the reply, or for a reload the request's id */
    uint8_t kind;            /* enum srv_done_kind */
    uint8_t style;
} srv_done;

typedef struct srv_lanes srv_lanes;
typedef struct srv_lane srv_lane;

/* n lanes and their shared eventfd.  NULL when out of memory or descriptors. */
srv_lanes *srv_lanes_new(int n);
/* Closes every message still in a ring.  The helpers must have stopped. */
void srv_lanes_free(srv_lanes **lanes_p);
srv_lane *srv_lanes_at(srv_lanes *ls, int i);

/* ---- main's side ---- */

/* Moves the task's messages into the ring and wakes the helper if it
 * sleeps.  -1 when the ring is full (main's count is wrong: a bug). */
int srv_lane_give(srv_lane *l, srv_task *task);
/* 1 with a reply moved out of the ring, 0 when there is none. */
int srv_lane_collect(srv_lane *l, srv_done *done);
/* Before a poll that may sleep: from here until srv_lanes_woke, a helper
 * that answers writes the eventfd.  Returns -1 if a reply is already
 * waiting (then do not sleep: collect it), else the descriptor to poll. */
int srv_lanes_sleep(srv_lanes *ls);
/* After that poll: main is awake again; signaled: the eventfd was
 * readable (it is cleared). */
void srv_lanes_woke(srv_lanes *ls, int signaled);
/* Tell the helper to stop once its ring is empty. */
void srv_lane_stop(srv_lane *l);

/* ---- the helper's side ---- */

/* Waits for a task.  1 with one moved out, 0 when told to stop. */
int srv_lane_take(srv_lane *l, srv_task *task);
/* Moves the reply into the ring, waking main if it sleeps. */
void srv_lane_answer(srv_lane *l, srv_done *done);

#endif
