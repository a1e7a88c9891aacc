/* model_io.c -- model versions: load, save, activate, list.
 *
 * A version is a models row (shapes, config JSON, metrics JSON, active flag)
 * plus one model_tensors row per parameter array.  Loading trusts nothing:
 * the config is range-checked, every tensor's shape must follow from the
 * config, its blob length from its shape, its values must be finite and
 * item_ids strictly ascending; then attn_model_check has the last word.  A
 * daemon asked to serve a bad version must refuse it with a reason, never
 * score with garbage.
 *
 * Loading runs in two passes inside one read transaction: shapes and blob
 * lengths first (length() does not read a blob), so that the model is
 * allocated once at its final size; then the blobs, decoded straight into
 * the model's arrays.
 */
#include "store/model_cfg.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

/* The tensors a version may hold.  Absent projections are the identity,
 * absent biases zeros, absent item arrays "no per-item parameters". */
enum { T_WQ, T_WK, T_WV, T_WO, T_POS, T_IDS, T_BIAS, T_RES,
       T_SAQ, T_SAK, T_SAUK, T_SAUV, T_SAPOS, T_FW1, T_FB1, T_FW2, T_FB2, T__COUNT };
static const char *const s_names[T__COUNT] = {
    "wq", "wk", "wv", "wo", "pos_bias", "item_ids", "item_bias", "residual",
    "sa_q", "sa_k", "sa_uk", "sa_uv", "sa_pos", "ffn_w1", "ffn_b1", "ffn_w2", "ffn_b2",
};

static int s_tensor_index(const char *name)
{
    for (int t = 0; t < T__COUNT; t++)
        if (!strcmp(name, s_names[t]))
            return t;
    return -1;
}

/* What the first pass learns about one tensor. */
typedef struct s_tinfo {
    int present;
    int64_t rows, cols;
} s_tinfo;

/* Resolve STORE_MODEL_ACTIVE to a version number. */
static int s_resolve(store *db, int64_t *version, store_err *err)
{
    if (*version != STORE_MODEL_ACTIVE)
        return STORE_OK;
    int rc = store_model_active(db, version, err);
    return rc;
}

/* Pass 1: the models row and every tensor's shape, checked against the
 * config.  Fills cfg and info[]. */
/* The models row: its config, checked against its own columns and the
 * catalog's dimension. */
static int s_read_config(store *db, int64_t v, store_model_cfg *cfg, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h,
                                "SELECT heads, d_model, config FROM models WHERE version = ?1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading models");
    sqlite3_bind_int64(st, 1, v);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE)
            return store_fail(err, STORE_ERR_NOTFOUND, "%s: models: no version %lld", db->path,
                              (long long)v);
        return store_sqlfail(db, err, rc, "reading models");
    }
    int64_t heads = sqlite3_column_int64(st, 0), d_model = sqlite3_column_int64(st, 1);
    char why[200];
    int bad = store_model_cfg_parse((const char *)sqlite3_column_text(st, 2), cfg, why,
                                    sizeof why);
    sqlite3_finalize(st);
    if (bad)
        return store_fail(err, STORE_ERR_CORRUPT, "%s: models version %lld: %s", db->path,
                          (long long)v, why);
    if (heads != cfg->heads || d_model != cfg->d)
        return store_fail(err, STORE_ERR_CORRUPT,
                          "%s: models version %lld: columns say heads=%lld d_model=%lld, "
                          "config says heads=%d d=%d", db->path, (long long)v, (long long)heads,
                          (long long)d_model, cfg->heads, cfg->d);
    if (cfg->d != db->dim)
        return store_fail(err, STORE_ERR_DIM,
                          "%s: models version %lld has d_model %d but the catalog's "
                          "embedding_dim is %d", db->path, (long long)v, cfg->d, db->dim);

    return STORE_OK;
}

/* Every model_tensors row of version v: a name this build knows, the right
 * dtype, a blob of rows x cols elements.  Fills info. */
