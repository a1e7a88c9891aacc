/* cmd_init.c -- 'attnctl init': create a database, or migrate one forward.
 *
 *     attnctl init DB --dim D      a new, empty database (identity model active)
 *     attnctl init --migrate DB    bring an older schema up to this build's
 *
 * The embedding dimension is fixed for the life of a database (every blob in
 * items has that length), so it is a required flag rather than a default
 * that would be wrong for most data.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "tools/cmd.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: attnctl init DB --dim D\n"
            "       attnctl init --migrate DB\n"
            "Create a new attnd database at DB for embeddings of dimension D (1..65536),\n"
            "with the identity model as active version 0.  Refuses a file that holds data.\n"
            "--migrate upgrades an existing database to this build's schema version (%d).\n",
            STORE_SCHEMA_VERSION);
}

/* A whole decimal number in [lo, hi], or -1. */
static long s_parse(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    return v;
}

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
    const char *path = NULL, *dim_arg = NULL;
    int migrate = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--migrate")) {
            migrate = 1;
        } else if (!strcmp(a, "--dim")) {
            if (++i == argc) {
                fprintf(stderr, "attnctl init: --dim needs a value\n");
                return 2;
            }
            dim_arg = argv[i];
        } else if (!strncmp(a, "--dim=", 6)) {
            dim_arg = a + 6;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "attnctl init: unknown option '%s'\n", a);
            s_usage(stderr);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "attnctl init: unexpected argument '%s' (one DB only)\n", a);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "attnctl init: no database file given\n");
        s_usage(stderr);
        return 2;
    }
    if (migrate) {
        if (dim_arg) {
            fprintf(stderr, "attnctl init: --migrate keeps the database's dimension; "
                            "drop --dim\n");
            return 2;
        }
        return s_migrate(path);
    }
    if (!dim_arg) {
        fprintf(stderr, "attnctl init: --dim D is required (the embedding dimension, "
                        "e.g. --dim 64)\n");
        return 2;
    }
    long dim = s_parse(dim_arg, 1, 65536);
    if (dim < 0) {
        fprintf(stderr, "attnctl init: --dim '%s': expected an integer in 1..65536\n", dim_arg);
        return 2;
    }
    store_err err;
    if (store_init(path, (int)dim, &err) != STORE_OK) {
        fprintf(stderr, "attnctl init: %s\n", err.msg);
        return 1;
    }
    printf("%s: new attnd database, embedding_dim %ld, schema version %d, "
           "identity model active (version 0)\n", path, dim, STORE_SCHEMA_VERSION);
    return 0;
}
