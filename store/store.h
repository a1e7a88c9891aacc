/* store.h -- attnd's SQLite store: schema, catalog, histories, model versions.
 *
 *     store *db; store_err err;
 *     if (store_open(&db, "demo.db", STORE_READONLY, 2000, &err) != STORE_OK)
 *         die("%s", err.msg);                  // "demo.db: not an attnd database ..."
 *     store_catalog *cat;
 *     store_catalog_load(db, &cat, &err);      // all embeddings, one aligned matrix
 *     store_event ev[50]; int n;
 *     int64_t uid;
 *     if (store_user_id(db, "u42", 3, &uid, &err) == STORE_OK)
 *         store_history(db, uid, 50, ev, &n, &err);   // newest first
 *     store_catalog_free(&cat);
 *     store_close(&db);
 *
 * The schema (docs/SCHEMA.md is the full description) carries
 * PRAGMA application_id = 0x6174746E ('attn') so that a foreign SQLite file is
 * told apart from ours, and PRAGMA user_version = the schema version, which
 * read-write opens migrate forward.  A read-only open of an older schema fails
 * with STORE_ERR_SCHEMA and names the command that migrates it.
 *
 * Every function returns a store code and, on failure, fills err (which may be
 * NULL) with the code and one line naming the file, table, row and reason.
 * A store handle is for one thread; open one per thread.
 */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "attn/model.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_APPLICATION_ID 0x6174746E

enum store_code {
    STORE_OK = 0,
    STORE_ERR_IO,        /* the file cannot be opened, read or written */
    STORE_ERR_NOTDB,     /* the file is not an SQLite database */
    STORE_ERR_NOTOURS,   /* an SQLite database, but not an attnd one */
    STORE_ERR_SCHEMA,    /* schema too old/new, or a table or column is missing */
    STORE_ERR_BUSY,      /* locked by another connection past the busy timeout */
    STORE_ERR_CORRUPT,   /* a row breaks an invariant: blob length, non-finite value */
    STORE_ERR_DIM,       /* dimensions disagree (embedding vs meta, model vs catalog) */
    STORE_ERR_NOTFOUND,  /* no such user, item or model version */
    STORE_ERR_INVAL,     /* the caller passed something outside the contract */
    STORE_ERR_NOMEM,     /* out of memory; nothing was changed */
    STORE_ERR_EXISTS,    /* init over a database that already holds data */
};

typedef struct store_err {
    int code;          /* enum store_code */
    char msg[512];     /* one line, no trailing newline */
} store_err;

/* Stable short name of a code ("busy", "corrupt", ...), never NULL. */
const char *store_strerror(int code);

typedef struct store store;

enum store_open_flags {
    STORE_READONLY = 0,   /* the daemon: never writes, never migrates */
    STORE_READWRITE = 1,  /* tools: migrates an older schema forward */
};

/* Open an existing attnd database.  busy_ms is SQLite's busy timeout.
 * On success *out owns the connection; on failure *out is NULL and err says
 * which of these it was, naming the file:
 *   STORE_ERR_IO       missing file (never created here: see store_init),
 *                      a directory, no permission
 *   STORE_ERR_NOTDB    not an SQLite database: text, garbage, truncated
 *   STORE_ERR_NOTOURS  an SQLite database without our application_id
 *   STORE_ERR_SCHEMA   schema too old (read-only) or too new, a table or
 *                      column missing, meta embedding_dim missing
 *   STORE_ERR_BUSY     a read-write open had to migrate and the database
 *                      stayed locked for busy_ms
 * Read-write opens turn foreign keys on and migrate an older schema. */
int store_open(store **out, const char *path, int flags, int busy_ms, store_err *err);

/* Accepts NULL; finalizes every statement; sets *db_p = NULL. */
void store_close(store **db_p);

/* Create a new database at path with embedding dimension dim and the
 * identity model as active version 0.  STORE_ERR_EXISTS if path already
 * holds data (a non-empty file or write-ahead log); an empty file is fine.
 * All or nothing: on failure a file created here is removed again. */
int store_init(const char *path, int dim, store_err *err);

const char *store_path(const store *db);
int store_dim(const store *db);                   /* meta embedding_dim */
/* The sqlite3 * for tools that need a query the store has no function for.
 * Borrowed; do not close it.  Writers should still go through store_item_put
 * and friends, which check what they write. */
void *store_sqlite(store *db);                    /* the sqlite3 *, for tools */

/* meta table.  get copies into buf (NUL-terminated, truncated to len);
 * STORE_ERR_NOTFOUND if the key is absent. */