static int s_read_tensor_rows(store *db, int64_t v, s_tinfo *info, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h,
                                "SELECT name, rows, cols, dtype, length(data) FROM model_tensors "
                                "WHERE version = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading model_tensors");
    sqlite3_bind_int64(st, 1, v);
    int code = STORE_OK;
    while (code == STORE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int64_t rows = sqlite3_column_int64(st, 1), cols = sqlite3_column_int64(st, 2);
        const char *dtype = (const char *)sqlite3_column_text(st, 3);
        int64_t bytes = sqlite3_column_int64(st, 4);
        int t = s_tensor_index(name ? name : "");
        if (t < 0) {
            code = store_fail(err, STORE_ERR_SCHEMA,
                              "%s: model_tensors version=%lld name='%s': a tensor this build "
                              "does not know (a newer trainer?)", db->path, (long long)v,
                              name ? name : "");
            break;
        }
        const char *want_dtype = t == T_IDS ? "i64" : "f32";
        if (!dtype || strcmp(dtype, want_dtype)) {
            code = store_fail(err, STORE_ERR_CORRUPT,
                              "%s: model_tensors version=%lld name='%s': dtype '%s', expected "
                              "'%s'", db->path, (long long)v, name, dtype ? dtype : "",
                              want_dtype);
            break;
        }
        if (rows < 0 || cols < 0 || rows > (1LL << 31) || cols > (1LL << 31)
            || rows * cols * (t == T_IDS ? 8 : 4) != bytes) {
            code = store_fail(err, STORE_ERR_CORRUPT,
                              "%s: model_tensors version=%lld name='%s': %lldx%lld %s but the "
                              "blob is %lld bytes", db->path, (long long)v, name,
                              (long long)rows, (long long)cols, dtype, (long long)bytes);
            break;
        }
        info[t].present = 1;
        info[t].rows = rows;
        info[t].cols = cols;
    }
    sqlite3_finalize(st);
    if (code != STORE_OK)
        return code;
    if (rc != SQLITE_DONE)
        return store_sqlfail(db, err, rc, "reading model_tensors");

    return STORE_OK;
}

/* Shapes that follow from the config (n from item_ids), and the tensors
 * that must come together. */
