/* init.c -- store_init: a new, empty attnd database; store_migrate: an
 * existing one brought up to this build's schema.
 *
 * The file is created, switched to WAL, and filled in one transaction:
 * header pragmas, every table (the migration steps from version 0), meta and
 * the identity model as active version 0.  Either all of it is there or the
 * file we created is removed: a half-initialised database never survives.
 */
#include "store/store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Longest history the identity model's (zero) position bias covers. */
#define STORE_IDENTITY_L_MAX 200

/* Size of path, -1 if it does not exist; -2 (errno set) on another error. */
static long long s_file_size(const char *path, int *is_dir)
{
    struct stat sb;
    *is_dir = 0;
    if (stat(path, &sb) != 0)
        return errno == ENOENT ? -1 : -2;
    *is_dir = S_ISDIR(sb.st_mode);
    return (long long)sb.st_size;
}

void store_unlink_all(const char *path)
{
    char side[4096];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static int s_fill(store *db, int dim, store_err *err)
{
    int64_t ntab;
    int rc = store_query_int(db, "SELECT count(*) FROM sqlite_schema", &ntab,
                             "reading the schema", err);
    if (rc != STORE_OK)
        return rc;
    if (ntab > 0)   /* another process initialised it while we opened it */
        return store_fail(err, STORE_ERR_EXISTS, "%s: already holds a database", db->path);

    char sql[512];
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d", (int)STORE_APPLICATION_ID);
    rc = store_exec(db, sql, "setting application_id", err);
    if (rc == STORE_OK)
        rc = store_schema_apply(db, 0, err);
    if (rc != STORE_OK)
        return rc;

    long long now = (long long)time(NULL);
    snprintf(sql, sizeof sql,
             "INSERT INTO meta(key, value) VALUES ('embedding_dim', '%d'), "
             "('catalog_version', '0'), ('created_at', '%lld')", dim, now);
    rc = store_exec(db, sql, "writing meta", err);
    if (rc != STORE_OK)
        return rc;

    /* Version 0: the identity model.  No tensors -- every projection absent
     * means identity and an absent pos_bias means zeros (docs/SCHEMA.md). */
    snprintf(sql, sizeof sql,
             "INSERT INTO models(version, created_at, heads, d_model, config, metrics, active) "
             "VALUES (0, %lld, 1, %d, '{\"d\":%d,\"m\":%d,\"heads\":1,\"l_max\":%d,"
             "\"scale\":%g,\"identity\":true}', NULL, 1)",
             now, dim, dim, dim, STORE_IDENTITY_L_MAX, (double)ATTN_IDENTITY_SCALE);
    return store_exec(db, sql, "writing the identity model", err);
}

int store_init(const char *path, int dim, store_err *err)
{
    if (!path || !*path)
        return store_fail(err, STORE_ERR_INVAL, "store_init: no path");
    if (dim < 1 || dim > STORE_MAX_DIM)
        return store_fail(err, STORE_ERR_INVAL, "%s: embedding dimension %d is outside 1..%d",
                          path, dim, STORE_MAX_DIM);

    /* Refuse anything that holds data.  An empty file is allowed (mktemp,
     * a placeholder); so is nothing at all. */
    int is_dir;
    long long size = s_file_size(path, &is_dir);
    if (size == -2)
        return store_fail(err, STORE_ERR_IO, "%s: %s", path, strerror(errno));
    if (is_dir)
        return store_fail(err, STORE_ERR_IO, "%s: is a directory", path);
    if (size > 0)
        return store_fail(err, STORE_ERR_EXISTS,
                          "%s: already exists and holds %lld bytes; refusing to overwrite it",
                          path, size);
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", path);
    int wal_dir;
    if (s_file_size(wal, &wal_dir) > 0)
        return store_fail(err, STORE_ERR_EXISTS,
                          "%s: its write-ahead log %s holds data; refusing to overwrite it",
                          path, wal);
    int created = size < 0;

    store *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", path);
    }
    db->flags = STORE_READWRITE;
    db->dim = dim;
    store_sqlite_setup();
    int rc = sqlite3_open_v2(path, &db->h,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        rc = store_fail(err, STORE_ERR_IO, "%s: cannot create: %s", path,
                        db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        store_close(&db);
        if (created)
            store_unlink_all(path);
        return rc;
    }
    sqlite3_extended_result_codes(db->h, 1);

    /* WAL must be chosen outside a transaction; it is recorded in the file
     * header, so every later connection gets it. */
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        rc = mode && !strcmp(mode, "wal") ? STORE_OK
             : store_fail(err, STORE_ERR_IO, "%s: cannot switch to WAL mode (%s)", path,
                          mode ? mode : sqlite3_errmsg(db->h));
        sqlite3_finalize(st);
    } else {
        rc = store_sqlfail(db, err, rc, "setting WAL mode");
    }
    if (rc == STORE_OK)
        rc = store_exec(db, "PRAGMA foreign_keys = ON; BEGIN IMMEDIATE", "starting init", err);
    if (rc == STORE_OK) {
        rc = s_fill(db, dim, err);
        if (rc == STORE_OK)
            rc = store_exec(db, "COMMIT", "committing init", err);
        if (rc != STORE_OK)
            sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    }
    /* Closing the last connection checkpoints the WAL into the file, so a
     * fresh database is one self-contained file that can be copied. */
    store_close(&db);
    if (rc != STORE_OK && created)
        store_unlink_all(path);
    return rc;
}

/* The schema version in the file's header, read with plain SQLite: the
 * store's own open refuses an old schema read-only and migrates it
 * read-write, either way hiding what was there.  -1 if unreadable. */
static int s_peek_version(const char *path)
{
    sqlite3 *h = NULL;
    int v = -1;
    store_sqlite_setup();
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int(st, 0);
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(h);
    return v;
}

int store_migrate(const char *path, int busy_ms, int *from, store_err *err)
{
    int before = s_peek_version(path);
    if (from)
        *from = before;
    store *db;
    int rc = store_open(&db, path, STORE_READWRITE, busy_ms, err);   /* migrates */
    store_close(&db);
    return rc;
}
