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
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "clients/cli.h"

static const char s_usage[] =
    "usage: attn-load [--endpoint E] (--db PATH | --in FILE)\n"
    "                 [--clients C | --rate R] [--duration S | --requests N] [--warmup S]\n"
    "                 [--candidates N] [--history L] [--k K] [--explain E]\n"
    "                 [--timeout MS] [--max-inflight N] [--seed N] [--json]\n"
    "\n"
    "Drive attnd with rank requests and report throughput, latency percentiles\n"
    "and errors.\n"
    "\n"
    "  --endpoint E,...  daemons (default " CLI_DEFAULT_ENDPOINT ")\n"
    "  --db PATH         sample users and items of this attnd database (read-only)\n"
    "  --in FILE         or replay these JSONL requests, in order, cycled\n"
    "  --clients C       closed loop: keep C requests in flight (default 16)\n"
    "  --rate R          open loop: send R requests/s on schedule; latency counts\n"
    "                    from the intended send time (no coordinated omission)\n"
    "  --duration S      measure for S seconds (default 10)\n"
    "  --requests N      or measure N requests\n"
    "  --warmup S        seconds sent but not measured first (default 1)\n"
    "  --candidates N    candidates per request, distinct random items (default 100)\n"
    "  --history L       anonymous requests with L random history items instead of\n"
    "                    random users (default 0 = user requests)\n"
    "  --k K             results per request (default 10)\n"
    "  --explain E       explanations per result (default 0)\n"
    "  --timeout MS      a request unanswered this long is a timeout (default 2000)\n"
    "  --max-inflight N  open loop: most requests in flight (default 10000)\n"
    "  --seed N          sampling seed (default: from the clock)\n"
    "  --json            one JSON object instead of the table\n"
    "  -h, --help        this text\n"
    "\n"
    "Exit status: 0 every measured request ok; 1 failures or could not run; 2 bad usage.\n";

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_usage_error(const char *msg)
{
    fprintf(stderr, "attn-load: %s\nTry 'attn-load --help'.\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    enum { O_ENDPOINT = 256, O_DB, O_IN, O_CLIENTS, O_RATE, O_DURATION, O_REQUESTS, O_WARMUP,
           O_CANDIDATES, O_HISTORY, O_K, O_EXPLAIN, O_TIMEOUT, O_MAXIN, O_SEED, O_JSON };
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, O_ENDPOINT}, {"db", required_argument, 0, O_DB},
        {"in", required_argument, 0, O_IN}, {"clients", required_argument, 0, O_CLIENTS},
        {"rate", required_argument, 0, O_RATE}, {"duration", required_argument, 0, O_DURATION},
        {"requests", required_argument, 0, O_REQUESTS}, {"warmup", required_argument, 0, O_WARMUP},
        {"candidates", required_argument, 0, O_CANDIDATES},
        {"history", required_argument, 0, O_HISTORY}, {"k", required_argument, 0, O_K},
        {"explain", required_argument, 0, O_EXPLAIN}, {"timeout", required_argument, 0, O_TIMEOUT},
        {"max-inflight", required_argument, 0, O_MAXIN}, {"seed", required_argument, 0, O_SEED},
        {"json", no_argument, 0, O_JSON}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    cli_load_opts o;
    cli_load_opts_init(&o);
    const char *db = NULL, *in = NULL;
    long candidates = 100, history = 0, k = 10, explain = 0, v;
    long long seed = 0;
    int json = 0, have_clients = 0, have_rate = 0, have_dur = 0, have_req = 0;
    cli_err err = {0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int rc = CLI_OK;
        switch (c) {
        case 'h': fputs(s_usage, stdout); return 0;
        case O_ENDPOINT: rc = cli_endpoints_parse(optarg, &o.eps, &err); break;
        case O_DB: db = optarg; break;
        case O_IN: in = optarg; break;
        case O_CLIENTS:
            if ((rc = cli_parse_long("--clients", optarg, 1, 100000, &v, &err)) == CLI_OK)
                o.clients = (int)v, have_clients = 1;
            break;
        case O_RATE:
            rc = cli_parse_double("--rate", optarg, 0.001, 1e7, &o.rate, &err);
            have_rate = 1;
            break;
        case O_DURATION:
            rc = cli_parse_double("--duration", optarg, 0.001, 1e6, &o.duration_s, &err);
            have_dur = 1;
            break;
        case O_REQUESTS:
            if ((rc = cli_parse_long("--requests", optarg, 1, 1000000000L, &v, &err)) == CLI_OK)
                o.requests = (uint64_t)v, have_req = 1;
            break;
        case O_WARMUP: rc = cli_parse_double("--warmup", optarg, 0, 3600, &o.warmup_s, &err); break;
        case O_CANDIDATES: rc = cli_parse_long("--candidates", optarg, 1, 1000000, &candidates, &err); break;
        case O_HISTORY: rc = cli_parse_long("--history", optarg, 0, 1000000, &history, &err); break;
        case O_K: rc = cli_parse_long("--k", optarg, 1, 1000000, &k, &err); break;
        case O_EXPLAIN: rc = cli_parse_long("--explain", optarg, 0, 1000, &explain, &err); break;
        case O_TIMEOUT:
            if ((rc = cli_parse_long("--timeout", optarg, 1, 3600000, &v, &err)) == CLI_OK)
                o.timeout_ms = (int)v;
            break;
        case O_MAXIN:
            if ((rc = cli_parse_long("--max-inflight", optarg, 1, 1000000, &v, &err)) == CLI_OK)
                o.max_inflight = (int)v;
            break;
        case O_SEED:
            if ((rc = cli_parse_long("--seed", optarg, 0, 0x7fffffffffffffffL, &v, &err)) == CLI_OK)
                seed = v;
            break;
        case O_JSON: json = 1; break;
        case ':':
            snprintf(err.msg, sizeof err.msg, "%s needs a value", argv[optind - 1]);
            return s_usage_error(err.msg);
        default:
            snprintf(err.msg, sizeof err.msg, "unknown option '%s'", argv[optind - 1]);
            return s_usage_error(err.msg);
        }
        if (rc != CLI_OK)
            return s_usage_error(err.msg);
    }
    if (optind < argc) {
        snprintf(err.msg, sizeof err.msg, "unexpected argument '%s'", argv[optind]);
        return s_usage_error(err.msg);
    }
    if (!!db == !!in)
        return s_usage_error("give exactly one of --db PATH and --in FILE");
    if (have_clients && have_rate)
        return s_usage_error("--clients (closed loop) and --rate (open loop) exclude each other");
    if (have_dur && have_req)
        return s_usage_error("--duration and --requests exclude each other");
    if (have_rate)
        o.clients = 0;
    if (have_req)
        o.duration_s = 0;
    if (in && (history || candidates != 100 || k != 10 || explain))
        return s_usage_error("--candidates, --history, --k and --explain shape sampled "
                             "requests; with --in the file's requests are sent as they are");

    if (!seed)
        seed = (long long)time(NULL) ^ ((long long)getpid() << 20);
    cli_sampler *src = db ? cli_sampler_db(db, (int)candidates, (int)history, (int)k,
                                           (int)explain, (uint64_t)seed, &err)
                          : cli_sampler_file(in, &err);
    if (!src) {
        fprintf(stderr, "attn-load: %s\n", err.msg);
        return err.code == CLI_INVAL ? 2 : 1;
    }

    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &s_stop;

    void *ctx = zmq_ctx_new();
    if (!ctx) {
        fprintf(stderr, "attn-load: cannot create a ZeroMQ context\n");
        cli_sampler_destroy(&src);
        return 1;
    }
    cli_load_result *res = malloc(sizeof *res);   /* the histogram is ~44 KiB */
    if (!res) {
        fprintf(stderr, "attn-load: out of memory\n");
        cli_sampler_destroy(&src);
        zmq_ctx_term(ctx);
        return 1;
    }
    int rc = cli_load_run(ctx, &o, src, res, &err);
    zmq_ctx_term(ctx);
    int status = 0;
    if (rc == CLI_OK || rc == CLI_STOPPED) {
        size_t users, items, lines;
        cli_sampler_counts(src, &users, &items, &lines);
        if (json) {
            cJSON *j = cli_load_json(&o, res);
            cJSON *s = cJSON_AddObjectToObject(j, "source");
            if (db) {
                cJSON_AddStringToObject(s, "db", db);
                cJSON_AddNumberToObject(s, "users", (double)users);
                cJSON_AddNumberToObject(s, "items", (double)items);
                cJSON_AddNumberToObject(s, "candidates", (double)candidates);
                cJSON_AddNumberToObject(s, "history", (double)history);
                cJSON_AddNumberToObject(s, "k", (double)k);
            } else {
                cJSON_AddStringToObject(s, "in", in);
                cJSON_AddNumberToObject(s, "lines", (double)lines);
            }
            char *text = cJSON_PrintUnformatted(j);
            printf("%s\n", text ? text : "{}");
            free(text);
            cJSON_Delete(j);
        } else {
            if (db)
                printf("requests     sampled from %s: %zu %s, %zu items; %ld candidates, k %ld\n",
                       db, history ? (size_t)history : users,
                       history ? "random history items each" : "users", items, candidates, k);
            else
                printf("requests     replayed from %s (%zu lines, cycled)\n", in, lines);
            cli_load_print(stdout, &o, res);
        }
        uint64_t failed = res->sent - res->ok;
        if (rc == CLI_STOPPED) {
            fprintf(stderr, "attn-load: %s\n", err.msg);
            status = 1;
        } else if (failed || res->ok == 0) {
            fprintf(stderr, "attn-load: %llu of %llu measured requests did not get an ok reply\n",
                    (unsigned long long)failed, (unsigned long long)res->sent);
            status = 1;
        }
        cJSON_Delete(res->errors);
    } else {
        fprintf(stderr, "attn-load: %s\n", err.msg);
        status = rc == CLI_INVAL ? 2 : 1;
    }
    free(res);
    cli_sampler_destroy(&src);
    return status;
}
