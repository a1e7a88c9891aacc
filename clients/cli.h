/* cli.h -- the client library shared by attn-query, attn-batch and attn-load.
 *
 *     void *ctx = zmq_ctx_new();
 *     cli_endpoints eps;  cli_err err;
 *     if (cli_endpoints_parse("tcp://127.0.0.1:5555", &eps, &err) != CLI_OK)
 *         die("%s", err.msg);
 *
 *     // One request at a time, Lazy Pirate: REQ, poll with a timeout, on
 *     // timeout close (LINGER 0), reopen, resend; give up after 2 retries.
 *     cli_req *req = cli_req_new(ctx, &eps, &err);
 *     char *reply;  size_t len;
 *     if (cli_req_call(req, "{\"op\":\"health\"}", 15, 2000, 2, &reply, &len, &err) != CLI_OK)
 *         die("%s", err.msg);            // "no reply from tcp://… within 2000 ms (3 attempts)"
 *     free(reply);
 *     cli_req_destroy(&req);
 *
 *     // Many in flight: one DEALER connected to every endpoint, requests sent
 *     // as ["", json] with the id "<prefix><key>", replies matched by id.
 *     cli_pipe *pipe = cli_pipe_new(ctx, &eps, "b", 64, &err);
 *     cli_pipe_send(pipe, 17, "{\"op\":\"health\"}", 15, 0, cli_now_us() + 2000000);
 *     cli_pipe_event ev;
 *     while (cli_pipe_wait(pipe, cli_now_us() + 100000, 0, &ev) == CLI_OK)
 *         cJSON_Delete(ev.json);  // ev.kind is CLI_EV_REPLY (json) or CLI_EV_TIMEOUT
 *     cli_pipe_destroy(&pipe);
 *     zmq_ctx_term(ctx);
 *
 * On top of those sit the three jobs, each a function so that tests drive
 * them without the programs: cli_batch_run (attn-batch), cli_load_run
 * (attn-load) and cli_table_print (attn-query's output).
 *
 * Conventions (docs/ARCHITECTURE.md): functions return enum cli_code and fill
 * a cli_err (which may be NULL) with one line naming the endpoint, file or
 * flag; `char *` returned is the caller's to free; `*_destroy(T **)` accepts
 * NULL and clears the pointer.  Nothing here prints except the progress bar
 * and cli_table_print, and nothing exits.  Objects are for one thread each.
 */
#ifndef CLIENTS_CLI_H
#define CLIENTS_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

#include "util/hist.h"

/* ---- status codes --------------------------------------------------------- */
enum cli_code {
    CLI_OK = 0,
    CLI_TIMEOUT,     /* no reply (or no peer to send to) within the deadline */
    CLI_AGAIN,       /* nothing happened yet: no event, or the socket can't take a send now */
    CLI_FULL,        /* the pipeline holds its maximum number of requests */
    CLI_ZMQ,         /* a ZeroMQ call failed (bad endpoint, context terminated) */
    CLI_NOMEM,       /* out of memory */
    CLI_INVAL,       /* a bad argument: flag value, endpoint text, request text */
    CLI_IO,          /* a file could not be read or written */
    CLI_PROTO,       /* the peer sent something that is not protocol v1 */
    CLI_STOPPED,     /* interrupted (signal) or stalled; the job can be resumed */
    CLI_FAILED,      /* the job ran, but some requests failed (see the stats) */
};

typedef struct cli_err {
    int code;          /* enum cli_code */
    char msg[512];     /* one line, no trailing newline */
} cli_err;

/* Stable short name of a code ("timeout", "inval", ...), never NULL. */
const char *cli_strerror(int code);