static int s_check_shapes(store *db, int64_t v, const store_model_cfg *cfg, const s_tinfo *info,
                          store_err *err)
{
    int64_t n = info[T_IDS].present ? info[T_IDS].rows : 0;
    const int64_t want[T__COUNT][2] = {
        [T_WQ] = {cfg->d, cfg->m}, [T_WK] = {cfg->d, cfg->m}, [T_WV] = {cfg->d, cfg->m},
        [T_WO] = {cfg->m, cfg->d}, [T_POS] = {1, cfg->l_max}, [T_IDS] = {n, 1},
        [T_BIAS] = {n, 1}, [T_RES] = {n, cfg->d},
        [T_SAQ] = {cfg->d, cfg->m}, [T_SAK] = {cfg->d, cfg->m}, [T_SAUK] = {cfg->d, cfg->m},
        [T_SAUV] = {cfg->d, cfg->m}, [T_SAPOS] = {1, cfg->sa_len},
        [T_FW1] = {2 * (int64_t)cfg->m, cfg->ffn}, [T_FB1] = {1, cfg->ffn},
        [T_FW2] = {cfg->ffn, 2 * (int64_t)cfg->m}, [T_FB2] = {1, 2 * (int64_t)cfg->m},
    };
    /* The self-attention block is all five tensors or none, as the config
     * says, and so is its feed-forward layer, all four or none. */
    const struct { int first, last; const char *key; int n; } part[] = {
        {T_SAQ, T_SAPOS, "sa_len", cfg->sa_len}, {T_FW1, T_FB2, "ffn", cfg->ffn},
    };
    for (size_t p = 0; p < sizeof part / sizeof part[0]; p++)
        for (int t = part[p].first; t <= part[p].last; t++)
            if (info[t].present != (part[p].n > 0))
                return store_fail(err, STORE_ERR_CORRUPT,
                                  "%s: models version %lld: config says %s=%d but tensor '%s' "
                                  "is %s", db->path, (long long)v, part[p].key, part[p].n,
                                  s_names[t], info[t].present ? "present" : "missing");
    for (int t = 0; t < T__COUNT; t++) {
        if (!info[t].present)
            continue;
        if ((t == T_BIAS || t == T_RES) && !info[T_IDS].present)
            return store_fail(err, STORE_ERR_CORRUPT,
                              "%s: model_tensors version=%lld: '%s' without 'item_ids'",
                              db->path, (long long)v, s_names[t]);
        if (info[t].rows != want[t][0] || info[t].cols != want[t][1])
            return store_fail(err, STORE_ERR_CORRUPT,
                              "%s: model_tensors version=%lld name='%s': %lldx%lld, expected "
                              "%lldx%lld (d=%d m=%d l_max=%d items=%lld ffn=%d)", db->path,
                              (long long)v, s_names[t], (long long)info[t].rows,
                              (long long)info[t].cols, (long long)want[t][0],
                              (long long)want[t][1], cfg->d, cfg->m, cfg->l_max, (long long)n,
                              cfg->ffn);
        if (t <= T_WO && cfg->identity)
            return store_fail(err, STORE_ERR_CORRUPT,
                              "%s: models version %lld: config says identity but tensor '%s' "
                              "is present", db->path, (long long)v, s_names[t]);
    }
    int any_identity = 0;
    for (int t = T_WQ; t <= T_WO; t++)
        any_identity |= !info[t].present;
    if (any_identity && cfg->m != cfg->d)
        return store_fail(err, STORE_ERR_CORRUPT,
                          "%s: models version %lld: an absent (identity) projection needs "
                          "m == d, config has m=%d d=%d", db->path, (long long)v, cfg->m,
                          cfg->d);
    return STORE_OK;
}

static int s_shapes(store *db, int64_t v, store_model_cfg *cfg, s_tinfo *info, store_err *err)
{
    int rc = s_read_config(db, v, cfg, err);
    if (rc == STORE_OK)
        rc = s_read_tensor_rows(db, v, info, err);
    return rc == STORE_OK ? s_check_shapes(db, v, cfg, info, err) : rc;
}

/* The array of model that tensor t decodes into. */
static void *s_target(attn_model *md, int t)
{
    switch (t) {
    case T_WQ: return md->wq;
    case T_WK: return md->wk;
    case T_WV: return md->wv;
    case T_WO: return md->wo;
    case T_POS: return md->pos_bias;
    case T_IDS: return md->item_ids;
    case T_BIAS: return md->item_bias;
    case T_RES: return md->residual;
    case T_SAQ: return md->sa_q;
    case T_SAK: return md->sa_k;
    case T_SAUK: return md->sa_uk;
    case T_SAUV: return md->sa_uv;
    case T_SAPOS: return md->sa_pos;
    case T_FW1: return md->ffn_w1;
    case T_FB1: return md->ffn_b1;
    case T_FW2: return md->ffn_w2;
    case T_FB2: return md->ffn_b2;
    }
    return NULL;
}

