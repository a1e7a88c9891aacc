/* run.c -- a database embedded: new items folded into the stored basis, or
 * every item fitted again, in one transaction (store_embed_run).
 *
 * A catalog grows every day while a trained model keeps serving: its
 * projections and residuals were learnt on the vectors of one fit, so the
 * default is never to move a vector.  Items without one (new, or whose
 * text changed) are folded into the stored basis; they land in the space
 * the model knows and are scored by their text (an item the model never
 * saw has no residual and no bias).  A fit -- the first embed of a
 * database, or an explicit refit -- moves every vector; when it replaces a
 * space some model was trained in, the active trained model steps down
 * and the identity model serves, unless the caller keeps it on purpose.
 *
 * The write lock is taken before reading: "every item" or "every item
 * without a vector" then means those at commit, not those minus what an
 * import added while we computed.  Readers (the daemon) are not blocked,
 * and reload only after the commit (catalog_version), never half-way.
 */
#include "store/embed/embed.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct s_items {
    size_t n, cap;
    int64_t *id;      /* item_id */
    char **ext;       /* ext_id */
    char **text;      /* text, or title when text is empty */
    uint8_t *had;     /* 1: it had a vector before */
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
    free(it->had);
}

static int s_grow(s_items *it)
{
    size_t cap = it->cap ? it->cap * 2 : 1024;
    int64_t *id = realloc(it->id, cap * sizeof *id);
    if (id)
        it->id = id;
    char **e = id ? realloc(it->ext, cap * sizeof *e) : NULL;
    if (e)
        it->ext = e;
    char **t = e ? realloc(it->text, cap * sizeof *t) : NULL;
    if (t)
        it->text = t;
    uint8_t *h = t ? realloc(it->had, cap * sizeof *h) : NULL;
    if (!h)
        return STORE_ERR_NOMEM;
    it->had = h;
    it->cap = cap;
    return STORE_OK;
}

/* store_item_texts' callback: keep the id, the ext_id and what to embed --
 * the text, or the title when the text is empty. */
static int s_on_item(void *ctx, int64_t item_id, const char *ext, const char *title,
                     const char *text, int embedded)
{
    s_items *it = ctx;
    if (it->n == it->cap && s_grow(it) != STORE_OK)
        return STORE_ERR_NOMEM;
    it->id[it->n] = item_id;
    it->had[it->n] = embedded != 0;
    it->ext[it->n] = strdup(ext);
    it->text[it->n] = strdup(*text ? text : title);
    if (!it->ext[it->n] || !it->text[it->n]) {
        free(it->ext[it->n]);
        free(it->text[it->n]);
        return STORE_ERR_NOMEM;
    }
    it->n++;
    return STORE_OK;
}

/* Write the vectors of items 0..n-1 (emb row i for item i; NULL rows for
 * the items marked in skip, whose vector is cleared). */
static int s_write(store *db, const store_embed_opts *o, const s_items *it, const float *emb,
                   int dim, const uint8_t *skip, store_err *err)
{
    int rc = STORE_OK;
    for (size_t i = 0, r = 0; i < it->n && rc == STORE_OK; i++) {
        if (skip && skip[i]) {
            rc = store_item_set_embedding(db, it->id[i], NULL, err);
            continue;
        }
        rc = store_item_set_embedding(db, it->id[i], emb + r++ * (size_t)dim, err);
        if (o->progress && i % 4096 == 0)
            o->progress(o->progress_ctx, "write", i, it->n);
    }
    return rc;
}

/* ---- fold-in ----------------------------------------------------------------- */

/* meta 'embedder' with the fold-in counted; STORE_ERR_INVAL when it says
 * the vectors are not this basis's (imported after the fit). */
static int s_meta_fold(store *db, size_t folded, char **out, store_err *err)
{
    char buf[16384];
    int rc = store_meta_get(db, "embedder", buf, sizeof buf, err);
    if (rc != STORE_OK && rc != STORE_ERR_NOTFOUND)
        return rc;
    cJSON *j = rc == STORE_OK ? cJSON_Parse(buf) : cJSON_CreateObject();
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "method");
    if (!cJSON_IsObject(j) || (rc == STORE_OK && (!cJSON_IsString(m) ||
                                                  strcmp(m->valuestring, "tfidf-svd")))) {
        store_fail(err, STORE_ERR_INVAL,
                   "%s: meta 'embedder' says the embeddings were made by '%.64s' after the "
                   "stored basis was fitted: vectors folded in with it would not share their "
                   "space; fit every item again with --refit, or import vectors for the new "
                   "items too", store_path(db),
                   cJSON_IsString(m) ? m->valuestring : "something else");
        cJSON_Delete(j);
        return STORE_ERR_INVAL;
    }
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(j, "folded_items");
    double total = (cJSON_IsNumber(prev) ? prev->valuedouble : 0) + (double)folded;
    cJSON_DeleteItemFromObjectCaseSensitive(j, "folded_items");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "folded_at");
    cJSON_AddNumberToObject(j, "folded_items", total);
    cJSON_AddNumberToObject(j, "folded_at", (double)time(NULL));
    *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return *out ? STORE_OK : store_fail(err, STORE_ERR_NOMEM, "embed: out of memory");
}

