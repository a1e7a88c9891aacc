/* check_hist.c -- the history interface (store/hist/hist.h) and its sqlite
 * backend: what an append stores and what it calls a duplicate, that dedupe
 * outlives the handle, that nothing half-written survives a refused batch,
 * that a reader sees an append as soon as it returns, that the writer never
 * migrates, and that the checkpoint thread keeps the WAL bounded.
 */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/hist/hist.h"
#include "store/store.h"
#include "tests/testutil.h"

#define DIM 4
#define ITEMS 40

/* A database with ITEMS items "i0".."i39" and users "u1", "u2". */
static const char *s_db(const char *name, int64_t *item_ids)
{
    const char *path = tu_path(name);
    unlink(path);
    store_err err = {0};
    ck_assert_msg(store_init(path, DIM, &err) == STORE_OK, "%s", err.msg);
    store *db;
    ck_assert_int_eq(store_open(&db, path, STORE_READWRITE, 2000, &err), STORE_OK);
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    for (int k = 0; k < ITEMS; k++) {
        char ext[16];
        float e[DIM] = {(float)k, 1, 0, -1};
        snprintf(ext, sizeof ext, "i%d", k);
        ck_assert_int_eq(store_item_put(db, ext, "t", "x", e, 1, &item_ids[k], &err), STORE_OK);
    }
    ck_assert_int_eq(store_user_put(db, "u1", NULL, &err), STORE_OK);
    ck_assert_int_eq(store_user_put(db, "u2", NULL, &err), STORE_OK);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    store_close(&db);
    return path;
}

static store_hist *s_open(const char *path, int writable, int checkpoint_pages)
{
    store_hist *h;
    store_err err = {0};
    store_hist_sqlite_opts o = {.path = path, .busy_ms = 2000, .writable = writable,
                                .checkpoint_pages = checkpoint_pages};
    ck_assert_msg(store_hist_sqlite_open(&h, &o, &err) == STORE_OK, "%s", err.msg);
    ck_assert_str_eq(store_hist_name(h), "sqlite");
    return h;
}