int store_meta_get(store *db, const char *key, char *buf, size_t len, store_err *err);
/* Insert or replace a key.  embedding_dim cannot be changed (STORE_ERR_INVAL). */
int store_meta_set(store *db, const char *key, const char *value, store_err *err);

/* Transactions for writers: BEGIN IMMEDIATE (waits busy_ms for the lock,
 * then STORE_ERR_BUSY "database is locked by another writer ...").
 * store_rollback accepts NULL and a handle with no open transaction. */
int store_begin(store *db, store_err *err);
int store_commit(store *db, store_err *err);
void store_rollback(store *db);

/* ---- catalog ---------------------------------------------------------------
 * Every embedded item, loaded in one pass ordered by item_id.  Items whose
 * embedding is NULL (imported, not yet embedded) are left out and counted.
 * A row with a blob of the wrong length or a non-finite value fails the whole
 * load: nothing is ever half-loaded. */
typedef struct store_catalog {
    uint32_t n;              /* items loaded (rows of emb) */
    int dim;                 /* floats per row */
    float *emb;              /* n x dim, row-major, 64-byte aligned */
    int64_t *item_id;        /* n, ascending: row r holds item item_id[r] */
    uint32_t n_unembedded;   /* items skipped for a NULL embedding */
    int64_t version;         /* meta catalog_version when loaded */
    void *priv;              /* lookup hashes and the ext_id pool */
} store_catalog;

/* One read transaction, so rows and version agree.  emb is NULL when n is 0.
 * STORE_ERR_CORRUPT names the items row (item_id, ext_id) and the reason;
 * on any failure *out is NULL and nothing is left allocated. */
int store_catalog_load(store *db, store_catalog **out, store_err *err);
void store_catalog_free(store_catalog **cat_p);      /* accepts NULL */
size_t store_catalog_bytes(const store_catalog *cat);

/* meta catalog_version now (0 if absent): a cheap poll for "reload?". */
int store_catalog_version(store *db, int64_t *version, store_err *err);

/* Row of an item, or -1.  O(1) hash lookups; ext need not be
 * NUL-terminated. */
int64_t store_catalog_find(const store_catalog *cat, const char *ext, size_t len);
int64_t store_catalog_row(const store_catalog *cat, int64_t item_id);
/* n lookups at once, rows[i] for ext[i] (length len[i]) or -1; faster than
 * n calls on large catalogs (the memory accesses overlap).  scratch holds n
 * values. */
void store_catalog_find_many(const store_catalog *cat, const char *const *ext,
                             const size_t *len, int n, uint64_t *scratch, int64_t *rows);
/* ext_id of a row, borrowed from the catalog, NUL-terminated. */
const char *store_catalog_ext(const store_catalog *cat, uint32_t row);

/* Titles of every catalog row, in one pool: row r's title is
 * pool[off[r] .. off[r + 1]).  Each is cut to at most max_bytes on a
 * character boundary and any invalid UTF-8 in the database is replaced by
 * U+FFFD, so a title can go into a JSON reply as it is. */
typedef struct store_titles {
    uint32_t n;          /* rows, = the catalog's n */
    char *pool;          /* the titles back to back, not NUL-terminated */
    uint64_t *off;       /* n + 1 offsets into pool */
    size_t bytes;        /* memory held: pool and offsets */
} store_titles;

/* One read of the items table, in the catalog's row order.  On failure
 * *out is NULL and nothing is left allocated. */
int store_catalog_titles(store *db, const store_catalog *cat, size_t max_bytes,
                         store_titles **out, store_err *err);
void store_titles_free(store_titles **titles_p);   /* accepts NULL */

/* Interaction count per catalog row (the popularity prior), into counts[n]. */
int store_catalog_popularity(store *db, const store_catalog *cat, float *counts,
                             store_err *err);

/* ---- users and histories -------------------------------------------------- */
typedef struct store_event {
    int64_t item_id;
    int64_t ts;         /* unix seconds */
    float weight;       /* > 0 */
} store_event;

/* STORE_ERR_NOTFOUND if no user has this ext_id (ext need not be
 * NUL-terminated). */
int store_user_id(store *db, const char *ext, size_t len, int64_t *user_id,
                  store_err *err);
/* The same for items, embedded or not (importers resolving event files). */
int store_item_id(store *db, const char *ext, size_t len, int64_t *item_id,
                  store_err *err);

/* The user's newest max events, newest first; equal timestamps by item_id
 * descending (the newest of a tie is the larger item_id: chronological order
 * is ts, then item_id, everywhere).  Prepared once, covering primary key. */
int store_history(store *db, int64_t user_id, int max, store_event *ev, int *n,
                  store_err *err);

