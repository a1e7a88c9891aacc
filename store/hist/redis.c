/* redis.c -- the Redis history backend: histories shared by every replica.
 *
 * A user's events are a list, newest first, and a sorted set of their
 * event ids (redis_int.h); users live on the node the ring gives them.
 *
 * Read: one LRANGE of the newest max elements on the user's node, decoded
 * in place.  A user without a list is STORE_ERR_NOTFOUND: Redis keeps no
 * empty lists, so "never seen" and "no events" are one case here.
 *
 * Append: the batch is split by node; each node's share is one call of the
 * append script below, which Redis runs atomically.  Per event, the script
 *   1. calls it a duplicate if its event id is in the user's id set, or if
 *      an element with the same (ts, item, kind) is in the list (the key the
 *      sqlite backend's primary key dedupes on);
 *   2. else inserts it where it belongs in newest-first order -- (ts,
 *      item_id, kind) descending, the order store_history reads -- which is
 *      the head for an event newer than the user's newest (the usual case,
 *      O(1)), and a scan from the head otherwise, in chunks of 4, 8, ... 64
 *      elements (an event of the same second as the newest, but a smaller
 *      item id, belongs a few places down: fetching 64 elements for it cost
 *      3x the whole append);
 * then trims each touched list and id set to the newest `trim` and, with a
 * TTL, renews both keys' expiry.  Dedupe thus lives in Redis, survives any
 * replica's restart, and is bounded: ids are kept as long as their events
 * are (an event older than the newest `trim` cannot come back anyway: it
 * would be trimmed on arrival).
 *
 * Durability: an append returns once Redis has run the script and
 * replied, i.e. the events are in its memory and in its AOF buffer.  Past
 * that it is Redis's appendfsync policy (docs/OPERATIONS.md): `always`
 * survives a power cut, `everysec` may lose the last second.
 *
 * Failures are per node.  A node that does not answer within timeout_ms,
 * or refuses the connection, fails only the events of its users: they get
 * STORE_HIST_UNAVAILABLE and err names the node; the other nodes' events
 * are stored.  A resend is safe -- what was stored is a duplicate then.
 */
#include "store/hist/hist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/hist/redis_int.h"

/* KEYS: per user, its list then its id set.  ARGV: trim, ttl, then six per
 * event: user (1-based index into the key pairs), element, ts, item, kind,
 * id hash ("" when the event has none).  Returns 1 (stored) or 0
 * (duplicate) per event. */
