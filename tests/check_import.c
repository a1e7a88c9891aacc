/* check_import.c -- the importers: CSV and JSONL items and events, .npy
 * embeddings, sequence files, every MovieLens layout, every error path, all-or-nothing,
 * --skip-bad, and a SIGKILL in the middle of an import.
 *
 * Every input file is written by the test into tu_tmpdir(), in the same
 * layouts as the real files (MovieLens's licence forbids copying its data
 * anywhere near the repository).  "Unchanged" is checked two ways: a digest
 * of every row of every table, and the bytes of the database file.
 */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/import/import.h"
#include "store/import/read.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tests/testutil.h"
#include "util/utf8.h"

#define DIM 4

/* ---- helpers -------------------------------------------------------------- */

static const char *s_fresh(const char *name, int dim)
{
    const char *path = tu_path(name);
    char side[600];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    store_err err = {0};
    ck_assert_msg(store_init(path, dim, &err) == STORE_OK, "init %s: %s", path, err.msg);
    return path;
}

static store *s_open(const char *path)
{
    store *db = NULL;
    store_err err = {0};
    ck_assert_msg(store_open(&db, path, STORE_READWRITE, 2000, &err) == STORE_OK, "open: %s",
                  err.msg);
    return db;
}

static void s_write(const char *name, const char *text)
{
    tu_write_file(tu_path(name), text, strlen(text));
}

static int64_t s_int(store *db, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(store_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A string from a query into a static buffer ("" for NULL). */
static const char *s_str(store *db, const char *sql)
{
    static char buf[1024];
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(store_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    const char *s = (const char *)sqlite3_column_text(st, 0);
    snprintf(buf, sizeof buf, "%s", s ? s : "");
    sqlite3_finalize(st);
    return buf;
}

/* Embedding of an item as floats; returns the number of floats. */
static int s_emb(store *db, const char *ext, float *out)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(store_sqlite(db),
                                        "SELECT embedding FROM items WHERE ext_id = ?1", -1,
                                        &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, ext, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_bytes(st, 0) / 4;
    if (n)
        memcpy(out, sqlite3_column_blob(st, 0), (size_t)n * 4);
    sqlite3_finalize(st);
    return n;
}

/* FNV-1a digest of every row of every table, in a fixed order. */
static uint64_t s_digest(store *db)
{
    static const char *const q[] = {
        "SELECT key, value FROM meta ORDER BY key",
        "SELECT item_id, ext_id, updated_at, embedding, title, text FROM items ORDER BY item_id",
        "SELECT user_id, ext_id FROM users ORDER BY user_id",
        "SELECT user_id, item_id, ts, kind, weight FROM interactions "
        "ORDER BY user_id, ts, item_id, kind",
        "SELECT version, active, d_model FROM models ORDER BY version",
    };
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t t = 0; t < sizeof q / sizeof q[0]; t++) {
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(store_sqlite(db), q[t], -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const unsigned char *p = sqlite3_column_blob(st, c);
                int n = sqlite3_column_bytes(st, c);
                for (int i = 0; i < n; i++)
                    h = (h ^ p[i]) * 0x100000001b3ull;
                h = (h ^ 0xff) * 0x100000001b3ull;
            }
        sqlite3_finalize(st);
    }
    return h;
}

static uint64_t s_digest_path(const char *path)
{
    store *db = s_open(path);
    uint64_t h = s_digest(db);
    store_close(&db);
    return h;
}

/* The whole file, malloc'd; *len its size. */
static char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = '\0';
    *len = (size_t)n;
    return b;
}

/* A database with items i1..i3 (DIM-float embeddings) committed. */
static const char *s_with_items(const char *name)
{
    const char *path = s_fresh(name, DIM);
    s_write("base_items.csv", "id,title,text,embedding\n"
                              "i1,One,first item,1 0 0 0\n"
                              "i2,Two,second item,0 1 0 0\n"
                              "i3,Three,third item,0 0 1 0\n");
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    ck_assert_msg(store_import_items(db, tu_path("base_items.csv"), &o, &st, &err) == STORE_OK,
                  "%s", err.msg);
    store_close(&db);
    return path;
}

/* Run an events import expected to fail; check the message and that the
 * database (rows and file bytes) did not change. */
static void s_events_fail(const char *file, const char *text, const char *want1,
                          const char *want2)
{
    const char *path = s_with_items("fail.db");
    char dbpath[600];
    snprintf(dbpath, sizeof dbpath, "%s", path);
    s_write(file, text);
    uint64_t before = s_digest_path(dbpath);
    size_t n0, n1;
    char *bytes0 = s_slurp(dbpath, &n0);

    store *db = s_open(dbpath);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    int rc = store_import_events(db, tu_path(file), &o, &st, &err);
    ck_assert_int_ne(rc, STORE_OK);
    ck_assert_msg(strstr(err.msg, want1), "'%s' lacks '%s'", err.msg, want1);
    if (want2)
        ck_assert_msg(strstr(err.msg, want2), "'%s' lacks '%s'", err.msg, want2);
    ck_assert_uint_eq(s_digest(db), before);
    store_close(&db);

    char *bytes1 = s_slurp(dbpath, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_msg(memcmp(bytes0, bytes1, n0) == 0, "database file bytes changed");
    free(bytes0);
    free(bytes1);
}

/* ---- the CSV reader ---------------------------------------------------------- */

START_TEST(test_csv_rfc4180)
{
    /* BOM, quoted separators, doubled quotes, a line break inside quotes,
     * CRLF endings, a blank line, an empty last field, no final newline. */
    s_write("rfc.csv", "\xEF\xBB\xBF" "a,b,c\r\n"
                       "1,\"x,y\",\"say \"\"hi\"\"\"\r\n"
                       "\r\n"
                       "2,\"two\nlines\",\r\n"
                       "3,plain,last");
    store_import_rd *rd;
    store_import_rd_opts ro = {.format = STORE_IMPORT_CSV};
    store_err err = {0};
    ck_assert_int_eq(store_import_rd_open(&rd, tu_path("rfc.csv"), &ro, &err), STORE_OK);
    static const char *const a_names[] = {"a", NULL};
    int ca = store_import_rd_column(rd, NULL, a_names);
    int cb = store_import_rd_column(rd, "B", NULL);      /* header match ignores case */
    int cc = store_import_rd_column(rd, "3", NULL);      /* by number */
    ck_assert_int_eq(ca, 0);
    ck_assert_int_ge(cb, 0);
    ck_assert_int_ge(cc, 0);
    ck_assert_int_eq(store_import_rd_column(rd, "zz", NULL), -1);

    static const char *const want[][3] = {
        {"1", "x,y", "say \"hi\""}, {"2", "two\nlines", ""}, {"3", "plain", "last"}};
    static const long lines[] = {2, 4, 6};
    for (int r = 0; r < 3; r++) {
        int got;
        ck_assert_int_eq(store_import_rd_next(rd, &got, &err), STORE_OK);
        ck_assert_int_eq(got, 1);
        ck_assert_int_eq(store_import_rd_line(rd), lines[r]);
        int cols[3] = {ca, cb, cc};
        for (int c = 0; c < 3; c++) {
            store_import_val v;
            store_import_rd_get(rd, cols[c], &v);
            ck_assert_int_eq(v.kind, STORE_IMPORT_V_STR);
            ck_assert_str_eq(v.s, want[r][c]);
        }
    }
    int got;
    ck_assert_int_eq(store_import_rd_next(rd, &got, &err), STORE_OK);
    ck_assert_int_eq(got, 0);
    store_import_rd_free(&rd);
    ck_assert_ptr_null(rd);
}
END_TEST

START_TEST(test_csv_malformed)
{
    /* Each bad record is reported with its line and skipped over, so the
     * reader can go on (what --skip-bad needs). */
    s_write("bad.csv", "a,b\n"
                       "1,\"oops\"x\n"
                       "2\n"
                       "3,4,5\n"
                       "6,ok\n"
                       "7,\"never closed\n8,9\n");
    store_import_rd *rd;
    store_import_rd_opts ro = {.format = STORE_IMPORT_CSV};
    store_err err = {0};
    ck_assert_int_eq(store_import_rd_open(&rd, tu_path("bad.csv"), &ro, &err), STORE_OK);
    int got;
    ck_assert_int_eq(store_import_rd_next(rd, &got, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "bad.csv:2: field 2: text after the closing quote"), "%s",
                  err.msg);
    ck_assert_int_eq(store_import_rd_next(rd, &got, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, ":3: expected 2 fields, found 1 (truncated line?)"), "%s",
                  err.msg);
    ck_assert_int_eq(store_import_rd_next(rd, &got, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, ":4: expected 2 fields, found 3"), "%s", err.msg);
    ck_assert_int_eq(store_import_rd_next(rd, &got, &err), STORE_OK);
    ck_assert_int_eq(store_import_rd_line(rd), 5);
    ck_assert_int_eq(store_import_rd_next(rd, &got, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, ":6: field 2: unterminated quoted field"), "%s", err.msg);
    ck_assert_int_eq(store_import_rd_next(rd, &got, &err), STORE_OK);
    ck_assert_int_eq(got, 0);
    store_import_rd_free(&rd);
}
END_TEST

START_TEST(test_text_helpers)
{
    ck_assert_uint_eq(util_utf8_prefix("abc\xC3\xA9", 5), 5);
    ck_assert_uint_eq(util_utf8_prefix("ab\xC3", 3), 2);          /* cut short */
    ck_assert_uint_eq(util_utf8_prefix("\xC0\xAF", 2), 0);        /* overlong */
    ck_assert_uint_eq(util_utf8_prefix("x\xED\xA0\x80", 4), 1);   /* surrogate */
    ck_assert_uint_eq(util_utf8_prefix("\xF4\x90\x80\x80", 4), 0); /* > U+10FFFF */
    ck_assert_uint_eq(util_utf8_prefix("\xF0\x9F\x98\x80", 4), 4);
    int64_t v;
    ck_assert_int_eq(store_import_parse_i64("-9223372036854775808", 20, &v), 0);
    ck_assert(v == INT64_MIN);
    ck_assert_int_eq(store_import_parse_i64("9223372036854775808", 19, &v), -1);
    ck_assert_int_eq(store_import_parse_i64("12a", 3, &v), -1);
    ck_assert_int_eq(store_import_parse_isotime("1970-01-02T00:00:01Z", 20, &v), 0);
    ck_assert_int_eq(v, 86401);
    ck_assert_int_eq(store_import_parse_isotime("2023-02-31", 10, &v), -1);

    store_import_map *m = store_import_map_new(3);
    ck_assert_ptr_nonnull(m);
    char key[16];
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(store_import_map_put(m, key, strlen(key), i * 10), STORE_OK);
    }
    ck_assert_int_eq(store_import_map_get(m, "k1", 2, &v), 1);
    ck_assert_int_eq(v, 10);
    /* Full: the cache empties itself rather than grow past its bound. */
    ck_assert_int_eq(store_import_map_put(m, "k9", 2, 90), STORE_OK);
    ck_assert_uint_eq(store_import_map_count(m), 1);
    ck_assert_int_eq(store_import_map_get(m, "k1", 2, &v), 0);
    store_import_map_free(&m);
    ck_assert_ptr_null(m);
}
END_TEST

/* ---- formats ------------------------------------------------------------------- */

START_TEST(test_items_csv)
{
    const char *path = s_with_items("items_csv.db");
    store *db = s_open(path);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 3);
    ck_assert_str_eq(s_str(db, "SELECT title FROM items WHERE ext_id = 'i2'"), "Two");
    ck_assert_str_eq(s_str(db, "SELECT text FROM items WHERE ext_id = 'i2'"), "second item");
    float e[DIM];
    ck_assert_int_eq(s_emb(db, "i2", e), DIM);
    ck_assert(e[0] == 0 && e[1] == 1 && e[2] == 0 && e[3] == 0);
    int64_t cv0 = s_int(db, "SELECT CAST(value AS INTEGER) FROM meta "
                            "WHERE key = 'catalog_version'");
    ck_assert_int_ge(cv0, 1);

    /* Columns by flag, another separator, upserts that keep item_id: i2
     * unchanged keeps its embedding, i3's new text makes its embedding
     * stale (NULL, store_item_put's rule), i4 is new. */
    int64_t id2 = s_int(db, "SELECT item_id FROM items WHERE ext_id = 'i2'");
    s_write("items2.txt", "key;name;body\ni2;Two;second item\ni3;Three;new text\ni4;Four;\n");
    store_import_opts o = store_import_defaults();
    o.format = STORE_IMPORT_CSV;
    o.delim = ';';
    o.col_id = "key";
    o.col_title = "name";
    o.col_text = "body";
    store_import_stats st;
    store_err err = {0};
    ck_assert_msg(store_import_items(db, tu_path("items2.txt"), &o, &st, &err) == STORE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(st.items_created, 1);
    ck_assert_int_eq(st.items_updated, 2);
    ck_assert_int_eq(s_int(db, "SELECT item_id FROM items WHERE ext_id = 'i2'"), id2);
    ck_assert_int_eq(s_emb(db, "i2", e), DIM);
    ck_assert_str_eq(s_str(db, "SELECT text FROM items WHERE ext_id = 'i3'"), "new text");
    ck_assert_int_eq(s_emb(db, "i3", e), 0);
    ck_assert_int_eq(s_emb(db, "i4", e), 0);           /* not embedded yet */
    ck_assert_int_eq(s_int(db, "SELECT CAST(value AS INTEGER) FROM meta "
                               "WHERE key = 'catalog_version'"), cv0 + 1);

    /* A flag naming a column the header lacks is an error before any row. */
    o.col_title = "nope";
    ck_assert_int_eq(store_import_items(db, tu_path("items2.txt"), &o, &st, &err),
                     STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "no title column") && strstr(err.msg, "--col-title"), "%s",
                  err.msg);
    store_close(&db);
}
END_TEST

