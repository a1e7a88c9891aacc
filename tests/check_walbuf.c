/* check_walbuf.c -- store/walbuf.c, the VFS whose WAL files hand a
 * transaction's frames to the file in a few writes instead of two a page.
 *
 * What can go wrong is a frame that reaches the file too late: after a
 * reader was told the commit is there, or after another writer committed
 * frames at the same place.  So a writer through the VFS and a second
 * writer and a reader through SQLite's default VFS take turns on one
 * database: transactions large enough to spill pages into the WAL before
 * they end (a 20-page cache), savepoints and whole transactions rolled
 * back, checkpoints that start the WAL over.  After every transaction the
 * reader compares the table with a model of what was committed, and at the
 * end a fresh connection runs integrity_check.  With a cache that holds
 * the transaction, the write counters show the frames were gathered.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_int.h"
#include "tests/testutil.h"

#define S_KEYS 2000

/* vfs NULL: SQLite's default.  A tiny cache makes large transactions spill
 * frames into the WAL before they commit or roll back. */
static sqlite3 *s_connect(const char *path, const char *vfs, const char *sync)
{
    sqlite3 *h = NULL;
    store_sqlite_setup();
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                     SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    char sql[160];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; "
                              "PRAGMA cache_size = 20; PRAGMA wal_autocheckpoint = 0", sync);
    tu_sql(h, sql);
    return h;
}

/* A row's value says which key and which version it is, and is long
 * enough (1-3 KB) that a few hundred rows make a transaction of many pages. */
static int s_len(int k, int ver)
{
    return 1000 + (k * 7 + ver * 13) % 2000;
}

static void s_put(sqlite3 *h, int k, int ver)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "INSERT OR REPLACE INTO kv(k, v) VALUES (?1, "
                                           "printf('%08d-%08d', ?1, ?2) || "
                                           "substr(hex(zeroblob(?3)), 1, ?3))",
                                        -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int(st, 1, k);
    sqlite3_bind_int(st, 2, ver);
    sqlite3_bind_int(st, 3, s_len(k, ver) - 17);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static void s_del(sqlite3 *h, int k)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "DELETE FROM kv WHERE k = ?1", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int(st, 1, k);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* The table against the model (ver[k] 0: absent), in one read. */
static void s_compare(sqlite3 *h, const int *ver)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT k, ver, length(v), substr(v, 1, 17) "
                                           "FROM kv ORDER BY k", -1, &st, NULL), SQLITE_OK);
    int next = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int k = sqlite3_column_int(st, 0), v = sqlite3_column_int(st, 1);
        ck_assert_msg(k >= 0 && k < S_KEYS, "key %d out of range", k);
        for (; next < k; next++)
            ck_assert_msg(ver[next] == 0, "key %d (version %d) is missing", next, ver[next]);
        ck_assert_msg(ver[k] == v, "key %d: version %d, the model says %d", k, v, ver[k]);
        ck_assert_int_eq(sqlite3_column_int(st, 2), s_len(k, v));
        char want[24];
        snprintf(want, sizeof want, "%08d-%08d", k, v);
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 3), want);
        next = k + 1;
    }
    ck_assert_msg(rc == SQLITE_DONE, "reading kv: %s", sqlite3_errmsg(h));
    sqlite3_finalize(st);
    for (; next < S_KEYS; next++)
        ck_assert_msg(ver[next] == 0, "key %d (version %d) is missing", next, ver[next]);
}

static void s_integrity(const char *path, const int *ver)
{
    sqlite3 *h = s_connect(path, NULL, "NORMAL");
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    s_compare(h, ver);
    sqlite3_close(h);
}

/* kv's schema: ver duplicates the version so that a reader need not parse v. */
static const char *s_schema = "CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB NOT NULL, "
                              "ver INTEGER GENERATED ALWAYS AS "
                              "(CAST(substr(v, 10, 8) AS INTEGER)) VIRTUAL)";

