/* cmd_import.c -- 'attnctl import items|events|movielens': flags in, one
 * store_import_* call, a progress line on a terminal and a summary out.
 *
 * All the work (and the all-or-nothing transaction) is in store/import/;
 * this file owns what only a program should: argument parsing, the
 * progress line on stderr when it is a terminal, messages and exit codes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/import/import.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"

static void s_usage(FILE *out)
{
    fprintf(out,
        "usage: attnctl import items DB [FILE] [options]    id, title, text, embedding\n"
        "       attnctl import events DB FILE [options]     user, item, ts, kind, weight\n"
        "       attnctl import movielens DB DIR [--dim D]   MovieLens 100K or CSV layout\n"
        "\n"
        "FILE is CSV (RFC 4180, header row) or JSONL (one object per line), chosen by\n"
        "extension (.csv .tsv .jsonl .ndjson) or --format.  One transaction: a bad line\n"
        "stops the import with file:line and leaves the database unchanged.\n"
        "\n"
        "options:\n"
        "  --format csv|jsonl      input format (default: by extension)\n"
        "  --delim C               CSV separator: a character or 'tab' (default ',')\n"
        "  --no-header             CSV without a header row: --col-X are 1-based numbers\n"
        "  --latin1                input is Latin-1, transcode to UTF-8\n"
        "  --col-id NAME           item id column      (default id, ext_id, item_id, item)\n"
        "  --col-title NAME        title column        (default title, name)\n"
        "  --col-text NAME         text column         (default text, description)\n"
        "  --col-embedding NAME    embedding column    (default embedding, vector, emb)\n"
        "  --col-user NAME         user column         (default user, user_id, userId)\n"
        "  --col-item NAME         item column         (default item, item_id, itemId)\n"
        "  --col-ts NAME           time column         (default ts, timestamp, time)\n"
        "  --col-kind NAME         kind column         (default kind, type, event)\n"
        "  --col-weight NAME       weight column       (default weight)\n"
        "  --kind K                kind of events without one (default view; movielens: rating)\n"
        "  --npy FILE --ids FILE   items: embeddings from a float32 .npy matrix, row i for\n"
        "                          the id on line i of the ids file\n"
        "  --skip-bad              write bad lines to the rejects file and go on\n"
        "  --rejects FILE          rejects file (default FILE.rejects; DB.rejects for movielens)\n"
        "  --dim D                 movielens: embedding dimension when creating DB (default 64)\n"
        "  --quiet                 no progress line\n"
        "See docs/IMPORT.md.\n");
}

/* ---- progress line ------------------------------------------------------- */

typedef struct s_progress {
    char file[256];         /* file of the current line */
    double start;           /* when we first heard of that file, seconds */
    uint64_t rows0;         /* its rows at that moment */
    double last;            /* last redraw */
    int shown;              /* something is on the line */
} s_progress;

static void s_on_progress(void *ctx, const store_import_progress *p)
{
    s_progress *pr = ctx;
    double now = util_now_s();
    if (strcmp(pr->file, p->file)) {
        /* The first report comes a few thousand rows in: rates count from
         * there, and the line waits for a second report to have one. */
        snprintf(pr->file, sizeof pr->file, "%s", p->file);
        pr->start = now;
        pr->rows0 = p->rows;
        pr->last = now;
        return;
    }
    if (p->done) {
        if (pr->shown)
            fputs("\r\033[K", stderr);
        pr->shown = 0;
        return;
    }
    if (now - pr->last < 0.25)
        return;
    pr->last = now;
    double el = now - pr->start;
    double rate = el > 0 ? (double)(p->rows - pr->rows0) / el : 0;
    fprintf(stderr, "\r\033[K%s: %llu rows, %.0f rows/s", p->file,
            (unsigned long long)p->rows, rate);
    if (p->bytes_total && p->bytes_done) {
        double frac = (double)p->bytes_done / (double)p->bytes_total;
        if (frac > 1)
            frac = 1;
        fprintf(stderr, ", %.0f%%", 100 * frac);
        if (frac > 0.01)
            fprintf(stderr, ", ETA %.0fs", el * (1 - frac) / frac);
    }
    if (p->rejected)
        fprintf(stderr, ", %llu rejected", (unsigned long long)p->rejected);
    fflush(stderr);
    pr->shown = 1;
}

