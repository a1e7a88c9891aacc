/* testutil.h -- helpers shared by the Check suites.
 *
 * Every suite works in its own temporary directory (removed at exit) and
 * draws random data from a seeded generator, so a failure reproduces.
 */
#ifndef TESTS_TESTUTIL_H
#define TESTS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <check.h>

/* A fresh temporary directory for this process, created on first use and
 * removed (recursively) at exit.  Borrowed string. */
const char *tu_tmpdir(void);

/* tu_tmpdir()/name, into a static rotating buffer (8 slots). */
const char *tu_path(const char *name);

/* Write len bytes to path (truncating); fails the test on error. */
void tu_write_file(const char *path, const void *data, size_t len);

/* Run statements without results on an SQLite connection; fails the test
 * with SQLite's message. */
struct sqlite3;
void tu_sql(struct sqlite3 *h, const char *sql);

/* Deterministic generator (splitmix64, util/rng.h) for test data. */
typedef struct tu_rng { uint64_t s; } tu_rng;
uint64_t tu_next(tu_rng *r);
double tu_uniform(tu_rng *r);             /* [0, 1) */
double tu_normal(tu_rng *r);              /* N(0, 1) */
void tu_fill_normal(tu_rng *r, float *x, size_t n, float sd);

/* Run a suite with the usual runner; returns the process exit status. */
/* Runs program (a name in the build's bin directory) with args through the
 * shell, stderr joined to stdout; out gets up to len - 1 bytes of it,
 * NUL-terminated (the rest is read and dropped).  Returns the exit status,
 * or -1 if it did not exit. */
int tu_run_program(const char *program, const char *args, char *out, size_t len);

/* Collect the NULL-terminated words a0, ... into argv (at most cap - 1 of
 * them, then a NULL); returns their count.  For calling a main in-process. */
int tu_argv(char **argv, int cap, const char *a0, va_list ap);

/* Run fn(ctx) with stdout and stderr redirected into out (up to len - 1
 * bytes, NUL-terminated); returns what fn returned. */
int tu_capture(int (*fn)(void *ctx), void *ctx, char *out, size_t len);

/* One integer from a one-row query on the database at path, through a
 * plain SQLite connection of its own (what another program would see);
 * fails the test when the query does not give a row. */
int64_t tu_sql_int(const char *path, const char *sql);

int tu_run(Suite *s);

/* Scale for time limits: 1, or larger under valgrind/sanitizers. */
double tu_slowdown(void);

#endif
