/* cmd_gen.c -- 'attnctl gen DB': create the synthetic demo database.
 *
 * A thin main over store_gen_create (store/gen/gen.h): parse and check the
 * flags, refuse to clobber an existing file unless --force, time the run
 * and print one summary line.  The flags' bounds live in store/gen/gen.h so
 * that the tool and the library agree on them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/gen/gen.h"
#include "tools/cmd.h"
#include "util/clock.h"
#include "util/opt.h"

typedef struct s_args {
    store_gen_opts o;
    const char *db;
    int force;
} s_args;

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
};

/* The bounds are store/gen.h's, so the tool and the library agree. */
static const util_opt s_opts[] = {
    {"items", "N", "items in the catalog",
     UTIL_OPT_U32(s_args, o.n_items, 1, STORE_GEN_MAX_ITEMS)},
    {"users", "N", "users", UTIL_OPT_U32(s_args, o.n_users, 1, STORE_GEN_MAX_USERS)},
    {"dim", "D", "embedding dimension",
     UTIL_OPT_INT(s_args, o.dim, STORE_GEN_MIN_DIM, STORE_GEN_MAX_DIM)},
    {"seed", "S", "any unsigned 64-bit number", UTIL_OPT_U64(s_args, o.seed, 0, UINT64_MAX)},
    {"events-per-user", "M", "mean history length",
     UTIL_OPT_DBL(s_args, o.events_per_user, STORE_GEN_MIN_EPU, STORE_GEN_MAX_EPU)},
    {"force", NULL, "replace DB if it exists", UTIL_OPT_FLAG(s_args, force, 1)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl gen",
    .usage = "DB [options]",
    .about =
        "Create DB and fill it with a synthetic, realistic demo: items with readable\n"
        "titles from 24 topics, topic-shaped embeddings, users with drifting interests\n"
        "and time-ordered histories.  The same options always give the same content.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
};

/* Remove path and its SQLite side files; ENOENT is fine. */
static int s_remove_db(const char *path)
{
    static const char *const side[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s%s", path, side[i]);
        if (unlink(p) != 0 && errno != ENOENT) {
            fprintf(stderr, "attnctl gen: cannot remove %s: %s\n", p, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Make way for a new database at path: refuse a directory, and an existing
 * file unless force (then remove it).  0, or 1 (said). */
static int s_make_room(const char *path, int force)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    if (S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "attnctl gen: %s is a directory\n", path);
        return 1;
    }
    if (!force) {
        fprintf(stderr, "attnctl gen: %s already exists; pass --force to replace it\n", path);
        return 1;
    }
    return s_remove_db(path) ? 1 : 0;
}

int cmd_gen(int argc, char **argv)
{
    s_args a = {0};
    store_gen_defaults(&a.o);
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    if (!*a.db)
        return util_opt_fail(&s_cmd, "the database path is empty");
    store_err err = {0};
    if (store_gen_check(&a.o, &err) != STORE_OK)     /* the combined limits */
        return util_opt_fail(&s_cmd, "%s", err.msg);
    if (s_make_room(a.db, a.force))
        return 1;

    double t0 = util_now_s();
    store_gen_stats st;
    rc = store_gen_create(a.db, &a.o, &st, &err);
    double secs = util_now_s() - t0;
    if (rc != STORE_OK) {
        fprintf(stderr, "attnctl gen: %s\n", err.msg);
        /* We checked the path was free, so a file there now is ours -- unless
         * someone else created it in between, which is what EXISTS means. */
        if (rc != STORE_ERR_EXISTS)
            s_remove_db(a.db);
        return 1;
    }
    printf("%s: %" PRIu64 " items, %" PRIu64 " users, %" PRIu64 " events "
           "(%d topics, dim %d, seed %" PRIu64 ") in %.2f s\n",
           a.db, st.items, st.users, st.events, st.topics, a.o.dim, a.o.seed, secs);
    return 0;
}
