/* catalog.c -- every embedded item in memory: one aligned matrix, two hashes.
 *
 * Layout.  Row r of the catalog holds item item_id[r] (ascending), its
 * embedding at emb + r*dim and its ext_id at pool + off[r].  The matrix is
 * one 64-byte aligned block so that the scorer can hand it to BLAS and to
 * vector loops directly.  ext_id -> row and item_id -> row are open-addressed
 * tables at load factor <= 1/2.  An item_id slot is 64 bits (hash high 32
 * bits | row + 1, 0 = empty).  An ext_id slot is 16 bytes and also holds the
 * id's length and first eight bytes, so that a lookup of an id of at most
 * eight bytes -- most catalogs' -- reads one slot and no string: a rank
 * request looks up ~150 ids in a table far larger than the caches, and each
 * further dependent read was another trip to memory.
 *
 * Workload.  Loaded once at daemon start and again at every reload, from one
 * scan in item_id order; the load must run at the speed SQLite can hand out
 * rows.  The matrix grows by doubling; on Linux it is an anonymous mapping
 * grown with mremap, which moves page tables instead of copying gigabytes
 * and never holds two copies.  Every blob is checked (length, finiteness)
 * as it is copied; any failure frees everything, so a catalog is either
 * whole or absent.
 */
#include "store/store_int.h"
#include "util/hash.h"
#include "util/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

typedef struct s_priv {
    char *pool;          /* every ext_id, NUL-terminated, back to back */
    size_t pool_len;     /* bytes used in pool */
    size_t pool_cap;     /* bytes allocated for pool */
    uint64_t *off;       /* n+1 offsets into pool; off[n] == pool_len */
    struct s_slot *ext_tab;  /* ext_id hash table, mask+1 slots */
    uint64_t *id_tab;    /* item_id hash table, mask+1 slots */
    uint64_t mask;       /* slots - 1 (a power of two minus one) */
    size_t emb_bytes;    /* bytes reserved for emb */
    size_t emb_ready;    /* bytes of emb already faulted in (s_prefault) */
    size_t cap;          /* rows reserved in emb, item_id and off */
} s_priv;

/* ---- the aligned matrix --------------------------------------------------- */

static void *s_emb_alloc(size_t bytes)
{
#ifdef __linux__
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
#else
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
#endif
}

