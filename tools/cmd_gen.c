/* cmd_gen.c -- 'attnctl gen DB': create the synthetic demo database.
 *
 * A thin main over store_gen_create (store/gen/gen.h): parse and check the
 * flags, refuse to clobber an existing file unless --force, time the run
 * and print one summary line.  The flags' bounds live in store/gen/gen.h so
 * that the tool and the library agree on them.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/gen/gen.h"
#include "tools/cmd.h"
#include "util/clock.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: attnctl gen DB [options]\n"
            "Create DB and fill it with a synthetic, realistic demo: items with readable\n"
            "titles from 24 topics, topic-shaped embeddings, users with drifting interests\n"
            "and time-ordered histories.  The same options always give the same content.\n"
            "\n"
            "  --items N            items in the catalog (default 20000, at most %u)\n"
            "  --users N            users (default 5000, at most %u)\n"
            "  --dim D              embedding dimension (default 64, %d..%d)\n"
            "  --seed S             any unsigned 64-bit number (default 1)\n"
            "  --events-per-user M  mean history length (default 40, %g..%g)\n"
            "  --force              replace DB if it exists\n",
            STORE_GEN_MAX_ITEMS, STORE_GEN_MAX_USERS, STORE_GEN_MIN_DIM, STORE_GEN_MAX_DIM,
            STORE_GEN_MIN_EPU, STORE_GEN_MAX_EPU);
}

/* A whole number in [min, max]: digits only (no sign, spaces or suffix),
 * so "1e3", "-5" and "20k" are refused rather than half-read. */
static int s_parse_u64(const char *flag, const char *text, uint64_t min, uint64_t max,
                       uint64_t *out)
{
    if (!*text || strspn(text, "0123456789") != strlen(text)) {
        fprintf(stderr, "attnctl gen: %s: '%s' is not a whole number\n", flag, text);
        return -1;
    }
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno == ERANGE || v > max) {
        fprintf(stderr, "attnctl gen: %s: %s is too large (at most %" PRIu64 ")\n", flag,
                text, max);
        return -1;
    }
    if (v < min) {
        fprintf(stderr, "attnctl gen: %s: %s is too small (at least %" PRIu64 ")\n", flag,
                text, min);
        return -1;
    }
    *out = v;
    return 0;
}

static int s_parse_double(const char *flag, const char *text, double min, double max,
                          double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || text[0] == ' ' || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "attnctl gen: %s: '%s' is not a number\n", flag, text);
        return -1;
    }
    if (v < min || v > max) {
        fprintf(stderr, "attnctl gen: %s: %s is out of range %g..%g\n", flag, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

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

/* The flag at argv[*i] with its value (either "--flag=v" or "--flag v");
 * NULL if argv[*i] is not this flag.  *bad is set when the value is missing. */
static const char *s_flag_value(int argc, char **argv, int *i, const char *flag, int *bad)
{
    size_t n = strlen(flag);
    const char *a = argv[*i];
    if (strncmp(a, flag, n))
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n])
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "attnctl gen: %s needs a value\n", flag);
        *bad = 1;
        return NULL;
    }
    return argv[++*i];
}

int cmd_gen(int argc, char **argv)
{
    store_gen_opts o;
    store_gen_defaults(&o);
    const char *path = NULL;
    int force = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int bad = 0;
        uint64_t u;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if ((v = s_flag_value(argc, argv, &i, "--items", &bad))) {
            if (s_parse_u64("--items", v, 1, STORE_GEN_MAX_ITEMS, &u))
                return 2;
            o.n_items = (uint32_t)u;
        } else if ((v = s_flag_value(argc, argv, &i, "--users", &bad))) {
            if (s_parse_u64("--users", v, 1, STORE_GEN_MAX_USERS, &u))
                return 2;
            o.n_users = (uint32_t)u;
        } else if ((v = s_flag_value(argc, argv, &i, "--dim", &bad))) {
            if (s_parse_u64("--dim", v, STORE_GEN_MIN_DIM, STORE_GEN_MAX_DIM, &u))
                return 2;
            o.dim = (int)u;
        } else if ((v = s_flag_value(argc, argv, &i, "--seed", &bad))) {
            if (s_parse_u64("--seed", v, 0, UINT64_MAX, &o.seed))
                return 2;
        } else if ((v = s_flag_value(argc, argv, &i, "--events-per-user", &bad))) {
            if (s_parse_double("--events-per-user", v, STORE_GEN_MIN_EPU, STORE_GEN_MAX_EPU,
                               &o.events_per_user))
                return 2;
        } else if (bad) {
            return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "attnctl gen: unknown option '%s'\n", a);
            s_usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "attnctl gen: one database at a time ('%s' and '%s')\n", path, a);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        s_usage(stderr);
        return 2;
    }
    if (!*path) {
        fprintf(stderr, "attnctl gen: the database path is empty\n");
        return 2;
    }
    store_err err = {0};
    if (store_gen_check(&o, &err) != STORE_OK) {     /* the combined limits */
        fprintf(stderr, "attnctl gen: %s\n", err.msg);
        return 2;
    }

    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "attnctl gen: %s is a directory\n", path);
            return 1;
        }
        if (!force) {
            fprintf(stderr, "attnctl gen: %s already exists; pass --force to replace it\n",
                    path);
            return 1;
        }
        if (s_remove_db(path))
            return 1;
    }

    double t0 = util_now_s();
    store_gen_stats st;
    int rc = store_gen_create(path, &o, &st, &err);
    double secs = util_now_s() - t0;
    if (rc != STORE_OK) {
        fprintf(stderr, "attnctl gen: %s\n", err.msg);
        /* We checked the path was free, so a file there now is ours -- unless
         * someone else created it in between, which is what EXISTS means. */
        if (rc != STORE_ERR_EXISTS)
            s_remove_db(path);
        return 1;
    }
    printf("%s: %" PRIu64 " items, %" PRIu64 " users, %" PRIu64 " events "
           "(%d topics, dim %d, seed %" PRIu64 ") in %.2f s\n",
           path, st.items, st.users, st.events, st.topics, o.dim, o.seed, secs);
    return 0;
}