START_TEST(test_items_jsonl)
{
    const char *path = s_fresh("items_jsonl.db", DIM);
    /* Numeric ids, arrays, a text-form embedding, null title (keep), an
     * object spread over keys in any order, a blank line. */
    s_write("items.jsonl",
            "{\"id\": 10, \"title\": \"Ten\", \"text\": \"caf\\u00e9 au lait\", "
            "\"embedding\": [0.5, 0.5, 0.5, 0.5]}\n"
            "\n"
            "{\"embedding\": \"[1, 2, 3, 4]\", \"ext_id\": \"x-2\", \"title\": null}\n"
            "{\"id\": \"x-3\", \"text\": \"no vector\"}");
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    ck_assert_msg(store_import_items(db, tu_path("items.jsonl"), &o, &st, &err) == STORE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(st.rows, 3);
    ck_assert_int_eq(st.items_created, 3);
    ck_assert_int_eq(st.embeddings, 2);
    ck_assert_str_eq(s_str(db, "SELECT text FROM items WHERE ext_id = '10'"),
                     "caf\xC3\xA9 au lait");
    float e[DIM];
    ck_assert_int_eq(s_emb(db, "x-2", e), DIM);
    ck_assert(e[3] == 4.0f);
    ck_assert_int_eq(s_emb(db, "x-3", e), 0);
    /* External embeddings are recorded as such. */
    ck_assert_msg(strstr(s_str(db, "SELECT value FROM meta WHERE key = 'embedder'"),
                         "\"imported\""), "embedder meta");
    store_close(&db);
}
END_TEST

START_TEST(test_events_csv_jsonl)
{
    const char *path = s_with_items("events.db");
    s_write("ev.csv", "user,item,ts,kind,weight\n"
                      "u1,i1,100,view,1\n"
                      "u1,i2,200,,\n"                      /* default kind and weight */
                      "u2,i1,1970-01-01T00:05:00Z,buy,2.5\n"
                      "u1,i1,100,view,3\n");               /* duplicate: replaces weight */
    s_write("ev.jsonl", "{\"user_id\": \"u3\", \"item_id\": \"i3\", \"timestamp\": 400, "
                        "\"kind\": \"view\", \"weight\": 0.5}\n"
                        "{\"user_id\": 7, \"item_id\": \"i3\", \"timestamp\": \"500\"}\n");
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    ck_assert_msg(store_import_events(db, tu_path("ev.csv"), &o, &st, &err) == STORE_OK, "%s",
                  err.msg);
    ck_assert_int_eq(st.events, 4);
    ck_assert_int_eq(st.users_created, 2);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions"), 3);
    ck_assert_int_eq(s_int(db, "SELECT CAST(weight * 10 AS INTEGER) FROM interactions i "
                               "JOIN users u USING (user_id) JOIN items t USING (item_id) "
                               "WHERE u.ext_id = 'u1' AND t.ext_id = 'i1'"), 30);
    ck_assert_str_eq(s_str(db, "SELECT kind FROM interactions WHERE ts = 200"), "view");
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions WHERE ts = 300 "
                               "AND kind = 'buy' AND weight = 2.5"), 1);
    int64_t cv = s_int(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'catalog_version'");

    ck_assert_msg(store_import_events(db, tu_path("ev.jsonl"), &o, &st, &err) == STORE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(st.events, 2);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users"), 4);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions i JOIN users u "
                               "USING (user_id) WHERE u.ext_id = '7' AND ts = 500"), 1);
    /* Events do not change the catalog. */
    ck_assert_int_eq(s_int(db, "SELECT CAST(value AS INTEGER) FROM meta "
                               "WHERE key = 'catalog_version'"), cv);
    store_close(&db);
}
END_TEST

