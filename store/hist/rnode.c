/* rnode.c -- Redis nodes: their URLs, the ring that assigns users to them,
 * and one handle's connection to each (redis_int.h).
 *
 * Why a client-side ring and not Redis Cluster: hiredis 0.14 has no cluster
 * support, and following a slot map -- MOVED and ASK redirects, slots in
 * migration, CLUSTERDOWN, multi-key scripts that must hash-tag every key --
 * is a protocol of its own to get right.  Independent primaries with users
 * placed by consistent hashing need nothing from the client but "which
 * node", a node lost costs only its own users, and adding one moves ~1/N
 * of them (docs/ARCHITECTURE.md weighs the two).
 *
 * Connections fail fast and recover by themselves: a failure drops the
 * connection and records why, and for retry_ms every request for that
 * node's users fails at once (`unavailable`, naming the node) instead of
 * each waiting out a connect timeout; after that the next request tries
 * again.  Connect and command timeouts bound every wait, so a node that
 * hangs costs a request timeout_ms, never a hang.
 */
#include "store/hist/redis_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "util/clock.h"
#include "util/hash.h"

/* ---- URLs ----------------------------------------------------------------- */

/* One "redis://host:port[/db]" (len bytes of text) into n. */
static int s_parse_url(const char *text, size_t len, rds_node *n, store_err *err)
{
    if (len >= sizeof n->url)
        return store_fail(err, STORE_ERR_INVAL, "history.redis: URL of %zu bytes, at most %zu",
                          len, sizeof n->url - 1);
    memcpy(n->url, text, len);
    n->url[len] = 0;
    const char *s = n->url;
    if (strncmp(s, "redis://", 8))
        return store_fail(err, STORE_ERR_INVAL, "history.redis: '%s' is not redis://host:port",
                          n->url);
    s += 8;
    const char *host = s, *host_end;
    if (*s == '[') {   /* [v6 address] */
        host = s + 1;
        host_end = strchr(host, ']');
        s = host_end ? host_end + 1 : NULL;
    } else {
        host_end = strchr(s, ':');
        s = host_end;
    }
    char *end;
    long port = 0, db = 0;
    int ok = s && *s == ':' && host_end > host && (size_t)(host_end - host) < sizeof n->host;
    if (ok) {
        errno = 0;
        port = strtol(s + 1, &end, 10);
        ok = !errno && end != s + 1 && port > 0 && port <= 65535;
        if (ok && *end == '/') {
            const char *d = end + 1;
            db = strtol(d, &end, 10);
            ok = end != d && db >= 0 && db <= 1000000;
        }
        ok = ok && *end == 0;
    }
    if (!ok)
        return store_fail(err, STORE_ERR_INVAL, "history.redis: '%s' is not "
                          "redis://host:port[/db] (port 1..65535)", n->url);
    memcpy(n->host, host, (size_t)(host_end - host));
    n->host[host_end - host] = 0;
    n->port = (int)port;
    n->db = (int)db;
    return STORE_OK;
}

/* ---- the ring ------------------------------------------------------------- */

static uint64_t s_user_hash(const char *user, size_t len)
{
    return util_hash_mix(util_fnv1a(UTIL_FNV_OFFSET, user, len));
}

/* Points sort by hash; two equal hashes (odds 2^-64) by node, so that every
 * process builds the same ring. */
static int s_point_cmp(const void *a, const void *b, void *ctx)
{
    const rds_ring *r = ctx;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    uint64_t x = r->hash[i], y = r->hash[j];
    if (x != y)
        return x < y ? -1 : 1;
    return strcmp(r->node[r->owner[i]].url, r->node[r->owner[j]].url);
}

static int s_build(rds_ring *r, store_err *err)
{
    r->n_points = (uint32_t)r->n * RDS_POINTS;
    r->hash = malloc(r->n_points * sizeof *r->hash);
    r->owner = malloc(r->n_points * sizeof *r->owner);
    uint32_t *order = malloc(r->n_points * sizeof *order);
    uint64_t *h2 = malloc(r->n_points * sizeof *h2);
    uint16_t *o2 = malloc(r->n_points * sizeof *o2);
    if (!r->hash || !r->owner || !order || !h2 || !o2) {
        free(order);
        free(h2);
        free(o2);
        return store_fail(err, STORE_ERR_NOMEM, "history.redis: out of memory");
    }
    for (int k = 0; k < r->n; k++) {
        char name[300];
        int len = snprintf(name, sizeof name, "%s:%d/%d", r->node[k].host, r->node[k].port,
                           r->node[k].db);
        uint64_t base = util_fnv1a(UTIL_FNV_OFFSET, name, (size_t)len);
        for (uint32_t p = 0; p < RDS_POINTS; p++) {
            uint32_t at = (uint32_t)k * RDS_POINTS + p;
            r->hash[at] = util_hash_mix(util_fnv1a(base, &p, sizeof p));
            r->owner[at] = (uint16_t)k;
            order[at] = at;
        }
    }
    qsort_r(order, r->n_points, sizeof *order, s_point_cmp, r);
    for (uint32_t i = 0; i < r->n_points; i++) {
        h2[i] = r->hash[order[i]];
        o2[i] = r->owner[order[i]];
    }
    free(r->hash);
    free(r->owner);
    free(order);
    r->hash = h2;
    r->owner = o2;
    return STORE_OK;
}

