/* rd.c -- streaming CSV and JSONL records for the importers.
 *
 * One reader holds one input chunk (read with fread, transcoded from Latin-1
 * when asked) and the current record: its raw bytes (for the rejects file)
 * and, for CSV, its decoded fields packed NUL-separated in one buffer.  The
 * CSV side is RFC 4180: fields may be quoted, a doubled quote inside quotes
 * is one quote, quoted fields may hold separators and line breaks, records
 * end with LF or CRLF.  Being lenient where files in the wild are sloppy
 * costs nothing (a stray quote inside an unquoted field is kept as text, a
 * blank line is skipped) while everything ambiguous is an error naming the
 * line: an unterminated quote, text after a closing quote, a record whose
 * field count differs from the header's.
 *
 * Line numbers count LF bytes, so a record's number is the line it starts on
 * whatever line breaks its quoted fields hold -- what an editor shows.
 */
#include "store/import/read.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util/json.h"

#define CHUNK (256u << 10)
/* A separator or quote that matches no byte, nor the end of input (-1) nor
 * a failed read (-2): rd->delim and rd->quote when there is none. */
#define S_NO_BYTE (-3)

typedef struct s_col {
    int index;         /* CSV field index, or -1 */
    char **names;      /* JSONL: keys tried in order, NULL-terminated */
    char *name;        /* name shown in messages */
} s_col;

struct store_import_rd {
    FILE *f;
    char label[256];        /* file name in messages */
    int format;             /* STORE_IMPORT_CSV / _JSONL */
    int delim;              /* CSV separator byte, or S_NO_BYTE */
    int quote;              /* CSV quote byte, or S_NO_BYTE */
    int latin1;             /* transcode input */
    /* input */
    unsigned char *in;      /* decoded bytes in[pos..len) not yet consumed */
    size_t pos, len;
    unsigned char *chunk;   /* Latin-1 only: the undecoded chunk */
    size_t chunk_cap;       /* bytes one read asks for (CHUNK, less for a small file) */
    int eof;                /* fread returned 0: no more input */
    int io_error;           /* errno of a failed read, 0 if none */
    uint64_t bytes;         /* file bytes read so far */
    uint64_t size;          /* file size, 0 if unknown */
    long line;              /* line of the next byte, 1-based */
    long rec_line;          /* line where the current record starts */
    /* current record */
    char *raw;              /* its bytes as read */
    size_t raw_len, raw_cap;
    int too_long;           /* raw stopped growing at STORE_IMPORT_MAX_RECORD */
    char *fld;              /* CSV fields, each NUL-terminated */
    size_t fld_len, fld_cap;
    size_t *offs;           /* start of field i in fld */
    size_t *lens;           /* length of field i */
    int nf, nf_cap;         /* fields in this record, and room */
    cJSON *json;            /* JSONL: the parsed object */
    /* header */
    char *hdr_raw;          /* header row as read */
    size_t hdr_len;
    char **hdr;             /* trimmed column names */
    int n_hdr;              /* names in hdr */
    int width;              /* CSV: fields every record must have (0: not yet known) */
    int no_header;
    /* columns asked for */
    s_col *cols;
    int n_cols;
};

