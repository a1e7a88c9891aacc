/* text.c -- item texts for the embedder (store.h: store_item_texts).
 *
 * One scan in item_id order, inside whatever transaction the caller holds:
 * the embedder takes the write lock first, so "every item" (or "every item
 * without a vector") means those at its commit.
 */
#include "store/store_int.h"

int store_item_texts(store *db, int which, store_item_text_fn fn, void *ctx, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h,
                                which == STORE_ITEMS_UNEMBEDDED
                                    ? "SELECT item_id, ext_id, title, text, 0 FROM items "
                                      "WHERE embedding IS NULL ORDER BY item_id"
                                    : "SELECT item_id, ext_id, title, text, embedding IS NOT NULL "
                                      "FROM items ORDER BY item_id",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading items");
    int code = STORE_OK;
    while (code == STORE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ext = (const char *)sqlite3_column_text(st, 1);
        const char *title = (const char *)sqlite3_column_text(st, 2);
        const char *text = (const char *)sqlite3_column_text(st, 3);
        code = fn(ctx, sqlite3_column_int64(st, 0), ext ? ext : "", title ? title : "",
                  text ? text : "", sqlite3_column_int(st, 4));
    }
    sqlite3_finalize(st);
    if (code != STORE_OK)
        return store_fail(err, code, "%s: reading items stopped: %s", db->path,
                          store_strerror(code));
    return rc == SQLITE_DONE ? STORE_OK : store_sqlfail(db, err, rc, "reading items");
}

int store_item_counts(store *db, int64_t *items, int64_t *embedded, store_err *err)
{
    int64_t n = 0, e = 0;
    int rc = store_query_int(db, "SELECT count(*) FROM items", &n, "counting items", err);
    if (rc == STORE_OK)
        rc = store_query_int(db, "SELECT count(*) FROM items WHERE embedding IS NOT NULL", &e,
                             "counting embedded items", err);
    if (items)
        *items = n;
    if (embedded)
        *embedded = e;
    return rc;
}
