/* schema.c -- the tables, the migrations between schema versions, and the
 * checks every open makes.
 *
 * PRAGMA application_id marks a file as ours; PRAGMA user_version is the
 * schema version.  Schema changes are steps in s_steps: the step "to N" takes
 * a version N-1 database to N inside one write transaction, so a future
 * schema 2 is one more entry here (plus docs/SCHEMA.md).  Version 1's step is
 * the creation of every table, so store_init is "migrate from 0" and a
 * fresh database and a migrated one can never differ.
 *
 * docs/SCHEMA.md gives the reason for every column, index and constraint.
 */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Column order in items is deliberate: the catalog scan reads item_id,
 * ext_id and embedding, and SQLite reaches a column only by walking past the
 * ones before it -- through overflow pages when a long text comes first.
 * Small and hot columns first, free text last. */
static const char s_schema_v1[] =
    "CREATE TABLE meta("
    "  key   TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE items("
    "  item_id    INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ext_id     TEXT    NOT NULL UNIQUE CHECK (length(ext_id) > 0),"
    "  updated_at INTEGER NOT NULL,"
    "  embedding  BLOB    CHECK (embedding IS NULL OR typeof(embedding) = 'blob'),"
    "  title      TEXT    NOT NULL DEFAULT '',"
    "  text       TEXT    NOT NULL DEFAULT ''"
    ");"
    "CREATE TABLE users("
    "  user_id INTEGER PRIMARY KEY,"
    "  ext_id  TEXT NOT NULL UNIQUE CHECK (length(ext_id) > 0)"
    ");"
    "CREATE TABLE interactions("
    "  user_id INTEGER NOT NULL REFERENCES users(user_id),"
    "  item_id INTEGER NOT NULL REFERENCES items(item_id),"
    "  ts      INTEGER NOT NULL,"
    "  kind    TEXT    NOT NULL DEFAULT 'view',"
    "  weight  REAL    NOT NULL DEFAULT 1.0 CHECK (weight > 0),"
    "  PRIMARY KEY (user_id, ts, item_id, kind)"
    ") WITHOUT ROWID;"
    "CREATE TABLE models("
    "  version    INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  created_at INTEGER NOT NULL,"
    "  heads      INTEGER NOT NULL CHECK (heads > 0),"
    "  d_model    INTEGER NOT NULL CHECK (d_model > 0),"
    "  config     TEXT    NOT NULL,"
    "  metrics    TEXT,"
    "  active     INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))"
    ");"
    "CREATE UNIQUE INDEX models_one_active ON models(active) WHERE active = 1;"
    "CREATE TABLE model_tensors("
    "  version INTEGER NOT NULL REFERENCES models(version) ON DELETE CASCADE,"
    "  name    TEXT    NOT NULL,"
    "  rows    INTEGER NOT NULL CHECK (rows >= 0),"
    "  cols    INTEGER NOT NULL CHECK (cols >= 0),"
    "  dtype   TEXT    NOT NULL DEFAULT 'f32' CHECK (dtype IN ('f32', 'i64')),"
    "  data    BLOB    NOT NULL CHECK (typeof(data) = 'blob'),"
    "  PRIMARY KEY (version, name)"
    ");";

/* Version 2: live data.
 * - interactions.event_id: what a client calls an event, so that a record
 *   resent after a timeout is stored once (a unique index: the dedupe
 *   survives restarts).  Imported events keep NULL.
 * - embedder_basis: the fitted text embedder (vocabulary, IDF, projection),
 *   so that new items fold into the space the active model was trained in.
 * - a trigger bumping catalog_version when an item is deleted, by anyone:
 *   our writers bump it themselves once per job, but a raw SQL delete would
 *   otherwise go unnoticed by running daemons. */
static const char s_schema_v2[] =
    "ALTER TABLE interactions ADD COLUMN event_id TEXT;"
    "CREATE UNIQUE INDEX interactions_event_id ON interactions(event_id) "
    "  WHERE event_id IS NOT NULL;"
    "CREATE TABLE embedder_basis("
    "  name  TEXT    PRIMARY KEY,"
    "  rows  INTEGER NOT NULL CHECK (rows >= 0),"
    "  cols  INTEGER NOT NULL CHECK (cols >= 0),"
    "  dtype TEXT    NOT NULL CHECK (dtype IN ('f32', 'i64', 'text')),"
    "  data  BLOB    NOT NULL"
    ");"
    "CREATE TRIGGER items_deleted_touch_catalog AFTER DELETE ON items BEGIN"
    "  INSERT INTO meta(key, value) VALUES ('catalog_version', '1')"
    "    ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;"
    "END;";

/* Version 3: experiments.  A sample of ranked replies -- who (a keyed hash
 * of the user, never the id), which arm and model, the items in rank order
 * -- so that `attnctl experiment report` can join them with the events
 * that followed. */
