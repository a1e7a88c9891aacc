/* cli.c -- status codes, the clock, endpoint lists, and the two socket
 * primitives every client builds on: send with a deadline, receive with a
 * deadline.
 *
 * Both primitives use non-blocking ZeroMQ calls plus zmq_poll, never a
 * blocking send or receive: a blocking call on a socket whose peer died waits
 * forever, and "never left hanging" is the one promise the clients make.
 */
#include "clients/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "util/clock.h"

const char *cli_strerror(int code)
{
    switch (code) {
    case CLI_OK: return "ok";
    case CLI_TIMEOUT: return "timeout";
    case CLI_AGAIN: return "again";
    case CLI_FULL: return "full";
    case CLI_ZMQ: return "zmq";
    case CLI_NOMEM: return "nomem";
    case CLI_INVAL: return "inval";
    case CLI_IO: return "io";
    case CLI_PROTO: return "proto";
    case CLI_STOPPED: return "stopped";
    case CLI_FAILED: return "failed";
    }
    return "unknown";
}

int cli_fail(cli_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int64_t cli_now_us(void)
{
    return (int64_t)(util_now_ns() / 1000);
}

/* ---- endpoints ----------------------------------------------------------- */

static int s_parse_list(const char *list, cli_endpoints *out, cli_err *err)
{
    out->n = 0;
    if (!list || !*list)
        return cli_fail(err, CLI_INVAL, "no endpoint given");
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        /* Tolerate spaces after commas: "a, b" is what people type. */
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0)
            return cli_fail(err, CLI_INVAL, "empty entry in '%s'", list);
        if (out->n == CLI_MAX_ENDPOINTS)
            return cli_fail(err, CLI_INVAL, "more than %d endpoints",
                            CLI_MAX_ENDPOINTS);
        if (n >= sizeof out->v[0])
            return cli_fail(err, CLI_INVAL, "'%.*s…' is too long", 40, p);
        memcpy(out->v[out->n], p, n);
        out->v[out->n][n] = '\0';
        const char *sep = strstr(out->v[out->n], "://");
        if (!sep || sep == out->v[out->n] || !sep[3])
            return cli_fail(err, CLI_INVAL,
                            "'%s' is not transport://address "
                            "(e.g. tcp://127.0.0.1:5555 or ipc:///run/attnd.sock)",
                            out->v[out->n]);
        out->n++;
        if (!end)
            break;
        p = end + 1;
    }
    return CLI_OK;
}

/* FILE's text as a comma list: lines joined, comments and blanks dropped. */
static int s_read_file(const char *path, char *list, size_t cap, int64_t *mtime_ns,
                       cli_err *err)
{
    FILE *f = fopen(path, "r");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0) {
        if (f)
            fclose(f);
        return cli_fail(err, CLI_IO, "%s: %s", path, strerror(errno));
    }
    *mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    char line[512];
    size_t at = 0;
    list[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "#\r\n")] = '\0';
        for (char *tok = strtok(line, ", \t"); tok; tok = strtok(NULL, ", \t")) {
            int w = snprintf(list + at, cap - at, "%s%s", at ? "," : "", tok);
            if (w < 0 || (size_t)w >= cap - at) {
                fclose(f);
                return cli_fail(err, CLI_INVAL, "%s: too many endpoints", path);
            }
            at += (size_t)w;
        }
    }
    fclose(f);
    if (!at)
        return cli_fail(err, CLI_INVAL, "%s: no endpoint in it", path);
    return CLI_OK;
}

int cli_endpoints_parse(const char *list, cli_endpoints *out, cli_err *err)
{
    memset(out, 0, sizeof *out);
    if (!list || list[0] != '@')
        return s_parse_list(list, out, err);
    if (strlen(list + 1) >= sizeof out->file)
        return cli_fail(err, CLI_INVAL, "'%.40s…' is too long", list);
    char text[CLI_MAX_ENDPOINTS * 260];
    int rc = s_read_file(list + 1, text, sizeof text, &out->file_mtime_ns, err);
    if (rc == CLI_OK)
        rc = s_parse_list(text, out, err);
    if (rc == CLI_OK)
        snprintf(out->file, sizeof out->file, "%s", list + 1);
    return rc;
}