int rds_ring_init(rds_ring *r, const char *urls, store_err *err)
{
    memset(r, 0, sizeof *r);
    if (!urls || !*urls)
        return store_fail(err, STORE_ERR_INVAL, "history.redis: no node given "
                          "(redis://host:port, comma-separated)");
    r->node = calloc(RDS_NODES_MAX, sizeof *r->node);
    if (!r->node)
        return store_fail(err, STORE_ERR_NOMEM, "history.redis: out of memory");
    for (const char *s = urls; *s;) {
        while (*s == ' ' || *s == ',')
            s++;
        size_t len = strcspn(s, ", ");
        if (!len)
            break;
        if (r->n == RDS_NODES_MAX) {
            rds_ring_free(r);
            return store_fail(err, STORE_ERR_INVAL, "history.redis: more than %d nodes",
                              RDS_NODES_MAX);
        }
        int rc = s_parse_url(s, len, &r->node[r->n], err);
        for (int k = 0; rc == STORE_OK && k < r->n; k++)
            if (!strcmp(r->node[k].host, r->node[r->n].host) &&
                r->node[k].port == r->node[r->n].port && r->node[k].db == r->node[r->n].db)
                rc = store_fail(err, STORE_ERR_INVAL, "history.redis: '%s' is listed twice",
                                r->node[r->n].url);
        if (rc != STORE_OK) {
            rds_ring_free(r);
            return rc;
        }
        r->n++;
        s += len;
    }
    if (r->n == 0) {
        rds_ring_free(r);
        return store_fail(err, STORE_ERR_INVAL, "history.redis: no node given");
    }
    int rc = s_build(r, err);
    if (rc != STORE_OK)
        rds_ring_free(r);
    return rc;
}

void rds_ring_free(rds_ring *r)
{
    for (int k = 0; r->node && k < r->n; k++)
        if (r->node[k].c)
            redisFree(r->node[k].c);
    free(r->node);
    free(r->hash);
    free(r->owner);
    memset(r, 0, sizeof *r);
}

int rds_ring_node(const rds_ring *r, const char *user, size_t len)
{
    if (r->n == 1)
        return 0;
    uint64_t h = s_user_hash(user, len);
    uint32_t lo = 0, hi = r->n_points;   /* the first point with hash >= h */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->hash[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->owner[lo == r->n_points ? 0 : lo];
}

/* ---- connections ---------------------------------------------------------- */

static struct timeval s_tv(int ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

int rds_fail(rds_node *n, const rds_conf *cf, const char *why, store_err *err)
{
    if (why != n->why)
        snprintf(n->why, sizeof n->why, "%s", why);
    if (n->c) {
        redisFree(n->c);
        n->c = NULL;
    }
    n->sha[0] = 0;
    n->retry_at = util_now_ns() + (uint64_t)cf->retry_ms * 1000000u;
    return store_fail(err, STORE_ERR_UNAVAILABLE, "history backend redis: %s: %s", n->url,
                      n->why);
}

int rds_ready(rds_node *n, const rds_conf *cf, store_err *err)
{
    if (n->c)
        return STORE_OK;
    uint64_t now = util_now_ns();
    if (now < n->retry_at)
        return store_fail(err, STORE_ERR_UNAVAILABLE, "history backend redis: %s: %s (next "
                          "attempt in %llu ms)", n->url, n->why,
                          (unsigned long long)((n->retry_at - now) / 1000000u + 1));
    redisContext *c = redisConnectWithTimeout(n->host, n->port, s_tv(cf->connect_ms));
    if (!c || c->err) {
        char why[200];
        snprintf(why, sizeof why, "cannot connect: %s", c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return rds_fail(n, cf, why, err);
    }
    n->c = c;
    if (redisSetTimeout(c, s_tv(cf->timeout_ms)) != REDIS_OK)
        return rds_fail(n, cf, "cannot set the command timeout", err);
    if (n->db > 0) {
        redisReply *rep = redisCommand(c, "SELECT %d", n->db);
        int rc = rds_check(n, cf, rep, "SELECT", err);
        if (rep)
            freeReplyObject(rep);
        return rc;
    }
    return STORE_OK;
}

/* Error replies that mean "not now" rather than "wrong". */
static int s_transient(const char *msg)
{
    static const char *const words[] = {"LOADING", "READONLY", "MASTERDOWN", "BUSY", "OOM",
                                        "TRYAGAIN", "CLUSTERDOWN"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strncmp(msg, words[i], strlen(words[i])))
            return 1;
    return 0;
}

int rds_check(rds_node *n, const rds_conf *cf, const redisReply *reply, const char *what,
              store_err *err)
{
    if (!reply) {
        char why[200];
        /* A timed-out read reports EAGAIN: say what it means. */
        const char *e = n->c && n->c->err ? n->c->errstr : "no reply";
        if (n->c && n->c->err == REDIS_ERR_IO && strstr(e, "temporarily unavailable"))
            e = "timed out";   /* the socket's receive timeout (EAGAIN) */
        snprintf(why, sizeof why, "%s: %s (after %d ms at most)", what, e, cf->timeout_ms);
        return rds_fail(n, cf, why, err);
    }
    if (reply->type != REDIS_REPLY_ERROR)
        return STORE_OK;
    if (s_transient(reply->str)) {
        char why[200];
        snprintf(why, sizeof why, "%s: %.150s", what, reply->str);
        return rds_fail(n, cf, why, err);
    }
    return store_fail(err, STORE_ERR_IO, "history backend redis: %s: %s: %.300s", n->url, what,
                      reply->str);
}
