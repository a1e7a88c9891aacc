/* check_clients.c -- the client library (clients/cli*.c) and its programs.
 *
 * The daemon is played by this same binary: `check_clients --serve
 * ENDPOINT [flags]` runs a small ROUTER server that answers protocol v1
 * (rank with deterministic scores, titles, explanations, unknown items,
 * fallbacks; health; info with limits; stats), or a bare echo with
 * --echo.  Tests start it with fork+exec, so it is a separate process that
 * can be killed with SIGKILL mid-run and restarted on the same port -- the
 * port is chosen at run time by binding tcp://127.0.0.1:* and reading
 * ZMQ_LAST_ENDPOINT, which the server writes to a pipe.
 *
 * Servers are always started from the test's main thread: they carry
 * PR_SET_PDEATHSIG, which fires when the forking *thread* exits.
 *
 * The same server measures attn-load's own overhead (docs/OPERATIONS.md):
 *     build/release/tests/check_clients --serve tcp://127.0.0.1:5599 --echo
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "clients/cli.h"
#include "tests/testutil.h"
#include "util/opt.h"

static char s_self[PATH_MAX];   /* this binary, to exec as a server */

/* ======================================================================
 * The fake daemon
 * ====================================================================== */

typedef struct s_srvopt {
    int echo;              /* bare echo: the request back, with "ok":true */
    int delay_ms;          /* hold every reply this long */
    int busy_every;        /* every Nth rank is answered busy */
    int drop_nth;          /* the Nth request is never answered */
    int stall_after;       /* after N requests ... */
    int stall_ms;          /* ... stop serving for this long, once */
    int max_bytes;         /* limits.max_message_bytes in info */
    int not_ready;         /* health ready:false, rank unavailable */
} s_srvopt;

typedef struct s_held {
    int64_t due;
    char ident[256];
    size_t ident_len;
    int delim;
    char *reply;
} s_held;

static uint64_t s_hash(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (; a && *a; a++)
        h = (h ^ (unsigned char)*a) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (; b && *b; b++)
        h = (h ^ (unsigned char)*b) * 1099511628211ull;
    return h;
}

static cJSON *s_err_reply(const cJSON *id, const char *code, const char *msg)
{
    return cli_error_reply(id, code, msg);
}

/* Rank like attnd would, deterministically: score from a hash of the
 * history (or user) and the candidate, so that two runs agree byte for byte. */
static cJSON *s_rank(const cJSON *req, const cJSON *id)
{
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(req, "candidates");
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(req, "history");
    const char *user = cli_json_str(req, "user");
    if (!cJSON_IsArray(cands) || cJSON_GetArraySize(cands) == 0)
        return s_err_reply(id, "bad_request", "candidates: expected an array of strings");
    if (!user == !hist)
        return s_err_reply(id, "bad_request", "exactly one of user and history");
    const cJSON *kj = cJSON_GetObjectItemCaseSensitive(req, "k");
    const cJSON *ej = cJSON_GetObjectItemCaseSensitive(req, "explain");
    int k = cJSON_IsNumber(kj) ? kj->valueint : 10, explain = cJSON_IsNumber(ej) ? ej->valueint : 0;
    int titles = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "titles"));
    char key[256];
    snprintf(key, sizeof key, "%s", user ? user : "anon");
    if (hist && cJSON_GetArraySize(hist) > 0 && cJSON_IsString(cJSON_GetArrayItem(hist, 0)))
        snprintf(key, sizeof key, "h:%s", cJSON_GetArrayItem(hist, 0)->valuestring);

    int n = cJSON_GetArraySize(cands);
    const char **known = calloc((size_t)n, sizeof *known);
    double *score = calloc((size_t)n, sizeof *score);
    cJSON *r = cJSON_CreateObject(), *unknown = cJSON_CreateArray();
    int nk = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cands) {
        if (!cJSON_IsString(c)) {
            free(known), free(score), cJSON_Delete(r), cJSON_Delete(unknown);
            return s_err_reply(id, "bad_request", "candidates: expected an array of strings");
        }
        if (!strcmp(c->valuestring, "bad")) {
            free(known), free(score), cJSON_Delete(r), cJSON_Delete(unknown);
            return s_err_reply(id, "bad_request", "candidates: 'bad' is not allowed here");
        }
        if (c->valuestring[0] == 'x') {
            cJSON_AddItemToArray(unknown, cJSON_CreateString(c->valuestring));
            continue;
        }
        known[nk] = c->valuestring;
        score[nk++] = (double)(s_hash(key, c->valuestring) % 100000) / 10000.0;
    }
    /* Insertion sort: score descending, ties by request order (stable). */
    for (int i = 1; i < nk; i++)
        for (int j = i; j > 0 && score[j] > score[j - 1]; j--) {
            double t = score[j]; score[j] = score[j - 1]; score[j - 1] = t;
            const char *s = known[j]; known[j] = known[j - 1]; known[j - 1] = s;
        }
    cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
    cJSON_AddTrueToObject(r, "ok");
    cJSON_AddNumberToObject(r, "model", 3);
    cJSON_AddNumberToObject(r, "catalog", 7);
    cJSON *items = cJSON_AddArrayToObject(r, "items");
    int fallback = user && !strncmp(user, "new", 3);
    for (int i = 0; i < nk && i < k; i++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "item", known[i]);
        cJSON_AddNumberToObject(it, "score", score[i]);
        char t[300];
        if (titles) {
            snprintf(t, sizeof t, "Title of %s", known[i]);
            cJSON_AddStringToObject(it, "title", t);
        }
        if (explain > 0 && !fallback) {
            cJSON *because = cJSON_AddArrayToObject(it, "because");
            for (int e = 0; e < explain && e < 2; e++) {
                cJSON *b = cJSON_CreateObject();
                snprintf(t, sizeof t, "h%d", e + 1);
                cJSON_AddStringToObject(b, "item", t);
                cJSON_AddNumberToObject(b, "weight", e ? 0.25 : 0.5);
                if (titles) {
                    snprintf(t, sizeof t, "History title %d", e + 1);
                    cJSON_AddStringToObject(b, "title", t);
                }
                cJSON_AddItemToArray(because, b);
            }
        }
        cJSON_AddItemToArray(items, it);
    }
    cJSON_AddItemToObject(r, "unknown", unknown);
    cJSON_AddItemToObject(r, "excluded", cJSON_CreateArray());
    if (fallback) {
        cJSON *fb = cJSON_AddObjectToObject(r, "fallback");
        cJSON_AddStringToObject(fb, "kind", "popularity");
        cJSON_AddStringToObject(fb, "reason", "unknown_user");
    } else {
        cJSON_AddNullToObject(r, "fallback");
    }
    cJSON_AddNumberToObject(r, "history", fallback ? 0 : 2);
    cJSON_AddNumberToObject(r, "took_us", 42);
    free(known);
    free(score);
    return r;
}

/* The reply text for one request (caller frees), or NULL to drop it. */
static char *s_answer(const s_srvopt *so, const char *body, size_t len, uint64_t nreq,
                      uint64_t *nrank)
{
    if (so->echo) {
        /* A bare echo that still looks like a success to the client:
         * {"ok":true, + the request after its brace. */
        char *out = malloc(len + 16);
        if (len >= 2 && body[0] == '{') {
            memcpy(out, "{\"ok\":true,", 11);
            memcpy(out + 11, body + 1, len - 1);
            out[10 + len] = '\0';
        } else {
            memcpy(out, body, len);
            out[len] = '\0';
        }
        return out;
    }
    if (so->drop_nth && nreq == (uint64_t)so->drop_nth)
        return NULL;
    cJSON *req = cli_json_object(body, len), *r;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    const char *op = cli_json_str(req, "op");
    if (!req)
        r = s_err_reply(NULL, "bad_json", "not a JSON object");
    else if (so->max_bytes && len > (size_t)so->max_bytes)
        r = s_err_reply(NULL, "too_large", "message too large");
    else if (!op)
        r = s_err_reply(id, "bad_request", "op: missing");
    else if (!strcmp(op, "health")) {
        r = cJSON_CreateObject();
        cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
        cJSON_AddTrueToObject(r, "ok");
        cJSON_AddTrueToObject(r, "live");
        cJSON_AddBoolToObject(r, "ready", !so->not_ready);
        cJSON_AddNumberToObject(r, "items", 20000);
    } else if (!strcmp(op, "info")) {
        r = cJSON_CreateObject();
        cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
        cJSON_AddTrueToObject(r, "ok");
        cJSON_AddNumberToObject(r, "protocol", 1);
        cJSON *lim = cJSON_AddObjectToObject(r, "limits");
        cJSON_AddNumberToObject(lim, "max_message_bytes", so->max_bytes ? so->max_bytes : 1 << 20);
        cJSON_AddNumberToObject(lim, "max_k", 100);
    } else if (!strcmp(op, "stats")) {
        r = cJSON_CreateObject();
        cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
        cJSON_AddTrueToObject(r, "ok");
        cJSON *lat = cJSON_AddObjectToObject(r, "latency_us");
        cJSON_AddNumberToObject(lat, "p50", 120);
        cJSON_AddNumberToObject(r, "requests", (double)nreq);
    } else if (!strcmp(op, "rank")) {
        ++*nrank;
        if (so->not_ready)
            r = s_err_reply(id, "unavailable", "no snapshot loaded yet");
        else if (so->busy_every && *nrank % (uint64_t)so->busy_every == 0)
            r = s_err_reply(id, "busy", "queue full");
        else
            r = s_rank(req, id);
    } else {
        r = s_err_reply(id, "unknown_op", "op: unknown");
    }
    char *text = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    cJSON_Delete(req);
    return text;
}

static void s_send_reply(void *sock, const char *ident, size_t ilen, int delim, const char *reply)
{
    zmq_send(sock, ident, ilen, ZMQ_SNDMORE);
    if (delim)
        zmq_send(sock, "", 0, ZMQ_SNDMORE);
    zmq_send(sock, reply, strlen(reply), 0);
}

static int64_t s_ms_now(void)
{
    return cli_now_us() / 1000;
}