static const char s_script[] =
    "local trim, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local function varint(s, p)\n"
    "  local v, mul = 0, 1\n"
    "  while true do\n"
    "    local b = string.byte(s, p); p = p + 1\n"
    "    if b < 128 then return v + b * mul, p end\n"
    "    v = v + (b - 128) * mul; mul = mul * 128\n"
    "  end\n"
    "end\n"
    "local function unzz(n) if n % 2 == 0 then return n / 2 end return -(n + 1) / 2 end\n"
    "local function bytecmp(a, b)\n"
    "  for i = 1, math.min(#a, #b) do\n"
    "    local x, y = string.byte(a, i), string.byte(b, i)\n"
    "    if x ~= y then return x < y and -1 or 1 end\n"
    "  end\n"
    "  if #a == #b then return 0 end\n"
    "  return #a < #b and -1 or 1\n"
    "end\n"
    /* element e against the event (ts, item, kind): -1 older, 0 same, 1 newer */
    "local function cmp(e, ts, item, kind)\n"
    "  local v, p = varint(e, 1)\n"
    "  v = unzz(v)\n"
    "  if v ~= ts then return v < ts and -1 or 1 end\n"
    "  v, p = varint(e, p)\n"
    "  v = unzz(v)\n"
    "  if v ~= item then return v < item and -1 or 1 end\n"
    "  if string.byte(e, p) == 1 then p = p + 5 end\n"
    "  local k = 'view'\n"
    "  if string.byte(e, p) == 2 then k = string.sub(e, p + 1) end\n"
    "  return bytecmp(k, kind)\n"
    "end\n"
    /* heads[u]: user u's newest element as far as this call knows (false:
     * an empty list), so that a user's later events in the batch skip LINDEX */
    "local heads = {}\n"
    "local function insert(u, list, elem, ts, item, kind)\n"
    "  local head = heads[u]\n"
    "  if head == nil then head = redis.call('LINDEX', list, 0) end\n"
    "  local c = head and cmp(head, ts, item, kind) or -1\n"
    "  if c < 0 then redis.call('LPUSH', list, elem) heads[u] = elem return 1 end\n"
    "  heads[u] = head\n"
    "  if c == 0 then return 0 end\n"
    "  local len = redis.call('LLEN', list)\n"
    "  local at, step = 1, 4\n"
    "  while at < len do\n"
    "    local chunk = redis.call('LRANGE', list, at, at + step - 1)\n"
    "    for _, e in ipairs(chunk) do\n"
    "      c = cmp(e, ts, item, kind)\n"
    "      if c == 0 then return 0 end\n"
    /* the first element older than the event: its value occurs first here,
     * every element before it being newer than the event */
    "      if c < 0 then redis.call('LINSERT', list, 'BEFORE', e, elem) return 1 end\n"
    "    end\n"
    "    at = at + step\n"
    "    if step < 64 then step = step * 2 end\n"
    "  end\n"
    "  if len < trim then redis.call('RPUSH', list, elem) end\n"
    "  return 1\n"
    "end\n"
    "local out, touched = {}, {}\n"
    "for i = 3, #ARGV, 6 do\n"
    "  local u = tonumber(ARGV[i])\n"
    "  local list, ids, idh = KEYS[2 * u - 1], KEYS[2 * u], ARGV[i + 5]\n"
    /* the id first (ZADD NX: one call to test and set it), taken back when
     * the event is a duplicate by its key */
    "  local r = 0\n"
    "  if idh == '' or redis.call('ZADD', ids, 'NX', ARGV[i + 2], idh) == 1 then\n"
    "    r = insert(u, list, ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), ARGV[i + 4])\n"
    "    if r == 0 and idh ~= '' then redis.call('ZREM', ids, idh) end\n"
    "  end\n"
    "  out[#out + 1] = r\n"
    "  touched[u] = true\n"
    "end\n"
    "for u in pairs(touched) do\n"
    "  local list, ids = KEYS[2 * u - 1], KEYS[2 * u]\n"
    "  redis.call('LTRIM', list, 0, trim - 1)\n"
    "  redis.call('ZREMRANGEBYRANK', ids, 0, -(trim + 1))\n"
    "  if ttl > 0 then redis.call('EXPIRE', list, ttl); redis.call('EXPIRE', ids, ttl) end\n"
    "end\n"
    "return out\n";

typedef struct s_redis {
    store_hist base;
    rds_ring ring;
    rds_conf conf;
    char prefix[64];
    int trim, ttl_s;
    char *key;                 /* a read's key */
    size_t key_cap;
    /* an append's scratch, grown to the largest batch */
    int *order;                /* event indices sorted by (node, user, index) */
    int *node_of;              /* per event: its node */
    size_t idx_cap;
    char *pool;                /* the bytes of one node's call's arguments */
    size_t pool_cap;
    const char **argv;         /* that call's arguments */
    size_t *argl;
    size_t arg_cap;
    int n_args, n_keys;
} s_redis;

/* ---- read ----------------------------------------------------------------- */

static int s_read(store_hist *h, const char *user, size_t len, int max, store_event *ev, int *n,
                  store_err *err)
{
    s_redis *s = (s_redis *)h;
    rds_node *node = &s->ring.node[rds_ring_node(&s->ring, user, len)];
    size_t klen = rds_key(&s->key, &s->key_cap, s->prefix, 'h', user, len);
    if (!klen)
        return store_fail(err, STORE_ERR_NOMEM, "history backend redis: out of memory");
    int rc = rds_ready(node, &s->conf, err);
    if (rc != STORE_OK)
        return rc;
    if (max == 0)
        max = 1;   /* still tells a known user from an unknown one */
    redisReply *rep = redisCommand(node->c, "LRANGE %b 0 %d", s->key, klen, max - 1);
    rc = rds_check(node, &s->conf, rep, "LRANGE", err);
    if (rc == STORE_OK && rep->type != REDIS_REPLY_ARRAY)
        rc = store_fail(err, STORE_ERR_CORRUPT, "history backend redis: %s: %.*s is not a list",
                        node->url, (int)(klen > 200 ? 200 : klen), s->key);
    if (rc == STORE_OK && rep->elements == 0)
        rc = store_fail(err, STORE_ERR_NOTFOUND, "history backend redis: no user '%.*s'",
                        (int)(len > 200 ? 200 : len), user);
    int k = 0;
    for (size_t i = 0; rc == STORE_OK && i < rep->elements && k < max; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_STRING ||
            rds_decode((const uint8_t *)e->str, e->len, &ev[k], NULL, NULL) != 0)
            rc = store_fail(err, STORE_ERR_CORRUPT, "history backend redis: %s: %.*s element "
                            "%zu is not an event", node->url, (int)(klen > 200 ? 200 : klen),
                            s->key, i);
        k++;
    }
    if (rep)
        freeReplyObject(rep);
    if (rc == STORE_OK)
        *n = k;
    return rc;
}

