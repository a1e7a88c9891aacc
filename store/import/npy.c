/* npy.c -- item embeddings from a NumPy .npy matrix and an id list.
 *
 * The usual output of an external embedding job is `np.save("emb.npy", E)`
 * with E of shape (N, D) plus the N item ids in the same order, one per line.
 * The .npy layout (numpy's NEP 1): the magic "\x93NUMPY", a version byte
 * pair, a little-endian header length (2 bytes in version 1, 4 in 2 and 3),
 * then a Python dict literal giving descr, fortran_order and shape, then the
 * raw array.  We accept '<f4' (and '<f8', converted, for the common case of
 * an array saved before .astype(np.float32)), C order, 2-d with D equal to
 * the database's embedding_dim.  Rows are streamed: memory is one row.
 *
 * An id not in the catalog creates the item (no title, no text): external
 * embeddings may well come before or without text.  The id list is checked
 * against the row count before anything is written.
 */
#include "store/import/job.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct s_npy {
    FILE *f;
    const char *path;
    int f8;            /* '<f8': doubles to convert */
    int64_t rows, cols;
} s_npy;

static int s_err(store_import_job *job, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_err(store_import_job *job, int code, const char *fmt, ...)
{
    if (job->err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(job->err->msg, sizeof job->err->msg, fmt, ap);
        va_end(ap);
        job->err->code = code;
    }
    return code;
}

/* A number of the shape tuple at *p: digits, at most LLONG_MAX (strtoll
 * says ERANGE beyond, where sscanf's behaviour would be undefined). */
static int s_dim(const char **p, long long *out)
{
    while (**p == ' ')
        (*p)++;
    if (**p < '0' || **p > '9')
        return -1;
    char *end;
    errno = 0;
    *out = strtoll(*p, &end, 10);
    if (errno == ERANGE)
        return -1;
    *p = end;
    while (**p == ' ')
        (*p)++;
    return 0;
}

/* Exactly two dimensions: "(r, c)" or "(r, c,)", nothing after; c >= 1. */
static int s_shape2(const char *shape, long long *r, long long *c)
{
    const char *p = shape;
    if (*p++ != '(' || s_dim(&p, r) || *p++ != ',' || s_dim(&p, c))
        return -1;
    if (*p == ',') {
        p++;
        while (*p == ' ')
            p++;
    }
    if (*p++ != ')')
        return -1;
    while (*p == ' ')
        p++;
    return *p || *c < 1 ? -1 : 0;
}

/* The value of key in the header dict, as text up to the next top-level
 * comma or closing brace ("'<f4'", "False", "(3, 4)"). */
static int s_dict_value(const char *h, const char *key, char *out, size_t cap)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p++ != ':')
        return -1;
    while (*p == ' ')
        p++;
    size_t n = 0;
    int depth = 0;
    for (; *p && n + 1 < cap; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')')
            depth--;
        else if ((*p == ',' || *p == '}') && depth == 0)
            break;
        out[n++] = *p;
    }
    while (n && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    return 0;
}

