/* log.c -- see log.h. */
#include "daemon/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int s_min_level = SRV_INFO;
static const char *s_names[] = {"debug", "info", "warn", "error"};

int srv_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, s_names[i])) {
            s_min_level = i;
            return 0;
        }
    return -1;
}

void srv_log(int level, const char *fmt, ...)
{
    if (level < s_min_level)
        return;
    char line[4096];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - n, ".%03ldZ level=%s ", now.tv_nsec / 1000000,
                  s_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int body = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    n = body < 0 ? n : n + body;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* stderr may be a pipe shared with other processes: one write per line. */
    ssize_t rc = write(STDERR_FILENO, line, (size_t)n);
    (void)rc;
}
