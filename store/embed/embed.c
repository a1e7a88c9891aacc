/* embed.c -- the embedder's driver: texts to unit vectors, and a whole
 * database re-embedded in one transaction.
 *
 * store_embed_texts is pure (TF-IDF, SVD, normalisation, the empty-text
 * rule); store_embed_run reads every item, calls it, and writes the vectors,
 * meta 'embedder' and a catalog_version bump together, so a daemon never
 * reloads a catalog that mixes old and new vectors.  All items are rewritten:
 * vectors from two different embedders share no geometry.
 */
#include "store/embed/embed.h"
#include "store/store_int.h"
#include "util/rng.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

store_embed_opts store_embed_defaults(void)
{
    store_embed_opts o;
    memset(&o, 0, sizeof o);
    o.seed = 1;
    o.bigrams = 1;
    o.char_min = 3;
    o.char_max = 4;
    o.char_weight = 0.5f;
    o.hash_bits = 20;
    o.min_df = 2;
    o.max_features = 50000;
    o.oversample = 10;
    o.power_iters = 5;
    return o;
}


/* The vector of an item without features: N(0,1) draws from a stream
 * seeded by its ext_id and the seed, normalised -- a uniformly random
 * direction, the same on every run. */
static void s_hash_unit(const char *key, uint64_t seed, float *v, int dim)
{
    uint64_t s = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)(key ? key : ""); *p; p++) {
        s ^= *p;
        s *= 0x100000001b3ull;
    }
    s ^= seed * UTIL_SPLITMIX_GAMMA;
    double norm = 0;
    for (int i = 0; i < dim; i += 2) {
        double g[2];
        util_splitmix_gauss2(&s, g);
        v[i] = (float)g[0];
        norm += (double)v[i] * v[i];
        if (i + 1 < dim) {
            v[i + 1] = (float)g[1];
            norm += (double)v[i + 1] * v[i + 1];
        }
    }
    float inv = (float)(1.0 / sqrt(norm > 0 ? norm : 1));
    for (int i = 0; i < dim; i++)
        v[i] *= inv;
}

int store_embed_texts(const char *const *texts, const char *const *keys, size_t n,
                      const store_embed_opts *o, float *out, store_embed_info *info,
                      store_err *err)
{
    memset(info, 0, sizeof *info);
    int dim = o->dim;
    if (dim < 1 || dim > 65536)
        return store_fail(err, STORE_ERR_INVAL, "embed: dimension %d is outside 1..65536", dim);
    store_embed_csr x;
    int rc = store_embed_tfidf(texts, n, o, &x, err);
    if (rc != STORE_OK)
        return rc;
    info->items = n;
    info->features = x.cols;
    info->nonzeros = n ? x.rowptr[n] : 0;
    rc = store_embed_svd(&x, dim, o, out, &info->rank, err);
    if (rc == STORE_OK) {
        for (size_t i = 0; i < n; i++) {
            float *v = out + i * (size_t)dim;
            double s = 0;
            for (int c = 0; c < dim; c++)
                s += (double)v[c] * v[c];
            /* No kept feature (or a projection at rounding level): the
             * documented hashed direction instead of noise or a zero. */
            if (x.rowptr[i] == x.rowptr[i + 1] || !(s > 1e-12)) {
                s_hash_unit(keys ? keys[i] : NULL, o->seed, v, dim);
                info->empty++;
                continue;
            }
            float inv = (float)(1.0 / sqrt(s));
            for (int c = 0; c < dim; c++)
                v[c] *= inv;
        }
    }
    store_embed_csr_free(&x);
    return rc;
}

