/* store_int.h -- what the store core's files share and nobody else needs.
 *
 * The handle, the cache of prepared statements, error helpers and the
 * migration table.  Private to the SQLite core (the .c files in store/
 * itself): the job folders import/, embed/ and gen/ use store.h like any
 * other caller.  White-box tests and benchmarks include it for the schema
 * hook and raw queries.
 */
#ifndef STORE_STORE_INT_H
#define STORE_STORE_INT_H

#include <stdarg.h>
#include <sqlite3.h>

#include "store/store.h"

/* Slots of the per-handle statement cache.  A statement is prepared on its
 * first use (SQLITE_PREPARE_PERSISTENT) and finalized by store_close, so the
 * hot paths -- history, user lookup, titles, writers -- never re-parse SQL. */
enum store_slot {
    STORE_ST_META_GET,
    STORE_ST_META_SET,
    STORE_ST_BEGIN,
    STORE_ST_COMMIT,
    STORE_ST_ROLLBACK,
    STORE_ST_USER_ID,
    STORE_ST_USER_INSERT,
    STORE_ST_ITEM_ID,
    STORE_ST_ITEM_TITLE,
    STORE_ST_HISTORY,
    STORE_ST_USER_HISTORY,
    STORE_ST_ITEM_PUT,
    STORE_ST_ITEM_SET_EMB,
    STORE_ST_EVENT_PUT,
    STORE_ST_EVENT_RECORD,
    STORE_ST_USER_DROP,
    STORE_ST_CATALOG_TOUCH,
    STORE_ST_CATALOG_SCAN,
    STORE_ST_POPULARITY,
    STORE_ST__COUNT
};

struct store {
    sqlite3 *h;                           /* the connection, owned */
    char *path;                           /* file name as given, for messages */
    int flags;                            /* enum store_open_flags, or-ed */
    int busy_ms;                          /* busy timeout, quoted in BUSY messages */
    int dim;                              /* meta embedding_dim, read at open */
    int wal_pages;                        /* WAL size after our last commit, when the
                                             caller checkpoints (store_wal_autocheckpoint 0) */
    int dim_undo;                         /* store_dim_rewrite in the open transaction:
                                             the dim a rollback restores; else 0 */
    sqlite3_stmt *st[STORE_ST__COUNT];    /* cached statements, NULL until used */
};

/* Largest embedding dimension we accept: keeps dim*4 and row sizes far from
 * int overflow and rejects a nonsense meta value early. */
#define STORE_MAX_DIM 65536

/* The SQL of the history query, shared with the test that checks its plan
 * walks the primary key backwards with no sort step. */
#define STORE_SQL_HISTORY                                                     \
    "SELECT item_id, ts, weight FROM interactions WHERE user_id = ?1 "        \
    "ORDER BY ts DESC, item_id DESC LIMIT ?2"

/* The same by the user's ext_id, in one statement and so one read
 * transaction: each costs the rank path a lock and an unlock of the WAL's
 * read mark (two fcntl calls; docs/PERFORMANCE.md).  The LEFT JOIN yields
 * one row of NULLs for a user without events, and none for no such user. */
#define STORE_SQL_USER_HISTORY                                                \
    "SELECT u.user_id, i.item_id, i.ts, i.weight FROM users u "              \
    "LEFT JOIN interactions i ON i.user_id = u.user_id WHERE u.ext_id = ?1 " \
    "ORDER BY i.ts DESC, i.item_id DESC LIMIT ?2"

/* The connection behind a handle, borrowed: for tests and benchmarks that
 * look at rows directly.  Writers should still go through store_item_put and
 * friends, which check what they write. */
void *store_sqlite(store *db);

/* Map an SQLite result code to a store code: BUSY/LOCKED -> BUSY,
 * NOTADB -> NOTDB, CORRUPT -> CORRUPT, NOMEM -> NOMEM, a foreign key
 * failure -> NOTFOUND, other constraints -> INVAL, the rest -> IO. */
int store_code_of(int sqlite_rc);