static int s_npy_open(store_import_job *job, s_npy *m, const char *path)
{
    memset(m, 0, sizeof *m);
    m->path = path;
    m->f = fopen(path, "rb");
    if (!m->f)
        return s_err(job, STORE_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char pre[12];
    if (fread(pre, 1, 10, m->f) != 10 || memcmp(pre, "\x93NUMPY", 6))
        return s_err(job, STORE_ERR_INVAL, "%s: not a .npy file (no \\x93NUMPY magic)", path);
    uint32_t hlen;
    long data_off;
    if (pre[6] == 1) {
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
        data_off = 10 + (long)hlen;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, m->f) != 2)
            return s_err(job, STORE_ERR_INVAL, "%s: truncated .npy header", path);
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 |
               (uint32_t)pre[11] << 24;
        data_off = 12 + (long)hlen;
    } else
        return s_err(job, STORE_ERR_INVAL, "%s: .npy format version %d is not supported",
                     path, pre[6]);
    if (hlen > 65536)
        return s_err(job, STORE_ERR_INVAL, "%s: .npy header of %u bytes is implausible",
                     path, hlen);
    char *h = malloc(hlen + 1);
    if (!h)
        return store_import_job_nomem(job);
    if (fread(h, 1, hlen, m->f) != hlen) {
        free(h);
        return s_err(job, STORE_ERR_INVAL, "%s: truncated .npy header", path);
    }
    h[hlen] = '\0';
    /* The header is one dict literal, padded with spaces and a newline: a
     * header that does not close is damaged, whatever its keys say. */
    size_t hl = hlen;
    while (hl > 0 && (h[hl - 1] == ' ' || h[hl - 1] == '\n' || h[hl - 1] == '\0'))
        hl--;
    if (hl < 2 || h[0] != '{' || h[hl - 1] != '}') {
        free(h);
        return s_err(job, STORE_ERR_INVAL, "%s: .npy header is not a {...} dict literal "
                     "(damaged or truncated header)", path);
    }
    char descr[32], order[16], shape[64];
    int bad = s_dict_value(h, "descr", descr, sizeof descr) ||
              s_dict_value(h, "fortran_order", order, sizeof order) ||
              s_dict_value(h, "shape", shape, sizeof shape);
    free(h);
    if (bad)
        return s_err(job, STORE_ERR_INVAL, "%s: .npy header lacks descr, fortran_order "
                     "or shape", path);
    if (!strcmp(descr, "'<f8'"))
        m->f8 = 1;
    else if (strcmp(descr, "'<f4'"))
        return s_err(job, STORE_ERR_INVAL, "%s: dtype %s; expected float32 ('<f4'), "
                     "e.g. np.save(path, E.astype(np.float32))", path, descr);
    if (strcmp(order, "False"))
        return s_err(job, STORE_ERR_INVAL, "%s: a Fortran-order array; save "
                     "np.ascontiguousarray(E) instead", path);
    long long r, c;
    if (s_shape2(shape, &r, &c) != 0)
        return s_err(job, STORE_ERR_INVAL, "%s: shape %s; expected a matrix (rows, dim)",
                     path, shape);
    m->rows = r;
    m->cols = c;
    if (c != store_dim(job->db))
        return s_err(job, STORE_ERR_DIM, "%s: rows have %lld values, the database's "
                     "embedding_dim is %d", path, c, store_dim(job->db));
    long long row_bytes = c * (m->f8 ? 8 : 4);   /* c <= STORE_MAX_DIM: no overflow */
    if (r > (LLONG_MAX - data_off) / row_bytes)
        return s_err(job, STORE_ERR_INVAL, "%s: shape %s: more rows than any file can hold",
                     path, shape);
    struct stat st;
    long long want = data_off + r * row_bytes;
    if (fstat(fileno(m->f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size < want)
        return s_err(job, STORE_ERR_INVAL, "%s: truncated: %lld bytes, a (%lld, %lld) "
                     "matrix needs %lld", path, (long long)st.st_size, r, c, want);
    if (fseek(m->f, data_off, SEEK_SET) != 0)
        return s_err(job, STORE_ERR_IO, "%s: %s", path, strerror(errno));
    return STORE_OK;
}

/* Row into out (cols floats). */
static int s_npy_row(store_import_job *job, s_npy *m, int64_t row, float *out, double *tmp)
{
    size_t n = (size_t)m->cols;
    size_t got = m->f8 ? fread(tmp, 8, n, m->f) : fread(out, 4, n, m->f);
    if (got != n)
        return s_err(job, STORE_ERR_IO, "%s: row %lld: %s", m->path, (long long)row,
                     ferror(m->f) ? strerror(errno) : "unexpected end of file");
    if (m->f8)
        for (size_t i = 0; i < n; i++)
            out[i] = (float)tmp[i];
    return STORE_OK;
}

static int s_count_ids(store_import_job *job, const char *ids, int64_t *n)
{
    store_import_rd *rd;
    int rc = store_import_lines_open(job, &rd, ids, job->o->latin1);
    *n = 0;
    while (rc == STORE_OK || rc == STORE_ERR_INVAL) {
        int got = 0;
        rc = store_import_rd_next(rd, &got, job->err);
        if (!got)
            break;
        ++*n;
    }
    store_import_rd_free(&rd);
    return rc == STORE_ERR_INVAL ? STORE_OK : rc;
}

/* seen: ids already listed, with their line: a second row for the same
 * item would silently overwrite the first. */
static int s_row(store_import_job *job, s_npy *m, store_import_rd *rd, int64_t row,
                 float *emb, store_import_map *seen)
{
    char why[400];
    const char *ext;
    size_t len;
    int rc = store_import_line(job, rd, &ext, &len);
    if (rc != STORE_OK)
        return rc;
    if (!ext)
        return store_import_job_fail(job, rd, "empty id");
    int64_t first;
    if (store_import_map_get(seen, ext, len, &first)) {
        snprintf(why, sizeof why, "id '%.200s' is listed twice (lines %lld and %ld): each "
                 "item takes one row", ext, (long long)first, store_import_rd_line(rd));
        return store_import_job_fail(job, rd, why);
    }
    if (store_import_map_put(seen, ext, len, store_import_rd_line(rd)) != STORE_OK)
        return store_import_job_nomem(job);
    for (int64_t i = 0; i < m->cols; i++)
        if (!isfinite(emb[i]))
            return s_err(job, STORE_ERR_INVAL, "%s: row %lld (id '%.200s' at %s:%ld): value "
                         "%lld is %s", m->path, (long long)row, ext,
                         store_import_rd_label(rd), store_import_rd_line(rd),
                         (long long)i + 1, isnan(emb[i]) ? "NaN" : "infinite");
    int64_t id;
    rc = store_import_job_item(job, ext, len, &id);
    if (rc == STORE_OK) {
        rc = store_item_set_embedding(job->db, id, emb, job->err);
        job->st->items_updated++;
    } else if (rc == STORE_ERR_NOTFOUND) {
        rc = store_item_put(job->db, ext, NULL, NULL, emb, job->now, &id, job->err);
        if (rc == STORE_OK)
            rc = store_import_job_item_seen(job, ext, len, id);
        job->st->items_created++;
    }
    if (rc != STORE_OK)
        return rc;
    job->st->embeddings++;
    job->items_changed = 1;
    job->embeddings_from = 1;
    snprintf(job->embed_source, sizeof job->embed_source, "%s", m->path);
    return STORE_OK;
}

int store_import_npy_rows(store_import_job *job, const char *npy_path, const char *ids_path)
{
    s_npy m;
    int rc = s_npy_open(job, &m, npy_path);
    int64_t n_ids = 0;
    if (rc == STORE_OK)
        rc = s_count_ids(job, ids_path, &n_ids);
    if (rc == STORE_OK && n_ids != m.rows)
        rc = s_err(job, STORE_ERR_INVAL, "%s lists %lld ids but %s has %lld rows; they must "
                   "be aligned (row i is the item on line i)", ids_path, (long long)n_ids,
                   npy_path, (long long)m.rows);
    store_import_rd *rd = NULL;
    if (rc == STORE_OK)
        rc = store_import_lines_open(job, &rd, ids_path, job->o->latin1);
    float *emb = NULL;
    double *tmp = NULL;
    store_import_map *seen = NULL;
    if (rc == STORE_OK) {
        emb = malloc((size_t)m.cols * sizeof *emb);
        tmp = malloc((size_t)m.cols * sizeof *tmp);
        seen = store_import_map_new((size_t)m.rows + 1);   /* never full: no forgetting */
        if (!emb || !tmp || !seen)
            rc = store_import_job_nomem(job);
    }
    for (int64_t row = 0; rc == STORE_OK && row < m.rows; row++) {
        int got = 0;
        rc = s_npy_row(job, &m, row, emb, tmp);
        if (rc != STORE_OK)
            break;
        rc = store_import_rd_next(rd, &got, job->err);
        if (!got)
            break;
        job->st->rows++;
        if (rc == STORE_OK)
            rc = s_row(job, &m, rd, row, emb, seen);
        if (rc != STORE_OK)
            rc = store_import_job_bad(job, rd, rc);
        store_import_job_progress(job, rd, (uint64_t)row + 1, 0);
    }
    if (rc == STORE_OK && rd)
        store_import_job_progress(job, rd, (uint64_t)m.rows, 1);
    free(emb);
    free(tmp);
    store_import_map_free(&seen);
    store_import_rd_free(&rd);
    if (m.f)
        fclose(m.f);
    return rc;
}
