/* check_e2e.c -- the real attnd over real sockets.
 *
 * Each test case generates its own database, starts the attnd binary of this
 * build on an ipc:// endpoint in the test's temporary directory, and talks to
 * it with plain libzmq.  Rankings are compared with the reference
 * implementation computed here from the same database.
 *
 * The daemon runs in a child process; the test process holds no ZeroMQ
 * context across fork (Check forks each test), so contexts are created and
 * destroyed inside each test.
 *
 * The ranking and recording cases run twice: on the sqlite history backend
 * (the database itself), and again -- the "redis backend" test case -- on
 * a redis-server started for them, the histories copied there with
 * `attnctl history push`.  The reference reads histories through the same
 * backend (store/hist), so both runs check attnd against the oracle, and
 * the redis run also checks the copy and the backend's reads.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "attn/model.h"
#include "attn/score.h"
#include "attn/topk.h"
#include "store/gen/gen.h"
#include "store/store.h"
#include "store/hist/hist.h"
#include "tests/testutil.h"
#include "tests/tu_daemon.h"
#include "tests/tu_redis.h"

#ifndef ATTN_BIN_DIR
#error "ATTN_BIN_DIR must name the directory of the programs under test"
#endif

static char s_db[300];
static tu_daemon s_main_daemon;
static tu_redis s_redis;       /* running while the redis test case runs (pid > 0) */

/* ---- the history backend under test ------------------------------------- */

/* The Redis key prefix of a daemon's histories: one per database. */
static void s_prefix(const char *db, char *out, size_t len)
{
    const char *base = strrchr(db, '/');
    snprintf(out, len, "%s:", base ? base + 1 : db);
}

/* The histories of db, as the daemon under test reads them. */
static store_hist *s_hist(const char *db)
{
    store_hist *h = NULL;
    store_err err = {0};
    char prefix[64];
    s_prefix(db, prefix, sizeof prefix);
    if (s_redis.pid > 0) {
        store_hist_redis_opts o = {.urls = s_redis.url, .prefix = prefix, .connect_ms = 1000,
                                   .timeout_ms = 2000, .trim = 1000};
        ck_assert_msg(store_hist_redis_open(&h, &o, &err) == STORE_OK, "%s", err.msg);
    } else {
        store_hist_sqlite_opts o = {.path = db, .busy_ms = 2000};
        ck_assert_msg(store_hist_sqlite_open(&h, &o, &err) == STORE_OK, "%s", err.msg);
    }
    return h;
}

/* Start attnd over db on the backend under test: on redis, db's histories
 * are pushed first (under db's own prefix) and the daemon reads them there. */
static void s_daemon_start(tu_daemon *d, const char *db, const char *name,
                           const char *const *extra)
{
    if (s_redis.pid <= 0) {
        tu_daemon_start(d, db, name, extra);
        return;
    }
    char prefix[64], args[1200], out[4096];
    static char set_url[128], set_prefix[128];
    s_prefix(db, prefix, sizeof prefix);
    snprintf(args, sizeof args, "push %s %s --prefix %s --quiet --restart", db, s_redis.url,
             prefix);
    ck_assert_msg(tu_run_program("attnctl history", args, out, sizeof out) == 0, "%s", out);
    snprintf(set_url, sizeof set_url, "history.redis=%s", s_redis.url);
    snprintf(set_prefix, sizeof set_prefix, "history.prefix=%s", prefix);
    const char *all[40] = {"--set", "history.backend=redis", "--set", set_url, "--set",
                           set_prefix};
    int n = 6;
    for (int i = 0; extra && extra[i] && n < 39; i++)
        all[n++] = extra[i];
    all[n] = NULL;
    tu_daemon_start(d, db, name, all);
}

/* ---- the reference ranking ---------------------------------------------- */

typedef struct ref_rank {
    int n;
    char item[64][32];
    double score[64];
    int n_because;
    char because[64][64][32];
} ref_rank;

/* What attnd must answer for a known user, computed with the oracle. */
static void s_reference(const char *db_path, const char *user, const char **cand, int n_cand,
                        int k, int explain, ref_rank *out)
{
    store *db;
    store_err err;
    store_catalog *cat;
    attn_model *model;
    ck_assert_msg(store_open(&db, db_path, STORE_READONLY, 2000, &err) == STORE_OK, "%s", err.msg);
    ck_assert_msg(store_catalog_load(db, &cat, &err) == STORE_OK, "%s", err.msg);
    ck_assert_msg(store_model_load(db, STORE_MODEL_ACTIVE, &model, &err) == STORE_OK, "%s",
                  err.msg);
    /* The newest l_max events, then sa_len - 1 older ones as self-attention
     * context (none without a block), from the backend under test. */
    int l = model->l_max < 100 ? model->l_max : 100;
    int l_ctx = model->sa_len > 0 ? model->sa_len - 1 : 0;
    store_event ev[200];
    int n_ev = 0;
    store_hist *h = s_hist(db_path);
    ck_assert_msg(store_hist_read(h, user, strlen(user), l + l_ctx, ev, &n_ev, &err) ==
                  STORE_OK, "%s", err.msg);
    store_hist_close(&h);
    uint32_t hist[200], crow[256];
    float w[200];
    int n_all = 0;
    for (int i = 0; i < n_ev; i++) {
        int64_t row = store_catalog_row(cat, ev[i].item_id);
        if (row >= 0) {
            hist[n_all] = (uint32_t)row;
            w[n_all++] = ev[i].weight;
        }
    }
    int n_hist = n_all < l ? n_all : l;
    ck_assert_int_gt(n_hist, 0);
    for (int i = 0; i < n_cand; i++) {
        int64_t row = store_catalog_find(cat, cand[i], strlen(cand[i]));
        ck_assert_int_ge(row, 0);
        crow[i] = (uint32_t)row;
    }
    int64_t *param = malloc(cat->n * sizeof *param);
    for (uint32_t r = 0; r < cat->n; r++)
        param[r] = attn_model_item_index(model, cat->item_id[r]);
    attn_request rq = {.hist = hist, .hist_weight = w, .n_hist = n_hist,
                       .n_ctx = n_all - n_hist, .cand = crow, .n_cand = n_cand, .k = k,
                       .explain = explain};
    double *scores = malloc(sizeof(double) * (size_t)n_cand);
    double *weights = malloc(sizeof(double) * (size_t)n_cand * (size_t)n_hist);
    ck_assert_int_eq(attn_score_ref(model, cat->emb, cat->n, (size_t)cat->dim, param, &rq, scores,
                                    weights), 0);
    uint32_t order[256];
    out->n = attn_topk_f64(scores, n_cand, k, order);
    /* A history item seen twice is one explanation with the summed weight. */
    int distinct = 0;
    int first[200];
    for (int j = 0; j < n_hist; j++) {
        first[j] = j;
        for (int i = 0; i < j && first[j] == j; i++)
            if (hist[i] == hist[j])
                first[j] = i;
        distinct += first[j] == j;
    }
    out->n_because = explain < distinct ? explain : distinct;
    for (int i = 0; i < out->n; i++) {
        snprintf(out->item[i], sizeof out->item[i], "%s", cand[order[i]]);
        out->score[i] = scores[order[i]];
        uint32_t bidx[200];
        double merged[200];
        const double *wc = weights + (size_t)order[i] * (size_t)n_hist;
        for (int j = 0; j < n_hist; j++)
            merged[j] = first[j] == j ? 0.0 : -1.0;
        for (int j = 0; j < n_hist; j++)
            merged[first[j]] += wc[j];
        attn_topk_f64(merged, n_hist, out->n_because, bidx);
        for (int j = 0; j < out->n_because; j++)
            snprintf(out->because[i][j], 32, "%s", store_catalog_ext(cat, hist[bidx[j]]));
    }
    free(scores);
    free(weights);
    free(param);
    attn_model_free(&model);
    store_catalog_free(&cat);
    store_close(&db);
}

