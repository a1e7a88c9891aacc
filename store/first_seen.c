/* first_seen.c -- the items that arrived last, by their first event
 * (store.h: store_items_newest).
 *
 * MovieLens and most logs have no "added at" for items; the first
 * interaction is the best evidence of when an item entered the catalog.
 * One grouped scan of interactions (no index on item_id: see
 * docs/SCHEMA.md), sorted newest first with item_id breaking ties in time,
 * the order used everywhere else.
 */
#include "store/store_int.h"

#include <math.h>
#include <stdlib.h>

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int store_items_newest(store *db, double fraction, int64_t **ids, size_t *n, store_err *err)
{
    *ids = NULL;
    *n = 0;
    if (!(fraction > 0 && fraction <= 1))
        return store_fail(err, STORE_ERR_INVAL, "%s: the newest fraction of items must be in "
                          "(0, 1], not %g", db->path, fraction);
    int64_t with_events;
    int rc = store_query_int(db, "SELECT count(DISTINCT item_id) FROM interactions",
                             &with_events, "counting items with events", err);
    if (rc != STORE_OK)
        return rc;
    size_t want = (size_t)ceil(fraction * (double)with_events - 1e-9);
    if (want == 0)
        return STORE_OK;
    int64_t *out = malloc(want * sizeof *out);
    if (!out)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", db->path);
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(db->h, "SELECT item_id FROM interactions GROUP BY item_id "
                            "ORDER BY min(ts) DESC, item_id DESC LIMIT ?1", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        free(out);
        return store_sqlfail(db, err, rc, "finding the newest items");
    }
    sqlite3_bind_int64(st, 1, (int64_t)want);
    size_t k = 0;
    while (k < want && (rc = sqlite3_step(st)) == SQLITE_ROW)
        out[k++] = sqlite3_column_int64(st, 0);
    if (k < want && rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        free(out);
        return store_sqlfail(db, err, rc, "finding the newest items");
    }
    sqlite3_finalize(st);
    qsort(out, k, sizeof *out, s_cmp_i64);
    *ids = out;
    *n = k;
    return STORE_OK;
}