/* ---- append --------------------------------------------------------------- */

typedef struct s_sort_ctx {
    const store_hist_event *ev;
    const int *node;
} s_sort_ctx;

static int s_order_cmp(const void *a, const void *b, void *arg)
{
    const s_sort_ctx *c = arg;
    int i = *(const int *)a, j = *(const int *)b;
    if (c->node[i] != c->node[j])
        return c->node[i] < c->node[j] ? -1 : 1;
    int u = strcmp(c->ev[i].user, c->ev[j].user);
    if (u)
        return u;
    return (i > j) - (i < j);   /* a user's events in batch order */
}

static void *s_grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *grown = realloc(p, c * size);
    if (grown)
        *cap = c;
    return grown;
}

/* Room for an append of n events: order (n) and node (n) indices, and the
 * arguments of one node's call (8 per event at most). */
static int s_reserve(s_redis *s, int n, store_err *err)
{
    size_t na = 8 * (size_t)n + 8, cap = s->arg_cap, cap2 = s->arg_cap;
    const char **argv = s_grow(s->argv, &cap, na, sizeof *argv);
    if (argv)
        s->argv = argv;
    size_t *argl = s_grow(s->argl, &cap2, na, sizeof *argl);
    if (argl)
        s->argl = argl;
    size_t ci = s->idx_cap, ci2 = s->idx_cap;
    int *order = s_grow(s->order, &ci, (size_t)n, sizeof *order);
    if (order)
        s->order = order;
    int *node = s_grow(s->node_of, &ci2, (size_t)n, sizeof *node);
    if (node)
        s->node_of = node;
    if (!argv || !argl || !order || !node)
        return store_fail(err, STORE_ERR_NOMEM, "history backend redis: out of memory");
    s->arg_cap = cap < cap2 ? cap : cap2;
    s->idx_cap = ci < ci2 ? ci : ci2;
    return STORE_OK;
}

/* One argument: bytes copied into the pool (sized beforehand). */
static void s_arg(s_redis *s, int *argc, size_t *used, const void *p, size_t n)
{
    memcpy(s->pool + *used, p, n);
    s->argv[*argc] = s->pool + *used;
    s->argl[*argc] = n;
    *used += n;
    (*argc)++;
}

/* A key: prefix, tag, ':', user. */
static void s_arg_key(s_redis *s, int *argc, size_t *used, char tag, const char *user)
{
    size_t plen = strlen(s->prefix), ulen = strlen(user);
    char *at = s->pool + *used;
    memcpy(at, s->prefix, plen);
    at[plen] = tag;
    at[plen + 1] = ':';
    memcpy(at + plen + 2, user, ulen);
    s->argv[*argc] = at;
    s->argl[*argc] = plen + 2 + ulen;
    *used += plen + 2 + ulen;
    (*argc)++;
}

static void s_arg_int(s_redis *s, int *argc, size_t *used, long long v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", v);
    s_arg(s, argc, used, num, (size_t)n);
}

/* The arguments of the script call for events idx[0..m) (one node's,
 * sorted by user): 0, or -1 out of memory. */
