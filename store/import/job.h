/* job.h -- what every importer does the same way: one transaction,
 * the rejects file, progress, and the ext_id -> id caches.
 *
 *     store_import_job job;
 *     const char *inputs[] = {"events.csv"};
 *     int rc = store_import_job_start(&job, db, opts, stats, "events.csv", inputs, 1, err);
 *     if (rc != STORE_OK)
 *         return rc;                                // nothing began
 *     rc = store_import_job_open(&job, &rd, "events.csv", &ro);
 *     ... store_import_job_column for each column, then
 *     rc = store_import_each(&job, rd, row, ctx);   // row(): one record; bad ones are
 *                                                   // rejected (store_import_job_bad)
 *     store_import_rd_free(&rd);
 *     return store_import_job_finish(&job, rc);     // commit, or roll back
 *
 * Internal to store/import/.
 */
#ifndef STORE_IMPORT_JOB_H
#define STORE_IMPORT_JOB_H

#include <stdio.h>

#include "store/import/read.h"

typedef struct store_import_job {
    store *db;                     /* the handle, borrowed */
    const store_import_opts *o;    /* the caller's options, borrowed */
    store_import_stats *st;        /* the caller's counters */
    store_err *err;                /* the caller's error (may be NULL) */
    int64_t now;                   /* updated_at of every item written */
    FILE *rejects;                 /* open while skip_bad */
    const void *hdr_written;       /* reader whose header went to rejects */
    store_import_map *users;       /* ext_id -> user_id */
    store_import_map *items;       /* ext_id -> item_id */
    int64_t cache_was;             /* store_cache_size before the import, 0 = untouched */
    int items_changed;             /* bump catalog_version at commit */
    int embeddings_from;           /* write meta embedder "imported" at commit */
    char embed_source[256];        /* file the embeddings came from */
} store_import_job;

/* Begin the transaction and open the rejects file (when skip_bad; its path,
 * kept in stats->rejects_path, is opts->rejects_path or rejects_beside +
 * ".rejects", and one too long to keep whole is refused).  inputs (NULL
 * entries skipped up to n) are the files the import will read: a rejects
 * path naming one of them, or the database, is refused before anything is
 * truncated.  On failure nothing is open. */
int store_import_job_start(store_import_job *job, store *db, const store_import_opts *opts,
                           store_import_stats *stats, const char *rejects_beside,
                           const char *const *inputs, int n_inputs, store_err *err);

/* Commit if rc is STORE_OK (bumping catalog_version first when items
 * changed), else roll back; a rejects file that cannot be written out
 * rolls back too.  Closes the rejects file, removing it when it stayed
 * empty (a regular file only).  Returns the final code. */
int store_import_job_finish(store_import_job *job, int rc);

/* Open a reader for path with the job's options; format AUTO is resolved by
 * extension (.tsv also sets a tab separator). */
int store_import_job_open(store_import_job *job, store_import_rd **rd, const char *path,
                          store_import_rd_opts *ro);

/* A record failed with rc and job->err set.  With skip_bad and a data error
 * (STORE_ERR_INVAL / _NOTFOUND / _DIM) the record goes to the rejects file
 * with its reason and STORE_OK is returned: go on.  Otherwise rc comes back
 * and the import stops. */
int store_import_job_bad(store_import_job *job, store_import_rd *rd, int rc);

/* The same for a record without a reader (npy rows): raw is written as is. */
int store_import_job_bad_raw(store_import_job *job, const char *raw, size_t len, int rc);

/* Fail with STORE_ERR_INVAL and "label:line: why". */
int store_import_job_fail(store_import_job *job, store_import_rd *rd, const char *why);

/* Report progress every few thousand records, and at the end (done). */
void store_import_job_progress(store_import_job *job, store_import_rd *rd, uint64_t rows,
                               int done);

/* Read every record of rd, calling row(job, rd, ctx) on each: counts
 * rows, sends a failed record through the job's skip-bad rule
 * (store_import_job_bad) and reports progress.  STORE_OK or the code that
 * stopped the import. */
typedef int (*store_import_row_fn)(store_import_job *job, store_import_rd *rd, void *ctx);
/* What a row function returns for a record that is no data (a header line,
 * a line of blanks): the import goes on and stats->rows does not count it. */
#define STORE_IMPORT_NOT_DATA (-1)
int store_import_each(store_import_job *job, store_import_rd *rd, store_import_row_fn row,
                      void *ctx);

/* item_id of ext, from the cache or the database; STORE_ERR_NOTFOUND (err
 * untouched) if there is no such item. */
int store_import_job_item(store_import_job *job, const char *ext, size_t len, int64_t *id);

/* Remember ext -> id after a write. */
int store_import_job_item_seen(store_import_job *job, const char *ext, size_t len, int64_t id);

/* An item row was written: the catalog changed, and the row counts as
 * updated (it existed) or created. */
void store_import_job_item_written(store_import_job *job, int existed);

/* user_id of ext, creating the user on first sight. */
int store_import_job_user(store_import_job *job, const char *ext, size_t len, int64_t *id);

/* Find a column (store_import_rd_column).  A column named by the user's
 * flag (spec) must exist, and so must a required one; otherwise *col = -1
 * means the file lacks it.  The error names what was looked for, the header
 * and the flag that picks the column. */
int store_import_job_column(store_import_job *job, store_import_rd *rd, int *col,
                            int required, const char *what, const char *spec,
                            const char *flag, const char *const *defaults);

/* Events from one CSV/JSONL file inside the job's transaction.  cols, when
 * not NULL, replaces the user/item/ts/kind/weight column flags (5 entries,
 * NULL = none) for files of a fixed layout (events.c). */
int store_import_events_file(store_import_job *job, const char *path,
                             store_import_rd_opts *ro, const char *const *cols);

/* The id, title and text columns of an items file (col[0..2]; title and
 * text -1 when the file lacks them), found as 'import items' finds them:
 * --col-id/--col-title/--col-text or the default names (items.c; the
 * titles of a sequence import read the same files). */
int store_import_item_columns(store_import_job *job, store_import_rd *rd, int col[3]);

/* Embeddings from a .npy matrix whose rows go with the ext_ids listed one
 * per line in ids_path, inside the job's transaction (npy.c). */
int store_import_npy_rows(store_import_job *job, const char *npy_path, const char *ids_path);

/* A reader that hands out whole lines as one field (field 0), whatever
 * bytes they hold: for the formats that are not CSV (blank- or
 * '::'-separated lines, a list of ids). */
int store_import_lines_open(store_import_job *job, store_import_rd **rd, const char *path,
                            int latin1);

/* The current line of such a reader, trimmed and checked (UTF-8, no NUL;
 * borrowed until the next record).  *s is NULL for a line of blanks, which
 * the caller skips (its row function returns STORE_IMPORT_NOT_DATA). */
int store_import_line(store_import_job *job, store_import_rd *rd, const char **s, size_t *len);

/* Fail with STORE_ERR_NOMEM. */
int store_import_job_nomem(store_import_job *job);

/* Prefix job->err's message with "label:line: " (a store writer's error
 * names the table but not where in the file the row came from). */
void store_import_job_where(store_import_job *job, store_import_rd *rd);

#endif
