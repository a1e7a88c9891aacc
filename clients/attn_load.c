/* attn-load -- load-test attnd: closed loop (C requests in flight) or open
 * loop (a fixed rate, latency from the intended send time), with requests
 * sampled from a database's users and items or replayed from a JSONL file.
 * The engine is cli_load_run (clients/cli_load.c); this is flags and the
 * report.  docs/OPERATIONS.md explains how to read it.
 *
 * Exit status: 0 the run completed and every measured request got an ok
 * reply; 1 it could not run, stopped, or some requests failed (the report
 * says which); 2 bad usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "clients/cli.h"
#include "util/opt.h"
#include "util/pid.h"

typedef struct s_args {
    cli_load_opts o;
    const char *db, *in;            /* exactly one: where requests come from */
    int candidates, history, k, explain;   /* the shape of sampled requests */
    double record_ratio;            /* share of sampled requests that record events */
    int record_events;              /* events per record request */
    int64_t seed;                   /* 0: from the clock */
    int json;
} s_args;

static const util_opt s_opts[] = {
    {"endpoint", "E,...", "daemons", UTIL_OPT_CALL(s_args, o.eps, cli_opt_endpoints),
     .def = CLI_DEFAULT_ENDPOINT},
    {"server-key", "FILE", "the server's public key (NAME.key): talk CURVE\n"
     "(docs/SECURITY.md); needs --client-key", UTIL_OPT_CALL(s_args, o.eps.curve, cli_opt_server_key),
     .def = ""},
    {"client-key", "FILE", "this client's secret key (NAME.key_secret, mode 0600)",
     UTIL_OPT_CALL(s_args, o.eps.curve, cli_opt_client_key), .def = ""},
    {"db", "PATH", "sample users and items of this attnd database (read-only)",
     UTIL_OPT_STR(s_args, db)},
    {"in", "FILE", "or replay these JSONL requests, in order, cycled", UTIL_OPT_STR(s_args, in)},
    {"clients", "C", "closed loop: keep C requests in flight",
     UTIL_OPT_INT(s_args, o.clients, 1, 100000)},
    {"rate", "R", "open loop: send R requests/s on schedule; latency counts\n"
     "from the intended send time (no coordinated omission)",
     UTIL_OPT_DBL(s_args, o.rate, 0.001, 1e7), .def = ""},
    {"duration", "S", "measure for S seconds", UTIL_OPT_DBL(s_args, o.duration_s, 0.001, 1e6)},
    {"requests", "N", "or measure N requests", UTIL_OPT_U64(s_args, o.requests, 1, 1000000000),
     .def = ""},
    {"warmup", "S", "seconds sent but not measured first",
     UTIL_OPT_DBL(s_args, o.warmup_s, 0, 3600)},
    {"candidates", "N", "candidates per request, distinct random items",
     UTIL_OPT_INT(s_args, candidates, 1, 1000000)},
    {"history", "L", "anonymous requests with L random history items instead\n"
     "of random users (0 = user requests)", UTIL_OPT_INT(s_args, history, 0, 1000000)},
    {"k", "K", "results per request", UTIL_OPT_INT(s_args, k, 1, 1000000)},
    {"explain", "E", "explanations per result", UTIL_OPT_INT(s_args, explain, 0, 1000)},
    {"record-ratio", "R", "share 0..1 of sampled requests that are `record` requests\n"
     "(random users and items, now, fresh event_ids)",
     UTIL_OPT_DBL(s_args, record_ratio, 0, 1)},
    {"record-events", "N", "events per record request",
     UTIL_OPT_INT(s_args, record_events, 1, 1000000)},
    {"timeout", "MS", "a request unanswered this long is a timeout",
     UTIL_OPT_INT(s_args, o.timeout_ms, 1, 3600000)},
    {"max-inflight", "N", "open loop: most requests in flight",
     UTIL_OPT_INT(s_args, o.max_inflight, 1, 1000000)},
    {"seed", "N", "sampling seed", UTIL_OPT_I64(s_args, seed, 0, INT64_MAX),
     .def = "from the clock"},
    {"json", NULL, "one JSON object instead of the table", UTIL_OPT_FLAG(s_args, json, 1)},
};

static const util_opt_excl s_excl[] = {{"clients", "rate"}, {"duration", "requests"},
                                       {"db", "in"}};

static const util_opt_cmd s_cmd = {
    .prog = "attn-load",
    .usage = "[--endpoint E] (--db PATH | --in FILE)\n"
             "                 [--clients C | --rate R] [--duration S | --requests N] "
             "[--warmup S]\n"
             "                 [--candidates N] [--history L] [--k K] [--explain E]\n"
             "                 [--record-ratio R] [--record-events N]\n"
             "                 [--timeout MS] [--max-inflight N] [--seed N] [--json]\n"
             "                 [--server-key FILE --client-key FILE]",
    .about =
        "\n"
        "Drive attnd with rank requests (and, with --record-ratio, record requests) and\n"
        "report throughput, latency percentiles and errors.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_EXCL(s_excl),
    .tail = "Exit status: 0 every measured request ok; 1 failures or could not run; "
            "2 bad usage.",
};

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* ---- plan, then steps --------------------------------------------------------
 *   1. s_args_check: what the table cannot say (one source; --in sends its
 *      requests as they are); the open loop and a request count replace
 *      the closed loop's and the duration's defaults
 *   2. s_sampler: the request source
 *   3. s_run: signals, a ZeroMQ context, cli_load_run
 *   4. s_report: the table or the JSON object, and the exit status */