/* Grow (or shrink) the matrix to new_bytes, keeping the first keep bytes. */
static void *s_emb_resize(void *p, size_t old_bytes, size_t new_bytes, size_t keep)
{
    if (!p)
        return s_emb_alloc(new_bytes);
#ifdef __linux__
    (void)keep;
    void *q = mremap(p, old_bytes, new_bytes, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? NULL : q;
#else
    (void)old_bytes;
    void *q = s_emb_alloc(new_bytes);
    if (q) {
        memcpy(q, p, keep);
        free(p);
    }
    return q;
#endif
}

/* Fault the matrix in ahead of the rows, a window at a time: one
 * MADV_POPULATE_WRITE costs far less than the 4 KiB page faults it replaces
 * (a third of the load time at 1M x 384).  Only advice: on kernels without
 * it (before 5.14) the pages fault in as they are written. */
static void s_prefault(float *emb, size_t *ready, size_t need, size_t reserved)
{
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
    const size_t window = 32u << 20;
    if (need <= *ready)
        return;
    size_t end = *ready + window < reserved ? *ready + window : reserved;
    if (end < need)
        end = need;
    char *base = (char *)emb;
    size_t from = *ready & ~(size_t)4095;   /* madvise wants page-aligned starts */
    if (madvise(base + from, end - from, MADV_POPULATE_WRITE) != 0)
        end = SIZE_MAX;   /* unsupported: stop asking */
    *ready = end;
#else
    (void)emb;
    (void)need;
    (void)reserved;
    *ready = SIZE_MAX;
#endif
}

static void s_emb_free(void *p, size_t bytes)
{
    if (!p)
        return;
#ifdef __linux__
    munmap(p, bytes);
#else
    (void)bytes;
    free(p);
#endif
}

/* ---- hashing -------------------------------------------------------------- */

/* An ext_id slot (see the top of the file).  head holds the id's first
 * eight bytes, zero-padded; tag_len the hash's bits 40..63 above the
 * length (255 for 255 bytes and more). */
typedef struct s_slot {
    uint64_t head;
    uint32_t tag_len;
    uint32_t row1;       /* row + 1; 0 = empty */
} s_slot;

static uint64_t s_load64(const char *s)
{
    uint64_t w;
    memcpy(&w, s, 8);
    return w;
}

static uint32_t s_load32(const char *s)
{
    uint32_t w;
    memcpy(&w, s, 4);
    return w;
}

/* Ids are short: the hash takes eight bytes at a time (the last word
 * overlapping the one before, so no byte past the id is read), and below
 * eight bytes two overlapping halves, which for a given length is a
 * one-to-one map of the id; the length seeds it.  Then a 64-bit finaliser,
 * so that the high bits (kept in the slot) and the low bits (the index)
 * are both well mixed.  The table lives in this process only: any good
 * spread will do, and FNV-1a's byte-at-a-time chain cost ~50 instructions
 * an id. */
static uint64_t s_hash_str(const char *s, size_t len)
{
    const uint64_t k = 0x9E3779B97F4A7C15ull;
    uint64_t h = (uint64_t)len * k;
    if (len >= 8) {
        for (size_t i = 0; i + 8 < len; i += 8) {
            h = (h ^ s_load64(s + i)) * k;
            h ^= h >> 32;
        }
        h ^= s_load64(s + len - 8);
    } else if (len >= 4) {
        h ^= (uint64_t)s_load32(s) << 32 | s_load32(s + len - 4);
    } else if (len > 0) {
        h ^= (uint64_t)(unsigned char)s[0] << 16 | (uint64_t)(unsigned char)s[len / 2] << 8 |
             (unsigned char)s[len - 1];
    }
    return util_hash_mix(h * k);
}

/* The slot's view of an id: its first eight bytes and tag_len. */
static uint64_t s_head(const char *s, size_t len)
{
    uint64_t w = 0;
    memcpy(&w, s, len < 8 ? len : 8);
    return w;
}

static uint32_t s_tag_len(uint64_t h, size_t len)
{
    return (uint32_t)(h >> 40) << 8 | (uint32_t)(len < 255 ? len : 255);
}

/* splitmix64's output function is a good 64-bit mixer: one step from id. */
static uint64_t s_hash_id(int64_t id)
{
    uint64_t z = (uint64_t)id;
    return util_splitmix64(&z);
}

#define S_TAG(h) ((h) >> 32)
#define S_SLOT(h, row) (((h) & 0xffffffff00000000ull) | ((uint64_t)(row) + 1))
#define S_ROW(slot) ((int64_t)((slot) & 0xffffffffu) - 1)

static void s_free_priv(s_priv *p, float *emb)
{
    if (!p)
        return;
    s_emb_free(emb, p->emb_bytes);
    free(p->pool);
    free(p->off);
    free(p->ext_tab);
    free(p->id_tab);
    free(p);
}

void store_catalog_free(store_catalog **cat_p)
{
    if (!cat_p || !*cat_p)
        return;
    store_catalog *cat = *cat_p;
    s_free_priv(cat->priv, cat->emb);
    free(cat->item_id);
    free(cat);
    *cat_p = NULL;
}

size_t store_catalog_bytes(const store_catalog *cat)
{
    if (!cat)
        return 0;
    const s_priv *p = cat->priv;
    size_t emb = cat->emb ? (size_t)cat->n * (size_t)cat->dim * sizeof(float) : 0;
    return sizeof *cat + sizeof *p + emb + (size_t)cat->n * sizeof(int64_t) + p->pool_cap + (p->cap + 1) * sizeof(uint64_t)
           + (p->mask + 1) * (sizeof(s_slot) + sizeof(uint64_t));
}

void store_catalog_drop_emb(store_catalog *cat)
{
    if (!cat || !cat->emb)
        return;
    s_priv *p = cat->priv;
    s_emb_free(cat->emb, p->emb_bytes);
    cat->emb = NULL;
    p->emb_bytes = p->emb_ready = 0;
}

/* Make room for one more row: double emb, item_id and off together. */
static int s_grow(store_catalog *cat, s_priv *p)
{
    size_t cap = p->cap ? 2 * p->cap : 4096;
    if (cap > UINT32_MAX - 1)
        cap = UINT32_MAX - 1;   /* rows are uint32_t, one value is kept back */
    if (cap <= p->cap)
        return STORE_ERR_NOMEM;
    size_t row_bytes = (size_t)cat->dim * sizeof(float);
    size_t bytes = cap * row_bytes;
    float *emb = s_emb_resize(cat->emb, p->emb_bytes, bytes, (size_t)cat->n * row_bytes);
    if (!emb)
        return STORE_ERR_NOMEM;
    cat->emb = emb;
    p->emb_bytes = bytes;
    int64_t *ids = realloc(cat->item_id, cap * sizeof *ids);
    if (!ids)
        return STORE_ERR_NOMEM;
    cat->item_id = ids;
    uint64_t *off = realloc(p->off, (cap + 1) * sizeof *off);
    if (!off)
        return STORE_ERR_NOMEM;
    p->off = off;
    p->cap = cap;
    return STORE_OK;
}

static int s_pool_add(s_priv *p, const char *s, size_t len)
{
    if (p->pool_len + len + 1 > p->pool_cap) {
        size_t cap = p->pool_cap ? p->pool_cap : 65536;
        while (cap < p->pool_len + len + 1)
            cap *= 2;
        char *pool = realloc(p->pool, cap);
        if (!pool)
            return STORE_ERR_NOMEM;
        p->pool = pool;
        p->pool_cap = cap;
    }
    memcpy(p->pool + p->pool_len, s, len);
    p->pool[p->pool_len + len] = '\0';
    p->pool_len += len + 1;
    return STORE_OK;
}

/* The row of ext (hash h) in the ext-id table, or -1: linear probing.  An
 * id of at most eight bytes is settled by its slot; a longer one whose
 * slot agrees is compared with the pool. */
static int64_t s_probe(const s_priv *p, uint64_t h, const char *ext, size_t len)
{
    uint64_t head = s_head(ext, len);
    uint32_t tag_len = s_tag_len(h, len);
    for (uint64_t i = h & p->mask; p->ext_tab[i].row1; i = (i + 1) & p->mask) {
        const s_slot *sl = &p->ext_tab[i];
        if (sl->tag_len != tag_len || sl->head != head)
            continue;
        int64_t r = (int64_t)sl->row1 - 1;
        if (len <= 8 || (p->off[r + 1] - p->off[r] - 1 == len &&
                         !memcmp(p->pool + p->off[r], ext, len)))
            return r;
    }
    return -1;
}

/* Both tables at load factor <= 1/2, so linear probing stays short. */
static int s_build_hashes(store *db, store_catalog *cat, s_priv *p, store_err *err)
{
    uint64_t slots = 16;
    while (slots < 2 * (uint64_t)cat->n)
        slots *= 2;
    p->mask = slots - 1;
    p->ext_tab = calloc(slots, sizeof *p->ext_tab);
    p->id_tab = calloc(slots, sizeof *p->id_tab);
    if (!p->ext_tab || !p->id_tab)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory for the catalog index "
                          "(%u items)", db->path, cat->n);
    for (uint32_t r = 0; r < cat->n; r++) {
        const char *ext = p->pool + p->off[r];
        size_t len = p->off[r + 1] - p->off[r] - 1;
        uint64_t h = s_hash_str(ext, len), i = h & p->mask;
        /* items.ext_id is UNIQUE, so a duplicate cannot happen in a sound file. */
        int64_t o = s_probe(p, h, ext, len);
        if (o >= 0)
            return store_fail(err, STORE_ERR_CORRUPT,
                              "%s: items: ext_id '%s' appears twice (item_id %lld and %lld)",
                              db->path, ext, (long long)cat->item_id[o],
                              (long long)cat->item_id[r]);
        while (p->ext_tab[i].row1)
            i = (i + 1) & p->mask;
        p->ext_tab[i] = (s_slot){.head = s_head(ext, len), .tag_len = s_tag_len(h, len),
                                 .row1 = r + 1};

        h = s_hash_id(cat->item_id[r]);
        i = h & p->mask;
        while (p->id_tab[i])
            i = (i + 1) & p->mask;
        p->id_tab[i] = S_SLOT(h, r);
    }
    return STORE_OK;
}

