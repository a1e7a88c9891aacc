/* attn-batch -- re-rank a JSONL file of requests through one or several
 * attnd daemons: replies out in input order, one line per input line,
 * many requests in flight, retries, rejects, progress, resumable.
 * The engine is cli_batch_run (clients/cli_batch.c); this is flags and
 * the summary.  docs/OPERATIONS.md has the whole story.
 *
 * Exit status: 0 every line answered ok; 1 some lines rejected, the job
 * stopped (interrupted, daemons silent) or a file failed; 2 bad usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "clients/cli.h"
#include "util/opt.h"
#include "util/pid.h"

static const util_opt s_opts[] = {
    {"endpoint", "E,...", "daemons to spread requests over",
     UTIL_OPT_CALL(cli_batch_opts, eps, cli_opt_endpoints), .def = CLI_DEFAULT_ENDPOINT},
    {"server-key", "FILE", "the server's public key (NAME.key): talk CURVE\n"
     "(docs/SECURITY.md); needs --client-key", UTIL_OPT_CALL(cli_batch_opts, eps.curve, cli_opt_server_key),
     .def = ""},
    {"client-key", "FILE", "this client's secret key (NAME.key_secret, mode 0600)",
     UTIL_OPT_CALL(cli_batch_opts, eps.curve, cli_opt_client_key), .def = ""},
    {"in", "FILE", "JSONL requests, or - for stdin", UTIL_OPT_STR(cli_batch_opts, in),
     .flags = UTIL_OPT_REQUIRED},
    {"out", "FILE", "JSONL replies, or - for stdout; the user's \"id\" is kept",
     UTIL_OPT_STR(cli_batch_opts, out), .flags = UTIL_OPT_REQUIRED},
    {"rejects", "FILE", "lines that failed, with the reason (JSONL)",
     UTIL_OPT_STR(cli_batch_opts, rejects)},
    {"window", "N", "requests in flight", UTIL_OPT_INT(cli_batch_opts, window, 1, 100000)},
    {"timeout", "MS", "wait per attempt", UTIL_OPT_INT(cli_batch_opts, timeout_ms, 1, 3600000)},
    {"retries", "N", "retries after a timeout, busy, unavailable or rate_limited, with\n"
     "exponential backoff from --backoff MS", UTIL_OPT_INT(cli_batch_opts, retries, 0, 100)},
    {"backoff", "MS", "the first retry's delay; it doubles, capped at 32x",
     UTIL_OPT_INT(cli_batch_opts, backoff_ms, 0, 600000)},
    {"resume", NULL, "continue an interrupted job from what --out already holds",
     UTIL_OPT_FLAG(cli_batch_opts, resume, 1)},
    {"force", NULL, "overwrite an existing --out", UTIL_OPT_FLAG(cli_batch_opts, force, 1)},
    {"no-progress", NULL, "no progress bar (it is drawn only on a terminal anyway)",
     UTIL_OPT_FLAG(cli_batch_opts, progress, 0)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attn-batch",
    .usage = "[--endpoint E[,E2...]] --in FILE --out FILE [--rejects FILE]\n"
             "                  [--window N] [--timeout MS] [--retries N] [--backoff MS]\n"
             "                  [--resume | --force] [--no-progress]\n"
             "                  [--server-key FILE --client-key FILE]",
    .about =
        "\n"
        "Send each line of --in (a JSON request, e.g. {\"op\":\"rank\",\"user\":...}) to attnd\n"
        "and write each reply to --out, in input order, one line per input line.",
    UTIL_OPT_ROWS(s_opts),
    .tail =
        "A line that fails for good gets an error reply as its output line\n"
        "({\"id\":...,\"ok\":false,\"error\":{...}}) and an entry in --rejects.\n"
        "Exit status: 0 all lines ok; 1 rejects, stopped, or I/O failure; 2 bad usage.",
};

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
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
    fprintf(stderr, "; %llu retries (%llu timeouts, %llu busy/unavailable/rate_limited)",
            (unsigned long long)st->retries, (unsigned long long)st->timeouts,
            (unsigned long long)st->busy);
    if (st->stale)
        fprintf(stderr, "; %llu late replies dropped", (unsigned long long)st->stale);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    cli_batch_opts o;
    if (util_pid_cache_init() != 0) {   /* libzmq's fork checks without a system call */
        fprintf(stderr, "%s: cannot register a fork handler\n", argv[0]);
        return 1;
    }
    cli_batch_opts_init(&o);
    o.progress = isatty(STDERR_FILENO);
    int status = util_opt_main(&s_cmd, argc, argv, &o, NULL);
    if (status >= 0)
        return status;
    cli_err err = {0};

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
