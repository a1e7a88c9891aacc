/* snapshot.c -- building, publishing and reference-counting snapshots.
 *
 * The published pointer is guarded by a mutex rather than read lock-free:
 * taking it costs ~20 ns per request, and it closes the window in which a
 * reader could load the pointer just before the last reference is dropped.
 */
#include "daemon/snapshot.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/attn.h"
#include "util/clock.h"

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static srv_snapshot *s_current;

static double s_now_ms(void)
{
    return (double)util_now_ns() / 1e6;
}

const char *srv_snapshot_title(const srv_snapshot *snap, uint32_t row, size_t *len)
{
    const store_titles *t = snap->titles;
    if (!t || !t->pool || row >= t->n) {
        *len = 0;
        return "";
    }
    *len = (size_t)(t->off[row + 1] - t->off[row]);
    return t->pool + t->off[row];
}

static void s_free(srv_snapshot *snap)
{
    for (int i = 0; i < snap->n_models; i++) {
        attn_tables_free(&snap->models[i].tables);
        free(snap->models[i].param_index);
    }
    store_catalog_free(&snap->cat);
    free(snap->popularity);
    store_titles_free(&snap->titles);
    free(snap);
}

const srv_model *srv_snapshot_model(const srv_snapshot *snap, int64_t version)
{
    for (int i = 0; i < snap->n_models; i++)
        if (snap->models[i].version == version)
            return &snap->models[i];
    return NULL;
}

/* Load version (or the active one) into the next model slot: its tables
 * over the catalog and its parameter index.  0, or -1 with why. */
static int s_add_model(const srv_config *cfg, const srv_precisions *precisions, store *db,
                       srv_snapshot *snap, int64_t version, char *why, size_t why_len)
{
    store_err err = {0};
    attn_model *model = NULL;
    if (store_model_load(db, version, &model, &err) != STORE_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return -1;
    }
    srv_model *m = &snap->models[snap->n_models];
    size_t n = snap->cat->n;
    int rc = -1;
    if (model->d != snap->cat->dim)
        snprintf(why, why_len, "%s: model %lld has d=%d but the catalog has dimension %d",
                 cfg->db, (long long)model->version, model->d, snap->cat->dim);
    else if (!(m->param_index = malloc(n * sizeof *m->param_index)))
        snprintf(why, why_len, "out of memory for %zu catalog rows", n);
    else
        rc = 0;
    if (rc == 0) {
        for (size_t r = 0; r < n; r++)
            m->param_index[r] = attn_model_item_index(model, snap->cat->item_id[r]);
        int threads = cfg->build_threads > 0 ? cfg->build_threads : cfg_cores();
        attn_precompute mode =
            cfg->precompute == CFG_PRECOMPUTE_NONE ? ATTN_PRECOMPUTE_NONE : ATTN_PRECOMPUTE_ALL;
        /* Known only now for the active model: its version. */
        m->precision = srv_precision_of(precisions, model->version, cfg->precision);
        attn_tables_opts to = {mode, m->precision == CFG_PRECISION_BF16 ? ATTN_PRECISION_BF16
                                                                        : ATTN_PRECISION_F32,
                               threads};
        int st = attn_tables_build_opts(&m->tables, model, snap->cat->emb, n,
                                        (size_t)snap->cat->dim, m->param_index, &to);
        if (st != ATTN_OK) {
            snprintf(why, why_len, "building tables for model %lld over %zu items: %s",
                     (long long)model->version, n, attn_strerror(st));
            rc = -1;
        }
    }
    snap->n_models++;   /* counted even when half-built: s_free releases what it holds */
    if (rc == 0) {
        m->model = attn_tables_model(m->tables);
        m->version = model->version;
        m->l_hist = cfg->max_history < model->l_max ? cfg->max_history : model->l_max;
        m->l_ctx = model->sa_len > 0 ? model->sa_len - 1 : 0;
        m->bytes = attn_tables_bytes(m->tables) + n * sizeof *m->param_index;
    }
    attn_model_free(&model);
    return rc;
}

/* The active model, then every other version models.serve or an arm
 * names (each once); then which model serves each arm. */
static int s_add_models(const srv_config *cfg, const srv_experiment *exp, store *db,
                        srv_snapshot *snap, char *why, size_t why_len)
{
    int64_t want[SRV_MODELS_MAX + SRV_ARMS_MAX];
    int n_want = 0;
    srv_precisions precisions;
    if (srv_models_parse(cfg->models_serve, want, &n_want, SRV_MODELS_MAX - 1, why, why_len) ||
        srv_precisions_parse(cfg->models_precision, &precisions, why, why_len) ||
        s_add_model(cfg, &precisions, db, snap, STORE_MODEL_ACTIVE, why, why_len))
        return -1;
    for (int i = 0; i < exp->n; i++)
        if (exp->arm[i].version != SRV_VERSION_ACTIVE)
            want[n_want++] = exp->arm[i].version;
    for (int i = 0; i < n_want; i++) {
        if (srv_snapshot_model(snap, want[i]))
            continue;
        if (snap->n_models == SRV_MODELS_MAX) {
            snprintf(why, why_len, "more than %d models to load (models.serve and "
                     "experiment.arms)", SRV_MODELS_MAX);
            return -1;
        }
        if (s_add_model(cfg, &precisions, db, snap, want[i], why, why_len))
            return -1;
    }
    for (int i = 0; i < exp->n; i++) {
        const srv_model *m = exp->arm[i].version == SRV_VERSION_ACTIVE
                                 ? &snap->models[0] : srv_snapshot_model(snap, exp->arm[i].version);
        snap->arm_model[i] = (int)(m - snap->models);
    }
    return 0;
}

