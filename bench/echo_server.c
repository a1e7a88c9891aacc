/* echo_server.c -- the floor under attnd's end-to-end numbers: a bare ZeroMQ
 * ROUTER that answers every request at once, doing no work at all.
 *
 * Driven by the same attn-load, with the same requests, as attnd, it
 * measures what the socket type, libzmq's I/O thread, the loopback and the
 * client cost by themselves; attnd's throughput as a fraction of it is how
 * much the daemon adds (docs/PERFORMANCE.md).
 *
 * attn-load matches replies by their "id" and counts a reply only if it says
 * "ok":true, so a verbatim echo would be counted as a bad reply.  Two modes:
 *
 *   --reply FILE  (the comparison the suite reports) answer with FILE -- a
 *                 reply attnd itself gave to a request of the benchmark's
 *                 shape -- with its id replaced by the request's: the same
 *                 bytes on the wire both ways as attnd, and the same parse
 *                 work in the client;
 *   (default)     echo the request with "ok":true spliced in after its
 *                 opening brace: the request's bytes come back (plus 10).
 *
 * Either way the server only scans for the id; it never parses JSON.  One
 * thread, the socket options attnd's frontend uses (high-water marks), and
 * REQ-style framing [route, "", body] or bare DEALER framing [route, body]
 * answered in kind.  SIGINT/SIGTERM end it; it prints the messages served.
 *
 * --score SHAPE adds the one piece of work attnd cannot avoid: before each
 * reply, attn_score on a request of that shape (P1..P4) drawn from a pool
 * over a random 100,000-item catalog and trained-shape model (bench.h), on
 * this one thread.  The server then costs what a ZeroMQ ROUTER plus the
 * scoring engine cost, with no parsing, lookups, encoding or threads: the
 * floor under attnd's end-to-end cost, and the gap to attnd is the daemon's
 * own overhead.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "attn/attn.h"
#include "attn/score.h"
#include "bench/bench.h"
#include "util/pid.h"

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* The canned reply split around its id's value: head = up to and including
 * `"id":`, tail = from the character after the value on. */
typedef struct s_canned {
    char *text;
    size_t head, tail, len;
} s_canned;

/* Length of the JSON value (a string without escapes, a number, null)
 * starting at p, within n bytes; 0 if it is none of those. */
static size_t s_value_len(const char *p, size_t n)
{
    if (n && p[0] == '"') {
        const char *q = memchr(p + 1, '"', n - 1);
        return q ? (size_t)(q - p) + 1 : 0;
    }
    size_t i = 0;
    while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ' ')
        i++;
    return i;
}

/* Where the value of the top-level "id" member starts (attn-load puts it
 * first); NULL if the message has none.  A scan, not a parse: that is the
 * point of the server. */
static const char *s_find_id(const char *body, size_t n, size_t *vlen)
{
    static const char key[] = "\"id\":";
    const char *p = memmem(body, n, key, sizeof key - 1);
    if (!p)
        return NULL;
    p += sizeof key - 1;
    size_t rest = n - (size_t)(p - body);
    *vlen = s_value_len(p, rest);
    return *vlen ? p : NULL;
}

static int s_load_canned(const char *path, s_canned *c)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "echo_server: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    c->text = malloc((size_t)n + 1);
    if (!c->text || fread(c->text, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        fprintf(stderr, "echo_server: cannot read %s\n", path);
        return -1;
    }
    fclose(f);
    while (n > 0 && (c->text[n - 1] == '\n' || c->text[n - 1] == '\r'))
        n--;   /* a file from a shell tool ends in a newline attnd never sent */
    c->len = (size_t)n;
    size_t vlen;
    const char *v = s_find_id(c->text, c->len, &vlen);
    if (!v) {
        fprintf(stderr, "echo_server: %s: no \"id\" member to replace\n", path);
        return -1;
    }
    c->head = (size_t)(v - c->text);
    c->tail = c->head + vlen;
    return 0;
}

