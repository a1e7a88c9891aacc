/* cmd_snapshot.c -- 'attnctl snapshot DB OUT': what replicas serve, in one
 * read-only file (store_snapshot_write: items, models, the embedder basis,
 * popularity counts; no users, no interactions -- replicas read histories
 * from Redis).  Written beside OUT and renamed over it, so a replica
 * serving OUT reloads to the new file whole (docs/OPERATIONS.md,
 * "Replicas").  Prints the file's BLAKE2b-256, which `info` on every
 * replica then reports.
 */
#include <stdio.h>

#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"
#include "util/opt.h"

typedef struct s_args {
    const char *db, *out;
    int all_models;
} s_args;

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
    {"OUT", NULL, NULL, UTIL_OPT_STR(s_args, out)},
};

static const util_opt s_opts[] = {
    {"all-models", NULL, "copy every model version, not only the active one (for "
     "models.serve and experiment arms)", UTIL_OPT_FLAG(s_args, all_models, 1)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl snapshot",
    .about = "Write DB's catalog, embeddings, active model, embedder basis and popularity\n"
             "counts -- no users, no interactions -- to OUT, atomically (a temporary file\n"
             "renamed over OUT), and print its checksum (BLAKE2b-256, as `b2sum -l 256`).\n"
             "Replicas serve it with `attnd --db OUT --set history.backend=redis ...`.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
};

int cmd_snapshot(int argc, char **argv)
{
    s_args a = {0};
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    uint64_t t0 = util_now_ns();
    store_snapshot_info info;
    store_err err;
    if (store_snapshot_write(a.db, a.out, a.all_models, &info, &err) != STORE_OK) {
        fprintf(stderr, "attnctl snapshot: %s\n", err.msg);
        return 1;
    }
    printf("%s: %lld items, %lld model%s, popularity of %lld events, %.1f MB, %.2f s\n",
           a.out, (long long)info.items, (long long)info.models, info.models == 1 ? "" : "s",
           (long long)info.events, (double)info.bytes / 1e6,
           (double)(util_now_ns() - t0) / 1e9);
    printf("blake2b-256 %s\n", info.checksum);
    return 0;
}
