/* cmd_model.c -- 'attnctl model': list model versions, choose the active one.
 *
 *     attnctl model list DB [--json]
 *     attnctl model activate DB V
 *     attnctl model trim DB V [--max-loss X]      (tools/model_trim.c)
 *
 * Activation loads and checks the version first (store_model_activate), so
 * a model that a daemon could not serve is refused here, with the reason,
 * and the version being served stays as it was.  Running daemons pick the
 * change up at their next reload.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "store/store.h"
#include "tools/cmd.h"
#include "util/json.h"
#include "util/opt.h"

enum { S_LIST, S_ACTIVATE };

typedef struct s_args {
    int what;             /* S_LIST or S_ACTIVATE */
    const char *db;
    int64_t version;      /* activate: -1 until given */
    int json;
} s_args;

static const char *const s_whats[] = {"list", "activate", NULL};

static const util_opt s_pos[] = {
    {"list|activate", NULL, NULL, UTIL_OPT_ENUM(s_args, what, s_whats, NULL)},
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
    {"VERSION", NULL, NULL, UTIL_OPT_I64(s_args, version, 0, INT64_MAX),
     .flags = UTIL_OPT_OPTIONAL},
};

static const util_opt s_opts[] = {
    {"json", NULL, "list: one JSON array", UTIL_OPT_FLAG(s_args, json, 1)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl model",
    .usage = "list DB [--json]\nactivate DB VERSION\ntrim DB VERSION [options]",
    .about = "list      every model version: created (UTC), heads, d_model, active, metrics\n"
             "activate  check that VERSION loads, then make it the one attnd serves\n"
             "trim      cut the heads, the self-attention block or its feed-forward layer\n"
             "          that do not pay ('attnctl model trim --help')",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
};

static int s_open(const char *path, int flags, store **db)
{
    store_err err;
    if (store_open(db, path, flags, 10000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl model: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* A JSON value: text that parses is embedded as is; anything else (a row
 * edited by hand) as a string, so the output always parses. */
static void s_json_value(const char *s)
{
    if (!s) {
        fputs("null", stdout);
        return;
    }
    cJSON *v = cJSON_Parse(s);
    int ok = v != NULL;
    cJSON_Delete(v);
    if (ok) {
        fputs(s, stdout);
        return;
    }
    size_t len = strlen(s);
    char *q = malloc(UTIL_JSON_QUOTED_MAX(len));
    if (!q) {
        fputs("null", stdout);   /* out of memory: still valid JSON */
        return;
    }
    fwrite(q, 1, util_json_quote(q, s, len), stdout);
    free(q);
}

static int s_list(const char *path, int json)
{
    store *db;
    if (s_open(path, STORE_READONLY, &db))
        return 1;
    store_model_info *list;
    size_t n;
    store_err err;
    int rc = store_model_list(db, &list, &n, &err);
    store_close(&db);
    if (rc != STORE_OK) {
        fprintf(stderr, "attnctl model: %s\n", err.msg);
        return 1;
    }
    if (json) {
        /* config and metrics are JSON already (checked on save), so they
         * are embedded as values, not strings. */
        printf("[");
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"version\":%lld,\"created_at\":%lld,\"heads\":%d,\"d_model\":%d,"
                   "\"active\":%s,\"config\":", i ? "," : "", (long long)list[i].version,
                   (long long)list[i].created_at, list[i].heads, list[i].d_model,
                   list[i].active ? "true" : "false");
            s_json_value(list[i].config);
            fputs(",\"metrics\":", stdout);
            s_json_value(list[i].metrics);
            putchar('}');
        }
        printf("]\n");
    } else {
        printf("%-8s %-20s %5s %7s %6s  %s\n", "version", "created (UTC)", "heads", "d_model",
               "active", "metrics");
        for (size_t i = 0; i < n; i++) {
            char when[32] = "?";
            time_t t = (time_t)list[i].created_at;
            struct tm tm;
            if (gmtime_r(&t, &tm))
                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
            printf("%-8lld %-20s %5d %7d %6s  ", (long long)list[i].version, when, list[i].heads,
                   list[i].d_model, list[i].active ? "*" : "");
            if (list[i].metrics)
                fputs(list[i].metrics, stdout);
            else if (list[i].version == 0)
                fputs("(identity)", stdout);
            else
                fputs("-", stdout);
            putchar('\n');
        }
    }
    store_model_list_free(&list, n);
    return 0;
}

static int s_activate(const char *path, int64_t v)
{
    store *db;
    if (s_open(path, STORE_READWRITE, &db))
        return 1;
    store_err err;
    int64_t was = -1;
    if (store_model_active(db, &was, &err) != STORE_OK)
        was = -1;
    int rc = store_model_activate(db, v, &err);
    store_close(&db);
    if (rc != STORE_OK) {
        fprintf(stderr, "attnctl model activate: %s\n", err.msg);
        return 1;
    }
    if (was >= 0 && was != v)
        printf("%s: model version %lld is active (was %lld)\n", path, (long long)v,
               (long long)was);
    else
        printf("%s: model version %lld is active\n", path, (long long)v);
    return 0;
}

int cmd_model(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "trim"))
        return cmd_model_trim(argc - 1, argv + 1);
    s_args a = {.version = -1};
    uint64_t given;
    int rc = util_opt_main(&s_cmd, argc, argv, &a, &given);
    if (rc >= 0)
        return rc;
    if (a.what == S_LIST) {
        if (util_opt_given(&s_cmd, given, "VERSION"))
            return util_opt_fail(&s_cmd, "model list takes no VERSION");
        return s_list(a.db, a.json);
    }
    if (!util_opt_given(&s_cmd, given, "VERSION"))
        return util_opt_fail(&s_cmd, "model activate needs DB and VERSION (see 'attnctl model "
                                     "list %s')", a.db);
    if (a.json)
        return util_opt_fail(&s_cmd, "--json goes with model list");
    return s_activate(a.db, a.version);
}
