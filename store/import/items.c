/* items.c -- items (ext_id, title, text, embedding) from CSV or JSONL,
 * then optionally embeddings from a .npy matrix, in one transaction.
 *
 * Upsert by ext_id through store_item_put: item_id stays stable, a column the
 * file lacks (or a JSON key that is absent or null) keeps the stored value,
 * and an item whose title or text changed without a new embedding goes back
 * to "not embedded" for the embedder to redo (store_item_put's rule).
 */
#include "store/import/job.h"

#include <stdlib.h>
#include <string.h>

static const char *const s_id_names[] = {"id", "ext_id", "item_id", "item", NULL};
static const char *const s_title_names[] = {"title", "name", NULL};
static const char *const s_text_names[] = {"text", "description", NULL};
static const char *const s_emb_names[] = {"embedding", "vector", "emb", NULL};

/* Longest ext_id we accept: ids are keys, not documents. */
#define EXT_MAX 512

typedef struct s_cols {
    int id, title, text, emb;   /* column handles, -1 when the file lacks one */
} s_cols;

/* A free-text column: absent/null keeps the stored value (NULL), a present
 * but empty CSV field or JSON "" sets it empty. */
static int s_text_col(store_import_rd *rd, int col, store_import_val *v, const char **out,
                      char *why, size_t why_len)
{
    *out = NULL;
    if (col < 0)
        return STORE_OK;
    store_import_rd_get(rd, col, v);
    size_t len;
    int rc = store_import_val_str(v, 0, out, &len, why, why_len);
    if (rc == STORE_OK && !*out && v->kind == STORE_IMPORT_V_STR)
        *out = "";
    return rc;
}

static int s_item_row(store_import_job *job, store_import_rd *rd, const s_cols *c,
                      float *emb)
{
    char why[400];
    store_import_val vid, vtitle, vtext, vemb;
    const char *ext, *title, *text;
    size_t len;

    store_import_rd_get(rd, c->id, &vid);
    if (store_import_val_str(&vid, 1, &ext, &len, why, sizeof why) != STORE_OK)
        return store_import_job_fail(job, rd, why);
    if (!ext) {
        snprintf(why, sizeof why, "column %s: missing or empty (an item needs an id)",
                 vid.name);
        return store_import_job_fail(job, rd, why);
    }
    if (len > EXT_MAX) {
        snprintf(why, sizeof why, "column %s: id is %zu bytes, at most %d", vid.name, len,
                 EXT_MAX);
        return store_import_job_fail(job, rd, why);
    }
    if (s_text_col(rd, c->title, &vtitle, &title, why, sizeof why) != STORE_OK ||
        s_text_col(rd, c->text, &vtext, &text, why, sizeof why) != STORE_OK)
        return store_import_job_fail(job, rd, why);
    int has_emb = 0;
    if (c->emb >= 0) {
        store_import_rd_get(rd, c->emb, &vemb);
        if (store_import_val_vec(&vemb, store_dim(job->db), emb, &has_emb, why,
                                 sizeof why) != STORE_OK)
            return store_import_job_fail(job, rd, why);
    }

    int64_t id;
    int rc = store_import_job_item(job, ext, len, &id);
    int exists = rc == STORE_OK;
    if (rc != STORE_OK && rc != STORE_ERR_NOTFOUND)
        return rc;
    rc = store_item_put(job->db, ext, title, text, has_emb ? emb : NULL, job->now, &id,
                        job->err);
    if (rc != STORE_OK) {
        store_import_job_where(job, rd);
        return rc;
    }
    rc = store_import_job_item_seen(job, ext, len, id);
    if (rc != STORE_OK)
        return rc;
    store_import_job_item_written(job, exists);
    if (has_emb) {
        job->st->embeddings++;
        job->embeddings_from = 1;
        snprintf(job->embed_source, sizeof job->embed_source, "%s", store_import_rd_label(rd));
    }
    return STORE_OK;
}

int store_import_item_columns(store_import_job *job, store_import_rd *rd, int col[3])
{
    const store_import_opts *o = job->o;
    int rc = store_import_job_column(job, rd, &col[0], 1, "id", o->col_id, "--col-id",
                                     s_id_names);
    if (rc == STORE_OK)
        rc = store_import_job_column(job, rd, &col[1], 0, "title", o->col_title,
                                     "--col-title", s_title_names);
    if (rc == STORE_OK)
        rc = store_import_job_column(job, rd, &col[2], 0, "text", o->col_text, "--col-text",
                                     s_text_names);
    return rc;
}

typedef struct s_item_ctx {
    const s_cols *c;
    float *emb;              /* a row's embedding, store_dim floats */
} s_item_ctx;

static int s_item_each(store_import_job *job, store_import_rd *rd, void *ctx)
{
    s_item_ctx *x = ctx;
    return s_item_row(job, rd, x->c, x->emb);
}

static int s_items_file(store_import_job *job, const char *path)
{
    const store_import_opts *o = job->o;
    store_import_rd *rd;
    store_import_rd_opts ro = {0};
    int rc = store_import_job_open(job, &rd, path, &ro);
    if (rc != STORE_OK)
        return rc;
    int col[3] = {-1, -1, -1};
    rc = store_import_item_columns(job, rd, col);
    s_cols c = {col[0], col[1], col[2], -1};
    if (rc == STORE_OK)
        rc = store_import_job_column(job, rd, &c.emb, 0, "embedding", o->col_embedding,
                                     "--col-embedding", s_emb_names);
    float *emb = malloc((size_t)store_dim(job->db) * sizeof *emb);
    if (!emb && rc == STORE_OK)
        rc = store_import_job_nomem(job);
    s_item_ctx ctx = {&c, emb};
    if (rc == STORE_OK)
        rc = store_import_each(job, rd, s_item_each, &ctx);
    free(emb);
    store_import_rd_free(&rd);
    return rc;
}

int store_import_items(store *db, const char *path, const store_import_opts *opts,
                       store_import_stats *stats, store_err *err)
{
    if ((!path && !opts->npy_path) || (!opts->npy_path != !opts->ids_path)) {
        if (err) {
            err->code = STORE_ERR_INVAL;
            snprintf(err->msg, sizeof err->msg,
                     "import items: give a CSV/JSONL file, or --npy with --ids (or both)");
        }
        return STORE_ERR_INVAL;
    }
    store_import_job job;
    const char *inputs[] = {path, opts->npy_path, opts->ids_path};
    int rc = store_import_job_start(&job, db, opts, stats, path ? path : opts->ids_path,
                                    inputs, 3, err);
    if (rc != STORE_OK)
        return rc;
    if (path)
        rc = s_items_file(&job, path);
    if (rc == STORE_OK && opts->npy_path)
        rc = store_import_npy_rows(&job, opts->npy_path, opts->ids_path);
    return store_import_job_finish(&job, rc);
}
