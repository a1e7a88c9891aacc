/* bench_curve.c -- what CURVE costs per request, with nothing else around it.
 *
 * One process: a ROUTER on a thread of its own answers every request with a
 * fixed reply; a DEALER keeps `window` requests in flight over tcp loopback
 * until `round-trips` replies are back.  The process's CPU time
 * (getrusage: both sockets, both threads, libzmq's I/O thread, where the
 * encryption happens) divided by the round trips is the cost of one request
 * and its reply at both ends.  Plain text and CURVE alternate for `rounds`
 * rounds; CPU time, unlike throughput, hardly moves when neighbours share
 * the cores, and the lowest round of each is reported by bench/run.
 *
 * Message sizes default to P1's end-to-end request and reply (1413 and 454
 * bytes).  The CURVE keys are made here (zmq_curve_keypair); there is no ZAP
 * handler, which attnd runs only once per connection.
 *
 * Output: one JSON line per round,
 *   {"kind":"curve","mode":"plain","round":0,"round_trips":40000,"cpu_us":..,"wall_us":..}
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zmq.h>

#include "util/clock.h"

typedef struct s_conf {
    long round_trips;
    int window, request, reply, rounds;
} s_conf;

typedef struct s_server {
    void *sock;
    size_t reply;
} s_server;

static double s_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* [id][body] in, [id][reply] out, until the context ends. */
static void *s_serve(void *arg)
{
    s_server *sv = arg;
    char *reply = calloc(1, sv->reply);
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    while (reply && zmq_msg_recv(&id, sv->sock, 0) >= 0 && zmq_msg_recv(&body, sv->sock, 0) >= 0)
        if (zmq_msg_send(&id, sv->sock, ZMQ_SNDMORE) < 0 ||
            zmq_send(sv->sock, reply, sv->reply, 0) < 0)
            break;
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    free(reply);
    zmq_close(sv->sock);
    return NULL;
}

/* One round: -1 on a ZeroMQ failure (said). */
static int s_round(const s_conf *c, int curve, int round)
{
    void *ctx = zmq_ctx_new();
    s_server sv = {.sock = zmq_socket(ctx, ZMQ_ROUTER), .reply = (size_t)c->reply};
    void *cl = zmq_socket(ctx, ZMQ_DEALER);
    char spub[41], ssec[41], cpub[41], csec[41], ep[256];
    size_t eplen = sizeof ep;
    int one = 1, zero = 0, hwm = 0;
    zmq_setsockopt(cl, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(cl, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sv.sock, ZMQ_LINGER, &zero, sizeof zero);
    if (curve && (zmq_curve_keypair(spub, ssec) || zmq_curve_keypair(cpub, csec) ||
                  zmq_setsockopt(sv.sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
                  zmq_setsockopt(sv.sock, ZMQ_CURVE_SECRETKEY, ssec, 41) ||
                  zmq_setsockopt(cl, ZMQ_CURVE_SERVERKEY, spub, 41) ||
                  zmq_setsockopt(cl, ZMQ_CURVE_PUBLICKEY, cpub, 41) ||
                  zmq_setsockopt(cl, ZMQ_CURVE_SECRETKEY, csec, 41))) {
        fprintf(stderr, "bench_curve: CURVE: %s\n", zmq_strerror(errno));
        return -1;
    }
    if (zmq_bind(sv.sock, "tcp://127.0.0.1:*") ||
        zmq_getsockopt(sv.sock, ZMQ_LAST_ENDPOINT, ep, &eplen) || zmq_connect(cl, ep)) {
        fprintf(stderr, "bench_curve: %s\n", zmq_strerror(errno));
        return -1;
    }
    pthread_t t;
    pthread_create(&t, NULL, s_serve, &sv);
    char *req = calloc(1, (size_t)c->request), buf[64];
    /* The handshake (and the thread's start) outside the timed window. */
    zmq_send(cl, req, (size_t)c->request, 0);
    zmq_recv(cl, buf, sizeof buf, 0);
    double cpu0 = s_cpu_us();
    uint64_t t0 = util_now_ns();
    long sent = 0, got = 0;
    while (got < c->round_trips) {
        while (sent < c->round_trips && sent - got < c->window) {
            zmq_send(cl, req, (size_t)c->request, 0);
            sent++;
        }
        if (zmq_recv(cl, buf, sizeof buf, 0) < 0)
            break;
        got++;
    }
    double cpu = s_cpu_us() - cpu0, wall = (double)(util_now_ns() - t0) / 1e3;
    printf("{\"kind\":\"curve\",\"mode\":\"%s\",\"round\":%d,\"round_trips\":%ld,"
           "\"request_bytes\":%d,\"reply_bytes\":%d,\"cpu_us\":%.0f,\"wall_us\":%.0f}\n",
           curve ? "curve" : "plain", round, got, c->request, c->reply, cpu, wall);
    fflush(stdout);
    free(req);
    zmq_close(cl);
    zmq_ctx_term(ctx);   /* ends the server thread's receive */
    pthread_join(t, NULL);
    return got == c->round_trips ? 0 : -1;
}

int main(int argc, char **argv)
{
    s_conf c = {.round_trips = 40000, .window = 16, .request = 1413, .reply = 454, .rounds = 3};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--round-trips") && i + 1 < argc)
            c.round_trips = atol(argv[++i]);
        else if (!strcmp(argv[i], "--window") && i + 1 < argc)
            c.window = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--request") && i + 1 < argc)
            c.request = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reply") && i + 1 < argc)
            c.reply = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            c.rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_curve [--round-trips N] [--window W] [--request B] "
                            "[--reply B] [--rounds R]\n");
            return 2;
        }
    }
    if (c.round_trips < 1 || c.window < 1 || c.request < 1 || c.reply < 1 || c.rounds < 1) {
        fprintf(stderr, "bench_curve: every value must be at least 1\n");
        return 2;
    }
    if (!zmq_has("curve")) {
        fprintf(stderr, "bench_curve: this libzmq has no CURVE\n");
        return 1;
    }
    for (int r = 0; r < c.rounds; r++)
        for (int curve = 0; curve < 2; curve++)
            if (s_round(&c, curve, r))
                return 1;
    return 0;
}
