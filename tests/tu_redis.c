/* tu_redis.c -- see tu_redis.h. */
#include "tests/tu_redis.h"

#include <arpa/inet.h>
#include <check.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/testutil.h"
#include "tests/tu_daemon.h"

int tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int s_ping(const tu_redis *r)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        redisReply *rep = redisCommand(c, "PING");
        ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep)
            freeReplyObject(rep);
    }
    if (c)
        redisFree(c);
    return ok;
}

static void s_spawn(tu_redis *r)
{
    char port[16], log[400];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    pid_t parent = getpid();
    r->pid = fork();
    ck_assert_int_ge(r->pid, 0);
    if (r->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                              "--save", "", "--dir", r->dir, "--logfile", log,
                              "--daemonize", "no", "--appendonly", r->aof ? "yes" : "no",
                              "--appendfsync", "always", NULL};
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    double deadline = tu_now() + 10 * tu_slowdown();
    while (!s_ping(r)) {
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            ck_abort_msg("redis-server exited at start-up (status %d); see %s", status, log);
        }
        ck_assert_msg(tu_now() < deadline, "redis-server did not answer; see %s", log);
        usleep(5000);
    }
}

void tu_redis_start_opts(tu_redis *r, const char *name, int aof)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", tu_path(name));
    mkdir(r->dir, 0700);
    r->aof = aof;
    r->port = tu_free_port();
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
    s_spawn(r);
}

void tu_redis_start(tu_redis *r, const char *name)
{
    tu_redis_start_opts(r, name, 0);
}

void tu_redis_kill(tu_redis *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    r->pid = 0;
}

void tu_redis_restart(tu_redis *r)
{
    tu_redis_kill(r);
    s_spawn(r);
}

void tu_redis_stop(tu_redis *r)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGTERM);
    double deadline = tu_now() + 10;
    int status;
    while (waitpid(r->pid, &status, WNOHANG) != r->pid) {
        if (tu_now() > deadline) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, &status, 0);
            break;
        }
        usleep(5000);
    }
    r->pid = 0;
}

long long tu_redis_int(const tu_redis *r, const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    long long v = -1;
    if (c && !c->err) {
        va_list ap;
        va_start(ap, fmt);
        redisReply *rep = redisvCommand(c, fmt, ap);
        va_end(ap);
        if (rep && rep->type == REDIS_REPLY_INTEGER)
            v = rep->integer;
        if (rep)
            freeReplyObject(rep);
    }
    if (c)
        redisFree(c);
    return v;
}
