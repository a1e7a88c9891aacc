/* tu_daemon.c -- see tu_daemon.h. */
#include "tests/tu_daemon.h"

#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "store/gen/gen.h"
#include "attn/model.h"
#include "store/store.h"
#include "tests/testutil.h"
#include "util/clock.h"
#include "util/proc.h"

#ifndef ATTN_BIN_DIR
#error "ATTN_BIN_DIR must name the directory of the programs under test"
#endif

double tu_now(void)
{
    return util_now_s();
}

void tu_make_db(const char *path, uint32_t items, uint32_t users, int dim)
{
    store_gen_opts o;
    store_gen_defaults(&o);
    o.n_items = items;
    o.n_users = users;
    o.dim = dim;
    o.seed = 7;
    o.events_per_user = 30;
    store_err err;
    unlink(path);
    if (store_gen_create(path, &o, NULL, &err) != STORE_OK) {
        fprintf(stderr, "gen %s: %s\n", path, err.msg);
        exit(2);
    }
}

void tu_curve_apply(void *sock, const tu_curve *k)
{
    if (!k)
        return;
    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->server, 41);
    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->pub, 41);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->sec, 41);
}

char *tu_call(const char *endpoint, const char *json, int timeout_ms)
{
    return tu_call_curve(endpoint, json, timeout_ms, NULL);
}

char *tu_call_curve(const char *endpoint, const char *json, int timeout_ms, const tu_curve *k)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    /* A refused handshake must not park the request forever. */
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    tu_curve_apply(s, k);
    zmq_connect(s, endpoint);
    char *out = NULL;
    if (zmq_send(s, json, strlen(json), 0) >= 0) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, s, 0) >= 0) {
            out = malloc(zmq_msg_size(&msg) + 1);
            memcpy(out, zmq_msg_data(&msg), zmq_msg_size(&msg));
            out[zmq_msg_size(&msg)] = 0;
        }
        zmq_msg_close(&msg);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return out;
}

cJSON *tu_call_json(const char *endpoint, const char *json)
{
    char *reply = tu_call(endpoint, json, (int)(10000 * tu_slowdown()));
    ck_assert_msg(reply != NULL, "no reply to %.200s", json);
    cJSON *r = cJSON_Parse(reply);
    ck_assert_msg(r != NULL, "reply is not JSON: %s", reply);
    free(reply);
    return r;
}

static void s_exec(tu_daemon *d, const char *db, const char *const *extra)
{
    const char *argv[64];
    int n = 0;
    static char bin[512];
    snprintf(bin, sizeof bin, "%s/attnd", ATTN_BIN_DIR);
    /* ATTN_DAEMON_VALGRIND=1: the daemon itself runs under valgrind, and an
     * error or a leak makes it exit 99, which tu_daemon_stop reports. */
    if (getenv("ATTN_DAEMON_VALGRIND")) {
        argv[n++] = "valgrind";
        argv[n++] = "-q";
        argv[n++] = "--error-exitcode=99";
        argv[n++] = "--leak-check=full";
        argv[n++] = "--errors-for-leak-kinds=definite,indirect";
        /* valgrind runs one thread at a time, and its default lock lets the
         * thread that yields take it straight back: while main scored,
         * libzmq's I/O thread barely ran, requests came in one per turn of
         * main's loop and replies piled up past the client's byte budget.
         * The fair lock takes turns, as cores would. */
        argv[n++] = "--fair-sched=yes";
    }
    /* The HTTP listener on a port the kernel picks: tests run side by side. */
    const char *fixed[] = {bin, "--db", db, "--bind", d->endpoint, "--workers", "2", "--set",
                           "server.reload_poll=0", "--set", "metrics.bind=127.0.0.1:0"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = fixed[i];
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    FILE *log = freopen(d->log, "w", stderr);
    (void)log;
    /* Dies with the test that started it, even one Check ends with _exit. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

void tu_daemon_start(tu_daemon *d, const char *db, const char *name, const char *const *extra)
{
    tu_daemon_start_curve(d, db, name, extra, NULL);
}

void tu_daemon_start_curve(tu_daemon *d, const char *db, const char *name,
                           const char *const *extra, const tu_curve *probe)
{
    snprintf(d->endpoint, sizeof d->endpoint, "ipc://%s", tu_path(name));
    snprintf(d->log, sizeof d->log, "%s.log", tu_path(name));
    d->pid = fork();
    ck_assert_int_ge(d->pid, 0);
    if (d->pid == 0)
        s_exec(d, db, extra);
    /* Ready when health answers. */
    double deadline = tu_now() + 30 * tu_slowdown();
    while (tu_now() < deadline) {
        char *r = tu_call_curve(d->endpoint, "{\"op\":\"health\"}", 200, probe);
        if (r) {
            free(r);
            return;
        }
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid)   /* its last words: */
            ck_abort_msg("attnd exited during start-up (status %d): ...%s", status,
                         tu_file_tail(d->log));
    }
    ck_abort_msg("attnd did not answer health within the start-up time; see %s", d->log);
}

