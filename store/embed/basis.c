/* basis.c -- the built-in embedder's basis in the database (embedder_basis
 * rows, docs/SCHEMA.md):
 *
 *     config      text  1 x bytes   the fit's parameters (the JSON of
 *                                   store_embed_describe, without run counts)
 *     bucket      i64   cols x 1    hashed feature of each kept column, ascending
 *     idf         f32   cols x 1    its idf in the fit
 *     projection  f32   cols x dim  W, the top right singular vectors, signs fixed
 *     sigma       f32   1 x dim     singular values (0 past the rank); informative
 *
 * Loading trusts nothing: the config must name this method and format with
 * options inside their bounds, the arrays must have the shapes it implies,
 * buckets must ascend inside 2^(hash_bits+1), idf must be positive.  A bad
 * basis is an error naming the row, never a quietly different space.
 */
#include "store/embed/embed.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_embed_basis_save(store *db, const store_embed_basis *b, store_err *err)
{
    char *cfg = store_embed_describe(&b->o, b, NULL);
    if (!cfg)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", store_path(db));
    int64_t *bucket = malloc((b->cols ? b->cols : 1) * sizeof *bucket);
    int rc = bucket ? STORE_OK : store_fail(err, STORE_ERR_NOMEM, "%s: out of memory",
                                            store_path(db));
    for (size_t j = 0; bucket && j < b->cols; j++)
        bucket[j] = b->bucket[j];
    int64_t cols = (int64_t)b->cols, dim = b->o.dim;
    if (rc == STORE_OK)
        rc = store_basis_clear(db, err);
    if (rc == STORE_OK)
        rc = store_basis_put(db, "config", STORE_BASIS_TEXT, 1, (int64_t)strlen(cfg), cfg, err);
    if (rc == STORE_OK)
        rc = store_basis_put(db, "bucket", STORE_BASIS_I64, cols, 1, bucket, err);
    if (rc == STORE_OK)
        rc = store_basis_put(db, "idf", STORE_BASIS_F32, cols, 1, b->idf, err);
    if (rc == STORE_OK)
        rc = store_basis_put(db, "projection", STORE_BASIS_F32, cols, dim, b->proj, err);
    if (rc == STORE_OK)
        rc = store_basis_put(db, "sigma", STORE_BASIS_F32, 1, dim, b->sigma, err);
    free(bucket);
    free(cfg);
    return rc;
}

/* A whole number in lo..hi from JSON key (in obj), or -1 with why set. */
static int s_int(const cJSON *obj, const char *key, double lo, double hi, double *out,
                 char *why, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != floor(v->valuedouble)) {
        snprintf(why, len, "'%s' is missing or not a whole number in %g..%g", key, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

static int s_seed(const cJSON *j, uint64_t *seed, char *why, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "seed");
    char *end = NULL;
    if (cJSON_IsString(v) && v->valuestring[0] >= '0' && v->valuestring[0] <= '9') {
        *seed = strtoull(v->valuestring, &end, 10);
        if (!*end)
            return 0;
    }
    double d;
    if (!end && s_int(j, "seed", 0, 9007199254740992.0, &d, why, len) == 0) {
        *seed = (uint64_t)d;
        return 0;
    }
    snprintf(why, len, "'seed' is not a whole number");
    return -1;
}

/* The fit's options and counts from the config row into b. */
static int s_parse_config(const char *text, store_embed_basis *b, char *why, size_t len)
{
    cJSON *j = cJSON_Parse(text);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "features");
    const cJSON *svd = cJSON_GetObjectItemCaseSensitive(j, "svd");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "method");
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(f, "char_ngrams");
    const cJSON *cw = cJSON_GetObjectItemCaseSensitive(f, "char_weight");
    const cJSON *bg = cJSON_GetObjectItemCaseSensitive(f, "bigrams");
    double v[10] = {0};
    int bad = -1;
    store_embed_opts *o = &b->o;
    *o = store_embed_defaults();
    if (!cJSON_IsObject(j) || !cJSON_IsObject(f) || !cJSON_IsObject(svd))
        snprintf(why, len, "not a JSON object with 'features' and 'svd'");
    else if (!cJSON_IsString(m) || strcmp(m->valuestring, "tfidf-svd"))
        snprintf(why, len, "method is not 'tfidf-svd'");
    else if (s_int(j, "format", 1, 1, &v[0], why, len) || s_int(j, "dim", 1, 65536, &v[1], why, len) ||
             s_seed(j, &o->seed, why, len) ||
             s_int(f, "hash_bits", 8, 24, &v[2], why, len) ||
             s_int(f, "min_df", 1, 1 << 30, &v[3], why, len) ||
             s_int(f, "max_features", 1, 1 << 24, &v[4], why, len) ||
             s_int(svd, "oversample", 0, 1000, &v[5], why, len) ||
             s_int(svd, "power_iters", 0, 50, &v[6], why, len) ||
             s_int(j, "fit_items", 0, 1e15, &v[7], why, len) ||
             s_int(j, "rank", 0, 65536, &v[8], why, len) ||
             s_int(j, "created_at", -1e15, 1e15, &v[9], why, len))
        ;
    else if (!cJSON_IsBool(bg) || !cJSON_IsNumber(cw) || !(cw->valuedouble >= 0) ||
             !isfinite(cw->valuedouble) || !cJSON_IsArray(cr) ||
             (cJSON_GetArraySize(cr) != 0 && cJSON_GetArraySize(cr) != 2))
        snprintf(why, len, "'bigrams', 'char_weight' or 'char_ngrams' is malformed");
    else
        bad = 0;
    if (!bad && cJSON_GetArraySize(cr) == 2) {
        const cJSON *lo = cJSON_GetArrayItem(cr, 0), *hi = cJSON_GetArrayItem(cr, 1);
        bad = !cJSON_IsNumber(lo) || !cJSON_IsNumber(hi) || lo->valuedouble < 1 ||
              hi->valuedouble > 8 || lo->valuedouble > hi->valuedouble;
        if (bad)
            snprintf(why, len, "'char_ngrams' is not a range within 1..8");
        else
            o->char_min = (int)lo->valuedouble, o->char_max = (int)hi->valuedouble;
    } else if (!bad) {
        o->char_min = o->char_max = 0;
    }
    if (!bad) {
        o->dim = (int)v[1];
        o->hash_bits = (int)v[2];
        o->min_df = (int)v[3];
        o->max_features = (int)v[4];
        o->oversample = (int)v[5];
        o->power_iters = (int)v[6];
        o->bigrams = cJSON_IsTrue(bg);
        o->char_weight = (float)cw->valuedouble;
        b->n_fit = (size_t)v[7];
        b->rank = (int)v[8];
        b->created_at = (int64_t)v[9];
    }
    cJSON_Delete(j);
    return bad ? -1 : 0;
}