char *store_embed_describe(const store_embed_opts *o, const store_embed_info *info)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *f = cJSON_CreateObject(), *svd = cJSON_CreateObject();
    if (!j || !f || !svd) {
        cJSON_Delete(j);
        cJSON_Delete(f);
        cJSON_Delete(svd);
        return NULL;
    }
    cJSON_AddStringToObject(j, "method", "tfidf-svd");
    cJSON_AddNumberToObject(j, "dim", o->dim);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddStringToObject(j, "text", "items.text, else items.title");
    cJSON_AddBoolToObject(f, "words", 1);
    cJSON_AddBoolToObject(f, "bigrams", o->bigrams != 0);
    cJSON *cr = cJSON_AddArrayToObject(f, "char_ngrams");
    if (cr && o->char_min > 0) {
        cJSON_AddItemToArray(cr, cJSON_CreateNumber(o->char_min));
        cJSON_AddItemToArray(cr, cJSON_CreateNumber(o->char_max));
    }
    cJSON_AddNumberToObject(f, "char_weight", o->char_weight);
    cJSON_AddNumberToObject(f, "hash_bits", o->hash_bits);
    cJSON_AddNumberToObject(f, "min_df", o->min_df);
    cJSON_AddNumberToObject(f, "max_features", o->max_features);
    cJSON_AddStringToObject(f, "tf", "1+ln(tf)");
    cJSON_AddStringToObject(f, "idf", "ln((1+n)/(1+df))+1");
    cJSON_AddItemToObject(j, "features", f);
    cJSON_AddStringToObject(svd, "method", "randomized (Halko et al. 2011)");
    cJSON_AddNumberToObject(svd, "oversample", o->oversample);
    cJSON_AddNumberToObject(svd, "power_iters", o->power_iters);
    cJSON_AddItemToObject(j, "svd", svd);
    cJSON_AddStringToObject(j, "empty", "unit vector hashed from ext_id and seed");
    if (info) {
        cJSON_AddNumberToObject(j, "items", (double)info->items);
        cJSON_AddNumberToObject(j, "n_features", (double)info->features);
        cJSON_AddNumberToObject(j, "rank", info->rank);
        cJSON_AddNumberToObject(j, "empty_items", (double)info->empty);
    }
    cJSON_AddNumberToObject(j, "created_at", (double)time(NULL));
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* ---- the database ---------------------------------------------------------- */

typedef struct s_items {
    size_t n, cap;
    int64_t *id;      /* item_id */
    char **ext;       /* ext_id */
    char **text;      /* text, or title when text is empty */
} s_items;

static void s_items_free(s_items *it)
{
    for (size_t i = 0; i < it->n; i++) {
        free(it->ext[i]);
        free(it->text[i]);
    }
    free(it->id);
    free(it->ext);
    free(it->text);
}

static int s_sqlfail(store *db, store_err *err, const char *what)
{
    return store_fail(err, STORE_ERR_IO, "%s: %s: %s", store_path(db), what,
                  sqlite3_errmsg(store_sqlite(db)));
}

static int s_read_items(store *db, s_items *it, store_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_sqlite(db),
                           "SELECT item_id, ext_id, title, text FROM items ORDER BY item_id",
                           -1, &st, NULL) != SQLITE_OK)
        return s_sqlfail(db, err, "reading items");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (it->n == it->cap) {
            size_t cap = it->cap ? it->cap * 2 : 1024;
            int64_t *id = realloc(it->id, cap * sizeof *id);
            char **ext = id ? realloc(it->ext, cap * sizeof *ext) : NULL;
            char **text = ext ? realloc(it->text, cap * sizeof *text) : NULL;
            if (id)
                it->id = id;
            if (ext)
                it->ext = ext;
            if (!text) {
                sqlite3_finalize(st);
                return store_fail(err, STORE_ERR_NOMEM, "embed: out of memory reading items");
            }
            it->text = text;
            it->cap = cap;
        }
        const char *ext = (const char *)sqlite3_column_text(st, 1);
        const char *title = (const char *)sqlite3_column_text(st, 2);
        const char *text = (const char *)sqlite3_column_text(st, 3);
        const char *use = text && *text ? text : title ? title : "";
        it->id[it->n] = sqlite3_column_int64(st, 0);
        it->ext[it->n] = strdup(ext ? ext : "");
        it->text[it->n] = strdup(use);
        if (!it->ext[it->n] || !it->text[it->n]) {
            free(it->ext[it->n]);
            free(it->text[it->n]);
            sqlite3_finalize(st);
            return store_fail(err, STORE_ERR_NOMEM, "embed: out of memory reading items");
        }
        it->n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? STORE_OK : s_sqlfail(db, err, "reading items");
}

