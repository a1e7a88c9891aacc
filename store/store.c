/* store.c -- the store handle: open, close, errors, meta, transactions.
 *
 * A handle is one SQLite connection plus a cache of prepared statements
 * (store_int.h).  The daemon opens read-only handles, one per worker thread,
 * and reads beside writers thanks to WAL; the tools open read-write handles,
 * which migrate an older schema forward (schema.c).
 *
 * Opening is where most user mistakes surface -- a wrong path, a text file,
 * a truncated copy, somebody else's database, a database locked by an
 * import -- so every one of those gets its own code and a message that
 * names the file and says what to do.
 */
#include "store/store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *store_strerror(int code)
{
    switch (code) {
    case STORE_OK: return "ok";
    case STORE_ERR_IO: return "io";
    case STORE_ERR_NOTDB: return "notdb";
    case STORE_ERR_NOTOURS: return "notours";
    case STORE_ERR_SCHEMA: return "schema";
    case STORE_ERR_BUSY: return "busy";
    case STORE_ERR_CORRUPT: return "corrupt";
    case STORE_ERR_DIM: return "dim";
    case STORE_ERR_NOTFOUND: return "notfound";
    case STORE_ERR_INVAL: return "inval";
    case STORE_ERR_NOMEM: return "nomem";
    case STORE_ERR_EXISTS: return "exists";
    case STORE_ERR_UNAVAILABLE: return "unavailable";
    }
    return "unknown";
}

int store_fail(store_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
        /* One line, always: SQLite messages and row values may carry
         * newlines, which would break log lines and test expectations. */
        for (char *p = err->msg; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
    }
    return code;
}

int store_code_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: return STORE_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return STORE_ERR_BUSY;
    case SQLITE_NOTADB: return STORE_ERR_NOTDB;
    case SQLITE_CORRUPT: return STORE_ERR_CORRUPT;
    case SQLITE_NOMEM: return STORE_ERR_NOMEM;
    case SQLITE_CONSTRAINT:
        return rc == SQLITE_CONSTRAINT_FOREIGNKEY ? STORE_ERR_NOTFOUND : STORE_ERR_INVAL;
    case SQLITE_MISUSE:
    case SQLITE_RANGE: return STORE_ERR_INVAL;
    case SQLITE_ERROR: return STORE_ERR_SCHEMA;   /* "no such table/column" */
    }
    return STORE_ERR_IO;
}

int store_sqlfail(store *db, store_err *err, int rc, const char *what)
{
    int code = store_code_of(rc);
    const char *path = db ? db->path : "?";
    if (code == STORE_ERR_BUSY)
        return store_fail(err, code,
                          "%s: %s: database is locked by another writer "
                          "(gave up after %d ms; retry when it finishes)",
                          path, what, db ? db->busy_ms : 0);
    return store_fail(err, code, "%s: %s: %s", path, what,
                      db && db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
}

sqlite3_stmt *store_stmt(store *db, int slot, const char *sql, store_err *err)
{
    sqlite3_stmt *st = db->st[slot];
    if (st) {
        sqlite3_reset(st);
        return st;
    }
    int rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        store_sqlfail(db, err, rc, "preparing a query");
        return NULL;
    }
    db->st[slot] = st;
    return st;
}

int store_need_rw(store *db, const char *what, store_err *err)
{
    if (!(db->flags & STORE_READWRITE))
        return store_fail(err, STORE_ERR_INVAL, "%s: %s: the database was opened read-only",
                          db->path, what);
    return STORE_OK;
}

int store_exec(store *db, const char *sql, const char *what, store_err *err)
{
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? STORE_OK : store_sqlfail(db, err, rc, what);
}

int store_query_int(store *db, const char *sql, int64_t *out, const char *what,
                    store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, what);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return STORE_OK;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return store_fail(err, STORE_ERR_NOTFOUND, "%s: %s: no row", db->path, what);
    return store_sqlfail(db, err, rc, what);
}

/* Explain why SQLite called the file corrupt or not a database, from its
 * 100-byte header: a truncated copy is the usual cause and deserves to be
 * named.  Writes "" when there is nothing more specific to say. */