static int s_fail(store_import_rd *rd, store_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_fail(store_import_rd *rd, store_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    int n = snprintf(err->msg, sizeof err->msg, "%s:%ld: ", rd->label, rd->rec_line);
    if (n < 0 || (size_t)n >= sizeof err->msg)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- byte source ---------------------------------------------------------- */

static int s_fill(store_import_rd *rd)
{
    if (rd->eof)
        return 0;
    size_t n;
    if (rd->latin1) {
        n = fread(rd->chunk, 1, rd->chunk_cap, rd->f);
        /* Each byte >= 0x80 is the code point of the same value: two bytes
         * of UTF-8.  in has room for the worst case, 2 * chunk_cap. */
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned c = rd->chunk[i];
            if (c < 0x80)
                rd->in[o++] = (unsigned char)c;
            else {
                rd->in[o++] = (unsigned char)(0xC0 | (c >> 6));
                rd->in[o++] = (unsigned char)(0x80 | (c & 0x3F));
            }
        }
        rd->len = o;
    } else {
        n = fread(rd->in, 1, rd->chunk_cap, rd->f);
        rd->len = n;
    }
    rd->pos = 0;
    rd->bytes += n;
    if (n == 0) {
        rd->eof = 1;
        if (ferror(rd->f))
            rd->io_error = errno ? errno : EIO;
        return 0;
    }
    return 1;
}

static inline int s_peek(store_import_rd *rd)
{
    if (rd->pos == rd->len && !s_fill(rd))
        return -1;
    return rd->in[rd->pos];
}

static int s_raw_push(store_import_rd *rd, const unsigned char *p, size_t n)
{
    if (rd->raw_len + n > STORE_IMPORT_MAX_RECORD) {
        rd->too_long = 1;
        return 0;
    }
    if (rd->raw_len + n > rd->raw_cap) {
        size_t cap = rd->raw_cap ? rd->raw_cap : 4096;
        while (cap < rd->raw_len + n)
            cap *= 2;
        char *r = realloc(rd->raw, cap);
        if (!r)
            return -1;
        rd->raw = r;
        rd->raw_cap = cap;
    }
    memcpy(rd->raw + rd->raw_len, p, n);
    rd->raw_len += n;
    return 0;
}

/* Consume one byte into the raw record; -1 at end of input, -2 when out of
 * memory. */
static inline int s_get(store_import_rd *rd)
{
    if (rd->pos == rd->len && !s_fill(rd))
        return -1;
    unsigned char c = rd->in[rd->pos++];
    if (c == '\n')
        rd->line++;
    if (!rd->too_long && rd->raw_len < rd->raw_cap)
        rd->raw[rd->raw_len++] = (char)c;
    else if (s_raw_push(rd, &c, 1) < 0)
        return -2;
    return c;
}

/* ---- open / free ---------------------------------------------------------- */

static void s_cols_free(store_import_rd *rd)
{
    for (int i = 0; i < rd->n_cols; i++) {
        if (rd->cols[i].names)
            for (char **n = rd->cols[i].names; *n; n++)
                free(*n);
        free(rd->cols[i].names);
        free(rd->cols[i].name);
    }
    free(rd->cols);
}

void store_import_rd_free(store_import_rd **rd_p)
{
    if (!rd_p || !*rd_p)
        return;
    store_import_rd *rd = *rd_p;
    if (rd->f)
        fclose(rd->f);
    free(rd->in);
    free(rd->chunk);
    free(rd->raw);
    free(rd->fld);
    free(rd->offs);
    free(rd->lens);
    cJSON_Delete(rd->json);
    free(rd->hdr_raw);
    for (int i = 0; i < rd->n_hdr; i++)
        free(rd->hdr[i]);
    free(rd->hdr);
    s_cols_free(rd);
    free(rd);
    *rd_p = NULL;
}

static int s_csv_record(store_import_rd *rd, int *got, store_err *err);

static int s_read_header(store_import_rd *rd, store_err *err)
{
    int got;
    int rc = s_csv_record(rd, &got, err);
    if (rc != STORE_OK || !got)
        return rc;
    rd->hdr = calloc((size_t)rd->nf, sizeof *rd->hdr);
    rd->hdr_raw = malloc(rd->raw_len + 1);
    if (!rd->hdr || !rd->hdr_raw)
        return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
    memcpy(rd->hdr_raw, rd->raw, rd->raw_len);
    rd->hdr_raw[rd->raw_len] = '\0';
    rd->hdr_len = rd->raw_len;
    for (int i = 0; i < rd->nf; i++) {
        const char *s = rd->fld + rd->offs[i];
        size_t n = rd->lens[i];
        if (util_utf8_prefix(s, n) != n)
            return s_fail(rd, err, STORE_ERR_INVAL,
                          "header column %d: invalid UTF-8 (wrong encoding? try --latin1)",
                          i + 1);
        store_import_trim(&s, &n);
        rd->hdr[i] = strndup(s, n);
        if (!rd->hdr[i])
            return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
        rd->n_hdr = i + 1;
    }
    rd->width = rd->nf;
    return STORE_OK;
}

int store_import_rd_open(store_import_rd **out, const char *path,
                         const store_import_rd_opts *o, store_err *err)
{
    *out = NULL;
    store_import_rd *rd = calloc(1, sizeof *rd);
    if (!rd) {
        if (err) {
            err->code = STORE_ERR_NOMEM;
            snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        }
        return STORE_ERR_NOMEM;
    }
    snprintf(rd->label, sizeof rd->label, "%s", o->label ? o->label : path);
    rd->format = o->format;
    rd->delim = o->delim == (char)-1 ? S_NO_BYTE : o->delim ? (unsigned char)o->delim : ',';
    rd->quote = o->quote == (char)-1 ? S_NO_BYTE : o->quote ? (unsigned char)o->quote : '"';
    rd->latin1 = o->latin1;
    rd->no_header = o->no_header || o->format == STORE_IMPORT_JSONL;
    rd->line = 1;
    rd->rec_line = 1;
    rd->f = fopen(path, "rb");
    if (!rd->f) {
        if (err) {
            err->code = STORE_ERR_IO;
            snprintf(err->msg, sizeof err->msg, "%s: %s", rd->label, strerror(errno));
        }
        store_import_rd_free(&rd);
        return STORE_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(rd->f), &st) == 0 && S_ISREG(st.st_mode))
        rd->size = (uint64_t)st.st_size;
    /* A small file gets a small buffer (one more byte than it holds, so the
     * first read also sees the end); a pipe or a large file, CHUNK. */
    rd->chunk_cap = rd->size && rd->size < CHUNK ? (size_t)rd->size + 1 : CHUNK;
    rd->in = malloc(o->latin1 ? 2 * rd->chunk_cap : rd->chunk_cap);
    rd->chunk = o->latin1 ? malloc(rd->chunk_cap) : NULL;
    if (!rd->in || (o->latin1 && !rd->chunk)) {
        store_import_rd_free(&rd);
        if (err) {
            err->code = STORE_ERR_NOMEM;
            snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        }
        return STORE_ERR_NOMEM;
    }
    /* A UTF-8 byte order mark (spreadsheet exports) is not part of the data. */
    if (!rd->latin1 && s_peek(rd) == 0xEF && rd->len - rd->pos >= 3 &&
        rd->in[rd->pos + 1] == 0xBB && rd->in[rd->pos + 2] == 0xBF)
        rd->pos += 3;
    if (rd->format == STORE_IMPORT_CSV && !rd->no_header) {
        int rc = s_read_header(rd, err);
        if (rc != STORE_OK) {
            store_import_rd_free(&rd);
            return rc;
        }
    }
    *out = rd;
    return STORE_OK;
}

