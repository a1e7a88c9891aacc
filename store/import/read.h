/* read.h -- the building blocks under the importers: a streaming
 * record reader for CSV and JSONL, field decoding with messages that name the
 * column (UTF-8 checked with util/utf8.h) and a string -> id cache.
 *
 *     store_import_rd *rd;
 *     store_import_rd_opts ro = {.format = STORE_IMPORT_CSV};
 *     if (store_import_rd_open(&rd, "events.csv", &ro, &err) != STORE_OK) ...
 *     static const char *ts_names[] = {"ts", "timestamp", NULL};
 *     int c_ts = store_import_rd_column(rd, NULL, ts_names);     // -1: not in the header
 *     int got;
 *     while (store_import_rd_next(rd, &got, &err) == STORE_OK && got) {
 *         store_import_val v;
 *         store_import_rd_get(rd, c_ts, &v);
 *         int64_t ts;
 *         if (store_import_val_i64(&v, &ts, why, sizeof why) != STORE_OK)
 *             ...  // why = "column ts: 'abc' is not an integer"
 *     }
 *     store_import_rd_free(&rd);
 *
 * Memory is bounded by the longest record (STORE_IMPORT_MAX_RECORD), never by
 * the file: the reader holds one input chunk and one record.  These are
 * internal to store/import/ and its tests; tools use store/import/import.h.
 */
#ifndef STORE_IMPORT_READ_H
#define STORE_IMPORT_READ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store/import/import.h"
#include "store/store.h"
#include "util/utf8.h"

/* A record longer than this is an error, not an allocation: a CSV with an
 * unbalanced quote would otherwise swallow the whole file into memory. */
#define STORE_IMPORT_MAX_RECORD (16u << 20)

/* ---- text ---------------------------------------------------------------- */

/* Trim ASCII blanks (space, tab, CR, LF) from both ends, in place on the
 * pointer and length. */
void store_import_trim(const char **s, size_t *len);

/* Strict number parsers over exactly s[0..len) (no blanks, no trailing
 * text).  Return 0 on success, -1 if the text is not such a number (the
 * float parser accepts what strtod accepts, including nan and inf, so that
 * the caller can name a non-finite value for what it is). */
int store_import_parse_i64(const char *s, size_t len, int64_t *out);
int store_import_parse_double(const char *s, size_t len, double *out);

/* Unix seconds from an ISO-8601 UTC time: "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS"
 * (a space for the T is fine) with an optional "Z" or "+00:00".  -1 if not. */
int store_import_parse_isotime(const char *s, size_t len, int64_t *out);

/* ---- the record reader ---------------------------------------------------- */

typedef struct store_import_rd_opts {
    int format;        /* STORE_IMPORT_CSV or STORE_IMPORT_JSONL (not AUTO) */
    char delim;        /* CSV field separator; 0 = ','; -1 (as char) = none */
    char quote;        /* CSV quote character; 0 = '"'; -1 (as char) = none */
    int no_header;     /* CSV: the first row is data, columns by number */
    int latin1;        /* transcode Latin-1 input to UTF-8 as it is read */
    const char *label; /* name used in messages; NULL = the path */
} store_import_rd_opts;

typedef struct store_import_rd store_import_rd;

/* Open path for reading records.  The CSV header (unless no_header) is read
 * here; an empty file is fine (no records).  STORE_ERR_IO if the file cannot
 * be opened, STORE_ERR_INVAL if the header is malformed. */
int store_import_rd_open(store_import_rd **out, const char *path,
                         const store_import_rd_opts *opts, store_err *err);
/* Accepts NULL; closes the file; sets *rd_p = NULL. */
void store_import_rd_free(store_import_rd **rd_p);

/* Find a column.  spec (the user's --col-X, may be NULL) wins: a header name,
 * or for CSV a 1-based column number when no header name matches.  Without
 * spec the first of the NULL-terminated defaults present is taken.  Returns a
 * handle >= 0, or -1 when a CSV header has no such column (JSONL keys are
 * looked up per record, so JSONL never returns -1).  STORE_ERR_NOMEM is
 * reported as -2. */
int store_import_rd_column(store_import_rd *rd, const char *spec,
                           const char *const *defaults);

/* Read the next record.  STORE_OK with *got = 1 (a record) or 0 (end of
 * file).  STORE_ERR_INVAL: this record is malformed (unterminated quote,
 * wrong field count, invalid JSON, invalid UTF-8, too long); err says
 * "label:line: reason" and the reader has moved past it, so the caller may
 * skip it and go on.  STORE_ERR_IO / STORE_ERR_NOMEM: give up. */
