/* cli_pipe.c -- many requests in flight over one DEALER socket.
 *
 * A round trip on loopback costs ~100 µs, more than ranking itself, so batch
 * jobs and load tests keep many requests outstanding and match replies by id
 * (the daemon answers in completion order).  This file owns that matching:
 *
 *   slot[]   one per request in flight: the caller's key and stamp, when it
 *            was sent, its deadline, and its place in the heap;
 *   table    open addressing (linear probing, backward-shift delete) from
 *            key to slot, so a reply finds its request in O(1);
 *   heap     slot indices ordered by deadline, so the next timeout is the
 *            root and expiring requests cost O(log n).
 *
 * The wire id is "<prefix><key>" ("b17"): cheap to make and to parse, and a
 * reply that answers someone else's request (or an attempt we already gave
 * up on) fails the lookup and is dropped as stale.
 *
 * The socket has ZMQ_IMMEDIATE set, so a request is only queued to a peer
 * whose connection is up: with several endpoints a dead daemon receives
 * nothing, and with none alive a send reports CLI_AGAIN instead of queueing
 * into the void.  Requests that were queued to a peer when it died are lost;
 * their deadlines turn them into timeouts, and callers retry.
 *
 * With an endpoint file (--endpoint @FILE) the socket follows the file:
 * every S_REFRESH_US the wait looks at its mtime and, when it changed,
 * connects the endpoints added and disconnects those removed.  So a
 * replica added to a running service takes requests from a job already
 * under way, and one taken out stops receiving them.
 */
#include "clients/cli.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

typedef struct s_slot {
    uint64_t key;          /* caller's key */
    int64_t stamp;         /* caller's stamp, handed back */
    int64_t sent_us;       /* when it went out */
    int64_t deadline_us;   /* when it becomes a timeout */
    uint32_t heap_pos;     /* index in heap[] */
} s_slot;

#define S_REFRESH_US 200000

struct cli_pipe {
    void *sock;            /* DEALER, connected to every endpoint */
    cli_endpoints eps;     /* what it is connected to */
    int64_t next_refresh_us;   /* when to look at the endpoint file again */
    uint64_t refreshes;    /* endpoint set changes applied */
    char prefix[16];       /* wire id prefix */
    size_t plen;           /* strlen(prefix) */
    uint32_t cap;          /* most requests in flight */
    s_slot *slot;          /* cap slots */
    uint32_t *free_slots;  /* stack of unused slot indices */
    uint32_t n_free;
    uint32_t *heap;        /* slot indices, min-heap by deadline */
    uint32_t n_heap;       /* == requests in flight */
    uint32_t *table;       /* key -> slot index + 1; 0 = empty */
    uint32_t tmask;        /* table size - 1 (a power of two >= 2 * cap) */
    cli_buf out;           /* the request being framed */
    uint64_t stale;        /* replies with an id not in flight */
};

/* ---- key table -------------------------------------------------------------- */

static uint32_t s_home(const cli_pipe *p, uint64_t key)
{
    /* Fibonacci hashing: sequential keys (line numbers) spread evenly. */
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & p->tmask;
}

/* Table position holding key, or -1. */
static int64_t s_find(const cli_pipe *p, uint64_t key)
{
    for (uint32_t i = s_home(p, key);; i = (i + 1) & p->tmask) {
        uint32_t e = p->table[i];
        if (!e)
            return -1;
        if (p->slot[e - 1].key == key)
            return i;
    }
}

static void s_table_put(cli_pipe *p, uint64_t key, uint32_t slot)
{
    uint32_t i = s_home(p, key);
    while (p->table[i])
        i = (i + 1) & p->tmask;
    p->table[i] = slot + 1;
}

/* Remove the entry at position i, shifting later entries of the same probe
 * run back so that lookups never stop at a hole they should have crossed. */
static void s_table_del(cli_pipe *p, uint32_t i)
{
    for (;;) {
        p->table[i] = 0;
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & p->tmask;
            if (!p->table[j])
                return;
            uint32_t k = s_home(p, p->slot[p->table[j] - 1].key);
            /* The entry at j may stay if its home lies cyclically in (i, j]. */
            int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (!stays)
                break;
        }
        p->table[i] = p->table[j];
        i = j;
    }
}

/* ---- deadline heap --------------------------------------------------------- */

static void s_heap_set(cli_pipe *p, uint32_t pos, uint32_t slot)
{
    p->heap[pos] = slot;
    p->slot[slot].heap_pos = pos;
}

