/* peer.c -- the two clients of the soak (tools/soak) that no real client
 * program plays: one that never reads, and one that sends nothing but
 * mistakes.
 *
 *   soak-peer slow ENDPOINT SECONDS RATE   heavy rank requests, RATE a
 *       second, over a DEALER whose replies are never read: what attnd
 *       holds for it is bounded by server.peer_buffer_bytes
 *   soak-peer bad ENDPOINT SECONDS MAX     ten kinds of bad input in turn,
 *       each answered before the next is sent; every reply must carry the
 *       error code the protocol gives that mistake (MAX: the daemon's
 *       limits.max_message_bytes, which one of them exceeds by half)
 *
 * Both print one JSON line of counts on stdout; `bad` exits 1 when any
 * message went unanswered or got another code.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "util/clock.h"

static double s_now(void)
{
    return (double)util_now_ns() / 1e9;
}

static void *s_dealer(void *ctx, const char *endpoint, int rcvhwm)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = 10000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_connect(s, endpoint);
    return s;
}

/* A rank request that costs attnd a ~0.5 MB reply. */
static char *s_heavy(int n, size_t *len)
{
    size_t cap = (size_t)n * 12 + 256;
    char *req = malloc(cap);
    size_t at = (size_t)snprintf(req, cap, "{\"op\":\"rank\",\"user\":\"u0001\",\"candidates\":[");
    for (int c = 0; c < n; c++)
        at += (size_t)snprintf(req + at, cap - at, "%s\"i%05d\"", c ? "," : "", 1 + c);
    at += (size_t)snprintf(req + at, cap - at, "],\"k\":1000,\"explain\":10,\"titles\":true}");
    *len = at;
    return req;
}

static int s_slow(void *ctx, const char *endpoint, double seconds, double rate)
{
    void *s = s_dealer(ctx, endpoint, 1);
    size_t len;
    char *req = s_heavy(2000, &len);
    long sent = 0, refused = 0;
    double end = s_now() + seconds, next = s_now();
    while (s_now() < end) {
        if (s_now() < next) {
            usleep(10000);
            continue;
        }
        next += 1.0 / rate;
        if (zmq_send(s, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
            zmq_send(s, req, len, ZMQ_DONTWAIT) >= 0)
            sent++;
        else
            refused++;   /* its connection is full: attnd stopped reading it */
    }
    printf("{\"mode\":\"slow\",\"sent\":%ld,\"refused\":%ld}\n", sent, refused);
    free(req);
    zmq_close(s);
    return 0;
}

/* One mistake and the code attnd must answer it with.  extra: a third
 * frame (bad_frame); big: pad the message past limits.max_message_bytes. */
typedef struct s_bad {
    const char *msg;
    const char *code;
    int extra, big;
} s_bad;

static const s_bad s_mistakes[] = {
    {"{\"op\":\"rank\",\"id\":\"b1\",\"candidates\":\"x\",\"user\":\"u0001\"}", "bad_request", 0, 0},
    {"not json at all", "bad_json", 0, 0},
    {"\xff\xfe{}", "bad_json", 0, 0},
    {"{\"op\":\"nope\",\"id\":\"b4\"}", "unknown_op", 0, 0},
    {"{\"op\":\"rank\",\"id\":\"b5\",\"user\":\"u\\u0000x\",\"candidates\":[\"i00001\"]}",
     "bad_json", 0, 0},
    {"{\"op\":\"health\",\"id\":\"b6\"}", "bad_frame", 1, 0},
    {"{\"op\":\"health\",\"id\":\"b7\",\"pad\":\"", "too_large", 0, 1},
    {"[1,2,3]", "bad_json", 0, 0},
    {"{\"op\":\"rank\",\"id\":\"b9\",\"history\":[\"i00001\"],\"weights\":[1e-46],"
     "\"candidates\":[\"i00001\"]}", "bad_request", 0, 0},
    {"{\"op\":\"health\"} trailing", "bad_json", 0, 0},
};
#define S_NMISTAKES (sizeof s_mistakes / sizeof s_mistakes[0])

/* Send mistake m; 0 when its reply came with the right code. */
static int s_one_bad(void *s, const s_bad *m, size_t max, char *buf, size_t cap)
{
    size_t len = strlen(m->msg);
    char *big = NULL;
    const char *body = m->msg;
    if (m->big) {
        len = max + max / 2;   /* too large, but not so large that libzmq hangs up */
        big = malloc(len);
        memset(big, 'a', len);
        memcpy(big, m->msg, strlen(m->msg));
        memcpy(big + len - 2, "\"}", 2);
        body = big;
    }
    int ok = zmq_send(s, "", 0, ZMQ_SNDMORE) >= 0 &&
             zmq_send(s, body, len, m->extra ? ZMQ_SNDMORE : 0) >= 0 &&
             (!m->extra || zmq_send(s, "x", 1, 0) >= 0);
    free(big);
    int n = ok && zmq_recv(s, buf, cap, 0) >= 0 ? zmq_recv(s, buf, cap - 1, 0) : -1;
    if (n < 0)
        return -1;   /* unanswered */
    buf[n < (int)cap - 1 ? n : (int)cap - 1] = 0;
    cJSON *r = cJSON_Parse(buf);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    int right = cJSON_IsString(code) && !strcmp(code->valuestring, m->code);
    cJSON_Delete(r);
    return right ? 0 : -2;
}

static int s_bad_loop(void *ctx, const char *endpoint, double seconds, size_t max)
{
    void *s = s_dealer(ctx, endpoint, 1000);
    static char buf[1 << 16];
    long sent = 0, unanswered = 0, wrong = 0;
    double end = s_now() + seconds;
    for (size_t i = 0; s_now() < end; i++) {
        const s_bad *m = &s_mistakes[i % S_NMISTAKES];
        int rc = s_one_bad(s, m, max, buf, sizeof buf);
        sent++;
        if (rc == -1) {
            unanswered++;
            /* The socket may hold a late reply: start over on a new one. */
            zmq_close(s);
            s = s_dealer(ctx, endpoint, 1000);
        } else if (rc == -2) {
            wrong++;
            fprintf(stderr, "soak-peer: '%.60s' answered %.300s (expected %s)\n", m->msg, buf,
                    m->code);
        }
        usleep(50000);
    }
    printf("{\"mode\":\"bad\",\"sent\":%ld,\"unanswered\":%ld,\"wrong_code\":%ld}\n", sent,
           unanswered, wrong);
    zmq_close(s);
    return unanswered || wrong ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[1], "slow") && strcmp(argv[1], "bad"))) {
        fprintf(stderr, "usage: soak-peer slow ENDPOINT SECONDS RATE\n"
                        "       soak-peer bad ENDPOINT SECONDS MAX_MESSAGE_BYTES\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    double seconds = atof(argv[3]);
    int rc = !strcmp(argv[1], "slow") ? s_slow(ctx, argv[2], seconds, atof(argv[4]))
                                      : s_bad_loop(ctx, argv[2], seconds,
                                                   (size_t)atol(argv[4]));
    zmq_ctx_term(ctx);
    return rc;
}
