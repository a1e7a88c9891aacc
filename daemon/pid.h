/* pid.h -- the process id cached, so that libzmq's fork checks cost no
 * system call (pid.c says why).
 *
 *     srv_pid_cache_init();   // once, before the ZeroMQ context is made
 *
 * Linking pid.c interposes getpid() for the whole executable; calling
 * srv_pid_cache_init is what pulls it out of libsrv.a. */
#ifndef DAEMON_PID_H
#define DAEMON_PID_H

/* Register the fork handler that forgets the cached pid; 0, or the
 * pthread_atfork error. */
int srv_pid_cache_init(void);

#endif
