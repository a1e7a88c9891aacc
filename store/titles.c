/* titles.c -- every catalog title in one pool, for replies without SQL.
 *
 * The daemon used to look a title up per returned item and per explanation,
 * inside the encode stage: ~11,000 queries for a large explained request,
 * each able to wait on a lock.  Loading them once per snapshot costs one
 * scan and (measured in docs/OPERATIONS.md) tens of bytes per item.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

typedef struct s_pool {
    char *buf;
    size_t len, cap;
} s_pool;

static int s_reserve(s_pool *p, size_t more)
{
    if (p->len + more <= p->cap)
        return 0;
    size_t cap = p->cap ? p->cap : 1 << 16;
    while (cap < p->len + more)
        cap *= 2;
    char *b = realloc(p->buf, cap);
    if (!b)
        return -1;
    p->buf = b;
    p->cap = cap;
    return 0;
}

/* Append text, invalid sequences as U+FFFD, at most max bytes ending on a
 * character boundary. */
static int s_append(s_pool *p, const char *t, size_t len, size_t max)
{
    if (s_reserve(p, util_utf8_repair(NULL, t, len) + 1))
        return -1;
    size_t n = util_utf8_repair(p->buf + p->len, t, len);
    p->len += util_utf8_cut(p->buf + p->len, n, max);
    return 0;
}

void store_titles_free(store_titles **titles_p)
{
    store_titles *t = *titles_p;
    if (!t)
        return;
    *titles_p = NULL;
    free(t->pool);
    free(t->off);
    free(t);
}

int store_catalog_titles(store *db, const store_catalog *cat, size_t max_bytes,
                         store_titles **out, store_err *err)
{
    *out = NULL;
    store_titles *t = calloc(1, sizeof *t);
    s_pool pool = {0};
    sqlite3_stmt *st = NULL;
    if (!t || !(t->off = calloc((size_t)cat->n + 1, sizeof *t->off)))
        goto nomem;
    int rc = sqlite3_prepare_v2(db->h, "SELECT item_id, title FROM items ORDER BY item_id", -1,
                                &st, NULL);
    if (rc != SQLITE_OK) {
        store_sqlfail(db, err, rc, "reading titles");
        goto fail;
    }
    uint32_t next = 0;   /* rows before it have their offsets */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t row = store_catalog_row(cat, sqlite3_column_int64(st, 0));
        if (row < 0)
            continue;   /* not embedded: not served */
        while (next <= (uint32_t)row)
            t->off[next++] = pool.len;
        const char *text = (const char *)sqlite3_column_text(st, 1);
        if (text && s_append(&pool, text, (size_t)sqlite3_column_bytes(st, 1), max_bytes))
            goto nomem;
    }
    if (rc != SQLITE_DONE) {
        store_sqlfail(db, err, rc, "reading titles");
        goto fail;
    }
    while (next <= cat->n)
        t->off[next++] = pool.len;
    sqlite3_finalize(st);
    /* The pool grew by doubling: give the slack back. */
    char *fit = pool.len ? realloc(pool.buf, pool.len) : NULL;
    if (fit || !pool.len) {
        if (!pool.len)
            free(pool.buf);
        pool.buf = fit;
        pool.cap = pool.len;
    }
    t->n = cat->n;
    t->pool = pool.buf;
    t->bytes = pool.cap + ((size_t)cat->n + 1) * sizeof *t->off;
    *out = t;
    return STORE_OK;
nomem:
    store_fail(err, STORE_ERR_NOMEM, "%s: out of memory loading %u titles", db->path, cat->n);
fail:
    sqlite3_finalize(st);
    free(pool.buf);
    store_titles_free(&t);
    return err ? err->code : STORE_ERR_NOMEM;
}