/* ---- CSV ------------------------------------------------------------------ */

static int s_fld_push(store_import_rd *rd, int c)
{
    if (rd->fld_len + 1 >= rd->fld_cap) {
        if (rd->fld_cap >= STORE_IMPORT_MAX_RECORD) {
            rd->too_long = 1;
            return 0;
        }
        size_t cap = rd->fld_cap ? rd->fld_cap * 2 : 4096;
        char *f = realloc(rd->fld, cap);
        if (!f)
            return -1;
        rd->fld = f;
        rd->fld_cap = cap;
    }
    rd->fld[rd->fld_len++] = (char)c;
    return 0;
}

static int s_fld_end(store_import_rd *rd)
{
    if (rd->nf == rd->nf_cap) {
        int cap = rd->nf_cap ? rd->nf_cap * 2 : 32;
        size_t *o = realloc(rd->offs, (size_t)cap * sizeof *o);
        if (!o)
            return -1;
        rd->offs = o;
        size_t *l = realloc(rd->lens, (size_t)cap * sizeof *l);
        if (!l)
            return -1;
        rd->lens = l;
        rd->nf_cap = cap;
    }
    size_t start = rd->nf ? rd->offs[rd->nf - 1] + rd->lens[rd->nf - 1] + 1 : 0;
    if (rd->too_long)
        rd->fld_len = start;     /* keep offsets sane; the record is refused */
    rd->offs[rd->nf] = start;
    rd->lens[rd->nf] = rd->fld_len - start;
    rd->nf++;
    if (s_fld_push(rd, '\0') < 0)
        return -1;
    return 0;
}

