/* set.c -- see set.h. */
#include "util/set.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Largest capacity: 2 * capacity slots must fit in a uint32_t mask. */
#define S_MAX_CAPACITY (1u << 30)

size_t util_set_slots(uint32_t capacity)
{
    size_t slots = 16;
    while (slots < 2 * (size_t)capacity)
        slots <<= 1;
    return slots;
}

void util_set_init_at(util_set *s, uint32_t capacity, uint32_t *key, uint32_t *val,
                      uint32_t *stamp)
{
    assert(capacity <= S_MAX_CAPACITY);
    *s = (util_set){.key = key, .val = val, .stamp = stamp,
                    .mask = (uint32_t)(util_set_slots(capacity) - 1), .cur = 1,
                    .cap = capacity};
}

int util_set_init(util_set *s, uint32_t capacity, int with_values)
{
    memset(s, 0, sizeof *s);
    if (capacity > S_MAX_CAPACITY)
        return -1;
    size_t slots = util_set_slots(capacity);
    uint32_t *key = malloc(slots * sizeof *key);
    uint32_t *val = with_values ? malloc(slots * sizeof *val) : NULL;
    uint32_t *stamp = calloc(slots, sizeof *stamp);
    if (!key || !stamp || (with_values && !val)) {
        free(key);
        free(val);
        free(stamp);
        return -1;
    }
    util_set_init_at(s, capacity, key, val, stamp);
    s->owned = 1;
    return 0;
}

int util_set_reserve(util_set *s, uint32_t capacity)
{
    assert(s->owned || !s->key);
    if (s->key && capacity <= s->cap)
        return 0;
    int with_values = s->val != NULL;
    util_set_free(s);
    return util_set_init(s, capacity, with_values);
}

void util_set_free(util_set *s)
{
    if (s->owned) {
        free(s->key);
        free(s->val);
        free(s->stamp);
    }
    memset(s, 0, sizeof *s);
}

void util_set_clear(util_set *s)
{
    s->n = 0;
    if (++s->cur == 0) {   /* wrapped: an old stamp could equal the new one */
        memset(s->stamp, 0, ((size_t)s->mask + 1) * sizeof *s->stamp);
        s->cur = 1;
    }
}

/* The slot holding key, or the empty slot where it would go. */
static uint32_t s_slot(const util_set *s, uint32_t key)
{
    uint32_t h = (key * 2654435761u) & s->mask;
    while (s->stamp[h] == s->cur && s->key[h] != key)
        h = (h + 1) & s->mask;
    return h;
}

int util_set_has(const util_set *s, uint32_t key)
{
    return s->stamp[s_slot(s, key)] == s->cur;
}

int util_set_add(util_set *s, uint32_t key)
{
    uint32_t h = s_slot(s, key);
    if (s->stamp[h] == s->cur)
        return 0;
    assert(s->n < s->cap && "more keys than the set's capacity");
    s->n++;
    s->stamp[h] = s->cur;
    s->key[h] = key;
    return 1;
}

int util_set_put(util_set *s, uint32_t key, uint32_t val, uint32_t *old)
{
    assert(s->val);
    uint32_t h = s_slot(s, key);
    if (s->stamp[h] == s->cur) {
        *old = s->val[h];
        return 0;
    }
    assert(s->n < s->cap && "more keys than the set's capacity");
    s->n++;
    s->stamp[h] = s->cur;
    s->key[h] = key;
    s->val[h] = val;
    return 1;
}
