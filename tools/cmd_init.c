/* cmd_init.c -- 'attnctl init': create a database, or migrate one forward.
 *
 *     attnctl init DB --dim D      a new, empty database (identity model active)
 *     attnctl init --migrate DB    bring an older schema up to this build's
 *
 * The embedding dimension is fixed for the life of a database (every blob in
 * items has that length), so it is a required flag rather than a default
 * that would be wrong for most data.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "tools/cmd.h"
#include "util/opt.h"

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)

typedef struct s_args {
    const char *db;
    int dim;            /* 0: not given */
    int migrate;
} s_args;

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
};

static const util_opt s_opts[] = {
    {"dim", "D", "the embedding dimension (required for a new database)",
     UTIL_OPT_INT(s_args, dim, 1, 65536), .def = ""},
    {"migrate", NULL, "upgrade DB to this build's schema version",
     UTIL_OPT_FLAG(s_args, migrate, 1)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl init",
    .usage = "DB --dim D\n--migrate DB",
    .about =
        "Create a new attnd database at DB for embeddings of dimension D,\n"
        "with the identity model as active version 0.  Refuses a file that holds data.\n"
        "--migrate upgrades an existing database to this build's schema version ("
        S_STR(STORE_SCHEMA_VERSION) ").",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
};

static int s_migrate(const char *path)
{
    int before;
    store_err err;
    if (store_migrate(path, 10000, &before, &err) != STORE_OK) {
        fprintf(stderr, "attnctl init: %s\n", err.msg);
        return 1;
    }
    if (before >= 0 && before < STORE_SCHEMA_VERSION)
        printf("%s: schema version %d -> %d\n", path, before, STORE_SCHEMA_VERSION);
    else
        printf("%s: schema version %d, already current\n", path, STORE_SCHEMA_VERSION);
    return 0;
}

int cmd_init(int argc, char **argv)
{
    s_args a = {0};
    uint64_t given;
    int rc = util_opt_main(&s_cmd, argc, argv, &a, &given);
    if (rc >= 0)
        return rc;
    if (a.migrate) {
        if (util_opt_given(&s_cmd, given, "dim"))
            return util_opt_fail(&s_cmd, "--migrate keeps the database's dimension; "
                                         "drop --dim");
        return s_migrate(a.db);
    }
    if (!a.dim)
        return util_opt_fail(&s_cmd, "--dim D is required (the embedding dimension, "
                                     "e.g. --dim 64)");
    store_err err;
    if (store_init(a.db, a.dim, &err) != STORE_OK) {
        fprintf(stderr, "attnctl init: %s\n", err.msg);
        return 1;
    }
    printf("%s: new attnd database, embedding_dim %d, schema version %d, "
           "identity model active (version 0)\n", a.db, a.dim, STORE_SCHEMA_VERSION);
    return 0;
}
