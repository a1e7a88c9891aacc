/* map.c -- the ext_id -> id cache of the importers.
 *
 * An events file names each user and item by ext_id on every line; resolving
 * them through SQLite each time would cost two indexed lookups per event.
 * This map answers repeats from memory.  Layout: a power-of-two slot array
 * (linear probing, load <= 1/2) holding the full 64-bit hash, the value and a
 * pointer into a pool of key bytes allocated in chunks, so inserting never
 * moves a key.  It is a cache: at max entries it is emptied, which bounds its
 * memory on catalogs of any size at the cost of some repeated lookups.
 */
#include "store/import/read.h"

#include <stdlib.h>
#include <string.h>

#define POOL_CHUNK (64u << 10)

typedef struct s_slot {
    uint64_t hash;     /* 0 marks an empty slot (a real 0 hash is bumped to 1) */
    const char *key;   /* in the pool, NUL-terminated */
    uint32_t len;      /* key length */
    int64_t val;
} s_slot;

typedef struct s_chunk {
    struct s_chunk *next;   /* older chunk */
    size_t used;            /* bytes of data[] handed out */
    size_t cap;             /* bytes of data[] */
    char data[];
} s_chunk;

struct store_import_map {
    s_slot *slots;     /* cap entries */
    size_t cap;        /* power of two */
    size_t count;      /* occupied slots */
    size_t max;        /* entries before the map empties itself */
    s_chunk *pool;     /* newest chunk first */
};

store_import_map *store_import_map_new(size_t max)
{
    store_import_map *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 1024;
    m->max = max ? max : 1;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

static void s_pool_free(s_chunk *c)
{
    while (c) {
        s_chunk *next = c->next;
        free(c);
        c = next;
    }
}

void store_import_map_free(store_import_map **map_p)
{
    if (!map_p || !*map_p)
        return;
    s_pool_free((*map_p)->pool);
    free((*map_p)->slots);
    free(*map_p);
    *map_p = NULL;
}

static uint64_t s_hash(const char *key, size_t len)
{
    uint64_t h = store_import_hash(key, len, 0);
    return h ? h : 1;
}

/* Slot holding key, or the empty slot where it would go. */
static s_slot *s_find(const store_import_map *m, uint64_t h, const char *key, size_t len)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        s_slot *s = &m->slots[i];
        if (!s->hash)
            return s;
        if (s->hash == h && s->len == len && !memcmp(s->key, key, len))
            return s;
    }
}

int store_import_map_get(const store_import_map *m, const char *key, size_t len,
                         int64_t *val)
{
    const s_slot *s = s_find(m, s_hash(key, len), key, len);
    if (!s->hash)
        return 0;
    *val = s->val;
    return 1;
}

static char *s_pool_copy(store_import_map *m, const char *key, size_t len)
{
    s_chunk *c = m->pool;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > POOL_CHUNK ? len + 1 : POOL_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = m->pool;
        c->used = 0;
        c->cap = cap;
        m->pool = c;
    }
    char *p = c->data + c->used;
    memcpy(p, key, len);
    p[len] = '\0';
    c->used += len + 1;
    return p;
}

static int s_grow(store_import_map *m)
{
    size_t cap = m->cap * 2;
    s_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        s_slot *s = &m->slots[i];
        if (!s->hash)
            continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j].hash)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

static void s_clear(store_import_map *m)
{
    memset(m->slots, 0, m->cap * sizeof *m->slots);
    s_pool_free(m->pool);
    m->pool = NULL;
    m->count = 0;
}

int store_import_map_put(store_import_map *m, const char *key, size_t len, int64_t val)
{
    if (len > UINT32_MAX)
        return STORE_ERR_INVAL;
    uint64_t h = s_hash(key, len);
    s_slot *s = s_find(m, h, key, len);
    if (s->hash) {
        s->val = val;
        return STORE_OK;
    }
    if (m->count >= m->max) {
        s_clear(m);
        s = s_find(m, h, key, len);
    }
    if ((m->count + 1) * 2 > m->cap) {
        if (s_grow(m))
            return STORE_ERR_NOMEM;
        s = s_find(m, h, key, len);
    }
    char *copy = s_pool_copy(m, key, len);
    if (!copy)
        return STORE_ERR_NOMEM;
    s->hash = h;
    s->key = copy;
    s->len = (uint32_t)len;
    s->val = val;
    m->count++;
    return STORE_OK;
}

size_t store_import_map_count(const store_import_map *m)
{
    return m->count;
}
