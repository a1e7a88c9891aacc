/* rcodec.c -- the bytes of a Redis history element, key names and event-id
 * hashes (redis_int.h describes the layout).
 *
 * Varints keep an element near 7 bytes where a fixed layout would take 20:
 * at 100M users x 50 events that is the difference between ~35 and ~100 GB
 * of list payload (docs/SCALING.md).  The append script decodes the same
 * format in Lua (redis.c), so any change here changes it there too.
 */
#include "store/hist/redis_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

#define S_TAG_WEIGHT 0x01
#define S_TAG_KIND 0x02

static size_t s_put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static uint64_t s_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t s_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* A varint at p[*at..n); -1 when it runs past the end or past 64 bits. */
static int s_get_varint(const uint8_t *p, size_t n, size_t *at, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*at >= n)
            return -1;
        uint8_t b = p[(*at)++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

size_t rds_encode(uint8_t *out, int64_t ts, int64_t item_id, float weight, const char *kind)
{
    size_t n = s_put_varint(out, s_zigzag(ts));
    n += s_put_varint(out + n, s_zigzag(item_id));
    if (weight != 1.0f) {
        out[n++] = S_TAG_WEIGHT;
        memcpy(out + n, &weight, 4);   /* x86 and arm64 are little-endian */
        n += 4;
    }
    if (kind && *kind && strcmp(kind, "view")) {
        size_t len = strlen(kind);
        out[n++] = S_TAG_KIND;
        memcpy(out + n, kind, len);
        n += len;
    }
    return n;
}

int rds_decode(const uint8_t *p, size_t n, store_event *ev, const char **kind, size_t *kind_len)
{
    size_t at = 0;
    uint64_t ts, item;
    if (s_get_varint(p, n, &at, &ts) || s_get_varint(p, n, &at, &item))
        return -1;
    ev->ts = s_unzigzag(ts);
    ev->item_id = s_unzigzag(item);
    ev->weight = 1.0f;
    if (at < n && p[at] == S_TAG_WEIGHT) {
        if (n - at < 5)
            return -1;
        memcpy(&ev->weight, p + at + 1, 4);
        at += 5;
        if (!(ev->weight > 0) || !isfinite(ev->weight))
            return -1;
    }
    const char *k = "view";
    size_t klen = 4;
    if (at < n && p[at] == S_TAG_KIND) {
        k = (const char *)p + at + 1;
        klen = n - at - 1;
        at = n;
        if (klen == 0)
            return -1;
    }
    if (at != n)
        return -1;
    if (kind)
        *kind = k;
    if (kind_len)
        *kind_len = klen;
    return 0;
}

size_t rds_key(char **buf, size_t *cap, const char *prefix, char tag, const char *user,
               size_t len)
{
    size_t plen = strlen(prefix), need = plen + 2 + len;
    if (need > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < need)
            c *= 2;
        char *grown = realloc(*buf, c);
        if (!grown)
            return 0;
        *buf = grown;
        *cap = c;
    }
    memcpy(*buf, prefix, plen);
    (*buf)[plen] = tag;
    (*buf)[plen + 1] = ':';
    memcpy(*buf + plen + 2, user, len);
    return need;
}

void rds_id_hash(const char *event_id, uint8_t out[8])
{
    /* Scoped to one user's set: a collision could only make one of that
     * user's own events a false duplicate, at odds of n^2 / 2^65. */
    uint64_t h = util_hash_mix(util_fnv1a(UTIL_FNV_OFFSET, event_id, strlen(event_id)));
    memcpy(out, &h, 8);
}
