/* peers.c -- see peers.h.
 *
 * A chained hash table of clients keyed by routing id, owned by the main
 * thread.  Each entry is reference-counted: one reference for the table,
 * one per unsent reply.  libzmq's I/O thread runs the free callback, which
 * only touches the entry's atomics (and frees an entry the table already
 * forgot), so the table itself needs no lock.
 */
#include "daemon/peers.h"
#include "util/hash.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define S_ID_MAX 256

typedef struct s_peer {
    struct s_peer *next;          /* chain */
    atomic_uint_fast64_t queued;  /* reply bytes not yet written to the socket */
    atomic_int refs;              /* the table + unsent replies */
    int active;                   /* replied to since the last sweep */
    uint64_t hash;
    size_t id_len;
    unsigned char id[];           /* routing id */
} s_peer;

typedef struct s_reply {          /* what a message's free callback needs */
    s_peer *peer;
    atomic_uint_fast64_t *total;  /* the table's sum */
    size_t len;
    max_align_t data[];
} s_reply;

struct srv_peers {
    s_peer **slot;
    size_t n_slots, n;
    size_t budget;
    atomic_uint_fast64_t queued;  /* all clients */
};

static void s_unref(s_peer *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1)
        free(p);
}

/* libzmq is done with a reply: its bytes leave the client's budget. */
static void s_on_sent(void *data, void *hint)
{
    (void)data;
    s_reply *r = hint;
    atomic_fetch_sub(&r->peer->queued, r->len);
    atomic_fetch_sub(r->total, r->len);
    s_unref(r->peer);
    free(r);
}

static uint64_t s_hash(const unsigned char *id, size_t len)
{
    return util_hash_mix(util_fnv1a(UTIL_FNV_OFFSET, id, len));
}

srv_peers *srv_peers_new(size_t budget_bytes)
{
    srv_peers *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_slots = 256;
    p->slot = calloc(p->n_slots, sizeof *p->slot);
    if (!p->slot) {
        free(p);
        return NULL;
    }
    p->budget = budget_bytes;
    return p;
}

void srv_peers_free(srv_peers **peers_p)
{
    srv_peers *p = *peers_p;
    if (!p)
        return;
    *peers_p = NULL;
    for (size_t i = 0; i < p->n_slots; i++)
        for (s_peer *e = p->slot[i], *next; e; e = next) {
            next = e->next;
            s_unref(e);
        }
    free(p->slot);
    free(p);
}

static void s_grow(srv_peers *p)
{
    size_t n_slots = p->n_slots * 2;
    s_peer **slot = calloc(n_slots, sizeof *slot);
    if (!slot)
        return;   /* longer chains, still correct */
    for (size_t i = 0; i < p->n_slots; i++)
        for (s_peer *e = p->slot[i], *next; e; e = next) {
            next = e->next;
            e->next = slot[e->hash & (n_slots - 1)];
            slot[e->hash & (n_slots - 1)] = e;
        }
    free(p->slot);
    p->slot = slot;
    p->n_slots = n_slots;
}

static s_peer *s_find(srv_peers *p, const unsigned char *id, size_t len)
{
    uint64_t h = s_hash(id, len);
    for (s_peer *e = p->slot[h & (p->n_slots - 1)]; e; e = e->next)
        if (e->hash == h && e->id_len == len && !memcmp(e->id, id, len))
            return e;
    if (p->n >= p->n_slots)
        s_grow(p);
    s_peer *e = calloc(1, sizeof *e + len);
    if (!e)
        return NULL;
    memcpy(e->id, id, len);
    e->id_len = len;
    e->hash = h;
    atomic_init(&e->refs, 1);
    e->next = p->slot[h & (p->n_slots - 1)];
    p->slot[h & (p->n_slots - 1)] = e;
    p->n++;
    return e;
}

int srv_peers_reply(srv_peers *p, const zmq_msg_t *route, const void *buf, size_t len,
                    zmq_msg_t *msg)
{
    size_t id_len = zmq_msg_size((zmq_msg_t *)route);
    s_peer *e = s_find(p, zmq_msg_data((zmq_msg_t *)route), id_len < S_ID_MAX ? id_len : S_ID_MAX);
    if (!e)
        return SRV_PEER_NOMEM;
    e->active = 1;
    if (atomic_load(&e->queued) + len > p->budget)
        return SRV_PEER_FULL;
    s_reply *r = malloc(sizeof *r + (len ? len : 1));
    if (!r)
        return SRV_PEER_NOMEM;
    memcpy(r->data, buf, len);
    r->peer = e;
    r->total = &p->queued;
    r->len = len;
    atomic_fetch_add(&e->refs, 1);
    atomic_fetch_add(&e->queued, len);
    atomic_fetch_add(&p->queued, len);
    if (zmq_msg_init_data(msg, r->data, len, s_on_sent, r) != 0) {
        s_on_sent(r->data, r);
        return SRV_PEER_NOMEM;
    }
    return SRV_PEER_OK;
}

size_t srv_peers_sweep(srv_peers *p)
{
    for (size_t i = 0; i < p->n_slots; i++) {
        s_peer **link = &p->slot[i];
        while (*link) {
            s_peer *e = *link;
            if (!e->active && atomic_load(&e->queued) == 0) {
                *link = e->next;
                p->n--;
                s_unref(e);
            } else {
                e->active = 0;
                link = &e->next;
            }
        }
    }
    return p->n;
}

uint64_t srv_peers_queued(const srv_peers *p)
{
    return atomic_load(&((srv_peers *)p)->queued);
}