/* Title of an item into buf (truncated to len); "" if it has none.
 * STORE_ERR_NOTFOUND (and "" in buf) if there is no such item. */
int store_item_title(store *db, int64_t item_id, char *buf, size_t len, store_err *err);

/* ---- writers (inside store_begin/commit) ---------------------------------- */
/* Insert or update by ext_id; an existing item keeps its item_id (item_id
 * may be NULL).  emb must hold store_dim() finite floats (a non-finite one
 * is STORE_ERR_CORRUPT naming the ext_id and component), or be NULL: then a
 * new item is "not embedded yet" and an existing one keeps its embedding --
 * unless title or text changed, which makes it stale and sets it NULL.
 * NULL title/text: '' for a new item, unchanged for an existing one. */
int store_item_put(store *db, const char *ext, const char *title, const char *text,
                   const float *emb, int64_t updated_at, int64_t *item_id,
                   store_err *err);
/* The same, with the caller's length of emb checked against store_dim():
 * STORE_ERR_DIM naming the ext_id and both dimensions. */
int store_item_put_dim(store *db, const char *ext, const char *title, const char *text,
                       const float *emb, int dim, int64_t updated_at, int64_t *item_id,
                       store_err *err);
/* Set only the embedding of an existing item (NULL clears it);
 * STORE_ERR_NOTFOUND if there is no such item. */
int store_item_set_embedding(store *db, int64_t item_id, const float *emb, store_err *err);
int store_item_set_embedding_dim(store *db, int64_t item_id, const float *emb, int dim,
                                 store_err *err);
/* Insert a user, or find the existing one with this ext_id. */
int store_user_put(store *db, const char *ext, int64_t *user_id, store_err *err);
/* Add an event; an identical (user, item, ts, kind) replaces the weight.
 * kind NULL or "" means "view"; weight must be finite and > 0
 * (STORE_ERR_INVAL); an unknown user or item is STORE_ERR_NOTFOUND. */
int store_event_put(store *db, int64_t user_id, int64_t item_id, int64_t ts,
                    const char *kind, float weight, store_err *err);
/* Bump meta catalog_version so that running daemons reload. */
int store_catalog_touch(store *db, store_err *err);

/* ---- model versions ------------------------------------------------------- */
#define STORE_MODEL_ACTIVE (-1)

/* Load a version (or the active one) with every tensor checked: shapes agree
 * with the config, lengths with rows*cols, values finite, item_ids strictly
 * ascending, d with store_dim (else STORE_ERR_DIM naming both).  Absent
 * projections load as NULL (identity), absent biases as zeros.  The caller
 * frees *out with attn_model_free.  STORE_ERR_NOTFOUND: no such version (or
 * none active); STORE_ERR_CORRUPT: a tensor or the config is bad;
 * STORE_ERR_SCHEMA: a tensor this build does not know. */
int store_model_load(store *db, int64_t version, attn_model **out, store_err *err);

/* Write a new version (its number chosen here, never reused, into *version,
 * which may be NULL) with its tensors, in one transaction -- or inside the
 * caller's store_begin, when one is open.  config_json, if not NULL, must be
 * a JSON object (trainer settings are kept); d, m, heads, l_max, scale and
 * identity are written from the model itself, and a config that disagrees
 * with it is STORE_ERR_INVAL.  metrics_json may be NULL.  The model must pass
 * attn_model_check and have d == store_dim.  activate makes it the active
 * version in the same transaction. */
int store_model_save(store *db, const attn_model *model, const char *config_json,
                     const char *metrics_json, int activate, int64_t *version,
                     store_err *err);
/* Make version the active one: it is loaded and checked first, and a
 * version that cannot load is refused with the reason, the old active one
 * staying active.  The flip itself is one transaction. */
int store_model_activate(store *db, int64_t version, store_err *err);
/* The active version; STORE_ERR_NOTFOUND if none is active. */
int store_model_active(store *db, int64_t *version, store_err *err);

/* One row of the models table, for listings (attnctl model list, info). */
typedef struct store_model_info {
    int64_t version;
    int64_t created_at;    /* unix seconds */
    int heads;
    int d_model;
    int active;            /* 1 for the active version */
    char *config;          /* JSON text, owned by the list */
    char *metrics;         /* JSON text or NULL, owned by the list */
} store_model_info;

/* Every version, ascending, into a new array of *n entries (NULL when 0).
 * Free it with store_model_list_free. */
int store_model_list(store *db, store_model_info **out, size_t *n, store_err *err);
void store_model_list_free(store_model_info **list_p, size_t n);   /* accepts NULL */

#endif
