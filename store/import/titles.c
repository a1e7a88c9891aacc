/* titles.c -- titles and texts held in memory until the sequences
 * name their items.
 *
 * A sequence import reads its items file first but writes an item only when
 * a sequence names it (the sequences define the catalog), so the titles wait
 * here: an ext_id -> entry map (store_import_map, never emptied) and one
 * string pool with each entry's title and text.  Memory is the items file's
 * text, which is small beside its events.
 */
#include "store/import/seq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXT_MAX 512
#define S_NONE UINT64_MAX   /* no string */

typedef struct s_entry {
    uint64_t ext;           /* offset into pool */
    uint64_t title, text;   /* offsets into pool, or S_NONE */
    int used;               /* taken by a sequence */
} s_entry;

struct store_import_titles {
    store_import_map *index;   /* ext_id -> entry */
    s_entry *e;
    size_t n, cap;
    char *pool;
    size_t pool_len, pool_cap;
};

store_import_titles *store_import_titles_new(void)
{
    store_import_titles *t = calloc(1, sizeof *t);
    if (t && !(t->index = store_import_map_new(SIZE_MAX)))
        store_import_titles_free(&t);
    return t;
}

void store_import_titles_free(store_import_titles **t_p)
{
    if (!t_p || !*t_p)
        return;
    store_import_titles *t = *t_p;
    store_import_map_free(&t->index);
    free(t->e);
    free(t->pool);
    free(t);
    *t_p = NULL;
}

/* Copy s[0..len) (NULL: none) into the pool, NUL-terminated; its offset,
 * or S_NONE; -1 on out-of-memory. */
static int s_keep(store_import_titles *t, const char *s, size_t len, uint64_t *off)
{
    *off = S_NONE;
    if (!s)
        return 0;
    size_t n = len + 1;
    if (t->pool_len + n > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 64 * 1024;
        while (cap < t->pool_len + n)
            cap *= 2;
        char *p = realloc(t->pool, cap);
        if (!p)
            return -1;
        t->pool = p;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, s, len);
    t->pool[t->pool_len + len] = '\0';
    *off = t->pool_len;
    t->pool_len += n;
    return 0;
}

int store_import_titles_put(store_import_job *job, store_import_titles *t, const char *ext,
                            size_t len, const char *title, const char *text)
{
    int64_t k;
    if (!store_import_map_get(t->index, ext, len, &k)) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? 2 * t->cap : 1024;
            s_entry *e = realloc(t->e, cap * sizeof *e);
            if (!e)
                return store_import_job_nomem(job);
            t->e = e;
            t->cap = cap;
        }
        k = (int64_t)t->n;
        if (store_import_map_put(t->index, ext, len, k) != STORE_OK ||
            s_keep(t, ext, len, &t->e[k].ext))
            return store_import_job_nomem(job);
        t->n++;
    }
    s_entry *e = &t->e[k];
    e->used = 0;
    if (s_keep(t, title, title ? strlen(title) : 0, &e->title) ||
        s_keep(t, text, text ? strlen(text) : 0, &e->text))
        return store_import_job_nomem(job);
    return STORE_OK;
}

int store_import_titles_take(store_import_titles *t, const char *ext, size_t len,
                             const char **title, const char **text)
{
    int64_t k;
    *title = *text = NULL;
    if (!t || !store_import_map_get(t->index, ext, len, &k))
        return 0;
    s_entry *e = &t->e[k];
    e->used = 1;
    *title = e->title == S_NONE ? NULL : t->pool + e->title;
    *text = e->text == S_NONE ? NULL : t->pool + e->text;
    return 1;
}

int store_import_titles_write(store_import_job *job, store_import_titles *t)
{
    for (size_t i = 0; i < t->n; i++) {
        s_entry *e = &t->e[i];
        const char *ext = t->pool + e->ext;
        int64_t id;
        int rc = store_import_job_item(job, ext, strlen(ext), &id);
        int exists = rc == STORE_OK;
        if (rc != STORE_OK && rc != STORE_ERR_NOTFOUND)
            return rc;
        rc = store_item_put(job->db, ext, e->title == S_NONE ? NULL : t->pool + e->title,
                            e->text == S_NONE ? NULL : t->pool + e->text, NULL, job->now, &id,
                            job->err);
        if (rc == STORE_OK)
            rc = store_import_job_item_seen(job, ext, strlen(ext), id);
        if (rc != STORE_OK)
            return rc;
        e->used = 1;
        store_import_job_item_written(job, exists);
    }
    return STORE_OK;
}

uint64_t store_import_titles_unused(const store_import_titles *t)
{
    uint64_t n = 0;
    for (size_t i = 0; t && i < t->n; i++)
        n += !t->e[i].used;
    return n;
}

typedef struct s_cols {
    store_import_titles *t;
    int col[3];                /* id, title, text; -1 when absent */
} s_cols;

/* One record of the items file. */
static int s_row(store_import_job *job, store_import_rd *rd, void *ctx)
{
    const s_cols *c = ctx;
    char why[400];
    const char *s[3];
    size_t len[3];
    for (int i = 0; i < 3; i++) {
        store_import_val v;
        s[i] = NULL;
        len[i] = 0;
        if (c->col[i] < 0)
            continue;
        store_import_rd_get(rd, c->col[i], &v);
        if (store_import_val_str(&v, i == 0, &s[i], &len[i], why, sizeof why) != STORE_OK)
            return store_import_job_fail(job, rd, why);
    }
    if (!s[0])
        return store_import_job_fail(job, rd, "missing or empty id (an item needs one)");
    if (len[0] > EXT_MAX) {
        snprintf(why, sizeof why, "id is %zu bytes, at most %d", len[0], EXT_MAX);
        return store_import_job_fail(job, rd, why);
    }
    return store_import_titles_put(job, c->t, s[0], len[0], s[1], s[2]);
}

int store_import_titles_file(store_import_job *job, store_import_titles *t, const char *path)
{
    store_import_rd *rd;
    store_import_rd_opts ro = {0};
    int rc = store_import_job_open(job, &rd, path, &ro);
    if (rc != STORE_OK)
        return rc;
    s_cols c = {.t = t};
    rc = store_import_item_columns(job, rd, c.col);
    if (rc == STORE_OK)
        rc = store_import_each(job, rd, s_row, &c);
    store_import_rd_free(&rd);
    return rc;
}
