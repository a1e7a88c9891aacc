/* pid.c -- getpid() without a system call, for libzmq's fork checks.
 *
 * libzmq asks getpid() every time one of its signalers sends or waits (the
 * check that the process has not forked since the socket was made): about
 * once per request on attnd's main thread, and as often in the clients
 * that load it.  glibc stopped caching the pid in 2.25, so each
 * call enters the kernel, which costs ~1 µs on a guest whose kernel isolates
 * page tables (PTI) -- half of what parsing a rank request costs.  Defining getpid in the
 * executable interposes it for every shared library that calls it through
 * the PLT (libzmq does); glibc's own internal calls are unaffected.
 *
 * The pid changes only in the child of a fork, and glibc's fork runs the
 * atfork child handler there before returning, which forgets the cached
 * value.  The programs that link this file (attnd, attn-load, attn-batch,
 * bench/echo_server) never fork; a raw clone() without fork's handlers
 * would see a stale pid, and nothing in them or their libraries makes one.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/pid.h"

static _Atomic pid_t cached_pid;   /* 0: not known (start, or after a fork) */

static void s_forget(void)
{
    atomic_store_explicit(&cached_pid, 0, memory_order_relaxed);
}

pid_t getpid(void)
{
    pid_t p = atomic_load_explicit(&cached_pid, memory_order_relaxed);
    if (p == 0) {
        p = (pid_t)syscall(SYS_getpid);
        atomic_store_explicit(&cached_pid, p, memory_order_relaxed);
    }
    return p;
}

int util_pid_cache_init(void)
{
    s_forget();
    return pthread_atfork(NULL, NULL, s_forget);
}