static void s_heap_up(cli_pipe *p, uint32_t pos)
{
    uint32_t s = p->heap[pos];
    int64_t d = p->slot[s].deadline_us;
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (p->slot[p->heap[parent]].deadline_us <= d)
            break;
        s_heap_set(p, pos, p->heap[parent]);
        pos = parent;
    }
    s_heap_set(p, pos, s);
}

static void s_heap_down(cli_pipe *p, uint32_t pos)
{
    uint32_t s = p->heap[pos];
    int64_t d = p->slot[s].deadline_us;
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= p->n_heap)
            break;
        if (c + 1 < p->n_heap &&
            p->slot[p->heap[c + 1]].deadline_us < p->slot[p->heap[c]].deadline_us)
            c++;
        if (d <= p->slot[p->heap[c]].deadline_us)
            break;
        s_heap_set(p, pos, p->heap[c]);
        pos = c;
    }
    s_heap_set(p, pos, s);
}

static void s_heap_remove(cli_pipe *p, uint32_t pos)
{
    uint32_t last = p->heap[--p->n_heap];
    if (pos == p->n_heap)
        return;
    s_heap_set(p, pos, last);
    s_heap_up(p, pos);
    s_heap_down(p, p->slot[last].heap_pos);
}

/* Forget slot s: out of the heap, the table and back on the free stack. */
static void s_retire(cli_pipe *p, uint32_t s, int64_t table_pos)
{
    s_heap_remove(p, p->slot[s].heap_pos);
    s_table_del(p, (uint32_t)table_pos);
    p->free_slots[p->n_free++] = s;
}

/* ---- life cycle ------------------------------------------------------------ */