static const char s_schema_v3[] =
    "CREATE TABLE impressions("
    "  imp_id    INTEGER PRIMARY KEY,"
    "  ts        INTEGER NOT NULL,"
    "  user_hash TEXT    NOT NULL,"
    "  key_id    TEXT    NOT NULL,"
    "  arm       TEXT,"
    "  model     INTEGER NOT NULL,"
    "  items     BLOB    NOT NULL CHECK (typeof(items) = 'blob' AND length(items) % 8 = 0)"
    ");"
    "CREATE INDEX impressions_by_ts ON impressions(ts);";

static const store_migration s_builtin[] = {
    {1, s_schema_v1},
    {2, s_schema_v2},
    {3, s_schema_v3},
};

/* Versions are 1..N with one step each, so the table's length is the
 * newest version: keep store.h's number in step with it. */
_Static_assert(sizeof s_builtin / sizeof s_builtin[0] == STORE_SCHEMA_VERSION,
               "STORE_SCHEMA_VERSION must be the last migration step");

static const store_migration *s_steps = s_builtin;
static int s_nsteps = (int)(sizeof s_builtin / sizeof s_builtin[0]);

void store_schema_set_steps(const store_migration *steps, int n)
{
    if (steps && n > 0) {
        s_steps = steps;
        s_nsteps = n;
    } else {
        s_steps = s_builtin;
        s_nsteps = (int)(sizeof s_builtin / sizeof s_builtin[0]);
    }
}

const store_migration *store_schema_builtin(int *n)
{
    *n = (int)(sizeof s_builtin / sizeof s_builtin[0]);
    return s_builtin;
}

int store_schema_latest(void)
{
    return s_steps[s_nsteps - 1].to;
}

/* Every table and the columns our statements name.  Checked at open so that
 * a damaged or hand-edited file fails with "table X lacks column Y" instead
 * of an SQL error at the first query that happens to touch it. */
static const struct {
    const char *table;
    const char *cols[8];
} s_required[] = {
    {"meta", {"key", "value"}},
    {"items", {"item_id", "ext_id", "updated_at", "embedding", "title", "text"}},
    {"users", {"user_id", "ext_id"}},
    {"interactions", {"user_id", "item_id", "ts", "kind", "weight", "event_id"}},
    {"models", {"version", "created_at", "heads", "d_model", "config", "metrics", "active"}},
    {"model_tensors", {"version", "name", "rows", "cols", "dtype", "data"}},
    {"embedder_basis", {"name", "rows", "cols", "dtype", "data"}},
    {"impressions", {"imp_id", "ts", "user_hash", "key_id", "arm", "model", "items"}},
};

