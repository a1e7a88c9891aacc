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
#include "util/hash.h"
#include "util/rng.h"

#include <cjson/cJSON.h>
#include <math.h>
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
    uint64_t s = util_fnv1a(UTIL_FNV_OFFSET, key ? key : "", key ? strlen(key) : 0);
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

/* store_item_texts' callback: keep the id, the ext_id and what to embed --
 * the text, or the title when the text is empty. */
static int s_on_item(void *ctx, int64_t item_id, const char *ext, const char *title,
                     const char *text)
{
    s_items *it = ctx;
    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 1024;
        int64_t *id = realloc(it->id, cap * sizeof *id);
        char **e = id ? realloc(it->ext, cap * sizeof *e) : NULL;
        char **t = e ? realloc(it->text, cap * sizeof *t) : NULL;
        if (id)
            it->id = id;
        if (e)
            it->ext = e;
        if (!t)
            return STORE_ERR_NOMEM;
        it->text = t;
        it->cap = cap;
    }
    it->id[it->n] = item_id;
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
    rc = store_item_texts(db, s_on_item, &it, err);
    if (rc == STORE_OK && it.n &&
        !(emb = malloc(it.n * (size_t)o.dim * sizeof *emb)))
        rc = store_fail(err, STORE_ERR_NOMEM, "embed: out of memory for %zu x %d vectors", it.n,
                    o.dim);
    if (rc == STORE_OK)
        rc = store_embed_texts((const char *const *)it.text, (const char *const *)it.ext, it.n,
                               &o, emb, info, err);
    if (rc == STORE_OK && !(desc = store_embed_describe(&o, info)))
        rc = store_fail(err, STORE_ERR_NOMEM, "embed: out of memory");
    /* --force-dim: the new dimension first, so the writes below are
     * checked against it. */
    if (rc == STORE_OK && o.dim != db_dim) {
        rc = store_dim_rewrite(db, o.dim, &info->models_unusable, err);
        info->dim_changed = rc == STORE_OK;
    }
    for (size_t i = 0; i < it.n && rc == STORE_OK; i++) {
        rc = store_item_set_embedding(db, it.id[i], emb + i * (size_t)o.dim, err);
        if (o.progress && i % 4096 == 0)
            o.progress(o.progress_ctx, "write", i, it.n);
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