/* Pass 2: decode every blob into the allocated model and check values. */
static int s_fill(store *db, int64_t v, attn_model *md, const s_tinfo *info, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h,
                                "SELECT name, data FROM model_tensors WHERE version = ?1", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading model_tensors");
    sqlite3_bind_int64(st, 1, v);
    int code = STORE_OK;
    while (code == STORE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int t = s_tensor_index(name ? name : "");
        const void *blob = sqlite3_column_blob(st, 1);
        size_t n = t >= 0 ? (size_t)(info[t].rows * info[t].cols) : 0;
        size_t bytes = (size_t)sqlite3_column_bytes(st, 1);
        if (t < 0 || !info[t].present || bytes != n * (t == T_IDS ? 8 : 4)) {
            /* Defensive: both passes read one snapshot. */
            code = store_fail(err, STORE_ERR_CORRUPT, "%s: model_tensors version=%lld changed "
                              "while loading", db->path, (long long)v);
            break;
        }
        if (n == 0)
            continue;
        if (t == T_IDS) {
            store_i64_decode(md->item_ids, blob, n);
            for (size_t i = 1; i < n; i++)
                if (md->item_ids[i] <= md->item_ids[i - 1]) {
                    code = store_fail(err, STORE_ERR_CORRUPT,
                                      "%s: model_tensors version=%lld name='item_ids': not "
                                      "strictly ascending at index %zu (%lld after %lld)",
                                      db->path, (long long)v, i, (long long)md->item_ids[i],
                                      (long long)md->item_ids[i - 1]);
                    break;
                }
            continue;
        }
        float *x = s_target(md, t);
        store_f32_decode(x, blob, n);
        ptrdiff_t bad = store_first_nonfinite(x, n);
        if (bad >= 0)
            code = store_fail(err, STORE_ERR_CORRUPT,
                              "%s: model_tensors version=%lld name='%s': value %td (row %lld, "
                              "col %lld) is %g, expected a finite value", db->path,
                              (long long)v, s_names[t], bad, (long long)(bad / info[t].cols),
                              (long long)(bad % info[t].cols), (double)x[bad]);
    }
    sqlite3_finalize(st);
    if (code == STORE_OK && rc != SQLITE_DONE)
        code = store_sqlfail(db, err, rc, "reading model_tensors");
    return code;
}

static int s_load(store *db, int64_t version, attn_model **out, store_err *err)
{
    int rc = s_resolve(db, &version, err);
    if (rc != STORE_OK)
        return rc;
    store_model_cfg cfg;
    s_tinfo info[T__COUNT] = {{0}};
    rc = s_shapes(db, version, &cfg, info, err);
    if (rc != STORE_OK)
        return rc;

    int64_t n = info[T_IDS].present ? info[T_IDS].rows : 0;
    attn_model *md = attn_model_new(cfg.d, cfg.m, cfg.heads, cfg.l_max, n, info[T_RES].present);
    if (!md)
        return store_fail(err, STORE_ERR_NOMEM, "%s: models version %lld: out of memory "
                          "(d=%d m=%d items=%lld)", db->path, (long long)version, cfg.d, cfg.m,
                          (long long)n);
    /* attn_model_new allocates every projection; an absent tensor is the
     * identity, which the model spells NULL (attn_model_free uses free()). */
    float **proj[4] = {&md->wq, &md->wk, &md->wv, &md->wo};
    for (int t = T_WQ; t <= T_WO; t++)
        if (!info[t].present) {
            free(*proj[t]);
            *proj[t] = NULL;
        }
    md->version = version;
    md->scale = cfg.scale;
    /* The config parser checked what attn_model_add_ffn needs: only memory
     * can fail here. */
    if ((cfg.sa_len > 0 && attn_model_add_sa(md, cfg.sa_len) != 0) ||
        (cfg.ffn > 0 && attn_model_add_ffn(md, cfg.ffn) != 0)) {
        attn_model_free(&md);
        return store_fail(err, STORE_ERR_NOMEM, "%s: models version %lld: out of memory",
                          db->path, (long long)version);
    }
    rc = s_fill(db, version, md, info, err);
    if (rc == STORE_OK) {
        char why[200];
        if (attn_model_check(md, why, sizeof why) != 0)
            rc = store_fail(err, STORE_ERR_CORRUPT, "%s: models version %lld: %s", db->path,
                            (long long)version, why);
    }
    if (rc != STORE_OK) {
        attn_model_free(&md);
        return rc;
    }
    *out = md;
    return STORE_OK;
}

