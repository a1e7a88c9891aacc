/* history.h -- the history backend attnd's threads open (store/hist/hist.h).
 *
 *     store_hist *h;  char why[600];
 *     if (srv_history_open(&cfg, 0, &h, why, sizeof why) != 0)   // a scoring worker
 *         fail(why);
 *
 * One place decides which backend serves and how it is configured, so that
 * a second backend is a branch here and every thread follows.
 */
#ifndef DAEMON_HISTORY_H
#define DAEMON_HISTORY_H

#include <stddef.h>

#include "daemon/config.h"
#include "store/hist/hist.h"

/* writable: the writer's handle (record.synchronous, checkpoints); else a
 * reader's.  0, or -1 with the reason. */
int srv_history_open(const srv_config *cfg, int writable, store_hist **out, char *why,
                     size_t why_len);

#endif