/* The fake server's command line: check_clients --serve EP [flags]. */
typedef struct s_srvargs {
    const char *ep;
    int ready_fd;          /* write the bound endpoint here, then close it */
    s_srvopt so;
} s_srvargs;

static const util_opt s_srv_pos[] = {{"EP", NULL, NULL, UTIL_OPT_STR(s_srvargs, ep)}};
static const util_opt s_srv_opts[] = {
    {"echo", NULL, NULL, UTIL_OPT_FLAG(s_srvargs, so.echo, 1)},
    {"not-ready", NULL, NULL, UTIL_OPT_FLAG(s_srvargs, so.not_ready, 1)},
    {"ready-fd", "FD", NULL, UTIL_OPT_INT(s_srvargs, ready_fd, 0, INT_MAX)},
    {"delay-ms", "MS", NULL, UTIL_OPT_INT(s_srvargs, so.delay_ms, 0, INT_MAX)},
    {"busy-every", "N", NULL, UTIL_OPT_INT(s_srvargs, so.busy_every, 0, INT_MAX)},
    {"drop-nth", "N", NULL, UTIL_OPT_INT(s_srvargs, so.drop_nth, 0, INT_MAX)},
    {"stall-after", "N", NULL, UTIL_OPT_INT(s_srvargs, so.stall_after, 0, INT_MAX)},
    {"stall-ms", "MS", NULL, UTIL_OPT_INT(s_srvargs, so.stall_ms, 0, INT_MAX)},
    {"max-bytes", "N", NULL, UTIL_OPT_INT(s_srvargs, so.max_bytes, 0, INT_MAX)},
};
static const util_opt_cmd s_srv_cmd = {.prog = "check_clients --serve",
                                       UTIL_OPT_ROWS(s_srv_opts), UTIL_OPT_ARGS(s_srv_pos)};

/* A ROUTER bound to ep (retried: a restart on the same port may race the
 * kernel releasing it), its endpoint told on ready_fd; NULL on failure. */
static void *s_bind(void *ctx, const char *ep, int ready_fd)
{
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0, hwm = 100000;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    int64_t give_up = s_ms_now() + 5000;
    while (zmq_bind(sock, ep) != 0) {
        if (s_ms_now() > give_up) {
            fprintf(stderr, "check_clients --serve: bind %s: %s\n", ep, zmq_strerror(errno));
            return NULL;
        }
        usleep(20000);
    }
    char bound[256];
    size_t blen = sizeof bound;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &blen);
    if (ready_fd >= 0) {
        dprintf(ready_fd, "%s\n", bound);
        close(ready_fd);
    } else {
        fprintf(stderr, "serving on %s\n", bound);
    }
    return sock;
}

static int s_serve(int argc, char **argv)
{
    s_srvargs a = {.ready_fd = -1};
    int rc = util_opt_main(&s_srv_cmd, argc - 1, argv + 1, &a, NULL);
    if (rc >= 0)
        return rc;
    const s_srvopt so = a.so;
    void *ctx = zmq_ctx_new();
    void *sock = s_bind(ctx, a.ep, a.ready_fd);
    if (!sock)
        return 1;

    s_held *held = NULL;
    size_t h_head = 0, h_n = 0, h_cap = 0;
    uint64_t nreq = 0, nrank = 0;
    int stalled = 0;
    for (;;) {
        long timeout = -1;
        if (h_n) {
            int64_t left = held[h_head].due - s_ms_now();
            timeout = left > 0 ? left : 0;
        }
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, timeout) < 0 && errno != EINTR)
            break;
        /* Replies that are due, in arrival order (the delay is constant). */
        while (h_n && held[h_head].due <= s_ms_now()) {
            s_held *h = &held[h_head];
            s_send_reply(sock, h->ident, h->ident_len, h->delim, h->reply);
            free(h->reply);
            h_head = (h_head + 1) % h_cap;
            h_n--;
        }
        if (!(it.revents & ZMQ_POLLIN))
            continue;
        char ident[256];
        int ilen = zmq_recv(sock, ident, sizeof ident, ZMQ_DONTWAIT);
        if (ilen < 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sock, 0);
        int delim = 0;
        if (zmq_msg_size(&m) == 0 && zmq_msg_more(&m)) {
            delim = 1;
            zmq_msg_recv(&m, sock, 0);
        }
        while (zmq_msg_more(&m)) {
            zmq_msg_t x;
            zmq_msg_init(&x);
            zmq_msg_recv(&x, sock, 0);
            int more = zmq_msg_more(&x);
            zmq_msg_close(&x);
            if (!more)
                break;
        }
        nreq++;
        char *reply = s_answer(&so, zmq_msg_data(&m), zmq_msg_size(&m), nreq, &nrank);
        zmq_msg_close(&m);
        if (so.stall_after && !stalled && nreq >= (uint64_t)so.stall_after) {
            stalled = 1;
            usleep((useconds_t)so.stall_ms * 1000);   /* a GC pause, a disk stall */
        }
        if (!reply)
            continue;
        if (!so.delay_ms) {
            s_send_reply(sock, ident, (size_t)ilen, delim, reply);
            free(reply);
            continue;
        }
        if (h_n == h_cap) {
            size_t ncap = h_cap ? 2 * h_cap : 256;
            s_held *g = malloc(ncap * sizeof *g);
            for (size_t i = 0; i < h_n; i++)
                g[i] = held[(h_head + i) % h_cap];
            free(held);
            held = g, h_head = 0, h_cap = ncap;
        }
        s_held *h = &held[(h_head + h_n++) % h_cap];
        h->due = s_ms_now() + so.delay_ms;
        memcpy(h->ident, ident, (size_t)ilen);
        h->ident_len = (size_t)ilen;
        h->delim = delim;
        h->reply = reply;
    }
    return 0;
}

/* ======================================================================
 * Test helpers: start, kill, restart servers
 * ====================================================================== */

/* Start a server on ep ("tcp://127.0.0.1:*" for a fresh port) with extra
 * flags (NULL-terminated); its real endpoint goes to out. */
static pid_t srv_start(const char *ep, const char *const *extra, char *out, size_t outlen)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", fds[1]);
    const char *argv[32] = {s_self, "--serve", ep, "--ready-fd", fdarg};
    int n = 5;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        /* Die with the test: no stray servers if a test fails. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        execv(s_self, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    /* Read "tcp://127.0.0.1:PORT\n", with a time limit. */
    size_t got = 0;
    int64_t until = cli_now_us() + (int64_t)(10e6 * tu_slowdown());
    while (got < outlen - 1 && (got == 0 || out[got - 1] != '\n')) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int left = (int)((until - cli_now_us()) / 1000);
        ck_assert_msg(left > 0 && poll(&p, 1, left) == 1, "server did not start");
        ssize_t r = read(fds[0], out + got, outlen - 1 - got);
        ck_assert_msg(r > 0, "server exited before binding");
        got += (size_t)r;
    }
    close(fds[0]);
    out[got - 1] = '\0';
    return pid;
}

static void srv_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* An endpoint where nothing listens: bind a port, then let it go. */
static void dead_endpoint(char *out, size_t len)
{
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, out, &len);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static cli_endpoints eps1(const char *ep)
{
    cli_endpoints e;
    cli_err err;
    ck_assert_msg(cli_endpoints_parse(ep, &e, &err) == CLI_OK, "%s", err.msg);
    return e;
}

/* Lines of a file (without newlines) into a cJSON array of strings. */
static cJSON *read_lines(const char *path, int *partial)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "open %s", path);
    cJSON *arr = cJSON_CreateArray();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (partial)
        *partial = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        else if (partial)
            *partial = 1;
        cJSON_AddItemToArray(arr, cJSON_CreateString(line));
    }
    free(line);
    fclose(f);
    return arr;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return p;
}

/* n rank requests; line i (1-based) has id "u<i>" unless specials apply. */
static void write_requests(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    for (int i = 1; i <= n; i++)
        fprintf(f, "{\"op\":\"rank\",\"id\":\"u%d\",\"user\":\"user%d\","
                   "\"candidates\":[\"i%d\",\"i%d\",\"i%d\"],\"k\":2}\n",
                i, i % 17, i, i + 1, i + 2);
    fclose(f);
}

/* Every output line is a JSON object whose id is "u<line>". */
static void check_ids_in_order(const char *path, int n, int want_ok)
{
    int partial;
    cJSON *lines = read_lines(path, &partial);
    ck_assert_int_eq(partial, 0);
    ck_assert_int_eq(cJSON_GetArraySize(lines), n);
    int i = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, lines) {
        i++;
        cJSON *r = cli_json_object(l->valuestring, strlen(l->valuestring));
        ck_assert_msg(r != NULL, "line %d is not JSON: %s", i, l->valuestring);
        char want[32];
        snprintf(want, sizeof want, "u%d", i);
        const char *id = cli_json_str(r, "id");
        ck_assert_msg(id && !strcmp(id, want), "line %d has id %s", i, id ? id : "(none)");
        if (want_ok)
            ck_assert_msg(cli_reply_status(r, NULL, NULL) == 1, "line %d: %s", i, l->valuestring);
        cJSON_Delete(r);
    }
    cJSON_Delete(lines);
}

static void batch_opts(cli_batch_opts *o, const char *ep, const char *in, const char *out)
{
    cli_batch_opts_init(o);
    o->eps = eps1(ep);
    o->in = in;
    o->out = out;
    o->timeout_ms = (int)(500 * tu_slowdown());
    o->backoff_ms = 20;
}

/* ======================================================================
 * Small pieces
 * ====================================================================== */

