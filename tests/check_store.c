/* check_store.c -- the store core: schema, open errors, catalog, histories,
 * writers and model versions, all on real files in the test's directory.
 *
 * Every failure a user can meet opening or loading a database is made for
 * real here (a text file, a truncated copy, somebody else's database, a
 * locked one, a NaN in a blob ...) and must come back as the right code with
 * a message naming the file and the row.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_int.h"
#include "tests/testutil.h"
#include "util/clock.h"

#define DIM 8

/* ---- helpers -------------------------------------------------------------- */

static const char *s_fresh(const char *name, int dim)
{
    const char *path = tu_path(name);
    unlink(path);
    store_err err = {0};
    ck_assert_msg(store_init(path, dim, &err) == STORE_OK, "init %s: %s", path, err.msg);
    return path;
}

static store *s_open(const char *path, int flags)
{
    store *db = NULL;
    store_err err = {0};
    ck_assert_msg(store_open(&db, path, flags, 2000, &err) == STORE_OK, "open: %s", err.msg);
    return db;
}

/* Run SQL on a connection of its own, as another program (or a careless
 * hand) would: foreign keys off, no checks. */
static void s_raw(const char *path, const char *sql)
{
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
    sqlite3_close(h);
}

static void s_expect_open(const char *path, int flags, int code, const char *needle)
{
    store *db = (store *)1;
    store_err err = {0};
    int rc = store_open(&db, path, flags, 500, &err);
    ck_assert_msg(rc == code, "open %s: got %s (%s), want %s", path, store_strerror(rc), err.msg,
                  store_strerror(code));
    ck_assert_ptr_null(db);
    ck_assert_int_eq(err.code, code);
    ck_assert_msg(strstr(err.msg, path), "message does not name the file: %s", err.msg);
    ck_assert_msg(!needle || strstr(err.msg, needle), "message lacks '%s': %s", needle, err.msg);
    ck_assert_msg(!strchr(err.msg, '\n'), "message is not one line: %s", err.msg);
}

/* A deterministic embedding for item k. */
static void s_emb(float *x, int k)
{
    for (int j = 0; j < DIM; j++)
        x[j] = (float)(k * 10 + j) * 0.125f - 3.0f;
}

/* Put n items ("i0".."i{n-1}"), every third one without an embedding. */
static void s_put_items(store *db, int n, int64_t *ids)
{
    store_err err = {0};
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    for (int k = 0; k < n; k++) {
        char ext[16], title[32];
        float e[DIM];
        snprintf(ext, sizeof ext, "i%d", k);
        snprintf(title, sizeof title, "Item number %d", k);
        s_emb(e, k);
        ck_assert_msg(store_item_put(db, ext, title, "some text", k % 3 == 2 ? NULL : e, 1000 + k,
                                     &ids[k], &err) == STORE_OK, "%s", err.msg);
    }
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
}

/* ---- init and open -------------------------------------------------------- */

