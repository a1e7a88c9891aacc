/* fuzz_import.c -- a resettable database for the importer harnesses
 * (fuzz_import.h). */
#include "tests/fuzz/fuzz_import.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/tu_daemon.h"

typedef struct s_work {
    char tmpl[512], path[600];
    store *db;
    sqlite3 *watch;          /* a second connection: sees only commits */
    sqlite3 *pristine;       /* the template, in memory: what a reset copies back */
    int dim;                 /* the template's embedding dim */
    int64_t data_version;    /* its PRAGMA data_version before the import */
} s_work;

static s_work s_full, s_empty;
static s_work *s_last;

static int64_t s_data_version(sqlite3 *h)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(h, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    FZ_ASSERT(v >= 0, "PRAGMA data_version: %s", sqlite3_errmsg(h));
    return v;
}

static void s_open(s_work *w)
{
    store_err err;
    if (store_open(&w->db, w->path, STORE_READWRITE, 1000, &err) != STORE_OK)
        fz_fail(__FILE__, __LINE__, "store_open", "%s", err.msg);
    if (sqlite3_open_v2(w->path, &w->watch, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fz_fail(__FILE__, __LINE__, "sqlite3_open_v2", "%s", w->path);
}

/* The slow way back to the template: close both connections, copy the
 * file, reopen (store_open's schema check and all). */
static void s_reopen(s_work *w)
{
    store_close(&w->db);
    sqlite3_close(w->watch);
    w->watch = NULL;
    char side[700];
    snprintf(side, sizeof side, "%s-wal", w->path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", w->path);
    unlink(side);
    fz_copy(w->tmpl, w->path);
    s_open(w);
}

static void s_backup(sqlite3 *to, sqlite3 *from)
{
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    FZ_ASSERT(b, "sqlite3_backup_init: %s", sqlite3_errmsg(to));
    int rc = sqlite3_backup_step(b, -1);
    FZ_ASSERT(rc == SQLITE_DONE, "sqlite3_backup_step: %s", sqlite3_errstr(rc));
    FZ_ASSERT(sqlite3_backup_finish(b) == SQLITE_OK, "sqlite3_backup_finish: %s",
              sqlite3_errmsg(to));
}

/* Back to the template.  Copying the pristine pages into the open
 * connection is the same database as a fresh copy of the file, without
 * reopening: the reopen and its schema check were half of every
 * committing execution.  The handle caches one thing read at open, the
 * dim; an import that rewrote it gets the slow way. */
static void s_reset(s_work *w)
{
    if (store_dim(w->db) != w->dim) {
        s_reopen(w);
        return;
    }
    s_backup(store_sqlite(w->db), w->pristine);
}

static store *s_get(s_work *w, const char *name, int generated)
{
    if (!w->db) {
        /* The importers run on this one thread: no mutexes.  Refused (and
         * harmless) once SQLite is initialised, i.e. for the second work. */
        sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
        snprintf(w->tmpl, sizeof w->tmpl, "%s", fz_path(name));
        snprintf(w->path, sizeof w->path, "%s.work", w->tmpl);
        store_err err;
        if (generated) {
            tu_make_db(w->tmpl, 20, 5, 4);
        } else if (store_init(w->tmpl, 4, &err) != STORE_OK) {
            fz_fail(__FILE__, __LINE__, "store_init", "%s", err.msg);
        }
        fz_copy(w->tmpl, w->path);
        s_open(w);
        w->dim = store_dim(w->db);
        FZ_ASSERT(sqlite3_open(":memory:", &w->pristine) == SQLITE_OK, "%s",
                  "sqlite3_open(:memory:)");
        s_backup(w->pristine, store_sqlite(w->db));
    }
    w->data_version = s_data_version(w->watch);
    s_last = w;
    return w->db;
}

store *fzi_db(void)
{
    return s_get(&s_full, "import.db", 1);
}

store *fzi_db_empty(void)
{
    return s_get(&s_empty, "empty.db", 0);
}

store_import_opts fzi_opts(void)
{
    store_import_opts o = store_import_defaults();
    o.now = 1700000000;
    o.rejects_path = fz_path("rejects.txt");
    o.cache_kib = 1024;
    return o;
}

static void s_problem(void *ctx, const char *msg)
{
    (void)ctx;
    fz_fail(__FILE__, __LINE__, "store_check", "a committed import left: %s", msg);
}

void fzi_after(int rc, const store_err *err)
{
    s_work *w = s_last;
    int64_t v = s_data_version(w->watch);
    if (getenv("FZ_VERBOSE"))   /* for writing seeds: what did this input reach? */
        fprintf(stderr, "import: %s%s%s\n", store_strerror(rc), rc ? ": " : "",
                rc ? err->msg : "");
    if (rc != STORE_OK) {
        FZ_ASSERT(err->msg[0], "import failed (code %d) without a message", rc);
        FZ_ASSERT(v == w->data_version, "a failed import committed something: %s", err->msg);
        return;
    }
    store_check(w->db, s_problem, NULL);
    if (v != w->data_version)
        s_reset(w);
}

void fzi_table(const uint8_t *data, size_t size, int format)
{
    if (size < 1)
        return;
    int flags = data[0];
    const char *path = fz_path(format == STORE_IMPORT_CSV ? "in.csv" : "in.jsonl");
    fz_write(path, data + 1, size - 1);
    store_import_opts o = fzi_opts();
    o.format = format;
    o.skip_bad = (flags >> 1) & 1;
    o.latin1 = (flags >> 2) & 1;
    o.delim = (flags >> 3) & 1 ? ';' : 0;
    if (format == STORE_IMPORT_CSV && ((flags >> 4) & 1)) {
        o.no_header = 1;
        o.col_id = o.col_user = "1";
        o.col_title = o.col_item = "2";
        o.col_text = o.col_ts = "3";
        o.col_embedding = o.col_kind = "4";
        o.col_weight = "5";
    }
    o.default_kind = (flags >> 5) & 1 ? "rating" : NULL;
    store *db = fzi_db();
    store_import_stats st;
    store_err err = {0};
    int rc = flags & 1 ? store_import_events(db, path, &o, &st, &err)
                       : store_import_items(db, path, &o, &st, &err);
    fzi_after(rc, &err);
}

/* SQLite's memory statistics take a global lock per allocation: pure cost
 * in every harness (none reads them). */
__attribute__((constructor)) static void s_sqlite_no_memstatus(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
