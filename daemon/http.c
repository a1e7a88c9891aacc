/* http.c -- see http.h.
 *
 * libmicrohttpd runs one internal thread (epoll on Linux) that accepts,
 * parses and answers every connection; our handler runs on it.  Each answer
 * is complete when the handler returns: /metrics renders into a memory
 * stream handed to MHD, which writes it out without blocking, so a scraper
 * that reads slowly holds a connection slot, not the thread.  The thread
 * reuses one metrics view (only it renders), collected without the fine
 * histograms: it reads each worker's ~5 KiB of counts word by word with
 * relaxed atomic loads and never merges the 220 KiB of quantile buckets
 * (under the worker's lock) that `stats` needs.
 */
#include "daemon/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/log.h"
#include "daemon/prom.h"
#include "util/clock.h"

struct srv_http {
    struct MHD_Daemon *d;
    srv_state *st;
    srv_metrics_view *view;   /* the MHD thread's, reused by every scrape */
    int port;                 /* bound */
};

/* ---- answers ---------------------------------------------------------------- */

/* Queue body (the response takes it; free is called on it once sent). */
static enum MHD_Result s_send(struct MHD_Connection *conn, unsigned status, char *body,
                              size_t len, const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (!r) {
        free(body);
        return MHD_NO;   /* out of memory: MHD closes the connection */
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result s_text(struct MHD_Connection *conn, unsigned status, const char *fmt,
                              const char *arg)
{
    char *body = NULL;
    int n = asprintf(&body, fmt, arg);
    if (n < 0)
        return MHD_NO;
    return s_send(conn, status, body, (size_t)n, "text/plain; charset=utf-8");
}

static enum MHD_Result s_metrics(srv_http *h, struct MHD_Connection *conn)
{
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (!f)
        return MHD_NO;
    srv_state_collect(h->st, h->view, 0);
    int rc = srv_prom_write(h->view, f);
    if (fclose(f) != 0 || rc != 0) {
        free(body);
        return s_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s\n", "out of memory");
    }
    return s_send(conn, MHD_HTTP_OK, body, len, SRV_PROM_CONTENT_TYPE);
}

enum { S_NONE, S_METRICS, S_HEALTHZ, S_READYZ };

static int s_path(const char *url)
{
    if (!strcmp(url, "/metrics"))
        return S_METRICS;
    if (!strcmp(url, "/healthz"))
        return S_HEALTHZ;
    if (!strcmp(url, "/readyz"))
        return S_READYZ;
    return S_NONE;
}

/* Called once per request, before any body: every answer is queued at
 * once (a body sent along is not read; MHD closes that connection). */
static enum MHD_Result s_answer(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    srv_http *h = cls;
    int path = s_path(url);
    if (path == S_NONE)
        return s_text(conn, MHD_HTTP_NOT_FOUND, "not found: %s serves /metrics, /healthz and "
                      "/readyz\n", "attnd");
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return s_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "%s: GET or HEAD only\n", url);
    if (path == S_METRICS)
        return s_metrics(h, conn);
    if (path == S_HEALTHZ)
        return s_text(conn, MHD_HTTP_OK, "%s\n", "ok");
    const char *why = srv_state_unready(h->st);
    if (why)
        return s_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n", why);
    return s_text(conn, MHD_HTTP_OK, "%s\n", "ready");
}

/* MHD's own complaints (a client's broken or oversized request, a refused
 * connection) as log lines: at most one per 10 s with the count of those
 * left out, so that a hostile client cannot flood the log through them. */
static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static atomic_uint_fast64_t next_ns, skipped;
    uint64_t now = util_now_ns();
    if (now < atomic_load(&next_ns)) {
        atomic_fetch_add(&skipped, 1);
        return;
    }
    atomic_store(&next_ns, now + 10000000000ull);
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\n')
            *p = *p == '"' ? '\'' : ' ';
    srv_log(SRV_WARN, "msg=\"http: %s\" earlier_ones_not_logged=%llu", msg,
            (unsigned long long)atomic_exchange(&skipped, 0));
}

/* ---- start and stop --------------------------------------------------------- */

static int s_resolve(const char *bind, struct sockaddr_storage *ss, char *why, size_t why_len)
{
    char host[256], port[8];
    int p;
    if (cfg_hostport_split(bind, host, sizeof host, &p) != 0) {
        snprintf(why, why_len, "metrics.bind '%s': not host:port", bind);
        return -1;
    }
    snprintf(port, sizeof port, "%d", p);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(why, why_len, "metrics.bind '%s': %s", bind, gai_strerror(rc));
        return -1;
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

srv_http *srv_http_start(srv_state *st, char *why, size_t why_len)
{
    const srv_config *cfg = &st->cfg;
    struct sockaddr_storage ss;
    if (s_resolve(cfg->metrics_bind, &ss, why, why_len) != 0)
        return NULL;
    srv_http *h = calloc(1, sizeof *h);
    if (!h || !(h->view = malloc(sizeof *h->view))) {
        snprintf(why, why_len, "out of memory for the HTTP listener");
        free(h);
        return NULL;
    }
    h->st = st;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    errno = 0;
    /* The logger first: MHD logs through it from the next option on. */
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, s_answer, h, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->metrics_max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->metrics_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->metrics_max_request_bytes,
        MHD_OPTION_END);
    if (!h->d) {
        snprintf(why, why_len, "metrics.bind '%s': cannot listen: %s", cfg->metrics_bind,
                 errno ? strerror(errno) : "see the log line before");
        srv_http_stop(&h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    return h;
}

int srv_http_port(const srv_http *h)
{
    return h->port;
}

void srv_http_stop(srv_http **h_p)
{
    srv_http *h = *h_p;
    if (!h)
        return;
    *h_p = NULL;
    if (h->d)
        MHD_stop_daemon(h->d);
    free(h->view);
    free(h);
}
