/* check_pcache.c -- store/setup.c and store/pcache.c: how attnd configures
 * SQLite, and the page cache wrapper that keeps the B-tree's page swaps out
 * of the commit's cache truncation.
 *
 * The wrapper renames a page in the middle of SQLite's own bookkeeping, so
 * the test that matters is that no row is lost, duplicated or changed: a
 * table of random keys, split over and over, with transactions and
 * savepoints rolled back, rows deleted and the file vacuumed, is compared
 * row by row with a model of what was committed, in the connection that
 * wrote it and in a fresh one, and must pass integrity_check.  The swap
 * counter shows the workload made the wrapper do its work.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_int.h"
#include "tests/testutil.h"

#define S_USERS 3000
#define S_MAX_ROWS 60000

/* k is the insert's sequence number, unique over the run, so (u, k) is the
 * row's identity and k alone indexes the model. */
typedef struct s_row { int u, k; } s_row;

static sqlite3 *s_connect(const char *path)
{
    sqlite3 *h = NULL;
    store_sqlite_setup();
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    tu_sql(h, "PRAGMA journal_mode = WAL; PRAGMA cache_size = -65536");
    return h;
}

/* Every row of t, in key order, against the model's live rows. */
static void s_compare(sqlite3 *h, const s_row *rows, const unsigned char *live, int n_rows)
{
    int n_live = 0;
    for (int k = 0; k < n_rows; k++)
        n_live += live[k];
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT u, k, length(pad), substr(pad, 1, 8) "
                                           "FROM t ORDER BY k", -1, &st, NULL), SQLITE_OK);
    int seen = 0, k_next = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int u = sqlite3_column_int(st, 0), k = sqlite3_column_int(st, 1);
        ck_assert_msg(k >= 0 && k < n_rows && live[k], "row k=%d is not in the model", k);
        ck_assert_msg(k >= k_next, "row k=%d twice", k);
        ck_assert_int_eq(u, rows[k].u);
        ck_assert_int_eq(sqlite3_column_int(st, 2), 40 + k % 200);
        char want[16];
        snprintf(want, sizeof want, "%08d", k);
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 3), want);
        k_next = k + 1;
        seen++;
    }
    sqlite3_finalize(st);
    ck_assert_int_eq(seen, n_live);

    ck_assert_int_eq(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

START_TEST(memory_statistics_off)
{
    /* With SQLite's memory statistics on, every allocation takes a process-
     * wide mutex that rank reads then wait on (setup.c).  Off, SQLite does
     * not count: its "memory used" stays 0 while a connection works. */
    const char *path = tu_path("memstat.db");
    store_unlink_all(path);
    sqlite3 *h = s_connect(path);
    tu_sql(h, "CREATE TABLE m(x); INSERT INTO m VALUES (randomblob(100000))");
    ck_assert_int_eq(sqlite3_memory_used(), 0);
    sqlite3_close(h);
    store_unlink_all(path);
}
END_TEST

START_TEST(page_swaps_lose_nothing)
{
    const char *path = tu_path("swaps.db");
    store_unlink_all(path);
    sqlite3 *h = s_connect(path);
    tu_sql(h, "CREATE TABLE t(u INTEGER NOT NULL, k INTEGER NOT NULL, pad BLOB NOT NULL, "
              "PRIMARY KEY (u, k)) WITHOUT ROWID");
    sqlite3_stmt *ins, *del;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "INSERT INTO t VALUES (?1, ?2, "
                                           "printf('%08d', ?2) || substr(hex(zeroblob(?3)), 9, ?3 - 8))",
                                        -1, &ins, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(h, "DELETE FROM t WHERE u = ?1 AND k = ?2", -1, &del,
                                        NULL), SQLITE_OK);

    s_row *rows = calloc(S_MAX_ROWS, sizeof *rows);
    unsigned char *live = calloc(S_MAX_ROWS, 1), *pending = calloc(S_MAX_ROWS, 1);
    ck_assert_ptr_nonnull(rows);
    ck_assert_ptr_nonnull(live);
    ck_assert_ptr_nonnull(pending);
    tu_rng rng = {42};
    unsigned long swaps_before = store_pcache_swaps();
    int n_rows = 0;

    /* Transactions of random users' rows, as the record writer makes them;
     * one in seven rolled back, and in others a savepoint rolled back. */
    for (int tx = 0; n_rows + 400 <= S_MAX_ROWS; tx++) {
        memcpy(pending, live, (size_t)n_rows);
        tu_sql(h, "BEGIN");
        int sp_from = -1;
        for (int i = 0; i < 200; i++) {
            if (i == 100 && tx % 5 == 1) {
                tu_sql(h, "SAVEPOINT sp");
                sp_from = n_rows;
            }
            int k = n_rows++, u = (int)(tu_next(&rng) % S_USERS);
            rows[k] = (s_row){u, k};
            sqlite3_bind_int(ins, 1, u);
            sqlite3_bind_int(ins, 2, k);
            sqlite3_bind_int(ins, 3, 40 + k % 200);
            ck_assert_int_eq(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
            pending[k] = 1;
        }
        if (sp_from >= 0) {
            tu_sql(h, "ROLLBACK TO sp; RELEASE sp");
            memset(pending + sp_from, 0, (size_t)(n_rows - sp_from));
        }
        if (tx % 7 == 3) {
            tu_sql(h, "ROLLBACK");
        } else {
            tu_sql(h, "COMMIT");
            memcpy(live, pending, (size_t)n_rows);
        }
    }
    ck_assert_msg(store_pcache_swaps() > swaps_before,
                  "no page swap went through the wrapper: this SQLite no longer swaps pages "
                  "through the pending-byte page, and store/pcache.c has nothing to do");
    s_compare(h, rows, live, n_rows);

    /* Half the rows deleted (pages freed and reused), then the file vacuumed
     * (the cache truncated below pages it holds). */
    tu_sql(h, "BEGIN");
    for (int k = 0; k < n_rows; k += 2) {
        if (!live[k])
            continue;
        sqlite3_bind_int(del, 1, rows[k].u);
        sqlite3_bind_int(del, 2, k);
        ck_assert_int_eq(sqlite3_step(del), SQLITE_DONE);
        sqlite3_reset(del);
        live[k] = 0;
    }
    tu_sql(h, "COMMIT");
    tu_sql(h, "VACUUM");
    s_compare(h, rows, live, n_rows);
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    sqlite3_close(h);

    sqlite3 *again = s_connect(path);
    s_compare(again, rows, live, n_rows);
    sqlite3_close(again);
    free(rows);
    free(live);
    free(pending);
    store_unlink_all(path);
}
END_TEST

static Suite *pcache_suite(void)
{
    Suite *s = suite_create("pcache");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120 * tu_slowdown());
    tcase_add_test(tc, memory_statistics_off);
    tcase_add_test(tc, page_swaps_lose_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(pcache_suite());
}
