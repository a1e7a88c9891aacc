/* cmd_model.c -- 'attnctl model': list model versions, choose the active one.
 *
 *     attnctl model list DB [--json]
 *     attnctl model activate DB V
 *
 * Activation loads and checks the version first (store_model_activate), so
 * a model that a daemon could not serve is refused here, with the reason,
 * and the version being served stays as it was.  Running daemons pick the
 * change up at their next reload.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "store/store.h"
#include "tools/cmd.h"
#include "util/json.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: attnctl model list DB [--json]\n"
            "       attnctl model activate DB VERSION\n"
            "list      every model version: created (UTC), heads, d_model, active, metrics\n"
            "activate  check that VERSION loads, then make it the one attnd serves\n");
}

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

static int s_activate(const char *path, const char *varg)
{
    char *end;
    errno = 0;
    long long v = strtoll(varg, &end, 10);
    if (errno || end == varg || *end || v < 0) {
        fprintf(stderr, "attnctl model activate: VERSION '%s': expected a version number "
                        "(see 'attnctl model list %s')\n", varg, path);
        return 2;
    }
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
        printf("%s: model version %lld is active (was %lld)\n", path, v, (long long)was);
    else
        printf("%s: model version %lld is active\n", path, v);
    return 0;
}

int cmd_model(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        s_usage(stdout);
        return 0;
    }
    if (argc < 3) {
        s_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "list")) {
        int json = 0;
        for (int i = 3; i < argc; i++) {
            if (!strcmp(argv[i], "--json")) {
                json = 1;
            } else {
                fprintf(stderr, "attnctl model list: unexpected argument '%s'\n", argv[i]);
                return 2;
            }
        }
        return s_list(argv[2], json);
    }
    if (!strcmp(argv[1], "activate")) {
        if (argc != 4) {
            fprintf(stderr, "attnctl model activate: needs DB and VERSION\n");
            s_usage(stderr);
            return 2;
        }
        return s_activate(argv[2], argv[3]);
    }
    fprintf(stderr, "attnctl model: unknown subcommand '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
