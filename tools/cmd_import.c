/* cmd_import.c -- 'attnctl import items|events|sequences|movielens': flags in, one
 * store_import_* call, a progress line on a terminal and a summary out.
 *
 * All the work (and the all-or-nothing transaction) is in store/import/;
 * this file owns what only a program should: argument parsing, the
 * progress line on stderr when it is a terminal, messages and exit codes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/import/import.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"
#include "util/opt.h"

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

/* ---- the command line --------------------------------------------------------- */

enum { S_ITEMS, S_EVENTS, S_MOVIELENS, S_SEQUENCES };

typedef struct s_args {
    store_import_opts o;
    int what;                 /* S_ITEMS, S_EVENTS, S_MOVIELENS or S_SEQUENCES */
    const char *db, *src;     /* src: FILE or DIR; NULL for items from --npy only */
    int dim;                  /* movielens, sequences: of a new database */
    int quiet;
} s_args;

/* --delim: one character, or "tab". */
static int s_delim(void *field, const char *value, char *why, size_t why_len)
{
    if (!strcmp(value, "tab") || !strcmp(value, "\\t"))
        *(char *)field = '\t';
    else if (strlen(value) == 1 && value[0] != '"' && value[0] != '\n')
        *(char *)field = value[0];
    else {
        snprintf(why, why_len, "'%s' is not one character or 'tab'", value);
        return -1;
    }
    return 0;
}

static const char *const s_whats[] = {"items", "events", "movielens", "sequences", NULL};
static const char *const s_layouts[] = {"pairs", "lists", NULL};
static const int s_layout_values[] = {STORE_IMPORT_SEQ_PAIRS, STORE_IMPORT_SEQ_LISTS};
static const char *const s_formats[] = {"csv", "jsonl", "ndjson", NULL};
static const int s_format_values[] = {STORE_IMPORT_CSV, STORE_IMPORT_JSONL, STORE_IMPORT_JSONL};

static const util_opt s_pos[] = {
    {"KIND", NULL, NULL, UTIL_OPT_ENUM(s_args, what, s_whats, NULL)},
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
    {"FILE", NULL, NULL, UTIL_OPT_STR(s_args, src), .flags = UTIL_OPT_OPTIONAL},
};