static int s_exec_int(store *db, const char *sql, int64_t a, store_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_sqlite(db), sql, -1, &st, NULL) != SQLITE_OK)
        return s_sqlfail(db, err, "changing the dimension");
    if (sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_int64(st, 1, a);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? STORE_OK
                                                 : s_sqlfail(db, err, "changing the dimension");
}

/* The identity model (version 0) has no tensors, only a shape: give it the
 * new dimension.  Its config is JSON with "d" and "m" (store/init.c). */
static int s_resize_identity(store *db, int dim, store_err *err)
{
    sqlite3 *h = store_sqlite(db);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "SELECT config FROM models WHERE version = 0", -1, &st, NULL))
        return s_sqlfail(db, err, "reading the identity model");
    int rc = sqlite3_step(st);
    cJSON *cfg = rc == SQLITE_ROW ? cJSON_Parse((const char *)sqlite3_column_text(st, 0)) : NULL;
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return STORE_OK;         /* no version 0: nothing to resize */
    if (!cfg)
        return store_fail(err, STORE_ERR_CORRUPT, "%s: models version 0: config is not JSON",
                      store_path(db));
    cJSON_DeleteItemFromObject(cfg, "d");
    cJSON_DeleteItemFromObject(cfg, "m");
    cJSON_AddNumberToObject(cfg, "d", dim);
    cJSON_AddNumberToObject(cfg, "m", dim);
    char *text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    if (!text)
        return store_fail(err, STORE_ERR_NOMEM, "embed: out of memory");
    rc = sqlite3_prepare_v2(h, "UPDATE models SET d_model = ?1, config = ?2 WHERE version = 0",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, dim);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    free(text);
    return rc == SQLITE_DONE ? STORE_OK : s_sqlfail(db, err, "resizing the identity model");
}

/* --force-dim: embedding_dim and the models, inside the caller's
 * transaction.  store_meta_set refuses embedding_dim on purpose (one
 * changed value would make every blob the wrong length); here every blob is
 * rewritten in the same transaction, so the raw update is safe. */
static int s_change_dim(store *db, int dim, store_embed_info *info, store_err *err)
{
    int rc = s_exec_int(db, "UPDATE meta SET value = CAST(?1 AS TEXT) WHERE key = 'embedding_dim'",
                        dim, err);
    if (rc == STORE_OK)
        rc = s_resize_identity(db, dim, err);
    /* A trained model of the old dimension cannot score the new vectors:
     * fall back to the identity model, keep the others for the record. */
    if (rc == STORE_OK)
        rc = s_exec_int(db, "UPDATE models SET active = 0 WHERE active = 1 AND d_model != ?1 "
                        "AND EXISTS (SELECT 1 FROM models WHERE version = 0)", dim, err);
    if (rc == STORE_OK)
        rc = s_exec_int(db, "UPDATE models SET active = 1 WHERE version = 0 AND NOT EXISTS "
                        "(SELECT 1 FROM models WHERE active = 1)", dim, err);
    if (rc == STORE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(store_sqlite(db),
                               "SELECT count(*) FROM models WHERE d_model != ?1", -1, &st, NULL))
            return s_sqlfail(db, err, "counting models");
        sqlite3_bind_int(st, 1, dim);
        if (sqlite3_step(st) == SQLITE_ROW)
            info->models_unusable = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        info->dim_changed = 1;
    }
    return rc;
}

/* Write vectors with our own statement: after a dimension change the
 * handle's cached embedding_dim is the old one, so store_item_set_embedding
 * would refuse the new length. */