/* A .npy file: version 1 header padded to 64 bytes, then the data. */
static void s_npy(const char *name, const char *descr, int rows, int cols, const void *data,
                  size_t elem)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': "
                     "(%d, %d), }", descr, rows, cols);
    size_t total = 64;
    while (10 + (size_t)n + 1 > total)
        total += 64;
    memset(hdr + n, ' ', total - 10 - (size_t)n);
    hdr[total - 10 - 1] = '\n';
    size_t hl = total - 10;
    size_t len = total + (size_t)rows * (size_t)cols * elem;
    unsigned char *buf = malloc(len);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    memcpy(buf + 10, hdr, hl);
    memcpy(buf + total, data, (size_t)rows * (size_t)cols * elem);
    tu_write_file(tu_path(name), buf, len);
    free(buf);
}

/* Headers that are not a 2-d float matrix in a closed dict are refused,
 * naming the problem, before anything is read. */
START_TEST(test_npy_bad_headers)
{
    const char *path = s_with_items("npyhdr.db");
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    s_write("one.ids", "i1\n");
    o.ids_path = tu_path("one.ids");
    const struct { const char *hdr, *why; } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4, 2), }", "expected a matrix"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", "expected a matrix"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), ", "dict literal"},
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (1, 4), }", "float32"},
        /* Found by the fuzzer: a row count past 2^63 or times the row size. */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 4), }",
         "expected a matrix"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 4), }",
         "more rows than any file can hold"},
    };
    float row[DIM] = {1, 2, 3, 4};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char hdr[118];
        memset(hdr, ' ', sizeof hdr);
        memcpy(hdr, cases[i].hdr, strlen(cases[i].hdr));
        hdr[sizeof hdr - 1] = '\n';
        unsigned char buf[128 + sizeof row];
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = (unsigned char)sizeof hdr;
        buf[9] = 0;
        memcpy(buf + 10, hdr, sizeof hdr);
        memcpy(buf + 128, row, sizeof row);
        tu_write_file(tu_path("bad.npy"), buf, sizeof buf);
        o.npy_path = tu_path("bad.npy");
        ck_assert_int_eq(store_import_items(db, NULL, &o, &st, &err), STORE_ERR_INVAL);
        ck_assert_msg(strstr(err.msg, cases[i].why), "case %zu: %s", i, err.msg);
    }
    store_close(&db);
}
END_TEST