/* Compare an attnd rank reply with the reference: same order, scores to
 * 1e-4 relative, same explanations. */
static void s_assert_matches(const cJSON *reply, const ref_rank *ref)
{
    ck_assert_msg(tu_ok(reply), "rank failed: %s", tu_message(reply));
    const cJSON *items = cJSON_GetObjectItem(reply, "items");
    ck_assert_int_eq(cJSON_GetArraySize(items), ref->n);
    int i = 0;
    for (const cJSON *it = items->child; it; it = it->next, i++) {
        const char *item = cJSON_GetObjectItem(it, "item")->valuestring;
        double score = cJSON_GetObjectItem(it, "score")->valuedouble;
        ck_assert_msg(!strcmp(item, ref->item[i]), "rank %d: attnd %s, reference %s", i, item,
                      ref->item[i]);
        ck_assert_msg(fabs(score - ref->score[i]) <= 1e-4 * fmax(1.0, fabs(ref->score[i])),
                      "rank %d (%s): attnd %.7g, reference %.7g", i, item, score, ref->score[i]);
        const cJSON *because = cJSON_GetObjectItem(it, "because");
        ck_assert_int_eq(cJSON_GetArraySize(because), ref->n_because);
        int j = 0;
        for (const cJSON *b = because ? because->child : NULL; b; b = b->next, j++)
            ck_assert_str_eq(cJSON_GetObjectItem(b, "item")->valuestring, ref->because[i][j]);
    }
}

static void s_candidates(char *json, size_t len, const char **cand, int n)
{
    size_t at = 0;
    at += (size_t)snprintf(json + at, len - at, "[");
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(json + at, len - at, "%s\"%s\"", i ? "," : "", cand[i]);
    snprintf(json + at, len - at, "]");
}

static char s_ext[64][16];
static const char *s_cand[64];

static void s_pick_candidates(int n, int stride)
{
    for (int i = 0; i < n; i++) {
        snprintf(s_ext[i], sizeof s_ext[i], "i%05d", 1 + i * stride);
        s_cand[i] = s_ext[i];
    }
}

/* Rank s_cand[0..n) for user at endpoint and hold the reply to the
 * reference on the database. */
static void s_assert_rank_as_reference(const char *endpoint, const char *db, const char *user,
                                       int n, int k, int explain)
{
    char cj[2048], req[4096];
    s_candidates(cj, sizeof cj, s_cand, n);
    snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"%s\",\"candidates\":%s,"
             "\"k\":%d,\"explain\":%d}", user, cj, k, explain);
    cJSON *r = tu_call_json(endpoint, req);
    ref_rank ref;
    s_reference(db, user, s_cand, n, k, explain, &ref);
    s_assert_matches(r, &ref);
    cJSON_Delete(r);
}

/* ---- fixtures ------------------------------------------------------------- */

static void s_setup_main(void)
{
    snprintf(s_db, sizeof s_db, "%s", tu_path("e2e.db"));
    tu_make_db(s_db, 600, 60, 24);
    tu_daemon_start(&s_main_daemon, s_db, "main.sock", NULL);
}

static void s_teardown_main(void)
{
    tu_daemon_stop(&s_main_daemon);
}

/* The same database and daemon, its histories in Redis. */
static void s_setup_redis(void)
{
    tu_redis_start(&s_redis, "redis");
    snprintf(s_db, sizeof s_db, "%s", tu_path("e2e-redis.db"));
    tu_make_db(s_db, 600, 60, 24);
    s_daemon_start(&s_main_daemon, s_db, "main-redis.sock", NULL);
}

static void s_teardown_redis(void)
{
    tu_daemon_stop(&s_main_daemon);
    tu_redis_stop(&s_redis);
}

/* ---- ranking -------------------------------------------------------------- */

START_TEST(rank_matches_reference)
{
    s_pick_candidates(40, 13);
    char cj[2048], req[4096];
    s_candidates(cj, sizeof cj, s_cand, 40);
    const char *users[] = {"u0001", "u0017", "u0042"};
    for (int u = 0; u < 3; u++) {
        snprintf(req, sizeof req,
                 "{\"op\":\"rank\",\"id\":\"r%d\",\"user\":\"%s\",\"candidates\":%s,\"k\":10,"
                 "\"explain\":3}", u, users[u], cj);
        cJSON *reply = tu_call_json(s_main_daemon.endpoint, req);
        ref_rank ref;
        s_reference(s_db, users[u], s_cand, 40, 10, 3, &ref);
        s_assert_matches(reply, &ref);
        char want_id[8];
        snprintf(want_id, sizeof want_id, "r%d", u);
        ck_assert_str_eq(cJSON_GetObjectItem(reply, "id")->valuestring, want_id);
        ck_assert(cJSON_IsNull(cJSON_GetObjectItem(reply, "fallback")));
        ck_assert_int_eq(cJSON_GetObjectItem(reply, "model")->valueint, 0);
        cJSON_Delete(reply);
    }
}
END_TEST