int store_import_rd_next(store_import_rd *rd, int *got, store_err *err);

/* Line on which the current record starts (1-based), and "label". */
long store_import_rd_line(const store_import_rd *rd);
const char *store_import_rd_label(const store_import_rd *rd);

/* The current record's bytes as read (after Latin-1 transcoding), with its
 * line terminator; borrowed until the next call to _next. */
const char *store_import_rd_raw(const store_import_rd *rd, size_t *len);
/* The header row as read, or NULL (JSONL, no_header); borrowed. */
const char *store_import_rd_header_raw(const store_import_rd *rd, size_t *len);

/* Input bytes consumed so far and the file size (0 when unknown: a pipe). */
uint64_t store_import_rd_bytes(const store_import_rd *rd);
uint64_t store_import_rd_size(const store_import_rd *rd);

/* ---- field values --------------------------------------------------------- */

enum store_import_vkind {
    STORE_IMPORT_V_ABSENT = 0, /* JSONL key missing, or column handle -1 */
    STORE_IMPORT_V_NULL,       /* JSON null */
    STORE_IMPORT_V_STR,        /* a CSV field or a JSON string */
    STORE_IMPORT_V_NUM,        /* a JSON number */
    STORE_IMPORT_V_ARR,        /* a JSON array */
    STORE_IMPORT_V_OTHER,      /* a JSON bool or object */
};

typedef struct store_import_val {
    int kind;           /* enum store_import_vkind */
    const char *s;      /* V_STR: the bytes, NUL-terminated; borrowed */
    size_t len;         /* V_STR: length */
    double num;         /* V_NUM */
    const void *arr;    /* V_ARR: the cJSON array; borrowed */
    const char *name;   /* the column's name in the file, for messages */
    char buf[32];       /* V_NUM rendered as text by store_import_val_str */
} store_import_val;

/* The value of column col in the current record (col -1 gives V_ABSENT). */
void store_import_rd_get(store_import_rd *rd, int col, store_import_val *v);

/* Decoders.  Each returns STORE_OK, or STORE_ERR_INVAL with why set to
 * "column NAME: reason" (why may be NULL).  "Empty" means absent, null or an
 * empty string; *present tells the optional ones apart. */

/* A string (an integral JSON number is rendered as its digits).  trim drops
 * ASCII blanks at both ends.  The result is NUL-terminated and borrowed from
 * v or the record.  Checks UTF-8.  *s = NULL, *len = 0 when empty. */
int store_import_val_str(store_import_val *v, int trim, const char **s, size_t *len,
                         char *why, size_t why_len);
int store_import_val_i64(store_import_val *v, int64_t *out, int *present,
                         char *why, size_t why_len);
/* Unix seconds: an integer, or an ISO-8601 UTC time. */
int store_import_val_time(store_import_val *v, int64_t *out, int *present,
                          char *why, size_t why_len);
/* A finite float. */
int store_import_val_f32(store_import_val *v, float *out, int *present,
                         char *why, size_t why_len);
/* A vector of exactly dim finite floats: a JSON array of numbers, or text
 * with numbers separated by blanks, commas or semicolons, optionally inside
 * [ ].  *present = 0 when empty (no embedding). */
int store_import_val_vec(store_import_val *v, int dim, float *out, int *present,
                         char *why, size_t why_len);

/* ---- string -> id cache ----------------------------------------------------
 * Open addressing over 64-bit hashes, keys copied into a chunked pool.  When
 * it holds max entries it is emptied and starts again: a cache, so memory
 * stays bounded on any catalog, and a miss only costs one indexed lookup. */
typedef struct store_import_map store_import_map;

store_import_map *store_import_map_new(size_t max);   /* NULL on out-of-memory */
void store_import_map_free(store_import_map **map_p); /* accepts NULL */
/* 1 and *val if key is present, else 0. */
int store_import_map_get(const store_import_map *map, const char *key, size_t len,
                         int64_t *val);
/* Insert or replace; STORE_OK or STORE_ERR_NOMEM (the map is then unchanged). */
int store_import_map_put(store_import_map *map, const char *key, size_t len, int64_t val);
size_t store_import_map_count(const store_import_map *map);

/* FNV-1a 64 over bytes, mixed with seed. */
uint64_t store_import_hash(const void *data, size_t len, uint64_t seed);

#endif