static void s_take_turns(const char *sync, int rounds, uint64_t seed)
{
    ck_assert_ptr_nonnull(store_walbuf_vfs());
    const char *path = tu_path("walbuf.db");
    store_unlink_all(path);
    sqlite3 *mine = s_connect(path, store_walbuf_vfs(), sync);
    sqlite3 *other = s_connect(path, NULL, sync), *reader = s_connect(path, NULL, sync);
    tu_sql(mine, s_schema);
    unsigned long writes0, flushes0;
    store_walbuf_counts(&writes0, &flushes0);

    int *ver = calloc(S_KEYS, sizeof *ver), *pending = calloc(S_KEYS, sizeof *pending);
    ck_assert_ptr_nonnull(ver);
    ck_assert_ptr_nonnull(pending);
    tu_rng r = {seed};
    int commits = 0, rollbacks = 0;
    for (int round = 1; round <= rounds; round++) {
        sqlite3 *w = tu_next(&r) % 5 ? mine : other;
        memcpy(pending, ver, S_KEYS * sizeof *ver);
        tu_sql(w, "BEGIN IMMEDIATE");
        int ops = 1 + (int)(tu_next(&r) % (tu_next(&r) % 4 ? 40 : 400));
        int savepoint = tu_next(&r) % 8 == 0, *saved = NULL;
        for (int i = 0; i < ops; i++) {
            if (savepoint && i == ops / 2) {
                tu_sql(w, "SAVEPOINT sp");
                saved = malloc(S_KEYS * sizeof *saved);
                memcpy(saved, pending, S_KEYS * sizeof *saved);
            }
            int k = (int)(tu_next(&r) % S_KEYS);
            if (tu_next(&r) % 6 == 0) {
                s_del(w, k);
                pending[k] = 0;
            } else {
                s_put(w, k, round);
                pending[k] = round;
            }
        }
        if (saved) {
            tu_sql(w, "ROLLBACK TO sp; RELEASE sp");
            memcpy(pending, saved, S_KEYS * sizeof *saved);
            free(saved);
        }
        if (tu_next(&r) % 4) {
            tu_sql(w, "COMMIT");
            memcpy(ver, pending, S_KEYS * sizeof *ver);
            commits++;
        } else {
            tu_sql(w, "ROLLBACK");
            rollbacks++;
        }
        s_compare(reader, ver);
        if (round % 25 == 0)   /* the WAL starts over: its header is written again */
            tu_sql(tu_next(&r) % 2 ? reader : other, "PRAGMA wal_checkpoint(TRUNCATE)");
    }
    ck_assert_int_gt(commits, rounds / 2);
    ck_assert_int_gt(rollbacks, rounds / 10);
    s_compare(mine, ver);
    unsigned long writes, flushes;
    store_walbuf_counts(&writes, &flushes);
    ck_assert_msg(writes > writes0 && flushes > flushes0, "nothing went through walbuf");
    sqlite3_close(reader);
    sqlite3_close(other);
    sqlite3_close(mine);
    s_integrity(path, ver);
    free(ver);
    free(pending);
    store_unlink_all(path);
}

START_TEST(frames_reach_the_file_in_time)
{
    s_take_turns("NORMAL", 300, 12345);
}
END_TEST

START_TEST(frames_reach_the_file_in_time_full_sync)
{
    s_take_turns("FULL", 120, 777);
}
END_TEST

/* With a cache that holds the transaction (attnd's writer has 64 MiB), the
 * frames of a commit leave in writes of ~30 frames, not two a frame. */
START_TEST(frames_are_gathered)
{
    const char *path = tu_path("walbuf-gather.db");
    store_unlink_all(path);
    sqlite3 *mine = s_connect(path, store_walbuf_vfs(), "NORMAL");
    sqlite3 *reader = s_connect(path, NULL, "NORMAL");
    tu_sql(mine, "PRAGMA cache_size = -8192");
    tu_sql(mine, s_schema);
    int ver[S_KEYS] = {0};
    unsigned long writes0, flushes0, writes, flushes;
    store_walbuf_counts(&writes0, &flushes0);
    tu_sql(mine, "BEGIN IMMEDIATE");
    for (int k = 0; k < 400; k++) {
        s_put(mine, k, 5);
        ver[k] = 5;
    }
    tu_sql(mine, "COMMIT");
    store_walbuf_counts(&writes, &flushes);
    writes -= writes0;
    flushes -= flushes0;
    ck_assert_msg(writes >= 400 && flushes > 0 && writes >= 20 * flushes,
                  "the commit's %lu WAL writes went out in %lu: not gathered", writes, flushes);
    s_compare(reader, ver);
    sqlite3_close(reader);
    sqlite3_close(mine);
    store_unlink_all(path);
}
END_TEST

/* The case the WAL file is never told about, in its simplest form: a
 * transaction that spilled frames and rolled back, then another writer
 * committing frames at the same place, then this writer again.  Frames
 * kept past the rollback and written now would overwrite the other
 * writer's commit.  (Here SQLite's undo happens to read the WAL, which
 * flushes; without the flush at unlock it was the turns above that broke:
 * "file is not a database".) */
START_TEST(a_rolled_back_spill_never_lands_on_a_later_commit)
{
    const char *path = tu_path("walbuf-spill.db");
    store_unlink_all(path);
    sqlite3 *mine = s_connect(path, store_walbuf_vfs(), "NORMAL");
    sqlite3 *other = s_connect(path, NULL, "NORMAL"), *reader = s_connect(path, NULL, "NORMAL");
    tu_sql(mine, s_schema);
    int ver[S_KEYS] = {0};
    tu_sql(mine, "BEGIN IMMEDIATE");
    for (int k = 0; k < 300; k++)   /* ~600 KB through a 20-page cache: spills */
        s_put(mine, k, 1);
    tu_sql(mine, "ROLLBACK");
    tu_sql(other, "BEGIN IMMEDIATE");
    for (int k = 0; k < 30; k++) {
        s_put(other, k, 2);
        ver[k] = 2;
    }
    tu_sql(other, "COMMIT");
    s_compare(reader, ver);
    tu_sql(mine, "BEGIN IMMEDIATE");
    s_put(mine, 1000, 3);
    ver[1000] = 3;
    tu_sql(mine, "COMMIT");
    s_compare(reader, ver);
    sqlite3_close(reader);
    sqlite3_close(other);
    sqlite3_close(mine);
    s_integrity(path, ver);
    store_unlink_all(path);
}
END_TEST

