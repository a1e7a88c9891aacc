/* hist.h -- users' histories behind one interface: read a user's newest
 * events, append new ones.
 *
 *     store_hist *h;  store_err err;
 *     store_hist_sqlite_opts o = {.path = "demo.db", .busy_ms = 2000};   // a reader
 *     if (store_hist_sqlite_open(&h, &o, &err) != STORE_OK)
 *         die("%s", err.msg);
 *     store_event ev[50];  int n;
 *     int rc = store_hist_read(h, "u42", 3, 50, ev, &n, &err);   // newest first
 *     // rc STORE_ERR_NOTFOUND: no such user (no history is not an error: n = 0)
 *
 *     // A writer (o.writable = 1): a batch in, one outcome per event out,
 *     // durable when it returns STORE_OK.
 *     store_hist_event e = {.user = "u42", .item_id = 17, .ts = 1700000000,
 *                           .kind = "click", .weight = 1, .event_id = "e-1"};
 *     uint8_t outcome;                      // STORE_HIST_STORED, ..._DUPLICATE, ..._NO_ITEM
 *     rc = store_hist_append(h, &e, 1, &outcome, &err);
 *     store_hist_idle(h);                   // housekeeping when nothing is waiting
 *     store_hist_close(&h);
 *
 *     // Histories shared by replicas: the same calls on Redis nodes.
 *     store_hist_redis_opts r = {.urls = "redis://10.0.0.7:6379,redis://10.0.0.8:6379",
 *                                .prefix = "attn:", .connect_ms = 200, .timeout_ms = 200,
 *                                .retry_ms = 500, .trim = 1000};
 *     store_hist_redis_open(&h, &r, &err);  // connects on first use; a user whose node
 *                                           // is down: STORE_ERR_UNAVAILABLE naming it
 *
 * Rank (history, `because`, exclude_seen) and record go only through this
 * interface, so that a history store other than the SQLite file is one more
 * backend: a store_hist_ops table and an open function, nothing else
 * changes.  There are two: sqlite (the database itself, the default) and
 * redis (histories shared by replicas, store/hist/redis.c).
 *
 * Contract every backend keeps:
 *  - read: the user's newest max events, newest first, equal timestamps by
 *    item_id descending (the order training and evaluation use); what a
 *    read returns includes every append acknowledged before it started.
 *  - append: all or nothing for the batch as a whole -- either every event
 *    got its outcome and the batch is durable (as durable as the backend's
 *    configuration promises, docs/OPERATIONS.md), or an error and nothing of
 *    it was stored.  A backend that spreads users over several nodes
 *    (redis) is all or nothing per node instead: the events of a node that
 *    failed get STORE_HIST_UNAVAILABLE (err names the node, the call still
 *    returns STORE_OK), and only when every event failed so does the call
 *    (STORE_ERR_UNAVAILABLE).  An event is stored at most once: one whose event_id is
 *    already stored, or (event_id NULL) whose (user, item, ts, kind) is, is
 *    a duplicate and changes nothing.  A user seen for the first time is
 *    created.  Items are the caller's to resolve (item_id); an item_id that
 *    no longer exists is that event's STORE_HIST_NO_ITEM, not an error.
 *  - a handle belongs to one thread.
 */
#ifndef STORE_HIST_HIST_H
#define STORE_HIST_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* One event to append.  Strings are NUL-terminated and borrowed for the call. */
typedef struct store_hist_event {
    const char *user;       /* the user's ext_id, non-empty */
    int64_t item_id;        /* resolved by the caller */
    int64_t ts;             /* unix seconds */
    const char *kind;       /* NULL or "" = "view" */
    float weight;           /* finite, > 0 */
    const char *event_id;   /* NULL = identified by (user, item, ts, kind) alone */
} store_hist_event;

enum store_hist_outcome {
    STORE_HIST_STORED = 0,     /* new, now durable */
    STORE_HIST_DUPLICATE = 1,  /* already stored; nothing changed */
    STORE_HIST_NO_ITEM = 2,    /* item_id does not exist (any more) */
    STORE_HIST_UNAVAILABLE = 3,   /* a sharded backend: this user's node failed (err says
                                     which); not stored -- a resend stores it */
};

typedef struct store_hist store_hist;

