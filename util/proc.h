/* proc.h -- what /proc says about a process.
 *
 *     uint64_t rss = util_rss_bytes(0);      // this process
 *     uint64_t other = util_rss_bytes(pid);  // another one (a test's daemon)
 */
#ifndef UTIL_PROC_H
#define UTIL_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* Resident memory in bytes of process pid (0: the caller), from
 * /proc/PID/statm; 0 when it cannot be read (no such process). */
uint64_t util_rss_bytes(pid_t pid);

#endif
