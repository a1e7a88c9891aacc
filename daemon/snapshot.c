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

#include "attn/attn.h"
#include "util/clock.h"

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static srv_snapshot *s_current;

static void s_free(srv_snapshot *snap)
{
    attn_tables_free(&snap->tables);
    store_catalog_free(&snap->cat);
    free(snap->param_index);
    free(snap->popularity);
    free(snap);
}

int srv_snapshot_build(const srv_config *cfg, srv_snapshot **out, char *why, size_t why_len)
{
    uint64_t t0 = util_now_ns();
    store_err err = {0};
    store *db = NULL;
    attn_model *model = NULL;
    srv_snapshot *snap = calloc(1, sizeof *snap);
    *out = NULL;
    if (!snap) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    atomic_init(&snap->refs, 1);
    if (store_open(&db, cfg->db, STORE_READONLY, cfg->busy_timeout_ms, &err) != STORE_OK ||
        store_catalog_load(db, &snap->cat, &err) != STORE_OK ||
        store_model_load(db, STORE_MODEL_ACTIVE, &model, &err) != STORE_OK)
        goto store_fail;
    if (snap->cat->n == 0) {
        snprintf(why, why_len, "%s: the catalog holds no embedded items", cfg->db);
        goto fail;
    }
    if (model->d != snap->cat->dim) {
        snprintf(why, why_len, "%s: model %lld has d=%d but the catalog has dimension %d",
                 cfg->db, (long long)model->version, model->d, snap->cat->dim);
        goto fail;
    }
    size_t n = snap->cat->n;
    snap->param_index = malloc(n * sizeof *snap->param_index);
    snap->popularity = malloc(n * sizeof *snap->popularity);
    if (!snap->param_index || !snap->popularity) {
        snprintf(why, why_len, "out of memory for %zu catalog rows", n);
        goto fail;
    }
    for (size_t r = 0; r < n; r++)
        snap->param_index[r] = attn_model_item_index(model, snap->cat->item_id[r]);
    if (store_catalog_popularity(db, snap->cat, snap->popularity, &err) != STORE_OK)
        goto store_fail;
    int threads = cfg->build_threads > 0 ? cfg->build_threads : cfg_cores();
    attn_precompute mode =
        cfg->precompute == CFG_PRECOMPUTE_NONE ? ATTN_PRECOMPUTE_NONE : ATTN_PRECOMPUTE_ALL;
    int rc = attn_tables_build(&snap->tables, model, snap->cat->emb, n, (size_t)snap->cat->dim,
                               snap->param_index, mode, threads);
    if (rc != ATTN_OK) {
        snprintf(why, why_len, "building tables for model %lld over %zu items: %s",
                 (long long)model->version, n, attn_strerror(rc));
        goto fail;
    }
    snap->model = attn_tables_model(snap->tables);
    snap->model_version = model->version;
    snap->catalog_version = snap->cat->version;
    snap->l_hist = cfg->max_history < model->l_max ? cfg->max_history : model->l_max;
    snap->l_ctx = model->sa_len > 0 ? model->sa_len - 1 : 0;
    snap->bytes = store_catalog_bytes(snap->cat) + attn_tables_bytes(snap->tables) +
                  n * (sizeof *snap->param_index + sizeof *snap->popularity);
    attn_model_free(&model);
    store_close(&db);
    snap->build_ms = (double)(util_now_ns() - t0) / 1e6;
    *out = snap;
    return 0;
store_fail:
    snprintf(why, why_len, "%s", err.msg);
fail:
    attn_model_free(&model);
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
