/* pid.h -- the process id cached, so that libzmq's fork checks cost no
 * system call (pid.c says why).
 *
 *     util_pid_cache_init();   // first thing in main, before any thread
 *
 * Only programs that link pid.c explicitly get the cached getpid(): the
 * file is kept out of libutil.a, where the first program to call getpid
 * would pull it in by accident (the Makefile links it into attnd,
 * attn-load, attn-batch and bench/echo_server). */
#ifndef UTIL_PID_H
#define UTIL_PID_H

/* Register the fork handler that forgets the cached pid; 0, or the
 * pthread_atfork error. */
int util_pid_cache_init(void);

#endif
