/* ratelimit.c -- see ratelimit.h.
 *
 * Open addressing with linear probing over a power-of-two table kept at
 * most half full, grown by doubling; deletion (the sweep) rebuilds the
 * table, which is cheap at its size and keeps probing simple.  Tokens are doubles refilled
 * lazily from the time since the bucket was last touched.
 */
#include "daemon/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

typedef struct s_bucket {
    uint64_t hash;           /* 0: empty slot */
    uint64_t last_ns;        /* when tokens was last brought up to date */
    double tokens;
    uint8_t len;
    char key[SRV_RATELIMIT_KEY_MAX];
} s_bucket;

struct srv_ratelimit {
    double rate, burst;
    size_t max, n;
    size_t mask;             /* slots - 1 */
    s_bucket *slot;
    s_bucket overflow;       /* shared by callers past max */
};

/* Never 0: 0 marks an empty slot. */
static uint64_t s_hash(const void *key, size_t len)
{
    uint64_t h = util_hash_mix(util_fnv1a(UTIL_FNV_OFFSET, key, len));
    return h ? h : 1;
}

srv_ratelimit *srv_ratelimit_new(double rate, int burst, size_t max_callers)
{
    srv_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->rate = rate;
    rl->burst = burst;
    rl->max = max_callers;
    rl->slot = calloc(64, sizeof *rl->slot);
    if (!rl->slot) {
        free(rl);
        return NULL;
    }
    rl->mask = 63;
    rl->overflow.tokens = rl->burst;
    return rl;
}

void srv_ratelimit_free(srv_ratelimit **rl_p)
{
    if (!*rl_p)
        return;
    free((*rl_p)->slot);
    free(*rl_p);
    *rl_p = NULL;
}

static void s_refill(const srv_ratelimit *rl, s_bucket *b, uint64_t now_ns);

/* Move the buckets into a table of `slots`, leaving out the full ones when
 * drop_full (they are the same as no bucket).  -1 out of memory. */
static int s_rebuild(srv_ratelimit *rl, size_t slots, int drop_full, uint64_t now_ns)
{
    s_bucket *fresh = calloc(slots, sizeof *fresh);
    if (!fresh)
        return -1;
    size_t kept = 0;
    for (size_t i = 0; i <= rl->mask; i++) {
        s_bucket *b = &rl->slot[i];
        if (!b->hash)
            continue;
        s_refill(rl, b, now_ns);
        if (drop_full && b->tokens >= rl->burst)
            continue;
        size_t j = b->hash & (slots - 1);
        while (fresh[j].hash)
            j = (j + 1) & (slots - 1);
        fresh[j] = *b;
        kept++;
    }
    free(rl->slot);
    rl->slot = fresh;
    rl->mask = slots - 1;
    rl->n = kept;
    return 0;
}

/* The caller's bucket, created full; the overflow bucket when the table is
 * at its limit (or cannot grow). */
static s_bucket *s_find(srv_ratelimit *rl, const void *key, size_t len, uint64_t now_ns)
{
    uint64_t h = s_hash(key, len);
    for (size_t i = h & rl->mask;; i = (i + 1) & rl->mask) {
        s_bucket *b = &rl->slot[i];
        if (b->hash == h && b->len == len && !memcmp(b->key, key, len))
            return b;
        if (b->hash)
            continue;
        if (rl->n >= rl->max)
            return &rl->overflow;
        if (2 * (rl->n + 1) > rl->mask + 1) {
            if (s_rebuild(rl, 2 * (rl->mask + 1), 0, now_ns))
                return &rl->overflow;
            return s_find(rl, key, len, now_ns);
        }
        b->hash = h;
        b->len = (uint8_t)len;
        memcpy(b->key, key, len);
        b->tokens = rl->burst;
        b->last_ns = now_ns;
        rl->n++;
        return b;
    }
}

static void s_refill(const srv_ratelimit *rl, s_bucket *b, uint64_t now_ns)
{
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) * 1e-9 * rl->rate;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_ns = now_ns;
    }
}

int srv_ratelimit_take(srv_ratelimit *rl, const void *key, size_t len, uint64_t now_ns,
                       uint64_t *retry_ns)
{
    if (len > SRV_RATELIMIT_KEY_MAX)
        len = SRV_RATELIMIT_KEY_MAX;
    s_bucket *b = s_find(rl, key, len, now_ns);
    s_refill(rl, b, now_ns);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        *retry_ns = 0;
        return 1;
    }
    *retry_ns = (uint64_t)ceil((1.0 - b->tokens) / rl->rate * 1e9);
    return 0;
}

size_t srv_ratelimit_sweep(srv_ratelimit *rl, uint64_t now_ns)
{
    s_rebuild(rl, rl->mask + 1, 1, now_ns);   /* out of memory: all kept, try next time */
    s_refill(rl, &rl->overflow, now_ns);
    return rl->n;
}