/* ---- main ------------------------------------------------------------------ */

enum {
    OPT_FORMAT = 256, OPT_DELIM, OPT_NO_HEADER, OPT_LATIN1, OPT_COL_ID, OPT_COL_TITLE,
    OPT_COL_TEXT, OPT_COL_EMB, OPT_COL_USER, OPT_COL_ITEM, OPT_COL_TS, OPT_COL_KIND,
    OPT_COL_WEIGHT, OPT_KIND, OPT_NPY, OPT_IDS, OPT_SKIP_BAD, OPT_REJECTS, OPT_DIM,
    OPT_QUIET, OPT_HELP,
};

static const struct option s_opts[] = {
    {"format", required_argument, NULL, OPT_FORMAT},
    {"delim", required_argument, NULL, OPT_DELIM},
    {"no-header", no_argument, NULL, OPT_NO_HEADER},
    {"latin1", no_argument, NULL, OPT_LATIN1},
    {"col-id", required_argument, NULL, OPT_COL_ID},
    {"col-title", required_argument, NULL, OPT_COL_TITLE},
    {"col-text", required_argument, NULL, OPT_COL_TEXT},
    {"col-embedding", required_argument, NULL, OPT_COL_EMB},
    {"col-user", required_argument, NULL, OPT_COL_USER},
    {"col-item", required_argument, NULL, OPT_COL_ITEM},
    {"col-ts", required_argument, NULL, OPT_COL_TS},
    {"col-kind", required_argument, NULL, OPT_COL_KIND},
    {"col-weight", required_argument, NULL, OPT_COL_WEIGHT},
    {"kind", required_argument, NULL, OPT_KIND},
    {"npy", required_argument, NULL, OPT_NPY},
    {"ids", required_argument, NULL, OPT_IDS},
    {"skip-bad", no_argument, NULL, OPT_SKIP_BAD},
    {"rejects", required_argument, NULL, OPT_REJECTS},
    {"dim", required_argument, NULL, OPT_DIM},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int s_bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "attnctl import: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(attnctl import --help for usage)\n");
    return 2;
}

