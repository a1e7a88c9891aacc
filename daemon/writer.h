/* writer.h -- the writer thread: the only read-write connection, and group
 * commit.
 *
 *     // main binds a PAIR at SRV_WRITER_PIPE first
 *     srv_writer *w = srv_writer_start(&st, why, sizeof why);
 *     ... main sends [route][srv_task_meta][request] on its end of the pipe,
 *         and reads [route][srv_done_meta][reply] back (helpers use lanes) ...
 *     srv_writer_stop(&w, main_pipe);   // commits the open batch, joins, frees
 *
 * The writer takes every request waiting on the pipe, stages each (parse,
 * items resolved), and commits them together as one transaction when
 * nothing more is waiting, record.max_batch events are staged, or the batch
 * has been open record.max_delay_ms.  Only then are the replies sent, so an
 * acknowledgement always means durable.  It never waits on purpose for more
 * requests: at low rates a batch is one request, at high rates the requests
 * that arrive during a commit make the next batch.
 */
#ifndef DAEMON_WRITER_H
#define DAEMON_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/metrics.h"
#include "daemon/state.h"

#define SRV_WRITER_PIPE "inproc://attnd-writer"

/* Frame 2 of a main -> writer message. */
typedef struct srv_task_meta {
    uint64_t t_recv_ns;   /* CLOCK_MONOTONIC when main read the request */
    uint8_t style;        /* enum srv_style (worker.h): how to frame the reply */
    uint8_t role;         /* enum srv_role: what the caller may do (auth.h) */
} srv_task_meta;

/* Frame 2 of a writer -> main message. */
typedef struct srv_done_meta {
    uint8_t kind;         /* enum srv_done_kind (worker.h) */
    uint8_t style;
} srv_done_meta;

typedef struct srv_writer srv_writer;

/* Open the database read-write (never migrating it) and start the thread.
 * NULL with the reason (a database attnd may not write, memory). */
srv_writer *srv_writer_start(srv_state *st, char *why, size_t why_len);

/* Tell the writer to stop through main's end of the pipe, wait for it and
 * free it.  The batch it holds is committed first; its replies go to a
 * main thread that no longer reads them (the events are stored: a resend
 * finds them as duplicates).  Accepts NULL. */
void srv_writer_stop(srv_writer **w_p, void *main_pipe);

/* The writer's op and error counts, for the state's registry. */
srv_wstats *srv_writer_stats(srv_writer *w);

#endif