START_TEST(test_endpoints)
{
    cli_endpoints e;
    cli_err err;
    ck_assert_int_eq(cli_endpoints_parse("tcp://127.0.0.1:5555", &e, &err), CLI_OK);
    ck_assert_int_eq(e.n, 1);
    ck_assert_int_eq(cli_endpoints_parse("tcp://a:1, ipc:///tmp/x.sock", &e, &err), CLI_OK);
    ck_assert_int_eq(e.n, 2);
    ck_assert_str_eq(e.v[1], "ipc:///tmp/x.sock");
    char buf[128];
    ck_assert_str_eq(cli_endpoints_str(&e, buf, sizeof buf), "tcp://a:1, ipc:///tmp/x.sock");
    ck_assert_int_eq(cli_endpoints_parse("127.0.0.1:5555", &e, &err), CLI_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "transport://address"));
    ck_assert_int_eq(cli_endpoints_parse("tcp://a:1,,tcp://b:2", &e, &err), CLI_INVAL);
    ck_assert_int_eq(cli_endpoints_parse("", &e, &err), CLI_INVAL);
    ck_assert_int_eq(cli_endpoints_parse("tcp://", &e, &err), CLI_INVAL);

    /* @FILE: the replica set, re-read when it changes. */
    const char *path = tu_path("replicas.txt");
    const char *v1 = "# the replicas\ntcp://a:1\n\ntcp://b:2, tcp://c:3  # two on a line\n";
    tu_write_file(path, v1, strlen(v1));
    char arg[600];
    snprintf(arg, sizeof arg, "@%s", path);
    ck_assert_msg(cli_endpoints_parse(arg, &e, &err) == CLI_OK, "%s", err.msg);
    ck_assert_int_eq(e.n, 3);
    ck_assert_str_eq(e.v[2], "tcp://c:3");
    ck_assert_int_eq(cli_endpoints_refresh(&e, &err), 0);   /* unchanged */
    const char *v2 = "tcp://a:1\ntcp://d:4\n";
    tu_write_file(path, v2, strlen(v2));
    e.file_mtime_ns--;   /* the same second: what a coarse clock would show */
    ck_assert_int_eq(cli_endpoints_refresh(&e, &err), 1);
    ck_assert_int_eq(e.n, 2);
    ck_assert_str_eq(e.v[1], "tcp://d:4");
    tu_write_file(path, "nonsense\n", 9);
    e.file_mtime_ns--;
    ck_assert_int_eq(cli_endpoints_refresh(&e, &err), -1);   /* kept */
    ck_assert_int_eq(e.n, 2);
    ck_assert_ptr_nonnull(strstr(err.msg, "transport://address"));
    snprintf(arg, sizeof arg, "@%s", tu_path("no-such-file"));
    ck_assert_int_eq(cli_endpoints_parse(arg, &e, &err), CLI_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "no-such-file"));
}
END_TEST

START_TEST(test_flags)
{
    double d;
    cli_err err;
    ck_assert_int_eq(cli_parse_double("--weights", "2.5e3", 0, 1e7, &d, &err), CLI_OK);
    ck_assert_double_eq(d, 2500);
    ck_assert_int_eq(cli_parse_double("--weights", "nan", 0, 1e7, &d, &err), CLI_INVAL);
    ck_assert_int_eq(cli_parse_double("--weights", "0", 1e-30, 1e30, &d, &err), CLI_INVAL);
    ck_assert_str_eq(err.msg, "--weights: '0' is not a number in 1e-30..1e+30");
    ck_assert_int_eq(cli_parse_double("--weights", " 5", 0, 10, &d, &err), CLI_INVAL);
    /* --endpoint as a util_opt CALL row: the list into a cli_endpoints. */
    cli_endpoints e;
    char why[256];
    ck_assert_int_eq(cli_opt_endpoints(&e, "tcp://a:1,ipc:///tmp/b", why, sizeof why), 0);
    ck_assert_int_eq(e.n, 2);
    ck_assert_str_eq(e.v[1], "ipc:///tmp/b");
    ck_assert_int_eq(cli_opt_endpoints(&e, "a:1", why, sizeof why), -1);
    ck_assert_msg(!strncmp(why, "'a:1' is not transport://address", 32), "%s", why);
    cJSON *list;
    ck_assert_int_eq(cli_parse_list("--candidates", "a,b,c", &list, &err), CLI_OK);
    ck_assert_int_eq(cJSON_GetArraySize(list), 3);
    ck_assert_str_eq(cJSON_GetArrayItem(list, 2)->valuestring, "c");
    cJSON_Delete(list);
    ck_assert_int_eq(cli_parse_list("--candidates", "a,,c", &list, &err), CLI_INVAL);
    ck_assert_ptr_null(list);
}
END_TEST

START_TEST(test_json_helpers)
{
    cli_buf b = {0};
    ck_assert_int_eq(cli_buf_json_str(&b, "a\"b\\c\n\x01é"), 0);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001é\"");
    cJSON *back = cJSON_Parse(b.data);
    ck_assert_str_eq(back->valuestring, "a\"b\\c\n\x01é");
    cJSON_Delete(back);
    cli_buf_reset(&b);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(cli_buf_printf(&b, "%04d", i), 0);
    ck_assert_uint_eq(b.len, 4000);
    cli_buf_free(&b);

    cJSON *ok = cJSON_Parse("{\"id\":1,\"ok\":true}");
    cJSON *bad = cJSON_Parse("{\"id\":1,\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"m\"}}");
    cJSON *odd = cJSON_Parse("{\"id\":1}");
    const char *code, *msg;
    ck_assert_int_eq(cli_reply_status(ok, &code, &msg), 1);
    ck_assert_int_eq(cli_reply_status(bad, &code, &msg), 0);
    ck_assert_str_eq(code, "busy");
    ck_assert_int_eq(cli_reply_status(odd, &code, &msg), -1);
    cJSON *e = cli_error_reply(cJSON_GetObjectItem(ok, "id"), "timeout", "no reply");
    char *t = cJSON_PrintUnformatted(e);
    ck_assert_str_eq(t, "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"timeout\",\"message\":\"no reply\"}}");
    free(t);
    cJSON_Delete(e);
    cJSON_Delete(ok), cJSON_Delete(bad), cJSON_Delete(odd);
    ck_assert_ptr_null(cli_json_object("[1]", 3));
    ck_assert_ptr_null(cli_json_object("{", 1));
}
END_TEST

START_TEST(test_table)
{
    const char *reply =
        "{\"id\":\"q1\",\"ok\":true,\"model\":3,\"catalog\":7,\"items\":["
        "{\"item\":\"i2\",\"score\":1.82,\"title\":\"The Matrix\",\"because\":["
        "{\"item\":\"i7\",\"weight\":0.41,\"title\":\"Blade Runner\"},{\"item\":\"i9\",\"weight\":0.2}]},"
        "{\"item\":\"i3\",\"score\":0.5}],"
        "\"unknown\":[\"i99\"],\"excluded\":[\"i4\"],"
        "\"fallback\":{\"kind\":\"popularity\",\"reason\":\"unknown_user\"},\"history\":50,\"took_us\":412}";
    cJSON *r = cJSON_Parse(reply);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cli_table_print(f, r, 1);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "The Matrix [i2]"));
    ck_assert_ptr_nonnull(strstr(text, "1.8200"));
    ck_assert_ptr_nonnull(strstr(text, "because you interacted with: Blade Runner [i7] 0.41; i9 0.20"));
    ck_assert_ptr_nonnull(strstr(text, "unknown candidates (1): i99"));
    ck_assert_ptr_nonnull(strstr(text, "excluded (already seen) (1): i4"));
    ck_assert_ptr_nonnull(strstr(text, "fallback: popularity (unknown_user)"));
    ck_assert_ptr_nonnull(strstr(text, "model 3, catalog 7, 50 history items, 412 us"));
    free(text);
    cJSON_Delete(r);

    r = cJSON_Parse("{\"id\":null,\"ok\":true,\"ready\":false,\"limits\":{\"max_k\":100},"
                    "\"workers\":[1,2]}");
    f = open_memstream(&text, &len);
    cli_table_print(f, r, 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "ready: false\n"));
    ck_assert_ptr_nonnull(strstr(text, "limits.max_k: 100\n"));
    ck_assert_ptr_nonnull(strstr(text, "workers: 1, 2\n"));
    free(text);
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_progress)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cli_progress *p = cli_progress_new(f, "attn-batch", 1000);
    cli_progress_update(p, 0, 0, 1);
    usleep(300000);
    cli_progress_update(p, 300, 2, 1);
    cli_progress_destroy(&p);
    ck_assert_ptr_null(p);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, " 30% 300/1000"));
    ck_assert_ptr_nonnull(strstr(text, "ETA"));
    ck_assert_ptr_nonnull(strstr(text, "rejects 2"));
    free(text);
    char buf[32];
    ck_assert_str_eq(cli_fmt_duration(65, buf, sizeof buf), "1:05");
    ck_assert_str_eq(cli_fmt_duration(3725, buf, sizeof buf), "1:02:05");
}
END_TEST

/* ======================================================================
 * Lazy Pirate REQ
 * ====================================================================== */

START_TEST(test_req_basic)
{
    char ep[256];
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, ep, sizeof ep);
    void *ctx = zmq_ctx_new();
    cli_endpoints e = eps1(ep);
    cli_err err;
    cli_req *r = cli_req_new(ctx, &e, &err);
    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < 20; i++) {
        char *reply;
        size_t len;
        ck_assert_msg(cli_req_call(r, "{\"op\":\"health\",\"id\":7}", 23, 2000, 0, &reply, &len,
                                   &err) == CLI_OK, "%s", err.msg);
        ck_assert_ptr_nonnull(strstr(reply, "\"ready\":true"));
        ck_assert_ptr_nonnull(strstr(reply, "\"id\":7"));
        free(reply);
    }
    ck_assert_int_eq(cli_req_reconnects(r), 0);
    cli_req_destroy(&r);
    ck_assert_ptr_null(r);
    cli_req_destroy(&r);   /* NULL is fine */
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

/* The server swallows the 2nd request: the REQ socket must be closed,
 * reopened and the request resent -- not left waiting forever. */
