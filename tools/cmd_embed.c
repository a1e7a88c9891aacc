/* cmd_embed.c -- 'attnctl embed': the built-in text embedder
 * (store/embed/embed.h) with a progress line on a terminal.  By default new
 * items are folded into the stored basis; --refit fits every item again,
 * says so on stderr, and the active trained model steps down unless
 * --keep-models.
 */
#include <stdio.h>
#include <time.h>
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
    {"refit", NULL, "fit every item again (moves every vector): the active\n"
     "trained model steps down, the identity model serves", UTIL_OPT_FLAG(s_args, o.refit, 1)},
    {"keep-models", NULL, "with a refit: leave the active trained model active",
     UTIL_OPT_FLAG(s_args, o.keep_models, 1)},
    {"dim", "D", "dimension of a fit", UTIL_OPT_INT(s_args, o.dim, 1, 65536),
     .def = "the database's embedding_dim"},
    {"force-dim", NULL, "D differs from embedding_dim: rewrite embedding_dim and\n"
     "every embedding; trained models of the old dimension\n"
     "are deactivated (the identity model takes over)", UTIL_OPT_FLAG(s_args, o.force_dim, 1)},
    {"seed", "S", "random seed of a fit: same seed, same vectors",
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
    {"hold-out-newest", "F", "experiments: leave the fraction F of items with the\n"
     "newest first event out of the fit, without a vector;\n"
     "a later plain embed folds them in (docs/QUALITY.md)",
     UTIL_OPT_DBL(s_args, o.hold_out, 0, 0.99), .flags = UTIL_OPT_MIN_OPEN, .def = ""},
    {"quiet", NULL, "no progress line", UTIL_OPT_FLAG(s_args, quiet, 1)},
};

/* The options that shape a fit: given without --refit on a database with
 * a basis, with a value other than the basis's, they would be silently
 * ignored, so they are refused. */
static const char *const s_fit_opts[] = {
    "dim", "force-dim", "seed", "min-df", "max-features", "char", "char-weight",
    "no-bigrams", "power-iters", "oversample", "hold-out-newest",
};

/* 1 if option i of s_fit_opts asks for something the stored fit is not. */
static int s_differs(size_t i, const store_embed_opts *o, const store_embed_opts *fit)
{
    switch (i) {
    case 0: return o->dim != fit->dim;
    case 2: return o->seed != fit->seed;
    case 3: return o->min_df != fit->min_df;
    case 4: return o->max_features != fit->max_features;
    case 5: return o->char_min != fit->char_min || o->char_max != fit->char_max;
    case 6: return o->char_weight != fit->char_weight;
    case 7: return o->bigrams != fit->bigrams;
    case 8: return o->power_iters != fit->power_iters;
    case 9: return o->oversample != fit->oversample;
    default: return 1;         /* --force-dim, --hold-out-newest: only a fit does them */
    }
}

static const util_opt_cmd s_cmd = {
    .prog = "attnctl embed",
    .usage = "DB [--refit [--keep-models]] [--dim D] [--seed S] [options]",
    .about =
        "\n"
        "Text embeddings from each item's text (its title when the text is empty):\n"
        "TF-IDF over words, word bigrams and character n-grams, a randomized\n"
        "truncated SVD, L2-normalised.  The first embed of a database fits on every\n"
        "item and stores the fitted basis; later runs fold the items that have no\n"
        "vector into it and never move another, so trained models stay valid.\n"
        "One transaction; meta 'embedder' records the parameters.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
    .tail = "See docs/IMPORT.md.",
};

/* Most vectors hashed from ids carry no content: the identity model would
 * rank those items by chance.  Said on stderr, not only in the summary. */
static void s_warn_textless(const s_args *a, size_t empty, size_t items)
{
    if (empty == 0 || empty * 2 <= items)
        return;
    fprintf(stderr, "attnctl embed: warning: %zu of %zu items have no text the embedder can "
            "use: their vectors are hashed from ids and say nothing about the items; import "
            "titles or text (e.g. movies.dat beside sequences.txt) and run "
            "'attnctl embed %s --refit'\n", empty, items, a->db);
}

static void s_summary_fit(const s_args *a, const store_embed_info *info, int dim, double secs)
{
    printf("embedded %zu items into %d dimensions in %.2f s (%zu features, %zu non-zeros, "
           "rank %d, seed %llu); basis stored\n", info->items, dim, secs, info->features,
           info->nonzeros, info->rank, (unsigned long long)a->o.seed);
    if (info->held_out)
        printf("%zu items with the newest first events held out of the fit, without a vector: "
               "'attnctl embed %s' folds them in\n", info->held_out, a->db);
    if (info->empty)
        printf("%zu items had no usable text: each got a unit vector hashed from its ext_id\n",
               info->empty);
    s_warn_textless(a, info->empty, info->items);
    if (info->dim_changed) {
        printf("embedding_dim is now %d\n", dim);
        if (info->models_unusable)
            printf("%d trained model(s) of another dimension are kept but inactive; "
                   "train a new one with 'attnctl train %s'\n", info->models_unusable, a->db);
    }
}

