/* attn-query -- one request to attnd from flags, the reply as a table a
 * person can read (or raw with --json).
 *
 * Exit status: 0 the daemon answered ok (and, for --op health, is ready);
 * 1 no reply within the timeout, or an error reply; 2 bad usage.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clients/cli.h"

static const char s_usage[] =
    "usage: attn-query [--endpoint E] (--user U | --history A,B,...) --candidates A,B,...\n"
    "                  [-k K] [--explain N] [--exclude-seen] [--weights W,...]\n"
    "                  [--json] [--timeout MS] [--retries N]\n"
    "       attn-query [--endpoint E] --op health|info|stats|reload [--json] [--timeout MS]\n"
    "\n"
    "Ask attnd to rank candidates for a user (or an anonymous history) and print\n"
    "the ranking with item titles and the history items that explain each one.\n"
    "\n"
    "  --endpoint E        daemon endpoint, or a comma list to fail over in order\n"
    "                      (default " CLI_DEFAULT_ENDPOINT ")\n"
    "  --user U            the user's ext_id; their recent history is used\n"
    "  --history A,B,...   instead of --user: item ext_ids, oldest first\n"
    "  --weights W,...     with --history: one weight > 0 per item\n"
    "  --candidates A,...  item ext_ids to rank (required for rank)\n"
    "  -k, --k K           results wanted (default 10)\n"
    "  --explain N         history items shown per result (default 3, 0 = none)\n"
    "  --exclude-seen      drop candidates the user already interacted with\n"
    "  --op OP             rank (default), health, info, stats or reload\n"
    "  --json              print the raw reply instead of a table\n"
    "  --timeout MS        wait per attempt (default 2000)\n"
    "  --retries N         attempts after the first, each on a fresh socket (default 2)\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 ok; 1 no reply, an error reply, or (health) not ready; 2 bad usage.\n";

static int s_usage_error(const char *msg)
{
    fprintf(stderr, "attn-query: %s\nTry 'attn-query --help'.\n", msg);
    return 2;
}

typedef struct s_args {
    const char *endpoint, *user, *history, *weights, *candidates, *op;
    long k, explain, timeout_ms, retries;
    int exclude_seen, json;
} s_args;

/* The request as JSON text (caller frees), or NULL with msg filled. */
static char *s_request(const s_args *a, cli_err *err)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", a->op);
    cJSON_AddStringToObject(req, "id", "q1");
    if (!strcmp(a->op, "rank")) {
        cJSON *list;
        if (a->user)
            cJSON_AddStringToObject(req, "user", a->user);
        if (a->history) {
            if (cli_parse_list("--history", a->history, &list, err) != CLI_OK)
                goto fail;
            cJSON_AddItemToObject(req, "history", list);
        }
        if (a->weights) {
            if (cli_parse_list("--weights", a->weights, &list, err) != CLI_OK)
                goto fail;
            /* Weights are numbers on the wire. */
            cJSON *nums = cJSON_CreateArray(), *w;
            cJSON_AddItemToObject(req, "weights", nums);
            cJSON_ArrayForEach(w, list) {
                double v;
                if (cli_parse_double("--weights", w->valuestring, 1e-30, 1e30, &v, err) != CLI_OK) {
                    cJSON_Delete(list);
                    goto fail;
                }
                cJSON_AddItemToArray(nums, cJSON_CreateNumber(v));
            }
            cJSON_Delete(list);
        }
        if (cli_parse_list("--candidates", a->candidates, &list, err) != CLI_OK)
            goto fail;
        cJSON_AddItemToObject(req, "candidates", list);
        cJSON_AddNumberToObject(req, "k", (double)a->k);
        cJSON_AddNumberToObject(req, "explain", (double)a->explain);
        if (a->exclude_seen)
            cJSON_AddTrueToObject(req, "exclude_seen");
        cJSON_AddTrueToObject(req, "titles");
    }
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!text)
        cli_fail(err, CLI_NOMEM, "out of memory");
    return text;
fail:
    cJSON_Delete(req);
    return NULL;
}

