/* cmd_history.c -- 'attnctl history DB USER': what a user did, newest
 * first, as the daemon reads it.
 *
 * The same store calls the daemon makes for a rank request (store_user_id,
 * store_history: newest first, equal timestamps by item id), with each
 * item's title, so an operator can see the history behind a ranking and
 * the demo can show it without SQL of its own.  Read-only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "tools/cmd.h"
#include "util/utf8.h"

#define S_MAX_LIMIT 10000
#define S_TITLE_MAX 512

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: attnctl history DB USER [--limit N]\n"
            "The user's newest N events (default 10, at most %d), newest first: time\n"
            "(UTC), weight and the item's title -- the history attnd reads for USER.\n",
            S_MAX_LIMIT);
}

/* Parse the arguments; 0, or the exit status of a usage error (2). */
static int s_args(int argc, char **argv, const char **path, const char **user, int *limit)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--limit") || !strcmp(a, "-n")) {
            char *end;
            errno = 0;
            long v = i + 1 < argc ? strtol(argv[++i], &end, 10) : -1;
            if (v < 1 || v > S_MAX_LIMIT || errno || *end) {
                fprintf(stderr, "attnctl history: --limit: expected an integer in 1..%d\n",
                        S_MAX_LIMIT);
                return 2;
            }
            *limit = (int)v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "attnctl history: unknown option '%s'\n", a);
            s_usage(stderr);
            return 2;
        } else if (!*path) {
            *path = a;
        } else if (!*user) {
            *user = a;
        } else {
            fprintf(stderr, "attnctl history: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!*path || !*user) {
        s_usage(stderr);
        return 2;
    }
    return 0;
}

/* One line: time, weight, title (invalid UTF-8 in it shown as U+FFFD). */
static void s_print(store *db, const store_event *ev)
{
    char title[S_TITLE_MAX], shown[UTIL_UTF8_REPAIR_MAX(S_TITLE_MAX)], when[32] = "?";
    if (store_item_title(db, ev->item_id, title, sizeof title, NULL) != STORE_OK || !*title)
        snprintf(title, sizeof title, "(item %lld, no title)", (long long)ev->item_id);
    util_utf8_repair(shown, title, strlen(title));
    time_t t = (time_t)ev->ts;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    printf("  %s  %-4g  %s\n", when, (double)ev->weight, shown);
}

int cmd_history(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        s_usage(stdout);
        return 0;
    }
    const char *path = NULL, *user = NULL;
    int limit = 10;
    int rc = s_args(argc, argv, &path, &user, &limit);
    if (rc)
        return rc;
    store *db;
    store_err err;
    if (store_open(&db, path, STORE_READONLY, 5000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl history: %s\n", err.msg);
        return 1;
    }
    store_event *ev = malloc((size_t)limit * sizeof *ev);
    if (!ev) {
        fprintf(stderr, "attnctl history: out of memory\n");
        store_close(&db);
        return 1;
    }
    int64_t uid;
    int n = 0;
    rc = store_user_id(db, user, strlen(user), &uid, &err);
    if (rc == STORE_OK)
        rc = store_history(db, uid, limit, ev, &n, &err);
    if (rc == STORE_OK) {
        for (int i = 0; i < n; i++)
            s_print(db, &ev[i]);
        if (!n)
            printf("  (no events)\n");
    } else {
        fprintf(stderr, "attnctl history: %s\n", err.msg);
    }
    free(ev);
    store_close(&db);
    return rc == STORE_OK ? 0 : 1;
}
