/* cmd_embed.c -- 'attnctl embed': the built-in text embedder over every
 * item of a database (store/embed/embed.h), with a progress line on a terminal.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/embed/embed.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"

static void s_usage(FILE *out)
{
    fprintf(out,
        "usage: attnctl embed DB [--dim D] [--seed S] [options]\n"
        "\n"
        "Embeds every item from its text (its title when the text is empty): TF-IDF\n"
        "over words, word bigrams and character n-grams, a randomized truncated SVD,\n"
        "L2-normalised.  One transaction; records the parameters in meta 'embedder'.\n"
        "\n"
        "  --dim D             dimension (default: the database's embedding_dim)\n"
        "  --force-dim         D differs from embedding_dim: rewrite embedding_dim and\n"
        "                      every embedding; trained models of the old dimension\n"
        "                      are deactivated (the identity model takes over)\n"
        "  --seed S            random seed (default 1): same seed, same vectors\n"
        "  --min-df N          drop features found in fewer than N items (default 2)\n"
        "  --max-features N    keep the N most frequent features (default 50000)\n"
        "  --char MIN-MAX      character n-gram lengths (default 3-4; 0 = none)\n"
        "  --char-weight W     weight of the character block (default 0.5)\n"
        "  --no-bigrams        words only, no word bigrams\n"
        "  --power-iters N     power iterations of the randomized SVD (default 5)\n"
        "  --oversample N      extra random columns (default 10)\n"
        "  --quiet             no progress line\n"
        "See docs/IMPORT.md.\n");
}

static void s_on_progress(void *ctx, const char *stage, size_t done, size_t total)
{
    double *last = ctx, now = util_now_s();
    if (now - *last < 0.25)
        return;
    *last = now;
    fprintf(stderr, "\r\033[Kembed: %s %zu/%zu", stage, done, total);
    fflush(stderr);
}

static int s_int(const char *arg, const char *flag, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end || v < lo || v > hi) {
        fprintf(stderr, "attnctl embed: %s '%s': expected an integer in %ld..%ld\n", flag, arg,
                lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

enum { OPT_DIM = 256, OPT_FORCE, OPT_SEED, OPT_MIN_DF, OPT_MAX_F, OPT_CHAR, OPT_CHAR_W,
       OPT_NO_BI, OPT_POWER, OPT_OVER, OPT_QUIET, OPT_HELP };

static const struct option s_opts[] = {
    {"dim", required_argument, NULL, OPT_DIM},
    {"force-dim", no_argument, NULL, OPT_FORCE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"min-df", required_argument, NULL, OPT_MIN_DF},
    {"max-features", required_argument, NULL, OPT_MAX_F},
    {"char", required_argument, NULL, OPT_CHAR},
    {"char-weight", required_argument, NULL, OPT_CHAR_W},
    {"no-bigrams", no_argument, NULL, OPT_NO_BI},
    {"power-iters", required_argument, NULL, OPT_POWER},
    {"oversample", required_argument, NULL, OPT_OVER},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

int cmd_embed(int argc, char **argv)
{
    store_embed_opts o = store_embed_defaults();
    int quiet = 0;
    long v;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", s_opts, NULL)) != -1) {
        switch (c) {
        case OPT_DIM:
            if (s_int(optarg, "--dim", 1, 65536, &v)) return 2;
            o.dim = (int)v;
            break;
        case OPT_FORCE: o.force_dim = 1; break;
        case OPT_SEED: {
            char *end;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (end == optarg || *end) {
                fprintf(stderr, "attnctl embed: --seed '%s': expected an integer\n", optarg);
                return 2;
            }
            o.seed = s;
            break;
        }
        case OPT_MIN_DF:
            if (s_int(optarg, "--min-df", 1, 1L << 30, &v)) return 2;
            o.min_df = (int)v;
            break;
        case OPT_MAX_F:
            if (s_int(optarg, "--max-features", 1, 1L << 24, &v)) return 2;
            o.max_features = (int)v;
            break;
        case OPT_CHAR: {
            int lo, hi;
            char tail;
            if (!strcmp(optarg, "0"))
                o.char_min = o.char_max = 0;
            else if (sscanf(optarg, "%d-%d%c", &lo, &hi, &tail) == 2 && lo >= 1 && hi >= lo &&
                     hi <= 8)
                o.char_min = lo, o.char_max = hi;
            else if (sscanf(optarg, "%d%c", &lo, &tail) == 1 && lo >= 1 && lo <= 8)
                o.char_min = o.char_max = lo;
            else {
                fprintf(stderr, "attnctl embed: --char '%s': expected 0, N or MIN-MAX within "
                        "1..8\n", optarg);
                return 2;
            }
            break;
        }
        case OPT_CHAR_W: {
            char *end;
            double w = strtod(optarg, &end);
            if (end == optarg || *end || !(w >= 0) || w > 100) {
                fprintf(stderr, "attnctl embed: --char-weight '%s': expected a number in "
                        "0..100\n", optarg);
                return 2;
            }
            o.char_weight = (float)w;
            break;
        }
        case OPT_NO_BI: o.bigrams = 0; break;
        case OPT_POWER:
            if (s_int(optarg, "--power-iters", 0, 50, &v)) return 2;
            o.power_iters = (int)v;
            break;
        case OPT_OVER:
            if (s_int(optarg, "--oversample", 0, 1000, &v)) return 2;
            o.oversample = (int)v;
            break;
        case OPT_QUIET: quiet = 1; break;
        case 'h':
        case OPT_HELP:
            s_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "(attnctl embed --help for usage)\n");
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "attnctl embed: expected one DB argument\n"
                "(attnctl embed --help for usage)\n");
        return 2;
    }
    const char *path = argv[optind];
    store_err err;
    store *db;
    if (store_open(&db, path, STORE_READWRITE, 5000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl embed: %s\n", err.msg);
        return 1;
    }
    double last = 0;
    if (!quiet && isatty(STDERR_FILENO)) {
        o.progress = s_on_progress;
        o.progress_ctx = &last;
    }
    int dim = o.dim ? o.dim : store_dim(db);
    store_embed_info info;
    double t0 = util_now_s();
    int rc = store_embed_run(db, &o, &info, &err);
    double secs = util_now_s() - t0;
    if (last > 0)
        fputs("\r\033[K", stderr);
    store_close(&db);
    if (rc != STORE_OK) {
        fprintf(stderr, "attnctl embed: %s\nattnctl embed: nothing written; %s is unchanged\n",
                err.msg, path);
        return 1;
    }
    printf("embedded %zu items into %d dimensions in %.2f s (%zu features, %zu non-zeros, "
           "rank %d, seed %llu)\n", info.items, dim, secs, info.features, info.nonzeros,
           info.rank, (unsigned long long)o.seed);
    if (info.empty)
        printf("%zu items had no usable text: each got a unit vector hashed from its ext_id\n",
               info.empty);
    if (info.dim_changed) {
        printf("embedding_dim is now %d\n", dim);
        if (info.models_unusable)
            printf("%d trained model(s) of another dimension are kept but inactive; "
                   "train a new one with 'attnctl train %s'\n", info.models_unusable, path);
    }
    return 0;
}
