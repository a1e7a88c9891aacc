/* embed.c -- the embedder's pure driver: texts to unit vectors by a fit,
 * or by folding them into a fitted basis; and the JSON that describes both.
 *
 * A fit is vocab (tfidf.c) -> TF-IDF rows -> SVD (svd.c) -> projection
 * (project.c); a fold-in is TF-IDF rows over the stored vocabulary ->
 * projection.  Both end in the same store_embed_project, which is what
 * makes a fitted item fold in to its own vector.  The database side is
 * run.c (which items, one transaction) and basis.c (the stored rows).
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

void store_embed_basis_free(store_embed_basis *b)
{
    if (!b)
        return;
    free(b->bucket);
    free(b->idf);
    free(b->proj);
    free(b->sigma);
    memset(b, 0, sizeof *b);
}

/* The vector of an item without features: N(0,1) draws from a stream
 * seeded by its ext_id and the seed, normalised -- a uniformly random
 * direction, the same on every run. */
void store_embed_hash_unit(const char *key, uint64_t seed, float *v, int dim)
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

static int s_bad_dim(int dim, store_err *err)
{
    return store_fail(err, STORE_ERR_INVAL, "embed: dimension %d is outside 1..65536", dim);
}

/* The fit's steps 3-4 on a basis whose vocabulary is set: W and sigma. */
static int s_fit_projection(const char *const *texts, size_t n, const store_embed_opts *o,
                            store_embed_basis *b, store_embed_csr *x, store_err *err)
{
    /* The tf-idf pass reports progress through the caller's callback. */
    store_embed_basis view = *b;
    view.o.progress = o->progress;
    view.o.progress_ctx = o->progress_ctx;
    int rc = store_embed_tfidf(texts, n, &view, x, err);
    if (rc != STORE_OK)
        return rc;
    b->proj = malloc((b->cols ? b->cols : 1) * (size_t)o->dim * sizeof *b->proj);
    b->sigma = malloc((size_t)o->dim * sizeof *b->sigma);
    if (!b->proj || !b->sigma)
        return store_fail(err, STORE_ERR_NOMEM, "embed: out of memory for the projection");
    return store_embed_svd(x, o->dim, o, b->proj, b->sigma, &b->rank, err);
}

int store_embed_fit(const char *const *texts, const char *const *keys, size_t n,
                    const store_embed_opts *o, float *out, store_embed_basis *basis,
                    store_embed_info *info, store_err *err)
{
    memset(info, 0, sizeof *info);
    if (basis)
        memset(basis, 0, sizeof *basis);
    if (o->dim < 1 || o->dim > 65536)
        return s_bad_dim(o->dim, err);
    store_embed_basis b;
    store_embed_csr x = {0};
    int rc = store_embed_vocab(texts, n, o, &b, err);
    if (rc != STORE_OK)
        return rc;
    b.created_at = (int64_t)time(NULL);
    rc = s_fit_projection(texts, n, o, &b, &x, err);
    if (rc == STORE_OK) {
        info->items = n;
        info->features = b.cols;
        info->nonzeros = n ? x.rowptr[n] : 0;
        info->rank = b.rank;
        info->empty = store_embed_project(&b, &x, keys, out);
    }
    store_embed_csr_free(&x);
    if (rc == STORE_OK && basis)
        *basis = b;
    else
        store_embed_basis_free(&b);
    return rc;
}

int store_embed_fold(const store_embed_basis *b, const char *const *texts,
                     const char *const *keys, size_t n, float *out, store_embed_info *info,
                     store_err *err)
{
    memset(info, 0, sizeof *info);
    if (b->o.dim < 1 || b->o.dim > 65536)
        return s_bad_dim(b->o.dim, err);
    store_embed_csr x;
    int rc = store_embed_tfidf(texts, n, b, &x, err);
    if (rc != STORE_OK)
        return rc;
    info->items = n;
    info->features = b->cols;
    info->nonzeros = n ? x.rowptr[n] : 0;
    info->rank = b->rank;
    info->empty = store_embed_project(b, &x, keys, out);
    store_embed_csr_free(&x);
    return STORE_OK;
}

/* A seed as JSON: a number when a double holds it exactly, else a
 * decimal string (basis.c reads both). */
static void s_add_seed(cJSON *j, uint64_t seed)
{
    if (seed <= (1ull << 53)) {
        cJSON_AddNumberToObject(j, "seed", (double)seed);
    } else {
        char buf[24];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)seed);
        cJSON_AddStringToObject(j, "seed", buf);
    }
}

static cJSON *s_features_json(const store_embed_opts *o)
{
    cJSON *f = cJSON_CreateObject();
    if (!f)
        return NULL;
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
    return f;
}

char *store_embed_describe(const store_embed_opts *o, const store_embed_basis *b,
                           const store_embed_info *info)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *f = s_features_json(o), *svd = cJSON_CreateObject();
    if (!j || !f || !svd) {
        cJSON_Delete(j);
        cJSON_Delete(f);
        cJSON_Delete(svd);
        return NULL;
    }
    cJSON_AddStringToObject(j, "method", "tfidf-svd");
    /* The tokenizer and hashing of tfidf.c: a change there is a new format,
     * and a basis of another format cannot fold texts in. */
    cJSON_AddNumberToObject(j, "format", 1);
    cJSON_AddNumberToObject(j, "dim", o->dim);
    s_add_seed(j, o->seed);
    cJSON_AddStringToObject(j, "text", "items.text, else items.title");
    cJSON_AddItemToObject(j, "features", f);
    cJSON_AddStringToObject(svd, "method", "randomized (Halko et al. 2011)");
    cJSON_AddNumberToObject(svd, "oversample", o->oversample);
    cJSON_AddNumberToObject(svd, "power_iters", o->power_iters);
    cJSON_AddItemToObject(j, "svd", svd);
    cJSON_AddStringToObject(j, "vector", "x W / |x W|, x the TF-IDF row, W the projection");
    cJSON_AddStringToObject(j, "empty", "unit vector hashed from ext_id and seed");
    if (b) {
        cJSON_AddStringToObject(j, "basis", "embedder_basis");
        cJSON_AddNumberToObject(j, "fit_items", (double)b->n_fit);
        cJSON_AddNumberToObject(j, "n_features", (double)b->cols);
        cJSON_AddNumberToObject(j, "rank", b->rank);
        cJSON_AddNumberToObject(j, "created_at", (double)b->created_at);
    } else {
        cJSON_AddNumberToObject(j, "created_at", (double)time(NULL));
    }
    if (info) {
        cJSON_AddNumberToObject(j, "items", (double)info->items);
        cJSON_AddNumberToObject(j, "empty_items", (double)info->empty);
        if (info->held_out)
            cJSON_AddNumberToObject(j, "held_out", (double)info->held_out);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}
