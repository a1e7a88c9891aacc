/* history.c -- the per-request reads: user lookup, history, titles.
 *
 * These run on the daemon's hot path, once or more per request, so each is a
 * statement prepared once per handle (store_stmt) and every one is answered
 * from an index alone: users.ext_id's unique index, the interactions primary
 * key (user_id, ts, item_id, kind) walked backwards -- newest first with no
 * sort step -- and items' rowid.
 */
#include "store/store_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int s_notfound(store *db, const char *table, const char *ext, size_t len, store_err *err)
{
    return store_fail(err, STORE_ERR_NOTFOUND, "%s: %s: no ext_id '%.*s'", db->path, table,
                      (int)(len > 200 ? 200 : len), ext);
}

/* Look an ext_id up with a cached statement in slot; shared by users and
 * items, which differ only in table and messages. */
static int s_lookup(store *db, int slot, const char *sql, const char *table, const char *ext,
                    size_t len, int64_t *id, store_err *err)
{
    if (!ext || !id || len > 0x7fffffff)
        return store_fail(err, STORE_ERR_INVAL, "%s: %s lookup: bad arguments", db->path, table);
    sqlite3_stmt *st = store_stmt(db, slot, sql, err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    /* The caller's bytes need not be NUL-terminated (protocol buffers);
     * SQLITE_STATIC is safe because the statement is reset before return. */
    sqlite3_bind_text(st, 1, ext, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return STORE_OK;
    if (rc == SQLITE_DONE)
        return s_notfound(db, table, ext, len, err);
    return store_sqlfail(db, err, rc, table);
}

int store_user_id(store *db, const char *ext, size_t len, int64_t *user_id, store_err *err)
{
    return s_lookup(db, STORE_ST_USER_ID, "SELECT user_id FROM users WHERE ext_id = ?1",
                    "users", ext, len, user_id, err);
}

int store_item_id(store *db, const char *ext, size_t len, int64_t *item_id, store_err *err)
{
    return s_lookup(db, STORE_ST_ITEM_ID, "SELECT item_id FROM items WHERE ext_id = ?1",
                    "items", ext, len, item_id, err);
}

/* Reads the history rows a statement yields: (item_id, ts, weight) from
 * column first on, after the user_id when first is 1; a NULL item_id (the
 * empty side of a LEFT JOIN) is no event.  Resets st.  *n counts the
 * events; *rows (if given) the rows. */
static int s_events(store *db, sqlite3_stmt *st, int first, int64_t user_id, store_event *ev,
                    int *n, int *rows, store_err *err)
{
    int rc, k = 0, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        r++;
        if (sqlite3_column_type(st, first) == SQLITE_NULL)
            continue;
        ev[k].item_id = sqlite3_column_int64(st, first);
        ev[k].ts = sqlite3_column_int64(st, first + 1);
        double w = sqlite3_column_double(st, first + 2);
        /* The schema's CHECK (weight > 0) keeps out zero and negatives, but
         * not infinities; the scorer takes log(w), so refuse them here. */
        if (!(w > 0) || !isfinite((float)w)) {
            if (first)
                user_id = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
            return store_fail(err, STORE_ERR_CORRUPT,
                              "%s: interactions row user_id=%lld item_id=%lld ts=%lld: "
                              "weight %g, expected a finite value > 0", db->path,
                              (long long)user_id, (long long)ev[k].item_id,
                              (long long)ev[k].ts, w);
        }
        ev[k].weight = (float)w;
        k++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store_sqlfail(db, err, rc, "reading interactions");
    *n = k;
    if (rows)
        *rows = r;
    return STORE_OK;
}

int store_history(store *db, int64_t user_id, int max, store_event *ev, int *n,
                  store_err *err)
{
    if (!n || max < 0 || (max > 0 && !ev))
        return store_fail(err, STORE_ERR_INVAL, "%s: store_history: bad arguments", db->path);
    *n = 0;
    if (max == 0)
        return STORE_OK;
    sqlite3_stmt *st = store_stmt(db, STORE_ST_HISTORY, STORE_SQL_HISTORY, err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int(st, 2, max);
    return s_events(db, st, 0, user_id, ev, n, NULL, err);
}

int store_user_history(store *db, const char *ext, size_t len, int max, store_event *ev,
                       int *n, store_err *err)
{
    if (!n || !ext || max < 0 || (max > 0 && !ev) || len > 0x7fffffff)
        return store_fail(err, STORE_ERR_INVAL, "%s: store_user_history: bad arguments",
                          db->path);
    *n = 0;
    if (max == 0) {
        int64_t uid;
        return store_user_id(db, ext, len, &uid, err);
    }
    sqlite3_stmt *st = store_stmt(db, STORE_ST_USER_HISTORY, STORE_SQL_USER_HISTORY, err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    sqlite3_bind_text(st, 1, ext, (int)len, SQLITE_STATIC);   /* reset before return */
    sqlite3_bind_int(st, 2, max);
    int rows = 0;
    int rc = s_events(db, st, 1, 0, ev, n, &rows, err);
    return rc == STORE_OK && rows == 0 ? s_notfound(db, "users", ext, len, err) : rc;
}

int store_item_title(store *db, int64_t item_id, char *buf, size_t len, store_err *err)
{
    if (!buf || !len)
        return store_fail(err, STORE_ERR_INVAL, "%s: store_item_title: no buffer", db->path);
    buf[0] = '\0';
    sqlite3_stmt *st = store_stmt(db, STORE_ST_ITEM_TITLE,
                                  "SELECT title FROM items WHERE item_id = ?1", err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    sqlite3_bind_int64(st, 1, item_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        snprintf(buf, len, "%s", t ? t : "");
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return STORE_OK;
    if (rc == SQLITE_DONE)
        return store_fail(err, STORE_ERR_NOTFOUND, "%s: items: no item_id %lld", db->path,
                          (long long)item_id);
    return store_sqlfail(db, err, rc, "reading an item title");
}

int store_history_scan(store *db, int64_t below_user_id, int max_per_user, store_scan_fn fn,
                       void *ctx, store_err *err)
{
    if (!fn || max_per_user < 1)
        return store_fail(err, STORE_ERR_INVAL, "%s: store_history_scan: bad arguments",
                          db->path);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h,
                                "SELECT i.user_id, u.ext_id, i.item_id, i.ts, i.kind, i.weight, "
                                "i.event_id FROM interactions i JOIN users u "
                                "ON u.user_id = i.user_id WHERE i.user_id < ?1 "
                                "ORDER BY i.user_id DESC, i.ts DESC, i.item_id DESC, "
                                "i.kind DESC", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "scanning interactions");
    sqlite3_bind_int64(st, 1, below_user_id);
    int64_t user = INT64_MIN;
    int taken = 0, code = STORE_OK;
    while (code == STORE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_scan_event ev = {.user_id = sqlite3_column_int64(st, 0)};
        if (ev.user_id != user) {
            user = ev.user_id;
            taken = 0;
        }
        if (taken++ >= max_per_user)
            continue;
        double w = sqlite3_column_double(st, 5);
        ev.user = (const char *)sqlite3_column_text(st, 1);
        ev.item_id = sqlite3_column_int64(st, 2);
        ev.ts = sqlite3_column_int64(st, 3);
        ev.kind = (const char *)sqlite3_column_text(st, 4);
        ev.weight = (float)w;
        ev.event_id = (const char *)sqlite3_column_text(st, 6);
        if (!(w > 0) || !isfinite(ev.weight) || !ev.user || !ev.kind)
            code = store_fail(err, STORE_ERR_CORRUPT, "%s: interactions row user_id=%lld "
                              "item_id=%lld ts=%lld: weight %g or a NULL text", db->path,
                              (long long)user, (long long)ev.item_id, (long long)ev.ts, w);
        else
            code = fn(ctx, &ev);
    }
    sqlite3_finalize(st);
    if (code != STORE_OK)
        return code;
    return rc == SQLITE_DONE ? STORE_OK : store_sqlfail(db, err, rc, "scanning interactions");
}

int store_users_count(store *db, int64_t from, int64_t *n, store_err *err)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM users WHERE user_id >= %lld",
             (long long)from);
    return store_query_int(db, sql, n, "counting users", err);
}
