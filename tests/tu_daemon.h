/* tu_daemon.h -- the real attnd in a child process, for end-to-end suites.
 *
 *     tu_daemon d;
 *     tu_make_db(tu_path("x.db"), 600, 60, 24);
 *     tu_daemon_start(&d, tu_path("x.db"), "x.sock", extra_args);  // waits for health
 *     cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"health\"}");
 *     ck_assert(tu_ok(r));
 *     ck_assert_int_eq(tu_daemon_stop(&d), 0);                     // SIGTERM, exit status
 *
 * The daemon binds an ipc:// endpoint in the suite's temporary directory,
 * logs to <endpoint path>.log, and runs under valgrind when
 * ATTN_DAEMON_VALGRIND is set.  It (and whatever tu_spawn starts) dies with
 * the process that started it (PR_SET_PDEATHSIG): a failed or timed-out
 * test leaves nothing running.  The test process holds no ZeroMQ context
 * across fork (Check forks each test): each call makes and ends its own.
 */
#ifndef TESTS_TU_DAEMON_H
#define TESTS_TU_DAEMON_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tu_daemon {
    pid_t pid;
    char endpoint[300];
    char log[300];
} tu_daemon;

double tu_now(void);   /* CLOCK_MONOTONIC seconds */

/* A generated database (store_gen, seed 7, 30 events per user). */
void tu_make_db(const char *path, uint32_t items, uint32_t users, int dim);

/* Save a trained-looking model into db_path: random projections, biases
 * and residuals for every other item (drawn from seed); with sa_len > 0 a
 * self-attention block and a short l_max.  Returns its version. */
int64_t tu_save_random_model(const char *db_path, int heads, int activate, int sa_len,
                             uint64_t seed);
/* The same with a feed-forward layer of width ffn (a multiple of 16) on
 * the block (sa_len > 0); ffn 0 is tu_save_random_model.  The layer is
 * drawn after everything else: the rest of the model is bit for bit the
 * one the same seed gives without it. */
int64_t tu_save_random_model_ffn(const char *db_path, int heads, int activate, int sa_len,
                                 int ffn, uint64_t seed);
/* CURVE keys of a client (Z85, as util/keyfile.h reads them). */
typedef struct tu_curve {
    char server[41];   /* the server's public key */
    char pub[41], sec[41];
} tu_curve;

/* Start attnd on db with 2 workers, no reload poll and its HTTP listener
 * on a free loopback port, plus extra args
 * (NULL-terminated, may be NULL); fails the test if it does not answer
 * health within the start-up time. */
void tu_daemon_start(tu_daemon *d, const char *db, const char *name, const char *const *extra);
/* The same for a daemon with security.mode = curve: the health probe
 * connects with probe's keys. */
void tu_daemon_start_curve(tu_daemon *d, const char *db, const char *name,
                           const char *const *extra, const tu_curve *probe);
/* SIGTERM and the exit status (0 expected; -1 if it did not exit). */
int tu_daemon_stop(tu_daemon *d);
/* The port of its HTTP listener (from `info`; tu_daemon_start asks for
 * 127.0.0.1:0), -1 when it has none. */
int tu_daemon_http_port(const tu_daemon *d);
/* Resident memory of the daemon in bytes (0 if it cannot be read). */
uint64_t tu_daemon_rss(const tu_daemon *d);

/* One request on a fresh REQ socket; the reply (caller frees) or NULL on
 * timeout.  The _curve form connects with keys (NULL: plain text). */
char *tu_call(const char *endpoint, const char *json, int timeout_ms);
char *tu_call_curve(const char *endpoint, const char *json, int timeout_ms, const tu_curve *k);
/* Set a client socket's CURVE options from k (NULL: nothing). */
void tu_curve_apply(void *sock, const tu_curve *k);
/* The same, parsed; fails the test on no reply or invalid JSON. */
cJSON *tu_call_json(const char *endpoint, const char *json);

/* Run program (a name in the build's bin directory) with the
 * NULL-terminated arguments in a child process, its stderr into log; the
 * child's pid. */
pid_t tu_spawn(const char *log, const char *program, ...);
/* Wait until the file at path holds at least bytes, or seconds pass
 * (scaled by tu_slowdown); its size then (0 if absent). */
long tu_wait_size(const char *path, long bytes, double seconds);
/* Wait for the child pid to exit; its wait status.  Fails the test with
 * what when it has not exited after seconds (scaled by tu_slowdown). */
int tu_wait_exit(pid_t pid, double seconds, const char *what);

/* Request i into buf (cap bytes, NUL-terminated); its length. */
typedef size_t (*tu_make_fn)(char *buf, size_t cap, int i, void *ctx);

typedef struct tu_counts {
    int ok, busy, unavailable;   /* replies by outcome */
} tu_counts;

/* Send n requests made by make at once on one DEALER (REQ framing),
 * run after_send(arg) (may be NULL) once they are all out, then read the
 * replies and count them by outcome (any other reply is printed).  Returns
 * the replies received before a 20 s silence. */
int tu_dealer_flood(const char *endpoint, int n, size_t cap, tu_make_fn make, void *ctx,
                    void (*after_send)(void *), void *arg, tu_counts *out);

/* 1 when some line of the file at path holds every string of needles
 * (NULL-terminated), 0 otherwise (also when the file cannot be read). */
int tu_log_has(const char *path, const char *const *needles);

/* The last bytes of a file (at most ~600), for a failure message; "" when
 * it cannot be read.  A static buffer. */
const char *tu_file_tail(const char *path);

/* The output of an attn-batch job whose input line n had the id
 * "<prefix><n>": exactly `lines` lines, each an ok reply with its line's
 * id, in input order.  Fails the test otherwise. */
void tu_assert_batch_out(const char *path, const char *prefix, int lines);

int tu_ok(const cJSON *reply);
const char *tu_code(const cJSON *reply);      /* error.code, "" if none */
const char *tu_message(const cJSON *reply);   /* error.message, "" if none */

#endif
