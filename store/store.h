/* store.h -- attnd's SQLite store: schema, catalog, histories, model versions.
 * The only header through which programs reach the schema: no SQL text
 * lives outside store/.  The jobs built on it have their own folders and
 * headers: store/import/import.h, store/embed/embed.h, store/gen/gen.h.
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

#define STORE_SCHEMA_VERSION 3
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
    STORE_ERR_UNAVAILABLE,  /* a remote store (a Redis node) did not answer in time or
                               refused the connection: nothing was read or written there */
};

typedef struct store_err {
    int code;          /* enum store_code */
    char msg[512];     /* one line, no trailing newline */
} store_err;

/* Stable short name of a code ("busy", "corrupt", ...), never NULL. */
const char *store_strerror(int code);

/* Fill err (may be NULL) with code and a printf-formatted line (newlines
 * become spaces); returns code, so that callers -- the core and the job
 * folders built on it -- can `return store_fail(...)`. */
int store_fail(store_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct store store;

enum store_open_flags {
    STORE_READONLY = 0,   /* the daemon's readers: never write, never migrate */
    STORE_READWRITE = 1,  /* tools: migrates an older schema forward */
    STORE_NOMIGRATE = 2,  /* with READWRITE: an older schema fails as it does
                             read-only (the daemon's writer: a migration is an
                             operator's decision, never a side effect) */
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

/* Open path read-write, which migrates an older schema forward (see
 * store_open for the failures), and close it again.  *from (may be NULL)
 * gets the schema version the file had before, -1 if it could not be read. */
int store_migrate(const char *path, int busy_ms, int *from, store_err *err);

const char *store_path(const store *db);
int store_dim(const store *db);                   /* meta embedding_dim */
/* Set this connection's page cache (SQLite's cache_size: n > 0 pages,
 * n < 0 KiB) and return the previous setting (0 if it could not be read),
 * so that a bulk writer can give it back afterwards.  A hint: never fails. */
int64_t store_cache_size(store *db, int64_t size);

/* meta table.  get copies into buf (NUL-terminated, truncated to len);
 * STORE_ERR_NOTFOUND if the key is absent. */
int store_meta_get(store *db, const char *key, char *buf, size_t len, store_err *err);
/* Insert or replace a key.  embedding_dim cannot be changed here (STORE_ERR_INVAL;
 * store_dim_rewrite is the one way, for the embedder). */
int store_meta_set(store *db, const char *key, const char *value, store_err *err);

/* Transactions for writers: BEGIN IMMEDIATE (waits busy_ms for the lock,
 * then STORE_ERR_BUSY "database is locked by another writer ...").
 * store_rollback accepts NULL and a handle with no open transaction. */
int store_begin(store *db, store_err *err);
int store_commit(store *db, store_err *err);
void store_rollback(store *db);

/* Durability of this connection's commits (PRAGMA synchronous): 0 NORMAL
 * (WAL: survives a crash of the process or the OS' crash of attnd, a power
 * cut may lose the last commits), 1 FULL (an fsync of the WAL at every
 * commit: survives a power cut too).  Read-write handles start at NORMAL. */
int store_synchronous(store *db, int full, store_err *err);
/* WAL checkpoints.  store_wal_autocheckpoint(db, pages > 0) lets a commit
 * that leaves the WAL over that many pages checkpoint on its own (SQLite's
 * default, 1000); pages = 0 never does, and the caller checkpoints with
 * store_wal_checkpoint itself, off its commits' latency: store_wal_pages
 * then says how many pages the WAL held after this connection's last
 * commit.  store_wal_checkpoint copies what it can back into the database
 * without waiting for readers (PASSIVE); *wal_pages (may be NULL) gets the
 * WAL's size in pages when it ran. */
int store_wal_autocheckpoint(store *db, int pages, store_err *err);
int store_wal_pages(const store *db);
int store_wal_checkpoint(store *db, int *wal_pages, store_err *err);

/* A read transaction (BEGIN, deferred; read-only handles too): until
 * store_read_end every query sees the database as of its first read, even
 * while a writer commits beside it.  STORE_ERR_INVAL if a transaction is
 * already open.  store_read_end accepts NULL and no open transaction. */
int store_read_begin(store *db, store_err *err);
void store_read_end(store *db);

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

/* Give back the embedding matrix (4 n dim bytes); emb becomes NULL, the
 * ids, hashes and ext_id pool stay.  For a caller whose scorer keeps its own
 * copy of every row it reads (attn_tables_borrows_emb() == 0: bfloat16
 * tables).  Accepts NULL and a catalog already without one. */
void store_catalog_drop_emb(store_catalog *cat);

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
/* The same for item ids: rows[i] for item_ids[i], or -1. */
void store_catalog_row_many(const store_catalog *cat, const int64_t *item_ids, int n,
                            uint64_t *scratch, int64_t *rows);
/* ext_id of a row, borrowed from the catalog, NUL-terminated. */
const char *store_catalog_ext(const store_catalog *cat, uint32_t row);
/* The same and its length (no strlen), for n rows at once: ext[i], len[i]
 * for rows[i].  The loads of different rows overlap, and each string is
 * prefetched, so that a reply of k items waits for about one miss, not
 * 2k.  rows must be valid. */
void store_catalog_ext_many(const store_catalog *cat, const uint32_t *rows, int n,
                            const char **ext, size_t *len);

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

/* Interaction count per catalog row (the popularity prior), into counts[n];
 * a snapshot's from the counts it carries instead. */
int store_catalog_popularity(store *db, const store_catalog *cat, float *counts,
                             store_err *err);

/* ---- snapshots (snapshot.c) ------------------------------------------------
 * What replicas serve, in one read-only file: items, models (the active
 * one; every one with all_models), the embedder basis, meta and the
 * popularity counts -- no users, no interactions (replicas read histories
 * from Redis).  An attnd database of the same schema, marked by meta
 * 'snapshot'.  Written to a temporary file beside out and renamed over it,
 * so a replica reloading sees the old file or the new one, whole. */
#define STORE_CHECKSUM_HEX 65   /* BLAKE2b-256 as hex, NUL included */

typedef struct store_snapshot_info {
    int64_t items, models;        /* copied */
    int64_t events;               /* interactions counted into the popularity prior */
    int64_t bytes;                /* the file's size */
    char checksum[STORE_CHECKSUM_HEX];   /* of the file (`b2sum -l 256 FILE`) */
} store_snapshot_info;

int store_snapshot_write(const char *src, const char *out, int all_models,
                         store_snapshot_info *info, store_err *err);
/* 1 when db is a snapshot, 0 otherwise (also when meta cannot be read). */
int store_is_snapshot(store *db);
/* BLAKE2b-256 of the file's bytes, as hex. */
int store_file_checksum(const char *path, char hex[STORE_CHECKSUM_HEX], store_err *err);

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

/* store_user_id and store_history in one read of the database: what the
 * rank path calls.  STORE_ERR_NOTFOUND, with store_user_id's message, if no
 * user has this ext_id; a user without events has *n = 0. */
int store_user_history(store *db, const char *ext, size_t len, int max, store_event *ev,
                       int *n, store_err *err);

/* Users whose user_id is at least from (INT64_MIN: all) into *n. */
int store_users_count(store *db, int64_t from, int64_t *n, store_err *err);

/* One event of store_history_scan; strings borrowed for the call. */
typedef struct store_scan_event {
    int64_t user_id;
    const char *user;       /* the user's ext_id */
    int64_t item_id, ts;
    float weight;
    const char *kind;
    const char *event_id;   /* NULL when it has none */
} store_scan_event;
/* STORE_OK goes on; any other code stops the scan and is returned. */
typedef int (*store_scan_fn)(void *ctx, const store_scan_event *ev);

/* Every user's newest max_per_user events, in one read transaction: users
 * by descending user_id starting below below_user_id (INT64_MAX: all), each
 * user's events newest first in store_history's order.  For bulk copies
 * (`attnctl history push`): the primary key walked backwards, no sort. */
int store_history_scan(store *db, int64_t below_user_id, int max_per_user, store_scan_fn fn,
                       void *ctx, store_err *err);

/* Title of an item into buf (truncated to len); "" if it has none.
 * STORE_ERR_NOTFOUND (and "" in buf) if there is no such item. */
int store_item_title(store *db, int64_t item_id, char *buf, size_t len, store_err *err);

/* Called for every item in item_id order: ext, title and text are
 * NUL-terminated ("" for NULL) and borrowed for the call; embedded says
 * whether the item has an embedding now.  STORE_OK goes on; any other code
 * stops the scan and is returned. */
typedef int (*store_item_text_fn)(void *ctx, int64_t item_id, const char *ext,
                                  const char *title, const char *text, int embedded);
enum store_item_which {
    STORE_ITEMS_ALL = 0,          /* every item */
    STORE_ITEMS_UNEMBEDDED = 1,   /* only items whose embedding is NULL */
};
/* The ext_id, title and text of every item, or of every item without an
 * embedding (text.c), for the embedder. */
int store_item_texts(store *db, int which, store_item_text_fn fn, void *ctx, store_err *err);
/* How many items there are, and how many have an embedding (either may be NULL). */
int store_item_counts(store *db, int64_t *items, int64_t *embedded, store_err *err);

/* The item_ids of the newest fraction (0..1] of the items that have events,
 * newest by their first event (ts, then item_id: the larger is newer), into
 * a new ascending array of *n = ceil(fraction * items with events) entries
 * (NULL when 0; free()).  What "items added last" means for an experiment
 * that holds them out of a fit and of training (first_seen.c). */
int store_items_newest(store *db, double fraction, int64_t **ids, size_t *n, store_err *err);

/* ---- embedder_basis (basis.c) ----------------------------------------------
 * Named arrays of a fitted text embedder (docs/SCHEMA.md lists the rows the
 * built-in one writes).  f32 and i64 arrays are row-major host arrays,
 * stored little-endian; text is rows = 1, cols = its length in bytes. */
enum store_basis_dtype {
    STORE_BASIS_F32 = 1,
    STORE_BASIS_I64 = 2,
    STORE_BASIS_TEXT = 3,
};
/* Delete every row; inside the caller's store_begin. */
int store_basis_clear(store *db, store_err *err);
/* Insert or replace row name; inside the caller's store_begin. */
int store_basis_put(store *db, const char *name, int dtype, int64_t rows, int64_t cols,
                    const void *data, store_err *err);
/* Row name into a new array (free(); text is NUL-terminated) with its shape.
 * STORE_ERR_NOTFOUND if absent; STORE_ERR_CORRUPT naming the row if its
 * dtype is not dtype, its blob length not rows*cols elements, an f32 value
 * not finite or a text holds a NUL byte. */
int store_basis_get(store *db, const char *name, int dtype, void **data, int64_t *rows,
                    int64_t *cols, store_err *err);

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
/* Record one live event, exactly once: inserted unless an event with the
 * same event_id (NULL: none given, the event is then identified by its
 * primary key alone) or the same (user, ts, item, kind) is stored already.
 * *stored is 1 when it was inserted, 0 for such a duplicate (nothing is
 * changed: unlike store_event_put, a repeat never rewrites the weight).
 * kind NULL or "" is "view"; weight as store_event_put; an item or user that
 * does not exist is STORE_ERR_NOTFOUND, and the transaction goes on. */
int store_event_record(store *db, int64_t user_id, int64_t item_id, int64_t ts,
                       const char *kind, float weight, const char *event_id, int *stored,
                       store_err *err);
/* Delete a user that has no events (one a writer created for an event it
 * then did not store); a user with events is left alone.  *deleted (may be
 * NULL) says which. */
int store_user_drop_unused(store *db, int64_t user_id, int *deleted, store_err *err);
/* Bump meta catalog_version so that running daemons reload. */
int store_catalog_touch(store *db, store_err *err);

/* Change embedding_dim to dim (1..65536) inside the caller's store_begin:
 * meta embedding_dim, the identity model's shape, and the active model --
 * a trained one of another dimension is deactivated and the identity model
 * serves.  *models_unusable (may be NULL) gets the number of versions whose
 * d is not dim.  The caller must then rewrite every embedding in the same
 * transaction: store_dim() is dim at once, so store_item_set_embedding takes
 * the new length; store_rollback puts the old one back.  For the embedder
 * (store/embed/); everyone else keeps the dimension a database was made with. */
int store_dim_rewrite(store *db, int dim, int *models_unusable, store_err *err);

/* ---- impressions (experiments) -------------------------------------------- *
 * A sample of ranked replies, for `attnctl experiment report`: when, for
 * whom (a keyed hash of the user's ext_id, util/mask.h, and which key), the
 * arm and model, the returned items in rank order. */
typedef struct store_impression {
    int64_t ts;              /* unix seconds */
    const char *user_hash;   /* hex, keyed: never the raw id */
    const char *key_id;      /* the mask key's id ("none" when masking is off) */
    const char *arm;         /* NULL without an experiment */
    int64_t model;
    const int64_t *items;    /* item_ids, best first */
    int n_items;
} store_impression;

/* Append n impressions in one transaction (the caller's, when one is open).
 * Strings are copied; the rows are durable when it returns STORE_OK. */
int store_impressions_put(store *db, const store_impression *imp, int n, store_err *err);

/* Every impression with ts >= since, oldest first; fn returns nonzero to
 * stop (its value is returned).  The struct is valid for the call only. */
int store_impressions_scan(store *db, int64_t since,
                           int (*fn)(void *ctx, const store_impression *imp), void *ctx,
                           store_err *err);

/* Every user: fn(ctx, user_id, ext_id) until it returns nonzero. */
int store_users_scan(store *db, int (*fn)(void *ctx, int64_t user_id, const char *ext),
                     void *ctx, store_err *err);

/* The user's events with from <= ts <= to, oldest first (ts, then
 * item_id), at most max into ev. */
int store_events_between(store *db, int64_t user_id, int64_t from, int64_t to, int max,
                         store_event *ev, int *n, store_err *err);

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
    int sa_len;            /* config's sa_len (self-attention window); 0 if absent */
    int ffn;               /* config's ffn (the block's feed-forward width); 0 if absent */
    char *config;          /* JSON text, owned by the list */
    char *metrics;         /* JSON text or NULL, owned by the list */
} store_model_info;

/* Whether version was refit on the validation targets (its config says
 * "refit": true, attnctl train --refit): its validation scores mean
 * nothing.  STORE_ERR_NOTFOUND for no such version. */
int store_model_refit(store *db, int64_t version, int *refit, store_err *err);

/* Every version, ascending, into a new array of *n entries (NULL when 0).
 * Free it with store_model_list_free. */
int store_model_list(store *db, store_model_info **out, size_t *n, store_err *err);
void store_model_list_free(store_model_info **list_p, size_t n);   /* accepts NULL */

/* ---- inspection (inspect.c) ------------------------------------------------
 * What `attnctl inspect` reports.  Read-only; inside store_read_begin/end the
 * numbers and the checks describe one snapshot. */
#define STORE_SUMMARY_KINDS 8

typedef struct store_summary {
    int64_t schema_version;      /* PRAGMA user_version */
    int64_t items, items_embedded, users, events;
    int n_kinds;                 /* entries of kind[] */
    struct {
        char name[128];          /* interactions.kind, truncated to 127 bytes */
        int64_t events;
    } kind[STORE_SUMMARY_KINDS]; /* the most common kinds, most events first */
    int64_t users_with_events;   /* users with at least one event; the three */
    int64_t per_user_min;        /* below are over them (0 when there are none) */
    double per_user_median;
    int64_t per_user_max;
} store_summary;

/* Counts of items (embedded or not), users, events, events per kind and per
 * user.  On failure err names the query that failed; *out is then partial. */
int store_summary_read(store *db, store_summary *out, store_err *err);

/* A problem report: one line, no newline; msg is borrowed for the call. */
typedef void (*store_problem_fn)(void *ctx, const char *msg);

/* The checks a database should pass before a daemon serves it: SQLite's
 * PRAGMA quick_check, every embedding blob (length = embedding_dim x 4, all
 * values finite), events pointing to missing items or users, users without
 * events, weights that are not > 0.  Each problem is reported through fn as
 * a line naming the rows (the first five of a kind, then a count); a check
 * that cannot run is reported as a problem too.  Returns the number of
 * problems reported, 0 for a healthy database.  The active model is not
 * checked here: store_model_load is that check. */
int store_check(store *db, store_problem_fn fn, void *ctx);

/* ---- ids for load generators (sample.c) ----------------------------------- */
enum store_ext_kind {
    STORE_EXT_ITEM = 1,   /* an item with an embedding (one the daemon can rank) */
    STORE_EXT_USER = 2,
};

/* Called once per id: ext is NUL-terminated and borrowed for the call.
 * STORE_OK goes on; any other code stops the scan. */
typedef int (*store_ext_fn)(void *ctx, int kind, const char *ext);

/* The ext_id of every embedded item (item_id order) and then, when
 * with_users, of every user (user_id order), from the database file at
 * path, passed to fn.  The file is opened read-only with plain SQLite -- no
 * schema-version check, no catalog, no write lock -- so a load generator
 * works beside a daemon and an import on any database with those two
 * tables.  Errors name path: STORE_ERR_IO (cannot open), STORE_ERR_NOTOURS
 * (no such table or column: "is it an attnd database?"), SQLite's failure
 * while reading, or the code fn stopped with. */
int store_ext_ids_file(const char *path, int with_users, store_ext_fn fn, void *ctx,
                       store_err *err);

#endif
