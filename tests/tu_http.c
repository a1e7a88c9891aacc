/* tu_http.c -- see tu_http.h. */
#include "tests/tu_http.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"

int tu_http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Everything the server sends until it closes, or NULL at the deadline. */
static char *s_read_all(int fd, uint64_t deadline, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        uint64_t now = util_now_ns();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
            break;
        if (n + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got <= 0) {
            buf[n] = 0;
            *len = n;
            return buf;
        }
        n += (size_t)got;
    }
    free(buf);
    return NULL;
}

int tu_http_raw(int port, const char *request, size_t len, char **body, int timeout_ms)
{
    if (body)
        *body = NULL;
    int fd = tu_http_connect(port);
    if (fd < 0)
        return -1;
    uint64_t deadline = util_now_ns() + (uint64_t)timeout_ms * 1000000u;
    size_t n = 0;
    char *reply = NULL;
    if (send(fd, request, len, MSG_NOSIGNAL) == (ssize_t)len)
        reply = s_read_all(fd, deadline, &n);
    close(fd);
    int status = -1;
    if (reply && sscanf(reply, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    const char *end = reply ? strstr(reply, "\r\n\r\n") : NULL;
    if (body && end)
        *body = strdup(end + 4);
    free(reply);
    return status;
}

int tu_http(int port, const char *method, const char *path, char **body, int timeout_ms)
{
    char req[512];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    return tu_http_raw(port, req, (size_t)n, body, timeout_ms);
}

int tu_http_get(int port, const char *path, char **body, int timeout_ms)
{
    return tu_http(port, "GET", path, body, timeout_ms);
}

double tu_prom_value(const char *scrape, const char *series)
{
    size_t len = strlen(series);
    for (const char *line = scrape; line && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (!strncmp(line, series, len) && line[len] == ' ')
            return strtod(line + len + 1, NULL);
    }
    return NAN;
}