int store_model_load(store *db, int64_t version, attn_model **out, store_err *err)
{
    if (!out)
        return store_fail(err, STORE_ERR_INVAL, "%s: store_model_load: no output", db->path);
    *out = NULL;
    /* One read snapshot for both passes, so that a trainer committing a
     * version meanwhile cannot make the passes disagree. */
    int own = sqlite3_get_autocommit(db->h);
    int rc = own ? store_exec(db, "BEGIN", "starting the model read", err) : STORE_OK;
    if (rc != STORE_OK)
        return rc;
    rc = s_load(db, version, out, err);
    if (own)
        sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    return rc;
}

int store_model_active(store *db, int64_t *version, store_err *err)
{
    store_err e;
    int rc = store_query_int(db, "SELECT version FROM models WHERE active = 1", version,
                             "reading the active model", &e);
    if (rc == STORE_ERR_NOTFOUND)
        return store_fail(err, STORE_ERR_NOTFOUND,
                          "%s: models: no version is active (see 'attnctl model list')",
                          db->path);
    if (rc != STORE_OK && err)
        *err = e;
    return rc;
}

/* Flip the active flag to version: the old row off first, so the partial
 * unique index never sees two. */
static int s_flip(store *db, int64_t version, store_err *err)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "UPDATE models SET active = 0 WHERE active = 1 AND version <> %lld; "
             "UPDATE models SET active = 1 WHERE version = %lld", (long long)version,
             (long long)version);
    return store_exec(db, sql, "activating a model version", err);
}

/* Run body inside the caller's transaction, or in one of our own. */
static int s_own_begin(store *db, int *own, store_err *err)
{
    *own = sqlite3_get_autocommit(db->h);
    return *own ? store_begin(db, err) : STORE_OK;
}

static int s_own_end(store *db, int own, int rc, store_err *err)
{
    if (!own)
        return rc;
    if (rc == STORE_OK)
        rc = store_commit(db, err);
    if (rc != STORE_OK)
        store_rollback(db);
    return rc;
}

int store_model_activate(store *db, int64_t version, store_err *err)
{
    int rc = store_need_rw(db, "models", err);
    if (rc != STORE_OK)
        return rc;
    if (version < 0)
        return store_fail(err, STORE_ERR_INVAL, "%s: models: no version %lld", db->path,
                          (long long)version);
    int own;
    rc = s_own_begin(db, &own, err);
    if (rc != STORE_OK)
        return rc;
    attn_model *md = NULL;
    store_err e;
    rc = store_model_load(db, version, &md, &e);
    attn_model_free(&md);
    if (rc != STORE_OK) {
        /* Keep the loader's code; say what was decided, then why (the
         * loader's message minus its own "PATH: "). */
        size_t pl = strlen(db->path);
        const char *why = strncmp(e.msg, db->path, pl) || strncmp(e.msg + pl, ": ", 2)
                              ? e.msg : e.msg + pl + 2;
        store_fail(err, rc, "%s: cannot activate model version %lld (the active version is "
                   "unchanged): %s", db->path, (long long)version, why);
    } else {
        rc = s_flip(db, version, err);
    }
    return s_own_end(db, own, rc, err);
}

