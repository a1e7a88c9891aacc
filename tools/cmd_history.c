/* cmd_history.c -- 'attnctl history DB USER': what a user did, newest
 * first, as the daemon reads it.
 *
 * The same store calls the daemon makes for a rank request (store_user_id,
 * store_history: newest first, equal timestamps by item id), with each
 * item's title, so an operator can see the history behind a ranking and
 * the demo can show it without SQL of its own.  Read-only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "tools/cmd.h"
#include "util/opt.h"
#include "util/utf8.h"

#define S_MAX_LIMIT 10000
#define S_TITLE_MAX 512

typedef struct s_args {
    const char *db;
    const char *user;
    int limit;
} s_args;

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
    {"USER", NULL, NULL, UTIL_OPT_STR(s_args, user)},
};

static const util_opt s_opts[] = {
    {"limit", "N", "newest events shown", UTIL_OPT_INT(s_args, limit, 1, S_MAX_LIMIT),
     .shortc = 'n'},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl history",
    .about = "The user's newest events, newest first: time (UTC), weight and the item's\n"
             "title -- the history attnd reads for USER.\n"
             "'attnctl history push|check DB redis://...' copy histories to Redis and\n"
             "compare them (attnctl history push --help).",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
};

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
    if (argc > 1 && !strcmp(argv[1], "push"))
        return cmd_history_push(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "check"))
        return cmd_history_check(argc - 1, argv + 1);
    s_args a = {.limit = 10};
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    const char *path = a.db, *user = a.user;
    int limit = a.limit;
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
