/* attn-query -- one request to attnd from flags, the reply as a table a
 * person can read (or raw with --json).
 *
 * Exit status: 0 the daemon answered ok (and, for --op health, is ready);
 * 1 no reply within the timeout, or an error reply; 2 bad usage.
 */
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clients/cli.h"
#include "util/opt.h"

enum { S_RANK, S_HEALTH, S_INFO, S_STATS, S_RELOAD };
static const char *const s_ops[] = {"rank", "health", "info", "stats", "reload", NULL};

typedef struct s_args {
    cli_endpoints eps;
    const char *user, *history, *weights, *candidates;
    int op;                   /* S_RANK, ... (s_ops) */
    int k, explain, timeout_ms, retries;
    int exclude_seen, json;
} s_args;

static const util_opt s_opts[] = {
    {"endpoint", "E", "daemon endpoint, or a comma list to fail over in order",
     UTIL_OPT_CALL(s_args, eps, cli_opt_endpoints), .def = CLI_DEFAULT_ENDPOINT},
    {"user", "U", "the user's ext_id; their recent history is used", UTIL_OPT_STR(s_args, user)},
    {"history", "A,B,...", "instead of --user: item ext_ids, oldest first",
     UTIL_OPT_STR(s_args, history)},
    {"weights", "W,...", "with --history: one weight > 0 per item", UTIL_OPT_STR(s_args, weights)},
    {"candidates", "A,...", "item ext_ids to rank (required for rank)",
     UTIL_OPT_STR(s_args, candidates)},
    {"k", "K", "results wanted", UTIL_OPT_INT(s_args, k, 1, 1000000), .shortc = 'k'},
    {"explain", "N", "history items shown per result, 0 = none",
     UTIL_OPT_INT(s_args, explain, 0, 1000)},
    {"exclude-seen", NULL, "drop candidates the user already interacted with",
     UTIL_OPT_FLAG(s_args, exclude_seen, 1)},
    {"op", NULL, "what to ask", UTIL_OPT_ENUM(s_args, op, s_ops, NULL)},
    {"json", NULL, "print the raw reply instead of a table", UTIL_OPT_FLAG(s_args, json, 1)},
    {"timeout", "MS", "wait per attempt", UTIL_OPT_INT(s_args, timeout_ms, 1, 3600000)},
    {"retries", "N", "attempts after the first, each on a fresh socket",
     UTIL_OPT_INT(s_args, retries, 0, 100)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attn-query",
    .usage = "[--endpoint E] (--user U | --history A,B,...) --candidates A,B,...\n"
             "                  [-k K] [--explain N] [--exclude-seen] [--weights W,...]\n"
             "                  [--json] [--timeout MS] [--retries N]\n"
             "[--endpoint E] --op health|info|stats|reload [--json] [--timeout MS]",
    .about =
        "\n"
        "Ask attnd to rank candidates for a user (or an anonymous history) and print\n"
        "the ranking with item titles and the history items that explain each one.",
    UTIL_OPT_ROWS(s_opts),
    .tail = "Exit status: 0 ok; 1 no reply, an error reply, or (health) not ready; 2 bad usage.",
};

/* The request as JSON text (caller frees), or NULL with msg filled. */
static char *s_request(const s_args *a, cli_err *err)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", s_ops[a->op]);
    cJSON_AddStringToObject(req, "id", "q1");
    if (a->op == S_RANK) {
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

/* What the table cannot say: which flags each op takes.  -1 or 2 (said). */
static int s_check(const s_args *a)
{
    if (a->op != S_RANK) {
        if (a->user || a->history || a->candidates || a->weights)
            return util_opt_fail(&s_cmd, "--user, --history, --candidates and --weights are "
                                         "for rank only");
        return -1;
    }
    if (!!a->user == !!a->history)
        return util_opt_fail(&s_cmd, "give exactly one of --user U and --history A,B,...");
    if (!a->candidates)
        return util_opt_fail(&s_cmd, "--candidates is required to rank");
    if (a->weights && !a->history)
        return util_opt_fail(&s_cmd, "--weights goes with --history");
    return -1;
}

/* Print a reply; the exit status it means. */
static int s_answer(const s_args *a, const cli_req *client, const char *text, size_t len)
{
    cJSON *reply = cli_json_object(text, len);
    const char *code, *message;
    int st = reply ? cli_reply_status(reply, &code, &message) : -1, status = 1;
    if (a->json)
        printf("%s\n", text);
    if (st < 0) {
        fprintf(stderr, "attn-query: %s answered with something that is not a protocol "
                        "reply%s%.200s\n", cli_req_endpoint(client), a->json ? "" : ": ",
                a->json ? "" : text);
    } else if (st == 0) {
        fprintf(stderr, "attn-query: error %s: %s\n", code, message);
    } else {
        if (!a->json)
            cli_table_print(stdout, reply, a->op == S_RANK);
        status = 0;
        /* A health check is a readiness probe: not ready is a failure. */
        if (a->op == S_HEALTH &&
            cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(reply, "ready"))) {
            fprintf(stderr, "attn-query: %s is live but not ready (no snapshot loaded)\n",
                    cli_req_endpoint(client));
            status = 1;
        }
    }
    cJSON_Delete(reply);
    return status;
}

int main(int argc, char **argv)
{
    s_args a = {.op = S_RANK, .k = 10, .explain = 3, .timeout_ms = 2000, .retries = 2};
    cli_endpoints_parse(CLI_DEFAULT_ENDPOINT, &a.eps, NULL);
    int status = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (status < 0)
        status = s_check(&a);
    if (status >= 0)
        return status;
    cli_err err = {0};
    char *req = s_request(&a, &err);
    if (!req)
        return util_opt_fail(&s_cmd, "%s", err.msg);

    status = 1;
    void *ctx = zmq_ctx_new();
    cli_req *client = ctx ? cli_req_new(ctx, &a.eps, &err) : NULL;
    char *text = NULL;
    size_t len = 0;
    if (!ctx)
        fprintf(stderr, "attn-query: cannot create a ZeroMQ context\n");
    else if (!client)
        fprintf(stderr, "attn-query: %s\n", err.msg);
    else if (cli_req_call(client, req, strlen(req), a.timeout_ms, a.retries, &text, &len,
                          &err) != CLI_OK)
        fprintf(stderr, "attn-query: %s\n", err.msg);
    else
        status = s_answer(&a, client, text, len);
    free(text);
    free(req);
    cli_req_destroy(&client);
    if (ctx)
        zmq_ctx_term(ctx);
    if (fflush(stdout) != 0)
        status = 1;
    return status;
}