int store_schema_apply(store *db, int from, store_err *err)
{
    for (int i = 0; i < s_nsteps; i++) {
        if (s_steps[i].to <= from)
            continue;
        char *msg = NULL;
        int rc = sqlite3_exec(db->h, s_steps[i].sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            int code = store_fail(err, store_code_of(rc) == STORE_ERR_BUSY ? STORE_ERR_BUSY
                                                                           : STORE_ERR_SCHEMA,
                                  "%s: migrating schema to version %d failed: %s", db->path,
                                  s_steps[i].to, msg ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            return code;
        }
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", s_steps[i].to);
        rc = store_exec(db, sql, "setting the schema version", err);
        if (rc != STORE_OK)
            return rc;
    }
    return STORE_OK;
}

/* Bring a read-write handle's database forward to the latest version, in
 * one write transaction.  The version is read again under the lock: another
 * tool may have migrated it while we waited. */
static int s_migrate(store *db, store_err *err)
{
    int rc = store_exec(db, "BEGIN IMMEDIATE", "locking the database to migrate its schema",
                        err);
    if (rc != STORE_OK)
        return rc;
    int64_t v;
    rc = store_query_int(db, "PRAGMA user_version", &v, "reading the schema version", err);
    if (rc == STORE_OK && v < store_schema_latest())
        rc = store_schema_apply(db, (int)v, err);
    if (rc == STORE_OK)
        rc = store_exec(db, "COMMIT", "committing the schema migration", err);
    if (rc != STORE_OK)
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int s_check_tables(store *db, store_err *err)
{
    sqlite3_stmt *tab = NULL, *col = NULL;
    int rc = sqlite3_prepare_v2(db->h,
                                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                                -1, &tab, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db->h, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2",
                                -1, &col, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(tab);
        return store_sqlfail(db, err, rc, "reading the schema");
    }
    int code = STORE_OK;
    for (size_t t = 0; code == STORE_OK && t < sizeof s_required / sizeof s_required[0]; t++) {
        sqlite3_reset(tab);
        sqlite3_bind_text(tab, 1, s_required[t].table, -1, SQLITE_STATIC);
        rc = sqlite3_step(tab);
        if (rc == SQLITE_DONE) {
            code = store_fail(err, STORE_ERR_SCHEMA,
                              "%s: table '%s' is missing (schema version %d needs meta, items, "
                              "users, interactions, models, model_tensors, embedder_basis, impressions)",
                              db->path, s_required[t].table, store_schema_latest());
            break;
        }
        if (rc != SQLITE_ROW) {
            code = store_sqlfail(db, err, rc, "reading the schema");
            break;
        }
        for (int c = 0; c < 8 && s_required[t].cols[c]; c++) {
            sqlite3_reset(col);
            sqlite3_bind_text(col, 1, s_required[t].table, -1, SQLITE_STATIC);
            sqlite3_bind_text(col, 2, s_required[t].cols[c], -1, SQLITE_STATIC);
            rc = sqlite3_step(col);
            if (rc == SQLITE_DONE) {
                code = store_fail(err, STORE_ERR_SCHEMA, "%s: table '%s' lacks column '%s'",
                                  db->path, s_required[t].table, s_required[t].cols[c]);
                break;
            }
            if (rc != SQLITE_ROW) {
                code = store_sqlfail(db, err, rc, "reading the schema");
                break;
            }
        }
    }
    sqlite3_finalize(tab);
    sqlite3_finalize(col);
    return code;
}

/* meta embedding_dim, which fixes the length of every embedding blob. */
static int s_read_dim(store *db, store_err *err)
{
    char buf[32];
    store_err e;
    int rc = store_meta_get(db, "embedding_dim", buf, sizeof buf, &e);
    if (rc == STORE_ERR_NOTFOUND)
        return store_fail(err, STORE_ERR_SCHEMA,
                          "%s: meta has no embedding_dim (not initialised by 'attnctl init'?)",
                          db->path);
    if (rc != STORE_OK) {
        if (err)
            *err = e;
        return rc;
    }
    char *end;
    long d = strtol(buf, &end, 10);
    if (end == buf || *end || d < 1 || d > STORE_MAX_DIM)
        return store_fail(err, STORE_ERR_CORRUPT,
                          "%s: meta embedding_dim is '%s', expected an integer in 1..%d",
                          db->path, buf, STORE_MAX_DIM);
    db->dim = (int)d;
    return STORE_OK;
}

int store_schema_check(store *db, store_err *err)
{
    int64_t app, ver, ntab;
    int rc = store_query_int(db, "PRAGMA application_id", &app, "reading the header", err);
    if (rc == STORE_OK)
        rc = store_query_int(db, "PRAGMA user_version", &ver, "reading the header", err);
    if (rc == STORE_OK)
        rc = store_query_int(db, "SELECT count(*) FROM sqlite_schema", &ntab,
                             "reading the schema", err);
    if (rc != STORE_OK)
        return rc;

    if ((uint32_t)app != STORE_APPLICATION_ID) {
        if (ntab == 0)
            return store_fail(err, STORE_ERR_NOTOURS,
                              "%s: an empty SQLite database, not an attnd one "
                              "(create one with 'attnctl init %s --dim D')", db->path, db->path);
        return store_fail(err, STORE_ERR_NOTOURS,
                          "%s: an SQLite database but not an attnd one "
                          "(application_id 0x%08X, expected 0x%08X 'attn')",
                          db->path, (unsigned)(uint32_t)app, (unsigned)STORE_APPLICATION_ID);
    }
    int latest = store_schema_latest();
    if (ver > latest)
        return store_fail(err, STORE_ERR_SCHEMA,
                          "%s: schema version %lld is newer than this build knows (%d); "
                          "use a newer attnd/attnctl", db->path, (long long)ver, latest);
    if (ver < 1)
        return store_fail(err, STORE_ERR_SCHEMA,
                          "%s: schema version %lld: initialisation never completed; "
                          "recreate it with 'attnctl init'", db->path, (long long)ver);
    if (ver < latest) {
        if (!(db->flags & STORE_READWRITE) || (db->flags & STORE_NOMIGRATE))
            return store_fail(err, STORE_ERR_SCHEMA,
                              "%s: schema version %lld is older than this build's (%d); "
                              "run 'attnctl init --migrate %s' to upgrade it",
                              db->path, (long long)ver, latest, db->path);
        rc = s_migrate(db, err);
        if (rc != STORE_OK)
            return rc;
    }
    rc = s_check_tables(db, err);
    if (rc == STORE_OK)
        rc = s_read_dim(db, err);
    if (rc == STORE_OK && (db->flags & STORE_READWRITE)) {
        /* WAL is a property of the file, set by store_init; a copy made by a
         * tool that reset it would make the daemon's reads block writers.
         * Setting it again is a no-op when it is already WAL. */
        rc = store_exec(db, "PRAGMA journal_mode = WAL", "setting WAL mode", err);
    }
    return rc;
}
