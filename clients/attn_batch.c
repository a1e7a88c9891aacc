/* attn-batch -- re-rank a JSONL file of requests through one or several
 * attnd daemons: replies out in input order, one line per input line,
 * many requests in flight, retries, rejects, progress, resumable.
 * The engine is cli_batch_run (clients/cli_batch.c); this is flags and
 * the summary.  docs/OPERATIONS.md has the whole story.
 *
 * Exit status: 0 every line answered ok; 1 some lines rejected, the job
 * stopped (interrupted, daemons silent) or a file failed; 2 bad usage.
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "clients/cli.h"

static const char s_usage[] =
    "usage: attn-batch [--endpoint E[,E2...]] --in FILE --out FILE [--rejects FILE]\n"
    "                  [--window N] [--timeout MS] [--retries N] [--backoff MS]\n"
    "                  [--resume | --force] [--no-progress]\n"
    "\n"
    "Send each line of --in (a JSON request, e.g. {\"op\":\"rank\",\"user\":...}) to attnd\n"
    "and write each reply to --out, in input order, one line per input line.\n"
    "\n"
    "  --endpoint E,...  daemons to spread requests over (default " CLI_DEFAULT_ENDPOINT ")\n"
    "  --in FILE         JSONL requests, or - for stdin\n"
    "  --out FILE        JSONL replies, or - for stdout; the user's \"id\" is kept\n"
    "  --rejects FILE    lines that failed, with the reason (JSONL)\n"
    "  --window N        requests in flight (default 64)\n"
    "  --timeout MS      wait per attempt (default 5000)\n"
    "  --retries N       retries after a timeout, busy or unavailable (default 5),\n"
    "                    with exponential backoff from --backoff MS (default 100)\n"
    "  --resume          continue an interrupted job from what --out already holds\n"
    "  --force           overwrite an existing --out\n"
    "  --no-progress     no progress bar (it is drawn only on a terminal anyway)\n"
    "  -h, --help        this text\n"
    "\n"
    "A line that fails for good gets an error reply as its output line\n"
    "({\"id\":...,\"ok\":false,\"error\":{...}}) and an entry in --rejects.\n"
    "Exit status: 0 all lines ok; 1 rejects, stopped, or I/O failure; 2 bad usage.\n";

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_usage_error(const char *msg)
{
    fprintf(stderr, "attn-batch: %s\nTry 'attn-batch --help'.\n", msg);
    return 2;
}

static void s_summary(const cli_batch_stats *st)
{
    char codes[512] = "";
    size_t used = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, st->reject_codes) {
        int w = snprintf(codes + used, sizeof codes - used, "%s%s %.0f", used ? ", " : " (",
                         e->string, e->valuedouble);
        if (w < 0 || (size_t)w >= sizeof codes - used)
            break;
        used += (size_t)w;
    }
    if (used && used + 1 < sizeof codes)
        strcat(codes, ")");
    double rate = st->seconds > 0 ? (double)st->lines / st->seconds : 0;
    fprintf(stderr, "attn-batch: %llu lines in %.1f s (%.0f/s): %llu ok, %llu rejected%s",
            (unsigned long long)st->lines, st->seconds, rate, (unsigned long long)st->ok,
            (unsigned long long)st->rejected, codes);
    if (st->skipped)
        fprintf(stderr, "; %llu lines were already done", (unsigned long long)st->skipped);
    fprintf(stderr, "; %llu retries (%llu timeouts, %llu busy/unavailable)",
            (unsigned long long)st->retries, (unsigned long long)st->timeouts,
            (unsigned long long)st->busy);
    if (st->stale)
        fprintf(stderr, "; %llu late replies dropped", (unsigned long long)st->stale);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    enum { O_ENDPOINT = 256, O_IN, O_OUT, O_REJECTS, O_WINDOW, O_TIMEOUT, O_RETRIES,
           O_BACKOFF, O_RESUME, O_FORCE, O_NOPROGRESS };
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, O_ENDPOINT}, {"in", required_argument, 0, O_IN},
        {"out", required_argument, 0, O_OUT}, {"rejects", required_argument, 0, O_REJECTS},
        {"window", required_argument, 0, O_WINDOW}, {"timeout", required_argument, 0, O_TIMEOUT},
        {"retries", required_argument, 0, O_RETRIES}, {"backoff", required_argument, 0, O_BACKOFF},
        {"resume", no_argument, 0, O_RESUME}, {"force", no_argument, 0, O_FORCE},
        {"no-progress", no_argument, 0, O_NOPROGRESS}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    cli_batch_opts o;
    cli_batch_opts_init(&o);
    o.progress = isatty(STDERR_FILENO);
    cli_err err = {0};
    long v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int rc = CLI_OK;
        switch (c) {
        case 'h': fputs(s_usage, stdout); return 0;
        case O_ENDPOINT: rc = cli_endpoints_parse(optarg, &o.eps, &err); break;
        case O_IN: o.in = optarg; break;
        case O_OUT: o.out = optarg; break;
        case O_REJECTS: o.rejects = optarg; break;
        case O_WINDOW:
            if ((rc = cli_parse_long("--window", optarg, 1, 100000, &v, &err)) == CLI_OK)
                o.window = (int)v;
            break;
        case O_TIMEOUT:
            if ((rc = cli_parse_long("--timeout", optarg, 1, 3600000, &v, &err)) == CLI_OK)
                o.timeout_ms = (int)v;
            break;
        case O_RETRIES:
            if ((rc = cli_parse_long("--retries", optarg, 0, 100, &v, &err)) == CLI_OK)
                o.retries = (int)v;
            break;
        case O_BACKOFF:
            if ((rc = cli_parse_long("--backoff", optarg, 0, 600000, &v, &err)) == CLI_OK)
                o.backoff_ms = (int)v;
            break;
        case O_RESUME: o.resume = 1; break;
        case O_FORCE: o.force = 1; break;
        case O_NOPROGRESS: o.progress = 0; break;
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
    if (!o.in || !o.out)
        return s_usage_error("--in FILE and --out FILE are required");

    /* No SA_RESTART: the wait must return so the job can stop cleanly and
     * leave an output that --resume continues. */
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a closed stdout is a write error, reported */
    o.stop = &s_stop;

    void *ctx = zmq_ctx_new();
    if (!ctx) {
        fprintf(stderr, "attn-batch: cannot create a ZeroMQ context\n");
        return 1;
    }
    cli_batch_stats st;
    int rc = cli_batch_run(ctx, &o, &st, &err);
    zmq_ctx_term(ctx);
    if (rc == CLI_OK || rc == CLI_FAILED || rc == CLI_STOPPED)
        s_summary(&st);
    cJSON_Delete(st.reject_codes);
    if (rc == CLI_OK)
        return 0;
    if (rc == CLI_FAILED)
        fprintf(stderr, "attn-batch: %s%s%s\n", err.msg, o.rejects ? "; see " : "",
                o.rejects ? o.rejects : "");
    else
        fprintf(stderr, "attn-batch: %s\n", err.msg);
    return rc == CLI_INVAL ? 2 : 1;
}
