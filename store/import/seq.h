/* seq.h -- sequence files and the titles that may come with them.
 * Internal to store/import/ (the API is store_import_sequences in
 * store/import/import.h).
 *
 *     store_import_titles *t = store_import_titles_new();
 *     rc = store_import_titles_file(&job, t, "items.csv");      // optional
 *     rc = store_import_seq_file(&job, "seq.txt", STORE_IMPORT_SEQ_AUTO, t);
 *     job.st->items_skipped = store_import_titles_unused(t);
 *     store_import_titles_free(&t);
 *
 * A sequence file names the catalog: an item is created when the
 * sequences first name it, with its title and text from the titles (if
 * any).  An item without either gets a zero embedding -- "no text": the
 * trainer learns its vector alone (docs/IMPORT.md, docs/TRAINING.md) -- so
 * a catalog of bare ids needs no `attnctl embed`.
 */
#ifndef STORE_IMPORT_SEQ_H
#define STORE_IMPORT_SEQ_H

#include "store/import/job.h"

/* ext_id -> (title, text), each entry marked once it has been used. */
typedef struct store_import_titles store_import_titles;

store_import_titles *store_import_titles_new(void);     /* NULL on out-of-memory */
void store_import_titles_free(store_import_titles **t_p);   /* accepts NULL */

/* Add or replace ext's entry; title and text may be NULL.  STORE_OK or
 * STORE_ERR_NOMEM (through the job). */
int store_import_titles_put(store_import_job *job, store_import_titles *t, const char *ext,
                            size_t len, const char *title, const char *text);

/* ext's title and text (borrowed, may be NULL), marking the entry used:
 * 1, or 0 if ext has none. */
int store_import_titles_take(store_import_titles *t, const char *ext, size_t len,
                             const char **title, const char **text);

/* Write every entry as an item (upsert by ext_id, in the order they were
 * put; no embedding) and mark it used: for layouts whose titles file is
 * the catalog. */
int store_import_titles_write(store_import_job *job, store_import_titles *t);

/* Entries never taken. */
uint64_t store_import_titles_unused(const store_import_titles *t);

/* Titles from an items file: CSV or JSONL with the columns of 'import
 * items' (id, title, text; an embedding column is ignored). */
int store_import_titles_file(store_import_job *job, store_import_titles *t, const char *path);

/* Events from a sequence file (layout: enum store_import_seq_layout) inside
 * the job's transaction.  titles may be NULL.  When it created items
 * without text, meta embedder says so (unless it already names one). */
int store_import_seq_file(store_import_job *job, const char *path, int layout,
                          store_import_titles *titles);

/* The item ext names, created (titled from titles, else with a zero
 * embedding) if the database does not hold it yet.  For the importers
 * whose events define the catalog. */
int store_import_seq_item(store_import_job *job, store_import_rd *rd,
                          store_import_titles *titles, const char *ext, size_t len,
                          int64_t *id);

/* The MovieLens '::' layouts of dir (mldat.c): layout 3 =
 * movies.dat + ratings.dat, 4 = movies.dat + sequences.txt
 * (store_import_movielens_layout's numbers). */
int store_import_mldat(store_import_job *job, const char *dir, int layout);

/* Split s[0..len) at every occurrence of sep (a non-empty string), or at
 * runs of blanks (space, tab) when sep is NULL (no empty fields then).
 * Fields are trimmed of blanks; at most max, the last taking the rest.
 * Returns the number of fields. */
int store_import_split(const char *s, size_t len, const char *sep, const char **f,
                       size_t *flen, int max);

#endif