/* Fail with the code mapped from rc and "PATH: WHAT: sqlite's message";
 * a busy failure says the database is locked by another writer and how long
 * we waited.  Returns the store code. */
int store_sqlfail(store *db, store_err *err, int rc, const char *what);

/* The cached statement for slot, prepared from sql on first use and reset
 * (bindings kept, all of them are rebound by every caller).  NULL on failure
 * with err filled. */
sqlite3_stmt *store_stmt(store *db, int slot, const char *sql, store_err *err);

/* Fail with STORE_ERR_INVAL unless the handle was opened read-write. */
int store_need_rw(store *db, const char *what, store_err *err);

/* Run one statement without results (pragmas, DDL); err names what. */
int store_exec(store *db, const char *sql, const char *what, store_err *err);

/* Read one integer from a single-row query (pragmas, counts). */
int store_query_int(store *db, const char *sql, int64_t *out, const char *what,
                    store_err *err);

/* Once per process, before SQLite's first open: memory statistics off, the
 * page cache wrapper and the walbuf VFS (setup.c, pcache.c, walbuf.c).
 * Every open calls it. */
void store_sqlite_setup(void);
int store_pcache_wrap(void);               /* 1 if installed */
unsigned long store_pcache_swaps(void);    /* page swaps it has seen, for tests */
/* The VFS whose WAL files write a transaction's frames at once (walbuf.c),
 * for read-write connections: its name, or NULL (then the default VFS). */
const char *store_walbuf_vfs(void);
const char *store_walbuf_register(void);   /* setup.c, once: the name, or NULL */
void store_walbuf_counts(unsigned long *writes, unsigned long *flushes);   /* for tests */
/* Tests: sleep this long before a connection through walbuf releases the
 * WAL write lock, which widens the moment between a commit's publication
 * and the lock's release for a reader in another thread to fall into. */
void store_walbuf_delay_unlock(int us);

/* Remove a database file and its -wal and -shm beside it (what a failed
 * init or snapshot leaves behind); missing ones are fine. */
void store_unlink_all(const char *path);

/* Encode/decode little-endian float32 and int64 arrays (the on-disk byte
 * order of every blob), whatever the host's order. */
void store_f32_decode(float *dst, const void *src, size_t n);
void store_f32_encode(void *dst, const float *src, size_t n);
void store_i64_decode(int64_t *dst, const void *src, size_t n);
void store_i64_encode(void *dst, const int64_t *src, size_t n);

/* Index of the first non-finite value in x[0..n), or -1.  A branch-free
 * scan of the exponent bits first, so the common all-finite case runs at
 * memory speed. */
ptrdiff_t store_first_nonfinite(const float *x, size_t n);

/* True on a little-endian host: blobs are then used as they are. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define STORE_HOST_LE 1
#else
#define STORE_HOST_LE 0
#endif

/* ---- schema (schema.c) ----------------------------------------------------
 * One step per schema version: applying steps[i].sql to a database at
 * version steps[i].to - 1 brings it to steps[i].to.  The step to version 1
 * is the creation of every table, so store_init is "migrate from 0". */
typedef struct store_migration {
    int to;              /* version after this step */
    const char *sql;     /* statements, run inside the migration transaction */
} store_migration;

/* Newest schema version this build knows (the last step's `to`). */
int store_schema_latest(void);

/* Apply every step after version `from` up to the latest; the caller holds
 * a write transaction.  Sets PRAGMA user_version after each step. */
int store_schema_apply(store *db, int from, store_err *err);

/* Check application_id, schema version (migrating forward on read-write
 * handles), required tables and columns, and read meta embedding_dim into
 * db->dim.  Called by store_open. */
int store_schema_check(store *db, store_err *err);

/* Tests only: replace the migration table (NULL restores the built-in one)
 * so that an "older schema" can be made without a second real version.
 * Not thread-safe; never called by the library. */
void store_schema_set_steps(const store_migration *steps, int n);
/* This build's own steps (*n of them), for tests that build on them. */
const store_migration *store_schema_builtin(int *n);

#endif