START_TEST(test_npy)
{
    const char *path = s_with_items("npy.db");
    float m[3][DIM] = {{1, 2, 3, 4}, {5, 6, 7, 8}, {-1, -2, -3, -4}};
    s_npy("emb.npy", "<f4", 3, DIM, m, 4);
    s_write("emb.ids", "i3\ni1\nnew\n");
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    o.npy_path = tu_path("emb.npy");
    o.ids_path = tu_path("emb.ids");
    store_import_stats st;
    store_err err = {0};
    ck_assert_msg(store_import_items(db, NULL, &o, &st, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(st.embeddings, 3);
    ck_assert_int_eq(st.items_created, 1);
    float e[DIM];
    ck_assert_int_eq(s_emb(db, "i3", e), DIM);
    ck_assert(e[0] == 1 && e[3] == 4);
    ck_assert_int_eq(s_emb(db, "i1", e), DIM);
    ck_assert(e[0] == 5 && e[3] == 8);
    ck_assert_int_eq(s_emb(db, "new", e), DIM);
    ck_assert(e[2] == -3);

    /* float64 is converted. */
    double d[1][DIM] = {{0.25, 0.5, 0.75, 1}};
    s_npy("emb8.npy", "<f8", 1, DIM, d, 8);
    s_write("emb8.ids", "i2\n");
    o.npy_path = tu_path("emb8.npy");
    o.ids_path = tu_path("emb8.ids");
    ck_assert_msg(store_import_items(db, NULL, &o, &st, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(s_emb(db, "i2", e), DIM);
    ck_assert(e[1] == 0.5f);

    uint64_t before = s_digest(db);
    /* Misaligned ids, a wrong width, a NaN: errors, nothing written. */
    s_write("short.ids", "i1\ni2\n");
    o.npy_path = tu_path("emb.npy");
    o.ids_path = tu_path("short.ids");
    ck_assert_int_eq(store_import_items(db, NULL, &o, &st, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "lists 2 ids") && strstr(err.msg, "has 3 rows"), "%s",
                  err.msg);
    float w[2][DIM + 1] = {{0}};
    s_npy("wide.npy", "<f4", 2, DIM + 1, w, 4);
    o.npy_path = tu_path("wide.npy");
    ck_assert_int_eq(store_import_items(db, NULL, &o, &st, &err), STORE_ERR_DIM);
    ck_assert_msg(strstr(err.msg, "rows have 5 values") && strstr(err.msg, "embedding_dim is 4"),
                  "%s", err.msg);
    m[1][2] = NAN;
    s_npy("nan.npy", "<f4", 3, DIM, m, 4);
    o.npy_path = tu_path("nan.npy");
    o.ids_path = tu_path("emb.ids");
    ck_assert_int_eq(store_import_items(db, NULL, &o, &st, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "row 1 (id 'i1'") && strstr(err.msg, "value 3 is NaN"), "%s",
                  err.msg);
    ck_assert_uint_eq(s_digest(db), before);
    /* An id listed twice would silently keep the last row. */
    m[1][2] = 7;
    s_npy("dup.npy", "<f4", 3, DIM, m, 4);
    s_write("dup.ids", "i3\ni1\ni3\n");
    o.npy_path = tu_path("dup.npy");
    o.ids_path = tu_path("dup.ids");
    ck_assert_int_eq(store_import_items(db, NULL, &o, &st, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "'i3' is listed twice (lines 1 and 3)"), "%s", err.msg);
    ck_assert_uint_eq(s_digest(db), before);
    store_close(&db);
}
END_TEST

/* The ml-100k layout, generated: u.genre, u.item (Latin-1), u.data. */
static void s_ml100k(const char *dir, int users, int items, int events)
{
    char path[600];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/u.genre", dir);
    static const char genres[] = "unknown|0\nAction|1\nComedy|2\nDrama|3\n\n";
    tu_write_file(path, genres, strlen(genres));
    snprintf(path, sizeof path, "%s/u.item", dir);
    FILE *f = fopen(path, "wb");
    for (int i = 1; i <= items; i++)
        /* Item 2's title is Latin-1: 0xE9 is e-acute. */
        fprintf(f, "%d|%s (199%d)|01-Jan-1995||http://x/%d|%d|%d|%d|%d\n", i,
                i == 2 ? "Mis\xE9rables, Les" : i % 2 ? "Action Film" : "Funny Drama",
                i % 10, i, 0, i % 2, !(i % 2), i % 3 == 0);
    fclose(f);
    snprintf(path, sizeof path, "%s/u.data", dir);
    f = fopen(path, "wb");
    tu_rng r = {42};
    for (int e = 0; e < events; e++)
        fprintf(f, "%d\t%d\t%d\t%d\n", 1 + e % users, 1 + (int)(tu_next(&r) % (uint64_t)items),
                1 + e % 5, 880000000 + e);
    fclose(f);
}

START_TEST(test_movielens_100k)
{
    const char *dir = tu_path("ml100k");
    s_ml100k(dir, 30, 40, 2000);
    const char *path = s_fresh("ml100k.db", 8);
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    ck_assert_int_eq(store_import_movielens_layout(dir), 1);
    ck_assert_msg(store_import_movielens(db, dir, &o, &st, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 40);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users"), 30);
    ck_assert_int_eq(st.events, 2000);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions WHERE kind = 'rating' "
                               "AND weight = 1"), s_int(db, "SELECT count(*) FROM interactions"));
    ck_assert_str_eq(s_str(db, "SELECT title FROM items WHERE ext_id = '2'"),
                     "Mis\xC3\xA9rables, Les (1992)");
    ck_assert_str_eq(s_str(db, "SELECT text FROM items WHERE ext_id = '3'"),
                     "Action Film (1993). Action, Drama");
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items WHERE embedding IS NOT NULL"), 0);
    store_close(&db);
}
END_TEST

START_TEST(test_movielens_csv)
{
    const char *dir = tu_path("mlcsv");
    char p[600];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/movies.csv", dir);
    static const char movies[] = "movieId,title,genres\n"
                                 "1,Toy Story (1995),Adventure|Animation|Children\n"
                                 "11,\"American President, The (1995)\",Comedy|Drama|Romance\n"
                                 "99,Nothing (2000),(no genres listed)\n";
    tu_write_file(p, movies, strlen(movies));
    snprintf(p, sizeof p, "%s/ratings.csv", dir);
    static const char ratings[] = "userId,movieId,rating,timestamp\n"
                                  "1,1,4.0,964982703\n1,11,3.5,964982224\n2,99,0.5,964983000\n";
    tu_write_file(p, ratings, strlen(ratings));
    snprintf(p, sizeof p, "%s/tags.csv", dir);
    static const char tags[] = "userId,movieId,tag,timestamp\n"
                               "2,1,pixar,1\n3,1,Pixar,2\n2,1,\"toys, fun\",3\n4,500,gone,4\n";
    tu_write_file(p, tags, strlen(tags));

    const char *path = s_fresh("mlcsv.db", 8);
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    ck_assert_int_eq(store_import_movielens_layout(dir), 2);
    ck_assert_msg(store_import_movielens(db, dir, &o, &st, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 3);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users"), 2);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions"), 3);
    ck_assert_str_eq(s_str(db, "SELECT text FROM items WHERE ext_id = '1'"),
                     "Toy Story (1995). Adventure, Animation, Children. pixar, toys, fun");
    ck_assert_str_eq(s_str(db, "SELECT title FROM items WHERE ext_id = '11'"),
                     "American President, The (1995)");
    ck_assert_str_eq(s_str(db, "SELECT text FROM items WHERE ext_id = '99'"), "Nothing (2000)");
    store_close(&db);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------- */

START_TEST(test_error_truncated)
{
    s_events_fail("trunc.csv", "user,item,ts\nu1,i1,1\nu1,i2\n", "trunc.csv:3:",
                  "expected 3 fields, found 2 (truncated line?)");
    s_events_fail("trunc.jsonl", "{\"user\":\"u1\",\"item\":\"i1\",\"ts\":1}\n"
                                 "{\"user\":\"u1\",\"item\":",
                  "trunc.jsonl:2: invalid JSON", "truncated line?");
    /* "j1\u0000x" would be stored as "j1", overwriting j1's events. */
    s_events_fail("nul.jsonl", "{\"user\":\"u1\",\"item\":\"i1\",\"ts\":1}\n"
                               "{\"user\":\"j1\\u0000x\",\"item\":\"i1\",\"ts\":2}\n",
                  "nul.jsonl:2:", "NUL");
}
END_TEST

START_TEST(test_error_bad_number)
{
    s_events_fail("num.csv", "user,item,ts\nu1,i1,1\nu1,i2,abc\n",
                  "num.csv:3: column ts: 'abc' is not an integer", NULL);
    s_events_fail("weight.csv", "user,item,ts,weight\nu1,i1,1,-2\n",
                  "weight.csv:2: column weight: weight -2 is not > 0", NULL);
    s_events_fail("wnan.csv", "user,item,ts,weight\nu1,i1,1,nan\n",
                  "wnan.csv:2: column weight: value is NaN", NULL);
}
END_TEST

START_TEST(test_error_embedding)
{
    const char *path = s_fresh("emb_err.db", DIM);
    store *db = s_open(path);
    uint64_t before = s_digest(db);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    s_write("len.csv", "id,embedding\na,1 2 3 4\nb,\"1,2,3\"\n");
    ck_assert_int_eq(store_import_items(db, tu_path("len.csv"), &o, &st, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "len.csv:3: column embedding: embedding has 3 values, "
                                  "embedding_dim is 4"), "%s", err.msg);
    s_write("nan.jsonl", "{\"id\":\"a\",\"embedding\":[1,2,3,4]}\n"
                         "{\"id\":\"b\",\"embedding\":\"1 NaN 3 4\"}\n");
    ck_assert_int_eq(store_import_items(db, tu_path("nan.jsonl"), &o, &st, &err),
                     STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "nan.jsonl:2: column embedding: value 2 is NaN"), "%s",
                  err.msg);
    s_write("inf.csv", "id,embedding\nb,[1e39 0 0 0]\n");
    ck_assert_int_eq(store_import_items(db, tu_path("inf.csv"), &o, &st, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "inf.csv:2: column embedding: value 1 is out of float range"),
                  "%s", err.msg);
    ck_assert_uint_eq(s_digest(db), before);
    store_close(&db);
}
END_TEST

START_TEST(test_error_utf8)
{
    s_events_fail("utf8.csv", "user,item,ts\nu1,i1,1\nu\xE9,i1,2\n",
                  "utf8.csv:3: column user: invalid UTF-8 at byte 2", "--latin1");
    s_events_fail("utf8.jsonl", "{\"user\":\"u\xFF\",\"item\":\"i1\",\"ts\":1}\n",
                  "utf8.jsonl:1: invalid UTF-8 at byte 11", NULL);

    /* --latin1 makes the same bytes a valid "ué". */
    const char *path = s_with_items("latin1.db");
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    o.latin1 = 1;
    store_import_stats st;
    store_err err = {0};
    ck_assert_msg(store_import_events(db, tu_path("utf8.csv"), &o, &st, &err) == STORE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users WHERE ext_id = 'u\xC3\xA9'"), 1);
    store_close(&db);
}
END_TEST

START_TEST(test_error_unknown_item)
{
    s_events_fail("unknown.csv", "user,item,ts\nu1,i1,1\nu1,zzz,2\n",
                  "unknown.csv:3: column item: unknown item 'zzz'", NULL);
    s_events_fail("nots.csv", "user,item,when\nu1,i1,1\n", "no ts column", "--col-ts");
}
END_TEST

/* A big file with one bad line at the very end: thousands of rows were
 * written inside the transaction before the failure, and none survive. */
START_TEST(test_all_or_nothing)
{
    FILE *f = fopen(tu_path("big.csv"), "wb");
    fprintf(f, "user,item,ts\n");
    for (int i = 0; i < 30000; i++)
        fprintf(f, "u%d,i%d,%d\n", i % 977, 1 + i % 3, i);
    fprintf(f, "u1,i1,notatime\n");
    fclose(f);
    char *text = s_slurp(tu_path("big.csv"), &(size_t){0});
    s_events_fail("big.csv", text, "big.csv:30002: column ts: 'notatime'", NULL);
    free(text);
}
END_TEST

START_TEST(test_skip_bad)
{
    const char *path = s_with_items("skip.db");
    s_write("skip.csv", "user,item,ts\n"
                        "u1,i1,1\n"
                        "u2,nope,2\n"
                        "u3,i2,xyz\n"
                        "u4,i3,4\n"
                        "u5,\"i1\n");
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    o.skip_bad = 1;
    store_import_stats st;
    store_err err = {0};
    ck_assert_msg(store_import_events(db, tu_path("skip.csv"), &o, &st, &err) == STORE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(st.events, 2);
    ck_assert_int_eq(st.rejected, 3);
    /* Rejected lines create nothing, not even their users. */
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users"), 2);
    ck_assert_str_eq(st.rejects_path, tu_path("skip.csv.rejects"));
    size_t n;
    char *rej = s_slurp(st.rejects_path, &n);
    ck_assert_msg(strncmp(rej, "user,item,ts\n", 13) == 0, "header first: %s", rej);
    ck_assert_msg(strstr(rej, "# ") && strstr(rej, "skip.csv:3: column item: unknown item "
                                                   "'nope'") && strstr(rej, "\nu2,nope,2\n"),
                  "%s", rej);
    ck_assert_msg(strstr(rej, "skip.csv:4: column ts: 'xyz' is not an integer") &&
                  strstr(rej, "\nu3,i2,xyz\n"), "%s", rej);
    ck_assert_msg(strstr(rej, "skip.csv:6: field 2: unterminated quoted field"), "%s", rej);
    free(rej);

    /* A clean run leaves no rejects file behind (nor a stale one). */
    s_write("clean.csv", "user,item,ts\nu9,i1,9\n");
    o.rejects_path = tu_path("my.rejects");
    s_write("my.rejects", "stale\n");
    ck_assert_int_eq(store_import_events(db, tu_path("clean.csv"), &o, &st, &err), STORE_OK);
    ck_assert_int_eq(st.rejected, 0);
    ck_assert_int_ne(access(tu_path("my.rejects"), F_OK), 0);

    /* A rejects path naming the input is refused before it is truncated. */
    o.rejects_path = tu_path("clean.csv");
    ck_assert_int_eq(store_import_events(db, tu_path("clean.csv"), &o, &st, &err),
                     STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "would overwrite an input"), "%s", err.msg);
    size_t cl;
    char *clean = s_slurp(tu_path("clean.csv"), &cl);
    ck_assert_str_eq(clean, "user,item,ts\nu9,i1,9\n");
    free(clean);

    /* A rejects path longer than the report can hold is refused, not cut
     * (a cut path could name another file, which opening truncates). */
    char longp[600];
    memset(longp, 'r', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    o.rejects_path = longp;
    ck_assert_int_eq(store_import_events(db, tu_path("clean.csv"), &o, &st, &err),
                     STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "rejects file's path is 599 bytes, at most 511"), "%s",
                  err.msg);
    /* So is a default one, the input's name + ".rejects" (505 + 8 bytes). */
    char long_input[506];
    memset(long_input, 'i', sizeof long_input - 1);
    long_input[sizeof long_input - 1] = '\0';
    o.rejects_path = NULL;
    ck_assert_int_eq(store_import_events(db, long_input, &o, &st, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "rejects file's path is 513 bytes, at most 511"), "%s",
                  err.msg);
    store_close(&db);
}
END_TEST

/* --kind is held to what the kind column allows: UTF-8 of 1..64 bytes. */
START_TEST(test_default_kind_bounded)
{
    const char *path = s_with_items("kind.db");
    s_write("kind.csv", "user,item,ts\nu1,i1,1\n");
    store *db = s_open(path);
    uint64_t before = s_digest(db);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    char kind[66];
    memset(kind, 'k', 65);
    kind[65] = '\0';
    o.default_kind = kind;
    ck_assert_int_eq(store_import_events(db, tu_path("kind.csv"), &o, &st, &err),
                     STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "--kind") && strstr(err.msg, "(it is 65)"), "%s", err.msg);
    o.default_kind = "";
    ck_assert_int_eq(store_import_events(db, tu_path("kind.csv"), &o, &st, &err),
                     STORE_ERR_INVAL);
    o.default_kind = "\xff";
    ck_assert_int_eq(store_import_events(db, tu_path("kind.csv"), &o, &st, &err),
                     STORE_ERR_INVAL);
    ck_assert_uint_eq(s_digest(db), before);
    kind[64] = '\0';
    o.default_kind = kind;
    ck_assert_msg(store_import_events(db, tu_path("kind.csv"), &o, &st, &err) == STORE_OK, "%s",
                  err.msg);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions WHERE length(kind) = 64"), 1);
    store_close(&db);
}
END_TEST

/* The rejects file is written out before the commit: one that cannot be
 * written fails the import and leaves the database as it was (committing
 * and then failing would have attnctl say "nothing imported" of a
 * committed import, and remove a database it had just created). */
START_TEST(test_rejects_unwritable)
{
    ck_assert_int_eq(access("/dev/full", W_OK), 0);
    const char *path = s_with_items("full.db");
    s_write("full.csv", "user,item,ts\nu1,i1,1\nu2,nope,2\n");
    store *db = s_open(path);
    uint64_t before = s_digest(db);
    store_import_opts o = store_import_defaults();
    o.skip_bad = 1;
    o.rejects_path = "/dev/full";
    store_import_stats st;
    store_err err = {0};
    ck_assert_int_eq(store_import_events(db, tu_path("full.csv"), &o, &st, &err), STORE_ERR_IO);
    ck_assert_msg(strstr(err.msg, "/dev/full: writing the rejects file failed") &&
                  !strstr(err.msg, "committed"), "%s", err.msg);
    ck_assert_uint_eq(s_digest(db), before);

    /* Nothing rejected: the empty rejects file is removed only when it is a
     * regular file -- never a link, nor a device (/dev/null, as root). */
    const char *link = tu_path("null.rejects");
    unlink(link);
    ck_assert_int_eq(symlink("/dev/null", link), 0);
    o.rejects_path = link;
    s_write("fine.csv", "user,item,ts\nu1,i1,1\n");
    ck_assert_msg(store_import_events(db, tu_path("fine.csv"), &o, &st, &err) == STORE_OK, "%s",
                  err.msg);
    ck_assert_int_eq(st.rejected, 0);
    struct stat sb;
    ck_assert_int_eq(lstat(link, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    unlink(link);
    store_close(&db);
}
END_TEST

/* ---- sequence files and the '::' MovieLens layouts ------------------------------ */

/* Import path as a sequence file into a fresh database; returns it open. */
static store *s_seq_import(const char *dbname, const char *file, const char *text,
                           store_import_opts *o, store_import_stats *st)
{
    const char *path = s_fresh(dbname, DIM);
    s_write(file, text);
    store *db = s_open(path);
    store_err err = {0};
    ck_assert_msg(store_import_sequences(db, tu_path(file), o, st, &err) == STORE_OK, "%s",
                  err.msg);
    return db;
}

/* "user item" lines: one event each, ts = the event's ordinal in the file,
 * items created with zero vectors (no text), a re-import changes nothing. */
START_TEST(test_sequences_pairs)
{
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store *db = s_seq_import("pairs.db", "pairs.txt", "u1 a\nu1\tb \n\nu2 b\r\nu1 c\n", &o, &st);
    ck_assert_int_eq(st.events, 4);
    ck_assert_int_eq(st.items_created, 3);
    ck_assert_int_eq(st.items_untitled, 3);
    ck_assert_int_eq(st.users_created, 2);
    ck_assert_str_eq(s_str(db, "SELECT group_concat(i.ext_id || '@' || e.ts, ' ') FROM "
                               "(SELECT * FROM interactions ORDER BY ts) e JOIN items i "
                               "USING (item_id) JOIN users u USING (user_id) "
                               "WHERE u.ext_id = 'u1'"), "a@1 b@2 c@4");
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions WHERE kind = 'view' "
                               "AND weight = 1"), 4);
    float e[DIM] = {1, 1, 1, 1};
    ck_assert_int_eq(s_emb(db, "b", e), DIM);
    for (int i = 0; i < DIM; i++)
        ck_assert(e[i] == 0.0f);
    ck_assert_msg(strstr(s_str(db, "SELECT value FROM meta WHERE key = 'embedder'"),
                         "\"method\":\"none\""), "embedder meta");
    /* The same file again: the same ordinals, so nothing new. */
    uint64_t before = s_digest(db);
    store_err err = {0};
    ck_assert_int_eq(store_import_sequences(db, tu_path("pairs.txt"), &o, &st, &err), STORE_OK);
    ck_assert_int_eq(st.items_created, 0);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions"), 4);
    ck_assert_uint_eq(s_digest(db), before);
    store_close(&db);

    /* A line is a line whatever bytes it holds: no byte splits it (the
     * reader once split at 0x1F, its private separator). */
    db = s_seq_import("us.db", "us.txt", "u1 a\x1f" "b\nu1 c\n", &o, &st);
    ck_assert_int_eq(st.events, 2);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items WHERE ext_id = 'a' || char(31) || 'b'"),
                     1);
    store_close(&db);
}
END_TEST

/* "user item1 item2 ..." lines, detected; titles from an items file. */
START_TEST(test_sequences_lists_titles)
{
    s_write("titles.csv", "id,title,text\na,Alpha,alpha text\nb,Beta,\nz,Zed,never named\n");
    store_import_opts o = store_import_defaults();
    char titles[512];   /* tu_path's buffers are reused */
    snprintf(titles, sizeof titles, "%s", tu_path("titles.csv"));
    o.titles_path = titles;
    store_import_stats st;
    store *db = s_seq_import("lists.db", "lists.txt", "u1 a b c\nu2 c a\n", &o, &st);
    ck_assert_int_eq(st.events, 5);
    ck_assert_int_eq(st.items_created, 3);
    ck_assert_int_eq(st.items_untitled, 1);
    ck_assert_int_eq(st.items_skipped, 1);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items WHERE ext_id = 'z'"), 0);
    ck_assert_str_eq(s_str(db, "SELECT title || '|' || text FROM items WHERE ext_id = 'a'"),
                     "Alpha|alpha text");
    /* Titled items wait for the embedder; the untitled one has its zeros. */
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items WHERE embedding IS NULL"), 2);
    ck_assert_str_eq(s_str(db, "SELECT group_concat(i.ext_id, ' ') FROM (SELECT * FROM "
                               "interactions ORDER BY ts) e JOIN items i USING (item_id) "
                               "JOIN users u USING (user_id) WHERE u.ext_id = 'u2'"), "c a");
    ck_assert_int_eq(s_int(db, "SELECT max(ts) FROM interactions"), 5);
    /* The untitled item: meta embedder says there is no text. */
    ck_assert_msg(strstr(s_str(db, "SELECT value FROM meta WHERE key = 'embedder'"),
                         "\"method\":\"none\""), "embedder meta");
    /* Again: a and b exist and keep what they have, but the sequences name
     * them, so only z's title is one that no sequence names. */
    store_err err = {0};
    ck_assert_msg(store_import_sequences(db, tu_path("lists.txt"), &o, &st, &err) == STORE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(st.items_created, 0);
    ck_assert_int_eq(st.items_skipped, 1);
    store_close(&db);

    /* A database whose embedder record names its vectors keeps it. */
    db = s_open(s_with_items("lists-kept.db"));
    char was[512];
    snprintf(was, sizeof was, "%s", s_str(db, "SELECT value FROM meta WHERE key = 'embedder'"));
    ck_assert_msg(strstr(was, "\"method\":\"imported\""), "%s", was);
    ck_assert_msg(store_import_sequences(db, tu_path("lists.txt"), &o, &st, &err) == STORE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(st.items_untitled, 1);
    ck_assert_str_eq(s_str(db, "SELECT value FROM meta WHERE key = 'embedder'"), was);
    store_close(&db);

    /* The same lines forced to pairs: line 1 has four fields. */
    o.titles_path = NULL;
    o.seq_layout = STORE_IMPORT_SEQ_PAIRS;
    const char *path = s_fresh("forced.db", DIM);
    db = s_open(path);
    ck_assert_int_eq(store_import_sequences(db, tu_path("lists.txt"), &o, &st, &err),
                     STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "lists.txt:1: expected 2 fields (user item), found 4"),
                  "%s", err.msg);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 0);
    store_close(&db);
}
END_TEST

/* A RecBole atomic file: header of name:type fields, a timestamp column. */
START_TEST(test_sequences_recbole_header)
{
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store *db = s_seq_import("recbole.db", "ml.inter",
                             "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                             "1\t10\t5\t978300760\n1\t11\t3\t978300700.5\n2\t10\t4\t9\n",
                             &o, &st);
    ck_assert_int_eq(st.events, 3);
    ck_assert_int_eq(st.rows, 3);   /* the header is not a record */
    ck_assert_int_eq(s_int(db, "SELECT ts FROM interactions JOIN items USING (item_id) "
                               "JOIN users u USING (user_id) WHERE u.ext_id = '1' AND "
                               "items.ext_id = '11'"), 978300700);
    store_close(&db);
}
END_TEST

/* Errors name the line; the database is unchanged (rows and bytes).  text
 * NULL: no such file. */
static void s_seq_fail(const char *file, const char *text, int layout, const char *want)
{
    const char *path = s_with_items("seqfail.db");
    char dbpath[600];
    snprintf(dbpath, sizeof dbpath, "%s", path);
    if (text)
        s_write(file, text);
    else
        unlink(tu_path(file));
    size_t n0, n1;
    char *bytes0 = s_slurp(dbpath, &n0);
    store *db = s_open(dbpath);
    uint64_t before = s_digest(db);
    store_import_opts o = store_import_defaults();
    o.seq_layout = layout;
    store_import_stats st;
    store_err err = {0};
    ck_assert_int_ne(store_import_sequences(db, tu_path(file), &o, &st, &err), STORE_OK);
    ck_assert_msg(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
    ck_assert_uint_eq(s_digest(db), before);
    store_close(&db);
    char *bytes1 = s_slurp(dbpath, &n1);
    ck_assert_msg(n0 == n1 && memcmp(bytes0, bytes1, n0) == 0, "database file bytes changed");
    free(bytes0);
    free(bytes1);
}

START_TEST(test_sequences_errors)
{
    /* Detected as pairs from the first 1000 lines; line 1502 has three. */
    size_t cap = 64 * 1600, len = 0;
    char *big = malloc(cap);
    for (int i = 0; i < 1500; i++)
        len += (size_t)snprintf(big + len, cap - len, "u%d i%d\n", i % 37, i % 11);
    snprintf(big + len, cap - len, "\nu1 i1 i2\n");
    s_seq_fail("late.txt", big, STORE_IMPORT_SEQ_AUTO,
               "late.txt:1502: expected 2 fields (user item), found 3; a 'user item1 item2 "
               "...' file? (--layout lists)");
    free(big);
    s_seq_fail("alone.txt", "u1 a b\nu2\n", STORE_IMPORT_SEQ_LISTS,
               "alone.txt:2: expected 'user item1 item2 ...', found a user without items");
    s_seq_fail("utf.txt", "u1 a\nu\xE9 b\n", STORE_IMPORT_SEQ_AUTO,
               "utf.txt:2: column 1: invalid UTF-8 at byte 2");
    char longid[700];
    memset(longid, 'x', 600);
    snprintf(longid + 600, sizeof longid - 600, " a\n");
    s_seq_fail("long.txt", longid, STORE_IMPORT_SEQ_AUTO, "long.txt:1: user id is 600 bytes");
    s_seq_fail("nofile.txt", NULL, STORE_IMPORT_SEQ_AUTO, "nofile.txt: No such file");
    /* A header names the width: a longer line is not a hint at lists. */
    s_seq_fail("wide.inter", "user_id:token item_id:token\nu1 a\nu2 b c\n",
               STORE_IMPORT_SEQ_AUTO, "wide.inter:3: expected 2 fields (as the header names), "
                                      "found 3");
}
END_TEST

/* A line of blanks is a blank line: skipped, not a record.  With skip_bad,
 * a bad line among the first 1,000 (those the layout is detected from) is
 * rejected like any later one, not the end of the import. */
START_TEST(test_sequences_blank_and_skip_bad)
{
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store *db = s_seq_import("seqblank.db", "seqblank.txt", "u1 a\n \t \nu2 b\n  \r\n", &o,
                             &st);
    ck_assert_int_eq(st.events, 2);
    ck_assert_int_eq(st.rows, 2);
    store_close(&db);

    o.skip_bad = 1;
    db = s_seq_import("seqskip.db", "seqskip.txt", "u1 a b\nu\xE9 c d\nu2 b\n", &o, &st);
    ck_assert_int_eq(st.events, 3);
    ck_assert_int_eq(st.rejected, 1);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users"), 2);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 2);
    size_t n;
    char *rej = s_slurp(st.rejects_path, &n);
    ck_assert_msg(strstr(rej, "# ") && strstr(rej, "seqskip.txt:2: column 1: invalid UTF-8") &&
                  strstr(rej, "\nu\xE9 c d\n"), "%s", rej);
    free(rej);
    store_close(&db);
}
END_TEST

/* A MovieLens '::' directory: movies.dat (Latin-1, colons inside titles)
 * with ratings.dat, or with sequences.txt. */
static void s_mldat(const char *dir, int with_ratings)
{
    char p[600];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/movies.dat", dir);
    static const char movies[] = "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                                 "2::Star Wars: Episode IV (1977)::Action|Sci-Fi\n"
                                 "3::Mis\xE9rables, Les (1995)::Drama\n"
                                 "4::Unrated (2000)::Drama\n";
    tu_write_file(p, movies, strlen(movies));
    snprintf(p, sizeof p, "%s/users.dat", dir);
    tu_write_file(p, "not read at all\xFF\n", 17);
    snprintf(p, sizeof p, "%s/%s", dir, with_ratings ? "ratings.dat" : "sequences.txt");
    const char *ev = with_ratings ? "1::2::5::978300760\n1::1::3::978300761\n \t\n"
                                    "2::3::4::978300000\n"
                                  : "1 2\n1 1\n2 3\n";
    tu_write_file(p, ev, strlen(ev));
}

START_TEST(test_movielens_dat)
{
    const char *dir = tu_path("ml1m");
    s_mldat(dir, 1);
    const char *path = s_fresh("ml1m.db", 8);
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    ck_assert_int_eq(store_import_movielens_layout(dir), 3);
    ck_assert_msg(store_import_movielens(db, dir, &o, &st, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 4);
    ck_assert_int_eq(st.events, 3);
    ck_assert_int_eq(st.rows, 7);   /* 4 movies, 3 ratings: a line of blanks is none */
    ck_assert_str_eq(s_str(db, "SELECT title FROM items WHERE ext_id = '3'"),
                     "Mis\xC3\xA9rables, Les (1995)");
    ck_assert_str_eq(s_str(db, "SELECT text FROM items WHERE ext_id = '2'"),
                     "Star Wars: Episode IV (1977). Action, Sci-Fi");
    ck_assert_int_eq(s_int(db, "SELECT ts FROM interactions JOIN items USING (item_id) "
                               "WHERE ext_id = '1'"), 978300761);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions WHERE kind = 'rating' "
                               "AND weight = 1"), 3);
    store_close(&db);

    /* A rating of a movie movies.dat does not list: the line, nothing kept. */
    char p[600];
    snprintf(p, sizeof p, "%s/ratings.dat", dir);
    const char *bad = "1::2::5::978300760\n1::99::3::978300761\n";
    tu_write_file(p, bad, strlen(bad));
    path = s_fresh("ml1m-bad.db", 8);
    db = s_open(path);
    ck_assert_int_eq(store_import_movielens(db, dir, &o, &st, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "ratings.dat:2: unknown movie '99'"), "%s", err.msg);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 0);
    tu_write_file(p, "1::2::5\n", 8);
    ck_assert_int_eq(store_import_movielens(db, dir, &o, &st, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "ratings.dat:1: expected UserID::MovieID::Rating::"
                                  "Timestamp"), "%s", err.msg);
    store_close(&db);
}
END_TEST