static int s_build_call(s_redis *s, const store_hist_event *ev, const int *idx, int m)
{
    size_t plen = strlen(s->prefix), need = 128;
    for (int j = 0; j < m; j++) {
        const store_hist_event *e = &ev[idx[j]];
        size_t kind = e->kind ? strlen(e->kind) : 0;
        need += 2 * (plen + 2 + strlen(e->user)) + RDS_ELEM_FIXED + 2 * kind + 96;
    }
    size_t cap = s->pool_cap;
    char *pool = s_grow(s->pool, &cap, need, 1);
    if (!pool)
        return -1;
    s->pool = pool;
    s->pool_cap = cap;
    /* keys first: one pair per user */
    int argc = 3, users = 0;
    size_t used = 0;
    for (int j = 0; j < m; j++) {
        const char *u = ev[idx[j]].user;
        if (j > 0 && !strcmp(u, ev[idx[j - 1]].user))
            continue;
        s_arg_key(s, &argc, &used, 'h', u);
        s_arg_key(s, &argc, &used, 'e', u);
        users++;
    }
    s_arg_int(s, &argc, &used, s->trim);
    s_arg_int(s, &argc, &used, s->ttl_s);
    for (int j = 0, user = 0; j < m; j++) {
        const store_hist_event *e = &ev[idx[j]];
        user += j == 0 || strcmp(e->user, ev[idx[j - 1]].user) != 0;
        const char *kind = e->kind && *e->kind ? e->kind : "view";
        uint8_t elem[RDS_ELEM_FIXED + 256];
        size_t klen = strlen(kind);
        s_arg_int(s, &argc, &used, user);
        if (klen <= 256) {
            s_arg(s, &argc, &used, elem, rds_encode(elem, e->ts, e->item_id, e->weight, kind));
        } else {   /* a long kind: encode in place */
            size_t n = rds_encode((uint8_t *)s->pool + used, e->ts, e->item_id, e->weight, kind);
            s->argv[argc] = s->pool + used;
            s->argl[argc++] = n;
            used += n;
        }
        s_arg_int(s, &argc, &used, e->ts);
        s_arg_int(s, &argc, &used, e->item_id);
        s_arg(s, &argc, &used, kind, klen);
        uint8_t h[8];
        if (e->event_id)
            rds_id_hash(e->event_id, h);
        s_arg(s, &argc, &used, h, e->event_id ? 8 : 0);
    }
    s->argv[0] = "EVALSHA";
    s->argl[0] = 7;
    s->n_args = argc;
    s->n_keys = 2 * users;
    return 0;
}

