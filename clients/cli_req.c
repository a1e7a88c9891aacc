/* cli_req.c -- the Lazy Pirate REQ client: one request at a time, reliable
 * against a server that dies or restarts.
 *
 * A REQ socket enforces send/receive alternation, so once a request is lost
 * (the server died with it) the socket can neither receive nor send again.
 * The cure is the Lazy Pirate: poll for the reply with a timeout; on timeout
 * close the socket with LINGER 0 (dropping whatever it still queues), open a
 * fresh one and resend, giving up after N retries.  A closed-and-reopened
 * socket also guarantees that a late reply to an abandoned attempt can never
 * be mistaken for the reply to the next request.
 *
 * With several endpoints each reopen moves to the next one in the list, so a
 * dead daemon costs one timeout, not every attempt.
 */
#include "clients/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct cli_req {
    void *ctx;                      /* borrowed ZeroMQ context */
    cli_endpoints eps;              /* where to send, in failover order */
    void *sock;                     /* REQ socket, or NULL until the next attempt */
    int cur;                        /* endpoint the socket is (or will be) connected to */
    int answered;                   /* endpoint that answered the last call */
    int reconnects;                 /* sockets closed after a timeout and reopened */
};

static void s_close(cli_req *self)
{
    if (self->sock) {
        int zero = 0;
        /* LINGER 0: the unanswered request must not keep the socket (and
         * zmq_ctx_term at exit) waiting for a server that is gone. */
        zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(self->sock);
        self->sock = NULL;
    }
}

static int s_open(cli_req *self, cli_err *err)
{
    self->sock = zmq_socket(self->ctx, ZMQ_REQ);
    if (!self->sock)
        return cli_fail(err, CLI_ZMQ, "socket: %s", zmq_strerror(errno));
    int zero = 0, ivl = 100;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    /* Reconnect quickly and at a steady pace: a restarted daemon should be
     * found within ~100 ms, and loopback connects are cheap. */
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    int rc = cli_curve_apply(self->sock, &self->eps.curve, err);
    if (rc != CLI_OK) {
        s_close(self);
        return rc;
    }
    const char *ep = self->eps.v[self->cur];
    if (zmq_connect(self->sock, ep) != 0) {
        int e = errno;
        s_close(self);
        return cli_fail(err, CLI_ZMQ, "cannot connect to %s: %s", ep, zmq_strerror(e));
    }
    return CLI_OK;
}

cli_req *cli_req_new(void *zmq_ctx, const cli_endpoints *eps, cli_err *err)
{
    if (!zmq_ctx || !eps || eps->n < 1) {
        cli_fail(err, CLI_INVAL, "cli_req_new: no context or no endpoint");
        return NULL;
    }
    cli_req *self = calloc(1, sizeof *self);
    if (!self) {
        cli_fail(err, CLI_NOMEM, "out of memory");
        return NULL;
    }
    self->ctx = zmq_ctx;
    self->eps = *eps;
    /* Connect now so that a malformed endpoint is reported at once, before
     * anyone waits for a timeout. */
    if (s_open(self, err) != CLI_OK) {
        free(self);
        return NULL;
    }
    return self;
}

void cli_req_destroy(cli_req **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_close(*self_p);
    free(*self_p);
    *self_p = NULL;
}

int cli_req_reconnects(const cli_req *self)
{
    return self->reconnects;
}

const char *cli_req_endpoint(const cli_req *self)
{
    return self->eps.v[self->answered];
}

/* One attempt on the current socket: send, then wait for the reply until
 * deadline_us.  CLI_OK with msg filled, CLI_TIMEOUT, CLI_ZMQ. */
static int s_attempt(cli_req *self, const char *req, size_t len, int64_t deadline_us,
                     zmq_msg_t *msg, cli_err *err)
{
    int rc = cli_send(self->sock, 0, req, len, deadline_us, err);
    if (rc != CLI_OK)
        return rc;
    do
        rc = cli_recv(self->sock, msg, deadline_us, err);
    while (rc == CLI_AGAIN);
    return rc;
}