/* A snapshot file's checksum, and the identity of the file at the path
 * (before the load).  Snapshot files are replaced by rename, never edited:
 * the same inode after the load means the checksum is of what was loaded. */
static int s_file_identity(const srv_config *cfg, store *db, srv_snapshot *snap,
                           struct stat *before, char *why, size_t why_len)
{
    store_err err;
    if (store_is_snapshot(db) &&
        store_file_checksum(cfg->db, snap->checksum, &err) != STORE_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return -1;
    }
    struct stat now;
    if (stat(cfg->db, &now) != 0 || now.st_ino != before->st_ino ||
        now.st_dev != before->st_dev) {
        snprintf(why, why_len, "%s was replaced while it was loading; the next reload "
                 "takes the new file", cfg->db);
        return -1;
    }
    snap->file_dev = (uint64_t)before->st_dev;
    snap->file_ino = (uint64_t)before->st_ino;
    return 0;
}

int srv_snapshot_build(const srv_config *cfg, const srv_experiment *exp, srv_snapshot **out,
                       char *why, size_t why_len)
{
    double t0 = s_now_ms();
    store_err err = {0};
    store *db = NULL;
    srv_snapshot *snap = calloc(1, sizeof *snap);
    *out = NULL;
    if (!snap) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    atomic_init(&snap->refs, 1);
    struct stat before;
    if (stat(cfg->db, &before) != 0)
        memset(&before, 0, sizeof before);   /* store_open names the problem */
    if (store_open(&db, cfg->db, STORE_READONLY, cfg->busy_timeout_ms, &err) != STORE_OK ||
        store_catalog_load(db, &snap->cat, &err) != STORE_OK)
        goto store_fail;
    if (snap->cat->n == 0) {
        snprintf(why, why_len, "%s: the catalog holds no embedded items", cfg->db);
        goto fail;
    }
    size_t n = snap->cat->n;
    if (!(snap->popularity = malloc(n * sizeof *snap->popularity))) {
        snprintf(why, why_len, "out of memory for %zu catalog rows", n);
        goto fail;
    }
    if (store_catalog_popularity(db, snap->cat, snap->popularity, &err) != STORE_OK ||
        (cfg->titles && store_catalog_titles(db, snap->cat, SRV_TITLE_MAX, &snap->titles,
                                             &err) != STORE_OK))
        goto store_fail;
    snap->title_bytes = snap->titles ? snap->titles->bytes : 0;
    if (s_add_models(cfg, exp, db, snap, why, why_len) ||
        s_file_identity(cfg, db, snap, &before, why, why_len))
        goto fail;
    /* Tables that own a copy of every row they read (bf16) leave the float
     * matrix unused: give it back once no model's tables borrow it. */
    int borrowed = 0;
    for (int i = 0; i < snap->n_models; i++)
        borrowed |= attn_tables_borrows_emb(snap->models[i].tables);
    if (!borrowed)
        store_catalog_drop_emb(snap->cat);
    snap->model_version = snap->models[0].version;
    snap->catalog_version = snap->cat->version;
    snap->bytes = store_catalog_bytes(snap->cat) + n * sizeof *snap->popularity +
                  snap->title_bytes;
    for (int i = 0; i < snap->n_models; i++)
        snap->bytes += snap->models[i].bytes;
    store_close(&db);
    snap->build_ms = s_now_ms() - t0;
    *out = snap;
    return 0;
store_fail:
    snprintf(why, why_len, "%s", err.msg);
fail:
    store_close(&db);
    s_free(snap);
    return -1;
}

void srv_snapshot_release(srv_snapshot **snap_p)
{
    srv_snapshot *snap = *snap_p;
    *snap_p = NULL;
    if (snap && atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) == 1)
        s_free(snap);
}

srv_snapshot *srv_snapshot_acquire(void)
{
    pthread_mutex_lock(&s_lock);
    srv_snapshot *snap = s_current;
    if (snap)
        atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s_lock);
    return snap;
}

void srv_snapshot_publish(srv_snapshot *snap)
{
    pthread_mutex_lock(&s_lock);
    srv_snapshot *old = s_current;
    s_current = snap;
    pthread_mutex_unlock(&s_lock);
    srv_snapshot_release(&old);
}