START_TEST(rank_anonymous_history_and_unknowns)
{
    const char *req =
        "{\"op\":\"rank\",\"id\":7,\"history\":[\"i00003\",\"nope1\",\"i00005\",\"i00003\"],"
        "\"candidates\":[\"i00010\",\"zzz\",\"i00011\",\"i00010\"],\"k\":5,\"explain\":2,"
        "\"titles\":true}";
    cJSON *reply = tu_call_json(s_main_daemon.endpoint, req);
    ck_assert_msg(tu_ok(reply), "%s", tu_message(reply));
    ck_assert_int_eq(cJSON_GetObjectItem(reply, "id")->valueint, 7);
    const cJSON *items = cJSON_GetObjectItem(reply, "items");
    ck_assert_int_eq(cJSON_GetArraySize(items), 2);   /* duplicate ranked once */
    const cJSON *unknown = cJSON_GetObjectItem(reply, "unknown");
    ck_assert_int_eq(cJSON_GetArraySize(unknown), 2);
    char buf[64] = "";
    for (const cJSON *u = unknown->child; u; u = u->next) {
        strcat(buf, u->valuestring);
        strcat(buf, ";");
    }
    ck_assert_msg(strstr(buf, "zzz;") && strstr(buf, "nope1;"), "unknown: %s", buf);
    ck_assert_int_eq(cJSON_GetObjectItem(reply, "history")->valueint, 3);
    const cJSON *first = items->child;
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(first, "title")));
    ck_assert(strlen(cJSON_GetObjectItem(first, "title")->valuestring) > 0);
    const cJSON *because = cJSON_GetObjectItem(first, "because");
    /* i00003 was seen twice: explained once, so two distinct entries. */
    ck_assert_int_eq(cJSON_GetArraySize(because), 2);
    ck_assert_str_ne(cJSON_GetObjectItem(because->child, "item")->valuestring,
                     cJSON_GetObjectItem(because->child->next, "item")->valuestring);
    /* Head-averaged weights over all history positions sum to one. */
    double sum = 0;
    for (const cJSON *b = because->child; b; b = b->next)
        sum += cJSON_GetObjectItem(b, "weight")->valuedouble;
    ck_assert_msg(fabs(sum - 1.0) < 1e-4, "weights sum to %g", sum);
    cJSON_Delete(reply);
}
END_TEST

START_TEST(rank_cold_start_fallback)
{
    cJSON *reply = tu_call_json(s_main_daemon.endpoint,
                               "{\"op\":\"rank\",\"user\":\"no-such-user\","
                               "\"candidates\":[\"i00001\",\"i00002\",\"i00003\"],\"k\":3}");
    ck_assert_msg(tu_ok(reply), "%s", tu_message(reply));
    const cJSON *fb = cJSON_GetObjectItem(reply, "fallback");
    ck_assert(cJSON_IsObject(fb));
    ck_assert_str_eq(cJSON_GetObjectItem(fb, "kind")->valuestring, "popularity");
    ck_assert_str_eq(cJSON_GetObjectItem(fb, "reason")->valuestring, "unknown_user");
    const cJSON *items = cJSON_GetObjectItem(reply, "items");
    ck_assert_int_eq(cJSON_GetArraySize(items), 3);
    /* Popularity order: scores never increase. */
    double prev = INFINITY;
    for (const cJSON *it = items->child; it; it = it->next) {
        double s = cJSON_GetObjectItem(it, "score")->valuedouble;
        ck_assert(s <= prev);
        prev = s;
    }
    cJSON_Delete(reply);
    reply = tu_call_json(s_main_daemon.endpoint,
                        "{\"op\":\"rank\",\"history\":[\"x1\",\"x2\"],\"candidates\":[\"i00001\"]}");
    ck_assert(tu_ok(reply));
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "fallback"), "reason")
                         ->valuestring, "unknown_history");
    cJSON_Delete(reply);
}
END_TEST

START_TEST(rank_exclude_seen)
{
    /* The user's own newest item must be excluded when asked. */
    store *db;
    store_err err;
    ck_assert_int_eq(store_open(&db, s_db, STORE_READONLY, 2000, &err), STORE_OK);
    int64_t uid;
    ck_assert_int_eq(store_user_id(db, "u0003", 5, &uid, &err), STORE_OK);
    store_event ev[1];
    int n;
    ck_assert_int_eq(store_history(db, uid, 1, ev, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 1);
    store_catalog *cat;
    ck_assert_int_eq(store_catalog_load(db, &cat, &err), STORE_OK);
    const char *seen = store_catalog_ext(cat, (uint32_t)store_catalog_row(cat, ev[0].item_id));
    char req[512];
    snprintf(req, sizeof req,
             "{\"op\":\"rank\",\"user\":\"u0003\",\"candidates\":[\"%s\",\"i00599\"],"
             "\"exclude_seen\":true}", seen);
    cJSON *reply = tu_call_json(s_main_daemon.endpoint, req);
    ck_assert_msg(tu_ok(reply), "%s", tu_message(reply));
    const cJSON *excluded = cJSON_GetObjectItem(reply, "excluded");
    ck_assert_int_eq(cJSON_GetArraySize(excluded), 1);
    ck_assert_str_eq(excluded->child->valuestring, seen);
    const cJSON *items = cJSON_GetObjectItem(reply, "items");
    for (const cJSON *it = items->child; it; it = it->next)
        ck_assert_str_ne(cJSON_GetObjectItem(it, "item")->valuestring, seen);
    cJSON_Delete(reply);
    store_catalog_free(&cat);
    store_close(&db);
}
END_TEST

/* ---- errors --------------------------------------------------------------- */

static void s_expect_error(const char *req, const char *code, const char *field)
{
    cJSON *reply = tu_call_json(s_main_daemon.endpoint, req);
    ck_assert_msg(!tu_ok(reply), "expected %s for %.200s", code, req);
    ck_assert_msg(!strcmp(tu_code(reply), code), "%.200s: got %s (%s), expected %s", req,
                  tu_code(reply), tu_message(reply), code);
    if (field)
        ck_assert_msg(strstr(tu_message(reply), field), "message '%s' does not name '%s'",
                      tu_message(reply), field);
    cJSON_Delete(reply);
}

START_TEST(error_paths)
{
    s_expect_error("{not json", "bad_json", "JSON");
    s_expect_error("[1,2]", "bad_json", "object");
    s_expect_error("\"x\"", "bad_json", "object");
    s_expect_error("{\"op\":\"rank\"} trailing", "bad_json", "trailing");
    s_expect_error("{\"op\":\"rank\",\"user\":\"\xc3\x28\"}", "bad_json", "UTF-8");
    s_expect_error("{}", "bad_request", "op");
    s_expect_error("{\"op\":5}", "bad_request", "op");
    s_expect_error("{\"op\":\"dance\"}", "unknown_op", "op");
    s_expect_error("{\"op\":\"rank\",\"candidates\":[\"i00001\"]}", "bad_request", "user");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\",\"history\":[\"i00001\"],"
                   "\"candidates\":[\"i00001\"]}", "bad_request", "user");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\"}", "bad_request", "candidates");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[]}", "bad_request",
                   "candidates");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":\"i00001\"}",
                   "bad_request", "candidates");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[\"i00001\",3]}",
                   "bad_request", "candidates[1]");
    s_expect_error("{\"op\":\"rank\",\"user\":7,\"candidates\":[\"i00001\"]}", "bad_request",
                   "user");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[\"i00001\"],\"k\":0}",
                   "bad_request", "k");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[\"i00001\"],\"k\":2.5}",
                   "bad_request", "k");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[\"i00001\"],"
                   "\"k\":100000000}", "bad_request", "k");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[\"i00001\"],"
                   "\"explain\":-1}", "bad_request", "explain");
    s_expect_error("{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[\"i00001\"],"
                   "\"exclude_seen\":1}", "bad_request", "exclude_seen");
    s_expect_error("{\"op\":\"rank\",\"history\":[\"i00001\"],\"weights\":[0],"
                   "\"candidates\":[\"i00001\"]}", "bad_request", "weights[0]");
    s_expect_error("{\"op\":\"rank\",\"history\":[\"i00001\"],\"weights\":[1,2],"
                   "\"candidates\":[\"i00001\"]}", "bad_request", "weights");
    s_expect_error("{\"op\":\"health\",\"id\":{}}", "bad_request", "id");

    /* Over max_candidates (10000 by default). */
    size_t cap = 200000;
    char *big = malloc(cap);
    size_t at = (size_t)snprintf(big, cap, "{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[");
    for (int i = 0; i < 10001; i++)
        at += (size_t)snprintf(big + at, cap - at, "%s\"c%d\"", i ? "," : "", i);
    snprintf(big + at, cap - at, "]}");
    s_expect_error(big, "bad_request", "max_candidates");
    free(big);

    /* Over max_message_bytes (1 MiB by default). */
    size_t huge = (1u << 20) + 100;
    char *msg = malloc(huge + 1);
    memset(msg, ' ', huge);
    memcpy(msg, "{\"op\":\"health\"}", 15);
    msg[huge] = 0;
    s_expect_error(msg, "too_large", "max_message_bytes");
    free(msg);
}
END_TEST

