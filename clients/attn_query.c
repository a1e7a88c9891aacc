/* attn-query -- one request to attnd from flags, the reply as a table a
 * person can read (or raw with --json).
 *
 * Exit status: 0 the daemon answered ok (and, for --op health, is ready;
 * for --record, stored the event or had it already); 1 no reply within the
 * timeout, an error reply, or a rejected event; 2 bad usage.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "clients/cli.h"
#include "util/opt.h"

enum { S_RANK, S_HEALTH, S_INFO, S_STATS, S_RELOAD, S_RECORD };
static const char *const s_ops[] = {"rank", "health", "info", "stats", "reload", "record",
                                    NULL};

typedef struct s_args {
    cli_endpoints eps;
    const char *user, *history, *weights, *candidates;
    const char *record, *event_id;   /* --record U:I[:K], its optional event_id */
    int64_t ts;                      /* --ts; -1: now */
    int op;                   /* S_RANK, ... (s_ops) */
    int k, explain, timeout_ms, retries;
    int exclude_seen, json;
} s_args;

static const util_opt s_opts[] = {
    {"endpoint", "E", "daemon endpoint, or a comma list to fail over in order",
     UTIL_OPT_CALL(s_args, eps, cli_opt_endpoints), .def = CLI_DEFAULT_ENDPOINT},
    {"server-key", "FILE", "the server's public key (NAME.key): talk CURVE\n"
     "(docs/SECURITY.md); needs --client-key", UTIL_OPT_CALL(s_args, eps.curve, cli_opt_server_key),
     .def = ""},
    {"client-key", "FILE", "this client's secret key (NAME.key_secret, mode 0600)",
     UTIL_OPT_CALL(s_args, eps.curve, cli_opt_client_key), .def = ""},
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
    {"record", "U:I[:K]", "record that user U interacted with item I (kind K,\n"
     "default view) now; the reply says stored or duplicate", UTIL_OPT_STR(s_args, record)},
    {"event-id", "ID", "with --record: the event's id (a resend with the same id\n"
     "is stored once; default: identified by user, item, time, kind)",
     UTIL_OPT_STR(s_args, event_id)},
    {"ts", "T", "with --record: unix seconds instead of now",
     UTIL_OPT_I64(s_args, ts, 0, 9007199254740991LL), .def = "now"},
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
             "[--endpoint E] --record USER:ITEM[:KIND] [--event-id ID] [--ts T] [--json]\n"
             "[--endpoint E] --op health|info|stats|reload [--json] [--timeout MS]\n"
             "... [--server-key FILE --client-key FILE]   (CURVE, docs/SECURITY.md)",
    .about =
        "\n"
        "Ask attnd to rank candidates for a user (or an anonymous history) and print\n"
        "the ranking with item titles and the history items that explain each one;\n"
        "or record one event.",
    UTIL_OPT_ROWS(s_opts),
    .tail = "Exit status: 0 ok; 1 no reply, an error reply, (health) not ready or (record)\n"
            "the event rejected; 2 bad usage.",
};

/* --record U:I[:K] as one event: the user ends at the first ':', a kind
 * follows the last one.  -1 with err when a part is empty. */
static int s_record_event(const s_args *a, cJSON *req, cli_err *err)
{
    const char *spec = a->record, *c1 = strchr(spec, ':');
    const char *c2 = c1 ? strrchr(c1 + 1, ':') : NULL;
    const char *item_end = c2 ? c2 : spec + strlen(spec);
    if (!c1 || c1 == spec || item_end == c1 + 1 || (c2 && !c2[1]))
        return cli_fail(err, CLI_INVAL, "--record: expected USER:ITEM[:KIND], got '%s'", spec);
    char *user = strndup(spec, (size_t)(c1 - spec));
    char *item = strndup(c1 + 1, (size_t)(item_end - c1 - 1));
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(req, "events"), ev);
    cJSON_AddStringToObject(ev, "user", user ? user : "");
    cJSON_AddStringToObject(ev, "item", item ? item : "");
    cJSON_AddNumberToObject(ev, "ts", (double)(a->ts >= 0 ? a->ts : (int64_t)time(NULL)));
    if (c2)
        cJSON_AddStringToObject(ev, "kind", c2 + 1);
    if (a->event_id)
        cJSON_AddStringToObject(ev, "event_id", a->event_id);
    free(user);
    free(item);
    return 0;
}

/* The request as JSON text (caller frees), or NULL with msg filled. */
static char *s_request(const s_args *a, cli_err *err)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", s_ops[a->op]);
    cJSON_AddStringToObject(req, "id", "q1");
    if (a->op == S_RECORD && s_record_event(a, req, err) != 0)
        goto fail;
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
static int s_check(s_args *a, uint64_t given)
{
    if (a->record && util_opt_given(&s_cmd, given, "op") && a->op != S_RECORD)
        return util_opt_fail(&s_cmd, "--record asks for op record, not --op %s", s_ops[a->op]);
    if (a->record)
        a->op = S_RECORD;
    if (a->op == S_RECORD && !a->record)
        return util_opt_fail(&s_cmd, "op record needs --record USER:ITEM[:KIND]");
    if ((a->event_id || util_opt_given(&s_cmd, given, "ts")) && !a->record)
        return util_opt_fail(&s_cmd, "--event-id and --ts go with --record");
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

/* Print a reply; the exit status it means.  Recording a duplicate is a
 * success (the event is stored); a rejected event is not. */
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
        /* One event recorded: a rejection means it was not stored. */
        const cJSON *rej = cJSON_GetObjectItemCaseSensitive(reply, "rejected");
        if (a->op == S_RECORD && cJSON_GetArraySize(rej) > 0) {
            const char *why = cli_json_str(rej->child, "reason");
            fprintf(stderr, "attn-query: the event was not stored: %s\n", why ? why : "?");
            status = 1;
        }
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
    s_args a = {.op = S_RANK, .k = 10, .explain = 3, .timeout_ms = 2000, .retries = 2,
                .ts = -1};
    cli_endpoints_parse(CLI_DEFAULT_ENDPOINT, &a.eps, NULL);
    uint64_t given = 0;
    int status = util_opt_main(&s_cmd, argc, argv, &a, &given);
    if (status < 0)
        status = s_check(&a, given);
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
    else if (!client) {
        fprintf(stderr, "attn-query: %s\n", err.msg);
        status = err.code == CLI_INVAL ? 2 : 1;
    } else if (cli_req_call(client, req, strlen(req), a.timeout_ms, a.retries, &text, &len,
                            &err) != CLI_OK)
        /* A CURVE handshake the server refuses looks like silence from here. */
        fprintf(stderr, "attn-query: %s%s\n", err.msg, a.eps.curve.server[0] && err.code ==
                CLI_TIMEOUT ? " (with CURVE: is --server-key the server's key, and is this "
                "client's key allowed? attnd logs every refusal)" : "");
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