START_TEST(test_req_lost_reply)
{
    char ep[256];
    const char *extra[] = {"--drop-nth", "2", NULL};
    pid_t srv = srv_start("tcp://127.0.0.1:*", extra, ep, sizeof ep);
    void *ctx = zmq_ctx_new();
    cli_endpoints e = eps1(ep);
    cli_err err;
    cli_req *r = cli_req_new(ctx, &e, &err);
    for (int i = 0; i < 4; i++) {
        char *reply;
        ck_assert_msg(cli_req_call(r, "{\"op\":\"health\"}", 15, 200, 3, &reply, NULL, &err) ==
                          CLI_OK, "%s", err.msg);
        free(reply);
    }
    ck_assert_int_eq(cli_req_reconnects(r), 1);
    cli_req_destroy(&r);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

START_TEST(test_req_dead)
{
    char ep[256], want[300];
    dead_endpoint(ep, sizeof ep);
    void *ctx = zmq_ctx_new();
    cli_endpoints e = eps1(ep);
    cli_err err;
    cli_req *r = cli_req_new(ctx, &e, &err);
    char *reply = (char *)1;
    int64_t t0 = cli_now_us();
    ck_assert_int_eq(cli_req_call(r, "{\"op\":\"health\"}", 15, 150, 2, &reply, NULL, &err),
                     CLI_TIMEOUT);
    int64_t took = cli_now_us() - t0;
    ck_assert_ptr_null(reply);
    ck_assert_int_ge(took, 440000);
    ck_assert_int_lt(took, (int64_t)(2e6 * tu_slowdown()));
    snprintf(want, sizeof want, "no reply from %s within 150 ms (3 attempts)", ep);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(cli_req_reconnects(r), 3);
    /* The probe says the same for attn-batch and attn-load. */
    ck_assert_int_eq(cli_probe(ctx, &e, 100, 0, NULL, &err), CLI_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(err.msg, "no reply from tcp://127.0.0.1:"));
    cli_req_destroy(&r);
    zmq_ctx_term(ctx);   /* returns: nothing lingers */
    /* A malformed endpoint fails at once, not after a timeout. */
    ctx = zmq_ctx_new();
    e = eps1("tpc://127.0.0.1:1");
    ck_assert_ptr_null(cli_req_new(ctx, &e, &err));
    ck_assert_int_eq(err.code, CLI_ZMQ);
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot connect to tpc://127.0.0.1:1"));
    ck_assert_ptr_null(cli_pipe_new(ctx, &e, "b", 4, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot connect to tpc://127.0.0.1:1"));
    zmq_ctx_term(ctx);
}
END_TEST

START_TEST(test_req_failover)
{
    char dead[256], live[256], list[600];
    dead_endpoint(dead, sizeof dead);
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, live, sizeof live);
    snprintf(list, sizeof list, "%s,%s", dead, live);
    void *ctx = zmq_ctx_new();
    cli_endpoints e = eps1(list);
    cli_err err;
    cli_req *r = cli_req_new(ctx, &e, &err);
    char *reply;
    ck_assert_int_eq(cli_req_call(r, "{\"op\":\"health\"}", 15, 200, 1, &reply, NULL, &err),
                     CLI_OK);
    free(reply);
    ck_assert_str_eq(cli_req_endpoint(r), live);
    ck_assert_int_eq(cli_req_reconnects(r), 1);
    cli_req_destroy(&r);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

/* Calls in a thread while the main thread kills the server (SIGKILL) and
 * restarts it on the same port: every call must still succeed. */
typedef struct req_loop {
    void *ctx;
    cli_endpoints eps;
    atomic_int done;        /* calls completed */
    int failed;
    int reconnects;
    char msg[512];
} req_loop;

static void *s_req_thread(void *arg)
{
    req_loop *rl = arg;
    cli_err err;
    cli_req *r = cli_req_new(rl->ctx, &rl->eps, &err);
    for (int i = 0; r && i < 60; i++) {
        char *reply;
        if (cli_req_call(r, "{\"op\":\"stats\"}", 14, 250, 10, &reply, NULL, &err) != CLI_OK) {
            rl->failed++;
            snprintf(rl->msg, sizeof rl->msg, "%s", err.msg);
        } else {
            free(reply);
        }
        atomic_fetch_add(&rl->done, 1);
        usleep(5000);
    }
    rl->reconnects = r ? cli_req_reconnects(r) : -1;
    cli_req_destroy(&r);
    return NULL;
}

START_TEST(test_req_server_restart)
{
    char ep[256], ep2[256];
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, ep, sizeof ep);
    req_loop rl = {.ctx = zmq_ctx_new(), .eps = eps1(ep)};
    pthread_t th;
    pthread_create(&th, NULL, s_req_thread, &rl);
    while (atomic_load(&rl.done) < 20)
        usleep(1000);
    srv_kill(srv);
    usleep(400000);   /* calls time out meanwhile */
    srv = srv_start(ep, NULL, ep2, sizeof ep2);
    ck_assert_str_eq(ep, ep2);
    pthread_join(th, NULL);
    ck_assert_msg(rl.failed == 0, "%d calls failed: %s", rl.failed, rl.msg);
    ck_assert_int_eq(atomic_load(&rl.done), 60);
    ck_assert_int_ge(rl.reconnects, 1);
    zmq_ctx_term(rl.ctx);
    srv_kill(srv);
}
END_TEST

/* ======================================================================
 * DEALER pipeline
 * ====================================================================== */

START_TEST(test_pipe_matching)
{
    char ep[256];
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, ep, sizeof ep);
    void *ctx = zmq_ctx_new();
    cli_endpoints e = eps1(ep);
    cli_err err;
    cli_pipe *p = cli_pipe_new(ctx, &e, "t", 64, &err);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(cli_pipe_new(ctx, &e, "b1", 64, &err));   /* digits would be ambiguous */

    /* Sparse 64-bit keys exercise the table's probing and deletion. */
    tu_rng rng = {42};
    enum { N = 2000 };
    static uint64_t keys[N];
    static int seen[N];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++)
        keys[i] = tu_next(&rng) >> (i % 3 ? 1 : 40);
    int sent = 0, got = 0;
    int64_t end = cli_now_us() + (int64_t)(10e6 * tu_slowdown());
    while (got < N && cli_now_us() < end) {
        while (sent < N && cli_pipe_inflight(p) < 64) {
            char body[128];
            int n = snprintf(body, sizeof body, "{\"op\":\"rank\",\"user\":\"u%d\",\"candidates\":[\"a\"]}", sent);
            int rc = cli_pipe_send(p, keys[sent], body, (size_t)n, sent,
                                   cli_now_us() + 5000000);
            if (rc == CLI_AGAIN)
                break;
            ck_assert_int_eq(rc, CLI_OK);
            /* The same key twice in flight is refused. */
            ck_assert_int_eq(cli_pipe_send(p, keys[sent], body, (size_t)n, 0, 0), CLI_INVAL);
            sent++;
        }
        cli_pipe_event ev;
        int rc = cli_pipe_wait(p, cli_now_us() + 100000, sent < N, &ev);
        if (rc != CLI_OK)
            continue;
        ck_assert_int_eq(ev.kind, CLI_EV_REPLY);
        ck_assert_int_lt(ev.stamp, N);
        ck_assert_uint_eq(ev.key, keys[ev.stamp]);
        ck_assert_int_eq(seen[ev.stamp]++, 0);
        char want[32];
        snprintf(want, sizeof want, "t%llu", (unsigned long long)ev.key);
        ck_assert_str_eq(cli_json_str(ev.json, "id"), want);
        ck_assert_int_ge(ev.at_us, ev.sent_us);
        cJSON_Delete(ev.json);
        got++;
    }
    ck_assert_int_eq(got, N);
    ck_assert_uint_eq(cli_pipe_inflight(p), 0);
    ck_assert_uint_eq(cli_pipe_stale(p), 0);
    ck_assert_int_eq(cli_pipe_send(p, 1, "not json", 8, 0, 0), CLI_INVAL);
    cli_pipe_destroy(&p);
    ck_assert_ptr_null(p);

    /* At capacity: CLI_FULL. */
    p = cli_pipe_new(ctx, &e, "f", 2, &err);
    int64_t far = cli_now_us() + 5000000;
    while (cli_pipe_send(p, 1, "{}", 2, 0, far) == CLI_AGAIN)
        cli_pipe_wait(p, cli_now_us() + 100000, 1, &(cli_pipe_event){0});
    ck_assert_int_eq(cli_pipe_send(p, 2, "{}", 2, 0, far), CLI_OK);
    ck_assert_int_eq(cli_pipe_send(p, 3, "{}", 2, 0, far), CLI_FULL);
    cli_pipe_destroy(&p);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

START_TEST(test_pipe_timeouts)
{
    char ep[256];
    /* The replies must come well after every deadline, even when a
     * sanitizer or valgrind slows this process down. */
    int delay_ms = (int)(800 * sqrt(tu_slowdown()));
    char delay[16];
    snprintf(delay, sizeof delay, "%d", delay_ms);
    const char *extra[] = {"--delay-ms", delay, NULL};
    pid_t srv = srv_start("tcp://127.0.0.1:*", extra, ep, sizeof ep);
    void *ctx = zmq_ctx_new();
    cli_endpoints e = eps1(ep);
    cli_err err;
    cli_pipe *p = cli_pipe_new(ctx, &e, "t", 16, &err);
    int64_t t0 = cli_now_us();
    for (uint64_t k = 0; k < 10; k++) {
        /* Deadlines out of send order: the heap must return them sorted. */
        int64_t dl = t0 + 50000 + (int64_t)((k * 7) % 10) * 5000;
        while (cli_pipe_send(p, k, "{\"op\":\"health\"}", 15, 0, dl) == CLI_AGAIN)
            cli_pipe_wait(p, cli_now_us() + 100000, 1, &(cli_pipe_event){0});
    }
    int64_t prev = 0;
    for (int i = 0; i < 10; i++) {
        cli_pipe_event ev;
        ck_assert_int_eq(cli_pipe_wait(p, cli_now_us() + 2000000, 0, &ev), CLI_OK);
        ck_assert_int_eq(ev.kind, CLI_EV_TIMEOUT);
        ck_assert_ptr_null(ev.json);
        ck_assert_int_ge(ev.at_us, prev);
        prev = ev.at_us;
    }
    ck_assert_int_lt(cli_now_us() - t0, delay_ms * 1000LL);   /* timeouts before replies */
    ck_assert_int_eq(cli_pipe_next_deadline(p), INT64_MAX);
    /* The replies come later and are dropped as stale. */
    cli_pipe_event ev;
    int64_t until = cli_now_us() + delay_ms * 1000LL + (int64_t)(2e6 * tu_slowdown());
    while (cli_pipe_stale(p) < 10 && cli_now_us() < until)
        ck_assert_int_eq(cli_pipe_wait(p, cli_now_us() + 100000, 0, &ev), CLI_AGAIN);
    ck_assert_uint_eq(cli_pipe_stale(p), 10);
    cli_pipe_destroy(&p);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

/* ======================================================================
 * attn-batch engine
 * ====================================================================== */

START_TEST(test_batch_basic)
{
    char ep[256];
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, ep, sizeof ep);
    const char *in = tu_path("basic.in"), *out = tu_path("basic.out"),
               *rej = tu_path("basic.rej");
    FILE *f = fopen(in, "w");
    fprintf(f, "{\"op\":\"rank\",\"id\":\"a\",\"user\":\"u1\",\"candidates\":[\"i1\",\"x9\"],\"explain\":1}\n");
    fprintf(f, "{\"op\":\"rank\",\"id\":17,\"history\":[\"h1\"],\"candidates\":[\"i1\"]}\n");
    fprintf(f, "not json at all\n");
    fprintf(f, "{\"op\":\"rank\",\"user\":\"u2\",\"candidates\":[\"bad\"]}\n");
    fprintf(f, "\n");
    fprintf(f, "{\"op\":\"rank\",\"id\":{\"trace\":[1,2]},\"user\":\"u3\",\"candidates\":[\"i5\"]}\r\n");
    fprintf(f, "{\"op\":\"health\",\"id\":\"last\"}\n");
    /* Numbers a double cannot hold keep their digits; garbage after the
     * object is refused, not sent. */
    fprintf(f, "{\"op\":\"health\",\"id\":9007199254740993,\"t\":0.1000000000000000055511}\n");
    fprintf(f, "{\"op\":\"health\",\"id\":\"g\"} garbage");   /* no final newline */
    fclose(f);
    cli_batch_opts o;
    batch_opts(&o, ep, in, out);
    o.rejects = rej;
    o.window = 3;
    void *ctx = zmq_ctx_new();
    cli_batch_stats st;
    cli_err err;
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_FAILED);
    ck_assert_str_eq(err.msg, "4 of 9 lines rejected");
    ck_assert_uint_eq(st.lines, 9);
    ck_assert_uint_eq(st.ok, 5);
    ck_assert_uint_eq(st.rejected, 4);
    char *codes = cJSON_PrintUnformatted(st.reject_codes);
    ck_assert_str_eq(codes, "{\"bad_json\":3,\"bad_request\":1}");
    free(codes);
    cJSON_Delete(st.reject_codes);

    cJSON *lines = read_lines(out, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(lines), 9);
    ck_assert_ptr_nonnull(strstr(cJSON_GetArrayItem(lines, 7)->valuestring,
                                 "\"id\":9007199254740993"));
    ck_assert_ptr_nonnull(strstr(cJSON_GetArrayItem(lines, 8)->valuestring,
                                 "line 9: text after the JSON object"));
    static const char *ids[] = {"\"a\"", "17", "null", "null", "null", "{\"trace\":[1,2]}", "\"last\""};
    static const int oks[] = {1, 1, 0, 0, 0, 1, 1};
    for (int i = 0; i < 7; i++) {
        const char *t = cJSON_GetArrayItem(lines, i)->valuestring;
        cJSON *r = cli_json_object(t, strlen(t));
        ck_assert_ptr_nonnull(r);
        char *id = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "id"));
        ck_assert_msg(!strcmp(id, ids[i]), "line %d: id %s, want %s", i + 1, id, ids[i]);
        free(id);
        ck_assert_int_eq(cli_reply_status(r, NULL, NULL), oks[i]);
        cJSON_Delete(r);
    }
    ck_assert_ptr_nonnull(strstr(cJSON_GetArrayItem(lines, 0)->valuestring, "\"unknown\":[\"x9\"]"));
    ck_assert_ptr_nonnull(strstr(cJSON_GetArrayItem(lines, 2)->valuestring,
                                 "\"code\":\"bad_json\",\"message\":\"line 3: not a JSON object\""));
    ck_assert_ptr_nonnull(strstr(cJSON_GetArrayItem(lines, 4)->valuestring, "line 5: empty line"));
    cJSON_Delete(lines);

    lines = read_lines(rej, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(lines), 4);
    cJSON *r0 = cJSON_Parse(cJSON_GetArrayItem(lines, 0)->valuestring);
    ck_assert_int_eq(cJSON_GetObjectItem(r0, "line")->valueint, 3);
    ck_assert_str_eq(cli_json_str(r0, "code"), "bad_json");
    ck_assert_str_eq(cli_json_str(r0, "request"), "not json at all");
    cJSON *r1 = cJSON_Parse(cJSON_GetArrayItem(lines, 1)->valuestring);
    ck_assert_int_eq(cJSON_GetObjectItem(r1, "line")->valueint, 4);
    ck_assert_str_eq(cli_json_str(r1, "code"), "bad_request");
    ck_assert_ptr_nonnull(strstr(cli_json_str(r1, "reason"), "'bad' is not allowed"));
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(r1, "request")));   /* the request as sent */
    ck_assert_int_eq(cJSON_GetObjectItem(r1, "attempts")->valueint, 1);
    cJSON_Delete(r0), cJSON_Delete(r1), cJSON_Delete(lines);

    /* Without --resume or --force an existing output is not overwritten. */
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "already exists"));
    o.force = 1;
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_FAILED);
    cJSON_Delete(st.reject_codes);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