/* Multi-frame garbage, bare DEALER framing, and an empty message. */
START_TEST(framing)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = (int)(5000 * tu_slowdown());
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_connect(s, s_main_daemon.endpoint);
    char buf[4096];

    /* REQ-style DEALER with two payload frames: bad_frame, framed REQ-style. */
    zmq_send(s, "", 0, ZMQ_SNDMORE);
    zmq_send(s, "{\"op\":\"health\"}", 15, ZMQ_SNDMORE);
    zmq_send(s, "garbage", 7, 0);
    ck_assert_int_eq(zmq_recv(s, buf, sizeof buf, 0), 0);   /* delimiter */
    int n = zmq_recv(s, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = 0;
    ck_assert_msg(strstr(buf, "\"bad_frame\""), "%s", buf);

    /* Bare DEALER: one frame in, one frame out. */
    zmq_send(s, "{\"op\":\"health\",\"id\":\"bare\"}", 27, 0);
    n = zmq_recv(s, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = 0;
    ck_assert_msg(strstr(buf, "\"id\":\"bare\"") && strstr(buf, "\"ready\":true"), "%s", buf);

    /* An empty delimiter and nothing else. */
    zmq_send(s, "", 0, 0);
    n = zmq_recv(s, buf, sizeof buf - 1, 0);
    if (n == 0)
        n = zmq_recv(s, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = 0;
    ck_assert_msg(strstr(buf, "\"bad_frame\""), "%s", buf);
    zmq_close(s);
    zmq_ctx_term(ctx);
}
END_TEST

/* Many requests in flight on one DEALER, matched by id. */
START_TEST(dealer_pipelining)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = (int)(10000 * tu_slowdown());
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_connect(s, s_main_daemon.endpoint);
    enum { N = 200 };
    char req[512];
    for (int i = 0; i < N; i++) {
        int len = snprintf(req, sizeof req,
                           "{\"op\":\"rank\",\"id\":%d,\"user\":\"u%04d\",\"candidates\":"
                           "[\"i00001\",\"i00002\",\"i00300\"],\"k\":2}", i, 1 + i % 60);
        zmq_send(s, "", 0, ZMQ_SNDMORE);
        zmq_send(s, req, (size_t)len, 0);
    }
    static char got[N];
    memset(got, 0, sizeof got);
    char buf[8192];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(zmq_recv(s, buf, sizeof buf, 0), 0);
        int n = zmq_recv(s, buf, sizeof buf - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = 0;
        cJSON *r = cJSON_Parse(buf);
        ck_assert_msg(r && tu_ok(r), "%s", buf);
        int id = cJSON_GetObjectItem(r, "id")->valueint;
        ck_assert(id >= 0 && id < N && !got[id]);
        got[id] = 1;
        cJSON_Delete(r);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
}
END_TEST

START_TEST(health_info_stats)
{
    cJSON *r = tu_call_json(s_main_daemon.endpoint, "{\"op\":\"health\",\"id\":\"h\"}");
    ck_assert(tu_ok(r));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "live")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ready")));
    ck_assert_int_eq(cJSON_GetObjectItem(r, "items")->valueint, 600);
    cJSON_Delete(r);
    r = tu_call_json(s_main_daemon.endpoint, "{\"op\":\"info\"}");
    ck_assert(tu_ok(r));
    ck_assert_int_eq(cJSON_GetObjectItem(r, "protocol")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(r, "workers")->valueint, 2);
    /* The same CPU, the same choice as this process's. */
    ck_assert_str_eq(cJSON_GetObjectItem(r, "kernel")->valuestring, attn_kernel_name());
    const cJSON *model = cJSON_GetObjectItem(r, "model");
    ck_assert_int_eq(cJSON_GetObjectItem(model, "d")->valueint, 24);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(model, "identity")));
    const cJSON *hist = cJSON_GetObjectItem(r, "history");
    ck_assert_str_eq(cJSON_GetObjectItem(hist, "backend")->valuestring,
                     s_redis.pid > 0 ? "redis" : "sqlite");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "snapshot_checksum")));   /* a database */
    cJSON_Delete(r);
    /* Make sure at least one rank was served, then look at the counters. */
    r = tu_call_json(s_main_daemon.endpoint,
                    "{\"op\":\"rank\",\"user\":\"u0002\",\"candidates\":[\"i00001\"]}");
    cJSON_Delete(r);
    r = tu_call_json(s_main_daemon.endpoint, "{\"op\":\"stats\"}");
    ck_assert(tu_ok(r));
    ck_assert_int_ge(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "ops"), "rank")->valueint, 1);
    const cJSON *lat = cJSON_GetObjectItem(r, "latency_us");
    const char *stages[] = {"parse", "history", "score", "encode", "total"};
    for (int i = 0; i < 5; i++) {
        const cJSON *st = cJSON_GetObjectItem(lat, stages[i]);
        ck_assert_msg(st != NULL, "stage %s missing", stages[i]);
        ck_assert(cJSON_GetObjectItem(st, "p99")->valuedouble >= 0);
    }
    ck_assert_int_gt((int)(cJSON_GetObjectItem(r, "rss_bytes")->valuedouble / 1024), 0);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(r, "jemalloc_allocated")));
    cJSON_Delete(r);
}
END_TEST

