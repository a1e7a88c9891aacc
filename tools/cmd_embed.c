/* cmd_embed.c -- 'attnctl embed': the built-in text embedder over every
 * item of a database (store/embed/embed.h), with a progress line on a terminal.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/embed/embed.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"
#include "util/opt.h"

static void s_on_progress(void *ctx, const char *stage, size_t done, size_t total)
{
    double *last = ctx, now = util_now_s();
    if (now - *last < 0.25)
        return;
    *last = now;
    fprintf(stderr, "\r\033[Kembed: %s %zu/%zu", stage, done, total);
    fflush(stderr);
}

/* ---- the command line --------------------------------------------------------- */

typedef struct s_args {
    store_embed_opts o;
    const char *db;
    int quiet;
} s_args;

/* --char: "0" (none), "N" or "MIN-MAX" within 1..8, into o.char_min/char_max. */
static int s_char(void *field, const char *value, char *why, size_t why_len)
{
    store_embed_opts *o = field;
    int lo, hi;
    char tail;
    if (!strcmp(value, "0"))
        o->char_min = o->char_max = 0;
    else if (sscanf(value, "%d-%d%c", &lo, &hi, &tail) == 2 && lo >= 1 && hi >= lo && hi <= 8)
        o->char_min = lo, o->char_max = hi;
    else if (sscanf(value, "%d%c", &lo, &tail) == 1 && lo >= 1 && lo <= 8)
        o->char_min = o->char_max = lo;
    else {
        snprintf(why, why_len, "'%s' is not 0, N or MIN-MAX within 1..8", value);
        return -1;
    }
    return 0;
}

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
};

static const util_opt s_opts[] = {
    {"dim", "D", "dimension", UTIL_OPT_INT(s_args, o.dim, 1, 65536),
     .def = "the database's embedding_dim"},
    {"force-dim", NULL, "D differs from embedding_dim: rewrite embedding_dim and\n"
     "every embedding; trained models of the old dimension\n"
     "are deactivated (the identity model takes over)", UTIL_OPT_FLAG(s_args, o.force_dim, 1)},
    {"seed", "S", "random seed: same seed, same vectors",
     UTIL_OPT_U64(s_args, o.seed, 0, UINT64_MAX)},
    {"min-df", "N", "drop features found in fewer than N items",
     UTIL_OPT_INT(s_args, o.min_df, 1, 1 << 30)},
    {"max-features", "N", "keep the N most frequent features",
     UTIL_OPT_INT(s_args, o.max_features, 1, 1 << 24)},
    {"char", "MIN-MAX", "character n-gram lengths, 0 = none", UTIL_OPT_CALL(s_args, o, s_char),
     .def = "3-4"},
    {"char-weight", "W", "weight of the character block",
     UTIL_OPT_FLT(s_args, o.char_weight, 0, 100)},
    {"no-bigrams", NULL, "words only, no word bigrams", UTIL_OPT_FLAG(s_args, o.bigrams, 0)},
    {"power-iters", "N", "power iterations of the randomized SVD",
     UTIL_OPT_INT(s_args, o.power_iters, 0, 50)},
    {"oversample", "N", "extra random columns", UTIL_OPT_INT(s_args, o.oversample, 0, 1000)},
    {"quiet", NULL, "no progress line", UTIL_OPT_FLAG(s_args, quiet, 1)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl embed",
    .usage = "DB [--dim D] [--seed S] [options]",
    .about =
        "\n"
        "Embeds every item from its text (its title when the text is empty): TF-IDF\n"
        "over words, word bigrams and character n-grams, a randomized truncated SVD,\n"
        "L2-normalised.  One transaction; records the parameters in meta 'embedder'.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
    .tail = "See docs/IMPORT.md.",
};

static void s_summary(const s_args *a, const store_embed_info *info, int dim, double secs)
{
    printf("embedded %zu items into %d dimensions in %.2f s (%zu features, %zu non-zeros, "
           "rank %d, seed %llu)\n", info->items, dim, secs, info->features, info->nonzeros,
           info->rank, (unsigned long long)a->o.seed);
    if (info->empty)
        printf("%zu items had no usable text: each got a unit vector hashed from its ext_id\n",
               info->empty);
    if (info->dim_changed) {
        printf("embedding_dim is now %d\n", dim);
        if (info->models_unusable)
            printf("%d trained model(s) of another dimension are kept but inactive; "
                   "train a new one with 'attnctl train %s'\n", info->models_unusable, a->db);
    }
}

int cmd_embed(int argc, char **argv)
{
    s_args a = {.o = store_embed_defaults()};
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    store_err err;
    store *db;
    if (store_open(&db, a.db, STORE_READWRITE, 5000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl embed: %s\n", err.msg);
        return 1;
    }
    double last = 0;
    if (!a.quiet && isatty(STDERR_FILENO)) {
        a.o.progress = s_on_progress;
        a.o.progress_ctx = &last;
    }
    int dim = a.o.dim ? a.o.dim : store_dim(db);
    store_embed_info info;
    double t0 = util_now_s();
    rc = store_embed_run(db, &a.o, &info, &err);
    double secs = util_now_s() - t0;
    if (last > 0)
        fputs("\r\033[K", stderr);
    store_close(&db);
    if (rc != STORE_OK) {
        fprintf(stderr, "attnctl embed: %s\nattnctl embed: nothing written; %s is unchanged\n",
                err.msg, a.db);
        return 1;
    }
    s_summary(&a, &info, dim, secs);
    return 0;
}
