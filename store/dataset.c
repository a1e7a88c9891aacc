/* dataset.c -- one chronological scan of interactions into per-user arrays.
 *
 * The scan walks the interactions primary key (user_id, ts, item_id, kind)
 * forwards, so SQLite needs no sort.  Arrays grow geometrically; a user's
 * sequence is closed when the user id changes.  Part of the SQLite core
 * (docs/ARCHITECTURE.md says why it is not a folder of its own).
 */
#include "store/dataset.h"
#include "store/store_int.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SQL                                                              \
    "SELECT user_id, item_id, ts, weight FROM interactions "               \
    "ORDER BY user_id, ts, item_id, kind"

static int s_fail(store_err *err, int code, const char *fmt, const char *path,
                  const char *detail)
{
    if (err) {
        err->code = code;
        snprintf(err->msg, sizeof err->msg, fmt, path, detail);
    }
    return code;
}

/* Grow *p (elements of size sz) to hold at least need elements. */
static int s_grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * sz);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

void store_dataset_free(store_dataset **ds_p)
{
    if (!ds_p || !*ds_p)
        return;
    store_dataset *ds = *ds_p;
    free(ds->user_id);
    free(ds->off);
    free(ds->row);
    free(ds->weight);
    free(ds);
    *ds_p = NULL;
}

int store_dataset_load(store *db, const store_catalog *cat, store_dataset **out,
                       store_err *err)
{
    if (!out)
        return s_fail(err, STORE_ERR_INVAL, "%s%s", "store_dataset_load", ": no output");
    *out = NULL;
    if (!db || !cat)
        return s_fail(err, STORE_ERR_INVAL, "%s%s", "store_dataset_load", ": bad arguments");
    const char *path = store_path(db);
    sqlite3 *h = store_sqlite(db);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, S_SQL, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return s_fail(err, rc == SQLITE_BUSY ? STORE_ERR_BUSY : STORE_ERR_SCHEMA,
                      "%s: reading interactions: %s", path, sqlite3_errmsg(h));
    store_dataset *ds = calloc(1, sizeof *ds);
    size_t cap_u = 0, cap_off = 0, cap_ev = 0, cap_w = 0;
    int code = STORE_OK;
    if (!ds) {
        code = s_fail(err, STORE_ERR_NOMEM, "%s: %s", path, "out of memory loading events");
        goto fail;
    }
    int64_t cur = 0;
    int have_user = 0;
    uint64_t user_start = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t uid = sqlite3_column_int64(st, 0);
        int64_t iid = sqlite3_column_int64(st, 1);
        double w = sqlite3_column_double(st, 3);
        if (!(w > 0.0) || !isfinite((float)w)) {
            char detail[200];
            snprintf(detail, sizeof detail, "user_id=%lld item_id=%lld ts=%lld: weight %g, "
                     "expected a finite value > 0", (long long)uid, (long long)iid,
                     (long long)sqlite3_column_int64(st, 2), w);
            code = s_fail(err, STORE_ERR_CORRUPT, "%s: interactions row %s", path, detail);
            goto fail;
        }
        int64_t r = store_catalog_row(cat, iid);
        if (r < 0) {
            ds->n_unembedded++;
            continue;
        }
        if (!have_user || uid != cur) {
            if (have_user && ds->n_events > user_start) {
                if (s_grow((void **)&ds->off, &cap_off, ds->seqs.n_users + 2, sizeof *ds->off))
                    goto nomem;
                ds->off[ds->seqs.n_users + 1] = ds->n_events;
                ds->seqs.n_users++;
            }
            if (s_grow((void **)&ds->user_id, &cap_u, ds->seqs.n_users + 1, sizeof *ds->user_id) ||
                s_grow((void **)&ds->off, &cap_off, ds->seqs.n_users + 2, sizeof *ds->off))
                goto nomem;
            ds->user_id[ds->seqs.n_users] = uid;
            ds->off[ds->seqs.n_users] = ds->n_events;
            user_start = ds->n_events;
            cur = uid;
            have_user = 1;
        }
        if (s_grow((void **)&ds->row, &cap_ev, ds->n_events + 1, sizeof *ds->row) ||
            s_grow((void **)&ds->weight, &cap_w, ds->n_events + 1, sizeof *ds->weight))
            goto nomem;
        ds->row[ds->n_events] = (uint32_t)r;
        ds->weight[ds->n_events] = (float)w;
        ds->n_events++;
    }
    if (rc != SQLITE_DONE) {
        code = s_fail(err, rc == SQLITE_BUSY ? STORE_ERR_BUSY : STORE_ERR_IO,
                      "%s: reading interactions: %s", path, sqlite3_errmsg(h));
        goto fail;
    }
    if (have_user && ds->n_events > user_start) {
        if (s_grow((void **)&ds->off, &cap_off, ds->seqs.n_users + 2, sizeof *ds->off))
            goto nomem;
        ds->off[ds->seqs.n_users + 1] = ds->n_events;
        ds->seqs.n_users++;
    }
    if (!ds->off) {
        ds->off = calloc(1, sizeof *ds->off);
        if (!ds->off)
            goto nomem;
    }
    for (uint32_t u = 0; u < ds->seqs.n_users; u++)
        ds->n_single += ds->off[u + 1] - ds->off[u] == 1;
    ds->seqs.n_rows = cat->n;
    ds->seqs.off = ds->off;
    ds->seqs.row = ds->row;
    ds->seqs.weight = ds->weight;
    sqlite3_finalize(st);
    *out = ds;
    return STORE_OK;
nomem:
    code = s_fail(err, STORE_ERR_NOMEM, "%s: %s", path, "out of memory loading events");
fail:
    sqlite3_finalize(st);
    store_dataset_free(&ds);
    return code;
}