/* ---- overload, shutdown, reload (own daemons) ----------------------------- */

/* A rank request with n_cand candidates (ctx points to n_cand). */
static size_t s_make_rank(char *req, size_t cap, int i, void *ctx)
{
    int n_cand = *(const int *)ctx;
    size_t at = (size_t)snprintf(req, cap, "{\"op\":\"rank\",\"id\":%d,\"user\":\"u%04d\","
                                 "\"candidates\":[", i, 1 + i % 60);
    for (int c = 0; c < n_cand; c++)
        at += (size_t)snprintf(req + at, cap - at, "%s\"i%05d\"", c ? "," : "", 1 + c % 600);
    at += (size_t)snprintf(req + at, cap - at, "],\"k\":10,\"explain\":2}");
    return at;
}

static int s_dealer_flood(const char *endpoint, int n, int n_cand, int *ok, int *busy,
                          int *unavailable, void (*after_send)(void *), void *arg)
{
    tu_counts c;
    int got = tu_dealer_flood(endpoint, n, (size_t)n_cand * 12 + 256, s_make_rank, &n_cand,
                              after_send, arg, &c);
    *ok = c.ok;
    *busy = c.busy;
    *unavailable = c.unavailable;
    return got;
}

START_TEST(busy_when_queue_full)
{
    tu_daemon d;
    const char *extra[] = {"--set", "server.queue_max=2", "--workers", "1", NULL};
    tu_daemon_start(&d, s_db, "busy.sock", extra);
    int ok, busy, unavailable;
    int got = s_dealer_flood(d.endpoint, 300, 600, &ok, &busy, &unavailable, NULL, NULL);
    ck_assert_int_eq(got, 300);
    ck_assert_int_gt(busy, 0);
    ck_assert_int_gt(ok, 0);
    ck_assert_int_eq(ok + busy, 300);
    /* health is answered even when the queue is full; and the daemon recovers. */
    cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"health\"}");
    ck_assert(tu_ok(r));
    cJSON_Delete(r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

static void s_sigterm_after(void *arg)
{
    tu_daemon *d = arg;
    usleep(100000);   /* let the daemon read the burst off the socket */
    kill(d->pid, SIGTERM);
}

START_TEST(sigterm_loses_no_reply)
{
    tu_daemon d;
    const char *extra[] = {"--set", "server.queue_max=100000", NULL};
    tu_daemon_start(&d, s_db, "term.sock", extra);
    int ok, busy, unavailable;
    int got = s_dealer_flood(d.endpoint, 400, 300, &ok, &busy, &unavailable, s_sigterm_after, &d);
    ck_assert_int_eq(got, 400);
    ck_assert_int_eq(ok + unavailable, 400);
    ck_assert_int_gt(ok, 0);
    /* Already signalled: tu_daemon_stop's second SIGTERM is ignored, it waits for
     * the exit (-1 if there was none within the deadline). */
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

static void s_sigterm_now(void *arg)
{
    tu_daemon *d = arg;
    kill(d->pid, SIGTERM);
}

/* SIGTERM right behind a burst far larger than one read batch: most of it
 * is still unread in the socket (or in transit) when the last request in
 * flight finishes, and every one of those must still get `unavailable`. */
START_TEST(sigterm_burst_all_answered)
{
    tu_daemon d;
    const char *extra[] = {"--set", "server.queue_max=100000", "--workers", "1", NULL};
    tu_daemon_start(&d, s_db, "burst.sock", extra);
    int ok, busy, unavailable;
    const int n = tu_slowdown() > 1.0 ? 600 : 3000;   /* valgrind: still ~10 batches */
    int got = s_dealer_flood(d.endpoint, n, 5, &ok, &busy, &unavailable, s_sigterm_now, &d);
    ck_assert_int_eq(got, n);
    ck_assert_int_eq(ok + unavailable, n);
    ck_assert_int_gt(unavailable, 0);
    /* Already signalled: tu_daemon_stop's second SIGTERM is ignored, it waits for
     * the exit (-1 if there was none within the deadline). */
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

typedef struct load_ctx {
    const char *endpoint;
    atomic_int stop;
    int sent, failed;
    int64_t last_model;
    char last_error[256];
} load_ctx;

static void *s_load_thread(void *arg)
{
    load_ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        char *reply = tu_call(c->endpoint,
                             "{\"op\":\"rank\",\"user\":\"u0005\",\"candidates\":"
                             "[\"i00001\",\"i00002\",\"i00003\",\"i00100\"],\"k\":3,\"explain\":1}",
                             (int)(10000 * tu_slowdown()));
        c->sent++;
        cJSON *r = reply ? cJSON_Parse(reply) : NULL;
        if (!r || !tu_ok(r)) {
            c->failed++;
            snprintf(c->last_error, sizeof c->last_error, "%.200s", reply ? reply : "timeout");
        } else {
            c->last_model = (int64_t)cJSON_GetObjectItem(r, "model")->valuedouble;
        }
        cJSON_Delete(r);
        free(reply);
    }
    return NULL;
}

START_TEST(reload_under_load)
{
    char db[300];
    snprintf(db, sizeof db, "%s", tu_path("reload.db"));
    tu_make_db(db, 600, 60, 24);
    tu_daemon d;
    tu_daemon_start(&d, db, "reload.sock", NULL);
    load_ctx c = {.endpoint = d.endpoint};
    atomic_init(&c.stop, 0);
    pthread_t t[2];
    load_ctx c2 = {.endpoint = d.endpoint};
    atomic_init(&c2.stop, 0);
    pthread_create(&t[0], NULL, s_load_thread, &c);
    pthread_create(&t[1], NULL, s_load_thread, &c2);
    usleep(200000);
    int64_t v = tu_save_random_model(db, 2, 1, 0, 99);
    cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"reload\",\"id\":\"rl\"}");
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    ck_assert_str_eq(cJSON_GetObjectItem(r, "id")->valuestring, "rl");
    ck_assert_int_eq((int64_t)cJSON_GetObjectItem(r, "model")->valuedouble, v);
    cJSON_Delete(r);
    for (int i = 0; i < 3; i++) {        /* SIGHUP reloads too */
        kill(d.pid, SIGHUP);
        usleep(150000);
    }
    usleep(300000);
    atomic_store(&c.stop, 1);
    atomic_store(&c2.stop, 1);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    ck_assert_msg(c.failed == 0 && c2.failed == 0, "%d+%d of %d+%d failed: %s %s", c.failed,
                  c2.failed, c.sent, c2.sent, c.last_error, c2.last_error);
    ck_assert_int_gt(c.sent + c2.sent, 10);
    ck_assert_int_eq(c.last_model, v);

    /* The served ranking under the trained model equals the reference. */
    s_pick_candidates(30, 17);
    s_assert_rank_as_reference(d.endpoint, db, "u0009", 30, 8, 2);

    /* A model with a self-attention block: the daemon reads the context
     * events after the history, and still equals the reference. */
    int64_t v2 = tu_save_random_model(db, 2, 1, 5, 99);
    r = tu_call_json(d.endpoint, "{\"op\":\"reload\"}");
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    ck_assert_int_eq((int64_t)cJSON_GetObjectItem(r, "model")->valuedouble, v2);
    cJSON_Delete(r);
    const char *users[] = {"u0009", "u0017", "u0030"};
    for (int u = 0; u < 3; u++)
        s_assert_rank_as_reference(d.endpoint, db, users[u], 30, 8, 2);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* The info object of model version v in an info reply's "models". */
static const cJSON *s_info_model(const cJSON *info, int64_t v)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(info, "models"))
        if ((int64_t)cJSON_GetObjectItem(m, "version")->valuedouble == v)
            return m;
    ck_abort_msg("info lists no model version %lld", (long long)v);
    return NULL;
}