static void s_unlink_db(const char *path)
{
    char side[4200];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static void s_summary(const char *what, const store_import_stats *st, double secs)
{
    printf("imported %s:", what);
    if (st->items_created || st->items_updated)
        printf(" %llu items (%llu new, %llu updated),",
               (unsigned long long)(st->items_created + st->items_updated),
               (unsigned long long)st->items_created, (unsigned long long)st->items_updated);
    if (st->embeddings)
        printf(" %llu embeddings,", (unsigned long long)st->embeddings);
    if (st->events || st->users_created)
        printf(" %llu events (%llu new users),", (unsigned long long)st->events,
               (unsigned long long)st->users_created);
    printf(" %llu lines in %.2f s (%.0f lines/s)\n", (unsigned long long)st->rows, secs,
           secs > 0 ? (double)st->rows / secs : 0.0);
    if (st->rejected)
        printf("rejected %llu lines, written with their reasons to %s\n",
               (unsigned long long)st->rejected, st->rejects_path);
}

int cmd_import(int argc, char **argv)
{
    store_import_opts o = store_import_defaults();
    int dim = 64, quiet = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", s_opts, NULL)) != -1) {
        switch (c) {
        case OPT_FORMAT:
            if (!strcmp(optarg, "csv"))
                o.format = STORE_IMPORT_CSV;
            else if (!strcmp(optarg, "jsonl") || !strcmp(optarg, "ndjson"))
                o.format = STORE_IMPORT_JSONL;
            else
                return s_bad_usage("--format '%s': expected csv or jsonl", optarg);
            break;
        case OPT_DELIM:
            if (!strcmp(optarg, "tab") || !strcmp(optarg, "\\t"))
                o.delim = '\t';
            else if (strlen(optarg) == 1 && optarg[0] != '"' && optarg[0] != '\n')
                o.delim = optarg[0];
            else
                return s_bad_usage("--delim '%s': expected one character or 'tab'", optarg);
            break;
        case OPT_NO_HEADER: o.no_header = 1; break;
        case OPT_LATIN1: o.latin1 = 1; break;
        case OPT_COL_ID: o.col_id = optarg; break;
        case OPT_COL_TITLE: o.col_title = optarg; break;
        case OPT_COL_TEXT: o.col_text = optarg; break;
        case OPT_COL_EMB: o.col_embedding = optarg; break;
        case OPT_COL_USER: o.col_user = optarg; break;
        case OPT_COL_ITEM: o.col_item = optarg; break;
        case OPT_COL_TS: o.col_ts = optarg; break;
        case OPT_COL_KIND: o.col_kind = optarg; break;
        case OPT_COL_WEIGHT: o.col_weight = optarg; break;
        case OPT_KIND: o.default_kind = optarg; break;
        case OPT_NPY: o.npy_path = optarg; break;
        case OPT_IDS: o.ids_path = optarg; break;
        case OPT_SKIP_BAD: o.skip_bad = 1; break;
        case OPT_REJECTS: o.rejects_path = optarg; break;
        case OPT_DIM: {
            char *end;
            long d = strtol(optarg, &end, 10);
            if (*end || d < 1 || d > 65536)
                return s_bad_usage("--dim '%s': expected an integer in 1..65536", optarg);
            dim = (int)d;
            break;
        }
        case OPT_QUIET: quiet = 1; break;
        case 'h':
        case OPT_HELP:
            s_usage(stdout);
            return 0;
        default:
            return s_bad_usage("%s", "unknown option");
        }
    }
    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs < 2)
        return s_bad_usage("%s", "expected: import items|events|movielens DB FILE|DIR");
    const char *what = args[0], *dbpath = args[1], *src = nargs > 2 ? args[2] : NULL;
    int kind = !strcmp(what, "items") ? 1 : !strcmp(what, "events") ? 2
               : !strcmp(what, "movielens") ? 3 : 0;
    if (!kind)
        return s_bad_usage("'%s': expected items, events or movielens", what);
    if (nargs > 3)
        return s_bad_usage("unexpected argument '%s'", args[3]);
    if (kind == 1 && !src && !o.npy_path)
        return s_bad_usage("%s", "import items: give FILE, or --npy FILE --ids FILE");
    if ((kind != 1 && !src) || (!o.npy_path != !o.ids_path))
        return s_bad_usage("%s", kind == 1 ? "--npy and --ids go together"
                                           : "missing FILE or DIR");

    store_err err;
    int created = 0;
    if (kind == 3) {
        /* MovieLens is a fresh start more often than not: create DB. */
        struct stat sb;
        if (stat(dbpath, &sb) != 0 && errno == ENOENT) {
            if (!store_import_movielens_layout(src)) {
                fprintf(stderr, "attnctl import: %s: not a MovieLens directory (expected "
                        "u.item + u.data, or movies.csv + ratings.csv)\n", src);
                return 1;
            }
            if (store_init(dbpath, dim, &err) != STORE_OK) {
                fprintf(stderr, "attnctl import: %s\n", err.msg);
                return 1;
            }
            created = 1;
        }
    }
    store *db;
    if (store_open(&db, dbpath, STORE_READWRITE, 5000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl import: %s\n", err.msg);
        if (created)
            s_unlink_db(dbpath);
        return 1;
    }
    s_progress pr = {0};
    if (!quiet && isatty(STDERR_FILENO)) {
        o.progress = s_on_progress;
        o.progress_ctx = &pr;
    }
    store_import_stats st;
    double t0 = util_now_s();
    int rc = kind == 1 ? store_import_items(db, src, &o, &st, &err)
             : kind == 2 ? store_import_events(db, src, &o, &st, &err)
             : store_import_movielens(db, src, &o, &st, &err);
    double secs = util_now_s() - t0;
    if (pr.shown)
        fputs("\r\033[K", stderr);
    store_close(&db);
    if (rc != STORE_OK) {
        fprintf(stderr, "attnctl import: %s\n", err.msg);
        if (created) {
            s_unlink_db(dbpath);
            fprintf(stderr, "attnctl import: nothing imported; removed the new database %s\n",
                    dbpath);
        } else
            fprintf(stderr, "attnctl import: nothing imported; %s is unchanged\n", dbpath);
        return 1;
    }
    if (created)
        printf("created %s (embedding_dim %d)\n", dbpath, dim);
    s_summary(what, &st, secs);
    if (kind == 3)
        printf("items have no embeddings yet: run 'attnctl embed %s'\n", dbpath);
    return 0;
}
