/* events.c -- interactions (user, item, ts, kind, weight) from CSV or
 * JSONL, in one transaction.
 *
 * Every field is decoded and checked before anything is written, and the
 * item is resolved before the user is created, so a rejected line (with
 * --skip-bad) leaves no trace -- not even a user created on its behalf.
 * Users are created on first sight; an item must already exist, because an
 * event for an item the catalog has never heard of is a data error (a typo,
 * a missing items import), not something to paper over with an empty item.
 * An identical (user, item, ts, kind) replaces the weight (store_event_put).
 */
#include "store/import/job.h"

#include <math.h>
#include <string.h>

static const char *const s_user_names[] = {"user", "user_id", "userId", NULL};
static const char *const s_item_names[] = {"item", "item_id", "itemId", NULL};
static const char *const s_ts_names[] = {"ts", "timestamp", "time", NULL};
static const char *const s_kind_names[] = {"kind", "type", "event", NULL};
static const char *const s_weight_names[] = {"weight", NULL};

#define EXT_MAX 512

typedef struct s_cols {
    int user, item, ts, kind, weight;   /* handles; kind, weight -1 if absent */
} s_cols;

static int s_id(store_import_job *job, store_import_rd *rd, int col, store_import_val *v,
                const char *what, const char **out, size_t *len)
{
    char why[400];
    store_import_rd_get(rd, col, v);
    if (store_import_val_str(v, 1, out, len, why, sizeof why) != STORE_OK)
        return store_import_job_fail(job, rd, why);
    if (!*out) {
        snprintf(why, sizeof why, "column %s: missing or empty (an event needs a %s)",
                 v->name, what);
        return store_import_job_fail(job, rd, why);
    }
    if (*len > EXT_MAX) {
        snprintf(why, sizeof why, "column %s: %s id is %zu bytes, at most %d", v->name, what,
                 *len, EXT_MAX);
        return store_import_job_fail(job, rd, why);
    }
    return STORE_OK;
}

static int s_event_row(store_import_job *job, store_import_rd *rd, const s_cols *c);

static int s_event_each(store_import_job *job, store_import_rd *rd, void *c)
{
    return s_event_row(job, rd, c);
}

static int s_event_row(store_import_job *job, store_import_rd *rd, const s_cols *c)
{
    char why[400];
    store_import_val vu, vi, vt, vk, vw;
    const char *user, *item, *kind = NULL;
    size_t ulen, ilen, klen = 0;
    int64_t ts;
    float weight = 1.0f;
    int present;

    int rc = s_id(job, rd, c->user, &vu, "user", &user, &ulen);
    if (rc == STORE_OK)
        rc = s_id(job, rd, c->item, &vi, "item", &item, &ilen);
    if (rc != STORE_OK)
        return rc;
    store_import_rd_get(rd, c->ts, &vt);
    if (store_import_val_time(&vt, &ts, &present, why, sizeof why) != STORE_OK)
        return store_import_job_fail(job, rd, why);
    if (!present) {
        snprintf(why, sizeof why, "column %s: missing or empty (an event needs a time)",
                 vt.name);
        return store_import_job_fail(job, rd, why);
    }
    if (c->kind >= 0) {
        store_import_rd_get(rd, c->kind, &vk);
        if (store_import_val_str(&vk, 1, &kind, &klen, why, sizeof why) != STORE_OK)
            return store_import_job_fail(job, rd, why);
        if (klen > STORE_IMPORT_KIND_MAX) {
            snprintf(why, sizeof why, "column %s: kind is %zu bytes, at most %d", vk.name,
                     klen, STORE_IMPORT_KIND_MAX);
            return store_import_job_fail(job, rd, why);
        }
    }
    if (!kind)
        kind = job->o->default_kind ? job->o->default_kind : "view";
    if (c->weight >= 0) {
        store_import_rd_get(rd, c->weight, &vw);
        if (store_import_val_f32(&vw, &weight, &present, why, sizeof why) != STORE_OK)
            return store_import_job_fail(job, rd, why);
        if (!present)
            weight = 1.0f;
        else if (!(weight > 0)) {
            /* A zero weight would put log 0 into the attention logits. */
            snprintf(why, sizeof why, "column %s: weight %g is not > 0", vw.name,
                     (double)weight);
            return store_import_job_fail(job, rd, why);
        }
    }

    int64_t item_id, user_id;
    rc = store_import_job_item(job, item, ilen, &item_id);
    if (rc == STORE_ERR_NOTFOUND) {
        snprintf(why, sizeof why, "column %s: unknown item '%.200s' (import it with "
                 "'attnctl import items' first)", vi.name, item);
        return store_import_job_fail(job, rd, why);
    }
    if (rc != STORE_OK)
        return rc;
    rc = store_import_job_user(job, user, ulen, &user_id);
    if (rc == STORE_OK)
        rc = store_event_put(job->db, user_id, item_id, ts, kind, weight, job->err);
    if (rc != STORE_OK) {
        store_import_job_where(job, rd);
        return rc;
    }
    job->st->events++;
    return STORE_OK;
}

int store_import_events_file(store_import_job *job, const char *path,
                             store_import_rd_opts *ro, const char *const *cols)
{
    const store_import_opts *o = job->o;
    store_import_rd *rd;
    int rc = store_import_job_open(job, &rd, path, ro);
    if (rc != STORE_OK)
        return rc;
    /* cols (the MovieLens importer's fixed layouts) overrides the flags. */
    const char *spec[5] = {o->col_user, o->col_item, o->col_ts, o->col_kind, o->col_weight};
    if (cols)
        memcpy(spec, cols, sizeof spec);
    s_cols c;
    rc = store_import_job_column(job, rd, &c.user, 1, "user", spec[0], "--col-user",
                                 s_user_names);
    if (rc == STORE_OK)
        rc = store_import_job_column(job, rd, &c.item, 1, "item", spec[1], "--col-item",
                                     s_item_names);
    if (rc == STORE_OK)
        rc = store_import_job_column(job, rd, &c.ts, 1, "ts", spec[2], "--col-ts", s_ts_names);
    if (rc == STORE_OK)
        rc = store_import_job_column(job, rd, &c.kind, 0, "kind", spec[3], "--col-kind",
                                     cols ? NULL : s_kind_names);
    if (rc == STORE_OK)
        rc = store_import_job_column(job, rd, &c.weight, 0, "weight", spec[4], "--col-weight",
                                     cols ? NULL : s_weight_names);
    if (rc == STORE_OK)
        rc = store_import_each(job, rd, s_event_each, &c);
    store_import_rd_free(&rd);
    return rc;
}

int store_import_events(store *db, const char *path, const store_import_opts *opts,
                        store_import_stats *stats, store_err *err)
{
    store_import_job job;
    const char *inputs[] = {path};
    int rc = store_import_job_start(&job, db, opts, stats, path, inputs, 1, err);
    if (rc != STORE_OK)
        return rc;
    store_import_rd_opts ro = {0};
    rc = store_import_events_file(&job, path, &ro, NULL);
    return store_import_job_finish(&job, rc);
}