START_TEST(test_batch_busy_retries)
{
    char ep[256];
    const char *extra[] = {"--busy-every", "3", NULL};
    pid_t srv = srv_start("tcp://127.0.0.1:*", extra, ep, sizeof ep);
    const char *in = tu_path("busy.in"), *out = tu_path("busy.out");
    write_requests(in, 300);
    cli_batch_opts o;
    batch_opts(&o, ep, in, out);
    o.backoff_ms = 1;
    o.retries = 30;   /* every 3rd request is busy, whoever sends it */
    void *ctx = zmq_ctx_new();
    cli_batch_stats st;
    cli_err err;
    ck_assert_msg(cli_batch_run(ctx, &o, &st, &err) == CLI_OK, "%s", err.msg);
    ck_assert_uint_eq(st.ok, 300);
    ck_assert_uint_ge(st.busy, 100);
    ck_assert_uint_eq(st.retries, st.busy);
    check_ids_in_order(out, 300, 1);
    zmq_ctx_term(ctx);
    srv_kill(srv);

    /* Never ready: after the retries the lines are rejected with the
     * daemon's own error as their output. */
    const char *nr[] = {"--not-ready", NULL};
    srv = srv_start("tcp://127.0.0.1:*", nr, ep, sizeof ep);
    write_requests(in, 5);
    batch_opts(&o, ep, in, out);
    o.force = 1;
    o.retries = 2;
    o.backoff_ms = 1;
    ctx = zmq_ctx_new();
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_FAILED);
    ck_assert_uint_eq(st.rejected, 5);
    ck_assert_uint_eq(st.retries, 10);
    cJSON_Delete(st.reject_codes);
    check_ids_in_order(out, 5, 0);
    char *text = slurp(out, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\"code\":\"unavailable\""));
    free(text);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

typedef struct batch_job {
    void *ctx;
    cli_batch_opts o;
    cli_batch_stats st;
    cli_err err;
    int rc;
} batch_job;

