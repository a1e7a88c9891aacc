/* tu_redis.h -- a real redis-server in a child process, for the suites that
 * test the Redis history backend.
 *
 *     tu_redis r;
 *     tu_redis_start(&r, "r1");           // 127.0.0.1, a free port, no persistence
 *     ... r.url is "redis://127.0.0.1:PORT" ...
 *     tu_redis_kill(&r);                  // SIGKILL: a node lost
 *     tu_redis_restart(&r);               // the same port again
 *     tu_redis_stop(&r);                  // SIGTERM, by pid
 *
 * The server binds loopback only, on a port picked at run time, keeps its
 * files (log, AOF when asked) in the suite's temporary directory, and dies
 * with the process that started it (PR_SET_PDEATHSIG), so a failing or
 * timed-out test (Check ends its child with _exit) leaves no server behind.
 */
#ifndef TESTS_TU_REDIS_H
#define TESTS_TU_REDIS_H

#include <sys/types.h>

typedef struct tu_redis {
    pid_t pid;          /* 0: not running */
    int port;
    int aof;            /* appendonly yes, appendfsync always */
    char dir[300];      /* its working directory */
    char url[64];       /* redis://127.0.0.1:PORT */
} tu_redis;

/* Start a server named name (its directory under the suite's tmpdir);
 * aof: persist every write (appendfsync always) so a restart keeps them.
 * Fails the test if it does not answer PING within the start-up time. */
void tu_redis_start_opts(tu_redis *r, const char *name, int aof);
void tu_redis_start(tu_redis *r, const char *name);
/* SIGKILL and reap (a node lost); r->pid becomes 0. */
void tu_redis_kill(tu_redis *r);
/* Start again on the same port and directory. */
void tu_redis_restart(tu_redis *r);
/* SIGTERM (then SIGKILL after the time limit) and reap; accepts a stopped one. */
void tu_redis_stop(tu_redis *r);
/* One command through redis-cli-like hiredis; its integer reply (-1 for an
 * error or a reply of another type). */
long long tu_redis_int(const tu_redis *r, const char *fmt, ...);
/* A free TCP port on 127.0.0.1, now (the kernel's pick). */
int tu_free_port(void);

#endif