/* An active model whose block carries a feed-forward layer, beside the
 * same model without it (same seed: every other weight equal): info
 * reports each one's width, and the daemon's ranking -- the history and
 * the context rows it reads for the block, through the layer -- equals
 * the reference on the same database.  The layer must matter: the model
 * without it ranks the same user differently. */
START_TEST(rank_with_feed_forward)
{
    char db[300];
    snprintf(db, sizeof db, "%s", tu_path("ffn.db"));
    tu_make_db(db, 600, 60, 24);
    int64_t plain = tu_save_random_model_ffn(db, 2, 0, 5, 0, 41);
    int64_t v = tu_save_random_model_ffn(db, 2, 1, 5, 32, 41);
    char serve[64];
    snprintf(serve, sizeof serve, "models.serve=%lld", (long long)plain);
    const char *extra[] = {"--set", serve, NULL};
    tu_daemon d;
    tu_daemon_start(&d, db, "ffn.sock", extra);

    cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"info\"}");
    ck_assert(tu_ok(r));
    const cJSON *active = cJSON_GetObjectItem(r, "model");
    ck_assert_int_eq((int64_t)cJSON_GetObjectItem(active, "version")->valuedouble, v);
    ck_assert_int_eq(cJSON_GetObjectItem(active, "self_attn")->valueint, 5);
    ck_assert_int_eq(cJSON_GetObjectItem(active, "ffn")->valueint, 32);
    ck_assert_int_eq(cJSON_GetObjectItem(s_info_model(r, v), "ffn")->valueint, 32);
    const cJSON *other = s_info_model(r, plain);
    ck_assert_int_eq(cJSON_GetObjectItem(other, "self_attn")->valueint, 5);
    ck_assert_int_eq(cJSON_GetObjectItem(other, "ffn")->valueint, 0);
    ck_assert_int_eq(cJSON_GetObjectItem(r, "history_context")->valueint, 4);
    cJSON_Delete(r);

    s_pick_candidates(30, 19);
    char cj[2048], req[4096];
    s_candidates(cj, sizeof cj, s_cand, 30);
    const char *users[] = {"u0003", "u0021", "u0044"};
    int differs = 0;
    for (int u = 0; u < 3; u++) {
        snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"%s\",\"candidates\":%s,"
                 "\"k\":10,\"explain\":3}", users[u], cj);
        r = tu_call_json(d.endpoint, req);
        ck_assert_int_eq((int64_t)cJSON_GetObjectItem(r, "model")->valuedouble, v);
        ref_rank ref;
        s_reference(db, users[u], s_cand, 30, 10, 3, &ref);
        s_assert_matches(r, &ref);
        cJSON_Delete(r);
        /* The same request on the model without the layer. */
        snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"%s\",\"model\":%lld,"
                 "\"candidates\":%s,\"k\":10,\"explain\":3}", users[u], (long long)plain, cj);
        r = tu_call_json(d.endpoint, req);
        ck_assert_msg(tu_ok(r), "%s", tu_message(r));
        const cJSON *it = cJSON_GetObjectItem(r, "items")->child;
        for (int i = 0; it; it = it->next, i++)
            differs += strcmp(cJSON_GetObjectItem(it, "item")->valuestring, ref.item[i]) != 0 ||
                       fabs(cJSON_GetObjectItem(it, "score")->valuedouble - ref.score[i]) >
                           1e-3 * fmax(1.0, fabs(ref.score[i]));
        cJSON_Delete(r);
    }
    ck_assert_msg(differs > 0, "the feed-forward layer changed no score: is it applied?");
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* model.kernel forces the scoring kernels' instruction set for the whole
 * daemon: `info` names it, and a model with the block still ranks as the
 * reference does on the plain C set. */
START_TEST(kernel_forced_by_config)
{
    char db[300];
    snprintf(db, sizeof db, "%s", tu_path("kernel.db"));
    tu_make_db(db, 600, 60, 24);
    tu_save_random_model(db, 2, 1, 5, 43);
    const char *extra[] = {"--set", "model.kernel=generic", NULL};
    tu_daemon d;
    tu_daemon_start(&d, db, "kernel.sock", extra);
    cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"info\"}");
    ck_assert(tu_ok(r));
    ck_assert_str_eq(cJSON_GetObjectItem(r, "kernel")->valuestring, "generic");
    cJSON_Delete(r);
    s_pick_candidates(30, 7);
    s_assert_rank_as_reference(d.endpoint, db, "u0005", 30, 10, 3);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

START_TEST(failed_reload_keeps_serving)
{
    char db[300];
    snprintf(db, sizeof db, "%s", tu_path("badreload.db"));
    tu_make_db(db, 300, 30, 16);
    tu_daemon d;
    tu_daemon_start(&d, db, "badreload.sock", NULL);
    int64_t v = tu_save_random_model(db, 1, 1, 0, 99);
    /* Corrupt the active model's tensor behind the store's back. */
    sqlite3 *raw;
    char sql[256];
    ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
    snprintf(sql, sizeof sql,
             "UPDATE model_tensors SET data = x'00' WHERE version = %lld AND name = 'wq'",
             (long long)v);
    ck_assert_int_eq(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_changes(raw), 1);
    sqlite3_close(raw);
    cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"reload\"}");
    ck_assert_str_eq(tu_code(r), "reload_failed");
    ck_assert_msg(strstr(tu_message(r), "wq"), "reason does not name the tensor: %s",
                  tu_message(r));
    cJSON_Delete(r);
    r = tu_call_json(d.endpoint,
                    "{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[\"i00001\",\"i00002\"]}");
    ck_assert(tu_ok(r));
    ck_assert_int_eq(cJSON_GetObjectItem(r, "model")->valueint, 0);   /* still the old one */
    cJSON_Delete(r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    const char *logged[] = {"reload failed", NULL};
    ck_assert_msg(tu_log_has(d.log, logged), "the failed reload was not logged in %s", d.log);
}
END_TEST