int main(int argc, char **argv)
{
    enum { O_USER = 256, O_HISTORY, O_WEIGHTS, O_CANDIDATES, O_EXPLAIN, O_EXCLUDE, O_OP,
           O_JSON, O_TIMEOUT, O_RETRIES, O_ENDPOINT };
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, O_ENDPOINT}, {"user", required_argument, 0, O_USER},
        {"history", required_argument, 0, O_HISTORY}, {"weights", required_argument, 0, O_WEIGHTS},
        {"candidates", required_argument, 0, O_CANDIDATES}, {"k", required_argument, 0, 'k'},
        {"explain", required_argument, 0, O_EXPLAIN}, {"exclude-seen", no_argument, 0, O_EXCLUDE},
        {"op", required_argument, 0, O_OP}, {"json", no_argument, 0, O_JSON},
        {"timeout", required_argument, 0, O_TIMEOUT}, {"retries", required_argument, 0, O_RETRIES},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    s_args a = {.endpoint = CLI_DEFAULT_ENDPOINT, .op = "rank", .k = 10, .explain = 3,
                .timeout_ms = 2000, .retries = 2};
    cli_err err = {0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hk:", opts, NULL)) != -1) {
        int rc = CLI_OK;
        switch (c) {
        case 'h': fputs(s_usage, stdout); return 0;
        case O_ENDPOINT: a.endpoint = optarg; break;
        case O_USER: a.user = optarg; break;
        case O_HISTORY: a.history = optarg; break;
        case O_WEIGHTS: a.weights = optarg; break;
        case O_CANDIDATES: a.candidates = optarg; break;
        case 'k': rc = cli_parse_long("-k", optarg, 1, 1000000, &a.k, &err); break;
        case O_EXPLAIN: rc = cli_parse_long("--explain", optarg, 0, 1000, &a.explain, &err); break;
        case O_EXCLUDE: a.exclude_seen = 1; break;
        case O_OP: a.op = optarg; break;
        case O_JSON: a.json = 1; break;
        case O_TIMEOUT:
            rc = cli_parse_long("--timeout", optarg, 1, 3600000, &a.timeout_ms, &err);
            break;
        case O_RETRIES: rc = cli_parse_long("--retries", optarg, 0, 100, &a.retries, &err); break;
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
    int rank = !strcmp(a.op, "rank");
    if (!rank && strcmp(a.op, "health") && strcmp(a.op, "info") && strcmp(a.op, "stats") &&
        strcmp(a.op, "reload"))
        return s_usage_error("--op: expected rank, health, info, stats or reload");
    if (rank) {
        if (!!a.user == !!a.history)
            return s_usage_error("give exactly one of --user U and --history A,B,...");
        if (!a.candidates)
            return s_usage_error("--candidates is required to rank");
        if (a.weights && !a.history)
            return s_usage_error("--weights goes with --history");
    } else if (a.user || a.history || a.candidates || a.weights) {
        return s_usage_error("--user, --history, --candidates and --weights are for rank only");
    }
    cli_endpoints eps;
    if (cli_endpoints_parse(a.endpoint, &eps, &err) != CLI_OK)
        return s_usage_error(err.msg);
    char *req = s_request(&a, &err);
    if (!req)
        return s_usage_error(err.msg);

    int status = 1;
    void *ctx = zmq_ctx_new();
    cli_req *client = ctx ? cli_req_new(ctx, &eps, &err) : NULL;
    char *text = NULL;
    size_t len = 0;
    if (!ctx) {
        fprintf(stderr, "attn-query: cannot create a ZeroMQ context\n");
    } else if (!client) {
        fprintf(stderr, "attn-query: %s\n", err.msg);
    } else if (cli_req_call(client, req, strlen(req), (int)a.timeout_ms, (int)a.retries, &text,
                            &len, &err) != CLI_OK) {
        fprintf(stderr, "attn-query: %s\n", err.msg);
    } else {
        cJSON *reply = cli_json_object(text, len);
        const char *code, *message;
        int st = reply ? cli_reply_status(reply, &code, &message) : -1;
        if (a.json)
            printf("%s\n", text);
        if (st < 0) {
            fprintf(stderr, "attn-query: %s answered with something that is not a protocol reply%s%.200s\n",
                    cli_req_endpoint(client), a.json ? "" : ": ", a.json ? "" : text);
        } else if (st == 0) {
            fprintf(stderr, "attn-query: error %s: %s\n", code, message);
        } else {
            if (!a.json)
                cli_table_print(stdout, reply, rank);
            status = 0;
            /* A health check is a readiness probe: not ready is a failure. */
            if (!strcmp(a.op, "health") &&
                cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "ready"))) {
                fprintf(stderr, "attn-query: %s is live but not ready (no snapshot loaded)\n",
                        cli_req_endpoint(client));
                status = 1;
            }
        }
        cJSON_Delete(reply);
    }
    free(text);
    free(req);
    cli_req_destroy(&client);
    if (ctx)
        zmq_ctx_term(ctx);
    if (fflush(stdout) != 0)
        status = 1;
    return status;
}
