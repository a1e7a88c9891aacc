/* write.c -- the writers: items, users, events, catalog_version.
 *
 * Used by the importers, the embedder, the demo generator and the ingest
 * path, usually many thousands of times inside one store_begin/commit; each
 * call is one cached statement.  Everything a reader will later trust is
 * checked here first -- embedding length and finiteness, weights > 0 -- so
 * that a bad value is refused with the ext_id that carried it instead of
 * failing a catalog load later.
 */
#include "store/store_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Check an embedding and bind it as a little-endian blob at index idx.
 * *tmp receives a buffer to free on big-endian hosts (NULL elsewhere). */
static int s_bind_emb(store *db, sqlite3_stmt *st, int idx, const float *emb, int dim,
                      const char *who, void **tmp, store_err *err)
{
    *tmp = NULL;
    if (!emb)
        return sqlite3_bind_null(st, idx) == SQLITE_OK ? STORE_OK
               : store_fail(err, STORE_ERR_INVAL, "%s: binding an embedding", db->path);
    if (dim != db->dim)
        return store_fail(err, STORE_ERR_DIM,
                          "%s: items %s: embedding has %d floats, the database's "
                          "embedding_dim is %d", db->path, who, dim, db->dim);
    ptrdiff_t bad = store_first_nonfinite(emb, (size_t)db->dim);
    if (bad >= 0)
        return store_fail(err, STORE_ERR_CORRUPT,
                          "%s: items %s: embedding component %td is %g, expected a finite value",
                          db->path, who, bad, (double)emb[bad]);
    size_t bytes = (size_t)db->dim * sizeof(float);
    const void *blob = emb;
    if (!STORE_HOST_LE) {
        if (!(*tmp = malloc(bytes)))
            return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", db->path);
        store_f32_encode(*tmp, emb, (size_t)db->dim);
        blob = *tmp;
    }
    /* SQLITE_STATIC: the statement is stepped and reset before the caller's
     * array can change. */
    sqlite3_bind_blob(st, idx, blob, (int)bytes, SQLITE_STATIC);
    return STORE_OK;
}

/* Upsert by ext_id: item_id stays stable, so models keyed by item_id keep
 * their per-item parameters across re-imports.  NULL title or text keeps
 * the stored one.  A NULL embedding keeps the stored one unless the title or
 * text changed -- then the old vector describes text that is gone, and the
 * item goes back to "not embedded yet" for the embedder to redo. */
static const char s_item_put_sql[] =
    "INSERT INTO items(ext_id, updated_at, embedding, title, text) "
    "VALUES (?1, ?2, ?3, coalesce(?4, ''), coalesce(?5, '')) "
    "ON CONFLICT(ext_id) DO UPDATE SET "
    "  updated_at = excluded.updated_at,"
    "  title = coalesce(?4, items.title),"
    "  text = coalesce(?5, items.text),"
    "  embedding = CASE"
    "    WHEN ?3 IS NOT NULL THEN ?3"
    "    WHEN coalesce(?4, items.title) IS items.title"
    "     AND coalesce(?5, items.text) IS items.text THEN items.embedding"
    "    ELSE NULL END "
    "RETURNING item_id";

int store_item_put(store *db, const char *ext, const char *title, const char *text,
                   const float *emb, int64_t updated_at, int64_t *item_id, store_err *err)
{
    return store_item_put_dim(db, ext, title, text, emb, db->dim, updated_at, item_id, err);
}