START_TEST(metrics_line_logged)
{
    char db[300];
    snprintf(db, sizeof db, "%s", tu_path("metrics.db"));
    tu_make_db(db, 200, 20, 16);
    tu_daemon d;
    const char *extra[] = {"--set", "server.metrics_interval=0.2", NULL};
    tu_daemon_start(&d, db, "metrics.sock", extra);
    for (int i = 0; i < 5; i++) {
        cJSON *r = tu_call_json(d.endpoint,
                               "{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[\"i00001\"]}");
        cJSON_Delete(r);
    }
    usleep((useconds_t)(1500000 * tu_slowdown()));
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    const char *line[] = {"msg=metrics", "total_p99_us=", "score_p50_us=", "rss_bytes=", "qps=",
                          NULL};
    ck_assert_msg(tu_log_has(d.log, line), "no complete metrics line in %s", d.log);
}
END_TEST


/* ---- record, then rank --------------------------------------------------- */

static int s_in_because(const cJSON *reply, const char *item)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(reply, "items")) {
        const cJSON *b;
        cJSON_ArrayForEach(b, cJSON_GetObjectItem(it, "because"))
            if (!strcmp(cJSON_GetObjectItem(b, "item")->valuestring, item))
                return 1;
    }
    return 0;
}

/* A rank issued after a record was acknowledged sees the recorded events as
 * the user's newest history, on a trained model: attnd's ranking equals the
 * reference computed from the database after the record, and every
 * recorded item explains the results (explain covers every distinct history
 * item).  Before the record, none of them did. */
START_TEST(record_then_rank_on_trained_model)
{
    static ref_rank ref;
    char db[300], out[8192], args[600];
    snprintf(db, sizeof db, "%s", tu_path(s_redis.pid > 0 ? "fresh-redis.db" : "fresh.db"));
    tu_make_db(db, 600, 60, 24);
    snprintf(args, sizeof args, "train %s --epochs 2 --threads 1 --seed 3 --activate --quiet", db);
    ck_assert_msg(tu_run_program("attnctl", args, out, sizeof out) == 0, "%s", out);
    /* Three items the user has not seen, at times after all of theirs. */
    store *st;
    store_err err;
    ck_assert_int_eq(store_open(&st, db, STORE_READONLY, 2000, &err), STORE_OK);
    int64_t uid, rec_id[3];
    store_event ev[200];
    int n;
    ck_assert_int_eq(store_user_id(st, "u0005", 5, &uid, &err), STORE_OK);
    ck_assert_int_eq(store_history(st, uid, 200, ev, &n, &err), STORE_OK);
    ck_assert_int_gt(n, 0);
    int64_t ts = ev[0].ts;
    char rec[3][16];
    for (int k = 0, cand = 600; k < 3; cand--) {
        snprintf(rec[k], sizeof rec[k], "i%05d", cand);
        ck_assert_int_eq(store_item_id(st, rec[k], strlen(rec[k]), &rec_id[k], &err), STORE_OK);
        int seen = 0;
        for (int i = 0; i < n; i++)
            seen |= ev[i].item_id == rec_id[k];
        k += !seen;
    }
    store_close(&st);

    tu_daemon d;
    const char *extra[] = {"--set", "limits.max_explain=64", NULL};
    s_daemon_start(&d, db, "fresh.sock", extra);
    s_pick_candidates(40, 13);
    char cj[2048], req[4096];
    s_candidates(cj, sizeof cj, s_cand, 40);
    snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"u0005\",\"candidates\":%s,"
             "\"k\":10,\"explain\":64}", cj);
    cJSON *before = tu_call_json(d.endpoint, req);
    ck_assert_msg(tu_ok(before), "%s", tu_message(before));
    ck_assert_int_gt(cJSON_GetObjectItem(before, "model")->valueint, 0);   /* trained */
    for (int k = 0; k < 3; k++)
        ck_assert_msg(!s_in_because(before, rec[k]), "%s explains before it was recorded",
                      rec[k]);
    char rq[1024];
    snprintf(rq, sizeof rq, "{\"op\":\"record\",\"events\":["
             "{\"user\":\"u0005\",\"item\":\"%s\",\"ts\":%lld},"
             "{\"user\":\"u0005\",\"item\":\"%s\",\"ts\":%lld,\"weight\":2},"
             "{\"user\":\"u0005\",\"item\":\"%s\",\"ts\":%lld,\"kind\":\"click\"}]}",
             rec[0], (long long)ts + 1, rec[1], (long long)ts + 2, rec[2], (long long)ts + 3);
    cJSON *r = tu_call_json(d.endpoint, rq);
    ck_assert_msg(tu_ok(r) && cJSON_GetObjectItem(r, "stored")->valueint == 3, "%s",
                  tu_message(r));
    cJSON_Delete(r);

    cJSON *after = tu_call_json(d.endpoint, req);
    ck_assert_msg(tu_ok(after), "%s", tu_message(after));
    ck_assert_int_eq(cJSON_GetObjectItem(after, "history")->valueint,
                     cJSON_GetObjectItem(before, "history")->valueint + 3);
    /* The store's newest three are the recorded ones, newest first ... */
    store_hist *h = s_hist(db);
    ck_assert_int_eq(store_hist_read(h, "u0005", 5, 3, ev, &n, &err), STORE_OK);
    store_hist_close(&h);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(ev[k].item_id, rec_id[2 - k]);
    /* ... and attnd ranked with exactly that history. */
    s_reference(db, "u0005", s_cand, 40, 10, 64, &ref);
    s_assert_matches(after, &ref);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(s_in_because(after, rec[k]), "%s does not explain any result", rec[k]);
    cJSON_Delete(before);
    cJSON_Delete(after);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* A batch job survives the daemon's death: kill -9 mid-job, restart on the
 * same endpoint, and every input line still gets exactly one ok output line,
 * in input order. */