cli_pipe *cli_pipe_new(void *zmq_ctx, const cli_endpoints *eps, const char *id_prefix,
                       size_t max_inflight, cli_err *err)
{
    size_t plen = id_prefix ? strlen(id_prefix) : 0;
    if (!zmq_ctx || !eps || eps->n < 1 || plen >= sizeof ((cli_pipe *)0)->prefix ||
        max_inflight < 1 || max_inflight > (1u << 24)) {
        cli_fail(err, CLI_INVAL, "cli_pipe_new: bad arguments");
        return NULL;
    }
    for (size_t i = 0; i < plen; i++) {
        char c = id_prefix[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-')) {
            cli_fail(err, CLI_INVAL, "cli_pipe_new: id prefix '%s' must be letters", id_prefix);
            return NULL;
        }
    }
    cli_pipe *p = calloc(1, sizeof *p);
    if (!p)
        goto nomem;
    memcpy(p->prefix, id_prefix, plen);
    p->plen = plen;
    p->cap = (uint32_t)max_inflight;
    uint32_t tsize = 16;
    while (tsize < 2 * p->cap)
        tsize *= 2;
    p->tmask = tsize - 1;
    p->slot = calloc(p->cap, sizeof *p->slot);
    p->free_slots = malloc(p->cap * sizeof *p->free_slots);
    p->heap = malloc(p->cap * sizeof *p->heap);
    p->table = calloc(tsize, sizeof *p->table);
    if (!p->slot || !p->free_slots || !p->heap || !p->table)
        goto nomem;
    for (uint32_t i = 0; i < p->cap; i++)
        p->free_slots[i] = p->cap - 1 - i;
    p->n_free = p->cap;

    p->sock = zmq_socket(zmq_ctx, ZMQ_DEALER);
    if (!p->sock) {
        cli_fail(err, CLI_ZMQ, "socket: %s", zmq_strerror(errno));
        cli_pipe_destroy(&p);
        return NULL;
    }
    int zero = 0, one = 1, ivl = 100, hb = 1000, hb_timeout = 3000;
    /* Room for every request in flight plus the replies coming back; the
     * window, not ZeroMQ's default of 1000, is what bounds the queue. */
    int hwm = p->cap > (INT_MAX - 1000) / 2 ? INT_MAX : (int)(2 * p->cap + 1000);
    zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(p->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(p->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(p->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    /* Heartbeats catch a peer that vanished without closing the connection
     * (a host gone, a cable pulled); a killed process is seen at once. */
    zmq_setsockopt(p->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(p->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    if (cli_curve_apply(p->sock, &eps->curve, err) != CLI_OK) {
        cli_pipe_destroy(&p);
        return NULL;
    }
    p->eps = *eps;
    p->next_refresh_us = cli_now_us() + S_REFRESH_US;
    for (int i = 0; i < eps->n; i++) {
        if (zmq_connect(p->sock, eps->v[i]) != 0) {
            cli_fail(err, CLI_ZMQ, "cannot connect to %s: %s", eps->v[i], zmq_strerror(errno));
            cli_pipe_destroy(&p);
            return NULL;
        }
    }
    return p;
nomem:
    cli_fail(err, CLI_NOMEM, "out of memory");
    cli_pipe_destroy(&p);
    return NULL;
}

void cli_pipe_destroy(cli_pipe **self_p)
{
    if (!self_p || !*self_p)
        return;
    cli_pipe *p = *self_p;
    if (p->sock) {
        int zero = 0;
        zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(p->sock);
    }
    free(p->slot);
    free(p->free_slots);
    free(p->heap);
    free(p->table);
    cli_buf_free(&p->out);
    free(p);
    *self_p = NULL;
}

size_t cli_pipe_inflight(const cli_pipe *self)
{
    return self->n_heap;
}

uint64_t cli_pipe_stale(const cli_pipe *self)
{
    return self->stale;
}

int64_t cli_pipe_next_deadline(const cli_pipe *self)
{
    return self->n_heap ? self->slot[self->heap[0]].deadline_us : INT64_MAX;
}

uint64_t cli_pipe_refreshes(const cli_pipe *self)
{
    return self->refreshes;
}

static int s_listed(const cli_endpoints *eps, const char *ep)
{
    for (int i = 0; i < eps->n; i++)
        if (!strcmp(eps->v[i], ep))
            return 1;
    return 0;
}

/* Follow the endpoint file: connect what it added, disconnect what it
 * dropped.  An unreadable or invalid file keeps the current set. */
static void s_refresh(cli_pipe *p, int64_t now)
{
    p->next_refresh_us = now + S_REFRESH_US;
    cli_endpoints next = p->eps;
    if (cli_endpoints_refresh(&next, NULL) != 1)
        return;
    for (int i = 0; i < p->eps.n; i++)
        if (!s_listed(&next, p->eps.v[i]))
            zmq_disconnect(p->sock, p->eps.v[i]);
    for (int i = 0; i < next.n; i++)
        if (!s_listed(&p->eps, next.v[i]))
            zmq_connect(p->sock, next.v[i]);
    p->eps = next;
    p->refreshes++;
}

/* ---- send ------------------------------------------------------------------ */

int cli_pipe_send(cli_pipe *p, uint64_t key, const char *body, size_t len, int64_t stamp,
                  int64_t deadline_us)
{
    if (len < 2 || body[0] != '{' || body[len - 1] != '}')
        return CLI_INVAL;
    if (s_find(p, key) >= 0)
        return CLI_INVAL;
    if (p->n_free == 0)
        return CLI_FULL;

    /* {"id":"b17", + the body after its brace; "{}" becomes {"id":"b17"}. */
    cli_buf_reset(&p->out);
    int empty = 1;
    for (size_t i = 1; i + 1 < len && empty; i++)
        empty = body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r';
    if (cli_buf_printf(&p->out, "{\"id\":\"%s%llu\"%s", p->prefix, (unsigned long long)key,
                       empty ? "}" : ",") ||
        (!empty && cli_buf_put(&p->out, body + 1, len - 1)))
        return CLI_NOMEM;

    int rc = cli_send(p->sock, 1, p->out.data, p->out.len, 0, NULL);
    if (rc == CLI_TIMEOUT)
        return CLI_AGAIN;   /* no live peer, or its queue is full */
    if (rc != CLI_OK)
        return rc;

    uint32_t s = p->free_slots[--p->n_free];
    p->slot[s] = (s_slot){.key = key, .stamp = stamp, .sent_us = cli_now_us(),
                          .deadline_us = deadline_us};
    s_table_put(p, key, s);
    p->heap[p->n_heap] = s;
    p->slot[s].heap_pos = p->n_heap++;
    s_heap_up(p, p->n_heap - 1);
    return CLI_OK;
}

/* ---- receive ---------------------------------------------------------------- */

/* The key encoded in a reply's id, or -1 if the id is not one of ours. */
static int s_reply_key(const cli_pipe *p, const cJSON *reply, uint64_t *key)
{
    const char *id = cli_json_str(reply, "id");
    if (!id || strncmp(id, p->prefix, p->plen) != 0)
        return -1;
    const char *d = id + p->plen;
    if (*d < '0' || *d > '9')
        return -1;
    uint64_t k = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || k > (UINT64_MAX - 9) / 10)
            return -1;
        k = k * 10 + (uint64_t)(*d - '0');
    }
    *key = k;
    return 0;
}

/* Take one message off the socket without waiting and match it.  1 with ev
 * filled, 0 when there is nothing (more) to read, 2 when a message was read
 * but matched nothing, -1 on a socket failure. */
static int s_take_reply(cli_pipe *p, cli_pipe_event *ev)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, p->sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        return e == EAGAIN || e == EINTR ? 0 : -1;
    }
    int more = zmq_msg_more(&msg);
    if (zmq_msg_size(&msg) == 0 && more) {
        /* The delimiter; the body follows in the same message. */
        if (zmq_msg_recv(&msg, p->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return -1;
        }
        more = zmq_msg_more(&msg);
    }
    cJSON *json = cli_json_object(zmq_msg_data(&msg), zmq_msg_size(&msg));
    zmq_msg_close(&msg);
    while (more) {   /* not protocol v1: skip to the next message */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        more = zmq_msg_recv(&extra, p->sock, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&extra);
        zmq_msg_close(&extra);
    }
    if (!json)
        return 2;   /* not a JSON object: dropped like a stale reply */
    uint64_t key;
    int64_t pos;
    if (s_reply_key(p, json, &key) != 0 || (pos = s_find(p, key)) < 0) {
        p->stale++;
        cJSON_Delete(json);
        return 2;
    }
    uint32_t s = p->table[pos] - 1;
    *ev = (cli_pipe_event){.kind = CLI_EV_REPLY, .key = key, .stamp = p->slot[s].stamp,
                           .sent_us = p->slot[s].sent_us, .at_us = cli_now_us(),
                           .json = json};
    s_retire(p, s, pos);
    return 1;
}

/* Pop the request at the heap root as a timeout event if its deadline is past. */
static int s_take_timeout(cli_pipe *p, int64_t now, cli_pipe_event *ev)
{
    if (!p->n_heap || p->slot[p->heap[0]].deadline_us > now)
        return 0;
    uint32_t s = p->heap[0];
    *ev = (cli_pipe_event){.kind = CLI_EV_TIMEOUT, .key = p->slot[s].key,
                           .stamp = p->slot[s].stamp, .sent_us = p->slot[s].sent_us,
                           .at_us = now};
    s_retire(p, s, s_find(p, p->slot[s].key));
    return 1;
}

int cli_pipe_wait(cli_pipe *p, int64_t until_us, int want_send, cli_pipe_event *ev)
{
    for (;;) {
        /* Replies already here beat deadlines: a reply that arrived in time
         * is not a timeout just because we looked late. */
        int r;
        while ((r = s_take_reply(p, ev)) == 2)
            ;
        if (r == 1)
            return CLI_OK;
        if (r < 0)
            return CLI_ZMQ;
        int64_t now = cli_now_us();
        if (s_take_timeout(p, now, ev))
            return CLI_OK;
        if (p->eps.file[0] && now >= p->next_refresh_us)
            s_refresh(p, now);

        /* ZMQ_EVENTS processes the socket's pending commands and rearms
         * ZMQ_FD, so once it reports nothing to read, waiting on the fd
         * cannot miss a message.  (zmq_poll does the same with millisecond
         * resolution; an open-loop load test needs microseconds.) */
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(p->sock, ZMQ_EVENTS, &events, &sz) != 0)
            return errno == EINTR ? CLI_AGAIN : CLI_ZMQ;
        if (events & ZMQ_POLLIN)
            continue;
        if (want_send && (events & ZMQ_POLLOUT))
            return CLI_AGAIN;
        int64_t until = until_us;
        if (p->n_heap && p->slot[p->heap[0]].deadline_us < until)
            until = p->slot[p->heap[0]].deadline_us;
        if (p->eps.file[0] && p->next_refresh_us < until)
            until = p->next_refresh_us;
        if (until <= now) {
            if (until_us <= now)
                return CLI_AGAIN;
            continue;   /* a deadline came due: the top of the loop takes it */
        }
        int fd;
        sz = sizeof fd;
        if (zmq_getsockopt(p->sock, ZMQ_FD, &fd, &sz) != 0)
            return CLI_ZMQ;
        int64_t wait = until - now;
        struct timespec ts = {.tv_sec = wait / 1000000, .tv_nsec = (wait % 1000000) * 1000};
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (ppoll(&pfd, 1, &ts, NULL) < 0)
            return errno == EINTR ? CLI_AGAIN : CLI_ZMQ;
    }
}