/* Build the reply to body into msg. */
static int s_reply(const s_canned *c, const char *body, size_t n, zmq_msg_t *msg)
{
    if (c->text) {
        size_t vlen = 4;
        const char *v = s_find_id(body, n, &vlen);
        if (!v) {
            v = "null";
            vlen = 4;
        }
        size_t len = c->head + vlen + (c->len - c->tail);
        if (zmq_msg_init_size(msg, len) != 0)
            return -1;
        char *o = zmq_msg_data(msg);
        memcpy(o, c->text, c->head);
        memcpy(o + c->head, v, vlen);
        memcpy(o + c->head + vlen, c->text + c->tail, c->len - c->tail);
        return 0;
    }
    static const char ok[] = "{\"ok\":true,";
    if (n < 2 || body[0] != '{') {   /* not an object: echo verbatim */
        if (zmq_msg_init_size(msg, n) != 0)
            return -1;
        memcpy(zmq_msg_data(msg), body, n);
        return 0;
    }
    /* "{}" becomes {"ok":true}: drop the comma when nothing follows it. */
    size_t keep = n == 2 ? sizeof ok - 2 : sizeof ok - 1;
    if (zmq_msg_init_size(msg, keep + (n - 1)) != 0)
        return -1;
    char *o = zmq_msg_data(msg);
    memcpy(o, ok, keep);
    memcpy(o + keep, body + 1, n - 1);
    return 0;
}

/* --score: everything attn_score needs, built once. */
typedef struct s_scorer {
    const bench_shape *sh;
    float *emb;
    attn_model *md;
    attn_tables *t;
    attn_scratch *s;
    uint32_t *hist, *cand;   /* pool x L, pool x N catalog rows */
    int pool, next;
} s_scorer;

static int s_scorer_init(s_scorer *sc, const char *shape, size_t items)
{
    memset(sc, 0, sizeof *sc);
    if (!(sc->sh = bench_shape_find(shape))) {
        fprintf(stderr, "echo_server: --score %s: not one of P1..P4\n", shape);
        return -1;
    }
    const bench_shape *sh = sc->sh;
    bench_rng r = {.s = 99};
    sc->emb = bench_catalog(items, sh->d, &r);
    sc->md = bench_model(sh->d, sh->d, sh->heads, sh->L, (int64_t)items, NULL, &r);
    int64_t *pidx = bench_alloc(items * sizeof *pidx);
    for (size_t i = 0; i < items; i++)
        pidx[i] = (int64_t)i;
    int st = attn_tables_build(&sc->t, sc->md, sc->emb, items, (size_t)sh->d, pidx,
                               ATTN_PRECOMPUTE_ALL, 2);
    free(pidx);
    attn_limits lim = {.max_cand = sh->N, .max_hist = sh->L, .max_k = 10, .max_explain = 0};
    if (st != ATTN_OK || !(sc->s = attn_scratch_new(sc->t, &lim))) {
        fprintf(stderr, "echo_server: cannot build the scoring tables\n");
        return -1;
    }
    sc->pool = 1024;
    sc->hist = bench_alloc((size_t)sc->pool * sh->L * sizeof *sc->hist);
    sc->cand = bench_alloc((size_t)sc->pool * sh->N * sizeof *sc->cand);
    uint32_t *perm = bench_alloc(items * sizeof *perm);
    for (size_t i = 0; i < items; i++)
        perm[i] = (uint32_t)i;
    for (int p = 0; p < sc->pool; p++) {
        bench_distinct(perm, (uint32_t)items, sh->L, &r, sc->hist + (size_t)p * sh->L);
        bench_distinct(perm, (uint32_t)items, sh->N, &r, sc->cand + (size_t)p * sh->N);
    }
    free(perm);
    return 0;
}

/* Score the pool's next request; its result is dropped (the reply is canned). */
static int s_score_one(s_scorer *sc)
{
    const bench_shape *sh = sc->sh;
    int p = sc->next;
    sc->next = (sc->next + 1) % sc->pool;
    attn_request rq = {.hist = sc->hist + (size_t)p * sh->L, .n_hist = sh->L,
                       .cand = sc->cand + (size_t)p * sh->N, .n_cand = sh->N, .k = 10};
    attn_result res;
    return attn_score(sc->t, &rq, sc->s, &res);
}