static int s_put_tensor(store *db, sqlite3_stmt *st, int64_t v, int t, int64_t rows,
                        int64_t cols, const void *data, store_err *err)
{
    size_t esz = t == T_IDS ? 8 : 4;
    size_t bytes = (size_t)(rows * cols) * esz;
    void *buf = NULL;
    const void *blob = data;
    if (!STORE_HOST_LE) {
        if (!(buf = malloc(bytes ? bytes : 1)))
            return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", db->path);
        if (t == T_IDS)
            store_i64_encode(buf, data, (size_t)(rows * cols));
        else
            store_f32_encode(buf, data, (size_t)(rows * cols));
        blob = buf;
    }
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, v);
    sqlite3_bind_text(st, 2, s_names[t], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, rows);
    sqlite3_bind_int64(st, 4, cols);
    sqlite3_bind_text(st, 5, t == T_IDS ? "i64" : "f32", -1, SQLITE_STATIC);
    /* zeroblob for an empty tensor: a NULL pointer would bind SQL NULL. */
    int rc = bytes ? sqlite3_bind_blob64(st, 6, blob, bytes, SQLITE_STATIC)
                   : sqlite3_bind_zeroblob(st, 6, 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    free(buf);
    if (rc != SQLITE_DONE) {
        char what[80];
        snprintf(what, sizeof what, "writing model_tensors '%s' (%zu bytes)", s_names[t], bytes);
        return store_sqlfail(db, err, rc, what);
    }
    return STORE_OK;
}