/* A row the config promises is missing: the basis is damaged. */
static int s_missing(store *db, int rc, const char *name, store_err *err)
{
    if (rc != STORE_ERR_NOTFOUND)
        return rc;
    return store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis has a config but no '%s' row",
                      store_path(db), name);
}

/* Every row but config, read and checked against the config's shapes. */
static int s_load_arrays(store *db, store_embed_basis *b, store_err *err)
{
    int64_t r, c, dim = b->o.dim;
    void *p;
    int rc = store_basis_get(db, "bucket", STORE_BASIS_I64, &p, &r, &c, err);
    if (rc != STORE_OK)
        return s_missing(db, rc, "bucket", err);
    int64_t *bk = p;
    b->cols = (size_t)r;
    uint64_t nb = (uint64_t)2 << b->o.hash_bits;
    const char *bad = c != 1 || r > b->o.max_features ? "its shape" : NULL;
    b->bucket = malloc((b->cols ? b->cols : 1) * sizeof *b->bucket);
    for (size_t j = 0; !bad && b->bucket && j < b->cols; j++) {
        if (bk[j] < 0 || (uint64_t)bk[j] >= nb || (j && bk[j] <= bk[j - 1]))
            bad = "a bucket out of range or out of order";
        else
            b->bucket[j] = (uint32_t)bk[j];
    }
    free(bk);
    if (!b->bucket)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", store_path(db));
    if (bad)
        return store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis 'bucket': %s",
                          store_path(db), bad);
    const struct { const char *name; float **dst; int64_t rows, cols; } want[] = {
        {"idf", &b->idf, (int64_t)b->cols, 1},
        {"projection", &b->proj, (int64_t)b->cols, dim},
        {"sigma", &b->sigma, 1, dim},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        rc = store_basis_get(db, want[i].name, STORE_BASIS_F32, &p, &r, &c, err);
        if (rc != STORE_OK)
            return s_missing(db, rc, want[i].name, err);
        *want[i].dst = p;
        if (r != want[i].rows || c != want[i].cols)
            return store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis '%s' is %lld x %lld, "
                              "the config implies %lld x %lld", store_path(db), want[i].name,
                              (long long)r, (long long)c, (long long)want[i].rows,
                              (long long)want[i].cols);
    }
    for (size_t j = 0; j < b->cols; j++)
        if (!(b->idf[j] > 0))
            return store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis 'idf': value %zu is "
                              "not positive", store_path(db), j);
    return STORE_OK;
}

/* The config row alone into b. */
static int s_load_config(store *db, store_embed_basis *b, store_err *err)
{
    void *cfg;
    int64_t r, c;
    int rc = store_basis_get(db, "config", STORE_BASIS_TEXT, &cfg, &r, &c, err);
    if (rc != STORE_OK)
        return rc;
    char why[160];
    if (s_parse_config(cfg, b, why, sizeof why))
        rc = store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis 'config': %s",
                        store_path(db), why);
    free(cfg);
    return rc;
}

int store_embed_basis_peek(store *db, store_embed_basis *b, store_err *err)
{
    memset(b, 0, sizeof *b);
    int rc = s_load_config(db, b, err);
    if (rc != STORE_OK)
        memset(b, 0, sizeof *b);
    return rc;
}

int store_embed_basis_load(store *db, store_embed_basis *b, store_err *err)
{
    memset(b, 0, sizeof *b);
    int rc = s_load_config(db, b, err);
    if (rc == STORE_OK)
        rc = s_load_arrays(db, b, err);
    if (rc != STORE_OK)
        store_embed_basis_free(b);
    return rc;
}
