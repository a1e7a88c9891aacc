/* import.h -- fill an attnd store from files: items, events, embeddings,
 * and the MovieLens layouts.
 *
 *     store_import_opts o = store_import_defaults();
 *     o.skip_bad = 1;                              // reject bad lines, go on
 *     store_import_stats st;
 *     if (store_import_events(db, "events.csv", &o, &st, &err) != STORE_OK)
 *         die("%s", err.msg);   // "events.csv:1042: column ts: 'abc' is not an integer"
 *     printf("%llu events, %llu rejected into %s\n", st.events, st.rejected,
 *            st.rejects_path);
 *
 * Every call is one transaction (store_begin .. store_commit): it either
 * commits everything it read or, on any error, rolls back and leaves the
 * database exactly as it was.  A process killed mid-import leaves the same
 * (SQLite's WAL never shows an uncommitted transaction).  With skip_bad, a
 * line whose data is bad (not a failing disk) is written with its reason to
 * the rejects file and counted instead of stopping the import.
 *
 * Files are streamed: memory is one input chunk, one record and the ext_id
 * caches, whatever the file size.  docs/IMPORT.md describes the formats,
 * the column defaults and the upsert rules.
 */
#ifndef STORE_IMPORT_H
#define STORE_IMPORT_H

#include <stdint.h>

#include "store/store.h"

/* Sequence files (store_import_sequences). */
enum store_import_seq_layout {
    STORE_IMPORT_SEQ_AUTO = 0,   /* detected from the first lines */
    STORE_IMPORT_SEQ_PAIRS,      /* "user item" a line: one event (SASRec, RecBole) */
    STORE_IMPORT_SEQ_LISTS,      /* "user item1 item2 ..." a line: one user (S3-Rec) */
};

enum store_import_format {
    STORE_IMPORT_AUTO = 0,   /* by extension: .csv .tsv .txt, or .jsonl .ndjson .json */
    STORE_IMPORT_CSV,        /* RFC 4180, header row naming the columns */
    STORE_IMPORT_JSONL,      /* one JSON object per line */
};

/* Progress of the file being read, for a tool's progress line.  Called every
 * few thousand records and once more with done = 1 at the end of each file. */
typedef struct store_import_progress {
    const char *file;       /* label of the file being read; borrowed */
    uint64_t rows;          /* records read from it so far */
    uint64_t rejected;      /* records rejected so far, all files */
    uint64_t bytes_done;    /* input bytes consumed */
    uint64_t bytes_total;   /* file size, 0 when unknown (a pipe) */
    int done;               /* 1 on the last call for this file */
} store_import_progress;

typedef void (*store_import_progress_fn)(void *ctx, const store_import_progress *p);

#define STORE_IMPORT_KIND_MAX 64   /* bytes of an event's kind */

typedef struct store_import_opts {
    int format;                /* enum store_import_format */
    char delim;                /* CSV separator; 0 = ',' (or tab for .tsv) */
    int no_header;             /* CSV has no header: --col-X are 1-based numbers */
    int latin1;                /* input is Latin-1: transcode to UTF-8 */
    int skip_bad;              /* reject bad lines into the rejects file, go on */
    const char *rejects_path;  /* NULL = FILE.rejects (DB.rejects for movielens) */
    /* Column names or numbers; NULL = the defaults in docs/IMPORT.md. */
    const char *col_id, *col_title, *col_text, *col_embedding;
    const char *col_user, *col_item, *col_ts, *col_kind, *col_weight;
    const char *default_kind;  /* kind of events without one; NULL = "view";
                                  UTF-8, 1..STORE_IMPORT_KIND_MAX bytes */
    const char *npy_path;      /* store_import_items: also embeddings from .npy */
    const char *ids_path;      /*   ... aligned with this list of ext_ids */
    int seq_layout;            /* store_import_sequences: enum store_import_seq_layout */
    const char *titles_path;   /* store_import_sequences: items file (CSV/JSONL) with
                                  titles and texts for the sequences' items */
    int64_t now;               /* items.updated_at; 0 = time(NULL) */
    int cache_kib;             /* SQLite page cache while importing; 0 = 64 MiB */
    store_import_progress_fn progress;   /* may be NULL */
    void *progress_ctx;
} store_import_opts;

/* Everything zero/NULL: the defaults. */
store_import_opts store_import_defaults(void);

typedef struct store_import_stats {
    uint64_t rows;            /* data records read (headers excluded) */
    uint64_t items_created;   /* new ext_ids */
    uint64_t items_updated;   /* existing ext_ids rewritten */
    uint64_t embeddings;      /* item embeddings written */
    uint64_t events;          /* event lines written (a duplicate replaces) */
    uint64_t users_created;   /* users seen for the first time */
    uint64_t rejected;        /* lines written to the rejects file */
    uint64_t items_untitled;  /* sequences: items created without title or text */
    uint64_t items_skipped;   /* sequences: titles of items no sequence names */
    char rejects_path[512];   /* where rejects went ("" if none) */
} store_import_stats;

/* Format of a path from its extension, STORE_IMPORT_AUTO if unknown. */
int store_import_format_of(const char *path);

/* Items from CSV or JSONL (path may be NULL when only npy_path is given),
 * then embeddings from opts->npy_path aligned with opts->ids_path, all in
 * one transaction.  Upsert by ext_id: a column the file does not have keeps
 * the stored value.  Bumps catalog_version when anything was written. */
int store_import_items(store *db, const char *path, const store_import_opts *opts,
                       store_import_stats *stats, store_err *err);

/* Events (user, item, ts, kind, weight) from CSV or JSONL.  Users are created
 * on first sight; an unknown item is an error; an identical (user, item, ts,
 * kind) replaces the weight. */
int store_import_events(store *db, const char *path, const store_import_opts *opts,
                        store_import_stats *stats, store_err *err);

/* A MovieLens directory: the 100K layout (u.item, u.genre, u.data), the
 * CSV layout (movies.csv, ratings.csv, optional tags.csv), the ML-1M/10M
 * layout (movies.dat, ratings.dat; Latin-1, '::'-separated; users.dat is
 * not read) or movies.dat beside a sequence file sequences.txt (the
 * sequences name the catalog, movies.dat titles it).  Items get the movie
 * title and the text "title. genres. tags"; every rating becomes an event
 * of kind "rating" and weight 1.  No embeddings (run the embedder). */
int store_import_movielens(store *db, const char *dir, const store_import_opts *opts,
                           store_import_stats *stats, store_err *err);

/* Events from a sequence file (docs/IMPORT.md): "user item" lines, or
 * "user item1 item2 ..." lines (opts->seq_layout, detected by default),
 * blank-separated, each user's events in time order.  The file carries no
 * times: the k-th event read gets ts = k.  Items are created as the
 * sequences name them, with titles and texts from opts->titles_path when
 * given (entries for items no sequence names are skipped and counted), else
 * with a zero embedding: no text, learned vectors only. */
int store_import_sequences(store *db, const char *path, const store_import_opts *opts,
                           store_import_stats *stats, store_err *err);

/* Which MovieLens layout dir holds: 1 = 100K, 2 = CSV, 3 = ML-1M/10M '::'
 * files (movies.dat + ratings.dat), 4 = movies.dat + sequences.txt, 0 =
 * none. */
int store_import_movielens_layout(const char *dir);

#endif
