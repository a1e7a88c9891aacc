/* proc.h -- what /proc says about a process, and the calling thread's
 * scheduling.
 *
 *     uint64_t rss = util_rss_bytes(0);      // this process
 *     uint64_t other = util_rss_bytes(pid);  // another one (a test's daemon)
 *     util_sched_idle();                     // this thread: spare CPU only
 */
#ifndef UTIL_PROC_H
#define UTIL_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* Resident memory in bytes of process pid (0: the caller), from
 * /proc/PID/statm; 0 when it cannot be read (no such process). */
uint64_t util_rss_bytes(pid_t pid);

/* Put the calling thread in SCHED_IDLE: it runs only when a core has
 * nothing else to run, and any other thread that wakes takes the core from
 * it at once (a nice level does not: the kernel lets the running thread
 * finish its slice first).  0, or -1 with errno. */
int util_sched_idle(void);

#endif