/* Copy and check one row's blob into row cat->n.  Called with the blob as
 * SQLite hands it out: length and type still unchecked. */
static int s_take_row(store *db, store_catalog *cat, s_priv *p, sqlite3_stmt *st,
                      store_err *err)
{
    int64_t id = sqlite3_column_int64(st, 0);
    int type = sqlite3_column_type(st, 2);
    const char *ext = (const char *)sqlite3_column_text(st, 1);
    size_t ext_len = (size_t)sqlite3_column_bytes(st, 1);
    if (!ext)
        ext = "";
    if (type != SQLITE_BLOB)
        return store_fail(err, STORE_ERR_CORRUPT,
                          "%s: items row item_id=%lld ext_id='%.100s': embedding is %s, "
                          "expected a blob of %d float32", db->path, (long long)id, ext,
                          type == SQLITE_INTEGER ? "an integer"
                          : type == SQLITE_FLOAT ? "a real" : "text", cat->dim);
    size_t want = (size_t)cat->dim * sizeof(float);
    const void *blob = sqlite3_column_blob(st, 2);
    size_t got = (size_t)sqlite3_column_bytes(st, 2);
    if (got != want)
        return store_fail(err, STORE_ERR_CORRUPT,
                          "%s: items row item_id=%lld ext_id='%.100s': embedding is %zu bytes, "
                          "expected %zu (embedding_dim %d x 4)", db->path, (long long)id, ext,
                          got, want, cat->dim);
    if (cat->n == p->cap && s_grow(cat, p) != STORE_OK)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory loading the catalog at "
                          "%u items of dimension %d", db->path, cat->n, cat->dim);
    float *row = cat->emb + (size_t)cat->n * (size_t)cat->dim;
    s_prefault(cat->emb, &p->emb_ready, (size_t)(cat->n + 1) * want, p->emb_bytes);
    store_f32_decode(row, blob, (size_t)cat->dim);
    ptrdiff_t bad = store_first_nonfinite(row, (size_t)cat->dim);
    if (bad >= 0)
        return store_fail(err, STORE_ERR_CORRUPT,
                          "%s: items row item_id=%lld ext_id='%.100s': embedding component "
                          "%td is %g, expected a finite value", db->path, (long long)id, ext,
                          bad, (double)row[bad]);
    if (cat->n > 0 && id <= cat->item_id[cat->n - 1])   /* defensive: ORDER BY item_id */
        return store_fail(err, STORE_ERR_CORRUPT, "%s: items: item_id %lld out of order",
                          db->path, (long long)id);
    if (s_pool_add(p, ext, ext_len) != STORE_OK)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory for ext_ids", db->path);
    cat->item_id[cat->n] = id;
    cat->n++;
    p->off[cat->n] = p->pool_len;
    return STORE_OK;
}