/* Parse one record.  The state machine reads byte by byte; bad is the first
 * problem seen, reported once the whole record has been consumed so that the
 * reader is positioned on the next record either way. */
static int s_csv_record(store_import_rd *rd, int *got, store_err *err)
{
    const char *bad = NULL;
    int bad_field = 0;
    for (;;) {
        *got = 0;
        rd->rec_line = rd->line;
        rd->raw_len = 0;
        rd->too_long = 0;
        rd->fld_len = 0;
        rd->nf = 0;
        int c = s_get(rd);
        if (c == -1)
            return rd->io_error ? s_fail(rd, err, STORE_ERR_IO, "read: %s",
                                         strerror(rd->io_error))
                                : STORE_OK;
        /* A blank line is no record (RFC 4180 would call it one empty field,
         * which no importer could use). */
        if (c == '\n')
            continue;
        if (c == '\r' && s_peek(rd) == '\n') {
            s_get(rd);
            continue;
        }
        int end = 0;
        while (!end) {
            /* c is the first byte of a field */
            if (c == rd->quote) {
                for (;;) {
                    c = s_get(rd);
                    if (c == -1) {
                        if (!bad) {
                            bad = "unterminated quoted field (truncated file?)";
                            bad_field = rd->nf + 1;
                        }
                        end = 1;
                        break;
                    }
                    if (c == -2)
                        return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
                    if (c == rd->quote) {
                        if (s_peek(rd) == rd->quote) {
                            s_get(rd);
                            if (s_fld_push(rd, c) < 0)
                                return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
                            continue;
                        }
                        c = s_get(rd);    /* what follows the closing quote */
                        if (c == rd->delim || c == '\n' || c == -1)
                            break;
                        if (c == '\r' && s_peek(rd) == '\n') {
                            c = s_get(rd);
                            break;
                        }
                        if (c == -2)
                            return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
                        if (!bad) {
                            bad = "text after the closing quote (a quote inside a "
                                  "quoted field must be doubled)";
                            bad_field = rd->nf + 1;
                        }
                        /* Fall back to reading the rest as unquoted text. */
                        goto unquoted;
                    }
                    if (s_fld_push(rd, c) < 0)
                        return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
                }
            } else {
            unquoted:
                for (;;) {
                    if (c == rd->delim || c == '\n' || c == -1)
                        break;
                    if (c == '\r' && s_peek(rd) == '\n') {
                        c = s_get(rd);
                        break;
                    }
                    if (c == -2)
                        return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
                    if (s_fld_push(rd, c) < 0)
                        return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
                    c = s_get(rd);
                }
            }
            if (s_fld_end(rd) < 0)
                return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
            if (c == rd->delim) {
                c = s_get(rd);
                if (c == -2)
                    return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
            } else
                end = 1;
        }
        break;
    }
    *got = 1;
    if (rd->io_error)
        return s_fail(rd, err, STORE_ERR_IO, "read: %s", strerror(rd->io_error));
    if (rd->too_long)
        return s_fail(rd, err, STORE_ERR_INVAL, "record longer than %u bytes",
                      STORE_IMPORT_MAX_RECORD);
    if (bad)
        return s_fail(rd, err, STORE_ERR_INVAL, "field %d: %s", bad_field, bad);
    return STORE_OK;
}