/* Fill err (if not NULL) and return code.  printf-style. */
int cli_fail(cli_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* util_now_ns() in microseconds (the unit every client deadline uses). */
int64_t cli_now_us(void);

/* ---- endpoints ----------------------------------------------------------- */
#define CLI_MAX_ENDPOINTS 16
#define CLI_DEFAULT_ENDPOINT "tcp://127.0.0.1:5555"

/* CURVE for every connection (docs/SECURITY.md): all three keys, or none
 * for plain text.  Z85 text, NUL-terminated. */
typedef struct cli_curve {
    char server[41];     /* the server's public key; "" = plain text */
    char pub[41];        /* this client's public key */
    char sec[41];        /* this client's secret key */
} cli_curve;

typedef struct cli_endpoints {
    int n;                                  /* how many, 1..CLI_MAX_ENDPOINTS */
    char v[CLI_MAX_ENDPOINTS][256];         /* each "transport://address" */
    cli_curve curve;                        /* how to connect to them */
    char file[512];                         /* "@FILE" was given: the list is FILE's,
                                               re-read when it changes; "" otherwise */
    int64_t file_mtime_ns;                  /* FILE's mtime when it was read */
} cli_endpoints;

/* Split a comma-separated list ("tcp://a:1,tcp://b:2") into out (keys
 * cleared: plain text).  Each entry must look like transport://address;
 * empty entries and more than CLI_MAX_ENDPOINTS are CLI_INVAL.  "@FILE"
 * reads the list from FILE instead (endpoints separated by commas or lines,
 * '#' starts a comment): the replica set of a service, which clients that
 * pipeline (attn-batch, attn-load) re-read while they run
 * (cli_endpoints_refresh), so that a replica added to the file takes
 * requests without a restart.  The keys apply to every endpoint, those the
 * file adds later included. */
int cli_endpoints_parse(const char *list, cli_endpoints *out, cli_err *err);
/* With a file: read it again when its mtime changed.  1 when the list
 * changed (eps updated), 0 when not (or no file), -1 when the file cannot be
 * read or holds no valid list (eps is kept; err says why). */
int cli_endpoints_refresh(cli_endpoints *eps, cli_err *err);

/* "tcp://a:1, tcp://b:2" into buf (for messages). */
const char *cli_endpoints_str(const cli_endpoints *eps, char *buf, size_t len);

/* ---- low-level sends and receives ------------------------------------------ */

/* Send one message as frames [delim?"":none, body] before deadline_us
 * (cli_now_us clock; 0 = try once without waiting).  CLI_OK, CLI_TIMEOUT
 * when the socket could not take it in time, CLI_ZMQ. */
int cli_send(void *sock, int delim, const void *body, size_t len, int64_t deadline_us,
             cli_err *err);

/* Receive one message into msg (initialised by the caller with zmq_msg_init,
 * closed by the caller), skipping an empty delimiter frame and discarding
 * frames after the body.  Waits until deadline_us (0 = do not wait).
 * CLI_OK, CLI_TIMEOUT, CLI_AGAIN when a signal interrupted the wait,
 * CLI_ZMQ. */
int cli_recv(void *sock, void *msg /* zmq_msg_t * */, int64_t deadline_us, cli_err *err);

/* ---- Lazy Pirate REQ client ------------------------------------------------- */
typedef struct cli_req cli_req;

/* A REQ client over eps.  Each attempt goes to one endpoint; a retry after a
 * timeout reopens the socket to the next one (failover in list order).  NULL
 * on failure with err filled. */
cli_req *cli_req_new(void *zmq_ctx, const cli_endpoints *eps, cli_err *err);
void cli_req_destroy(cli_req **self_p);

/* Send req (len bytes) and wait up to timeout_ms for the reply; on timeout
 * close the socket (LINGER 0), reopen it and resend, at most retries times.
 * On CLI_OK *reply is the reply text (NUL-terminated, caller frees) and *len
 * its length.  CLI_TIMEOUT names the endpoints and the time waited. */
int cli_req_call(cli_req *self, const char *req, size_t len, int timeout_ms, int retries,
                 char **reply, size_t *len_out, cli_err *err);

/* Sockets closed and reopened so far (tests, diagnostics). */
int cli_req_reconnects(const cli_req *self);
/* Endpoint that answered the last call. */
const char *cli_req_endpoint(const cli_req *self);

/* Ask every endpoint for {"op":"health"} (one Lazy Pirate call each) and
 * return CLI_OK when all answer; CLI_TIMEOUT names the first that did not:
 * "no reply from tcp://… within N ms".  If info is not NULL it receives the
 * first endpoint's reply to {"op":"info"} (caller cJSON_Deletes; NULL when
 * the daemon did not give one).  Used by attn-batch and attn-load at start so
 * that an unreachable endpoint fails fast instead of timing out every line. */
int cli_probe(void *zmq_ctx, const cli_endpoints *eps, int timeout_ms, int retries,
              cJSON **info, cli_err *err);

/* ---- DEALER pipeline ------------------------------------------------------ */
typedef struct cli_pipe cli_pipe;

enum cli_ev_kind {
    CLI_EV_REPLY = 1,    /* a reply matched a request in flight */
    CLI_EV_TIMEOUT = 2,  /* a request's deadline passed; it is no longer in flight */
};

typedef struct cli_pipe_event {
    int kind;                 /* enum cli_ev_kind */
    uint64_t key;             /* the caller's key given to cli_pipe_send */
    int64_t stamp;            /* the caller's stamp given to cli_pipe_send */
    int64_t sent_us;          /* when the request went out */
    int64_t at_us;            /* when the reply arrived or the deadline passed */
    cJSON *json;              /* REPLY: the parsed reply, the caller's to
                                 cJSON_Delete; NULL for TIMEOUT */
} cli_pipe_event;

/* A DEALER connected to every endpoint of eps, with ZMQ_IMMEDIATE so that
 * requests only go to live peers, ZMTP heartbeats so a silent peer is
 * dropped, and room for max_inflight requests.  Request ids on the wire are
 * id_prefix followed by the decimal key ("b17"); id_prefix is at most 15
 * characters of [A-Za-z_-]. */
cli_pipe *cli_pipe_new(void *zmq_ctx, const cli_endpoints *eps, const char *id_prefix,
                       size_t max_inflight, cli_err *err);
void cli_pipe_destroy(cli_pipe **self_p);
/* Changes of an endpoint file applied so far (0 without one). */
uint64_t cli_pipe_refreshes(const cli_pipe *self);

/* Send body -- a JSON object text without an "id" member -- with the id made
 * from key, framed ["", json].  The request is in flight until its reply
 * arrives or deadline_us passes.  Never blocks: CLI_AGAIN when no peer can
 * take it now (wait with want_send), CLI_FULL at max_inflight, CLI_INVAL
 * when key is already in flight or body is not "{…}". */
int cli_pipe_send(cli_pipe *self, uint64_t key, const char *body, size_t len, int64_t stamp,
                  int64_t deadline_us);

/* Wait until until_us (cli_now_us clock, microsecond resolution) for the
 * next event: a reply already received first, then a request whose
 * deadline passed.  Replies whose id is unknown (answered after their
 * timeout, or not ours) are dropped and counted.  CLI_OK with *ev filled;
 * CLI_AGAIN when the time is up, or (with want_send) as soon as the socket
 * can take a send; CLI_ZMQ on failure.  A signal returns CLI_AGAIN early. */
int cli_pipe_wait(cli_pipe *self, int64_t until_us, int want_send, cli_pipe_event *ev);

size_t cli_pipe_inflight(const cli_pipe *self);
/* Replies dropped because no request in flight had their id. */
uint64_t cli_pipe_stale(const cli_pipe *self);
/* Earliest deadline in flight, or INT64_MAX. */
int64_t cli_pipe_next_deadline(const cli_pipe *self);

/* ---- JSON helpers ---------------------------------------------------------- */

/* Parse a JSON object; NULL if the text is not one. */
cJSON *cli_json_object(const char *text, size_t len);
/* The same, and nothing but whitespace may follow the object. */
cJSON *cli_json_object_strict(const char *text, size_t len);

/* The string member key of obj, or NULL. */
const char *cli_json_str(const cJSON *obj, const char *key);

/* Classify a protocol reply: 1 when "ok" is true; 0 when it is an error
 * reply, with *code and *message pointing into the reply (or to "?" when
 * missing); -1 when it is not a protocol reply at all. */
int cli_reply_status(const cJSON *reply, const char **code, const char **message);

/* {"id":<id or null>,"ok":false,"error":{"code":code,"message":message}}
 * (id is duplicated).  For failures the client decides (timeout, bad input). */
cJSON *cli_error_reply(const cJSON *id, const char *code, const char *message);

/* A growable byte buffer.  Appends return 0, or -1 when out of memory (the
 * buffer keeps its old contents).  data is always NUL-terminated. */
typedef struct cli_buf {
    char *data;
    size_t len, cap;
} cli_buf;
int cli_buf_put(cli_buf *b, const void *p, size_t n);
int cli_buf_puts(cli_buf *b, const char *s);
int cli_buf_printf(cli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included. */
int cli_buf_json_str(cli_buf *b, const char *s);
void cli_buf_reset(cli_buf *b);      /* len = 0, memory kept */
void cli_buf_free(cli_buf *b);       /* accepts a zeroed buffer */

/* ---- flags ------------------------------------------------------------------ */

/* The options themselves are util/opt tables in each program; these are
 * the values inside them. */

/* A number in [lo, hi] given to flag (an entry of --weights); CLI_INVAL with
 * "--weights: 'x' is not a number in 1e-30..1e+30". */
int cli_parse_double(const char *flag, const char *s, double lo, double hi, double *out,
                     cli_err *err);
/* util_opt CALL row for --endpoint: field is a cli_endpoints (its keys are
 * kept, so --server-key may come first). */
int cli_opt_endpoints(void *field, const char *value, char *why, size_t why_len);
/* util_opt CALL rows for --server-key FILE (the server's public key file)
 * and --client-key FILE (this client's NAME.key_secret, which must be
 * private: mode 0600): field is the endpoints' cli_curve. */
int cli_opt_server_key(void *field, const char *value, char *why, size_t why_len);
int cli_opt_client_key(void *field, const char *value, char *why, size_t why_len);
/* Make sock a CURVE client when c holds keys.  CLI_OK (also for plain
 * text), CLI_INVAL when only one of the server and client keys is set,
 * CLI_ZMQ when libzmq refuses them (built without CURVE). */
int cli_curve_apply(void *sock, const cli_curve *c, cli_err *err);
/* Split a comma-separated list into a cJSON array of strings; empty entries
 * are CLI_INVAL naming flag. */
int cli_parse_list(const char *flag, const char *s, cJSON **out, cli_err *err);

/* ---- progress bar ---------------------------------------------------------- */
typedef struct cli_progress cli_progress;

/* A one-line progress bar on out (a terminal), redrawn at most every 100 ms:
 * bar, percent, done/total, rate over the last seconds, ETA, failures.
 * total 0 means unknown (no bar, no ETA). */
cli_progress *cli_progress_new(FILE *out, const char *label, uint64_t total);
void cli_progress_update(cli_progress *self, uint64_t done, uint64_t failed, int force);
/* Erase the line (the caller prints its summary next). */
void cli_progress_destroy(cli_progress **self_p);

/* "1:02:03" or "4:05" into buf. */
const char *cli_fmt_duration(double seconds, char *buf, size_t len);

/* ---- append-only JSONL files ------------------------------------------------ */

/* write(2) all of p, retrying short writes and EINTR; 0 or -1 (errno set). */
int cli_write_all(int fd, const char *p, size_t n);

/* Lines in a regular file (a last line without newline counts); 0 when the
 * file can't be read or is not regular (a pipe: the total is unknown). */
uint64_t cli_count_lines(const char *path);

/* For --resume: the complete lines of an output file (fd, named path in
 * messages), the byte offset just after the last one (where a torn line
 * begins), and that last line's text in *last (caller frees; NULL when
 * there are no lines). */
int cli_output_scan(int fd, const char *path, uint64_t *lines, off_t *end, char **last,
                    cli_err *err);

/* Keep only the complete rejects lines whose "line" is 1..done (rewritten
 * through path.tmp and rename): rejects a crash wrote for lines beyond the
 * output would otherwise be duplicated when those lines are redone.  A
 * missing file is fine. */
int cli_rejects_trim(const char *path, uint64_t done, cli_err *err);

/* ---- attn-batch ------------------------------------------------------------ */
typedef struct cli_batch_opts {
    cli_endpoints eps;
    const char *in;          /* path or "-" for stdin */
    const char *out;         /* path or "-" for stdout */
    const char *rejects;     /* path or NULL */
    int window;              /* requests in flight, >= 1 */
    int timeout_ms;          /* per attempt */
    int retries;             /* extra attempts for timeouts, busy, unavailable, rate_limited */
    int backoff_ms;          /* first retry delay; doubles, capped at 32x */
    int resume;              /* continue from the output file */
    int force;               /* overwrite an existing output file */
    int progress;            /* draw a progress bar on stderr */
    volatile sig_atomic_t *stop;  /* set by a signal handler: stop cleanly */
} cli_batch_opts;

/* Defaults: window 64, timeout 5000 ms, retries 5, backoff 100 ms. */
void cli_batch_opts_init(cli_batch_opts *o);

typedef struct cli_batch_stats {
    uint64_t lines;          /* input lines handled in this run (output lines written) */
    uint64_t skipped;        /* lines already in the output (--resume) */
    uint64_t ok;             /* replies with "ok":true */
    uint64_t rejected;       /* lines whose output is an error */
    uint64_t retries;        /* attempts beyond the first */
    uint64_t timeouts;       /* attempts that got no reply in time */
    uint64_t busy;           /* busy, unavailable and rate_limited replies (retried) */
    uint64_t stale;          /* late replies dropped */
    double seconds;          /* wall time of this run */
    cJSON *reject_codes;     /* {"code": count}; caller frees (cJSON_Delete) */
} cli_batch_stats;

/* Run a batch job (see docs/OPERATIONS.md).  CLI_OK when every line got an
 * ok reply; CLI_FAILED when it ran to the end with rejects; CLI_STOPPED when
 * interrupted or when the daemons stopped answering (the output is a clean
 * prefix: --resume continues it); CLI_TIMEOUT when an endpoint did not answer
 * the initial probe; CLI_INVAL / CLI_IO for bad options and files.  stats is
 * filled in every case once the job started. */
int cli_batch_run(void *zmq_ctx, const cli_batch_opts *o, cli_batch_stats *stats, cli_err *err);

/* ---- attn-load -------------------------------------------------------------- */

/* Where requests come from: sampled from a database, or lines of a file. */
typedef struct cli_sampler cli_sampler;

/* Read user and item ext_ids of an attnd database (read-only). */
cli_sampler *cli_sampler_db(const char *path, int candidates, int history, int k, int explain,
                            uint64_t seed, cli_err *err);
/* Read JSONL requests (each an object; any "id" is replaced); cycled. */
cli_sampler *cli_sampler_file(const char *path, cli_err *err);
/* Mix `record` requests into a database sampler: a share ratio (0..1) of
 * the requests record `events` events each (random existing users and
 * items, the current time, event_ids unique to this run).  CLI_INVAL for a
 * file sampler or one without users. */
int cli_sampler_set_record(cli_sampler *self, double ratio, int events, cli_err *err);
/* The next request body (no "id"), borrowed until the next call. */
const char *cli_sampler_next(cli_sampler *self, size_t *len);
/* How many users / items / lines it draws from (for the report). */
void cli_sampler_counts(const cli_sampler *self, size_t *users, size_t *items, size_t *lines);
void cli_sampler_destroy(cli_sampler **self_p);

typedef struct cli_load_opts {
    cli_endpoints eps;
    int clients;             /* closed loop: requests kept in flight (0 = open loop) */
    double rate;             /* open loop: requests per second (0 = closed loop) */
    double duration_s;       /* measured time after warm-up (0 = use requests) */
    uint64_t requests;       /* measured requests (0 = use duration) */
    double warmup_s;         /* sent, answered, not recorded */
    int timeout_ms;          /* a request unanswered after this is a timeout */
    int max_inflight;        /* open loop: cap on requests in flight */
    volatile sig_atomic_t *stop;
} cli_load_opts;

void cli_load_opts_init(cli_load_opts *o);

typedef struct cli_load_result {
    int open_loop;
    double seconds;          /* measured wall time */
    uint64_t sent, replies, ok, timeouts, busy, stale;
    uint64_t late_sends;     /* open loop: sends more than 1 ms behind schedule */
    int64_t max_send_lag_us; /* open loop: worst lateness of a send */
    cJSON *errors;           /* {"code": count} for error replies; caller frees */
    util_hist lat;           /* latency of ok replies, nanoseconds */
    int stalled;             /* the run stopped because nothing answered */
    /* By op, told apart by the reply (a record reply has "stored"): */
    uint64_t record_ok;      /* ok record replies */
    uint64_t record_events;  /* events they acknowledged (stored, duplicate or rejected) */
    uint64_t record_stored;  /* of which stored */
    util_hist lat_record;    /* latency of ok record replies */
    util_hist lat_other;     /* latency of the other ok replies (rank) */
    util_hist lat_server;    /* their took_us (attnd's own time, receive to
                              * send), where the reply has one: the part of
                              * the latency a client on the same machine
                              * does not add */
} cli_load_result;

/* Run a load test.  CLI_OK when it ran (errors are in the result);
 * CLI_STOPPED when nothing answered for the stall limit; CLI_TIMEOUT when
 * the initial probe failed; CLI_INVAL for bad options.  res is filled
 * whenever the run started; free res->errors. */
int cli_load_run(void *zmq_ctx, const cli_load_opts *o, cli_sampler *src,
                 cli_load_result *res, cli_err *err);

/* The report: a table, or one JSON object (caller frees). */
void cli_load_print(FILE *out, const cli_load_opts *o, const cli_load_result *res);
cJSON *cli_load_json(const cli_load_opts *o, const cli_load_result *res);

/* ---- attn-query output --------------------------------------------------- */

/* Print a rank reply as a table: rank, item title and ext id, score, the
 * titles of the history items that explain it; then unknown and excluded
 * candidates and the fallback.  Other replies (health, info, stats) are
 * printed as "key: value" lines with dotted keys. */
void cli_table_print(FILE *out, const cJSON *reply, int is_rank);

#endif