/* What a backend implements; the functions below dispatch to it. */
typedef struct store_hist_ops {
    const char *name;   /* "sqlite", ... (logs, info) */
    int (*read)(store_hist *h, const char *user, size_t len, int max, store_event *ev, int *n,
                store_err *err);
    int (*append)(store_hist *h, const store_hist_event *ev, int n, uint8_t *outcome,
                  store_err *err);
    int (*idle)(store_hist *h, store_err *err);   /* NULL: nothing to do */
    void (*close)(store_hist *h);                 /* frees h */
} store_hist_ops;

/* Every backend's handle starts with this. */
struct store_hist {
    const store_hist_ops *ops;
};

/* The user's newest max events (ev holds max), newest first, into ev and
 * *n.  STORE_ERR_NOTFOUND for a user never seen (ext need not be
 * NUL-terminated); other codes when the backend failed. */
int store_hist_read(store_hist *h, const char *user, size_t len, int max, store_event *ev,
                    int *n, store_err *err);
/* Append n events (1..) and fill outcome[n]; see the contract above.
 * STORE_ERR_INVAL for a read-only handle or an event breaking its field
 * rules (then nothing is stored); STORE_ERR_BUSY when the store stayed
 * locked by another writer for the busy timeout. */
int store_hist_append(store_hist *h, const store_hist_event *ev, int n, uint8_t *outcome,
                      store_err *err);
/* Housekeeping a writer runs when nothing is waiting.  SQLite: the
 * checkpoint thread's latest failure, reported once (STORE_OK: none). */
int store_hist_idle(store_hist *h, store_err *err);
const char *store_hist_name(const store_hist *h);
void store_hist_close(store_hist **h_p);   /* accepts NULL */

/* ---- sqlite: the attnd database itself (the default) ---------------------- */
typedef struct store_hist_sqlite_opts {
    const char *path;        /* the database */
    int busy_ms;             /* SQLite busy timeout */
    int writable;            /* 0: read only; 1: the writer (never migrates the schema) */
    int synchronous_full;    /* writer: 1 FULL, 0 NORMAL (store_synchronous) */
    int checkpoint_pages;    /* writer: commits never checkpoint; a thread of the handle's
                                own does, once the WAL holds this many pages; 0 = SQLite's
                                automatic checkpoints, inside commits */
    int checkpoint_idle;     /* writer: that thread runs at SCHED_IDLE (util_sched_idle) */
    int cache_kib;           /* the connection's page cache; 0 = SQLite's default (2 MiB) */
} store_hist_sqlite_opts;

int store_hist_sqlite_open(store_hist **out, const store_hist_sqlite_opts *o, store_err *err);

/* ---- redis: histories shared by replicas (store/hist/redis.c) ------------
 * Users are spread over the nodes by a consistent hash of their ext_id;
 * each handle holds its own connection to every node, made on first use
 * and remade after a failure (not before retry_ms).  A node that refuses,
 * times out or cannot serve fails with STORE_ERR_UNAVAILABLE naming it:
 * "history backend redis: redis://10.0.0.7:6379: cannot connect: ...".
 * Items are the caller's to resolve: redis never answers NO_ITEM.  Event
 * ids are unique per user (the sqlite backend: across users). */
typedef struct store_hist_redis_opts {
    const char *urls;        /* "redis://host:port[/db]", comma-separated */
    const char *prefix;      /* put before every key ("attn:"); NULL = none */
    int connect_ms;          /* connecting to a node, at most */
    int timeout_ms;          /* one command's reply, at most */
    int retry_ms;            /* after a node failed, fail its users at once for this long */
    int trim;                /* newest events kept per user (1..) */
    int ttl_s;               /* a user's keys expire this long after their last append;
                                0 = never */
    int writable;            /* 0: read only */
} store_hist_redis_opts;

int store_hist_redis_open(store_hist **out, const store_hist_redis_opts *o, store_err *err);
/* Connect to (and PING) every node now.  STORE_OK, or STORE_ERR_UNAVAILABLE
 * naming every node that failed -- the handle still works, and retries
 * them.  STORE_ERR_INVAL for a handle of another backend. */
int store_hist_redis_ping(store_hist *h, store_err *err);

#endif