static int s_write_raw(store *db, const s_items *it, const float *emb, int dim,
                       const store_embed_opts *o, store_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_sqlite(db), "UPDATE items SET embedding = ?1 WHERE item_id = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return s_sqlfail(db, err, "writing embeddings");
    unsigned char *blob = malloc((size_t)dim * 4);
    int rc = blob ? STORE_OK : store_fail(err, STORE_ERR_NOMEM, "embed: out of memory");
    for (size_t i = 0; i < it->n && rc == STORE_OK; i++) {
        const float *v = emb + i * (size_t)dim;
        /* Blobs are little-endian float32 whatever the host (docs/SCHEMA.md). */
        for (int c = 0; c < dim; c++) {
            uint32_t u;
            memcpy(&u, &v[c], 4);
            blob[4 * c] = (unsigned char)u;
            blob[4 * c + 1] = (unsigned char)(u >> 8);
            blob[4 * c + 2] = (unsigned char)(u >> 16);
            blob[4 * c + 3] = (unsigned char)(u >> 24);
        }
        sqlite3_bind_blob(st, 1, blob, dim * 4, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, it->id[i]);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = s_sqlfail(db, err, "writing embeddings");
        sqlite3_reset(st);
        if (o->progress && i % 4096 == 0)
            o->progress(o->progress_ctx, "write", i, it->n);
    }
    sqlite3_finalize(st);
    free(blob);
    return rc;
}

int store_embed_run(store *db, const store_embed_opts *opts, store_embed_info *info,
                    store_err *err)
{
    store_embed_opts o = *opts;
    memset(info, 0, sizeof *info);
    int db_dim = store_dim(db);
    if (!o.dim)
        o.dim = db_dim;
    if (o.dim != db_dim && !o.force_dim)
        return store_fail(err, STORE_ERR_DIM,
                      "%s: embedding_dim is %d, not %d; embed with --dim %d, or rewrite "
                      "the dimension and every embedding with --force-dim (trained models "
                      "of dimension %d then stop being usable)",
                      store_path(db), db_dim, o.dim, db_dim, db_dim);
    /* The write lock is taken before reading: "every item" then means every
     * item at commit, not every item minus those an import added while we
     * computed.  Readers (the daemon) are not blocked by it. */
    int rc = store_begin(db, err);
    if (rc != STORE_OK)
        return rc;
    s_items it = {0};
    float *emb = NULL;
    char *desc = NULL;
    rc = s_read_items(db, &it, err);
    if (rc == STORE_OK && it.n &&
        !(emb = malloc(it.n * (size_t)o.dim * sizeof *emb)))
        rc = store_fail(err, STORE_ERR_NOMEM, "embed: out of memory for %zu x %d vectors", it.n,
                    o.dim);
    if (rc == STORE_OK)
        rc = store_embed_texts((const char *const *)it.text, (const char *const *)it.ext, it.n,
                               &o, emb, info, err);
    if (rc == STORE_OK && !(desc = store_embed_describe(&o, info)))
        rc = store_fail(err, STORE_ERR_NOMEM, "embed: out of memory");
    if (rc == STORE_OK && o.dim != db_dim) {
        rc = s_change_dim(db, o.dim, info, err);
        if (rc == STORE_OK)
            rc = s_write_raw(db, &it, emb, o.dim, &o, err);
    } else {
        for (size_t i = 0; i < it.n && rc == STORE_OK; i++) {
            rc = store_item_set_embedding(db, it.id[i], emb + i * (size_t)o.dim, err);
            if (o.progress && i % 4096 == 0)
                o.progress(o.progress_ctx, "write", i, it.n);
        }
    }
    if (rc == STORE_OK)
        rc = store_meta_set(db, "embedder", desc, err);
    if (rc == STORE_OK)
        rc = store_catalog_touch(db, err);
    if (rc == STORE_OK)
        rc = store_commit(db, err);
    if (rc != STORE_OK) {
        store_rollback(db);
        info->dim_changed = 0;
        info->models_unusable = 0;
    }
    free(desc);
    free(emb);
    s_items_free(&it);
    return rc;
}