START_TEST(batch_survives_daemon_kill)
{
    char db[300], in[300], out[300], rej[300];
    snprintf(db, sizeof db, "%s", tu_path("batch.db"));
    snprintf(in, sizeof in, "%s", tu_path("batch.in"));
    snprintf(out, sizeof out, "%s", tu_path("batch.out"));
    snprintf(rej, sizeof rej, "%s", tu_path("batch.rej"));
    tu_make_db(db, 400, 50, 16);
    enum { LINES = 4000 };
    FILE *f = fopen(in, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < LINES; i++) {
        fprintf(f, "{\"op\":\"rank\",\"id\":\"L%d\",\"user\":\"u%04d\",\"candidates\":[", i,
                1 + i % 50);
        for (int c = 0; c < 200; c++)
            fprintf(f, "%s\"i%05d\"", c ? "," : "", 1 + (i + c * 7) % 400);
        fprintf(f, "],\"k\":5}\n");
    }
    fclose(f);
    tu_daemon d;
    const char *one_worker[] = {"--workers", "1", NULL};
    tu_daemon_start(&d, db, "batch.sock", one_worker);
    pid_t job = tu_spawn(tu_path("batch.log"), "attn-batch", "--endpoint", d.endpoint, "--in",
                         in, "--out", out, "--rejects", rej, "--window", "32", "--timeout",
                         "1500", "--retries", "20", "--no-progress", NULL);
    /* Let it get going, then kill the daemon hard and bring it back. */
    long size = tu_wait_size(out, 200000, 30);
    ck_assert_msg(size > 0, "attn-batch wrote nothing");
    ck_assert_msg(waitpid(job, NULL, WNOHANG) == 0, "attn-batch finished before the kill");
    kill(d.pid, SIGKILL);
    waitpid(d.pid, NULL, 0);
    usleep(300000);
    tu_daemon_start(&d, db, "batch.sock", one_worker);
    int status = tu_wait_exit(job, 120, "attn-batch");
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "attn-batch exit status %d (see %s)", status, tu_path("batch.log"));
    tu_assert_batch_out(out, "L", LINES);
    /* The kill really cost requests: the job had to retry some. */
    const char *summary[] = {"attn-batch:", " retries", NULL}, *none[] = {" 0 retries", NULL};
    ck_assert_msg(tu_log_has(tu_path("batch.log"), summary) &&
                  !tu_log_has(tu_path("batch.log"), none), "no retries reported in %s",
                  tu_path("batch.log"));
}
END_TEST

/* ---- start-up errors ------------------------------------------------------ */

static int s_run_attnd(const char *args, char *out, size_t len)
{
    return tu_run_program("attnd", args, out, len);
}

START_TEST(startup_errors)
{
    char out[16384], args[1024];   /* room for all of --print-config (4.2 KB and growing) */
    const char *conf = tu_path("bad.conf");
    const char *text = "[server]\nworkers = 2\n\n[limits]\nmax_k = lots\n";
    tu_write_file(conf, text, strlen(text));
    snprintf(args, sizeof args, "--config %s --db %s", conf, s_db);
    ck_assert_int_eq(s_run_attnd(args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "bad.conf:5") && strstr(out, "limits.max_k"), "%s", out);

    const char *conf2 = tu_path("unknown.conf");
    const char *text2 = "[server]\nwrokers = 2\n";
    tu_write_file(conf2, text2, strlen(text2));
    snprintf(args, sizeof args, "--config %s", conf2);
    ck_assert_int_eq(s_run_attnd(args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "unknown.conf:2") && strstr(out, "wrokers"), "%s", out);

    ck_assert_int_eq(s_run_attnd("--workers many", out, sizeof out), 2);
    ck_assert_msg(strstr(out, "server.workers"), "%s", out);

    snprintf(args, sizeof args, "--db %s --bind ipc://%s --set metrics.bind=",
             tu_path("missing.db"), tu_path("x.sock"));
    ck_assert_int_eq(s_run_attnd(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "missing.db"), "%s", out);

    snprintf(args, sizeof args, "--db %s --bind ipc://%s --set metrics.bind=", conf,
             tu_path("y.sock"));
    ck_assert_int_eq(s_run_attnd(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "not an SQLite database") || strstr(out, "not a database"),
                  "%s", out);

    ck_assert_int_eq(s_run_attnd("--print-config --set limits.max_k=77", out, sizeof out), 0);
    ck_assert_msg(strstr(out, "max_k = 77"), "%s", out);
}
END_TEST

/* Every key of the configuration table is documented in conf/attnd.conf,
 * and the file itself is accepted. */
START_TEST(conf_file_documents_every_key)
{
    char out[16384], args[1024];
    snprintf(args, sizeof args, "--config %s/conf/attnd.conf --print-config", ATTN_SRC_DIR);
    ck_assert_int_eq(s_run_attnd(args, out, sizeof out), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/conf/attnd.conf", ATTN_SRC_DIR);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    /* Each "key = value" line of --print-config must appear as "key =" in the
     * file (an unset path is "key =" alone). */
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == ';' || line[0] == '[' || !strchr(line, '='))
            continue;
        char key[128];
        snprintf(key, sizeof key, "\n%.*s=", (int)(strchr(line, '=') - line), line);
        ck_assert_msg(strstr(text, key) || strstr(text, key + 1) == text,
                      "conf/attnd.conf does not document '%s'", line);
    }
}
END_TEST

Suite *e2e_suite(void)
{
    Suite *s = suite_create("e2e");
    TCase *tc = tcase_create("shared daemon");
    tcase_add_unchecked_fixture(tc, s_setup_main, s_teardown_main);
    tcase_set_timeout(tc, 60 * tu_slowdown());
    tcase_add_test(tc, rank_matches_reference);
    tcase_add_test(tc, rank_anonymous_history_and_unknowns);
    tcase_add_test(tc, rank_cold_start_fallback);
    tcase_add_test(tc, rank_exclude_seen);
    tcase_add_test(tc, error_paths);
    tcase_add_test(tc, framing);
    tcase_add_test(tc, dealer_pipelining);
    tcase_add_test(tc, health_info_stats);
    tcase_add_test(tc, busy_when_queue_full);
    tcase_add_test(tc, sigterm_loses_no_reply);
    tcase_add_test(tc, sigterm_burst_all_answered);
    tcase_add_test(tc, reload_under_load);
    tcase_add_test(tc, rank_with_feed_forward);
    tcase_add_test(tc, kernel_forced_by_config);
    tcase_add_test(tc, failed_reload_keeps_serving);
    tcase_add_test(tc, metrics_line_logged);
    tcase_add_test(tc, batch_survives_daemon_kill);
    tcase_add_test(tc, record_then_rank_on_trained_model);
    tcase_add_test(tc, startup_errors);
    tcase_add_test(tc, conf_file_documents_every_key);
    suite_add_tcase(s, tc);
    /* The ranking and recording cases again, histories in Redis. */
    tc = tcase_create("redis backend");
    tcase_add_unchecked_fixture(tc, s_setup_redis, s_teardown_redis);
    tcase_set_timeout(tc, 60 * tu_slowdown());
    tcase_add_test(tc, rank_matches_reference);
    tcase_add_test(tc, rank_cold_start_fallback);
    tcase_add_test(tc, rank_exclude_seen);
    tcase_add_test(tc, health_info_stats);
    tcase_add_test(tc, record_then_rank_on_trained_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(e2e_suite());
}