/* A title longer than the 4,095 bytes kept is cut between characters: the
 * Latin-1 byte at the cut becomes two bytes of UTF-8, and not half of them. */
START_TEST(test_movielens_dat_long_title)
{
    const char *dir = tu_path("ml1mlong");
    s_mldat(dir, 1);
    static char movies[5000];
    size_t n = (size_t)snprintf(movies, sizeof movies, "1::");
    memset(movies + n, 'a', 4094);
    n += 4094;
    n += (size_t)snprintf(movies + n, sizeof movies - n, "\xE9\xE9 (1999)::Drama\n"
                                                          "2::Short (1977)::Drama\n"
                                                          "3::Other (1995)::Drama\n");
    char p[600];
    snprintf(p, sizeof p, "%s/movies.dat", dir);
    tu_write_file(p, movies, n);
    store *db = s_open(s_fresh("ml1mlong.db", 8));
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    ck_assert_msg(store_import_movielens(db, dir, &o, &st, &err) == STORE_OK, "%s", err.msg);
    /* 4,094 bytes, all of them the a's: not 4,095, which would end in half an é. */
    ck_assert_int_eq(s_int(db, "SELECT length(CAST(title AS BLOB)) FROM items "
                               "WHERE ext_id = '1'"), 4094);
    ck_assert_int_eq(s_int(db, "SELECT title GLOB '*[^a]*' FROM items WHERE ext_id = '1'"), 0);
    store_close(&db);
}
END_TEST