/* Load the script on this connection unless it is. */
static int s_load_script(s_redis *s, rds_node *node, store_err *err)
{
    if (node->sha[0])
        return STORE_OK;
    redisReply *rep = redisCommand(node->c, "SCRIPT LOAD %s", s_script);
    int rc = rds_check(node, &s->conf, rep, "SCRIPT LOAD", err);
    if (rc == STORE_OK && (rep->type != REDIS_REPLY_STRING || rep->len >= sizeof node->sha))
        rc = store_fail(err, STORE_ERR_IO, "history backend redis: %s: SCRIPT LOAD: "
                        "unexpected reply", node->url);
    if (rc == STORE_OK)
        memcpy(node->sha, rep->str, rep->len + 1);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

/* Run the built call on node; outcomes for idx[0..m). */
static int s_run_call(s_redis *s, rds_node *node, const int *idx, int m, uint8_t *outcome,
                      store_err *err)
{
    char nkeys[16];
    snprintf(nkeys, sizeof nkeys, "%d", s->n_keys);
    redisReply *rep = NULL;
    int rc = STORE_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = rds_ready(node, &s->conf, err);
        if (rc == STORE_OK)
            rc = s_load_script(s, node, err);
        if (rc != STORE_OK)
            return rc;
        s->argv[1] = node->sha;
        s->argl[1] = strlen(node->sha);
        s->argv[2] = nkeys;
        s->argl[2] = strlen(nkeys);
        rep = redisCommandArgv(node->c, s->n_args, s->argv, s->argl);
        /* Scripts are gone after a Redis restart on the same connection
         * (a failover, SCRIPT FLUSH): load it again, once. */
        if (!rep || rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOSCRIPT", 8))
            break;
        freeReplyObject(rep);
        rep = NULL;
        node->sha[0] = 0;
    }
    rc = rds_check(node, &s->conf, rep, "append script", err);
    if (rc == STORE_OK && (rep->type != REDIS_REPLY_ARRAY || rep->elements != (size_t)m))
        rc = store_fail(err, STORE_ERR_IO, "history backend redis: %s: append script: "
                        "unexpected reply", node->url);
    for (int j = 0; rc == STORE_OK && j < m; j++)
        outcome[idx[j]] = rep->element[j]->integer == 1 ? STORE_HIST_STORED
                                                        : STORE_HIST_DUPLICATE;
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static int s_append(store_hist *h, const store_hist_event *ev, int n, uint8_t *outcome,
                    store_err *err)
{
    s_redis *s = (s_redis *)h;
    int rc = s_reserve(s, n, err);
    if (rc != STORE_OK)
        return rc;
    for (int i = 0; i < n; i++) {
        s->order[i] = i;
        s->node_of[i] = rds_ring_node(&s->ring, ev[i].user, strlen(ev[i].user));
    }
    s_sort_ctx ctx = {ev, s->node_of};
    qsort_r(s->order, (size_t)n, sizeof *s->order, s_order_cmp, &ctx);
    int unavailable = 0;
    store_err first = {0};
    for (int at = 0; at < n;) {
        int node = s->node_of[s->order[at]], m = 0;
        while (at + m < n && s->node_of[s->order[at + m]] == node)
            m++;
        const int *idx = s->order + at;
        store_err e;
        if (s_build_call(s, ev, idx, m) != 0)
            return store_fail(err, STORE_ERR_NOMEM, "history backend redis: out of memory");
        rc = s_run_call(s, &s->ring.node[node], idx, m, outcome, &e);
        if (rc == STORE_ERR_UNAVAILABLE) {
            for (int j = 0; j < m; j++)
                outcome[idx[j]] = STORE_HIST_UNAVAILABLE;
            if (!unavailable)
                first = e;
            unavailable += m;
        } else if (rc != STORE_OK) {
            if (err)
                *err = e;
            return rc;
        }
        at += m;
    }
    if (unavailable && err)
        *err = first;
    return unavailable == n ? STORE_ERR_UNAVAILABLE : STORE_OK;
}

/* ---- open and close -------------------------------------------------------- */

static void s_close(store_hist *h)
{
    s_redis *s = (s_redis *)h;
    rds_ring_free(&s->ring);
    free(s->key);
    free(s->order);
    free(s->node_of);
    free(s->pool);
    free(s->argv);
    free(s->argl);
    free(s);
}

static const store_hist_ops s_reader = {"redis", s_read, NULL, NULL, s_close};
static const store_hist_ops s_writer = {"redis", s_read, s_append, NULL, s_close};

int store_hist_redis_open(store_hist **out, const store_hist_redis_opts *o, store_err *err)
{
    *out = NULL;
    if (!o || o->trim < 1 || o->ttl_s < 0 || o->connect_ms < 1 || o->timeout_ms < 1 ||
        o->retry_ms < 0 || (o->prefix && strlen(o->prefix) >= sizeof ((s_redis *)0)->prefix))
        return store_fail(err, STORE_ERR_INVAL, "store_hist_redis_open: bad options");
    s_redis *s = calloc(1, sizeof *s);
    if (!s)
        return store_fail(err, STORE_ERR_NOMEM, "history backend redis: out of memory");
    int rc = rds_ring_init(&s->ring, o->urls, err);
    if (rc != STORE_OK) {
        free(s);
        return rc;
    }
    s->base.ops = o->writable ? &s_writer : &s_reader;
    s->conf = (rds_conf){o->connect_ms, o->timeout_ms, o->retry_ms};
    snprintf(s->prefix, sizeof s->prefix, "%s", o->prefix ? o->prefix : "");
    s->trim = o->trim;
    s->ttl_s = o->ttl_s;
    *out = &s->base;
    return STORE_OK;
}

int store_hist_redis_ping(store_hist *h, store_err *err)
{
    if (!h || strcmp(h->ops->name, "redis"))
        return store_fail(err, STORE_ERR_INVAL, "store_hist_redis_ping: not a redis handle");
    s_redis *s = (s_redis *)h;
    int rc = STORE_OK, down = 0;
    char list[sizeof err->msg] = "";
    for (int k = 0; k < s->ring.n; k++) {
        rds_node *node = &s->ring.node[k];
        store_err e;
        int r = rds_ready(node, &s->conf, &e);
        if (r == STORE_OK) {
            redisReply *rep = redisCommand(node->c, "PING");
            r = rds_check(node, &s->conf, rep, "PING", &e);
            if (rep)
                freeReplyObject(rep);
        }
        if (r != STORE_OK) {
            size_t at = strlen(list);
            snprintf(list + at, sizeof list - at, "%s%.*s", down++ ? "; " : "",
                     (int)(sizeof list - at > 3 ? sizeof list - at - 3 : 0), e.msg);
            rc = r;
        }
    }
    if (rc != STORE_OK)
        store_fail(err, rc, "%s", list);
    return rc;
}
