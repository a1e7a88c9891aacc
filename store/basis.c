/* basis.c -- rows of embedder_basis: the arrays a text embedder fitted.
 *
 * The table is a small named-array store (name, rows, cols, dtype, data),
 * like model_tensors but with one set of rows per database: the basis of
 * the space every embedding lives in.  This file knows how rows are
 * encoded (little-endian f32/i64, UTF-8 text) and checks what it reads
 * back; which rows exist and what they mean is the embedder's business
 * (store/embed/basis.c, docs/SCHEMA.md).
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const s_dtype[] = {NULL, "f32", "i64", "text"};

static size_t s_esize(int dtype)
{
    return dtype == STORE_BASIS_I64 ? 8 : dtype == STORE_BASIS_F32 ? 4 : 1;
}

static int s_need_txn(store *db, const char *what, store_err *err)
{
    int rc = store_need_rw(db, what, err);
    if (rc == STORE_OK && sqlite3_get_autocommit(db->h))
        rc = store_fail(err, STORE_ERR_INVAL, "%s: %s: no transaction is open", db->path, what);
    return rc;
}

int store_basis_clear(store *db, store_err *err)
{
    int rc = s_need_txn(db, "store_basis_clear", err);
    return rc == STORE_OK ? store_exec(db, "DELETE FROM embedder_basis", "clearing embedder_basis",
                                       err)
                          : rc;
}

int store_basis_put(store *db, const char *name, int dtype, int64_t rows, int64_t cols,
                    const void *data, store_err *err)
{
    int rc = s_need_txn(db, "store_basis_put", err);
    if (rc != STORE_OK)
        return rc;
    if (!name || !*name || dtype < STORE_BASIS_F32 || dtype > STORE_BASIS_TEXT || rows < 0 ||
        cols < 0 || (dtype == STORE_BASIS_TEXT && rows != 1) ||
        (uint64_t)rows * (uint64_t)cols > (uint64_t)1 << 30 || (!data && rows * cols > 0))
        return store_fail(err, STORE_ERR_INVAL, "%s: embedder_basis: bad row '%s'", db->path,
                          name ? name : "(null)");
    size_t n = (size_t)(rows * cols), bytes = n * s_esize(dtype);
    void *buf = NULL;
    const void *blob = data;
    if (!STORE_HOST_LE && dtype != STORE_BASIS_TEXT) {
        if (!(buf = malloc(bytes ? bytes : 1)))
            return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", db->path);
        if (dtype == STORE_BASIS_I64)
            store_i64_encode(buf, data, n);
        else
            store_f32_encode(buf, data, n);
        blob = buf;
    }
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(db->h, "INSERT OR REPLACE INTO embedder_basis(name, rows, cols, "
                            "dtype, data) VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, rows);
        sqlite3_bind_int64(st, 3, cols);
        sqlite3_bind_text(st, 4, s_dtype[dtype], -1, SQLITE_STATIC);
        /* A zero-length blob, never NULL: data is NOT NULL. */
        sqlite3_bind_blob64(st, 5, bytes ? blob : "", bytes, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    free(buf);
    return rc == SQLITE_DONE ? STORE_OK : store_sqlfail(db, err, rc, "writing embedder_basis");
}

/* Copy row st's blob into a new array of the dtype, checked. */
static int s_decode(store *db, sqlite3_stmt *st, const char *name, int dtype, void **data,
                    int64_t rows, int64_t cols, store_err *err)
{
    const void *blob = sqlite3_column_blob(st, 3);
    size_t got = (size_t)sqlite3_column_bytes(st, 3);
    size_t n = (size_t)(rows * cols), want = n * s_esize(dtype);
    if (got != want)
        return store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis '%s': %zu bytes, its shape "
                          "%lld x %lld %s needs %zu", db->path, name, got, (long long)rows,
                          (long long)cols, s_dtype[dtype], want);
    void *out = malloc(want + 1);
    if (!out)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory reading embedder_basis '%s'",
                          db->path, name);
    if (n == 0) {
        ((char *)out)[0] = 0;       /* SQLite gives NULL for an empty blob */
    } else if (dtype == STORE_BASIS_F32) {
        store_f32_decode(out, blob, n);
        ptrdiff_t bad = store_first_nonfinite(out, n);
        if (bad >= 0) {
            free(out);
            return store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis '%s': value %td is "
                              "not finite", db->path, name, bad);
        }
    } else if (dtype == STORE_BASIS_I64) {
        store_i64_decode(out, blob, n);
    } else {
        if (want)
            memcpy(out, blob, want);
        ((char *)out)[want] = 0;
        if (memchr(out, 0, want)) {
            free(out);
            return store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis '%s': text holds a "
                              "NUL byte", db->path, name);
        }
    }
    *data = out;
    return STORE_OK;
}

int store_basis_get(store *db, const char *name, int dtype, void **data, int64_t *rows,
                    int64_t *cols, store_err *err)
{
    *data = NULL;
    *rows = *cols = 0;
    if (dtype < STORE_BASIS_F32 || dtype > STORE_BASIS_TEXT)
        return store_fail(err, STORE_ERR_INVAL, "%s: store_basis_get: bad dtype %d", db->path,
                          dtype);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "SELECT rows, cols, dtype, data FROM embedder_basis "
                                "WHERE name = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_sqlfail(db, err, rc, "reading embedder_basis");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int code;
    if (rc == SQLITE_DONE) {
        code = store_fail(err, STORE_ERR_NOTFOUND, "%s: embedder_basis has no row '%s'", db->path,
                          name);
    } else if (rc != SQLITE_ROW) {
        code = store_sqlfail(db, err, rc, "reading embedder_basis");
    } else {
        int64_t r = sqlite3_column_int64(st, 0), c = sqlite3_column_int64(st, 1);
        const char *dt = (const char *)sqlite3_column_text(st, 2);
        if (!dt || strcmp(dt, s_dtype[dtype]))
            code = store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis '%s' is %s, not %s",
                              db->path, name, dt ? dt : "NULL", s_dtype[dtype]);
        else if (r < 0 || c < 0 || (uint64_t)r * (uint64_t)c > (uint64_t)1 << 30)
            code = store_fail(err, STORE_ERR_CORRUPT, "%s: embedder_basis '%s': shape %lld x %lld",
                              db->path, name, (long long)r, (long long)c);
        else
            code = s_decode(db, st, name, dtype, data, r, c, err);
        if (code == STORE_OK) {
            *rows = r;
            *cols = c;
        }
    }
    sqlite3_finalize(st);
    return code;
}