int cli_req_call(cli_req *self, const char *req, size_t len, int timeout_ms, int retries,
                 char **reply, size_t *len_out, cli_err *err)
{
    *reply = NULL;
    if (timeout_ms < 1 || retries < 0)
        return cli_fail(err, CLI_INVAL, "cli_req_call: timeout %d ms, retries %d", timeout_ms,
                        retries);
    for (int attempt = 0; attempt <= retries; attempt++) {
        if (!self->sock) {
            int rc = s_open(self, err);
            if (rc != CLI_OK)
                return rc;
        }
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        int64_t deadline = cli_now_us() + (int64_t)timeout_ms * 1000;
        int rc = s_attempt(self, req, len, deadline, &msg, err);
        if (rc == CLI_OK) {
            size_t n = zmq_msg_size(&msg);
            char *out = malloc(n + 1);
            if (!out) {
                zmq_msg_close(&msg);
                return cli_fail(err, CLI_NOMEM, "out of memory");
            }
            memcpy(out, zmq_msg_data(&msg), n);
            out[n] = '\0';
            zmq_msg_close(&msg);
            *reply = out;
            if (len_out)
                *len_out = n;
            self->answered = self->cur;
            return CLI_OK;
        }
        zmq_msg_close(&msg);
        if (rc == CLI_STOPPED || rc == CLI_ZMQ) {
            s_close(self);   /* the socket may hold the request: start clean */
            return rc;
        }
        /* Timed out: this socket is stuck waiting for a reply that may never
         * come.  Throw it away and try again (on the next endpoint). */
        s_close(self);
        self->reconnects++;
        self->cur = (self->cur + 1) % self->eps.n;
    }
    char eps[1024];
    return cli_fail(err, CLI_TIMEOUT, "no reply from %s within %d ms (%d attempt%s)",
                    cli_endpoints_str(&self->eps, eps, sizeof eps), timeout_ms, retries + 1,
                    retries ? "s" : "");
}

/* ---- probe ---------------------------------------------------------------- */

/* One call on a fresh single-endpoint client; the reply parsed, or NULL. */
static int s_ask(void *ctx, const cli_endpoints *eps, int i, const char *req, int timeout_ms,
                 int retries, cJSON **out, cli_err *err)
{
    const char *ep = eps->v[i];
    cli_endpoints one = {.n = 1, .curve = eps->curve};
    snprintf(one.v[0], sizeof one.v[0], "%s", ep);
    cli_req *r = cli_req_new(ctx, &one, err);
    if (!r)
        return err ? err->code : CLI_ZMQ;
    char *text = NULL;
    size_t len = 0;
    int rc = cli_req_call(r, req, strlen(req), timeout_ms, retries, &text, &len, err);
    cli_req_destroy(&r);
    if (rc != CLI_OK)
        return rc;
    *out = cli_json_object(text, len);
    free(text);
    if (!*out)
        return cli_fail(err, CLI_PROTO, "%s answered with something that is not a JSON object",
                        ep);
    return CLI_OK;
}

int cli_probe(void *zmq_ctx, const cli_endpoints *eps, int timeout_ms, int retries,
              cJSON **info, cli_err *err)
{
    if (info)
        *info = NULL;
    for (int i = 0; i < eps->n; i++) {
        cJSON *health = NULL;
        int rc = s_ask(zmq_ctx, eps, i, "{\"op\":\"health\"}", timeout_ms, retries, &health,
                       err);
        cJSON_Delete(health);
        if (rc != CLI_OK)
            return rc;
    }
    if (info) {
        cJSON *reply = NULL;
        /* info is a nicety (limits); a daemon that can't give it is still usable. */
        if (s_ask(zmq_ctx, eps, 0, "{\"op\":\"info\"}", timeout_ms, retries, &reply, NULL) ==
                CLI_OK &&
            cli_reply_status(reply, NULL, NULL) == 1)
            *info = reply;
        else
            cJSON_Delete(reply);
    }
    return CLI_OK;
}