/* A reader in another thread, while commits go on: every commit rewrites
 * every row with its own version, so a snapshot that mixes versions, or a
 * page that is not there, is a commit read before its frames reached the
 * file -- the window between publishing the index header and releasing
 * the write lock, which a single thread never sees.  The test holds that
 * window open for 2 ms a commit (store_walbuf_delay_unlock); without the
 * flush at the commit frame and at the barrier, frames waiting for the
 * unlock's flush were read as missing. */
enum { S_ROWS = 300, S_COMMITS = 150 };

typedef struct s_watch {
    const char *path;
    volatile int done;
    int snapshots;
    char bad[200];
} s_watch;

static void *s_watcher(void *arg)
{
    s_watch *w = arg;
    sqlite3 *h = s_connect(w->path, NULL, "NORMAL");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "SELECT count(*), min(ver), max(ver), "
                              "sum(length(v) = 1000 + (k * 7 + ver * 13) % 2000) FROM kv",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(w->bad, sizeof w->bad, "prepare: %s", sqlite3_errmsg(h));
        w->done = 1;
    }
    while (!w->done) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            snprintf(w->bad, sizeof w->bad, "read: %s", sqlite3_errmsg(h));
            break;
        }
        int n = sqlite3_column_int(st, 0), lo = sqlite3_column_int(st, 1),
            hi = sqlite3_column_int(st, 2), ok_len = sqlite3_column_int(st, 3);
        sqlite3_reset(st);
        if (n != S_ROWS || lo != hi || ok_len != S_ROWS) {
            snprintf(w->bad, sizeof w->bad, "a snapshot of %d rows, versions %d..%d, %d of "
                     "the right length", n, lo, hi, ok_len);
            break;
        }
        w->snapshots++;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return NULL;
}

START_TEST(readers_in_other_threads_never_see_a_commit_early)
{
    const char *path = tu_path("walbuf-threads.db");
    store_unlink_all(path);
    sqlite3 *mine = s_connect(path, store_walbuf_vfs(), "NORMAL");
    tu_sql(mine, "PRAGMA cache_size = -8192");
    tu_sql(mine, s_schema);
    tu_sql(mine, "BEGIN");
    for (int k = 0; k < S_ROWS; k++)
        s_put(mine, k, 1);
    tu_sql(mine, "COMMIT");
    s_watch w = {.path = path};
    store_walbuf_delay_unlock(2000);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, s_watcher, &w), 0);
    for (int v = 2; v <= S_COMMITS && !w.bad[0]; v++) {
        tu_sql(mine, "BEGIN IMMEDIATE");
        for (int k = 0; k < S_ROWS; k++)
            s_put(mine, k, v);
        tu_sql(mine, "COMMIT");
        if (v % 20 == 0)
            tu_sql(mine, "PRAGMA wal_checkpoint(PASSIVE)");
    }
    w.done = 1;
    pthread_join(t, NULL);
    store_walbuf_delay_unlock(0);
    ck_assert_msg(!w.bad[0], "%s", w.bad);
    ck_assert_int_gt(w.snapshots, 0);
    sqlite3_close(mine);
    store_unlink_all(path);
}
END_TEST

/* ATTN_WALBUF=off: read-write opens use SQLite's default VFS again. */
START_TEST(switched_off_from_the_environment)
{
    ck_assert_ptr_nonnull(store_walbuf_vfs());
    setenv("ATTN_WALBUF", "off", 1);
    ck_assert_ptr_null(store_walbuf_vfs());
    const char *path = tu_path("walbuf-off.db");
    store_unlink_all(path);
    store *db = NULL;
    store_err err;
    ck_assert_int_eq(store_init(path, 8, &err), STORE_OK);
    ck_assert_int_eq(store_open(&db, path, STORE_READWRITE, 1000, &err), STORE_OK);
    unsigned long writes0, flushes0, writes, flushes;
    store_walbuf_counts(&writes0, &flushes0);
    ck_assert_int_eq(store_exec(db, "CREATE TABLE x(a); INSERT INTO x VALUES (1)", "writing",
                                &err), STORE_OK);
    store_walbuf_counts(&writes, &flushes);
    ck_assert_uint_eq(writes, writes0);
    store_close(&db);
    unsetenv("ATTN_WALBUF");
    ck_assert_ptr_nonnull(store_walbuf_vfs());
    store_unlink_all(path);
}
END_TEST

static Suite *walbuf_suite(void)
{
    Suite *s = suite_create("walbuf");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120 * tu_slowdown());
    tcase_add_test(tc, frames_reach_the_file_in_time);
    tcase_add_test(tc, frames_reach_the_file_in_time_full_sync);
    tcase_add_test(tc, a_rolled_back_spill_never_lands_on_a_later_commit);
    tcase_add_test(tc, frames_are_gathered);
    tcase_add_test(tc, readers_in_other_threads_never_see_a_commit_early);
    tcase_add_test(tc, switched_off_from_the_environment);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(walbuf_suite());
}