static const util_opt s_opts[] = {
    {"format", NULL, "input format",
     UTIL_OPT_ENUM(s_args, o.format, s_formats, s_format_values), .def = "by extension"},
    {"delim", "C", "CSV separator: a character or 'tab'", UTIL_OPT_CALL(s_args, o.delim, s_delim),
     .def = "','"},
    {"no-header", NULL, "CSV without a header row: --col-X are 1-based numbers",
     UTIL_OPT_FLAG(s_args, o.no_header, 1)},
    {"latin1", NULL, "input is Latin-1, transcode to UTF-8", UTIL_OPT_FLAG(s_args, o.latin1, 1)},
    {"col-id", "NAME", "item id column", UTIL_OPT_STR(s_args, o.col_id),
     .def = "id, ext_id, item_id, item"},
    {"col-title", "NAME", "title column", UTIL_OPT_STR(s_args, o.col_title),
     .def = "title, name"},
    {"col-text", "NAME", "text column", UTIL_OPT_STR(s_args, o.col_text),
     .def = "text, description"},
    {"col-embedding", "NAME", "embedding column", UTIL_OPT_STR(s_args, o.col_embedding),
     .def = "embedding, vector, emb"},
    {"col-user", "NAME", "user column", UTIL_OPT_STR(s_args, o.col_user),
     .def = "user, user_id, userId"},
    {"col-item", "NAME", "item column", UTIL_OPT_STR(s_args, o.col_item),
     .def = "item, item_id, itemId"},
    {"col-ts", "NAME", "time column", UTIL_OPT_STR(s_args, o.col_ts),
     .def = "ts, timestamp, time"},
    {"col-kind", "NAME", "kind column", UTIL_OPT_STR(s_args, o.col_kind),
     .def = "kind, type, event"},
    {"col-weight", "NAME", "weight column", UTIL_OPT_STR(s_args, o.col_weight), .def = "weight"},
    {"kind", "K", "kind of events without one", UTIL_OPT_STR(s_args, o.default_kind),
     .def = "view; movielens: rating"},
    {"npy", "FILE", "items: embeddings from a float32 .npy matrix, row i\n"
     "for the id on line i of the --ids file", UTIL_OPT_STR(s_args, o.npy_path)},
    {"ids", "FILE", "the ext_ids of the --npy rows, one a line", UTIL_OPT_STR(s_args, o.ids_path)},
    {"skip-bad", NULL, "write bad lines to the rejects file and go on",
     UTIL_OPT_FLAG(s_args, o.skip_bad, 1)},
    {"rejects", "FILE", "rejects file", UTIL_OPT_STR(s_args, o.rejects_path),
     .def = "FILE.rejects; DB.rejects for movielens"},
    {"layout", NULL, "sequences: 'user item' lines or 'user item1 item2 ...'\nlines",
     UTIL_OPT_ENUM(s_args, o.seq_layout, s_layouts, s_layout_values),
     .def = "detected from the first lines"},
    {"items", "FILE", "sequences: titles and texts (an items CSV/JSONL) for\n"
     "the items the sequences name; without it they have no text",
     UTIL_OPT_STR(s_args, o.titles_path)},
    {"dim", "D", "movielens, sequences: embedding dimension when creating DB",
     UTIL_OPT_INT(s_args, dim, 1, 65536)},
    {"quiet", NULL, "no progress line", UTIL_OPT_FLAG(s_args, quiet, 1)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl import",
    .usage = "items DB [FILE] [options]    id, title, text, embedding\n"
             "events DB FILE [options]     user, item, ts, kind, weight\n"
             "sequences DB FILE [options]  'user item' or 'user item1 item2 ...' lines\n"
             "movielens DB DIR [--dim D]   MovieLens 100K, CSV, ML-1M '::' layout,\n"
             "                                                   or movies.dat + "
             "sequences.txt",
    .about =
        "\n"
        "An items or events FILE is CSV (RFC 4180, header row) or JSONL (one object per\n"
        "line), chosen by extension (.csv .tsv .txt, .jsonl .ndjson .json) or --format;\n"
        "a sequences FILE is lines of blank-separated fields.  One transaction: a bad\n"
        "line stops the import with file:line and leaves the database unchanged.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
    .tail = "See docs/IMPORT.md.",
};

/* What the rows cannot say: which sources each kind needs. */
static int s_check_sources(const s_args *a)
{
    const store_import_opts *o = &a->o;
    if (a->what == S_ITEMS && !a->src && !o->npy_path)
        return util_opt_fail(&s_cmd, "import items: give FILE, or --npy FILE --ids FILE");
    if (a->what != S_ITEMS && !a->src)
        return util_opt_fail(&s_cmd, "missing FILE or DIR");
    if (!o->npy_path != !o->ids_path)
        return util_opt_fail(&s_cmd, "--npy and --ids go together");
    return 0;
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
    if (st->items_untitled)
        printf("%llu items have no title or text: zero vectors, learned by the trainer alone\n",
               (unsigned long long)st->items_untitled);
    if (st->items_skipped)
        printf("skipped the titles of %llu items that no sequence names\n",
               (unsigned long long)st->items_skipped);
    if (st->rejected)
        printf("rejected %llu lines, written with their reasons to %s\n",
               (unsigned long long)st->rejected, st->rejects_path);
}

/* MovieLens and sequence files are a fresh start more often than not:
 * create DB when it does not exist.  0 (with *created), or 1 (said). */
static int s_create(const s_args *a, int *created)
{
    struct stat sb;
    store_err err;
    *created = 0;
    if (stat(a->db, &sb) == 0 || errno != ENOENT)
        return 0;
    if (a->what == S_MOVIELENS && !store_import_movielens_layout(a->src)) {
        fprintf(stderr, "attnctl import: %s: not a MovieLens directory (expected "
                "u.item + u.data, movies.csv + ratings.csv, movies.dat + ratings.dat, or "
                "movies.dat + sequences.txt)\n", a->src);
        return 1;
    }
    if (store_init(a->db, a->dim, &err) != STORE_OK) {
        fprintf(stderr, "attnctl import: %s\n", err.msg);
        return 1;
    }
    *created = 1;
    return 0;
}

/* The import itself, with the progress line on a terminal.  A store code. */
static int s_import(s_args *a, store *db, store_import_stats *st, double *secs, store_err *err)
{
    s_progress pr = {0};
    if (!a->quiet && isatty(STDERR_FILENO)) {
        a->o.progress = s_on_progress;
        a->o.progress_ctx = &pr;
    }
    double t0 = util_now_s();
    int rc = a->what == S_ITEMS ? store_import_items(db, a->src, &a->o, st, err)
             : a->what == S_EVENTS ? store_import_events(db, a->src, &a->o, st, err)
             : a->what == S_SEQUENCES ? store_import_sequences(db, a->src, &a->o, st, err)
             : store_import_movielens(db, a->src, &a->o, st, err);
    *secs = util_now_s() - t0;
    if (pr.shown)
        fputs("\r\033[K", stderr);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    s_args a = {.o = store_import_defaults(), .dim = 64};
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    if ((rc = s_check_sources(&a)))
        return rc;
    int created = 0;
    if ((a.what == S_MOVIELENS || a.what == S_SEQUENCES) && s_create(&a, &created))
        return 1;
    store *db;
    store_err err;
    if (store_open(&db, a.db, STORE_READWRITE, 5000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl import: %s\n", err.msg);
        if (created)
            s_unlink_db(a.db);
        return 1;
    }
    store_import_stats st;
    double secs;
    rc = s_import(&a, db, &st, &secs, &err);
    store_close(&db);
    if (rc != STORE_OK) {
        fprintf(stderr, "attnctl import: %s\n", err.msg);
        if (created) {
            s_unlink_db(a.db);
            fprintf(stderr, "attnctl import: nothing imported; removed the new database %s\n",
                    a.db);
        } else
            fprintf(stderr, "attnctl import: nothing imported; %s is unchanged\n", a.db);
        return 1;
    }
    if (created)
        printf("created %s (embedding_dim %d)\n", a.db, a.dim);
    s_summary(s_whats[a.what], &st, secs);
    if (a.what == S_MOVIELENS || (a.what == S_SEQUENCES && st.items_created > st.items_untitled))
        printf("items have no embeddings yet: run 'attnctl embed %s'\n", a.db);
    return 0;
}