START_TEST(test_movielens_sequences)
{
    const char *dir = tu_path("ml1mseq");
    s_mldat(dir, 0);
    const char *path = s_fresh("ml1mseq.db", 8);
    store *db = s_open(path);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    ck_assert_int_eq(store_import_movielens_layout(dir), 4);
    ck_assert_msg(store_import_movielens(db, dir, &o, &st, &err) == STORE_OK, "%s", err.msg);
    /* The sequences name the catalog: movie 4 is nobody's, so not an item. */
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 3);
    ck_assert_int_eq(st.items_skipped, 1);
    ck_assert_int_eq(st.items_untitled, 0);
    ck_assert_str_eq(s_str(db, "SELECT text FROM items WHERE ext_id = '1'"),
                     "Toy Story (1995). Animation, Children's, Comedy");
    ck_assert_str_eq(s_str(db, "SELECT group_concat(i.ext_id, ' ') FROM (SELECT * FROM "
                               "interactions ORDER BY ts) e JOIN items i USING (item_id) "
                               "JOIN users u USING (user_id) WHERE u.ext_id = '1'"), "2 1");
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions WHERE kind = 'rating'"), 3);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM meta WHERE key = 'embedder'"), 0);
    store_close(&db);

    /* A movie the sequences name and movies.dat does not: a zero vector,
     * and meta embedder says so, as for 'import sequences'. */
    char p[600];
    snprintf(p, sizeof p, "%s/sequences.txt", dir);
    tu_write_file(p, "1 2\n1 9\n", 8);
    db = s_open(s_fresh("ml1mseq9.db", 8));
    ck_assert_msg(store_import_movielens(db, dir, &o, &st, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(st.items_untitled, 1);
    ck_assert_msg(strstr(s_str(db, "SELECT value FROM meta WHERE key = 'embedder'"),
                         "\"method\":\"none\""), "embedder meta");
    store_close(&db);
}
END_TEST

/* ---- SIGKILL mid-import ------------------------------------------------------ */

typedef struct s_kill_ctx {
    int fd;            /* pipe to the parent */
    int sent;
} s_kill_ctx;

static void s_kill_progress(void *ctx, const store_import_progress *p)
{
    s_kill_ctx *k = ctx;
    /* Far enough in that SQLite has spilled uncommitted pages to the WAL. */
    if (!k->sent && p->rows >= 100000) {
        k->sent = 1;
        if (write(k->fd, "x", 1) != 1)
            _exit(3);
        pause();        /* wait for the kill: never reach the commit */
    }
}

START_TEST(test_kill9)
{
    const char *path = s_with_items("kill.db");
    char dbpath[600];
    snprintf(dbpath, sizeof dbpath, "%s", path);
    /* Some committed events first, so "unchanged" means more than empty. */
    s_write("pre.csv", "user,item,ts\nu1,i1,1\nu2,i2,2\n");
    store *db = s_open(dbpath);
    store_import_opts o = store_import_defaults();
    store_import_stats st;
    store_err err = {0};
    ck_assert_int_eq(store_import_events(db, tu_path("pre.csv"), &o, &st, &err), STORE_OK);
    uint64_t before = s_digest(db);
    store_close(&db);

    FILE *f = fopen(tu_path("huge.csv"), "wb");
    fprintf(f, "user,item,ts,weight\n");
    for (int i = 0; i < 200000; i++)
        fprintf(f, "user%d,i%d,%d,%d.5\n", i % 5000, 1 + i % 3, 1000 + i, 1 + i % 4);
    fclose(f);

    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        store *cdb;
        if (store_open(&cdb, dbpath, STORE_READWRITE, 2000, NULL) != STORE_OK)
            _exit(2);
        s_kill_ctx k = {.fd = fds[1]};
        store_import_opts co = store_import_defaults();
        co.progress = s_kill_progress;
        co.cache_kib = 1024;      /* small, so that the transaction spills */
        co.progress_ctx = &k;
        store_import_stats cst;
        store_import_events(cdb, tu_path("huge.csv"), &co, &cst, NULL);
        _exit(4);       /* finished: the kill came too late */
    }
    close(fds[1]);
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    close(fds[0]);
    /* 100k rows into the transaction, with a 1 MiB page cache, SQLite has
     * spilled uncommitted pages into the WAL: the recovery below must
     * ignore frames no commit record covers.  Kill without warning. */
    struct stat wal;
    char walpath[700];
    snprintf(walpath, sizeof walpath, "%s-wal", dbpath);
    ck_assert_int_eq(stat(walpath, &wal), 0);
    ck_assert_int_gt(wal.st_size, 1 << 20);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    db = s_open(dbpath);
    ck_assert_str_eq(s_str(db, "PRAGMA integrity_check"), "ok");
    ck_assert_uint_eq(s_digest(db), before);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions"), 2);
    /* The killed writer left no lock behind: the next import goes through. */
    s_write("after.csv", "user,item,ts\nu3,i3,3\n");
    ck_assert_msg(store_import_events(db, tu_path("after.csv"), &o, &st, &err) == STORE_OK,
                  "%s", err.msg);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions"), 3);
    store_close(&db);
}
END_TEST