/* ---- JSONL ---------------------------------------------------------------- */

static int s_jsonl_record(store_import_rd *rd, int *got, store_err *err)
{
    cJSON_Delete(rd->json);
    rd->json = NULL;
    for (;;) {
        *got = 0;
        rd->rec_line = rd->line;
        rd->raw_len = 0;
        rd->too_long = 0;
        int c;
        while ((c = s_get(rd)) >= 0 && c != '\n')
            ;
        if (c == -2)
            return s_fail(rd, err, STORE_ERR_NOMEM, "out of memory");
        if (rd->io_error)
            return s_fail(rd, err, STORE_ERR_IO, "read: %s", strerror(rd->io_error));
        if (c == -1 && rd->raw_len == 0)
            return STORE_OK;
        *got = 1;
        if (rd->too_long)
            return s_fail(rd, err, STORE_ERR_INVAL, "line longer than %u bytes",
                          STORE_IMPORT_MAX_RECORD);
        size_t n = rd->raw_len;
        const char *s = rd->raw;
        store_import_trim(&s, &n);
        if (n == 0)
            continue;             /* blank line */
        size_t bad = util_utf8_prefix(rd->raw, rd->raw_len);
        if (bad != rd->raw_len)
            return s_fail(rd, err, STORE_ERR_INVAL,
                          "invalid UTF-8 at byte %zu (wrong encoding? try --latin1)",
                          bad + 1);
        size_t nul = util_json_nul_escape(rd->raw, rd->raw_len);
        if (nul != rd->raw_len)
            return s_fail(rd, err, STORE_ERR_INVAL,
                          "a NUL (\\u0000 or a raw zero byte) at byte %zu: ids and text "
                          "cannot hold NUL", nul + 1);
        const char *end = NULL;
        rd->json = cJSON_ParseWithLengthOpts(s, n, &end, 0);
        if (!rd->json) {
            size_t at = end && end >= rd->raw ? (size_t)(end - rd->raw) + 1 : 0;
            return s_fail(rd, err, STORE_ERR_INVAL,
                          "invalid JSON near byte %zu%s", at,
                          c == -1 ? " (truncated line?)" : "");
        }
        /* ParseWithLength stops after the value; anything but blanks after
         * it means two values on one line or garbage. */
        if (end) {
            size_t rest = n - (size_t)(end - s);
            store_import_trim(&end, &rest);
            if (rest) {
                cJSON_Delete(rd->json);
                rd->json = NULL;
                return s_fail(rd, err, STORE_ERR_INVAL,
                              "text after the JSON object at byte %zu",
                              (size_t)(end - rd->raw) + 1);
            }
        }
        if (!cJSON_IsObject(rd->json)) {
            cJSON_Delete(rd->json);
            rd->json = NULL;
            return s_fail(rd, err, STORE_ERR_INVAL, "not a JSON object");
        }
        return STORE_OK;
    }
}

/* ---- records and columns -------------------------------------------------- */

int store_import_rd_next(store_import_rd *rd, int *got, store_err *err)
{
    if (rd->format == STORE_IMPORT_JSONL)
        return s_jsonl_record(rd, got, err);
    int rc = s_csv_record(rd, got, err);
    if (rc != STORE_OK || !*got)
        return rc;
    /* Without a header the first record fixes the width. */
    if (rd->width == 0)
        rd->width = rd->nf;
    if (rd->nf != rd->width)
        return s_fail(rd, err, STORE_ERR_INVAL, "expected %d fields, found %d%s",
                      rd->width, rd->nf, rd->nf < rd->width ? " (truncated line?)" : "");
    return STORE_OK;
}

static int s_all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int s_header_find(const store_import_rd *rd, const char *name)
{
    for (int i = 0; i < rd->n_hdr && rd->hdr; i++)
        if (!strcasecmp(rd->hdr[i], name))
            return i;
    return -1;
}

