/* log.h -- one-line logfmt records on stderr.
 *
 *     srv_log(SRV_INFO, "msg=\"listening\" endpoint=%s workers=%d", ep, n);
 *
 * Each record is written with a single write(2), so lines from several
 * threads never interleave.  Prefix: ts=<RFC 3339 UTC> level=<level>.
 */
#ifndef DAEMON_LOG_H
#define DAEMON_LOG_H

enum srv_log_level { SRV_DEBUG = 0, SRV_INFO = 1, SRV_WARN = 2, SRV_ERROR = 3 };

/* Set the lowest level written; returns -1 for an unknown name. */
int srv_log_set_level(const char *name);
void srv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