/* The scan proper, inside the caller's read transaction. */
static int s_scan(store *db, store_catalog *cat, s_priv *p, store_err *err)
{
    char ver[32];
    store_err e;
    int rc = store_meta_get(db, "catalog_version", ver, sizeof ver, &e);
    if (rc == STORE_OK)
        cat->version = strtoll(ver, NULL, 10);
    else if (rc != STORE_ERR_NOTFOUND)
        return err ? (*err = e).code : rc;

    sqlite3_stmt *st = store_stmt(db, STORE_ST_CATALOG_SCAN,
                                  "SELECT item_id, ext_id, embedding FROM items ORDER BY item_id",
                                  err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    p->off = malloc(sizeof *p->off);
    if (!p->off)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", db->path);
    p->off[0] = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 2) == SQLITE_NULL) {
            cat->n_unembedded++;
            continue;
        }
        int code = s_take_row(db, cat, p, st, err);
        if (code != STORE_OK) {
            sqlite3_reset(st);
            return code;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return store_sqlfail(db, err, rc, "reading items");
    return STORE_OK;
}

int store_catalog_load(store *db, store_catalog **out, store_err *err)
{
    if (!out)
        return store_fail(err, STORE_ERR_INVAL, "%s: store_catalog_load: no output", db->path);
    *out = NULL;
    store_catalog *cat = calloc(1, sizeof *cat);
    s_priv *p = calloc(1, sizeof *p);
    if (!cat || !p) {
        free(cat);
        free(p);
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", db->path);
    }
    cat->priv = p;
    cat->dim = db->dim;

    /* One read transaction, so that catalog_version and the rows agree
     * even while a writer commits.  A writer already inside its own
     * transaction reads its own snapshot instead. */
    int own_txn = sqlite3_get_autocommit(db->h);
    int rc = own_txn ? store_exec(db, "BEGIN", "starting the catalog read", err) : STORE_OK;
    if (rc == STORE_OK) {
        rc = s_scan(db, cat, p, err);
        if (own_txn)
            sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);   /* read-only: cannot fail */
    }
    if (rc == STORE_OK && p->cap > cat->n && cat->n > 0) {
        /* Give back the doubling's slack: up to half the matrix. */
        size_t bytes = (size_t)cat->n * (size_t)cat->dim * sizeof(float);
        float *emb = s_emb_resize(cat->emb, p->emb_bytes, bytes, bytes);
        if (emb) {
            cat->emb = emb;
            p->emb_bytes = bytes;
        }
    }
    if (rc == STORE_OK)
        rc = s_build_hashes(db, cat, p, err);
    if (rc != STORE_OK) {
        store_catalog_free(&cat);
        return rc;
    }
    *out = cat;
    return STORE_OK;
}