int main(int argc, char **argv)
{
    const char *bind = "tcp://127.0.0.1:5599", *reply = NULL, *score = NULL;
    size_t items = 100000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bind") && i + 1 < argc)
            bind = argv[++i];
        else if (!strcmp(argv[i], "--reply") && i + 1 < argc)
            reply = argv[++i];
        else if (!strcmp(argv[i], "--score") && i + 1 < argc)
            score = argv[++i];
        else if (!strcmp(argv[i], "--items") && i + 1 < argc)
            items = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: echo_server [--bind ENDPOINT] [--reply FILE] "
                            "[--score P1|P2|P3|P4 [--items N]]\n"
                            "A ROUTER that answers each request at once (see the source).\n");
            return 2;
        }
    }
    if (util_pid_cache_init() != 0) {   /* as attnd: libzmq's fork checks without a system call */
        fprintf(stderr, "echo_server: cannot register a fork handler\n");
        return 1;
    }
    s_canned canned = {0};
    if (reply && s_load_canned(reply, &canned) != 0)
        return 1;
    s_scorer scorer;
    if (score && (items < 2000 || s_scorer_init(&scorer, score, items) != 0))
        return 1;
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    int hwm = 100000, zero = 0;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(sock, bind) != 0) {
        fprintf(stderr, "echo_server: cannot bind %s: %s\n", bind, zmq_strerror(errno));
        return 1;
    }
    fprintf(stderr, "echo_server: listening on %s (%s%s%s)\n", bind,
            reply ? "canned reply" : "echo", score ? ", scoring " : "", score ? score : "");

    unsigned long served = 0, bad = 0;
    zmq_msg_t part[4];
    while (!s_stop) {
        /* [route, "", body] from REQ and REQ-style DEALER, [route, body]
         * from a bare DEALER; anything longer is drained and dropped. */
        int n = 0, more = 1, failed = 0;
        while (more) {
            zmq_msg_t tmp, *m = n < 4 ? &part[n] : &tmp;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, sock, 0) < 0) {
                zmq_msg_close(m);
                failed = 1;
                break;
            }
            more = zmq_msg_more(m);
            if (m == &tmp)
                zmq_msg_close(m);
            n++;
        }
        if (failed) {
            for (int i = 0; i < n && i < 4; i++)
                zmq_msg_close(&part[i]);
            if (errno == EINTR || errno == ETERM)
                continue;
            fprintf(stderr, "echo_server: receive: %s\n", zmq_strerror(errno));
            break;
        }
        int delim = n == 3 && zmq_msg_size(&part[1]) == 0;
        if (n > 4 || (n != 2 && !delim)) {
            bad++;
            for (int i = 0; i < n && i < 4; i++)
                zmq_msg_close(&part[i]);
            continue;
        }
        zmq_msg_t *body = &part[n - 1], out;
        if (score && s_score_one(&scorer) != ATTN_OK) {
            fprintf(stderr, "echo_server: attn_score failed\n");
            break;
        }
        if (s_reply(&canned, zmq_msg_data(body), zmq_msg_size(body), &out) != 0) {
            fprintf(stderr, "echo_server: out of memory\n");
            break;
        }
        /* Route, delimiter (if the request had one), reply: ownership of
         * each part passes to libzmq on a successful send. */
        int ok = zmq_msg_send(&part[0], sock, ZMQ_SNDMORE) >= 0;
        if (ok && delim)
            ok = zmq_msg_send(&part[1], sock, ZMQ_SNDMORE) >= 0;
        if (ok)
            ok = zmq_msg_send(&out, sock, 0) >= 0;
        if (!ok)
            zmq_msg_close(&out);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);   /* a no-op on parts already sent */
        served += ok;
    }
    fprintf(stderr, "echo_server: %lu messages answered, %lu malformed\n", served, bad);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(canned.text);
    if (score) {
        attn_scratch_free(&scorer.s);
        attn_tables_free(&scorer.t);
        attn_model_free(&scorer.md);
        free(scorer.emb);
        free(scorer.hist);
        free(scorer.cand);
    }
    return 0;
}