/* Every rule of an append's outcome, in one batch and across handles. */
START_TEST(append_outcomes)
{
    int64_t id[ITEMS];
    const char *path = s_db("outcomes.db", id);
    store_hist *w = s_open(path, 1, 0);
    store_hist_event ev[] = {
        {.user = "u1", .item_id = id[0], .ts = 100, .weight = 1, .event_id = "e1"},
        {.user = "u1", .item_id = id[0], .ts = 100, .weight = 1, .event_id = "e1"},  /* resent */
        /* another id, but the same (user, ts, item, kind): one interaction */
        {.user = "u1", .item_id = id[0], .ts = 100, .weight = 9, .event_id = "e2"},
        /* a known id on another event: the id wins */
        {.user = "u1", .item_id = id[1], .ts = 101, .weight = 1, .event_id = "e1"},
        {.user = "new", .item_id = id[1], .ts = 50, .weight = 1},                    /* created */
        {.user = "new", .item_id = id[1], .ts = 50, .weight = 3},                    /* same key */
        {.user = "ghost", .item_id = 999999, .ts = 5, .weight = 1},                  /* no item */
        {.user = "u1", .item_id = id[2], .ts = 102, .kind = "click", .weight = 2.5f},
        {.user = "u1", .item_id = id[2], .ts = 102, .kind = "buy", .weight = 1},     /* new kind */
    };
    enum { N = sizeof ev / sizeof ev[0] };
    static const uint8_t want[N] = {STORE_HIST_STORED, STORE_HIST_DUPLICATE,
                                    STORE_HIST_DUPLICATE, STORE_HIST_DUPLICATE,
                                    STORE_HIST_STORED, STORE_HIST_DUPLICATE, STORE_HIST_NO_ITEM,
                                    STORE_HIST_STORED, STORE_HIST_STORED};
    uint8_t out[N];
    store_err err = {0};
    ck_assert_msg(store_hist_append(w, ev, N, out, &err) == STORE_OK, "%s", err.msg);
    for (int i = 0; i < N; i++)
        ck_assert_msg(out[i] == want[i], "event %d: outcome %d, want %d", i, out[i], want[i]);
    /* The duplicate changed nothing; the user of the vanished item is not left behind. */
    ck_assert_int_eq(tu_sql_int(path, "SELECT weight FROM interactions WHERE event_id = 'e1'"), 1);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM users WHERE ext_id = 'ghost'"), 0);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM interactions"), 4);

    store_event h[8];
    int n;
    ck_assert_int_eq(store_hist_read(w, "u1", 2, 8, h, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 3);   /* newest first; equal ts by item_id descending */
    ck_assert(h[0].ts == 102 && h[1].ts == 102 && h[2].ts == 100);
    ck_assert_int_eq(h[2].item_id, id[0]);
    ck_assert_int_eq(store_hist_read(w, "ghost", 5, 8, h, &n, &err), STORE_ERR_NOTFOUND);
    ck_assert_int_eq(store_hist_read(w, "u2", 2, 8, h, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 0);
    store_hist_close(&w);

    /* Dedupe lives in the database: a new handle (a restarted daemon) agrees. */
    w = s_open(path, 1, 0);
    ck_assert_int_eq(store_hist_append(w, ev, 1, out, &err), STORE_OK);
    ck_assert_int_eq(out[0], STORE_HIST_DUPLICATE);
    ck_assert_int_eq(store_hist_append(w, &ev[4], 1, out, &err), STORE_OK);
    ck_assert_int_eq(out[0], STORE_HIST_DUPLICATE);
    store_hist_close(&w);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM interactions"), 4);
}
END_TEST

/* A batch with a bad event, or on a reader, stores nothing at all. */
START_TEST(append_refused_whole)
{
    int64_t id[ITEMS];
    const char *path = s_db("refused.db", id);
    store_hist *w = s_open(path, 1, 0), *r = s_open(path, 0, 0);
    store_hist_event ev[] = {{.user = "u1", .item_id = id[0], .ts = 1, .weight = 1},
                             {.user = "u1", .item_id = id[1], .ts = 2, .weight = 0}};
    uint8_t out[2];
    store_err err = {0};
    ck_assert_int_eq(store_hist_append(w, ev, 2, out, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "event 1") && strstr(err.msg, "weight"), "%s", err.msg);
    ev[1].weight = 1;
    ev[1].user = "";
    ck_assert_int_eq(store_hist_append(w, ev, 2, out, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_hist_append(r, ev, 1, out, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "read-only"), "%s", err.msg);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM interactions"), 0);
    store_hist_close(&w);
    store_hist_close(&r);
    store_hist_close(&r);   /* accepts NULL */
}
END_TEST

/* A reader opened before an append sees it at its next read: no read
 * snapshot outlives a read. */
START_TEST(reader_sees_append_at_once)
{
    int64_t id[ITEMS];
    const char *path = s_db("fresh.db", id);
    store_hist *w = s_open(path, 1, 0), *r = s_open(path, 0, 0);
    store_event h[4];
    int n;
    store_err err = {0};
    ck_assert_int_eq(store_hist_read(r, "u2", 2, 4, h, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 0);
    for (int i = 0; i < 3; i++) {
        store_hist_event e = {.user = "u2", .item_id = id[10 + i], .ts = 1000 + i, .weight = 1};
        uint8_t out;
        ck_assert_int_eq(store_hist_append(w, &e, 1, &out, &err), STORE_OK);
        ck_assert_int_eq(store_hist_read(r, "u2", 2, 4, h, &n, &err), STORE_OK);
        ck_assert_int_eq(n, i + 1);
        ck_assert_int_eq(h[0].item_id, id[10 + i]);
    }
    /* A user the writer created is visible to the reader too. */
    store_hist_event e = {.user = "late", .item_id = id[0], .ts = 7, .weight = 1};
    uint8_t out;
    ck_assert_int_eq(store_hist_append(w, &e, 1, &out, &err), STORE_OK);
    ck_assert_int_eq(store_hist_read(r, "late", 4, 4, h, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 1);
    store_hist_close(&w);
    store_hist_close(&r);
}
END_TEST

/* The writer never migrates: an older schema is the operator's call. */
START_TEST(writer_never_migrates)
{
    int64_t id[ITEMS];
    const char *path = s_db("old.db", id);
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    store_hist *w = (store_hist *)1;
    store_err err = {0};
    store_hist_sqlite_opts o = {.path = path, .busy_ms = 100, .writable = 1};
    ck_assert_int_eq(store_hist_sqlite_open(&w, &o, &err), STORE_ERR_SCHEMA);
    ck_assert_ptr_null(w);
    ck_assert_msg(strstr(err.msg, "attnctl init --migrate"), "%s", err.msg);
    ck_assert_int_eq(tu_sql_int(path, "PRAGMA user_version"), 1);
}
END_TEST

static long s_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

/* Checkpoints run beside the writer and still let the WAL start over: a
 * steady stream of commits leaves it bounded, not growing with the data. */
START_TEST(checkpoints_bound_the_wal)
{
    int64_t id[ITEMS];
    const char *path = s_db("wal.db", id);
    store_hist *w = s_open(path, 1, 16), *r = s_open(path, 0, 0);
    enum { BATCHES = 200, PER = 100 };
    static store_hist_event ev[PER];
    static char users[PER][16];
    static uint8_t out[PER];
    tu_rng rng = {42};
    store_err err = {0};
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < PER; i++) {
            snprintf(users[i], sizeof users[i], "w%llu",
                     (unsigned long long)(tu_next(&rng) % 3000));
            ev[i] = (store_hist_event){.user = users[i], .item_id = id[tu_next(&rng) % ITEMS],
                                       .ts = b * PER + i, .weight = 1};
        }
        ck_assert_msg(store_hist_append(w, ev, PER, out, &err) == STORE_OK, "%s", err.msg);
        store_event h[2];
        int n;
        ck_assert_int_eq(store_hist_read(r, users[0], strlen(users[0]), 2, h, &n, &err),
                         STORE_OK);   /* readers come and go meanwhile */
        ck_assert_int_eq(store_hist_idle(w, &err), STORE_OK);
    }
    char wal[400];
    snprintf(wal, sizeof wal, "%s-wal", path);
    long db_bytes = s_size(path), wal_bytes = s_size(wal);
    store_hist_close(&w);
    store_hist_close(&r);
    ck_assert_int_eq(tu_sql_int(path, "SELECT count(*) FROM interactions"), BATCHES * PER);
    /* 200 commits of at least two pages each (a leaf of interactions, one
     * of users) would hold 1.6 MB in a WAL that never starts over; this one
     * stays under 1 MiB, and under the data itself. */
    ck_assert_msg(wal_bytes < (1 << 20) && wal_bytes < db_bytes, "database %ld bytes, WAL %ld "
                  "bytes", db_bytes, wal_bytes);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("hist");
    TCase *tc = tcase_create("sqlite");
    tcase_set_timeout(tc, 30 * tu_slowdown());
    tcase_add_test(tc, append_outcomes);
    tcase_add_test(tc, append_refused_whole);
    tcase_add_test(tc, reader_sees_append_at_once);
    tcase_add_test(tc, writer_never_migrates);
    tcase_add_test(tc, checkpoints_bound_the_wal);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