static void s_explain_bad_file(const char *path, char *why, size_t len)
{
    why[0] = '\0';
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    unsigned char h[100];
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    if (got < sizeof h || memcmp(h, "SQLite format 3", 16) != 0) {
        snprintf(why, len, " (no SQLite header: %lld bytes, not 'SQLite format 3')",
                 (long long)st.st_size);
        return;
    }
    /* Page size at 16 (big-endian, 1 means 65536); page count at 28, valid
     * only when the change counter (24) matches version-valid-for (92). */
    unsigned page = (unsigned)h[16] << 8 | h[17];
    if (page == 1)
        page = 65536;
    uint32_t pages = (uint32_t)h[28] << 24 | (uint32_t)h[29] << 16 | (uint32_t)h[30] << 8 | h[31];
    int valid = memcmp(h + 24, h + 92, 4) == 0 && pages > 0;
    long long want = (long long)pages * page;
    if (valid && want > (long long)st.st_size)
        snprintf(why, len, " (truncated: %lld bytes, its header says %lld)",
                 (long long)st.st_size, want);
    else if (st.st_size % page)
        snprintf(why, len, " (%lld bytes is not a whole number of %u-byte pages: truncated?)",
                 (long long)st.st_size, page);
}

/* Turn a failure of the first reads of a freshly opened file into the right
 * code and a message about the file rather than about a query. */
static int s_open_fail(store *db, store_err *err, int code)
{
    int sql_rc = sqlite3_errcode(db->h) & 0xff;
    if (sql_rc == SQLITE_READONLY || sql_rc == SQLITE_CANTOPEN)
        /* A WAL reader needs DB-shm (and DB-wal) beside the file, which it
         * creates if they are missing: a read-only directory stops it. */
        return store_fail(err, STORE_ERR_IO,
                          "%s: cannot open its write-ahead log files (%s-wal, %s-shm): %s; "
                          "readers of a WAL database need write access to its directory",
                          db->path, db->path, db->path, sqlite3_errmsg(db->h));
    if (err && (sql_rc == SQLITE_NOTADB || sql_rc == SQLITE_CORRUPT)) {
        char why[160];
        s_explain_bad_file(db->path, why, sizeof why);
        return store_fail(err, STORE_ERR_NOTDB, "%s: not a usable SQLite database: %s%s",
                          db->path, sqlite3_errmsg(db->h), why);
    }
    return code;
}

void store_close(store **db_p)
{
    if (!db_p || !*db_p)
        return;
    store *db = *db_p;
    for (int i = 0; i < STORE_ST__COUNT; i++)
        sqlite3_finalize(db->st[i]);
    if (db->h) {
        /* A handle closed inside a transaction rolls it back, as SQLite
         * does; nothing half-written survives. */
        sqlite3_close_v2(db->h);
    }
    free(db->path);
    free(db);
    *db_p = NULL;
}