int cli_endpoints_refresh(cli_endpoints *eps, cli_err *err)
{
    if (!eps->file[0])
        return 0;
    struct stat sb;
    if (stat(eps->file, &sb) != 0) {
        cli_fail(err, CLI_IO, "%s: %s", eps->file, strerror(errno));
        return -1;
    }
    if ((int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec == eps->file_mtime_ns)
        return 0;
    char text[CLI_MAX_ENDPOINTS * 260];
    cli_endpoints next = *eps;
    if (s_read_file(eps->file, text, sizeof text, &next.file_mtime_ns, err) != CLI_OK ||
        s_parse_list(text, &next, err) != CLI_OK)
        return -1;
    int same = next.n == eps->n;
    for (int i = 0; same && i < next.n; i++)
        same = !strcmp(next.v[i], eps->v[i]);
    *eps = next;
    return same ? 0 : 1;
}

const char *cli_endpoints_str(const cli_endpoints *eps, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < eps->n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", eps->v[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

/* ---- send and receive with deadlines ----------------------------------------- */

/* Milliseconds left until deadline_us, for zmq_poll: 0 when past, and never
 * more than a second so that callers' signal flags are looked at. */
static long s_poll_ms(int64_t deadline_us)
{
    int64_t left = deadline_us - cli_now_us();
    if (left <= 0)
        return 0;
    left = (left + 999) / 1000;
    return left > 1000 ? 1000 : (long)left;
}

/* Wait for events on sock until deadline_us.  1 when ready, 0 at the
 * deadline, -1 on EINTR (errno kept), -2 on another failure. */
static int s_wait(void *sock, short events, int64_t deadline_us)
{
    for (;;) {
        zmq_pollitem_t item = {.socket = sock, .events = events};
        long ms = s_poll_ms(deadline_us);
        int rc = zmq_poll(&item, 1, ms);
        if (rc < 0)
            return errno == EINTR ? -1 : -2;
        if (rc > 0 && (item.revents & events))
            return 1;
        if (ms == 0 || cli_now_us() >= deadline_us)
            return 0;
    }
}

int cli_send(void *sock, int delim, const void *body, size_t len, int64_t deadline_us,
             cli_err *err)
{
    for (;;) {
        int rc = delim ? zmq_send(sock, "", 0, ZMQ_DONTWAIT | ZMQ_SNDMORE)
                       : zmq_send(sock, body, len, ZMQ_DONTWAIT);
        if (rc >= 0 && delim) {
            /* The delimiter and the body are one message.  If the peer's pipe
             * goes away between the two frames, libzmq drops the part already
             * written and fails the body with EAGAIN: nothing was sent, so
             * the whole message is simply tried again. */
            rc = zmq_send(sock, body, len, ZMQ_DONTWAIT);
        }
        if (rc >= 0)
            return CLI_OK;
        if (errno != EAGAIN && errno != EINTR)
            return cli_fail(err, CLI_ZMQ, "send: %s", zmq_strerror(errno));
        int w = s_wait(sock, ZMQ_POLLOUT, deadline_us);
        if (w == 0)
            return cli_fail(err, CLI_TIMEOUT, "send: no peer took the request in time");
        if (w == -2)
            return cli_fail(err, CLI_ZMQ, "poll: %s", zmq_strerror(errno));
    }
}

int cli_recv(void *sock, void *msgp, int64_t deadline_us, cli_err *err)
{
    zmq_msg_t *msg = msgp;
    int w = s_wait(sock, ZMQ_POLLIN, deadline_us);
    if (w == 0)
        return cli_fail(err, CLI_TIMEOUT, "receive: no reply in time");
    if (w == -1)
        return cli_fail(err, CLI_AGAIN, "receive: interrupted");
    if (w == -2)
        return cli_fail(err, CLI_ZMQ, "poll: %s", zmq_strerror(errno));
    if (zmq_msg_recv(msg, sock, ZMQ_DONTWAIT) < 0)
        return cli_fail(err, errno == EAGAIN ? CLI_AGAIN : CLI_ZMQ, "receive: %s",
                        zmq_strerror(errno));
    /* DEALER replies start with the empty delimiter REQ would have eaten. */
    if (zmq_msg_size(msg) == 0 && zmq_msg_more(msg)) {
        if (zmq_msg_recv(msg, sock, ZMQ_DONTWAIT) < 0)
            return cli_fail(err, CLI_ZMQ, "receive: %s", zmq_strerror(errno));
    }
    /* Extra frames are not protocol v1; drop them so the next receive starts
     * at a message boundary. */
    if (zmq_msg_more(msg)) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        int more = 1;
        while (more && zmq_msg_recv(&extra, sock, ZMQ_DONTWAIT) >= 0)
            more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
    }
    return CLI_OK;
}