int store_item_put_dim(store *db, const char *ext, const char *title, const char *text,
                       const float *emb, int dim, int64_t updated_at, int64_t *item_id,
                       store_err *err)
{
    int rc = store_need_rw(db, "items", err);
    if (rc != STORE_OK)
        return rc;
    if (!ext || !*ext)
        return store_fail(err, STORE_ERR_INVAL, "%s: items: an item needs a non-empty ext_id",
                          db->path);
    sqlite3_stmt *st = store_stmt(db, STORE_ST_ITEM_PUT, s_item_put_sql, err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    char who[160];
    snprintf(who, sizeof who, "ext_id '%.120s'", ext);
    void *tmp;
    rc = s_bind_emb(db, st, 3, emb, dim, who, &tmp, err);
    if (rc != STORE_OK)
        return rc;
    sqlite3_bind_text(st, 1, ext, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, updated_at);
    if (title)
        sqlite3_bind_text(st, 4, title, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    if (text)
        sqlite3_bind_text(st, 5, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && item_id)
        *item_id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);   /* drop pointers to the caller's strings */
    free(tmp);
    if (rc != SQLITE_ROW) {
        char what[200];
        snprintf(what, sizeof what, "writing items %s", who);
        return store_sqlfail(db, err, rc, what);
    }
    return STORE_OK;
}

int store_item_set_embedding(store *db, int64_t item_id, const float *emb, store_err *err)
{
    return store_item_set_embedding_dim(db, item_id, emb, db->dim, err);
}

int store_item_set_embedding_dim(store *db, int64_t item_id, const float *emb, int dim,
                                 store_err *err)
{
    int rc = store_need_rw(db, "items", err);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *st = store_stmt(db, STORE_ST_ITEM_SET_EMB,
                                  "UPDATE items SET embedding = ?1 WHERE item_id = ?2", err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    char who[64];
    snprintf(who, sizeof who, "item_id %lld", (long long)item_id);
    void *tmp;
    rc = s_bind_emb(db, st, 1, emb, dim, who, &tmp, err);
    if (rc != STORE_OK)
        return rc;
    sqlite3_bind_int64(st, 2, item_id);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    free(tmp);
    if (rc != SQLITE_DONE)
        return store_sqlfail(db, err, rc, "writing an embedding");
    if (sqlite3_changes(db->h) == 0)
        return store_fail(err, STORE_ERR_NOTFOUND, "%s: items: no item_id %lld", db->path,
                          (long long)item_id);
    return STORE_OK;
}

int store_user_put(store *db, const char *ext, int64_t *user_id, store_err *err)
{
    int rc = store_need_rw(db, "users", err);
    if (rc != STORE_OK)
        return rc;
    if (!ext || !*ext)
        return store_fail(err, STORE_ERR_INVAL, "%s: users: a user needs a non-empty ext_id",
                          db->path);
    /* Look up first: an upsert would rewrite the row of every known user,
     * and imports meet the same users over and over. */
    int64_t id;
    store_err e;
    rc = store_user_id(db, ext, strlen(ext), &id, &e);
    if (rc == STORE_OK) {
        if (user_id)
            *user_id = id;
        return STORE_OK;
    }
    if (rc != STORE_ERR_NOTFOUND) {
        if (err)
            *err = e;
        return rc;
    }
    sqlite3_stmt *st = store_stmt(db, STORE_ST_USER_INSERT,
                                  "INSERT INTO users(ext_id) VALUES (?1)", err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    sqlite3_bind_text(st, 1, ext, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store_sqlfail(db, err, rc, "writing users");
    if (user_id)
        *user_id = sqlite3_last_insert_rowid(db->h);
    return STORE_OK;
}

/* What both event writers share: the weight check, the statement and its
 * first five bindings, the step, and the foreign-key failure named.
 * event_id is bound as ?6 when the statement has one (slot
 * STORE_ST_EVENT_RECORD).  *changed gets sqlite3_changes. */
static int s_event_write(store *db, int slot, const char *sql, int64_t user_id,
                         int64_t item_id, int64_t ts, const char *kind, float weight,
                         const char *event_id, int *changed, store_err *err)
{
    int rc = store_need_rw(db, "interactions", err);
    if (rc != STORE_OK)
        return rc;
    if (!(weight > 0) || !isfinite(weight))
        return store_fail(err, STORE_ERR_INVAL,
                          "%s: interactions user_id=%lld item_id=%lld ts=%lld: weight %g, "
                          "expected a finite value > 0", db->path, (long long)user_id,
                          (long long)item_id, (long long)ts, (double)weight);
    sqlite3_stmt *st = store_stmt(db, slot, sql, err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, item_id);
    sqlite3_bind_int64(st, 3, ts);
    sqlite3_bind_text(st, 4, kind && *kind ? kind : "view", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, weight);
    int with_id = slot == STORE_ST_EVENT_RECORD;
    if (with_id && event_id && *event_id)
        sqlite3_bind_text(st, 6, event_id, -1, SQLITE_STATIC);
    else if (with_id)
        sqlite3_bind_null(st, 6);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    /* Drop the pointers to the caller's strings. */
    sqlite3_bind_null(st, 4);
    if (with_id)
        sqlite3_bind_null(st, 6);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return store_fail(err, STORE_ERR_NOTFOUND,
                          "%s: interactions: user_id %lld or item_id %lld does not exist",
                          db->path, (long long)user_id, (long long)item_id);
    if (rc != SQLITE_DONE)
        return store_sqlfail(db, err, rc, "writing interactions");
    if (changed)
        *changed = sqlite3_changes(db->h);
    return STORE_OK;
}

int store_event_put(store *db, int64_t user_id, int64_t item_id, int64_t ts,
                    const char *kind, float weight, store_err *err)
{
    return s_event_write(db, STORE_ST_EVENT_PUT,
                         "INSERT INTO interactions(user_id, item_id, ts, kind, weight) "
                         "VALUES (?1, ?2, ?3, ?4, ?5) "
                         "ON CONFLICT(user_id, ts, item_id, kind) "
                         "DO UPDATE SET weight = excluded.weight",
                         user_id, item_id, ts, kind, weight, NULL, NULL, err);
}

/* No conflict target: DO NOTHING covers both uniqueness rules at once, the
 * primary key (user, ts, item, kind) and the partial unique index on
 * event_id.  A repeat changes nothing -- unlike the importer's upsert,
 * which rewrites the weight -- so a resent record cannot alter a stored one. */
int store_event_record(store *db, int64_t user_id, int64_t item_id, int64_t ts,
                       const char *kind, float weight, const char *event_id, int *stored,
                       store_err *err)
{
    int changed = 0;
    int rc = s_event_write(db, STORE_ST_EVENT_RECORD,
                           "INSERT INTO interactions(user_id, item_id, ts, kind, weight, "
                           "event_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                           user_id, item_id, ts, kind, weight, event_id, &changed, err);
    *stored = rc == STORE_OK && changed > 0;
    return rc;
}

int store_user_drop_unused(store *db, int64_t user_id, int *deleted, store_err *err)
{
    if (deleted)
        *deleted = 0;
    int rc = store_need_rw(db, "users", err);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *st = store_stmt(db, STORE_ST_USER_DROP,
                                  "DELETE FROM users WHERE user_id = ?1 AND NOT EXISTS "
                                  "(SELECT 1 FROM interactions WHERE user_id = ?1)",
                                  err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    sqlite3_bind_int64(st, 1, user_id);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store_sqlfail(db, err, rc, "dropping an unused user");
    if (deleted)
        *deleted = sqlite3_changes(db->h) > 0;
    return STORE_OK;
}

int store_catalog_touch(store *db, store_err *err)
{
    int rc = store_need_rw(db, "meta", err);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *st = store_stmt(db, STORE_ST_CATALOG_TOUCH,
                                  "INSERT INTO meta(key, value) VALUES ('catalog_version', '1') "
                                  "ON CONFLICT(key) DO UPDATE SET "
                                  "value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)",
                                  err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? STORE_OK : store_sqlfail(db, err, rc, "bumping catalog_version");
}

int store_catalog_version(store *db, int64_t *version, store_err *err)
{
    char buf[32];
    int rc = store_meta_get(db, "catalog_version", buf, sizeof buf, err);
    if (rc == STORE_ERR_NOTFOUND) {
        *version = 0;
        return STORE_OK;
    }
    if (rc == STORE_OK)
        *version = strtoll(buf, NULL, 10);
    return rc;
}
