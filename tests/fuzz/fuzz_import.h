/* fuzz_import.h -- the database an importer harness writes into.
 *
 *     store *db = fzi_db();                  // a generated database, dim 4
 *     int rc = store_import_items(db, path, &o, &st, &err);
 *     fzi_after(rc, &err);                   // the invariants, then a reset
 *
 * An import is one transaction (store/import/import.h): it commits all it
 * read or leaves the database as it was.  fzi_after holds every harness to
 * that: a failed import must have committed nothing (SQLite's data_version,
 * seen from a second connection) and must say why; a successful one must
 * leave a database that store_check finds healthy, and is then undone by
 * copying the template back (its pages, into the open connection), so that
 * every input starts from the same database.
 */
#ifndef TESTS_FUZZ_FUZZ_IMPORT_H
#define TESTS_FUZZ_FUZZ_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "store/import/import.h"
#include "store/store.h"

/* The working database: items i00001..i00020 (dim 4, with titles and
 * embeddings), users u0001..u0005 with their events. */
store *fzi_db(void);
/* An empty database (dim 4, no items), for MovieLens imports. */
store *fzi_db_empty(void);

/* Options every harness starts from: a fixed clock, rejects into the
 * scratch directory. */
store_import_opts fzi_opts(void);

/* Check the result of one import on the database last returned, and
 * reset it if the import committed. */
void fzi_after(int rc, const store_err *err);

/* The CSV and JSONL harnesses: the first input byte picks what the rest is
 * and how it is read (bit 0 events, else items; 1 skip_bad; 2 Latin-1;
 * 3 ';' as the CSV separator; 4 a CSV without header, columns by number;
 * 5 default kind "rating"); the rest is the file. */
void fzi_table(const uint8_t *data, size_t size, int format);

#endif