static void *s_batch_thread(void *arg)
{
    batch_job *b = arg;
    b->rc = cli_batch_run(b->ctx, &b->o, &b->st, &b->err);
    return NULL;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, ch;
    while ((ch = getc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/* The acceptance test: SIGKILL the daemon mid-job, restart it on the same
 * port; every input line still has exactly one output line, in order. */
START_TEST(test_batch_kill_restart)
{
    char ep[256], ep2[256];
    const char *extra[] = {"--delay-ms", "10", NULL};
    pid_t srv = srv_start("tcp://127.0.0.1:*", extra, ep, sizeof ep);
    enum { N = 2000 };
    const char *in = tu_path("kill.in"), *out = tu_path("kill.out");
    write_requests(in, N);
    batch_job b = {.ctx = zmq_ctx_new()};
    batch_opts(&b.o, ep, in, out);
    b.o.window = 32;
    pthread_t th;
    pthread_create(&th, NULL, s_batch_thread, &b);
    int64_t end = cli_now_us() + (int64_t)(10e6 * tu_slowdown());
    while (count_lines(out) < 300 && cli_now_us() < end)
        usleep(2000);
    int before = count_lines(out);
    ck_assert_int_lt(before, N / 2);   /* the kill lands mid-job */
    srv_kill(srv);
    usleep(300000);
    srv = srv_start(ep, extra, ep2, sizeof ep2);
    pthread_join(th, NULL);
    ck_assert_msg(b.rc == CLI_OK, "rc %d: %s", b.rc, b.err.msg);
    ck_assert_uint_eq(b.st.lines, N);
    ck_assert_uint_eq(b.st.ok, N);
    ck_assert_uint_ge(b.st.timeouts, 1);   /* requests died with the server */
    ck_assert_uint_ge(b.st.retries, b.st.timeouts);
    check_ids_in_order(out, N, 1);
    cJSON_Delete(b.st.reject_codes);
    zmq_ctx_term(b.ctx);
    srv_kill(srv);
}
END_TEST

/* An interrupted job's output (complete lines plus a torn last line) is
 * continued by --resume into exactly what an uninterrupted run writes. */
START_TEST(test_batch_resume)
{
    char ep[256];
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, ep, sizeof ep);
    const char *in = tu_path("res.in"), *full = tu_path("res.full"), *part = tu_path("res.part"),
               *rej_full = tu_path("res.rej.full"), *rej_part = tu_path("res.rej.part");
    enum { N = 500 };
    FILE *f = fopen(in, "w");
    for (int i = 1; i <= N; i++)
        if (i % 100 == 50)
            fprintf(f, "{\"op\":\"rank\",\"id\":\"u%d\",\"user\":\"a\",\"candidates\":[\"bad\"]}\n", i);
        else
            fprintf(f, "{\"op\":\"rank\",\"id\":\"u%d\",\"user\":\"user%d\",\"candidates\":[\"i%d\",\"j%d\"],\"titles\":true}\n", i, i, i, i);
    fclose(f);
    void *ctx = zmq_ctx_new();
    cli_batch_opts o;
    cli_batch_stats st;
    cli_err err;
    batch_opts(&o, ep, in, full);
    o.rejects = rej_full;
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_FAILED);
    ck_assert_uint_eq(st.rejected, 5);
    cJSON_Delete(st.reject_codes);

    /* Simulate a crash after 223 lines and part of the 224th; the rejects
     * file got one entry too many (line 250 was rejected but its output
     * line never made it). */
    size_t flen;
    char *ftext = slurp(full, &flen);
    const char *p = ftext;
    for (int i = 0; i < 223; i++)
        p = strchr(p, '\n') + 1;
    size_t cut = (size_t)(p - ftext) + 40;
    tu_write_file(part, ftext, cut);
    char *rtext = slurp(rej_full, NULL);
    const char *r = rtext;
    for (int i = 0; i < 3; i++)   /* rejects of lines 50, 150, 250 */
        r = strchr(r, '\n') + 1;
    tu_write_file(rej_part, rtext, (size_t)(r - rtext));

    batch_opts(&o, ep, in, part);
    o.rejects = rej_part;
    o.resume = 1;
    ck_assert_msg(cli_batch_run(ctx, &o, &st, &err) == CLI_FAILED, "%s", err.msg);
    ck_assert_uint_eq(st.skipped, 223);
    ck_assert_uint_eq(st.lines, N - 223);
    ck_assert_uint_eq(st.rejected, 3);   /* 250, 350, 450 */
    cJSON_Delete(st.reject_codes);
    size_t plen;
    char *ptext = slurp(part, &plen);
    ck_assert_uint_eq(plen, flen);
    ck_assert_msg(memcmp(ptext, ftext, flen) == 0, "resumed output differs");
    free(ptext);
    ptext = slurp(rej_part, NULL);
    ck_assert_str_eq(ptext, rtext);
    free(ptext);

    /* Resuming a finished job does nothing and succeeds (with its rejects). */
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_OK);
    ck_assert_uint_eq(st.lines, 0);
    ck_assert_uint_eq(st.skipped, N);

    /* The output of another input is refused, and left alone. */
    const char *other = tu_path("res.other");
    f = fopen(other, "w");
    for (int i = 1; i <= N; i++)
        fprintf(f, "{\"op\":\"health\",\"id\":\"v%d\"}\n", i);
    fclose(f);
    batch_opts(&o, ep, other, part);
    o.resume = 1;
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "is it the output of another input?"));
    ptext = slurp(part, &plen);
    ck_assert_uint_eq(plen, flen);
    free(ptext);
    /* Nor can the output be longer than the input. */
    write_requests(other, 10);
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "the input has only 10"));
    free(ftext);
    free(rtext);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

/* The daemon dies and stays dead: the job stops (it does not reject every
 * remaining line), its output is a clean prefix, and --resume finishes it
 * once a daemon is back. */
START_TEST(test_batch_stall_then_resume)
{
    char ep[256], ep2[256];
    const char *extra[] = {"--delay-ms", "5", NULL};
    pid_t srv = srv_start("tcp://127.0.0.1:*", extra, ep, sizeof ep);
    enum { N = 1500 };
    const char *in = tu_path("stall.in"), *out = tu_path("stall.out");
    write_requests(in, N);
    batch_job b = {.ctx = zmq_ctx_new()};
    batch_opts(&b.o, ep, in, out);
    b.o.timeout_ms = 200;
    b.o.retries = 2;
    b.o.window = 16;
    pthread_t th;
    pthread_create(&th, NULL, s_batch_thread, &b);
    int64_t end = cli_now_us() + (int64_t)(10e6 * tu_slowdown());
    while (count_lines(out) < 100 && cli_now_us() < end)
        usleep(2000);
    srv_kill(srv);
    pthread_join(th, NULL);
    ck_assert_msg(b.rc == CLI_STOPPED, "rc %d: %s", b.rc, b.err.msg);
    ck_assert_ptr_nonnull(strstr(b.err.msg, "no reply from"));
    ck_assert_ptr_nonnull(strstr(b.err.msg, "run again with --resume"));
    ck_assert_uint_eq(b.st.rejected, 0);
    int done = count_lines(out);
    ck_assert_int_lt(done, N);
    check_ids_in_order(out, done, 1);
    cJSON_Delete(b.st.reject_codes);

    srv = srv_start(ep, NULL, ep2, sizeof ep2);
    b.o.resume = 1;
    s_batch_thread(&b);
    ck_assert_msg(b.rc == CLI_OK, "%s", b.err.msg);
    ck_assert_uint_eq(b.st.skipped, (uint64_t)done);
    check_ids_in_order(out, N, 1);
    cJSON_Delete(b.st.reject_codes);
    zmq_ctx_term(b.ctx);
    srv_kill(srv);
}
END_TEST

/* Two daemons, one dies for good mid-job: the DEALER only sends to live
 * peers, so the job finishes on the other with every line in place. */
START_TEST(test_batch_failover)
{
    char ep1[256], ep2[256], list[600];
    const char *extra[] = {"--delay-ms", "10", NULL};
    pid_t s1 = srv_start("tcp://127.0.0.1:*", extra, ep1, sizeof ep1);
    pid_t s2 = srv_start("tcp://127.0.0.1:*", extra, ep2, sizeof ep2);
    snprintf(list, sizeof list, "%s,%s", ep1, ep2);
    enum { N = 2000 };
    const char *in = tu_path("fo.in"), *out = tu_path("fo.out");
    write_requests(in, N);
    batch_job b = {.ctx = zmq_ctx_new()};
    batch_opts(&b.o, list, in, out);
    b.o.window = 32;
    pthread_t th;
    pthread_create(&th, NULL, s_batch_thread, &b);
    int64_t end = cli_now_us() + (int64_t)(10e6 * tu_slowdown());
    while (count_lines(out) < 300 && cli_now_us() < end)
        usleep(2000);
    srv_kill(s1);
    pthread_join(th, NULL);
    ck_assert_msg(b.rc == CLI_OK, "rc %d: %s", b.rc, b.err.msg);
    ck_assert_uint_eq(b.st.ok, N);
    check_ids_in_order(out, N, 1);
    cJSON_Delete(b.st.reject_codes);
    zmq_ctx_term(b.ctx);
    srv_kill(s2);
}
END_TEST

START_TEST(test_batch_unreachable)
{
    char ep[256];
    dead_endpoint(ep, sizeof ep);
    const char *in = tu_path("unr.in"), *out = tu_path("unr.out");
    write_requests(in, 10);
    cli_batch_opts o;
    batch_opts(&o, ep, in, out);
    o.timeout_ms = 100;
    void *ctx = zmq_ctx_new();
    cli_batch_stats st;
    cli_err err;
    int64_t t0 = cli_now_us();
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_TIMEOUT);
    ck_assert_int_lt(cli_now_us() - t0, (int64_t)(2e6 * tu_slowdown()));
    char want[300];
    snprintf(want, sizeof want, "no reply from %s within 100 ms", ep);
    ck_assert_ptr_nonnull(strstr(err.msg, want));
    ck_assert_int_ne(access(out, F_OK), 0);   /* nothing written or truncated */
    /* Bad options are refused before anything happens. */
    o.window = 0;
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "--window"));
    zmq_ctx_term(ctx);
}
END_TEST

START_TEST(test_batch_too_large)
{
    char ep[256];
    const char *extra[] = {"--max-bytes", "300", NULL};
    pid_t srv = srv_start("tcp://127.0.0.1:*", extra, ep, sizeof ep);
    const char *in = tu_path("big.in"), *out = tu_path("big.out");
    FILE *f = fopen(in, "w");
    fprintf(f, "{\"op\":\"rank\",\"id\":\"u1\",\"user\":\"a\",\"candidates\":[\"i1\"]}\n{\"op\":\"rank\",\"id\":\"u2\",\"user\":\"a\",\"candidates\":[");
    for (int i = 0; i < 100; i++)
        fprintf(f, "%s\"item%d\"", i ? "," : "", i);
    fprintf(f, "]}\n");
    fclose(f);
    cli_batch_opts o;
    batch_opts(&o, ep, in, out);
    void *ctx = zmq_ctx_new();
    cli_batch_stats st;
    cli_err err;
    int64_t t0 = cli_now_us();
    ck_assert_int_eq(cli_batch_run(ctx, &o, &st, &err), CLI_FAILED);
    /* Refused locally: well within one attempt's timeout. */
    ck_assert_int_lt(cli_now_us() - t0, o.timeout_ms * 1000LL);
    char *codes = cJSON_PrintUnformatted(st.reject_codes);
    ck_assert_str_eq(codes, "{\"too_large\":1}");
    free(codes);
    cJSON_Delete(st.reject_codes);
    check_ids_in_order(out, 2, 0);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

/* ======================================================================
 * attn-load engine
 * ====================================================================== */

static const char *load_file(int n)
{
    const char *path = tu_path("load.in");
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n; i++)
        fprintf(f, "{\"op\":\"rank\",\"id\":\"ignored\",\"user\":\"u%d\",\"candidates\":[\"i1\",\"i2\"]}\n\n", i);
    fclose(f);
    return path;
}