static int s_fold_check(store *db, const store_embed_opts *o, const store_embed_basis *b,
                        store_err *err)
{
    const char *need_fit = o->force_dim ? "--force-dim" : o->hold_out > 0 ? "a hold-out" : NULL;
    if (need_fit)
        return store_fail(err, STORE_ERR_INVAL, "%s: %s needs a fit, and the stored basis folds "
                          "new items in as it is: add --refit", store_path(db), need_fit);
    if (o->dim && o->dim != b->o.dim)
        return store_fail(err, STORE_ERR_INVAL, "%s: the stored basis has dimension %d, not %d: "
                          "a new dimension needs --refit (and --force-dim)", store_path(db),
                          b->o.dim, o->dim);
    if (b->o.dim != store_dim(db))
        return store_fail(err, STORE_ERR_DIM, "%s: the stored basis has dimension %d but "
                          "embedding_dim is %d: fit again with --refit", store_path(db),
                          b->o.dim, store_dim(db));
    return STORE_OK;
}

/* Fold every item without a vector into b; nothing else moves. */
static int s_fold(store *db, const store_embed_opts *o, const store_embed_basis *b,
                  store_embed_info *info, store_err *err)
{
    int rc = s_fold_check(db, o, b, err);
    int64_t embedded = 0;
    if (rc == STORE_OK)
        rc = store_item_counts(db, NULL, &embedded, err);
    s_items it = {0};
    float *emb = NULL;
    char *meta = NULL;
    if (rc == STORE_OK)
        rc = store_item_texts(db, STORE_ITEMS_UNEMBEDDED, s_on_item, &it, err);
    if (rc == STORE_OK && it.n && !(emb = malloc(it.n * (size_t)b->o.dim * sizeof *emb)))
        rc = store_fail(err, STORE_ERR_NOMEM, "embed: out of memory for %zu x %d vectors", it.n,
                        b->o.dim);
    if (rc == STORE_OK && it.n)
        rc = store_embed_fold(b, (const char *const *)it.text, (const char *const *)it.ext,
                              it.n, emb, info, err);
    info->folded = 1;
    info->kept = (size_t)embedded;
    info->features = b->cols;
    info->rank = b->rank;
    if (rc == STORE_OK && it.n)
        rc = s_meta_fold(db, it.n, &meta, err);
    if (rc == STORE_OK && it.n)
        rc = s_write(db, o, &it, emb, b->o.dim, NULL, err);
    if (rc == STORE_OK && it.n)
        rc = store_meta_set(db, "embedder", meta, err);
    if (rc == STORE_OK && it.n)
        rc = store_catalog_touch(db, err);
    free(meta);
    free(emb);
    s_items_free(&it);
    return rc;
}

/* ---- fit --------------------------------------------------------------------- */

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Mark in skip[] the items of the newest o->hold_out fraction; the texts
 * and keys of the rest, in order, into fit_text/fit_ext. */
static int s_hold_out(store *db, const store_embed_opts *o, const s_items *it, uint8_t *skip,
                      const char **fit_text, const char **fit_ext, size_t *n_fit,
                      store_embed_info *info, store_err *err)
{
    int64_t *ids = NULL;
    size_t n_ids = 0;
    if (o->hold_out > 0) {
        int rc = store_items_newest(db, o->hold_out, &ids, &n_ids, err);
        if (rc != STORE_OK)
            return rc;
    }
    size_t k = 0;
    for (size_t i = 0; i < it->n; i++) {
        skip[i] = n_ids && bsearch(&it->id[i], ids, n_ids, sizeof *ids, s_cmp_i64) != NULL;
        info->held_out += skip[i];
        if (!skip[i]) {
            fit_text[k] = it->text[i];
            fit_ext[k++] = it->ext[i];
        }
    }
    free(ids);
    *n_fit = k;
    return STORE_OK;
}

/* A fit replaced a space: the active trained model steps down unless the
 * caller keeps it; count every trained model of the old space. */
static int s_models_after_refit(store *db, const store_embed_opts *o, store_embed_info *info,
                                store_err *err)
{
    store_model_info *list = NULL;
    size_t n = 0;
    int rc = store_model_list(db, &list, &n, err);
    if (rc != STORE_OK)
        return rc;
    int64_t active = 0;
    for (size_t i = 0; i < n; i++) {
        info->old_models += list[i].version != 0;
        if (list[i].active)
            active = list[i].version;
    }
    store_model_list_free(&list, n);
    if (active == 0)
        return STORE_OK;
    if (o->keep_models) {
        info->model_kept = active;
        return STORE_OK;
    }
    rc = store_model_activate(db, 0, err);
    if (rc == STORE_OK)
        info->model_off = active;
    return rc;
}