static int s_save(store *db, const attn_model *md, const char *config, const char *metrics,
                  int activate, int64_t *version, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h,
                                "INSERT INTO models(created_at, heads, d_model, config, metrics, "
                                "active) VALUES (?1, ?2, ?3, ?4, ?5, 0)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "writing models");
    sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
    sqlite3_bind_int(st, 2, md->heads);
    sqlite3_bind_int(st, 3, md->d);
    sqlite3_bind_text(st, 4, config, -1, SQLITE_STATIC);
    if (metrics)
        sqlite3_bind_text(st, 5, metrics, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return store_sqlfail(db, err, rc, "writing models");
    int64_t v = sqlite3_last_insert_rowid(db->h);

    rc = sqlite3_prepare_v2(db->h,
                            "INSERT INTO model_tensors(version, name, rows, cols, dtype, data) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "writing model_tensors");
    int64_t d = md->d, m = md->m, n = md->n_items;
    struct { int t; int64_t rows, cols; const void *x; } ts[] = {
        {T_WQ, d, m, md->wq}, {T_WK, d, m, md->wk}, {T_WV, d, m, md->wv},
        {T_WO, m, d, md->wo}, {T_POS, 1, md->l_max, md->pos_bias},
        {T_IDS, n, 1, n > 0 ? md->item_ids : NULL},
        {T_BIAS, n, 1, n > 0 ? md->item_bias : NULL},
        {T_RES, n, d, n > 0 ? md->residual : NULL},
        {T_SAQ, d, m, md->sa_q}, {T_SAK, d, m, md->sa_k}, {T_SAUK, d, m, md->sa_uk},
        {T_SAUV, d, m, md->sa_uv}, {T_SAPOS, 1, md->sa_len, md->sa_pos},
        {T_FW1, 2 * m, md->ffn, md->ffn_w1}, {T_FB1, 1, md->ffn, md->ffn_b1},
        {T_FW2, md->ffn, 2 * m, md->ffn_w2}, {T_FB2, 1, 2 * m, md->ffn_b2},
    };
    int code = STORE_OK;
    for (size_t i = 0; code == STORE_OK && i < sizeof ts / sizeof ts[0]; i++)
        if (ts[i].x)
            code = s_put_tensor(db, st, v, ts[i].t, ts[i].rows, ts[i].cols, ts[i].x, err);
    sqlite3_finalize(st);
    if (code == STORE_OK && activate)
        code = s_flip(db, v, err);
    if (code == STORE_OK && version)
        *version = v;
    return code;
}

int store_model_save(store *db, const attn_model *model, const char *config_json,
                     const char *metrics_json, int activate, int64_t *version, store_err *err)
{
    int rc = store_need_rw(db, "models", err);
    if (rc != STORE_OK)
        return rc;
    char why[200];
    if (!model || attn_model_check(model, why, sizeof why) != 0)
        return store_fail(err, STORE_ERR_INVAL, "%s: models: refusing to save an invalid "
                          "model: %s", db->path, model ? why : "NULL");
    if (model->d != db->dim)
        return store_fail(err, STORE_ERR_DIM,
                          "%s: models: the model has d=%d but the catalog's embedding_dim is %d",
                          db->path, model->d, db->dim);
    if (metrics_json && !store_model_cfg_valid_json(metrics_json))
        return store_fail(err, STORE_ERR_INVAL, "%s: models: metrics are not valid JSON",
                          db->path);
    char *config = store_model_cfg_write(model, config_json, why, sizeof why);
    if (!config)
        return store_fail(err, STORE_ERR_INVAL, "%s: models: %s", db->path, why);
    int own;
    rc = s_own_begin(db, &own, err);
    if (rc == STORE_OK) {
        rc = s_save(db, model, config, metrics_json, activate, version, err);
        rc = s_own_end(db, own, rc, err);
    }
    cJSON_free(config);
    return rc;
}

void store_model_list_free(store_model_info **list_p, size_t n)
{
    if (!list_p || !*list_p)
        return;
    for (size_t i = 0; i < n; i++) {
        free((*list_p)[i].config);
        free((*list_p)[i].metrics);
    }
    free(*list_p);
    *list_p = NULL;
}

int store_model_list(store *db, store_model_info **out, size_t *n, store_err *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h,
                                "SELECT version, created_at, heads, d_model, active, config, "
                                "metrics, CASE WHEN json_valid(config) THEN "
                                "json_extract(config, '$.sa_len') END, "
                                "CASE WHEN json_valid(config) THEN "
                                "json_extract(config, '$.ffn') END "
                                "FROM models ORDER BY version", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading models");
    store_model_info *list = NULL;
    size_t cap = 0, k = 0;
    int code = STORE_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == cap) {
            size_t nc = cap ? 2 * cap : 16;
            store_model_info *nl = realloc(list, nc * sizeof *nl);
            if (!nl) {
                code = STORE_ERR_NOMEM;
                break;
            }
            list = nl;
            cap = nc;
        }
        store_model_info *mi = &list[k++];
        memset(mi, 0, sizeof *mi);
        mi->version = sqlite3_column_int64(st, 0);
        mi->created_at = sqlite3_column_int64(st, 1);
        mi->heads = sqlite3_column_int(st, 2);
        mi->d_model = sqlite3_column_int(st, 3);
        mi->active = sqlite3_column_int(st, 4);
        mi->sa_len = sqlite3_column_int(st, 7);   /* NULL (no key, bad JSON): 0 */
        mi->ffn = sqlite3_column_int(st, 8);
        const char *c = (const char *)sqlite3_column_text(st, 5);
        const char *m = (const char *)sqlite3_column_text(st, 6);
        mi->config = strdup(c ? c : "");
        mi->metrics = m ? strdup(m) : NULL;
        if (!mi->config || (m && !mi->metrics)) {
            code = STORE_ERR_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    if (code == STORE_OK && rc != SQLITE_DONE)
        code = store_sqlfail(db, err, rc, "reading models");
    else if (code == STORE_ERR_NOMEM)
        store_fail(err, code, "%s: out of memory listing models", db->path);
    if (code != STORE_OK) {
        store_model_list_free(&list, k);
        return code;
    }
    *out = list;
    *n = k;
    return STORE_OK;
}

int store_model_refit(store *db, int64_t version, int *refit, store_err *err)
{
    store_model_info *list = NULL;
    size_t n = 0;
    int rc = store_model_list(db, &list, &n, err);
    if (rc != STORE_OK)
        return rc;
    rc = STORE_ERR_NOTFOUND;
    *refit = 0;
    for (size_t i = 0; i < n; i++)
        if (list[i].version == version) {
            cJSON *c = list[i].config ? cJSON_Parse(list[i].config) : NULL;
            *refit = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "refit"));
            cJSON_Delete(c);
            rc = STORE_OK;
        }
    store_model_list_free(&list, n);
    return rc == STORE_OK ? rc : store_fail(err, rc, "%s: models: no version %lld", db->path,
                                            (long long)version);
}