START_TEST(test_load_closed)
{
    char ep[256];
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, ep, sizeof ep);
    cli_err err;
    cli_sampler *src = cli_sampler_file(load_file(5), &err);
    ck_assert_ptr_nonnull(src);
    size_t lines;
    cli_sampler_counts(src, NULL, NULL, &lines);
    ck_assert_uint_eq(lines, 5);
    cli_load_opts o;
    cli_load_opts_init(&o);
    o.eps = eps1(ep);
    o.clients = 8;
    o.duration_s = 0;
    o.requests = 2000;
    o.warmup_s = 0.1;
    void *ctx = zmq_ctx_new();
    cli_load_result *res = malloc(sizeof *res);
    ck_assert_msg(cli_load_run(ctx, &o, src, res, &err) == CLI_OK, "%s", err.msg);
    ck_assert_uint_eq(res->sent, 2000);
    ck_assert_uint_eq(res->ok, 2000);
    ck_assert_uint_eq(res->lat.n, 2000);
    ck_assert_uint_eq(res->timeouts, 0);
    ck_assert_ptr_null(res->errors);
    ck_assert_double_gt(res->seconds, 0);
    ck_assert_uint_gt(util_hist_quantile(&res->lat, 0.5), 1000);   /* > 1 µs */
    ck_assert_uint_le(util_hist_quantile(&res->lat, 0.5), util_hist_quantile(&res->lat, 0.99));
    /* The server's own time, as its replies state it (took_us 42). */
    ck_assert_uint_eq(res->lat_server.n, 2000);
    ck_assert_uint_eq(res->lat_server.max, 42000);
    ck_assert_uint_ge(util_hist_quantile(&res->lat_server, 0.99), 41500);
    ck_assert_uint_le(util_hist_quantile(&res->lat_server, 0.99), 42500);

    char *text = NULL;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    cli_load_print(f, &o, res);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "closed loop, 8 in flight"));
    ck_assert_ptr_nonnull(strstr(text, "2000 sent, 2000 answered, 2000 ok, 0 errors, 0 timeouts"));
    ck_assert_ptr_nonnull(strstr(text, "p99.9"));
    ck_assert_ptr_nonnull(strstr(text, "  in attnd       0.042"));
    free(text);
    cJSON *j = cli_load_json(&o, res);
    ck_assert_str_eq(cli_json_str(j, "mode"), "closed");
    ck_assert_int_eq(cJSON_GetObjectItem(j, "ok")->valueint, 2000);
    const cJSON *lat = cJSON_GetObjectItem(j, "latency_us");
    ck_assert(cJSON_GetObjectItem(lat, "p999")->valuedouble >=
              cJSON_GetObjectItem(lat, "p50")->valuedouble);
    const cJSON *in_attnd = cJSON_GetObjectItem(j, "server_us");
    ck_assert_double_eq_tol(cJSON_GetObjectItem(in_attnd, "max")->valuedouble, 42, 1e-9);
    ck_assert_int_eq(cJSON_GetObjectItem(in_attnd, "n")->valueint, 2000);
    cJSON_Delete(j);
    cJSON_Delete(res->errors);

    /* Busy replies are counted, by code and on their own. */
    srv_kill(srv);
    const char *extra[] = {"--busy-every", "4", NULL};
    srv = srv_start("tcp://127.0.0.1:*", extra, ep, sizeof ep);
    o.eps = eps1(ep);
    o.warmup_s = 0;
    o.requests = 400;
    ck_assert_int_eq(cli_load_run(ctx, &o, src, res, &err), CLI_OK);
    ck_assert_uint_eq(res->busy, 100);
    ck_assert_uint_eq(res->ok, 300);
    ck_assert_int_eq(cJSON_GetObjectItem(res->errors, "busy")->valueint, 100);
    cJSON_Delete(res->errors);
    free(res);
    cli_sampler_destroy(&src);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

START_TEST(test_load_open)
{
    char ep[256];
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, ep, sizeof ep);
    cli_err err;
    cli_sampler *src = cli_sampler_file(load_file(3), &err);
    cli_load_opts o;
    cli_load_opts_init(&o);
    o.eps = eps1(ep);
    o.clients = 0;
    o.rate = 2000;
    o.duration_s = 0.5;
    o.warmup_s = 0.1;
    void *ctx = zmq_ctx_new();
    cli_load_result *res = malloc(sizeof *res);
    ck_assert_msg(cli_load_run(ctx, &o, src, res, &err) == CLI_OK, "%s", err.msg);
    ck_assert_int_eq(res->open_loop, 1);
    ck_assert_uint_ge(res->sent, 990);
    ck_assert_uint_le(res->sent, 1001);
    ck_assert_uint_eq(res->ok, res->sent);
    ck_assert_double_ge(res->seconds, 0.49);
    cJSON_Delete(res->errors);
    /* Option checks. */
    o.clients = 4;
    ck_assert_int_eq(cli_load_run(ctx, &o, src, res, &err), CLI_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "exactly one of --clients"));
    free(res);
    cli_sampler_destroy(&src);
    zmq_ctx_term(ctx);
    srv_kill(srv);
}
END_TEST

/* Coordinated omission: the server stalls 300 ms once.  The open loop
 * keeps its schedule and charges the stall to every request due during
 * it; a closed loop with one client sees a single slow request. */
START_TEST(test_load_coordinated_omission)
{
    char ep[256];
    const char *extra[] = {"--stall-after", "150", "--stall-ms", "300", NULL};
    cli_err err;
    cli_sampler *src = cli_sampler_file(load_file(3), &err);
    void *ctx = zmq_ctx_new();
    cli_load_result *res = malloc(sizeof *res);
    cli_load_opts o;

    pid_t srv = srv_start("tcp://127.0.0.1:*", extra, ep, sizeof ep);
    cli_load_opts_init(&o);
    o.eps = eps1(ep);
    o.clients = 0;
    o.rate = 1000;
    o.duration_s = 1;
    o.warmup_s = 0;
    ck_assert_msg(cli_load_run(ctx, &o, src, res, &err) == CLI_OK, "%s", err.msg);
    ck_assert_uint_eq(res->ok, res->sent);
    uint64_t open_p90 = util_hist_quantile(&res->lat, 0.9);
    ck_assert_msg(open_p90 > 50000000, "open loop p90 %llu ns", (unsigned long long)open_p90);
    ck_assert_uint_gt(res->lat.max, 250000000);
    cJSON_Delete(res->errors);
    srv_kill(srv);

    srv = srv_start("tcp://127.0.0.1:*", extra, ep, sizeof ep);
    o.eps = eps1(ep);
    o.rate = 0;
    o.clients = 1;
    o.duration_s = 0;
    o.requests = 1000;
    ck_assert_msg(cli_load_run(ctx, &o, src, res, &err) == CLI_OK, "%s", err.msg);
    uint64_t closed_p90 = util_hist_quantile(&res->lat, 0.9);
    ck_assert_msg(closed_p90 < 50000000, "closed loop p90 %llu ns", (unsigned long long)closed_p90);
    ck_assert_uint_gt(res->lat.max, 250000000);   /* the one request that waited */
    cJSON_Delete(res->errors);
    srv_kill(srv);

    free(res);
    cli_sampler_destroy(&src);
    zmq_ctx_term(ctx);
}
END_TEST

static void *s_kill_later(void *arg)
{
    usleep(300000);
    kill(*(pid_t *)arg, SIGKILL);   /* kill(2) works from any thread */
    return NULL;
}

START_TEST(test_load_stall)
{
    char ep[256];
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, ep, sizeof ep);
    cli_err err;
    cli_sampler *src = cli_sampler_file(load_file(3), &err);
    cli_load_opts o;
    cli_load_opts_init(&o);
    o.eps = eps1(ep);
    o.clients = 4;
    o.duration_s = 0;
    o.requests = 100000000;   /* would never end on its own with the server gone */
    o.warmup_s = 0;
    o.timeout_ms = 200;
    void *ctx = zmq_ctx_new();
    cli_load_result *res = malloc(sizeof *res);
    /* The probe needs the server; kill it once the run is going. */
    pthread_t killer;
    pthread_create(&killer, NULL, s_kill_later, &srv);
    int64_t t0 = cli_now_us();
    ck_assert_int_eq(cli_load_run(ctx, &o, src, res, &err), CLI_STOPPED);
    ck_assert_int_lt(cli_now_us() - t0, (int64_t)(5e6 * tu_slowdown()));
    ck_assert_int_eq(res->stalled, 1);
    ck_assert_ptr_nonnull(strstr(err.msg, "no reply from"));
    ck_assert_uint_gt(res->ok, 0);
    pthread_join(killer, NULL);
    waitpid(srv, NULL, 0);
    cJSON_Delete(res->errors);
    free(res);
    cli_sampler_destroy(&src);
    zmq_ctx_term(ctx);
}
END_TEST

static void make_db(const char *path, int users, int items)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "CREATE TABLE users(user_id INTEGER PRIMARY KEY, ext_id TEXT);"
                                  "CREATE TABLE items(item_id INTEGER PRIMARY KEY, ext_id TEXT, embedding BLOB);",
                                  NULL, NULL, NULL), SQLITE_OK);
    char sql[256];
    for (int i = 0; i < users; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO users(ext_id) VALUES('u\"%d')", i);
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    for (int i = 0; i < items; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO items(ext_id, embedding) VALUES('i%d', %s)", i,
                 i == 0 ? "NULL" : "x'00'");
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    sqlite3_close(db);
}