static void s_summary_fold(const s_args *a, const store_embed_basis *b,
                           const store_embed_info *info, double secs)
{
    char when[32] = "?";
    time_t t = (time_t)b->created_at;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    printf("folded %zu new item%s into the stored basis in %.2f s (fitted %s on %zu items, "
           "%zu features, dimension %d); %zu existing vectors untouched\n", info->items,
           info->items == 1 ? "" : "s", secs, when, b->n_fit, b->cols ? b->cols : info->features,
           b->o.dim, info->kept);
    if (info->empty)
        printf("%zu of them had no feature the fit knows: each got a unit vector hashed from "
               "its ext_id\n", info->empty);
    s_warn_textless(a, info->empty, info->items);
    if (!info->items)
        printf("every item of %s has a vector; 'attnctl embed %s --refit' fits them all "
               "again\n", a->db, a->db);
}

/* A fit that replaced a space: what moved and what it means for models. */
static void s_warn_refit(const s_args *a, const store_embed_info *info)
{
    fprintf(stderr, "attnctl embed: warning: re-fitted: every vector moved (%zu items had one): "
            "vectors of the old space (in caches, exports, trained models) no longer match\n",
            info->moved);
    if (info->model_off)
        fprintf(stderr, "attnctl embed: warning: model version %lld was trained in the old "
                "space and is now inactive; the identity model (version 0) serves until "
                "'attnctl train %s --activate'\n", (long long)info->model_off, a->db);
    if (info->model_kept)
        fprintf(stderr, "attnctl embed: warning: model version %lld stays active (--keep-models) "
                "although it was trained in the old space: its projections and residuals no "
                "longer match the vectors; retrain it\n", (long long)info->model_kept);
    if (info->old_models > (info->model_off || info->model_kept))
        fprintf(stderr, "attnctl embed: warning: %d trained model(s) in all were trained in the "
                "old space; do not activate them again\n", info->old_models);
}

/* 2 (said) if fit options were given without --refit on a database whose
 * basis would ignore them; 1 (said) on a store error; else 0, with *b the
 * stored basis's config (zeroed when there is none). */
static int s_check_fold(const s_args *a, uint64_t given, store *db, store_embed_basis *b)
{
    store_err err;
    int rc = store_embed_basis_peek(db, b, &err);
    if (rc == STORE_ERR_NOTFOUND || (rc == STORE_ERR_CORRUPT && a->o.refit))
        return 0;
    if (rc != STORE_OK) {
        fprintf(stderr, "attnctl embed: %s\nattnctl embed: '--refit' fits and stores a new "
                "basis\n", err.msg);
        return 1;
    }
    if (a->o.refit)
        return 0;
    char list[256] = "";
    size_t at = 0;
    for (size_t i = 0; i < sizeof s_fit_opts / sizeof s_fit_opts[0]; i++)
        if (util_opt_given(&s_cmd, given, s_fit_opts[i]) && s_differs(i, &a->o, &b->o) &&
            at < sizeof list - 40)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s--%s", at ? ", " : "",
                                   s_fit_opts[i]);
    if (!at)
        return 0;
    return util_opt_fail(&s_cmd, "%s shape%s a fit, and %s has a stored basis, fitted "
                         "otherwise, that folds new items in as it is; add --refit to fit every "
                         "item again (every vector moves; the active trained model steps down "
                         "unless --keep-models)",
                         list, strchr(list, ',') ? "" : "s", a->db);
}

int cmd_embed(int argc, char **argv)
{
    s_args a = {.o = store_embed_defaults()};
    uint64_t given = 0;
    int rc = util_opt_main(&s_cmd, argc, argv, &a, &given);
    if (rc >= 0)
        return rc;
    store_err err;
    store *db;
    if (store_open(&db, a.db, STORE_READWRITE, 5000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl embed: %s\n", err.msg);
        return 1;
    }
    store_embed_basis b;
    rc = s_check_fold(&a, given, db, &b);
    if (rc) {
        store_close(&db);
        return rc;
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
    if (info.folded) {
        s_summary_fold(&a, &b, &info, secs);
        return 0;
    }
    s_summary_fit(&a, &info, dim, secs);
    if (info.refit)
        s_warn_refit(&a, &info);
    return 0;
}
