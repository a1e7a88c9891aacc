/* snapshot.c -- a database's servable part, as one read-only file for
 * replicas (store_snapshot_write), and what tells such a file apart.
 *
 * A snapshot is an attnd database of the same schema holding the items
 * (embeddings, titles, text), the models (the active one; every one on
 * request), the embedder basis and meta -- everything a replica's snapshot
 * build reads -- and none of the users and interactions: those live in
 * Redis, shared by the replicas.  The one thing a replica still derives
 * from interactions, the popularity prior (interaction counts per item,
 * for users without history), travels as counts in a table of its own,
 * snapshot_popularity, which store_catalog_popularity reads instead.
 * meta 'snapshot' marks the file.
 *
 * Written all or nothing: a temporary file beside OUT filled in one
 * transaction (the source read through an ATTACH, so the copy is one
 * consistent view even while a writer commits to it), switched out of WAL
 * (a reader of a WAL file needs write access to its directory, and a
 * replica's file is read-only), synced, then renamed over OUT, and the
 * directory synced.  A replica reloading finds either the old file or
 * the new one, never a half-written one.  The checksum is BLAKE2b-256 of
 * the file's bytes (`b2sum -l 256 OUT` prints the same).
 */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int store_is_snapshot(store *db)
{
    char v[16];
    return store_meta_get(db, "snapshot", v, sizeof v, NULL) == STORE_OK && !strcmp(v, "1");
}

int store_file_checksum(const char *path, char hex[STORE_CHECKSUM_HEX], store_err *err)
{
    if (sodium_init() < 0)
        return store_fail(err, STORE_ERR_IO, "%s: libsodium failed to initialise", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return store_fail(err, STORE_ERR_IO, "%s: %s", path, strerror(errno));
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    static _Thread_local unsigned char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            crypto_generichash_update(&st, buf, (unsigned long long)n);
    int e = errno;
    close(fd);
    if (n < 0)
        return store_fail(err, STORE_ERR_IO, "%s: reading: %s", path, strerror(e));
    unsigned char h[32];
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(hex, STORE_CHECKSUM_HEX, h, sizeof h);
    return STORE_OK;
}

/* The copy, inside one transaction of the temporary file's connection. */
static int s_copy(store *out, const char *src, int all_models, store_snapshot_info *info,
                  store_err *err)
{
    sqlite3 *h = out->h;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(h, "ATTACH ?1 AS src", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, src, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(h);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK)
        return store_sqlfail(out, err, rc, "attaching the source");
    char sql[2048];
    const char *models = all_models ? "1" : "active = 1";
    snprintf(sql, sizeof sql,
             "BEGIN IMMEDIATE;"
             "DELETE FROM main.model_tensors; DELETE FROM main.models; DELETE FROM main.meta;"
             "INSERT INTO main.meta SELECT * FROM src.meta;"
             "INSERT INTO main.items SELECT * FROM src.items;"
             "INSERT INTO main.models SELECT * FROM src.models WHERE %s;"
             "INSERT INTO main.model_tensors SELECT * FROM src.model_tensors "
             "  WHERE version IN (SELECT version FROM main.models);"
             "INSERT INTO main.embedder_basis SELECT * FROM src.embedder_basis;"
             "CREATE TABLE main.snapshot_popularity(item_id INTEGER PRIMARY KEY,"
             "  count REAL NOT NULL);"
             "INSERT INTO main.snapshot_popularity SELECT item_id, count(*) "
             "  FROM src.interactions GROUP BY item_id;"
             "INSERT OR REPLACE INTO main.meta(key, value) VALUES ('snapshot', '1'),"
             "  ('snapshot_created_at', CAST(strftime('%%s', 'now') AS TEXT));",
             models);
    rc = store_exec(out, sql, "copying the catalog and models", err);
    int64_t v = 0;
    if (rc == STORE_OK)
        rc = store_query_int(out, "SELECT count(*) FROM main.models WHERE active = 1", &v,
                             "counting models", err);
    if (rc == STORE_OK && v != 1)
        rc = store_fail(err, STORE_ERR_CORRUPT, "%s: no active model to serve", src);
    if (rc == STORE_OK)
        rc = store_query_int(out, "SELECT count(*) FROM main.items", &info->items,
                             "counting items", err);
    if (rc == STORE_OK)
        rc = store_query_int(out, "SELECT count(*) FROM main.models", &info->models,
                             "counting models", err);
    if (rc == STORE_OK)
        rc = store_query_int(out, "SELECT coalesce(sum(count), 0) FROM main.snapshot_popularity",
                             &info->events, "counting events", err);
    if (rc == STORE_OK)
        rc = store_exec(out, "COMMIT", "committing the snapshot", err);
    if (rc != STORE_OK)
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_exec(h, "DETACH src", NULL, NULL, NULL);
    return rc;
}

static int s_fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int store_snapshot_write(const char *src, const char *out_path, int all_models,
                         store_snapshot_info *info, store_err *err)
{
    memset(info, 0, sizeof *info);
    store *db = NULL;
    /* The source must open as a current attnd database (read-only: an
     * older schema is named with the command that migrates it). */
    int rc = store_open(&db, src, STORE_READONLY, 5000, err);
    if (rc != STORE_OK)
        return rc;
    int dim = db->dim, snap = store_is_snapshot(db);
    store_close(&db);
    if (snap)
        return store_fail(err, STORE_ERR_INVAL, "%s is a snapshot itself: snapshot the "
                          "database it was made from", src);
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-%d", out_path, (int)getpid()) >= sizeof tmp)
        return store_fail(err, STORE_ERR_INVAL, "%s: path too long", out_path);
    unlink(tmp);
    rc = store_init(tmp, dim, err);
    if (rc == STORE_OK)
        rc = store_open(&db, tmp, STORE_READWRITE, 5000, err);
    if (rc == STORE_OK)
        rc = s_copy(db, src, all_models, info, err);
    if (rc == STORE_OK)
        rc = store_exec(db, "PRAGMA journal_mode = DELETE", "leaving WAL mode", err);
    store_close(&db);
    if (rc == STORE_OK && s_fsync_path(tmp, 0) != 0)
        rc = store_fail(err, STORE_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
    if (rc == STORE_OK)
        rc = store_file_checksum(tmp, info->checksum, err);
    struct stat sb;
    if (rc == STORE_OK && stat(tmp, &sb) == 0)
        info->bytes = (int64_t)sb.st_size;
    if (rc == STORE_OK && rename(tmp, out_path) != 0)
        rc = store_fail(err, STORE_ERR_IO, "%s: cannot rename into place: %s", out_path,
                        strerror(errno));
    if (rc != STORE_OK) {
        store_unlink_all(tmp);
        return rc;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out_path);
    s_fsync_path(dirname(dir), 1);   /* the rename itself survives a power cut */
    return STORE_OK;
}