START_TEST(test_sampler_db)
{
    const char *path = tu_path("sample.db");
    make_db(path, 7, 51);   /* item i0 has no embedding: never sampled */
    cli_err err;
    cli_sampler *s = cli_sampler_db(path, 50, 0, 5, 2, 1, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    size_t users, items;
    cli_sampler_counts(s, &users, &items, NULL);
    ck_assert_uint_eq(users, 7);
    ck_assert_uint_eq(items, 50);
    for (int round = 0; round < 20; round++) {
        size_t len;
        const char *body = cli_sampler_next(s, &len);
        cJSON *r = cli_json_object(body, len);
        ck_assert_msg(r != NULL, "%s", body);
        ck_assert_str_eq(cli_json_str(r, "op"), "rank");
        ck_assert_ptr_nonnull(cli_json_str(r, "user"));
        ck_assert_int_eq(cli_json_str(r, "user")[1], '"');   /* quoting survived */
        ck_assert_int_eq(cJSON_GetObjectItem(r, "k")->valueint, 5);
        ck_assert_int_eq(cJSON_GetObjectItem(r, "explain")->valueint, 2);
        const cJSON *c = cJSON_GetObjectItem(r, "candidates");
        ck_assert_int_eq(cJSON_GetArraySize(c), 50);
        int seen[51] = {0};
        const cJSON *e;
        cJSON_ArrayForEach(e, c) {
            int id = atoi(e->valuestring + 1);
            ck_assert_int_ge(id, 1);
            ck_assert_int_eq(seen[id]++, 0);   /* distinct */
        }
        cJSON_Delete(r);
    }
    cli_sampler_destroy(&s);

    s = cli_sampler_db(path, 3, 4, 10, 0, 2, &err);
    size_t len;
    const char *body = cli_sampler_next(s, &len);
    cJSON *r = cli_json_object(body, len);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "history")), 4);
    ck_assert_ptr_null(cJSON_GetObjectItem(r, "user"));
    cJSON_Delete(r);
    cli_sampler_destroy(&s);

    ck_assert_ptr_null(cli_sampler_db(path, 51, 0, 10, 0, 1, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "50 embedded items: fewer than --candidates 51"));
    ck_assert_ptr_null(cli_sampler_db(tu_path("nope.db"), 5, 0, 10, 0, 1, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "No such file"));
    const char *empty = tu_path("empty.db");
    make_db(empty, 0, 10);
    ck_assert_ptr_null(cli_sampler_db(empty, 5, 0, 10, 0, 1, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "no users: use --history"));
    const char *notours = tu_path("notours.db");
    sqlite3 *db;
    sqlite3_open(notours, &db);
    sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL);
    sqlite3_close(db);
    ck_assert_ptr_null(cli_sampler_db(notours, 5, 0, 10, 0, 1, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "no such table: items"));

    const char *bad = tu_path("bad.jsonl");
    tu_write_file(bad, "{\"op\":\"rank\"}\n[1,2]\n", 20);
    ck_assert_ptr_null(cli_sampler_file(bad, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "line 2 is not a JSON object"));
}
END_TEST

/* ======================================================================
 * The programs (built by `make`, which `make check` runs first)
 * ====================================================================== */

#ifdef ATTN_BIN_DIR
/* Run a program with args; stdout and stderr into files; exit status. */
static int run_prog(const char *const *argv, const char *out, const char *err_path)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1), dup2(e, 2);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int have_programs(void)
{
    static const char *names[] = {"attn-query", "attn-batch", "attn-load"};
    for (int i = 0; i < 3; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", ATTN_BIN_DIR, names[i]);
        if (access(p, X_OK) != 0) {
            fprintf(stderr, "check_clients: %s is not built; run `make` (make check does)\n", p);
            return 0;
        }
    }
    return 1;
}

START_TEST(test_programs)
{
    ck_assert_msg(have_programs(), "the client programs are not built");
    char ep[256], dead[256];
    pid_t srv = srv_start("tcp://127.0.0.1:*", NULL, ep, sizeof ep);
    dead_endpoint(dead, sizeof dead);
    const char *q = ATTN_BIN_DIR "/attn-query", *b = ATTN_BIN_DIR "/attn-batch",
               *l = ATTN_BIN_DIR "/attn-load";
    const char *out = tu_path("prog.out"), *err = tu_path("prog.err");
    char *text;

    const char *q1[] = {q, "--endpoint", ep, "--user", "u1", "--candidates", "i1,i2,x3", "-k", "2", NULL};
    ck_assert_int_eq(run_prog(q1, out, err), 0);
    text = slurp(out, NULL);
    ck_assert_ptr_nonnull(strstr(text, "Title of i"));
    ck_assert_ptr_nonnull(strstr(text, "because you interacted with: History title 1 [h1] 0.50"));
    ck_assert_ptr_nonnull(strstr(text, "unknown candidates (1): x3"));
    free(text);
    const char *q2[] = {q, "--endpoint", ep, "--user", "newbie", "--candidates", "i1", "--json", NULL};
    ck_assert_int_eq(run_prog(q2, out, err), 0);
    text = slurp(out, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\"reason\":\"unknown_user\""));
    ck_assert_ptr_nonnull(strstr(text, "\"id\":\"q1\""));
    free(text);
    const char *q3[] = {q, "--endpoint", ep, "--user", "u", "--candidates", "bad", NULL};
    ck_assert_int_eq(run_prog(q3, out, err), 1);
    text = slurp(err, NULL);
    ck_assert_ptr_nonnull(strstr(text, "error bad_request: candidates:"));
    free(text);
    const char *q4[] = {q, "--endpoint", dead, "--op", "health", "--timeout", "100", "--retries", "1", NULL};
    ck_assert_int_eq(run_prog(q4, out, err), 1);
    text = slurp(err, NULL);
    ck_assert_ptr_nonnull(strstr(text, "no reply from tcp://127.0.0.1:"));
    ck_assert_ptr_nonnull(strstr(text, "within 100 ms (2 attempts)"));
    free(text);
    const char *q5[] = {q, "--endpoint", ep, "--op", "info", NULL};
    ck_assert_int_eq(run_prog(q5, out, err), 0);
    text = slurp(out, NULL);
    ck_assert_ptr_nonnull(strstr(text, "limits.max_k: 100"));
    free(text);
    const char *bad_usage[][8] = {
        {q, "--candidates", "a", NULL},                          /* no user/history */
        {q, "--user", "u", "--history", "a", "--candidates", "a", NULL},
        {q, "--user", "u", "--candidates", "a", "-k", "zero", NULL},
        {q, "--op", "nope", NULL},
        {q, "--bogus", NULL},
        {b, "--in", "x", NULL},
        {b, "--in", "x", "--out", "y", "--window", "0", NULL},
        {l, "--db", "x", "--in", "y", NULL},
    };
    for (size_t i = 0; i < sizeof bad_usage / sizeof bad_usage[0]; i++) {
        ck_assert_msg(run_prog(bad_usage[i], out, err) == 2, "case %zu", i);
        text = slurp(err, NULL);
        ck_assert_msg(strstr(text, "--help") != NULL, "case %zu: %s", i, text);
        free(text);
    }
    const char *h[] = {b, "--help", NULL};
    ck_assert_int_eq(run_prog(h, out, err), 0);

    /* attn-batch end to end, then its output already exists. */
    const char *in = tu_path("prog.in"), *bout = tu_path("prog.bout");
    write_requests(in, 50);
    const char *b1[] = {b, "--endpoint", ep, "--in", in, "--out", bout, NULL};
    ck_assert_int_eq(run_prog(b1, out, err), 0);
    check_ids_in_order(bout, 50, 1);
    text = slurp(err, NULL);
    ck_assert_ptr_nonnull(strstr(text, "attn-batch: 50 lines in"));
    ck_assert_ptr_nonnull(strstr(text, "50 ok, 0 rejected"));
    free(text);
    ck_assert_int_eq(run_prog(b1, out, err), 2);
    const char *b2[] = {b, "--endpoint", dead, "--in", in, "--out", tu_path("prog.b2"), "--timeout", "100", NULL};
    ck_assert_int_eq(run_prog(b2, out, err), 1);
    text = slurp(err, NULL);
    ck_assert_ptr_nonnull(strstr(text, "no reply from"));
    free(text);

    /* attn-load end to end, --json. */
    const char *lf = load_file(4);
    const char *l1[] = {l, "--endpoint", ep, "--in", lf, "--requests", "300", "--warmup", "0", "--json", NULL};
    ck_assert_int_eq(run_prog(l1, out, err), 0);
    text = slurp(out, NULL);
    cJSON *j = cJSON_Parse(text);
    ck_assert_msg(j != NULL, "%s", text);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "ok")->valueint, 300);
    ck_assert_str_eq(cli_json_str(cJSON_GetObjectItem(j, "source"), "in"), lf);
    cJSON_Delete(j);
    free(text);
    const char *l2[] = {l, "--endpoint", dead, "--in", lf, "--timeout", "100", NULL};
    ck_assert_int_eq(run_prog(l2, out, err), 1);
    text = slurp(err, NULL);
    ck_assert_ptr_nonnull(strstr(text, "no reply from"));
    free(text);
    srv_kill(srv);
}
END_TEST
#endif

static Suite *s_suite(void)
{
    Suite *s = suite_create("clients");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60 * tu_slowdown());
    tcase_add_test(tc, test_endpoints);
    tcase_add_test(tc, test_flags);
    tcase_add_test(tc, test_json_helpers);
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_progress);
    tcase_add_test(tc, test_req_basic);
    tcase_add_test(tc, test_req_lost_reply);
    tcase_add_test(tc, test_req_dead);
    tcase_add_test(tc, test_req_failover);
    tcase_add_test(tc, test_req_server_restart);
    tcase_add_test(tc, test_pipe_matching);
    tcase_add_test(tc, test_pipe_timeouts);
    tcase_add_test(tc, test_batch_basic);
    tcase_add_test(tc, test_batch_busy_retries);
    tcase_add_test(tc, test_batch_kill_restart);
    tcase_add_test(tc, test_batch_resume);
    tcase_add_test(tc, test_batch_stall_then_resume);
    tcase_add_test(tc, test_batch_failover);
    tcase_add_test(tc, test_batch_unreachable);
    tcase_add_test(tc, test_batch_too_large);
    tcase_add_test(tc, test_load_closed);
    tcase_add_test(tc, test_load_open);
    tcase_add_test(tc, test_load_coordinated_omission);
    tcase_add_test(tc, test_load_stall);
    tcase_add_test(tc, test_sampler_db);
#ifdef ATTN_BIN_DIR
    tcase_add_test(tc, test_programs);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--serve"))
        return s_serve(argc, argv);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "--serve"))) {
        printf("usage: check_clients                 run the suite\n"
               "       check_clients --serve ENDPOINT [--echo] [--delay-ms D] [--busy-every N]\n"
               "                     [--drop-nth N] [--stall-after N --stall-ms M]\n"
               "                     [--max-bytes B] [--not-ready]\n"
               "       a fake attnd (or an echo) for manual tests and overhead measurement\n");
        return 0;
    }
    /* Exec'ing /proc/self/exe would run valgrind's launcher under valgrind;
     * the resolved argv[0] is this binary in every case. */
    if (!realpath(argv[0], s_self)) {
        ssize_t n = readlink("/proc/self/exe", s_self, sizeof s_self - 1);
        s_self[n > 0 ? n : 0] = '\0';
    }
    signal(SIGPIPE, SIG_IGN);
    return tu_run(s_suite());
}