int64_t store_catalog_find(const store_catalog *cat, const char *ext, size_t len)
{
    if (!ext || cat->n == 0)
        return -1;
    return s_probe(cat->priv, s_hash_str(ext, len), ext, len);
}

/* The same as n calls of store_catalog_find, in passes so that the cache
 * misses of different ids overlap: hash and prefetch every first slot;
 * prefetch the offsets and strings that ids longer than a slot's eight
 * bytes will be compared with; compare.  On a catalog larger than the
 * caches each lookup is otherwise one to three dependent trips to memory. */
void store_catalog_find_many(const store_catalog *cat, const char *const *ext,
                             const size_t *len, int n, uint64_t *scratch, int64_t *rows)
{
    const s_priv *p = cat->priv;
    if (cat->n == 0) {
        for (int i = 0; i < n; i++)
            rows[i] = -1;
        return;
    }
    int longer = 0;
    for (int i = 0; i < n; i++) {
        scratch[i] = s_hash_str(ext[i], len[i]);
        __builtin_prefetch(&p->ext_tab[scratch[i] & p->mask]);
        longer |= len[i] > 8;
    }
    for (int i = 0; longer && i < n; i++) {
        const s_slot *sl = &p->ext_tab[scratch[i] & p->mask];
        if (len[i] > 8 && sl->row1 && sl->tag_len == s_tag_len(scratch[i], len[i])) {
            __builtin_prefetch(&p->off[sl->row1 - 1]);
            __builtin_prefetch(p->pool + p->off[sl->row1 - 1]);
        }
    }
    for (int i = 0; i < n; i++)
        rows[i] = s_probe(p, scratch[i], ext[i], len[i]);
}