START_TEST(test_init_fresh)
{
    const char *path = s_fresh("fresh.db", DIM);
    ck_assert_int_eq(tu_sql_int(path, "PRAGMA application_id"), STORE_APPLICATION_ID);
    ck_assert_int_eq(tu_sql_int(path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM models WHERE active = 1 AND version = 0"),
                     1);
    store *db = s_open(path, STORE_READONLY);
    ck_assert_int_eq(store_dim(db), DIM);
    ck_assert_str_eq(store_path(db), path);
    char buf[64];
    store_err err = {0};
    ck_assert_int_eq(store_meta_get(db, "embedding_dim", buf, sizeof buf, &err), STORE_OK);
    ck_assert_str_eq(buf, "8");
    ck_assert_int_eq(store_meta_get(db, "catalog_version", buf, sizeof buf, &err), STORE_OK);
    ck_assert_str_eq(buf, "0");
    ck_assert_int_eq(store_meta_get(db, "created_at", buf, sizeof buf, &err), STORE_OK);
    ck_assert_int_eq(store_meta_get(db, "nope", buf, sizeof buf, &err), STORE_ERR_NOTFOUND);
    int64_t v = -5;
    ck_assert_int_eq(store_model_active(db, &v, &err), STORE_OK);
    ck_assert_int_eq(v, 0);
    /* Read-only handles refuse to write. */
    ck_assert_int_eq(store_meta_set(db, "x", "y", &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_item_put(db, "a", NULL, NULL, NULL, 1, NULL, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_begin(db, &err), STORE_ERR_INVAL);
    store_close(&db);
    ck_assert_ptr_null(db);
    store_close(&db);
    store_close(NULL);

    /* WAL: recorded in the file. */
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM pragma_journal_mode "
                                     "WHERE journal_mode = 'wal'"), 1);
}
END_TEST

START_TEST(test_init_refuses)
{
    store_err err = {0};
    const char *path = s_fresh("refuse.db", DIM);
    ck_assert_int_eq(store_init(path, DIM, &err), STORE_ERR_EXISTS);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    const char *txt = tu_path("refuse.txt");
    tu_write_file(txt, "hello\n", 6);
    ck_assert_int_eq(store_init(txt, DIM, &err), STORE_ERR_EXISTS);
    ck_assert_int_eq(store_init(tu_path("bad-dim.db"), 0, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(access(tu_path("bad-dim.db"), F_OK), -1);
    ck_assert_int_eq(store_init(tu_path("no/such/dir.db"), DIM, &err), STORE_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "no/such/dir.db"));
    /* An empty placeholder file is fine. */
    const char *empty = tu_path("empty-init.db");
    tu_write_file(empty, "", 0);
    ck_assert_msg(store_init(empty, DIM, &err) == STORE_OK, "%s", err.msg);
}
END_TEST

START_TEST(test_open_missing)
{
    const char *path = tu_path("missing.db");
    unlink(path);
    s_expect_open(path, STORE_READONLY, STORE_ERR_IO, "no such file");
    s_expect_open(path, STORE_READWRITE, STORE_ERR_IO, "attnctl init");
    ck_assert_int_eq(access(path, F_OK), -1);   /* never created by an open */
    s_expect_open(tu_tmpdir(), STORE_READONLY, STORE_ERR_IO, "directory");
    /* A FIFO used to hang the daemon in SQLite's first read. */
    const char *fifo = tu_path("fifo.db");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    s_expect_open(fifo, STORE_READONLY, STORE_ERR_IO, "FIFO");
    s_expect_open(fifo, STORE_READWRITE, STORE_ERR_IO, "not a regular file");
    s_expect_open("/dev/null", STORE_READONLY, STORE_ERR_IO, "character device");
}
END_TEST

START_TEST(test_open_text_and_garbage)
{
    const char *txt = tu_path("notes.txt");
    const char *line = "this is a text file, not a database\n";
    char big[8192];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = line[i % strlen(line)];
    tu_write_file(txt, big, sizeof big);
    s_expect_open(txt, STORE_READONLY, STORE_ERR_NOTDB, "not");
    s_expect_open(txt, STORE_READWRITE, STORE_ERR_NOTDB, NULL);
    tu_write_file(txt, line, strlen(line));   /* shorter than a page */
    s_expect_open(txt, STORE_READONLY, STORE_ERR_NOTDB, "not an SQLite database");

    const char *junk = tu_path("junk.bin");
    tu_rng r = {42};
    unsigned char g[16384];
    for (size_t i = 0; i < sizeof g; i++)
        g[i] = (unsigned char)tu_next(&r);
    tu_write_file(junk, g, sizeof g);
    s_expect_open(junk, STORE_READONLY, STORE_ERR_NOTDB, NULL);
}
END_TEST

START_TEST(test_open_truncated)
{
    const char *path = s_fresh("trunc.db", DIM);
    store *db = s_open(path, STORE_READWRITE);
    int64_t ids[200];
    s_put_items(db, 200, ids);
    store_close(&db);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_ge(sb.st_size, 4 * 4096);
    ck_assert_int_eq(truncate(path, sb.st_size / 2), 0);
    /* The schema is on the first pages, so opening may succeed where a
     * full read would not; whichever way, a load must fail cleanly. */
    store *t = NULL;
    store_err err = {0};
    int rc = store_open(&t, path, STORE_READONLY, 500, &err);
    if (rc == STORE_OK) {
        store_catalog *cat = (store_catalog *)1;
        rc = store_catalog_load(t, &cat, &err);
        ck_assert_ptr_null(cat);
        store_close(&t);
        ck_assert_msg(rc == STORE_ERR_CORRUPT || rc == STORE_ERR_NOTDB, "%s", err.msg);
    } else {
        ck_assert_msg(rc == STORE_ERR_NOTDB, "%s", err.msg);
    }
    ck_assert_ptr_nonnull(strstr(err.msg, path));

    /* Cut inside the schema pages: the open itself must say so. */
    ck_assert_int_eq(truncate(path, 4096 + 100), 0);
    s_expect_open(path, STORE_READONLY, STORE_ERR_NOTDB, "truncated");
    ck_assert_int_eq(truncate(path, 100), 0);
    s_expect_open(path, STORE_READONLY, STORE_ERR_NOTDB, NULL);
}
END_TEST

START_TEST(test_open_not_ours)
{
    const char *path = tu_path("foreign.db");
    unlink(path);
    s_raw(path, "CREATE TABLE people(name TEXT); INSERT INTO people VALUES ('ada')");
    s_expect_open(path, STORE_READONLY, STORE_ERR_NOTOURS, "application_id");
    s_expect_open(path, STORE_READWRITE, STORE_ERR_NOTOURS, "not an attnd");
    const char *empty = tu_path("zero.db");
    tu_write_file(empty, "", 0);
    s_expect_open(empty, STORE_READONLY, STORE_ERR_NOTOURS, "empty");
}
END_TEST

START_TEST(test_open_missing_table)
{
    const char *path = s_fresh("notable.db", DIM);
    s_raw(path, "DROP TABLE interactions; DROP TABLE users");
    s_expect_open(path, STORE_READONLY, STORE_ERR_SCHEMA, "users");
    path = s_fresh("nocolumn.db", DIM);
    s_raw(path, "ALTER TABLE items DROP COLUMN title");
    s_expect_open(path, STORE_READWRITE, STORE_ERR_SCHEMA, "title");
    path = s_fresh("nodim.db", DIM);
    s_raw(path, "DELETE FROM meta WHERE key = 'embedding_dim'");
    s_expect_open(path, STORE_READONLY, STORE_ERR_SCHEMA, "embedding_dim");
    path = s_fresh("baddim.db", DIM);
    s_raw(path, "UPDATE meta SET value = 'eight' WHERE key = 'embedding_dim'");
    s_expect_open(path, STORE_READONLY, STORE_ERR_CORRUPT, "eight");
}
END_TEST

START_TEST(test_schema_newer)
{
    const char *path = s_fresh("newer.db", DIM);
    s_raw(path, "PRAGMA user_version = 7");
    s_expect_open(path, STORE_READONLY, STORE_ERR_SCHEMA, "newer");
    s_expect_open(path, STORE_READWRITE, STORE_ERR_SCHEMA, "version 7");
    s_raw(path, "PRAGMA user_version = 0");
    s_expect_open(path, STORE_READWRITE, STORE_ERR_SCHEMA, "never completed");
}
END_TEST

/* A build that knows one schema version more than this one: this build's
 * steps and one that adds a table.  Returns the newer version. */
static store_migration s_next[16];

static int s_newer_build(void)
{
    int n;
    const store_migration *b = store_schema_builtin(&n);
    memcpy(s_next, b, (size_t)n * sizeof *b);
    s_next[n] = (store_migration){n + 1, "CREATE TABLE extra(x INTEGER); "
                                         "INSERT INTO meta VALUES ('migrated', 'yes')"};
    store_schema_set_steps(s_next, n + 1);
    return n + 1;
}

START_TEST(test_schema_older_migrates)
{
    const char *path = s_fresh("older.db", DIM);
    int newer = s_newer_build();
    s_expect_open(path, STORE_READONLY, STORE_ERR_SCHEMA, "attnctl");
    ck_assert_int_eq(tu_sql_int(path, "PRAGMA user_version"), newer - 1);   /* RO touched nothing */
    store *db = s_open(path, STORE_READWRITE);
    char buf[16];
    store_err err = {0};
    ck_assert_int_eq(store_meta_get(db, "migrated", buf, sizeof buf, &err), STORE_OK);
    store_close(&db);
    ck_assert_int_eq(tu_sql_int(path, "PRAGMA user_version"), newer);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM extra"), 0);
    db = s_open(path, STORE_READONLY);   /* now current */
    store_close(&db);
    store_schema_set_steps(NULL, 0);
    /* Back to a build that knows only 1: the file is now too new. */
    s_expect_open(path, STORE_READONLY, STORE_ERR_SCHEMA, "newer");
}
END_TEST

START_TEST(test_locked)
{
    const char *path = s_fresh("locked.db", DIM);
    store *w = s_open(path, STORE_READWRITE);
    int64_t ids[6];
    s_put_items(w, 6, ids);
    store_close(&w);

    sqlite3 *other;
    ck_assert_int_eq(sqlite3_open(path, &other), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(other, "BEGIN EXCLUSIVE; "
                                         "UPDATE meta SET value = '99' WHERE key = 'catalog_version'",
                                  NULL, NULL, NULL), SQLITE_OK);

    /* A writer with a short busy timeout gives up quickly, and says why. */
    store *db = NULL;
    store_err err = {0};
    double t0 = util_now_s();
    ck_assert_msg(store_open(&db, path, STORE_READWRITE, 100, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(store_begin(db, &err), STORE_ERR_BUSY);
    ck_assert_ptr_nonnull(strstr(err.msg, "locked by another writer"));
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_int_eq(store_item_put(db, "new", NULL, NULL, NULL, 1, NULL, &err), STORE_ERR_BUSY);
    ck_assert_int_eq(store_catalog_touch(db, &err), STORE_ERR_BUSY);
    double took = util_now_s() - t0;
    ck_assert_msg(took < 2.0 * tu_slowdown(), "BUSY took %.2f s", took);

    /* Readers work beside the writer (WAL) and see the last commit. */
    store *ro = s_open(path, STORE_READONLY);
    store_catalog *cat = NULL;
    ck_assert_msg(store_catalog_load(ro, &cat, &err) == STORE_OK, "%s", err.msg);
    ck_assert_uint_eq(cat->n, 4);
    ck_assert_int_eq(cat->version, 0);
    store_catalog_free(&cat);
    store_close(&ro);

    ck_assert_int_eq(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    ck_assert_msg(store_begin(db, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(store_catalog_touch(db, &err), STORE_OK);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    int64_t v;
    ck_assert_int_eq(store_catalog_version(db, &v, &err), STORE_OK);
    ck_assert_int_eq(v, 100);
    store_close(&db);
}
END_TEST

/* ---- catalog -------------------------------------------------------------- */

START_TEST(test_catalog_roundtrip)
{
    const char *path = s_fresh("cat.db", DIM);
    store *db = s_open(path, STORE_READWRITE);
    enum { N = 50 };
    int64_t ids[N];
    s_put_items(db, N, ids);
    store_err err = {0};
    ck_assert_int_eq(store_catalog_touch(db, &err), STORE_OK);
    store_close(&db);

    db = s_open(path, STORE_READONLY);
    store_catalog *cat = NULL;
    ck_assert_msg(store_catalog_load(db, &cat, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(cat->dim, DIM);
    ck_assert_uint_eq(cat->n, N - N / 3);
    ck_assert_uint_eq(cat->n_unembedded, N / 3);
    ck_assert_int_eq(cat->version, 1);
    ck_assert_uint_eq((uintptr_t)cat->emb % 64, 0);
    ck_assert_uint_gt(store_catalog_bytes(cat), (size_t)cat->n * DIM * 4);
    uint32_t row = 0;
    for (int k = 0; k < N; k++) {
        char ext[16];
        int len = snprintf(ext, sizeof ext, "i%d", k);
        int64_t r = store_catalog_find(cat, ext, (size_t)len);
        ck_assert_int_eq(store_catalog_row(cat, ids[k]), r);
        if (k % 3 == 2) {
            ck_assert_int_eq(r, -1);
            continue;
        }
        ck_assert_int_eq(r, row);   /* rows in item_id order = insertion order */
        ck_assert_int_eq(cat->item_id[row], ids[k]);
        ck_assert_str_eq(store_catalog_ext(cat, row), ext);
        float e[DIM];
        s_emb(e, k);
        ck_assert_mem_eq(cat->emb + (size_t)row * DIM, e, sizeof e);
        row++;
    }
    for (uint32_t r = 1; r < cat->n; r++)
        ck_assert_int_lt(cat->item_id[r - 1], cat->item_id[r]);
    /* The batched lookup agrees with one-by-one lookups, unknowns included. */
    {
        enum { M = 64 };
        char names[M][16];
        const char *ext[M];
        size_t len[M];
        uint64_t scratch[M];
        int64_t rows[M];
        for (int k = 0; k < M; k++) {
            len[k] = (size_t)snprintf(names[k], sizeof names[k], k % 5 == 4 ? "zz%d" : "i%d",
                                      (k * 7) % N);
            ext[k] = names[k];
        }
        store_catalog_find_many(cat, ext, len, M, scratch, rows);
        for (int k = 0; k < M; k++)
            ck_assert_int_eq(rows[k], store_catalog_find(cat, ext[k], len[k]));
        /* And by item id: unembedded items and ids of no item are -1. */
        int64_t item_ids[M];
        int known = 0;
        for (int k = 0; k < M; k++)
            item_ids[k] = k % 5 == 4 ? 999999 + k : ids[(k * 7) % N];
        store_catalog_row_many(cat, item_ids, M, scratch, rows);
        for (int k = 0; k < M; k++) {
            ck_assert_int_eq(rows[k], store_catalog_row(cat, item_ids[k]));
            known += rows[k] >= 0;
        }
        ck_assert_int_gt(known, M / 2);
    }
    ck_assert_int_eq(store_catalog_find(cat, "i1x", 2), store_catalog_find(cat, "i1", 2));
    ck_assert_int_eq(store_catalog_find(cat, "nope", 4), -1);
    ck_assert_int_eq(store_catalog_find(cat, "", 0), -1);
    ck_assert_int_eq(store_catalog_row(cat, 999999), -1);
    ck_assert_ptr_null(store_catalog_ext(cat, cat->n));

    /* Without its matrix (bfloat16 tables keep their own rows) the catalog
     * is smaller by exactly the matrix and still finds everything. */
    size_t whole = store_catalog_bytes(cat);
    int64_t r1 = store_catalog_find(cat, "i1", 2);
    store_catalog_drop_emb(cat);
    ck_assert_ptr_null(cat->emb);
    ck_assert_uint_eq(store_catalog_bytes(cat), whole - (size_t)cat->n * DIM * sizeof(float));
    ck_assert_int_eq(store_catalog_find(cat, "i1", 2), r1);
    store_catalog_drop_emb(cat);      /* twice is fine */
    store_catalog_drop_emb(NULL);

    /* Popularity: per catalog row, unembedded items ignored. */
    store_catalog_free(&cat);
    store_close(&db);
    db = s_open(path, STORE_READWRITE);
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    int64_t u1, u2;
    ck_assert_int_eq(store_user_put(db, "alice", &u1, &err), STORE_OK);
    ck_assert_int_eq(store_user_put(db, "bob", &u2, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u1, ids[0], 10, NULL, 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u2, ids[0], 11, "click", 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u2, ids[1], 12, NULL, 2.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u2, ids[2], 13, NULL, 2.0f, &err), STORE_OK);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    ck_assert_int_eq(store_catalog_load(db, &cat, &err), STORE_OK);
    float *pop = calloc(cat->n, sizeof *pop);
    ck_assert_int_eq(store_catalog_popularity(db, cat, pop, &err), STORE_OK);
    ck_assert_float_eq(pop[store_catalog_row(cat, ids[0])], 2.0f);
    ck_assert_float_eq(pop[store_catalog_row(cat, ids[1])], 1.0f);
    ck_assert_float_eq(pop[store_catalog_row(cat, ids[3])], 0.0f);
    free(pop);
    store_catalog_free(&cat);
    store_catalog_free(&cat);
    store_catalog_free(NULL);
    store_close(&db);
}
END_TEST

START_TEST(test_catalog_empty)
{
    const char *path = s_fresh("emptycat.db", DIM);
    store *db = s_open(path, STORE_READONLY);
    store_catalog *cat = NULL;
    store_err err = {0};
    ck_assert_int_eq(store_catalog_load(db, &cat, &err), STORE_OK);
    ck_assert_uint_eq(cat->n, 0);
    ck_assert_int_eq(store_catalog_find(cat, "x", 1), -1);
    ck_assert_int_eq(store_catalog_row(cat, 1), -1);
    int64_t item_ids[2] = {1, 2}, rows[2] = {7, 7};
    uint64_t scratch[2];
    store_catalog_row_many(cat, item_ids, 2, scratch, rows);
    ck_assert_int_eq(rows[0], -1);
    ck_assert_int_eq(rows[1], -1);
    ck_assert_int_eq(store_catalog_popularity(db, cat, NULL, &err), STORE_OK);
    store_catalog_free(&cat);
    store_close(&db);
}
END_TEST

/* Put a raw blob (bytes) for ext_id "bad" next to good items, then load. */
static void s_bad_blob(const char *name, const char *blob_sql, const char *n1, const char *n2)
{
    const char *path = s_fresh(name, DIM);
    store *db = s_open(path, STORE_READWRITE);
    int64_t ids[4];
    s_put_items(db, 4, ids);
    store_close(&db);
    char sql[512];
    /* The schema's CHECK would stop a text "embedding"; a careless writer
     * could turn checks off, so the loader must not rely on them. */
    snprintf(sql, sizeof sql, "PRAGMA ignore_check_constraints = ON; "
                              "INSERT INTO items(item_id, ext_id, updated_at, embedding) "
                              "VALUES (77, 'bad', 1, %s)", blob_sql);
    s_raw(path, sql);
    db = s_open(path, STORE_READONLY);
    store_catalog *cat = (store_catalog *)1;
    store_err err = {0};
    ck_assert_int_eq(store_catalog_load(db, &cat, &err), STORE_ERR_CORRUPT);
    ck_assert_ptr_null(cat);
    ck_assert_int_eq(err.code, STORE_ERR_CORRUPT);
    ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "item_id=77")
                  && strstr(err.msg, "'bad'") && strstr(err.msg, n1) && strstr(err.msg, n2),
                  "%s", err.msg);
    store_close(&db);
}

START_TEST(test_catalog_bad_length)
{
    s_bad_blob("short.db", "zeroblob(10)", "10 bytes", "expected 32");
    s_bad_blob("long.db", "zeroblob(36)", "36 bytes", "expected 32");
    s_bad_blob("textemb.db", "'not a blob'", "text", "blob");
}
END_TEST

START_TEST(test_catalog_nonfinite)
{
    /* Little-endian float32: 0000C07F is NaN, 0000807F +Inf. */
    s_bad_blob("nan.db", "CAST(zeroblob(20) || X'0000C07F' || zeroblob(8) AS BLOB)", "component 5", "finite");
    s_bad_blob("inf.db", "CAST(X'0000807F' || zeroblob(28) AS BLOB)", "component 0", "inf");
}
END_TEST

/* ---- writers and histories ------------------------------------------------ */

START_TEST(test_item_put_semantics)
{
    const char *path = s_fresh("put.db", DIM);
    store *db = s_open(path, STORE_READWRITE);
    store_err err = {0};
    float e[DIM];
    s_emb(e, 1);
    int64_t a, b;
    ck_assert_int_eq(store_item_put(db, "x", "Title", "words", e, 5, &a, &err), STORE_OK);
    /* Same text, no embedding: the embedding stays, the id stays. */
    ck_assert_int_eq(store_item_put(db, "x", NULL, NULL, NULL, 6, &b, &err), STORE_OK);
    ck_assert_int_eq(a, b);
    ck_assert_int_eq(tu_sql_int(path, "SELECT length(embedding) FROM items WHERE ext_id = 'x'"),
                     DIM * 4);
    ck_assert_int_eq(tu_sql_int(path, "SELECT updated_at FROM items WHERE ext_id = 'x'"), 6);
    char title[8];
    ck_assert_int_eq(store_item_title(db, a, title, sizeof title, &err), STORE_OK);
    ck_assert_str_eq(title, "Title");
    /* New text, no embedding: stale, cleared. */
    ck_assert_int_eq(store_item_put(db, "x", NULL, "other words", NULL, 7, &b, &err), STORE_OK);
    ck_assert_int_eq(a, b);
    ck_assert_int_eq(tu_sql_int(path, "SELECT embedding IS NULL FROM items WHERE ext_id = 'x'"), 1);
    ck_assert_int_eq(store_item_set_embedding(db, a, e, &err), STORE_OK);
    ck_assert_int_eq(store_item_set_embedding(db, 4242, e, &err), STORE_ERR_NOTFOUND);
    ck_assert_int_eq(store_item_title(db, 4242, title, sizeof title, &err), STORE_ERR_NOTFOUND);
    ck_assert_str_eq(title, "");
    ck_assert_int_eq(store_item_id(db, "x", 1, &b, &err), STORE_OK);
    ck_assert_int_eq(a, b);
    ck_assert_int_eq(store_item_id(db, "y", 1, &b, &err), STORE_ERR_NOTFOUND);

    /* Bad embeddings are refused naming the ext_id. */
    e[3] = NAN;
    ck_assert_int_eq(store_item_put(db, "nan-item", NULL, NULL, e, 1, NULL, &err),
                     STORE_ERR_CORRUPT);
    ck_assert_msg(strstr(err.msg, "nan-item") && strstr(err.msg, "component 3"), "%s", err.msg);
    s_emb(e, 1);
    ck_assert_int_eq(store_item_put_dim(db, "short-item", NULL, NULL, e, DIM - 1, 1, NULL, &err),
                     STORE_ERR_DIM);
    ck_assert_msg(strstr(err.msg, "short-item") && strstr(err.msg, "7") && strstr(err.msg, "8"),
                  "%s", err.msg);
    ck_assert_int_eq(store_item_put(db, "", NULL, NULL, e, 1, NULL, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM items"), 1);

    /* Events: upsert on the key, weights checked, foreign keys on. */
    int64_t u, u2;
    ck_assert_int_eq(store_user_put(db, "ann", &u, &err), STORE_OK);
    ck_assert_int_eq(store_user_put(db, "ann", &u2, &err), STORE_OK);
    ck_assert_int_eq(u, u2);
    ck_assert_int_eq(store_event_put(db, u, a, 100, "view", 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u, a, 100, "view", 3.0f, &err), STORE_OK);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM interactions"), 1);
    ck_assert_int_eq(tu_sql_int(path, "SELECT weight FROM interactions"), 3);
    ck_assert_int_eq(store_event_put(db, u, a, 100, "buy", 1.0f, &err), STORE_OK);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM interactions"), 2);
    ck_assert_int_eq(store_event_put(db, u, a, 101, NULL, 0.0f, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_event_put(db, u, a, 101, NULL, -1.0f, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_event_put(db, u, a, 101, NULL, INFINITY, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_event_put(db, u + 100, a, 101, NULL, 1.0f, &err), STORE_ERR_NOTFOUND);
    ck_assert_int_eq(store_event_put(db, u, a + 100, 101, NULL, 1.0f, &err), STORE_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "interactions"));
    ck_assert_int_eq(store_meta_set(db, "embedder", "{\"kind\":\"tfidf\"}", &err), STORE_OK);
    ck_assert_int_eq(store_meta_set(db, "embedding_dim", "16", &err), STORE_ERR_INVAL);
    store_rollback(db);   /* no transaction open: harmless */
    store_rollback(NULL);
    store_close(&db);
}
END_TEST

START_TEST(test_history_order)
{
    const char *path = s_fresh("hist.db", DIM);
    store *db = s_open(path, STORE_READWRITE);
    int64_t ids[6];
    s_put_items(db, 6, ids);
    store_err err = {0};
    int64_t u, other;
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    ck_assert_int_eq(store_user_put(db, "u1", &u, &err), STORE_OK);
    ck_assert_int_eq(store_user_put(db, "u2", &other, &err), STORE_OK);
    int64_t idle;
    ck_assert_int_eq(store_user_put(db, "u3", &idle, &err), STORE_OK);   /* no events */
    /* Written out of order; ids[2..4] share ts 200. */
    ck_assert_int_eq(store_event_put(db, u, ids[3], 200, NULL, 1.5f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u, ids[0], 100, NULL, 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u, ids[5], 300, NULL, 2.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u, ids[4], 200, NULL, 0.5f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u, ids[2], 200, NULL, 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, other, ids[1], 999, NULL, 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    store_close(&db);

    db = s_open(path, STORE_READONLY);
    int64_t uid;
    ck_assert_int_eq(store_user_id(db, "u1xyz", 2, &uid, &err), STORE_OK);   /* not NUL-ended */
    ck_assert_int_eq(uid, u);
    ck_assert_int_eq(store_user_id(db, "nobody", 6, &uid, &err), STORE_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "nobody"));
    store_event ev[10];
    int n = -1;
    ck_assert_int_eq(store_history(db, u, 10, ev, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 5);
    const int64_t want_item[] = {ids[5], ids[4], ids[3], ids[2], ids[0]};
    const int64_t want_ts[] = {300, 200, 200, 200, 100};
    const float want_w[] = {2.0f, 0.5f, 1.5f, 1.0f, 1.0f};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(ev[i].item_id, want_item[i]);
        ck_assert_int_eq(ev[i].ts, want_ts[i]);
        ck_assert_float_eq(ev[i].weight, want_w[i]);
    }
    ck_assert_int_eq(store_history(db, u, 2, ev, &n, &err), STORE_OK);   /* newest max */
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ev[1].item_id, ids[4]);
    ck_assert_int_eq(store_history(db, u, 0, NULL, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(store_history(db, 12345, 10, ev, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 0);

    /* By ext_id, in one statement: the same events, the same order. */
    store_event by_ext[10];
    int m = -1;
    ck_assert_int_eq(store_user_history(db, "u1xyz", 2, 10, by_ext, &m, &err), STORE_OK);
    ck_assert_int_eq(m, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(by_ext[i].item_id, want_item[i]);
        ck_assert_int_eq(by_ext[i].ts, want_ts[i]);
        ck_assert_float_eq(by_ext[i].weight, want_w[i]);
    }
    ck_assert_int_eq(store_user_history(db, "u1", 2, 2, by_ext, &m, &err), STORE_OK);
    ck_assert_int_eq(m, 2);
    ck_assert_int_eq(by_ext[1].item_id, ids[4]);
    ck_assert_int_eq(store_user_history(db, "u2", 2, 10, by_ext, &m, &err), STORE_OK);
    ck_assert_int_eq(m, 1);
    ck_assert_int_eq(by_ext[0].ts, 999);
    m = -1;
    ck_assert_int_eq(store_user_history(db, "u3", 2, 10, by_ext, &m, &err), STORE_OK);
    ck_assert_int_eq(m, 0);   /* a user without events is not an unknown user */
    ck_assert_int_eq(store_user_history(db, "u1", 2, 0, NULL, &m, &err), STORE_OK);
    ck_assert_int_eq(m, 0);
    ck_assert_int_eq(store_user_history(db, "nobody", 6, 10, by_ext, &m, &err),
                     STORE_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "no ext_id 'nobody'"));
    ck_assert_int_eq(store_user_history(db, "nobody", 6, 0, NULL, &m, &err), STORE_ERR_NOTFOUND);

    /* Both plans walk the primary key; no sort step, no table lookups. */
    const char *const plans[] = {"EXPLAIN QUERY PLAN " STORE_SQL_HISTORY,
                                 "EXPLAIN QUERY PLAN " STORE_SQL_USER_HISTORY};
    for (int p = 0; p < 2; p++) {
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(store_sqlite(db), plans[p], -1, &st, NULL),
                         SQLITE_OK);
        if (p)
            sqlite3_bind_text(st, 1, "u1", 2, SQLITE_STATIC);
        else
            sqlite3_bind_int64(st, 1, u);
        sqlite3_bind_int(st, 2, 10);
        int walks = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *detail = (const char *)sqlite3_column_text(st, 3);
            ck_assert_msg(!strstr(detail, "TEMP B-TREE"), "history sorts: %s", detail);
            walks += strstr(detail, "PRIMARY KEY") != NULL;
        }
        ck_assert_msg(walks == 1, "history plan %d walks the primary key %d times", p, walks);
        sqlite3_finalize(st);
    }
    store_close(&db);
}
END_TEST

/* A stored weight the schema's CHECK lets through (infinity) is refused on
 * read, naming the row, by user id and by ext_id alike. */
START_TEST(test_history_bad_weight)
{
    const char *path = s_fresh("histw.db", DIM);
    store *db = s_open(path, STORE_READWRITE);
    int64_t ids[1], u;
    s_put_items(db, 1, ids);
    store_err err = {0};
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    ck_assert_int_eq(store_user_put(db, "u1", &u, &err), STORE_OK);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    store_close(&db);
    char sql[160];
    snprintf(sql, sizeof sql, "INSERT INTO interactions(user_id, item_id, ts, weight) "
             "VALUES (%lld, %lld, 5, 1e999)", (long long)u, (long long)ids[0]);
    s_raw(path, sql);
    db = s_open(path, STORE_READONLY);
    char want[64];
    snprintf(want, sizeof want, "user_id=%lld item_id=%lld ts=5", (long long)u,
             (long long)ids[0]);
    store_event ev[4];
    int n;
    ck_assert_int_eq(store_history(db, u, 4, ev, &n, &err), STORE_ERR_CORRUPT);
    ck_assert_msg(strstr(err.msg, want), "%s", err.msg);
    ck_assert_int_eq(store_user_history(db, "u1", 2, 4, ev, &n, &err), STORE_ERR_CORRUPT);
    ck_assert_msg(strstr(err.msg, want), "%s", err.msg);
    store_close(&db);
}
END_TEST

/* ---- models --------------------------------------------------------------- */

static attn_model *s_model(int d, int m, int heads, int l_max, int n, int residual, uint64_t seed)
{
    attn_model *md = attn_model_new(d, m, heads, l_max, n, residual);
    ck_assert_ptr_nonnull(md);
    tu_rng r = {seed};
    tu_fill_normal(&r, md->wq, (size_t)d * m, 0.3f);
    tu_fill_normal(&r, md->wk, (size_t)d * m, 0.3f);
    tu_fill_normal(&r, md->wv, (size_t)d * m, 0.3f);
    tu_fill_normal(&r, md->wo, (size_t)m * d, 0.3f);
    tu_fill_normal(&r, md->pos_bias, (size_t)l_max, 0.1f);
    for (int i = 0; i < n; i++)
        md->item_ids[i] = 3 * i + 1;
    if (n) {
        tu_fill_normal(&r, md->item_bias, (size_t)n, 0.1f);
        if (residual)
            tu_fill_normal(&r, md->residual, (size_t)n * d, 0.1f);
    }
    md->scale = 0.37f;
    return md;
}

/* s_model with a self-attention block of window sa_len. */
static attn_model *s_model_sa(int d, int m, int sa_len, uint64_t seed)
{
    attn_model *md = s_model(d, m, 2, 10, 4, 1, seed);
    ck_assert_int_eq(attn_model_add_sa(md, sa_len), 0);
    tu_rng r = {seed + 1};
    float *w[4] = {md->sa_q, md->sa_k, md->sa_uk, md->sa_uv};
    for (int i = 0; i < 4; i++)
        tu_fill_normal(&r, w[i], (size_t)d * m, 0.3f);
    tu_fill_normal(&r, md->sa_pos, (size_t)sa_len, 0.1f);
    return md;
}

/* s_model_sa with a feed-forward layer of width ffn on its block. */
static attn_model *s_model_ffn(int d, int m, int sa_len, int ffn, uint64_t seed)
{
    attn_model *md = s_model_sa(d, m, sa_len, seed);
    ck_assert_int_eq(attn_model_add_ffn(md, ffn), 0);
    tu_rng r = {seed + 2};
    tu_fill_normal(&r, md->ffn_w1, 2 * (size_t)m * ffn, 0.3f);
    tu_fill_normal(&r, md->ffn_b1, (size_t)ffn, 0.1f);
    tu_fill_normal(&r, md->ffn_w2, 2 * (size_t)m * ffn, 0.3f);
    tu_fill_normal(&r, md->ffn_b2, 2 * (size_t)m, 0.1f);
    return md;
}

static void s_same_array(const void *a, const void *b, size_t bytes, const char *what)
{
    ck_assert_msg((a == NULL) == (b == NULL), "%s: presence differs", what);
    if (a)
        ck_assert_msg(!memcmp(a, b, bytes), "%s differs", what);
}

static void s_same_model(const attn_model *a, const attn_model *b)
{
    ck_assert_int_eq(a->d, b->d);
    ck_assert_int_eq(a->m, b->m);
    ck_assert_int_eq(a->heads, b->heads);
    ck_assert_int_eq(a->l_max, b->l_max);
    ck_assert_float_eq(a->scale, b->scale);
    ck_assert_int_eq(a->n_items, b->n_items);
    size_t dm = (size_t)a->d * a->m * 4, n = (size_t)a->n_items;
    s_same_array(a->wq, b->wq, dm, "wq");
    s_same_array(a->wk, b->wk, dm, "wk");
    s_same_array(a->wv, b->wv, dm, "wv");
    s_same_array(a->wo, b->wo, dm, "wo");
    s_same_array(a->pos_bias, b->pos_bias, (size_t)a->l_max * 4, "pos_bias");
    s_same_array(a->item_ids, b->item_ids, n * 8, "item_ids");
    s_same_array(a->item_bias, b->item_bias, n * 4, "item_bias");
    s_same_array(a->residual, b->residual, n * a->d * 4, "residual");
    ck_assert_int_eq(a->sa_len, b->sa_len);
    s_same_array(a->sa_q, b->sa_q, dm, "sa_q");
    s_same_array(a->sa_k, b->sa_k, dm, "sa_k");
    s_same_array(a->sa_uk, b->sa_uk, dm, "sa_uk");
    s_same_array(a->sa_uv, b->sa_uv, dm, "sa_uv");
    s_same_array(a->sa_pos, b->sa_pos, (size_t)a->sa_len * 4, "sa_pos");
    ck_assert_int_eq(a->ffn, b->ffn);
    size_t fw = 2 * (size_t)a->m * a->ffn * 4;
    s_same_array(a->ffn_w1, b->ffn_w1, fw, "ffn_w1");
    s_same_array(a->ffn_b1, b->ffn_b1, (size_t)a->ffn * 4, "ffn_b1");
    s_same_array(a->ffn_w2, b->ffn_w2, fw, "ffn_w2");
    s_same_array(a->ffn_b2, b->ffn_b2, a->ffn ? 2 * (size_t)a->m * 4 : 0, "ffn_b2");
}

START_TEST(test_model_roundtrip)
{
    const char *path = s_fresh("model.db", DIM);
    store *db = s_open(path, STORE_READWRITE);
    store_err err = {0};

    /* Version 0: the identity model. */
    attn_model *md = NULL;
    ck_assert_msg(store_model_load(db, STORE_MODEL_ACTIVE, &md, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(md->version, 0);
    ck_assert_int_eq(md->d, DIM);
    ck_assert_int_eq(md->m, DIM);
    ck_assert_int_eq(md->heads, 1);
    ck_assert_int_eq(md->l_max, 200);
    ck_assert_float_eq(md->scale, ATTN_IDENTITY_SCALE);
    ck_assert_ptr_null(md->wq);
    ck_assert_ptr_null(md->wo);
    ck_assert_int_eq(md->n_items, 0);
    attn_model_free(&md);

    attn_model *a = s_model(DIM, 12, 3, 20, 5, 1, 7);
    int64_t v1 = -1;
    ck_assert_msg(store_model_save(db, a, "{\"lr\":0.001,\"epochs\":3}", "{\"hr10\":0.5}", 0, &v1,
                                   &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(v1, 1);
    int64_t act;
    ck_assert_int_eq(store_model_active(db, &act, &err), STORE_OK);
    ck_assert_int_eq(act, 0);
    ck_assert_msg(store_model_load(db, v1, &md, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(md->version, v1);
    s_same_model(a, md);
    attn_model_free(&md);

    ck_assert_msg(store_model_activate(db, v1, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(store_model_active(db, &act, &err), STORE_OK);
    ck_assert_int_eq(act, v1);
    ck_assert_int_eq(store_model_load(db, STORE_MODEL_ACTIVE, &md, &err), STORE_OK);
    ck_assert_int_eq(md->version, v1);
    attn_model_free(&md);

    /* A model with identity projections, no per-item arrays, activated on save. */
    attn_model *b = attn_model_identity(DIM, 30);
    b->pos_bias[0] = 0.25f;
    int64_t v2;
    ck_assert_int_eq(store_model_save(db, b, NULL, NULL, 1, &v2, &err), STORE_OK);
    ck_assert_int_eq(v2, 2);
    ck_assert_int_eq(store_model_active(db, &act, &err), STORE_OK);
    ck_assert_int_eq(act, v2);
    ck_assert_int_eq(store_model_load(db, v2, &md, &err), STORE_OK);
    s_same_model(b, md);
    attn_model_free(&md);

    store_model_info *list = NULL;
    size_t n = 0;
    ck_assert_int_eq(store_model_list(db, &list, &n, &err), STORE_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(list[1].version, 1);
    ck_assert_int_eq(list[1].heads, 3);
    ck_assert_int_eq(list[1].active, 0);
    ck_assert_int_eq(list[2].active, 1);
    ck_assert_ptr_nonnull(strstr(list[1].config, "\"lr\""));
    ck_assert_ptr_nonnull(strstr(list[1].config, "\"m\":12"));
    ck_assert_str_eq(list[1].metrics, "{\"hr10\":0.5}");
    ck_assert_ptr_null(list[2].metrics);
    store_model_list_free(&list, n);
    ck_assert_ptr_null(list);

    /* Refusals: config disagreeing with the model, bad metrics, wrong d,
     * unknown versions. */
    ck_assert_int_eq(store_model_save(db, a, "{\"m\":16}", NULL, 0, NULL, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_model_save(db, a, "[1]", NULL, 0, NULL, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_model_save(db, a, NULL, "{oops", 0, NULL, &err), STORE_ERR_INVAL);
    attn_model *wrong = s_model(DIM * 2, 4, 1, 5, 0, 0, 3);
    ck_assert_int_eq(store_model_save(db, wrong, NULL, NULL, 0, NULL, &err), STORE_ERR_DIM);
    ck_assert_msg(strstr(err.msg, "16") && strstr(err.msg, "8"), "%s", err.msg);
    attn_model_free(&wrong);
    ck_assert_int_eq(store_model_load(db, 99, &md, &err), STORE_ERR_NOTFOUND);
    ck_assert_ptr_null(md);
    ck_assert_int_eq(store_model_activate(db, 99, &err), STORE_ERR_NOTFOUND);
    ck_assert_int_eq(store_model_active(db, &act, &err), STORE_OK);
    ck_assert_int_eq(act, v2);

    /* Saving inside the caller's transaction joins it. */
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    int64_t v3;
    ck_assert_int_eq(store_model_save(db, a, NULL, NULL, 1, &v3, &err), STORE_OK);
    store_rollback(db);
    ck_assert_int_eq(store_model_load(db, v3, &md, &err), STORE_ERR_NOTFOUND);
    ck_assert_int_eq(store_model_active(db, &act, &err), STORE_OK);
    ck_assert_int_eq(act, v2);

    /* A model with a self-attention block. */
    attn_model *c = s_model_sa(DIM, 12, 3, 17);
    int64_t vc;
    ck_assert_msg(store_model_save(db, c, NULL, NULL, 0, &vc, &err) == STORE_OK, "%s", err.msg);
    ck_assert_msg(store_model_load(db, vc, &md, &err) == STORE_OK, "%s", err.msg);
    s_same_model(c, md);
    attn_model_free(&md);
    attn_model_free(&c);

    /* And a feed-forward layer on the block, bit for bit; the listing
     * reads its width from the config. */
    attn_model *f = s_model_ffn(DIM, 16, 3, 32, 19);
    int64_t vf;
    ck_assert_msg(store_model_save(db, f, NULL, NULL, 0, &vf, &err) == STORE_OK, "%s", err.msg);
    ck_assert_msg(store_model_load(db, vf, &md, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(md->ffn, 32);
    s_same_model(f, md);
    attn_model_free(&md);
    attn_model_free(&f);
    store_model_info *ml = NULL;
    size_t nl = 0;
    ck_assert_int_eq(store_model_list(db, &ml, &nl, &err), STORE_OK);
    ck_assert_int_eq(ml[nl - 1].version, vf);
    ck_assert_int_eq(ml[nl - 1].ffn, 32);
    ck_assert_int_eq(ml[nl - 2].ffn, 0);
    store_model_list_free(&ml, nl);

    /* A config from before the layer existed (no "ffn" key) loads as none. */
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE models SET config = json_remove(config, '$.ffn') WHERE "
             "version = %lld", (long long)vc);
    store_close(&db);
    s_raw(path, sql);
    db = s_open(path, STORE_READWRITE);
    ck_assert_msg(store_model_load(db, vc, &md, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(md->ffn, 0);
    ck_assert_ptr_null(md->ffn_w1);
    attn_model_free(&md);

    attn_model_free(&a);
    attn_model_free(&b);
    store_close(&db);
}
END_TEST

START_TEST(test_model_dim_mismatch)
{
    const char *path = s_fresh("mdim.db", DIM);
    s_raw(path, "INSERT INTO models(version, created_at, heads, d_model, config) VALUES "
                "(5, 0, 1, 4, '{\"d\":4,\"m\":4,\"heads\":1,\"l_max\":10,\"scale\":1}')");
    store *db = s_open(path, STORE_READWRITE);
    attn_model *md = NULL;
    store_err err = {0};
    ck_assert_int_eq(store_model_load(db, 5, &md, &err), STORE_ERR_DIM);
    ck_assert_msg(strstr(err.msg, "d_model 4") && strstr(err.msg, "embedding_dim is 8")
                  && strstr(err.msg, path), "%s", err.msg);
    ck_assert_int_eq(store_model_activate(db, 5, &err), STORE_ERR_DIM);
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot activate"));
    int64_t act;
    ck_assert_int_eq(store_model_active(db, &act, &err), STORE_OK);
    ck_assert_int_eq(act, 0);
    store_close(&db);
}
END_TEST

/* Save a good model, break one tensor with SQL, expect code and words. */
static void s_break_tensor(const char *name, const char *sql, int code, const char *w1,
                           const char *w2)
{
    const char *path = s_fresh(name, DIM);
    store *db = s_open(path, STORE_READWRITE);
    store_err err = {0};
    /* Names starting "t-sa" get a self-attention block, "t-ffn" a block
     * with a feed-forward layer of width 32. */
    attn_model *a = !strncmp(name, "t-sa", 4)    ? s_model_sa(DIM, DIM, 3, 11)
                    : !strncmp(name, "t-ffn", 5) ? s_model_ffn(DIM, DIM, 3, 32, 11)
                                                 : s_model(DIM, DIM, 2, 10, 4, 1, 11);
    int64_t v;
    ck_assert_int_eq(store_model_save(db, a, NULL, NULL, 0, &v, &err), STORE_OK);
    attn_model_free(&a);
    store_close(&db);
    s_raw(path, sql);
    db = s_open(path, STORE_READWRITE);
    attn_model *md = (attn_model *)1;
    int rc = store_model_load(db, v, &md, &err);
    ck_assert_msg(rc == code, "%s: got %s: %s", name, store_strerror(rc), err.msg);
    ck_assert_ptr_null(md);
    ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, w1) && (!w2 || strstr(err.msg, w2)),
                  "%s", err.msg);
    /* Activation refuses it; version 0 stays active. */
    ck_assert_int_eq(store_model_activate(db, v, &err), code);
    int64_t act;
    ck_assert_int_eq(store_model_active(db, &act, &err), STORE_OK);
    ck_assert_int_eq(act, 0);
    store_close(&db);
}

START_TEST(test_model_corrupt_tensor)
{
    s_break_tensor("t-short.db",
                   "UPDATE model_tensors SET data = substr(data, 1, 10) WHERE name = 'wq'",
                   STORE_ERR_CORRUPT, "'wq'", "10 bytes");
    s_break_tensor("t-nan.db",
                   "UPDATE model_tensors SET data = CAST(X'0000C07F' || substr(data, 5) AS BLOB) "
                   "WHERE name = 'pos_bias'", STORE_ERR_CORRUPT, "'pos_bias'", "finite");
    s_break_tensor("t-shape.db",
                   "UPDATE model_tensors SET rows = cols, cols = rows WHERE name = 'residual'",
                   STORE_ERR_CORRUPT, "'residual'", "expected 4x8");
    s_break_tensor("t-order.db",
                   "UPDATE model_tensors SET data = CAST(X'0200000000000000' || substr(data, 9, 8) || "
                   "X'0100000000000000' || substr(data, 25) AS BLOB) WHERE name = 'item_ids'",
                   STORE_ERR_CORRUPT, "'item_ids'", "ascending");
    s_break_tensor("t-dtype.db", "UPDATE model_tensors SET dtype = 'i64' WHERE name = 'wk'",
                   STORE_ERR_CORRUPT, "'wk'", "dtype");
    s_break_tensor("t-orphan.db", "DELETE FROM model_tensors WHERE name = 'item_ids'",
                   STORE_ERR_CORRUPT, "without 'item_ids'", NULL);
    s_break_tensor("t-unknown.db",
                   "INSERT INTO model_tensors VALUES (1, 'ffn1', 1, 1, 'f32', zeroblob(4))",
                   STORE_ERR_SCHEMA, "'ffn1'", NULL);
    s_break_tensor("t-config.db", "UPDATE models SET config = '{\"d\":8}' WHERE version = 1",
                   STORE_ERR_CORRUPT, "config", NULL);
    s_break_tensor("t-sa-missing.db", "DELETE FROM model_tensors WHERE name = 'sa_uk'",
                   STORE_ERR_CORRUPT, "'sa_uk'", "missing");
    s_break_tensor("t-sa-nan.db",
                   "UPDATE model_tensors SET data = CAST(substr(data, 1, 4) || X'0000C07F' || "
                   "substr(data, 9) AS BLOB) WHERE name = 'sa_pos'",
                   STORE_ERR_CORRUPT, "'sa_pos'", "finite");
    s_break_tensor("t-sa-shape.db", "UPDATE model_tensors SET rows = 4, cols = 16 WHERE "
                   "name = 'sa_q'", STORE_ERR_CORRUPT, "'sa_q'", "expected 8x8");
    s_break_tensor("t-sa-config.db", "UPDATE models SET config = json_set(config, '$.sa_len', "
                   "0) WHERE version = 1", STORE_ERR_CORRUPT, "sa_len=0", "present");
    s_break_tensor("t-sa-range.db", "UPDATE models SET config = json_set(config, '$.sa_len', "
                   "1000) WHERE version = 1", STORE_ERR_CORRUPT, "sa_len", NULL);
    /* The block's feed-forward layer: all four tensors as the config says,
     * each named when it is not. */
    const char *ffn_t[] = {"ffn_w1", "ffn_b1", "ffn_w2", "ffn_b2"};
    for (int i = 0; i < 4; i++) {
        char sql[96], want[16];
        snprintf(sql, sizeof sql, "DELETE FROM model_tensors WHERE name = '%s'", ffn_t[i]);
        snprintf(want, sizeof want, "'%s'", ffn_t[i]);
        s_break_tensor("t-ffn-missing.db", sql, STORE_ERR_CORRUPT, want, "missing");
    }
    s_break_tensor("t-ffn-nokey.db", "UPDATE models SET config = json_remove(config, '$.ffn') "
                   "WHERE version = 1", STORE_ERR_CORRUPT, "ffn=0", "'ffn_w1' is present");
    s_break_tensor("t-ffn-shape.db", "UPDATE model_tensors SET rows = cols, cols = rows WHERE "
                   "name = 'ffn_w1'", STORE_ERR_CORRUPT, "'ffn_w1'", "expected 16x32");
    s_break_tensor("t-ffn-nan.db",
                   "UPDATE model_tensors SET data = CAST(substr(data, 1, 8) || X'0000C07F' || "
                   "substr(data, 13) AS BLOB) WHERE name = 'ffn_w2'",
                   STORE_ERR_CORRUPT, "'ffn_w2'", "finite");
    s_break_tensor("t-ffn-width.db", "UPDATE models SET config = json_set(config, '$.ffn', 24) "
                   "WHERE version = 1", STORE_ERR_CORRUPT, "ffn=24", "multiple of 16");
    s_break_tensor("t-ffn-range.db", "UPDATE models SET config = json_set(config, '$.ffn', "
                   "2048) WHERE version = 1", STORE_ERR_CORRUPT, "'ffn'", "0..1024");
    s_break_tensor("t-ffn-block.db", "UPDATE models SET config = json_set(config, '$.sa_len', 0)"
                   " WHERE version = 1", STORE_ERR_CORRUPT, "ffn=32", "self-attention block");
    /* A layer's tensors under a model that has none. */
    s_break_tensor("t-sa-ffn.db", "INSERT INTO model_tensors SELECT version, 'ffn_b1', 1, 16, "
                   "'f32', zeroblob(64) FROM models WHERE version = 1", STORE_ERR_CORRUPT,
                   "ffn=0", "'ffn_b1' is present");
}
END_TEST

/* ---- attnctl init / model ------------------------------------------------- */

#ifdef ATTN_BIN_DIR
static int s_attnctl(const char *args, char *out, size_t len)
{
    return tu_run_program("attnctl", args, out, len);
}
#endif

START_TEST(test_attnctl)
{
#ifdef ATTN_BIN_DIR
    char bin[600];
    snprintf(bin, sizeof bin, "%s/attnctl", ATTN_BIN_DIR);
    /* make check builds the programs before the suites: absent is a failure. */
    ck_assert_msg(access(bin, X_OK) == 0, "%s is not built", bin);
    char out[4096], args[1024];
    const char *path = tu_path("ctl.db");
    unlink(path);
    snprintf(args, sizeof args, "init %s --dim 16", path);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 1, "%s", out);   /* refuses to overwrite */
    ck_assert_ptr_nonnull(strstr(out, "refusing"));
    snprintf(args, sizeof args, "init %s", path);
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 2);
    snprintf(args, sizeof args, "init %s --dim zero", tu_path("ctl2.db"));
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 2);

    store *db = s_open(path, STORE_READWRITE);
    attn_model *a = s_model(16, 16, 2, 10, 0, 0, 5);
    store_err err = {0};
    ck_assert_int_eq(store_model_save(db, a, NULL, "{\"ndcg10\":0.25}", 0, NULL, &err), STORE_OK);
    attn_model_free(&a);
    store_close(&db);

    snprintf(args, sizeof args, "model list %s", path);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "ndcg10") && strstr(out, "version"), "%s", out);
    snprintf(args, sizeof args, "model activate %s 1", path);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    ck_assert_int_eq(tu_sql_int(path, "SELECT version FROM models WHERE active = 1"), 1);
    snprintf(args, sizeof args, "model activate %s 9", path);
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 1);
    ck_assert_int_eq(tu_sql_int(path, "SELECT version FROM models WHERE active = 1"), 1);
    snprintf(args, sizeof args, "model activate %s x", path);
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 2);
    /* inspect shows a block's window and its feed-forward width. */
    db = s_open(path, STORE_READWRITE);
    a = s_model_ffn(16, 16, 4, 48, 6);
    ck_assert_int_eq(store_model_save(db, a, NULL, NULL, 0, NULL, &err), STORE_OK);
    attn_model_free(&a);
    store_close(&db);
    snprintf(args, sizeof args, "inspect %s", path);
    s_attnctl(args, out, sizeof out);   /* an empty catalog is a problem: exit 1 */
    ck_assert_msg(strstr(out, "version 2: d 16, 2 heads, self-attention window 4, "
                              "feed-forward 48"), "%s", out);
#endif
}
END_TEST

/* ---- inspection, sampling, migration (inspect.c, sample.c, init.c) -------- */

/* Items i0..i9 (i2, i5, i8 not embedded), users u0..u2 with events of
 * three kinds: u0 4 events, u1 2, u2 1. */
static const char *s_small_db(const char *name)
{
    const char *path = s_fresh(name, DIM);
    store *db = s_open(path, STORE_READWRITE);
    int64_t ids[10], u[3];
    s_put_items(db, 10, ids);
    store_err err = {0};
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    for (int k = 0; k < 3; k++) {
        char ext[8];
        snprintf(ext, sizeof ext, "u%d", k);
        ck_assert_int_eq(store_user_put(db, ext, &u[k], &err), STORE_OK);
    }
    static const struct { int u, item, ts; const char *kind; } ev[] = {
        {0, 0, 10, NULL}, {0, 1, 11, "like"}, {0, 3, 12, NULL}, {0, 4, 13, "buy"},
        {1, 0, 10, "like"}, {1, 6, 20, NULL}, {2, 7, 30, NULL},
    };
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++)
        ck_assert_int_eq(store_event_put(db, u[ev[i].u], ids[ev[i].item], ev[i].ts, ev[i].kind,
                                         1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    store_close(&db);
    return path;
}

typedef struct s_problems {
    int n;
    char text[4096];
} s_problems;

static void s_collect(void *ctx, const char *msg)
{
    s_problems *p = ctx;
    ck_assert_msg(!strchr(msg, '\n') && *msg, "bad problem line '%s'", msg);
    p->n++;
    size_t used = strlen(p->text);
    snprintf(p->text + used, sizeof p->text - used, "%s\n", msg);
}

START_TEST(test_inspect)
{
    const char *path = s_small_db("inspect.db");
    store *db = s_open(path, STORE_READONLY);
    store_summary sum;
    store_err err = {0};
    ck_assert_msg(store_summary_read(db, &sum, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(sum.schema_version, STORE_SCHEMA_VERSION);
    ck_assert_int_eq(sum.items, 10);
    ck_assert_int_eq(sum.items_embedded, 7);
    ck_assert_int_eq(sum.users, 3);
    ck_assert_int_eq(sum.events, 7);
    ck_assert_int_eq(sum.n_kinds, 3);
    ck_assert_str_eq(sum.kind[0].name, "view");
    ck_assert_int_eq(sum.kind[0].events, 4);
    ck_assert_str_eq(sum.kind[1].name, "like");
    ck_assert_int_eq(sum.kind[1].events, 2);
    ck_assert_int_eq(sum.users_with_events, 3);
    ck_assert_int_eq(sum.per_user_min, 1);
    ck_assert_int_eq(sum.per_user_max, 4);
    ck_assert(sum.per_user_median == 2.0);
    s_problems p = {0};
    ck_assert_int_eq(store_check(db, s_collect, &p), 0);     /* healthy */
    ck_assert_int_eq(p.n, 0);
    store_close(&db);

    /* Break it the ways a hand or another program could. */
    s_raw(path, "PRAGMA ignore_check_constraints = ON;"   /* as an older writer might */
                "UPDATE items SET embedding = x'0000' WHERE ext_id = 'i0';"
                "UPDATE items SET embedding = x'0000803f0000c07f0000803f0000803f"
                "0000803f0000803f0000803f0000803f' WHERE ext_id = 'i1';"   /* NaN at 1 */
                "INSERT INTO interactions(user_id, item_id, ts) VALUES (1, 999, 5);"
                "INSERT INTO users(ext_id) VALUES ('lonely');"
                "UPDATE interactions SET weight = 0 WHERE ts = 30;");
    db = s_open(path, STORE_READONLY);
    ck_assert_int_eq(store_check(db, s_collect, &p), 5);
    ck_assert_int_eq(p.n, 5);
    ck_assert_msg(strstr(p.text, "item 1 ('i0'): embedding is 2 bytes, embedding_dim 8 needs 32"),
                  "%s", p.text);
    ck_assert_msg(strstr(p.text, "('i1'): embedding component 1 is not finite"), "%s", p.text);
    ck_assert_msg(strstr(p.text, "1 events point to missing items"), "%s", p.text);
    ck_assert_msg(strstr(p.text, "1 users have no events"), "%s", p.text);
    ck_assert_msg(strstr(p.text, "1 events have a weight that is not > 0"), "%s", p.text);
    store_close(&db);
}
END_TEST

/* A read transaction holds its snapshot while a writer commits beside it. */
START_TEST(test_read_snapshot)
{
    const char *path = s_small_db("snap.db");
    store *rd = s_open(path, STORE_READONLY), *wr = s_open(path, STORE_READWRITE);
    store_err err = {0};
    store_summary sum;
    ck_assert_int_eq(store_read_begin(rd, &err), STORE_OK);
    ck_assert_int_eq(store_read_begin(rd, &err), STORE_ERR_INVAL);   /* already open */
    ck_assert_int_eq(store_summary_read(rd, &sum, &err), STORE_OK);
    ck_assert_int_eq(sum.users, 3);
    int64_t u;
    ck_assert_int_eq(store_begin(wr, &err), STORE_OK);
    ck_assert_int_eq(store_user_put(wr, "new", &u, &err), STORE_OK);
    ck_assert_int_eq(store_commit(wr, &err), STORE_OK);
    ck_assert_int_eq(store_summary_read(rd, &sum, &err), STORE_OK);
    ck_assert_int_eq(sum.users, 3);                                  /* the old snapshot */
    store_read_end(rd);
    store_read_end(rd);                                              /* harmless twice */
    store_read_end(NULL);
    ck_assert_int_eq(store_summary_read(rd, &sum, &err), STORE_OK);
    ck_assert_int_eq(sum.users, 4);
    /* The page cache hint returns the old setting for a bulk writer to restore. */
    int64_t was = store_cache_size(wr, -1234);
    ck_assert_int_eq(store_cache_size(wr, was), -1234);
    store_close(&rd);
    store_close(&wr);
}
END_TEST

typedef struct s_ids {
    int n_item, n_user, stop_after;
    char seen[64][16];
} s_ids;

static int s_on_id(void *ctx, int kind, const char *ext)
{
    s_ids *c = ctx;
    int n = c->n_item + c->n_user;
    ck_assert_int_lt(n, 64);
    snprintf(c->seen[n], sizeof c->seen[n], "%c:%s", kind == STORE_EXT_USER ? 'u' : 'i', ext);
    if (kind == STORE_EXT_USER)
        c->n_user++;
    else
        c->n_item++;
    return c->stop_after && n + 1 >= c->stop_after ? STORE_ERR_NOMEM : STORE_OK;
}

START_TEST(test_ext_ids)
{
    const char *path = s_small_db("ids.db");
    store_err err = {0};
    s_ids c = {0};
    ck_assert_msg(store_ext_ids_file(path, 1, s_on_id, &c, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(c.n_item, 7);                        /* embedded only, item_id order */
    ck_assert_int_eq(c.n_user, 3);
    ck_assert_str_eq(c.seen[0], "i:i0");
    ck_assert_str_eq(c.seen[2], "i:i3");
    ck_assert_str_eq(c.seen[6], "i:i9");
    ck_assert_str_eq(c.seen[7], "u:u0");
    ck_assert_str_eq(c.seen[9], "u:u2");
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(store_ext_ids_file(path, 0, s_on_id, &c, &err), STORE_OK);
    ck_assert_int_eq(c.n_user, 0);
    memset(&c, 0, sizeof c);
    c.stop_after = 3;                                     /* the callback's code stops it */
    ck_assert_int_eq(store_ext_ids_file(path, 1, s_on_id, &c, &err), STORE_ERR_NOMEM);
    ck_assert_int_eq(c.n_item, 3);
    ck_assert_msg(strstr(err.msg, path), "%s", err.msg);

    const char *other = tu_path("other.db");
    unlink(other);
    s_raw(other, "CREATE TABLE t(x)");
    ck_assert_int_eq(store_ext_ids_file(other, 1, s_on_id, &c, &err), STORE_ERR_NOTOURS);
    ck_assert_msg(strstr(err.msg, "no such table: items") && strstr(err.msg, other), "%s",
                  err.msg);
    ck_assert_int_eq(store_ext_ids_file(tu_path("absent.db"), 1, s_on_id, &c, &err),
                     STORE_ERR_IO);
}
END_TEST

/* A version-1 database with data becomes version 2: event ids (unique),
 * the embedder's table, and a raw DELETE of an item bumps catalog_version. */
START_TEST(test_schema_v1_to_v2)
{
    int n;
    const store_migration *b = store_schema_builtin(&n);
    store_schema_set_steps(b, 1);
    const char *path = s_fresh("v1.db", DIM);
    store_schema_set_steps(NULL, 0);
    s_raw(path, "INSERT INTO items(ext_id, updated_at) VALUES ('a', 1), ('b', 1);"
                "INSERT INTO users(ext_id) VALUES ('u');"
                "INSERT INTO interactions(user_id, item_id, ts) VALUES (1, 1, 5)");
    ck_assert_int_eq(tu_sql_int(path, "PRAGMA user_version"), 1);
    store *db = s_open(path, STORE_READWRITE);
    store_close(&db);
    ck_assert_int_eq(tu_sql_int(path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM impressions"), 0);   /* 3 */
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM interactions WHERE event_id IS NULL"),
                     1);
    s_raw(path, "UPDATE interactions SET event_id = 'e1'");
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    ck_assert_int_ne(sqlite3_exec(h, "INSERT INTO interactions(user_id, item_id, ts, event_id) "
                                     "VALUES (1, 2, 6, 'e1')", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM embedder_basis"), 0);
    int64_t before = tu_sql_int(path, "SELECT CAST(value AS INTEGER) FROM meta "
                                     "WHERE key = 'catalog_version'");
    s_raw(path, "DELETE FROM interactions; DELETE FROM items WHERE ext_id = 'b'");
    ck_assert_int_eq(tu_sql_int(path, "SELECT CAST(value AS INTEGER) FROM meta "
                                     "WHERE key = 'catalog_version'"), before + 1);
}
END_TEST

START_TEST(test_migrate)
{
    const char *path = s_fresh("migrate.db", DIM);
    int newer = s_newer_build();
    int from = -7;
    store_err err = {0};
    ck_assert_msg(store_migrate(path, 500, &from, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(from, newer - 1);
    ck_assert_int_eq(tu_sql_int(path, "PRAGMA user_version"), newer);
    ck_assert_int_eq(store_migrate(path, 500, &from, &err), STORE_OK);
    ck_assert_int_eq(from, newer);                        /* already current */
    store_schema_set_steps(NULL, 0);
    ck_assert_int_eq(store_migrate(tu_path("nothing.db"), 500, &from, &err), STORE_ERR_IO);
    ck_assert_int_eq(from, -1);
    ck_assert_int_eq(store_migrate(path, 500, NULL, &err), STORE_ERR_SCHEMA);  /* too new */
}
END_TEST

/* store_model_list reads the self-attention window from the config; a
 * config that is not JSON (a hand edit) reads as no window. */
START_TEST(test_model_list_sa_len)
{
    const char *path = s_fresh("salen.db", DIM);
    store *db = s_open(path, STORE_READWRITE);
    store_err err = {0};
    attn_model *md = s_model_sa(DIM, DIM, 6, 11);
    ck_assert_int_eq(store_model_save(db, md, NULL, NULL, 0, NULL, &err), STORE_OK);
    attn_model_free(&md);
    for (int pass = 0; pass < 2; pass++) {
        store_model_info *list = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_model_list(db, &list, &n, &err), STORE_OK);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(list[0].sa_len, 0);               /* identity: no window */
        ck_assert_int_eq(list[1].sa_len, pass ? 0 : 6);
        store_model_list_free(&list, n);
        s_raw(path, "UPDATE models SET config = '{oops' WHERE version = 1");
    }
    store_close(&db);
}
END_TEST

START_TEST(test_attnctl_history)
{
#ifdef ATTN_BIN_DIR
    const char *path = s_small_db("hist.db");
    char out[4096], args[1024];
    snprintf(args, sizeof args, "history %s u0 --limit 3", path);
    ck_assert_msg(s_attnctl(args, out, sizeof out) == 0, "%s", out);
    /* Newest first: i4 (ts 13), i3 (12), i1 (11); i0 (10) is past the limit. */
    const char *a = strstr(out, "Item number 4"), *b = strstr(out, "Item number 3"),
               *c = strstr(out, "Item number 1");
    ck_assert_msg(a && b && c && a < b && b < c && !strstr(out, "Item number 0"), "%s", out);
    snprintf(args, sizeof args, "history %s nobody", path);
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "nobody"), "%s", out);
    snprintf(args, sizeof args, "history %s", path);
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 2);
    snprintf(args, sizeof args, "history %s u0 --limit 0", path);
    ck_assert_int_eq(s_attnctl(args, out, sizeof out), 2);
#endif
}
END_TEST

/* store_dim_rewrite: inside a transaction only; a rollback undoes it, the
 * handle's dimension included; a commit keeps it. */
START_TEST(test_dim_rewrite)
{
    const char *path = s_small_db("dim.db");
    store *db = s_open(path, STORE_READWRITE);
    store_err err = {0};
    int unusable = -1;
    ck_assert_int_eq(store_dim_rewrite(db, 4, &unusable, &err), STORE_ERR_INVAL);  /* no txn */
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    ck_assert_int_eq(store_dim_rewrite(db, 0, &unusable, &err), STORE_ERR_INVAL);
    ck_assert_msg(store_dim_rewrite(db, 4, &unusable, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(store_dim(db), 4);
    ck_assert_int_eq(unusable, 0);
    float e4[4] = {1, 0, 0, 0}, e8[DIM] = {0};
    ck_assert_int_eq(store_item_set_embedding_dim(db, 1, e8, DIM, &err), STORE_ERR_DIM);
    ck_assert_int_eq(store_item_set_embedding_dim(db, 1, e4, 4, &err), STORE_OK);
    store_rollback(db);
    ck_assert_int_eq(store_dim(db), DIM);                       /* undone */
    ck_assert_int_eq(tu_sql_int(path, "SELECT value FROM meta WHERE key = 'embedding_dim'"), DIM);

    /* Committed: a trained model of the old dimension steps down. */
    attn_model *md = s_model(DIM, DIM, 2, 10, 0, 0, 3);
    ck_assert_int_eq(store_model_save(db, md, NULL, NULL, 1, NULL, &err), STORE_OK);
    attn_model_free(&md);
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    ck_assert_int_eq(store_dim_rewrite(db, 4, &unusable, &err), STORE_OK);
    ck_assert_int_eq(unusable, 1);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    store_rollback(db);                                         /* nothing to undo */
    ck_assert_int_eq(store_dim(db), 4);
    store_close(&db);
    ck_assert_int_eq(tu_sql_int(path, "SELECT version FROM models WHERE active = 1"), 0);
    ck_assert_int_eq(tu_sql_int(path, "SELECT d_model FROM models WHERE version = 0"), 4);
    ck_assert_int_eq(tu_sql_int(path, "SELECT json_extract(config, '$.m') FROM models "
                                     "WHERE version = 0"), 4);
}
END_TEST

typedef struct s_texts {
    int n;
    char line[16][64];
} s_texts;

static int s_on_text(void *ctx, int64_t item_id, const char *ext, const char *title,
                     const char *text, int embedded)
{
    s_texts *t = ctx;
    if (t->n == 3)
        return STORE_ERR_INVAL;                                 /* stop after three */
    snprintf(t->line[t->n++], sizeof t->line[0], "%lld %s %s|%s e%d", (long long)item_id, ext,
             title, text, embedded);
    return STORE_OK;
}

START_TEST(test_item_texts)
{
    const char *path = s_small_db("texts.db");
    s_raw(path, "UPDATE items SET text = '', title = '' WHERE ext_id = 'i1'");
    store *db = s_open(path, STORE_READONLY);
    store_err err = {0};
    s_texts t = {0};
    ck_assert_int_eq(store_item_texts(db, STORE_ITEMS_ALL, s_on_text, &t, &err),
                     STORE_ERR_INVAL);
    ck_assert_int_eq(t.n, 3);
    ck_assert_str_eq(t.line[0], "1 i0 Item number 0|some text e1");
    ck_assert_str_eq(t.line[1], "2 i1 | e1");
    ck_assert_str_eq(t.line[2], "3 i2 Item number 2|some text e0"); /* embedded or not */
    ck_assert_msg(strstr(err.msg, path), "%s", err.msg);
    /* Only those without a vector: i2, i5, i8. */
    memset(&t, 0, sizeof t);
    ck_assert_int_eq(store_item_texts(db, STORE_ITEMS_UNEMBEDDED, s_on_text, &t, &err), STORE_OK);
    ck_assert_int_eq(t.n, 3);
    ck_assert_str_eq(t.line[0], "3 i2 Item number 2|some text e0");
    ck_assert_str_eq(t.line[2], "9 i8 Item number 8|some text e0");
    int64_t items, embedded;
    ck_assert_int_eq(store_item_counts(db, &items, &embedded, &err), STORE_OK);
    ck_assert_int_eq(items, 10);
    ck_assert_int_eq(embedded, 7);
    store_close(&db);
}
END_TEST

START_TEST(test_basis_rows)
{
    const char *path = s_small_db("basis.db");
    store *db = s_open(path, STORE_READWRITE);
    store_err err = {0};
    const float f[6] = {1, -2, 3.5f, 0, 1e-30f, 7};
    const int64_t n[3] = {5, -1, (int64_t)1 << 40};
    void *p;
    int64_t r, c;
    /* Writers need the caller's transaction. */
    ck_assert_int_eq(store_basis_put(db, "f", STORE_BASIS_F32, 2, 3, f, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    ck_assert_int_eq(store_basis_put(db, "f", STORE_BASIS_F32, 2, 3, f, &err), STORE_OK);
    ck_assert_int_eq(store_basis_put(db, "n", STORE_BASIS_I64, 3, 1, n, &err), STORE_OK);
    ck_assert_int_eq(store_basis_put(db, "t", STORE_BASIS_TEXT, 1, 5, "hello", &err), STORE_OK);
    ck_assert_int_eq(store_basis_put(db, "e", STORE_BASIS_F32, 0, 4, NULL, &err), STORE_OK);
    ck_assert_int_eq(store_basis_put(db, "t2", STORE_BASIS_TEXT, 2, 5, "hello", &err),
                     STORE_ERR_INVAL);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    ck_assert_int_eq(store_basis_get(db, "f", STORE_BASIS_F32, &p, &r, &c, &err), STORE_OK);
    ck_assert(r == 2 && c == 3 && !memcmp(p, f, sizeof f));
    free(p);
    ck_assert_int_eq(store_basis_get(db, "n", STORE_BASIS_I64, &p, &r, &c, &err), STORE_OK);
    ck_assert(r == 3 && c == 1 && !memcmp(p, n, sizeof n));
    free(p);
    ck_assert_int_eq(store_basis_get(db, "t", STORE_BASIS_TEXT, &p, &r, &c, &err), STORE_OK);
    ck_assert_str_eq(p, "hello");
    free(p);
    ck_assert_int_eq(store_basis_get(db, "e", STORE_BASIS_F32, &p, &r, &c, &err), STORE_OK);
    ck_assert(r == 0 && c == 4);
    free(p);
    /* Absent, another dtype, a short blob, a NaN, a NUL in text. */
    ck_assert_int_eq(store_basis_get(db, "x", STORE_BASIS_F32, &p, &r, &c, &err),
                     STORE_ERR_NOTFOUND);
    ck_assert_int_eq(store_basis_get(db, "n", STORE_BASIS_F32, &p, &r, &c, &err),
                     STORE_ERR_CORRUPT);
    ck_assert_msg(strstr(err.msg, "'n' is i64, not f32"), "%s", err.msg);
    s_raw(path, "UPDATE embedder_basis SET data = substr(data, 1, 20) WHERE name = 'f'");
    ck_assert_int_eq(store_basis_get(db, "f", STORE_BASIS_F32, &p, &r, &c, &err),
                     STORE_ERR_CORRUPT);
    ck_assert_msg(strstr(err.msg, "20 bytes") && strstr(err.msg, "needs 24"), "%s", err.msg);
    s_raw(path, "UPDATE embedder_basis SET data = X'0000C07F', rows = 1, cols = 1 "
                "WHERE name = 'f'");
    ck_assert_int_eq(store_basis_get(db, "f", STORE_BASIS_F32, &p, &r, &c, &err),
                     STORE_ERR_CORRUPT);
    ck_assert_msg(strstr(err.msg, "not finite"), "%s", err.msg);
    s_raw(path, "UPDATE embedder_basis SET data = X'610062' , cols = 3 WHERE name = 't'");
    ck_assert_int_eq(store_basis_get(db, "t", STORE_BASIS_TEXT, &p, &r, &c, &err),
                     STORE_ERR_CORRUPT);
    ck_assert_ptr_null(p);
    /* Clearing, inside a transaction. */
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    ck_assert_int_eq(store_basis_clear(db, &err), STORE_OK);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM embedder_basis"), 0);
    store_close(&db);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30.0 * tu_slowdown());
    tcase_add_test(tc, test_init_fresh);
    tcase_add_test(tc, test_init_refuses);
    tcase_add_test(tc, test_open_missing);
    tcase_add_test(tc, test_open_text_and_garbage);
    tcase_add_test(tc, test_open_truncated);
    tcase_add_test(tc, test_open_not_ours);
    tcase_add_test(tc, test_open_missing_table);
    tcase_add_test(tc, test_schema_newer);
    tcase_add_test(tc, test_schema_older_migrates);
    tcase_add_test(tc, test_schema_v1_to_v2);
    tcase_add_test(tc, test_locked);
    tcase_add_test(tc, test_catalog_roundtrip);
    tcase_add_test(tc, test_catalog_empty);
    tcase_add_test(tc, test_catalog_bad_length);
    tcase_add_test(tc, test_catalog_nonfinite);
    tcase_add_test(tc, test_item_put_semantics);
    tcase_add_test(tc, test_history_order);
    tcase_add_test(tc, test_history_bad_weight);
    tcase_add_test(tc, test_model_roundtrip);
    tcase_add_test(tc, test_model_dim_mismatch);
    tcase_add_test(tc, test_model_corrupt_tensor);
    tcase_add_test(tc, test_attnctl);
    tcase_add_test(tc, test_inspect);
    tcase_add_test(tc, test_read_snapshot);
    tcase_add_test(tc, test_ext_ids);
    tcase_add_test(tc, test_migrate);
    tcase_add_test(tc, test_model_list_sa_len);
    tcase_add_test(tc, test_attnctl_history);
    tcase_add_test(tc, test_dim_rewrite);
    tcase_add_test(tc, test_item_texts);
    tcase_add_test(tc, test_basis_rows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
