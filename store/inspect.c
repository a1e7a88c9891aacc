/* inspect.c -- what a database holds and what is wrong with it, for
 * 'attnctl inspect' (store.h: store_summary_read, store_check).
 *
 * Each number is one query, each check one query or one scan of the
 * embedding blobs.  Nothing here writes, so both run on read-only handles
 * beside a live daemon or an import; wrapped in store_read_begin/end they
 * describe one snapshot.
 */
#include "store/store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SHOW 5   /* offending rows named per kind of problem */

/* ---- summary ----------------------------------------------------------------- */

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Events per user: min, median, max over the users that have any. */
static int s_per_user(store *db, store_summary *out, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "SELECT count(*) FROM interactions GROUP BY user_id", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "counting events per user");
    size_t n = 0, cap = 0;
    int64_t *v = NULL;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            int64_t *p = realloc(v, cap * sizeof *p);
            if (!p) {
                sqlite3_finalize(st);
                free(v);
                return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory counting events "
                                  "per user", db->path);
            }
            v = p;
        }
        v[n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return store_sqlfail(db, err, rc, "counting events per user");
    }
    out->users_with_events = (int64_t)n;
    if (n) {
        qsort(v, n, sizeof *v, s_cmp_i64);
        out->per_user_min = v[0];
        out->per_user_max = v[n - 1];
        out->per_user_median = n % 2 ? (double)v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
    }
    free(v);
    return STORE_OK;
}

/* The most common kinds of event, most first. */
static int s_kinds(store *db, store_summary *out, store_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "SELECT kind, count(*) FROM interactions GROUP BY kind "
                                "ORDER BY 2 DESC LIMIT ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "counting kinds of events");
    sqlite3_bind_int(st, 1, STORE_SUMMARY_KINDS);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->n_kinds < STORE_SUMMARY_KINDS) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        snprintf(out->kind[out->n_kinds].name, sizeof out->kind[0].name, "%s",
                 kind ? kind : "");
        out->kind[out->n_kinds++].events = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW
               ? STORE_OK : store_sqlfail(db, err, rc, "counting kinds of events");
}

int store_summary_read(store *db, store_summary *out, store_err *err)
{
    memset(out, 0, sizeof *out);
    const struct {
        const char *sql, *what;
        int64_t *dst;
    } counts[] = {
        {"PRAGMA user_version", "reading the schema version", &out->schema_version},
        {"SELECT count(*) FROM items", "counting items", &out->items},
        {"SELECT count(*) FROM items WHERE embedding IS NOT NULL", "counting embedded items",
         &out->items_embedded},
        {"SELECT count(*) FROM users", "counting users", &out->users},
        {"SELECT count(*) FROM interactions", "counting events", &out->events},
    };
    int rc = STORE_OK;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0] && rc == STORE_OK; i++)
        rc = store_query_int(db, counts[i].sql, counts[i].dst, counts[i].what, err);
    if (rc == STORE_OK)
        rc = s_kinds(db, out, err);
    if (rc == STORE_OK)
        rc = s_per_user(db, out, err);
    return rc;
}

/* ---- integrity --------------------------------------------------------------- */

typedef struct s_report {
    store_problem_fn fn;
    void *ctx;
    int n;
} s_report;

static void s_problem(s_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_problem(s_report *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->n++;
    r->fn(r->ctx, msg);
}

/* One count; -1 (and a problem naming the query) if it cannot run. */
static long long s_count(store *db, s_report *r, const char *sql)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
        s_problem(r, "query failed: %s (%s)", sqlite3_errmsg(db->h), sql);
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        s_problem(r, "query failed: %s (%s)", sqlite3_errmsg(db->h), sql);
    sqlite3_finalize(st);
    return v;
}

static void s_quick_check(store *db, s_report *r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK) {
        s_problem(r, "quick_check: %s", sqlite3_errmsg(db->h));
        return;
    }
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *res = (const char *)sqlite3_column_text(st, 0);
        if (res && strcmp(res, "ok") && n++ < S_SHOW)
            s_problem(r, "quick_check: %s", res);
    }
    sqlite3_finalize(st);
}

/* Index of the first non-finite little-endian float32 in b[0..len), or -1.
 * Read byte by byte: the blob may be any length, and inspect must not trust
 * it to be a whole number of aligned floats. */
static long s_first_nonfinite_le(const unsigned char *b, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i += 4) {
        uint32_t u = (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 |
                     (uint32_t)b[i + 3] << 24;
        if ((u & 0x7f800000u) == 0x7f800000u)   /* exponent all ones: inf or NaN */
            return (long)(i / 4);
    }
    return -1;
}

/* Every blob: the right length, all finite.  Names the first few offenders. */
static void s_blobs(store *db, s_report *r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "SELECT item_id, ext_id, embedding FROM items "
                           "WHERE embedding IS NOT NULL", -1, &st, NULL) != SQLITE_OK)
        return;
    long long bad_len = 0, bad_val = 0;
    size_t want = (size_t)db->dim * 4;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *b = sqlite3_column_blob(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        const char *ext = (const char *)sqlite3_column_text(st, 1);
        long long id = sqlite3_column_int64(st, 0);
        if (len != want) {
            if (bad_len++ < S_SHOW)
                s_problem(r, "item %lld ('%s'): embedding is %zu bytes, embedding_dim %d "
                          "needs %zu", id, ext ? ext : "?", len, db->dim, want);
            continue;
        }
        long bad = s_first_nonfinite_le(b, len);
        if (bad >= 0 && bad_val++ < S_SHOW)
            s_problem(r, "item %lld ('%s'): embedding component %ld is not finite", id,
                      ext ? ext : "?", bad);
    }
    sqlite3_finalize(st);
    if (bad_len > S_SHOW)
        s_problem(r, "... %lld items in all have embeddings of the wrong length", bad_len);
    if (bad_val > S_SHOW)
        s_problem(r, "... %lld items in all have non-finite embedding values", bad_val);
}

int store_check(store *db, store_problem_fn fn, void *ctx)
{
    s_report r = {fn, ctx, 0};
    s_quick_check(db, &r);
    s_blobs(db, &r);
    long long v = s_count(db, &r, "SELECT count(*) FROM interactions i "
                          "WHERE NOT EXISTS (SELECT 1 FROM items t WHERE t.item_id = i.item_id)");
    if (v > 0)
        s_problem(&r, "%lld events point to missing items", v);
    v = s_count(db, &r, "SELECT count(*) FROM interactions i "
                "WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = i.user_id)");
    if (v > 0)
        s_problem(&r, "%lld events point to missing users", v);
    v = s_count(db, &r, "SELECT count(*) FROM users u "
                "WHERE NOT EXISTS (SELECT 1 FROM interactions i WHERE i.user_id = u.user_id)");
    if (v > 0)
        s_problem(&r, "%lld users have no events", v);
    v = s_count(db, &r, "SELECT count(*) FROM interactions WHERE NOT (weight > 0)");
    if (v > 0)
        s_problem(&r, "%lld events have a weight that is not > 0", v);
    return r.n;
}