/* After the fit: the dimension, every vector, the basis, meta, models. */
static int s_fit_store(store *db, const store_embed_opts *o, const s_items *it,
                       const uint8_t *skip, const float *emb, const store_embed_basis *b,
                       int had_basis, store_embed_info *info, store_err *err)
{
    int rc = STORE_OK;
    int db_dim = store_dim(db);
    char *desc = store_embed_describe(o, b, info);
    if (!desc)
        rc = store_fail(err, STORE_ERR_NOMEM, "embed: out of memory");
    /* --force-dim: the new dimension first, so the writes below are
     * checked against it. */
    if (rc == STORE_OK && o->dim != db_dim) {
        rc = store_dim_rewrite(db, o->dim, &info->models_unusable, err);
        info->dim_changed = rc == STORE_OK;
    }
    if (rc == STORE_OK)
        rc = s_write(db, o, it, emb, o->dim, skip, err);
    if (rc == STORE_OK)
        rc = store_embed_basis_save(db, b, err);
    if (rc == STORE_OK)
        rc = store_meta_set(db, "embedder", desc, err);
    info->refit = had_basis || info->moved > 0;
    if (rc == STORE_OK && info->refit)
        rc = s_models_after_refit(db, o, info, err);
    if (rc == STORE_OK)
        rc = store_catalog_touch(db, err);
    free(desc);
    return rc;
}

static int s_fit(store *db, const store_embed_opts *opts, int had_basis, store_embed_info *info,
                 store_err *err)
{
    store_embed_opts o = *opts;
    int db_dim = store_dim(db);
    if (!o.dim)
        o.dim = db_dim;
    if (o.dim != db_dim && !o.force_dim)
        return store_fail(err, STORE_ERR_DIM,
                          "%s: embedding_dim is %d, not %d; embed with --dim %d, or rewrite "
                          "the dimension and every embedding with --force-dim (trained models "
                          "of dimension %d then stop being usable)",
                          store_path(db), db_dim, o.dim, db_dim, db_dim);
    if (o.hold_out < 0 || o.hold_out >= 1)
        return store_fail(err, STORE_ERR_INVAL, "%s: the held-out fraction must be in [0, 1), "
                          "not %g", store_path(db), o.hold_out);
    s_items it = {0};
    int rc = store_item_texts(db, STORE_ITEMS_ALL, s_on_item, &it, err);
    size_t n = it.n ? it.n : 1, n_fit = 0;
    uint8_t *skip = calloc(n, 1);
    const char **ft = malloc(n * sizeof *ft), **fe = malloc(n * sizeof *fe);
    float *emb = malloc(n * (size_t)o.dim * sizeof *emb);
    store_embed_basis b = {0};
    if (rc == STORE_OK && (!skip || !ft || !fe || !emb))
        rc = store_fail(err, STORE_ERR_NOMEM, "embed: out of memory for %zu x %d vectors", it.n,
                        o.dim);
    if (rc == STORE_OK)
        rc = s_hold_out(db, &o, &it, skip, ft, fe, &n_fit, info, err);
    size_t held = info->held_out;
    if (rc == STORE_OK)
        rc = store_embed_fit(ft, fe, n_fit, &o, emb, &b, info, err);
    info->held_out = held;
    for (size_t i = 0; i < it.n; i++)
        info->moved += it.had[i];
    if (rc == STORE_OK)
        rc = s_fit_store(db, &o, &it, skip, emb, &b, had_basis, info, err);
    store_embed_basis_free(&b);
    free(skip);
    free(ft);
    free(fe);
    free(emb);
    s_items_free(&it);
    return rc;
}

int store_embed_run(store *db, const store_embed_opts *o, store_embed_info *info,
                    store_err *err)
{
    memset(info, 0, sizeof *info);
    int rc = store_begin(db, err);
    if (rc != STORE_OK)
        return rc;
    store_embed_basis b;
    rc = store_embed_basis_load(db, &b, err);
    int have = rc == STORE_OK;
    /* A damaged basis cannot fold anything in, but a refit replaces it. */
    if (rc == STORE_ERR_NOTFOUND || (rc == STORE_ERR_CORRUPT && o->refit)) {
        have = rc == STORE_ERR_CORRUPT;
        rc = STORE_OK;
    }
    if (rc == STORE_OK)
        rc = have && !o->refit ? s_fold(db, o, &b, info, err) : s_fit(db, o, have, info, err);
    store_embed_basis_free(&b);
    if (rc == STORE_OK)
        rc = store_commit(db, err);
    if (rc != STORE_OK) {
        store_rollback(db);
        store_embed_info zero = {0};
        *info = zero;
    }
    return rc;
}
