/* redis_int.h -- what the Redis history files share: node connections, the
 * consistent-hash ring that assigns users to nodes, key names and the
 * element codec.  Private to store/hist/ (redis.c the backend, rpush.c the
 * bulk copy from SQLite); tests include it for the codec and the ring.
 *
 * Layout in Redis, per user U (docs/ARCHITECTURE.md, "Histories in Redis"):
 *   PREFIX "h:" U   a list, newest event first: one element per event
 *   PREFIX "e:" U   a sorted set of the event ids of those events (an 8-byte
 *                   hash of each id, scored by the event's ts)
 * Both are trimmed to the newest `trim` events, so a user costs at most
 * trim elements whatever they did.
 *
 * An element is varint(zigzag(ts)) varint(zigzag(item_id)), then 0x01 and
 * the weight as a little-endian float32 unless it is 1, then 0x02 and the
 * kind's bytes unless it is "view": 5 to 9 bytes for an ordinary event.
 */
#ifndef STORE_HIST_REDIS_INT_H
#define STORE_HIST_REDIS_INT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define RDS_NODES_MAX 64       /* nodes one configuration may list */
#define RDS_POINTS 160         /* ring points per node: spreads users within ~10% */
#define RDS_ELEM_FIXED 26      /* an element's bytes besides its kind */

/* Timeouts shared by every connection of a handle. */
typedef struct rds_conf {
    int connect_ms;            /* connecting (TCP handshake), at most */
    int timeout_ms;            /* one command's reply, at most */
    int retry_ms;              /* after a failure, no new connection before this */
} rds_conf;

/* One Redis primary and this handle's connection to it. */
typedef struct rds_node {
    char url[300];             /* as configured: messages name the node by it */
    char host[256];
    int port;
    int db;                    /* SELECTed on connect */
    redisContext *c;           /* NULL while not connected */
    uint64_t retry_at;         /* util_now_ns() before which no connect is tried */
    char why[200];             /* the latest failure */
    char sha[48];              /* the append script on this connection; "" = not loaded */
} rds_node;

/* The nodes and their points on the ring (sorted by hash). */
typedef struct rds_ring {
    int n;
    rds_node *node;
    uint32_t n_points;
    uint64_t *hash;            /* n_points, ascending */
    uint16_t *owner;           /* n_points: the node of each point */
} rds_ring;

/* Parse "redis://host:port[/db],..." (spaces around commas allowed) and
 * place every node on the ring.  A node's points come from its host:port/db
 * text alone, so the order of the list does not matter, but every replica
 * must name the nodes alike.  STORE_ERR_INVAL with the offending URL. */
int rds_ring_init(rds_ring *r, const char *urls, store_err *err);
void rds_ring_free(rds_ring *r);   /* closes every connection */
/* The node that holds user's keys. */
int rds_ring_node(const rds_ring *r, const char *user, size_t len);

/* Connected (connecting if needed, unless a failure is younger than
 * retry_ms): STORE_OK, or STORE_ERR_UNAVAILABLE naming the node. */
int rds_ready(rds_node *n, const rds_conf *cf, store_err *err);
/* Drop the connection after a failure: why is kept for messages and no
 * connect is tried for retry_ms.  Returns STORE_ERR_UNAVAILABLE with err. */
int rds_fail(rds_node *n, const rds_conf *cf, const char *why, store_err *err);
/* A reply (NULL = the connection failed) checked for errors: STORE_OK for
 * a usable reply; a dropped connection or a Redis that cannot serve now
 * (LOADING, READONLY, MASTERDOWN, BUSY, OOM) is STORE_ERR_UNAVAILABLE; any
 * other error reply STORE_ERR_IO naming the node and what. */
int rds_check(rds_node *n, const rds_conf *cf, const redisReply *reply, const char *what,
              store_err *err);

/* key = prefix tag ":" user into *buf (grown as needed); its length, or 0
 * out of memory. */
size_t rds_key(char **buf, size_t *cap, const char *prefix, char tag, const char *user,
               size_t len);

/* Encode one event into out (RDS_ELEM_FIXED + kind_len bytes); its length.
 * kind NULL or "" is "view". */
size_t rds_encode(uint8_t *out, int64_t ts, int64_t item_id, float weight, const char *kind);
/* Decode an element into ev; kind and kind_len (may be NULL) get the kind,
 * borrowed from p ("view" when absent).  0, or -1 for bytes that are not an
 * element (the caller names the key). */
int rds_decode(const uint8_t *p, size_t n, store_event *ev, const char **kind, size_t *kind_len);

/* The 8 bytes an event id is deduplicated by. */
void rds_id_hash(const char *event_id, uint8_t out[8]);

#endif