/* The attnctl programs themselves: exit codes and the messages a user sees. */
static int s_attnctl(const char *args, char *out, size_t len)
{
    return tu_run_program("attnctl", args, out, len);
}

START_TEST(test_attnctl_programs)
{
    char out[8192], args[2048];
    const char *db = tu_path("cli.db");
    const char *items = tu_path("cli-items.csv");
    const char *events = tu_path("cli-events.csv");
    const char *bad = tu_path("cli-bad.csv");
    unlink(db);
    const char *it = "id,title,text\nm1,Star Voyage,space opera stars ships\n"
                     "m2,Ship of Stars,space opera fleet\nm3,Garden Days,roses tulips garden\n";
    tu_write_file(items, it, strlen(it));
    const char *ev = "user,item,ts\nu1,m1,100\nu1,m2,200\nu2,m3,150\nu2,m3,160\n";
    tu_write_file(events, ev, strlen(ev));
    const char *bd = "user,item,ts\nu3,m1,300\nu3,m2,soon\n";
    tu_write_file(bad, bd, strlen(bd));

    snprintf(args, sizeof args, "init %s --dim 8", db);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "import items %s %s --quiet", db, items);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "import events %s %s --quiet", db, events);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    /* A bad line: exit 1, file:line and the column, nothing imported. */
    snprintf(args, sizeof args, "import events %s %s --quiet", db, bad);
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "cli-bad.csv:3") && strstr(out, "ts"), "%s", out);
    snprintf(args, sizeof args, "embed %s --dim 8", db);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "inspect %s", db);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "3 embedded") || strstr(out, "(3 embedded"), "%s", out);
    ck_assert_msg(strstr(out, "integrity") && strstr(out, "ok"), "%s", out);
    /* u3 was never created: the failed import left nothing behind. */
    sqlite3 *raw;
    ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
    /* An active model the daemon could not load is a problem inspect names. */
    ck_assert_int_eq(sqlite3_exec(raw, "UPDATE models SET config = '{oops' WHERE active = 1",
                                  NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "active model cannot be loaded") && strstr(out, "config"), "%s",
                  out);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(raw, "SELECT count(*) FROM users", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(raw);
    /* import sequences creates its database; --layout, --items. */
    const char *sdb = tu_path("cli-seq.db"), *seq = tu_path("cli-seq.txt");
    unlink(sdb);
    tu_write_file(seq, "u1 m1 m2\nu2 m9\n", 15);
    snprintf(args, sizeof args, "import sequences %s %s --layout lists --items %s --quiet", sdb,
             seq, items);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "created") && strstr(out, "3 items (3 new") &&
                  strstr(out, "3 events (2 new users)") && strstr(out, "1 items have no title") &&
                  strstr(out, "skipped the titles of 1 items") && strstr(out, "attnctl embed"),
                  "%s", out);
    snprintf(args, sizeof args, "import sequences %s %s --layout rows", sdb, seq);
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--layout") && strstr(out, "pairs, lists"), "%s", out);
    /* Bad usage is exit 2; a missing database is a clear error, exit 1. */
    ck_assert_int_eq(s_attnctl("import", out, sizeof out), 2);
    snprintf(args, sizeof args, "inspect %s", tu_path("absent.db"));
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "absent.db"), "%s", out);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("import");
    TCase *tc = tcase_create("reader");
    tcase_add_test(tc, test_csv_rfc4180);
    tcase_add_test(tc, test_csv_malformed);
    tcase_add_test(tc, test_text_helpers);
    suite_add_tcase(s, tc);

    tc = tcase_create("formats");
    tcase_set_timeout(tc, 20.0 * tu_slowdown());
    tcase_add_test(tc, test_items_csv);
    tcase_add_test(tc, test_items_jsonl);
    tcase_add_test(tc, test_events_csv_jsonl);
    tcase_add_test(tc, test_npy);
    tcase_add_test(tc, test_npy_bad_headers);
    tcase_add_test(tc, test_movielens_100k);
    tcase_add_test(tc, test_movielens_csv);
    tcase_add_test(tc, test_movielens_dat);
    tcase_add_test(tc, test_movielens_dat_long_title);
    tcase_add_test(tc, test_movielens_sequences);
    suite_add_tcase(s, tc);

    tc = tcase_create("sequences");
    tcase_set_timeout(tc, 20.0 * tu_slowdown());
    tcase_add_test(tc, test_sequences_pairs);
    tcase_add_test(tc, test_sequences_lists_titles);
    tcase_add_test(tc, test_sequences_recbole_header);
    tcase_add_test(tc, test_sequences_errors);
    tcase_add_test(tc, test_sequences_blank_and_skip_bad);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 20.0 * tu_slowdown());
    tcase_add_test(tc, test_error_truncated);
    tcase_add_test(tc, test_error_bad_number);
    tcase_add_test(tc, test_error_embedding);
    tcase_add_test(tc, test_error_utf8);
    tcase_add_test(tc, test_error_unknown_item);
    tcase_add_test(tc, test_all_or_nothing);
    tcase_add_test(tc, test_skip_bad);
    tcase_add_test(tc, test_rejects_unwritable);
    tcase_add_test(tc, test_default_kind_bounded);
    suite_add_tcase(s, tc);

    tc = tcase_create("crash");
    tcase_set_timeout(tc, 30.0 * tu_slowdown());
    tcase_add_test(tc, test_kill9);
    tcase_add_test(tc, test_attnctl_programs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
