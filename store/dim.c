/* dim.c -- store_dim_rewrite: a database's embedding dimension, changed.
 *
 * embedding_dim is fixed for the life of a database everywhere else
 * (store_meta_set refuses it: one changed value would make every blob the
 * wrong length).  The embedder is the one writer that rewrites every blob
 * in the same transaction, so it may change the dimension -- through this
 * function, which keeps the rest of the database consistent with it: the
 * identity model takes the new shape, and trained models of the old one
 * step down, since they cannot score the new vectors.
 */
#include "store/store_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

/* One statement with ?1 bound to a. */
static int s_exec_int(store *db, const char *sql, int64_t a, const char *what, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, what);
    sqlite3_bind_int64(st, 1, a);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK : store_sqlfail(db, err, rc, what);
}

/* The identity model (version 0) has no tensors, only a shape: give it the
 * new dimension.  Its config is JSON with "d" and "m" (init.c). */
static int s_resize_identity(store *db, int dim, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "SELECT config FROM models WHERE version = 0", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading the identity model");
    rc = sqlite3_step(st);
    cJSON *cfg = rc == SQLITE_ROW ? cJSON_Parse((const char *)sqlite3_column_text(st, 0)) : NULL;
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return STORE_OK;         /* no version 0: nothing to resize */
    if (!cfg)
        return store_fail(err, STORE_ERR_CORRUPT, "%s: models version 0: config is not JSON",
                          db->path);
    cJSON_DeleteItemFromObject(cfg, "d");
    cJSON_DeleteItemFromObject(cfg, "m");
    cJSON_AddNumberToObject(cfg, "d", dim);
    cJSON_AddNumberToObject(cfg, "m", dim);
    char *text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    if (!text)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", db->path);
    rc = sqlite3_prepare_v2(db->h, "UPDATE models SET d_model = ?1, config = ?2 WHERE version = 0",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, dim);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    free(text);
    return rc == SQLITE_DONE ? STORE_OK
                             : store_sqlfail(db, err, rc, "resizing the identity model");
}

int store_dim_rewrite(store *db, int dim, int *models_unusable, store_err *err)
{
    int rc = store_need_rw(db, "store_dim_rewrite", err);
    if (rc != STORE_OK)
        return rc;
    if (sqlite3_get_autocommit(db->h))
        return store_fail(err, STORE_ERR_INVAL, "%s: store_dim_rewrite: no transaction is open",
                          db->path);
    if (dim < 1 || dim > STORE_MAX_DIM)
        return store_fail(err, STORE_ERR_INVAL, "%s: embedding dimension %d is outside 1..%d",
                          db->path, dim, STORE_MAX_DIM);
    rc = s_exec_int(db, "UPDATE meta SET value = CAST(?1 AS TEXT) WHERE key = 'embedding_dim'",
                    dim, "changing the dimension", err);
    if (rc == STORE_OK)
        rc = s_resize_identity(db, dim, err);
    /* A trained model of the old dimension cannot score the new vectors:
     * fall back to the identity model, keep the others for the record. */
    if (rc == STORE_OK)
        rc = s_exec_int(db, "UPDATE models SET active = 0 WHERE active = 1 AND d_model != ?1 "
                        "AND EXISTS (SELECT 1 FROM models WHERE version = 0)", dim,
                        "changing the dimension", err);
    if (rc == STORE_OK)
        rc = s_exec_int(db, "UPDATE models SET active = 1 WHERE version = 0 AND NOT EXISTS "
                        "(SELECT 1 FROM models WHERE active = 1)", dim,
                        "changing the dimension", err);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *st;
    int64_t unusable = 0;
    int src = sqlite3_prepare_v2(db->h, "SELECT count(*) FROM models WHERE d_model != ?1", -1,
                                 &st, NULL);
    if (src != SQLITE_OK)
        return store_sqlfail(db, err, src, "counting models");
    sqlite3_bind_int(st, 1, dim);
    if (sqlite3_step(st) == SQLITE_ROW)
        unusable = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (models_unusable)
        *models_unusable = (int)unusable;
    if (!db->dim_undo)
        db->dim_undo = db->dim;
    db->dim = dim;   /* the writes that follow are checked against the new length */
    return STORE_OK;
}
