/* sample.c -- the ids a load generator samples requests from
 * (store.h: store_ext_ids_file).
 *
 * attn-load reads every embedded item's and every user's ext_id once, then
 * builds requests from them.  It opens the file with plain SQLite rather
 * than store_open: a load generator must run against any attnd database --
 * one a newer build migrated, one an import is writing -- without the
 * schema checks, the catalog load or a write lock, and it needs two columns.
 */
#include "store/store_int.h"

#include <stdio.h>

/* Call fn for every row of a one-column query (NULL values skipped). */
static int s_column(sqlite3 *h, const char *path, const char *sql, int kind, store_ext_fn fn,
                    void *ctx, store_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        return store_fail(err, STORE_ERR_NOTOURS,
                          "%s: %s (is it an attnd database? see docs/SCHEMA.md)", path,
                          sqlite3_errmsg(h));
    int rc = SQLITE_DONE, code = STORE_OK;
    while (code == STORE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ext = (const char *)sqlite3_column_text(st, 0);
        if (ext)
            code = fn(ctx, kind, ext);
    }
    if (code != STORE_OK)
        store_fail(err, code, "%s: reading ids stopped: %s", path, store_strerror(code));
    else if (rc != SQLITE_DONE)
        code = store_fail(err, store_code_of(rc), "%s: %s", path, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    return code;
}

int store_ext_ids_file(const char *path, int with_users, store_ext_fn fn, void *ctx,
                       store_err *err)
{
    sqlite3 *h = NULL;
    store_sqlite_setup();
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        int code = store_fail(err, STORE_ERR_IO, "%s: %s", path,
                              h ? sqlite3_errmsg(h) : "cannot open");
        sqlite3_close(h);
        return code;
    }
    sqlite3_busy_timeout(h, 5000);   /* a writer beside us (WAL) is normal */
    /* Items without an embedding are not in the daemon's catalog: asking
     * for them would only measure the "unknown" path. */
    int code = s_column(h, path, "SELECT ext_id FROM items WHERE embedding IS NOT NULL "
                        "ORDER BY item_id", STORE_EXT_ITEM, fn, ctx, err);
    if (code == STORE_OK && with_users)
        code = s_column(h, path, "SELECT ext_id FROM users ORDER BY user_id", STORE_EXT_USER,
                        fn, ctx, err);
    sqlite3_close(h);
    return code;
}
