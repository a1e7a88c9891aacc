/* impressions.c -- the experiment log: sampled rank replies, and the reads
 * `attnctl experiment report` joins them with (users, their later events).
 *
 * Items are stored as item_ids, 8 bytes each little-endian, in one blob per
 * impression: the report needs them in rank order and nothing else, and a
 * row per item would multiply the table by k.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char s_put_sql[] =
    "INSERT INTO impressions(ts, user_hash, key_id, arm, model, items) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

static int s_put_one(store *db, sqlite3_stmt *st, const store_impression *imp, store_err *err)
{
    size_t bytes = (size_t)imp->n_items * 8;
    unsigned char *blob = malloc(bytes ? bytes : 1);
    if (!blob)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory for an impression",
                          db->path);
    for (int i = 0; i < imp->n_items; i++)
        for (int b = 0; b < 8; b++)
            blob[(size_t)i * 8 + (size_t)b] = (unsigned char)((uint64_t)imp->items[i] >> (8 * b));
    sqlite3_bind_int64(st, 1, imp->ts);
    sqlite3_bind_text(st, 2, imp->user_hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, imp->key_id, -1, SQLITE_TRANSIENT);
    if (imp->arm)
        sqlite3_bind_text(st, 4, imp->arm, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, imp->model);
    sqlite3_bind_blob(st, 6, blob, (int)bytes, free);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? STORE_OK : store_sqlfail(db, err, rc, "writing an impression");
}

int store_impressions_put(store *db, const store_impression *imp, int n, store_err *err)
{
    int own = sqlite3_get_autocommit(db->h);
    int rc = own ? store_begin(db, err) : STORE_OK;
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(db->h, s_put_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        if (own)
            store_rollback(db);
        return store_sqlfail(db, err, rc, "writing impressions");
    }
    int code = STORE_OK;
    for (int i = 0; i < n && code == STORE_OK; i++)
        code = s_put_one(db, st, &imp[i], err);
    sqlite3_finalize(st);
    if (own)
        code = code == STORE_OK ? store_commit(db, err) : (store_rollback(db), code);
    return code;
}

int store_impressions_scan(store *db, int64_t since,
                           int (*fn)(void *ctx, const store_impression *imp), void *ctx,
                           store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "SELECT ts, user_hash, key_id, arm, model, items "
                                       "FROM impressions WHERE ts >= ?1 ORDER BY ts, imp_id",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading impressions");
    sqlite3_bind_int64(st, 1, since);
    int64_t *items = NULL;
    size_t cap = 0;
    int stop = 0;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *b = sqlite3_column_blob(st, 5);
        size_t n = (size_t)sqlite3_column_bytes(st, 5) / 8;
        if (n > cap) {
            int64_t *grown = realloc(items, n * sizeof *items);
            if (!grown) {
                stop = store_fail(err, STORE_ERR_NOMEM, "%s: out of memory reading "
                                  "impressions", db->path);
                break;
            }
            items = grown;
            cap = n;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t v = 0;
            for (int k = 0; k < 8; k++)
                v |= (uint64_t)b[i * 8 + (size_t)k] << (8 * k);
            items[i] = (int64_t)v;
        }
        store_impression imp = {
            .ts = sqlite3_column_int64(st, 0),
            .user_hash = (const char *)sqlite3_column_text(st, 1),
            .key_id = (const char *)sqlite3_column_text(st, 2),
            .arm = (const char *)sqlite3_column_text(st, 3),
            .model = sqlite3_column_int64(st, 4), .items = items, .n_items = (int)n};
        stop = fn(ctx, &imp);
    }
    if (!stop && rc != SQLITE_DONE)
        stop = store_sqlfail(db, err, rc, "reading impressions");
    sqlite3_finalize(st);
    free(items);
    return stop;
}

int store_users_scan(store *db, int (*fn)(void *ctx, int64_t user_id, const char *ext),
                     void *ctx, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "SELECT user_id, ext_id FROM users ORDER BY user_id", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading users");
    int stop = 0;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW)
        stop = fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
    if (!stop && rc != SQLITE_DONE)
        stop = store_sqlfail(db, err, rc, "reading users");
    sqlite3_finalize(st);
    return stop;
}

int store_events_between(store *db, int64_t user_id, int64_t from, int64_t to, int max,
                         store_event *ev, int *n, store_err *err)
{
    sqlite3_stmt *st;
    *n = 0;
    int rc = sqlite3_prepare_v2(db->h, "SELECT item_id, ts, weight FROM interactions "
                                       "WHERE user_id = ?1 AND ts >= ?2 AND ts <= ?3 "
                                       "ORDER BY ts, item_id LIMIT ?4", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading events");
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    sqlite3_bind_int(st, 4, max);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ev[*n].item_id = sqlite3_column_int64(st, 0);
        ev[*n].ts = sqlite3_column_int64(st, 1);
        ev[*n].weight = (float)sqlite3_column_double(st, 2);
        ++*n;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? STORE_OK : store_sqlfail(db, err, rc, "reading events");
}