int tu_daemon_stop(tu_daemon *d)
{
    int status = -1;
    kill(d->pid, SIGTERM);
    double deadline = tu_now() + 30 * tu_slowdown();
    while (tu_now() < deadline) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    return -1;
}

uint64_t tu_daemon_rss(const tu_daemon *d)
{
    return util_rss_bytes(d->pid);
}

int tu_daemon_http_port(const tu_daemon *d)
{
    cJSON *r = tu_call_json(d->endpoint, "{\"op\":\"info\"}");
    const cJSON *m = cJSON_GetObjectItem(r, "metrics");
    int port = -1;
    const char *colon = cJSON_IsString(m) ? strrchr(m->valuestring, ':') : NULL;
    if (colon)
        port = atoi(colon + 1);
    cJSON_Delete(r);
    return port;
}

pid_t tu_spawn(const char *log, const char *program, ...)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s/%s", ATTN_BIN_DIR, program);
    char *argv[64];
    va_list ap;
    va_start(ap, program);
    argv[0] = bin;
    tu_argv(argv + 1, 63, va_arg(ap, const char *), ap);
    va_end(ap);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

long tu_wait_size(const char *path, long bytes, double seconds)
{
    double deadline = tu_now() + seconds * tu_slowdown();
    long size = 0;
    while (size < bytes && tu_now() < deadline) {
        FILE *f = fopen(path, "r");
        if (f) {
            fseek(f, 0, SEEK_END);
            size = ftell(f);
            fclose(f);
        }
        usleep(2000);
    }
    return size;
}

int tu_wait_exit(pid_t pid, double seconds, const char *what)
{
    double deadline = tu_now() + seconds * tu_slowdown();
    int status;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        ck_assert_msg(tu_now() < deadline, "%s did not finish", what);
        usleep(20000);
    }
    return status;
}

int tu_dealer_flood(const char *endpoint, int n, size_t cap, tu_make_fn make, void *ctx,
                    void (*after_send)(void *), void *arg, tu_counts *out)
{
    void *zctx = zmq_ctx_new();
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int linger = 0, tmo = (int)(20000 * tu_slowdown()), hwm = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_connect(s, endpoint);
    char *req = malloc(cap);
    for (int i = 0; i < n; i++) {
        size_t len = make(req, cap, i, ctx);
        zmq_send(s, "", 0, ZMQ_SNDMORE);
        zmq_send(s, req, len, 0);
    }
    free(req);
    if (after_send)
        after_send(arg);
    int got = 0;
    size_t bcap = 1 << 16;
    char *buf = malloc(bcap);
    memset(out, 0, sizeof *out);
    for (; got < n; got++) {
        if (zmq_recv(s, buf, bcap, 0) < 0)
            break;
        int len = zmq_recv(s, buf, bcap - 1, 0);
        if (len < 0)
            break;
        buf[(size_t)len < bcap - 1 ? (size_t)len : bcap - 1] = 0;
        cJSON *r = cJSON_Parse(buf);
        if (r && tu_ok(r))
            out->ok++;
        else if (r && !strcmp(tu_code(r), "busy"))
            out->busy++;
        else if (r && !strcmp(tu_code(r), "unavailable"))
            out->unavailable++;
        else
            fprintf(stderr, "unexpected reply: %.300s\n", buf);
        cJSON_Delete(r);
    }
    free(buf);
    zmq_close(s);
    zmq_ctx_term(zctx);
    return got;
}

int tu_log_has(const char *path, const char *const *needles)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    static char line[1 << 16];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        found = 1;
        for (int i = 0; needles[i] && found; i++)
            found = strstr(line, needles[i]) != NULL;
    }
    fclose(f);
    return found;
}

const char *tu_file_tail(const char *path)
{
    static char tail[600];
    tail[0] = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, size > (long)sizeof tail - 1 ? size - (long)sizeof tail + 1 : 0, SEEK_SET);
        tail[fread(tail, 1, sizeof tail - 1, f)] = 0;
        fclose(f);
    }
    return tail;
}

