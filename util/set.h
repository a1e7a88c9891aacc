/* set.h -- a set of uint32 keys (optionally with a uint32 value each) that
 * is emptied in O(1).
 *
 *     util_set s;
 *     if (util_set_init(&s, 100, 0) != 0)      // room for 100 keys, no values
 *         return NOMEM;
 *     for (each request) {
 *         util_set_clear(&s);                  // O(1)
 *         if (!util_set_add(&s, row))          // 1: new, 0: already there
 *             ... a duplicate ...
 *         if (util_set_has(&s, row)) ...
 *     }
 *     util_set_free(&s);
 *
 *     uint32_t first;                          // with values (init's 3rd argument 1):
 *     if (!util_set_put(&s, row, j, &first))   // key -> the value first put
 *         ... row was seen before, at position first ...
 *
 * Layout: open addressing with linear probing over a power-of-two table at
 * most half full, keys hashed by a multiply (Knuth's 2654435761).  Each slot
 * carries the generation that wrote it; a slot whose stamp is not the
 * current generation is empty.  Clearing therefore only bumps the
 * generation -- the per-request sets on the daemon's hot path and the
 * generator's per-user sets never touch their memory between uses -- and the
 * stamps are zeroed for real only when the 32-bit generation wraps.
 *
 * Capacity is a promise by the caller: at most `capacity` keys between two
 * clears (asserted).  Not thread-safe; one set per thread.
 */
#ifndef UTIL_SET_H
#define UTIL_SET_H

#include <stddef.h>
#include <stdint.h>

typedef struct util_set {
    uint32_t *key;      /* slots: the keys */
    uint32_t *val;      /* slots: the values, or NULL (a set without values) */
    uint32_t *stamp;    /* slots: the generation that wrote the slot */
    uint32_t mask;      /* slots - 1 */
    uint32_t cur;       /* the current generation, never 0 */
    uint32_t n;         /* keys in the current generation */
    uint32_t cap;       /* most keys between clears */
    int owned;          /* the arrays are ours (util_set_init), not the caller's */
} util_set;

/* Slots a set for capacity keys uses: a power of two >= 2 * capacity, at
 * least 16.  For callers that carve the arrays from their own arena. */
size_t util_set_slots(uint32_t capacity);

/* Allocate an empty set for capacity keys (capacity <= 2^30), with a value
 * per key when with_values.  0, or -1 out of memory (then *s needs no
 * free, but util_set_free on it is harmless). */
int util_set_init(util_set *s, uint32_t capacity, int with_values);

/* An empty set over the caller's arrays of util_set_slots(capacity)
 * elements each (val may be NULL); stamp must be zeroed.  The caller keeps
 * ownership; util_set_free only forgets them. */
void util_set_init_at(util_set *s, uint32_t capacity, uint32_t *key, uint32_t *val,
                      uint32_t *stamp);

/* Make room for capacity keys, keeping the values setting: a set that is
 * already large enough is left as it is (contents too); otherwise it is
 * reallocated, empty.  0, or -1 out of memory (then the set is empty with
 * capacity 0: call again or free it).  Only for sets from util_set_init. */
int util_set_reserve(util_set *s, uint32_t capacity);

/* Free what util_set_init allocated and zero *s.  Accepts a zeroed set. */
void util_set_free(util_set *s);

/* Remove every key, O(1) (O(slots) once every 2^32 clears). */
void util_set_clear(util_set *s);

/* Insert key: 1 if it was new, 0 if it was already there. */
int util_set_add(util_set *s, uint32_t key);

/* 1 if key is in the set, else 0. */
int util_set_has(const util_set *s, uint32_t key);

/* Insert key with val (the set must have values): 1 if it was new; 0 if it
 * was already there, its stored value (the first put) in *old and left
 * unchanged. */
int util_set_put(util_set *s, uint32_t key, uint32_t val, uint32_t *old);

#endif