static int s_args_check(s_args *a, uint64_t given)
{
    if (!a->db && !a->in)
        return util_opt_fail(&s_cmd, "give exactly one of --db PATH and --in FILE");
    if (util_opt_given(&s_cmd, given, "rate"))
        a->o.clients = 0;
    if (util_opt_given(&s_cmd, given, "requests"))
        a->o.duration_s = 0;
    static const char *const shape[] = {"candidates", "history", "k", "explain",
                                        "record-ratio", "record-events"};
    for (size_t i = 0; a->in && i < sizeof shape / sizeof shape[0]; i++)
        if (util_opt_given(&s_cmd, given, shape[i]))
            return util_opt_fail(&s_cmd, "--candidates, --history, --k, --explain and "
                                         "--record-* shape sampled requests; with --in the "
                                         "file's requests are sent as they are");
    return -1;
}

static cli_sampler *s_sampler(const s_args *a, cli_err *err)
{
    if (a->in)
        return cli_sampler_file(a->in, err);
    int64_t seed = a->seed ? a->seed : (int64_t)time(NULL) ^ ((int64_t)getpid() << 20);
    cli_sampler *s = cli_sampler_db(a->db, a->candidates, a->history, a->k, a->explain,
                                    (uint64_t)seed, err);
    if (s && a->record_ratio > 0 &&
        cli_sampler_set_record(s, a->record_ratio, a->record_events, err) != CLI_OK)
        cli_sampler_destroy(&s);
    return s;
}

/* The load test; a cli code, res filled when it ran. */
static int s_run(s_args *a, cli_sampler *src, cli_load_result *res, cli_err *err)
{
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    a->o.stop = &s_stop;
    void *ctx = zmq_ctx_new();
    if (!ctx)
        return cli_fail(err, CLI_ZMQ, "cannot create a ZeroMQ context");
    int rc = cli_load_run(ctx, &a->o, src, res, err);
    zmq_ctx_term(ctx);
    return rc;
}

static void s_print_json(const s_args *a, const cli_sampler *src, const cli_load_result *res)
{
    size_t users, items, lines;
    cli_sampler_counts(src, &users, &items, &lines);
    cJSON *j = cli_load_json(&a->o, res);
    cJSON *s = cJSON_AddObjectToObject(j, "source");
    if (a->db) {
        cJSON_AddStringToObject(s, "db", a->db);
        cJSON_AddNumberToObject(s, "users", (double)users);
        cJSON_AddNumberToObject(s, "items", (double)items);
        cJSON_AddNumberToObject(s, "candidates", a->candidates);
        cJSON_AddNumberToObject(s, "history", a->history);
        cJSON_AddNumberToObject(s, "k", a->k);
    } else {
        cJSON_AddStringToObject(s, "in", a->in);
        cJSON_AddNumberToObject(s, "lines", (double)lines);
    }
    char *text = cJSON_PrintUnformatted(j);
    printf("%s\n", text ? text : "{}");
    free(text);
    cJSON_Delete(j);
}

static void s_print_table(const s_args *a, const cli_sampler *src, const cli_load_result *res)
{
    size_t users, items, lines;
    cli_sampler_counts(src, &users, &items, &lines);
    if (a->db)
        printf("requests     sampled from %s: %zu %s, %zu items; %d candidates, k %d\n", a->db,
               a->history ? (size_t)a->history : users,
               a->history ? "random history items each" : "users", items, a->candidates, a->k);
    else
        printf("requests     replayed from %s (%zu lines, cycled)\n", a->in, lines);
    cli_load_print(stdout, &a->o, res);
}

/* The report of a run that happened (rc CLI_OK or CLI_STOPPED); the exit status. */
static int s_report(const s_args *a, const cli_sampler *src, const cli_load_result *res,
                    int rc, const cli_err *err)
{
    if (a->json)
        s_print_json(a, src, res);
    else
        s_print_table(a, src, res);
    uint64_t failed = res->sent - res->ok;
    if (rc == CLI_STOPPED) {
        fprintf(stderr, "attn-load: %s\n", err->msg);
        return 1;
    }
    if (failed || res->ok == 0) {
        fprintf(stderr, "attn-load: %llu of %llu measured requests did not get an ok reply\n",
                (unsigned long long)failed, (unsigned long long)res->sent);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    s_args a = {.candidates = 100, .k = 10, .record_events = 1};
    if (util_pid_cache_init() != 0) {   /* libzmq's fork checks without a system call */
        fprintf(stderr, "%s: cannot register a fork handler\n", argv[0]);
        return 1;
    }
    cli_load_opts_init(&a.o);
    uint64_t given;
    int status = util_opt_main(&s_cmd, argc, argv, &a, &given);
    if (status < 0)
        status = s_args_check(&a, given);
    if (status >= 0)
        return status;
    cli_err err = {0};
    cli_sampler *src = s_sampler(&a, &err);
    if (!src) {
        fprintf(stderr, "attn-load: %s\n", err.msg);
        return err.code == CLI_INVAL ? 2 : 1;
    }
    cli_load_result *res = malloc(sizeof *res);   /* the histogram is ~44 KiB */
    int rc = res ? s_run(&a, src, res, &err) : cli_fail(&err, CLI_NOMEM, "out of memory");
    if (rc == CLI_OK || rc == CLI_STOPPED) {
        status = s_report(&a, src, res, rc, &err);
        cJSON_Delete(res->errors);
    } else {
        fprintf(stderr, "attn-load: %s\n", err.msg);
        status = rc == CLI_INVAL ? 2 : 1;
    }
    free(res);
    cli_sampler_destroy(&src);
    return status;
}