int store_open(store **out, const char *path, int flags, int busy_ms, store_err *err)
{
    if (!out || !path || !*path || (flags & ~(STORE_READWRITE | STORE_NOMIGRATE)) ||
        flags == STORE_NOMIGRATE || busy_ms < 0) {
        if (out)
            *out = NULL;
        return store_fail(err, STORE_ERR_INVAL, "store_open: bad arguments");
    }
    *out = NULL;

    /* SQLite would create a missing file (read-write) or report a bare
     * "unable to open"; only store_init creates databases, and a missing
     * file deserves a message saying how to make one. */
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return store_fail(err, STORE_ERR_IO,
                              "%s: no such file (create one with 'attnctl init %s --dim D')",
                              path, path);
        return store_fail(err, STORE_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return store_fail(err, STORE_ERR_IO, "%s: is a directory, not a database file", path);
    /* A FIFO or a device would make SQLite's first read wait forever. */
    if (!S_ISREG(sb.st_mode))
        return store_fail(err, STORE_ERR_IO, "%s: not a regular file (a %s), not a database file",
                          path, S_ISFIFO(sb.st_mode) ? "FIFO" : S_ISCHR(sb.st_mode) ?
                          "character device" : S_ISSOCK(sb.st_mode) ? "socket" : "special file");
    if (sb.st_size > 0 && sb.st_size < 512)
        return store_fail(err, STORE_ERR_NOTDB,
                          "%s: not an SQLite database (only %lld bytes; a database "
                          "holds at least one 512-byte page)", path, (long long)sb.st_size);

    store *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory opening", path);
    }
    db->flags = flags;
    db->busy_ms = busy_ms;

    /* NOMUTEX: a handle belongs to one thread (store.h), so SQLite's
     * per-connection mutex is pure overhead. */
    int rw = flags & STORE_READWRITE;
    int oflags = (rw ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY)
                 | SQLITE_OPEN_NOMUTEX;
#ifdef SQLITE_OPEN_EXRESCODE
    oflags |= SQLITE_OPEN_EXRESCODE;
#endif
    store_sqlite_setup();
    int rc = sqlite3_open_v2(path, &db->h, oflags, rw ? store_walbuf_vfs() : NULL);
    if (rc != SQLITE_OK) {
        int code = store_fail(err, store_code_of(rc) == STORE_ERR_NOMEM ? STORE_ERR_NOMEM
                                                                        : STORE_ERR_IO,
                              "%s: cannot open: %s", path,
                              db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        store_close(&db);
        return code;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, busy_ms);
    /* SQLite quietly falls back to read-only when the file is not writable;
     * a tool asking to write should hear it now, not at its first insert. */
    if (rw && sqlite3_db_readonly(db->h, "main") == 1) {
        store_close(&db);
        return store_fail(err, STORE_ERR_IO, "%s: cannot open for writing (permission "
                          "denied?)", path);
    }

    rc = store_schema_check(db, err);
    if (rc != STORE_OK) {
        rc = s_open_fail(db, err, rc);
        store_close(&db);
        return rc;
    }

    if (rw) {
        /* Foreign keys are per connection and off by default in SQLite:
         * writers must see an event for an unknown user or item refused.
         * synchronous=NORMAL is durable across crashes in WAL mode (a power
         * cut can lose the last commits, never corrupt); writers are batch
         * tools that can be re-run, and FULL costs an fsync per commit. */
        rc = store_exec(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL",
                        "setting connection pragmas", err);
        if (rc != STORE_OK) {
            store_close(&db);
            return rc;
        }
    }
    *out = db;
    return STORE_OK;
}

const char *store_path(const store *db)
{
    return db->path;
}

int store_dim(const store *db)
{
    return db->dim;
}

void *store_sqlite(store *db)
{
    return db->h;
}

int store_meta_get(store *db, const char *key, char *buf, size_t len, store_err *err)
{
    if (!key || (!buf && len))
        return store_fail(err, STORE_ERR_INVAL, "%s: store_meta_get: bad arguments", db->path);
    sqlite3_stmt *st = store_stmt(db, STORE_ST_META_GET,
                                  "SELECT value FROM meta WHERE key = ?1", err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (len)
            snprintf(buf, len, "%s", v ? v : "");
        sqlite3_reset(st);
        return STORE_OK;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return store_fail(err, STORE_ERR_NOTFOUND, "%s: meta: no key '%s'", db->path, key);
    return store_sqlfail(db, err, rc, "reading meta");
}

int store_meta_set(store *db, const char *key, const char *value, store_err *err)
{
    if (!key || !value)
        return store_fail(err, STORE_ERR_INVAL, "%s: store_meta_set: NULL key or value",
                          db->path);
    int rc = store_need_rw(db, "meta", err);
    if (rc != STORE_OK)
        return rc;
    /* embedding_dim is the shape of every blob in items: changing it under
     * existing embeddings would make the whole catalog corrupt at once. */
    if (!strcmp(key, "embedding_dim"))
        return store_fail(err, STORE_ERR_INVAL,
                          "%s: meta embedding_dim is fixed at init (%d); create a new "
                          "database for another dimension", db->path, db->dim);
    sqlite3_stmt *st = store_stmt(db, STORE_ST_META_SET,
                                  "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                                  "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                  err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        char what[96];
        snprintf(what, sizeof what, "writing meta key '%.60s'", key);
        return store_sqlfail(db, err, rc, what);
    }
    return STORE_OK;
}

/* ---- transactions ---------------------------------------------------------
 * BEGIN IMMEDIATE takes the write lock up front, so a writer that cannot get
 * it fails here, after busy_ms, with a clear BUSY -- not halfway through a
 * batch when its first write meets the lock. */
int store_begin(store *db, store_err *err)
{
    int rc = store_need_rw(db, "begin", err);
    if (rc != STORE_OK)
        return rc;
    if (!sqlite3_get_autocommit(db->h))
        return store_fail(err, STORE_ERR_INVAL, "%s: store_begin: a transaction is already open",
                          db->path);
    sqlite3_stmt *st = store_stmt(db, STORE_ST_BEGIN, "BEGIN IMMEDIATE", err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? STORE_OK : store_sqlfail(db, err, rc, "starting a write transaction");
}

int store_commit(store *db, store_err *err)
{
    if (sqlite3_get_autocommit(db->h))
        return store_fail(err, STORE_ERR_INVAL, "%s: store_commit: no transaction is open",
                          db->path);
    sqlite3_stmt *st = store_stmt(db, STORE_ST_COMMIT, "COMMIT", err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store_sqlfail(db, err, rc, "committing");
    db->dim_undo = 0;   /* a dimension change is now for good */
    return STORE_OK;
}

/* ---- durability and checkpoints ------------------------------------------ */

int store_synchronous(store *db, int full, store_err *err)
{
    int rc = store_need_rw(db, "synchronous", err);
    if (rc != STORE_OK)
        return rc;
    return store_exec(db, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                      "setting synchronous", err);
}

/* SQLite's automatic checkpoints are a WAL hook too: installing ours
 * replaces them, which is the point -- it only notes the size. */
static int s_wal_hook(void *ctx, sqlite3 *h, const char *name, int pages)
{
    (void)h;
    (void)name;
    ((store *)ctx)->wal_pages = pages;
    return SQLITE_OK;
}

int store_wal_autocheckpoint(store *db, int pages, store_err *err)
{
    if (pages < 0)
        return store_fail(err, STORE_ERR_INVAL, "%s: wal_autocheckpoint: %d pages", db->path,
                          pages);
    if (pages == 0) {
        sqlite3_wal_hook(db->h, s_wal_hook, db);
        return STORE_OK;
    }
    int rc = sqlite3_wal_autocheckpoint(db->h, pages);
    return rc == SQLITE_OK ? STORE_OK : store_sqlfail(db, err, rc, "setting wal_autocheckpoint");
}

int store_wal_pages(const store *db)
{
    return db->wal_pages;
}

int store_wal_checkpoint(store *db, int *wal_pages, store_err *err)
{
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (wal_pages)
        *wal_pages = log;
    /* All copied: the next commit starts the WAL over.  Readers may pin
     * frames; then the next commit's size says to try again. */
    if (rc == SQLITE_OK && log >= 0 && done == log)
        db->wal_pages = 0;
    /* BUSY: another connection is checkpointing; it does our work. */
    if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY)
        return STORE_OK;
    return store_sqlfail(db, err, rc, "checkpointing the write-ahead log");
}

int64_t store_cache_size(store *db, int64_t size)
{
    int64_t was = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "PRAGMA cache_size", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            was = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size = %lld", (long long)size);
    sqlite3_exec(db->h, sql, NULL, NULL, NULL);   /* a hint: failure changes nothing */
    return was;
}

int store_read_begin(store *db, store_err *err)
{
    if (!sqlite3_get_autocommit(db->h))
        return store_fail(err, STORE_ERR_INVAL,
                          "%s: store_read_begin: a transaction is already open", db->path);
    return store_exec(db, "BEGIN", "starting a read transaction", err);
}

void store_read_end(store *db)
{
    /* Nothing was written: COMMIT only releases the snapshot, and a
     * rollback does the same if the commit cannot run. */
    if (db && !sqlite3_get_autocommit(db->h) &&
        sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        store_rollback(db);
}

void store_rollback(store *db)
{
    if (!db)
        return;
    if (db->dim_undo) {   /* a dimension change goes with the transaction */
        db->dim = db->dim_undo;
        db->dim_undo = 0;
    }
    if (sqlite3_get_autocommit(db->h))
        return;
    /* Statements still stepping would keep the transaction's read lock;
     * reset them all before rolling back. */
    for (int i = 0; i < STORE_ST__COUNT; i++)
        if (db->st[i])
            sqlite3_reset(db->st[i]);
    sqlite3_stmt *st = store_stmt(db, STORE_ST_ROLLBACK, "ROLLBACK", NULL);
    if (st) {
        sqlite3_step(st);
        sqlite3_reset(st);
    }
}