int store_import_rd_column(store_import_rd *rd, const char *spec,
                           const char *const *defaults)
{
    s_col col = {.index = -1};
    if (rd->format == STORE_IMPORT_JSONL) {
        size_t n = 0;
        if (spec)
            n = 1;
        else
            while (defaults && defaults[n])
                n++;
        col.names = calloc(n + 1, sizeof *col.names);
        if (!col.names)
            return -2;
        for (size_t i = 0; i < n; i++)
            if (!(col.names[i] = strdup(spec ? spec : defaults[i])))
                goto nomem;
        if (!(col.name = strdup(n ? col.names[0] : "?")))
            goto nomem;
    } else {
        if (spec) {
            col.index = s_header_find(rd, spec);
            if (col.index < 0 && s_all_digits(spec)) {
                long k = strtol(spec, NULL, 10);
                /* Without a header the width is not known until the first
                 * record; a column past it is caught as a field-count error. */
                if (k >= 1 && (rd->no_header || k <= rd->n_hdr))
                    col.index = (int)k - 1;
            }
        } else
            for (size_t i = 0; defaults && defaults[i] && col.index < 0; i++)
                col.index = s_header_find(rd, defaults[i]);
        if (col.index < 0)
            return -1;
        char num[16];
        snprintf(num, sizeof num, "%d", col.index + 1);
        col.name = strdup(rd->hdr && col.index < rd->n_hdr ? rd->hdr[col.index] : num);
        if (!col.name)
            return -2;
    }
    s_col *cols = realloc(rd->cols, (size_t)(rd->n_cols + 1) * sizeof *cols);
    if (!cols)
        goto nomem;
    rd->cols = cols;
    rd->cols[rd->n_cols] = col;
    return rd->n_cols++;
nomem:
    if (col.names)
        for (char **p = col.names; *p; p++)
            free(*p);
    free(col.names);
    free(col.name);
    return -2;
}

void store_import_rd_get(store_import_rd *rd, int col, store_import_val *v)
{
    memset(v, 0, sizeof *v);
    v->kind = STORE_IMPORT_V_ABSENT;
    v->name = "?";
    if (col < 0 || col >= rd->n_cols)
        return;
    s_col *c = &rd->cols[col];
    v->name = c->name;
    if (rd->format == STORE_IMPORT_CSV) {
        if (c->index >= rd->nf)
            return;
        v->kind = STORE_IMPORT_V_STR;
        v->s = rd->fld + rd->offs[c->index];
        v->len = rd->lens[c->index];
        return;
    }
    if (!rd->json)
        return;
    const cJSON *j = NULL;
    for (char **n = c->names; *n && !j; n++) {
        j = cJSON_GetObjectItem(rd->json, *n);   /* like CSV headers: any case */
        if (j)
            v->name = *n;
    }
    if (!j)
        return;
    if (cJSON_IsNull(j))
        v->kind = STORE_IMPORT_V_NULL;
    else if (cJSON_IsString(j)) {
        v->kind = STORE_IMPORT_V_STR;
        v->s = j->valuestring;
        v->len = strlen(j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        v->kind = STORE_IMPORT_V_NUM;
        v->num = j->valuedouble;
    } else if (cJSON_IsArray(j)) {
        v->kind = STORE_IMPORT_V_ARR;
        v->arr = j;
    } else
        v->kind = STORE_IMPORT_V_OTHER;
}

long store_import_rd_line(const store_import_rd *rd)
{
    return rd->rec_line;
}

const char *store_import_rd_label(const store_import_rd *rd)
{
    return rd->label;
}

const char *store_import_rd_raw(const store_import_rd *rd, size_t *len)
{
    *len = rd->raw_len;
    return rd->raw ? rd->raw : "";
}

const char *store_import_rd_header_raw(const store_import_rd *rd, size_t *len)
{
    *len = rd->hdr_len;
    return rd->hdr_raw;
}

uint64_t store_import_rd_bytes(const store_import_rd *rd)
{
    return rd->bytes;
}

uint64_t store_import_rd_size(const store_import_rd *rd)
{
    return rd->size;
}