static int64_t s_probe_id(const store_catalog *cat, uint64_t h, int64_t item_id)
{
    const s_priv *p = cat->priv;
    uint64_t i = h & p->mask;
    for (uint64_t s; (s = p->id_tab[i]) != 0; i = (i + 1) & p->mask) {
        int64_t r = S_ROW(s);
        if (S_TAG(s) == S_TAG(h) && cat->item_id[r] == item_id)
            return r;
    }
    return -1;
}

int64_t store_catalog_row(const store_catalog *cat, int64_t item_id)
{
    return cat->n ? s_probe_id(cat, s_hash_id(item_id), item_id) : -1;
}

/* store_catalog_find_many's passes for item ids: a user's history read from
 * the database is item ids, each one or two dependent misses (the slot,
 * then the row's item_id it is checked against). */
void store_catalog_row_many(const store_catalog *cat, const int64_t *item_ids, int n,
                            uint64_t *scratch, int64_t *rows)
{
    const s_priv *p = cat->priv;
    if (cat->n == 0) {
        for (int i = 0; i < n; i++)
            rows[i] = -1;
        return;
    }
    for (int i = 0; i < n; i++) {
        scratch[i] = s_hash_id(item_ids[i]);
        __builtin_prefetch(&p->id_tab[scratch[i] & p->mask]);
    }
    for (int i = 0; i < n; i++) {
        uint64_t sl = p->id_tab[scratch[i] & p->mask];
        if (sl && S_TAG(sl) == S_TAG(scratch[i]))
            __builtin_prefetch(&cat->item_id[S_ROW(sl)]);
    }
    for (int i = 0; i < n; i++)
        rows[i] = s_probe_id(cat, scratch[i], item_ids[i]);
}

const char *store_catalog_ext(const store_catalog *cat, uint32_t row)
{
    const s_priv *p = cat->priv;
    return row < cat->n ? p->pool + p->off[row] : NULL;
}

void store_catalog_ext_many(const store_catalog *cat, const uint32_t *rows, int n,
                            const char **ext, size_t *len)
{
    const s_priv *p = cat->priv;
    for (int i = 0; i < n; i++)
        __builtin_prefetch(&p->off[rows[i]]);
    for (int i = 0; i < n; i++) {
        ext[i] = p->pool + p->off[rows[i]];
        len[i] = p->off[rows[i] + 1] - p->off[rows[i]] - 1;
        __builtin_prefetch(ext[i]);
    }
}

/* Counting in C over one scan of interactions beats GROUP BY item_id, which
 * would sort every event (there is deliberately no index on item_id). */
int store_catalog_popularity(store *db, const store_catalog *cat, float *counts,
                             store_err *err)
{
    if (!cat || (!counts && cat->n))
        return store_fail(err, STORE_ERR_INVAL, "%s: store_catalog_popularity: bad arguments",
                          db->path);
    if (cat->n == 0)
        return STORE_OK;
    memset(counts, 0, (size_t)cat->n * sizeof *counts);
    /* A snapshot has no interactions: it carries their counts (snapshot.c). */
    const char *sql = store_is_snapshot(db)
                          ? "SELECT item_id, count FROM snapshot_popularity"
                          : "SELECT item_id, 1.0 FROM interactions";
    sqlite3_stmt *st = store_stmt(db, STORE_ST_POPULARITY, sql, err);
    if (!st)
        return err ? err->code : STORE_ERR_IO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t r = store_catalog_row(cat, sqlite3_column_int64(st, 0));
        if (r >= 0)
            counts[r] += (float)sqlite3_column_double(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? STORE_OK : store_sqlfail(db, err, rc, "counting interactions");
}