void tu_assert_batch_out(const char *path, const char *prefix, int lines)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: no output", path);
    static char line[1 << 16];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *r = cJSON_Parse(line);
        ck_assert_msg(r && tu_ok(r), "line %d: %.300s", n + 1, line);
        char want[64];
        snprintf(want, sizeof want, "%s%d", prefix, n);
        ck_assert_str_eq(cJSON_GetObjectItem(r, "id")->valuestring, want);
        cJSON_Delete(r);
        n++;
    }
    fclose(f);
    ck_assert_int_eq(n, lines);
}

int tu_ok(const cJSON *reply)
{
    return cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok"));
}

const char *tu_code(const cJSON *reply)
{
    const cJSON *err = cJSON_GetObjectItem(reply, "error");
    const cJSON *code = err ? cJSON_GetObjectItem(err, "code") : NULL;
    return code && cJSON_IsString(code) ? code->valuestring : "";
}

const char *tu_message(const cJSON *reply)
{
    const cJSON *err = cJSON_GetObjectItem(reply, "error");
    const cJSON *msg = err ? cJSON_GetObjectItem(err, "message") : NULL;
    return msg && cJSON_IsString(msg) ? msg->valuestring : "";
}

int64_t tu_save_random_model(const char *db_path, int heads, int activate, int sa_len,
                             uint64_t seed)
{
    return tu_save_random_model_ffn(db_path, heads, activate, sa_len, 0, seed);
}

/* The block's feed-forward layer, scaled to move [k' | v'] by about as
 * much as the block does (weights ~ 1/sqrt(fan-in)). */
static void s_random_ffn(tu_rng *rng, attn_model *model, int ffn)
{
    const size_t w = 2 * (size_t)model->m;
    ck_assert_int_eq(attn_model_add_ffn(model, ffn), 0);
    tu_fill_normal(rng, model->ffn_w1, w * (size_t)ffn, 1.0f / sqrtf((float)w));
    tu_fill_normal(rng, model->ffn_b1, (size_t)ffn, 0.2f);
    tu_fill_normal(rng, model->ffn_w2, (size_t)ffn * w, 1.0f / sqrtf((float)ffn));
    tu_fill_normal(rng, model->ffn_b2, w, 0.2f);
}

/* A trained-looking model: random projections, biases and residuals; with
 * sa_len > 0 also a self-attention block, and a short l_max so that the
 * block's context reaches past the history; with ffn > 0 a feed-forward
 * layer on the block, drawn last so that everything else is what the same
 * seed gives without it. */
int64_t tu_save_random_model_ffn(const char *db_path, int heads, int activate, int sa_len,
                                 int ffn, uint64_t seed)
{
    store *db;
    store_err err;
    store_catalog *cat;
    ck_assert_msg(store_open(&db, db_path, STORE_READWRITE, 5000, &err) == STORE_OK, "%s",
                  err.msg);
    ck_assert_int_eq(store_catalog_load(db, &cat, &err), STORE_OK);
    int d = cat->dim, m = 8 * heads;
    int64_t n_items = cat->n / 2;
    const int l_max = sa_len > 0 ? 8 : 50;
    attn_model *model = attn_model_new(d, m, heads, l_max, n_items, 1);
    ck_assert_ptr_nonnull(model);
    tu_rng rng = {.s = seed};
    if (sa_len > 0) {
        ck_assert_int_eq(attn_model_add_sa(model, sa_len), 0);
        float *sw[4] = {model->sa_q, model->sa_k, model->sa_uk, model->sa_uv};
        for (int i = 0; i < 4; i++)
            tu_fill_normal(&rng, sw[i], (size_t)d * m, 0.5f);
        tu_fill_normal(&rng, model->sa_pos, (size_t)sa_len, 0.3f);
    }
    tu_fill_normal(&rng, model->wq, (size_t)d * m, 0.5f);
    tu_fill_normal(&rng, model->wk, (size_t)d * m, 0.5f);
    tu_fill_normal(&rng, model->wv, (size_t)d * m, 0.5f);
    tu_fill_normal(&rng, model->wo, (size_t)m * d, 0.5f);
    tu_fill_normal(&rng, model->pos_bias, (size_t)l_max, 0.3f);
    for (int64_t i = 0; i < n_items; i++)
        model->item_ids[i] = cat->item_id[2 * i];
    tu_fill_normal(&rng, model->item_bias, (size_t)n_items, 0.1f);
    tu_fill_normal(&rng, model->residual, (size_t)n_items * d, 0.05f);
    model->scale = 1.0f / sqrtf((float)m / heads);
    if (ffn > 0)
        s_random_ffn(&rng, model, ffn);
    int64_t version;
    ck_assert_msg(store_model_save(db, model, "{\"test\":true}", NULL, activate, &version, &err) ==
                      STORE_OK, "%s", err.msg);
    attn_model_free(&model);
    store_catalog_free(&cat);
    store_close(&db);
    return version;
}
