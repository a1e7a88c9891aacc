/* utf8.c -- see utf8.h.
 *
 * One decoder serves all three jobs: s_seq looks at the sequence starting
 * at s[0] and says either "valid, n bytes" or "ill-formed, and its maximal
 * subpart -- the lead byte plus the continuation bytes that could still
 * have been part of a valid sequence -- is n bytes".  The table of allowed
 * second bytes (Unicode 15, table 3-7) is what rules out overlongs,
 * surrogates and code points above U+10FFFF without decoding the value.
 */
#include "util/utf8.h"

#include <stdint.h>
#include <string.h>

/* Bytes of the sequence at s[0..avail), avail >= 1: > 0 if it is valid,
 * else minus the length of its maximal ill-formed subpart (at least 1). */
static long s_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;   /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;        /* overlong */
        if (c == 0xED) hi = 0x9F;        /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;        /* overlong */
        if (c == 0xF4) hi = 0x8F;        /* above U+10FFFF */
    } else {
        return -1;                       /* continuation, C0, C1, F5..FF */
    }
    size_t k = 1;
    for (; k < n && k < avail; k++) {
        unsigned b = s[k];
        if (k == 1 ? b < lo || b > hi : (b & 0xC0) != 0x80)
            break;
    }
    return k == n ? (long)n : -(long)k;
}

/* Protocol text is mostly ASCII: eight bytes at a time while no byte has
 * its high bit set (one load and test instead of eight calls), then the
 * decoder for the rest of the run. */
size_t util_utf8_prefix(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        if (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        long n = s_seq(s + i, len - i);
        if (n < 0)
            return i;
        i += (size_t)n;
    }
    return len;
}

int util_utf8_valid(const char *s, size_t len)
{
    return util_utf8_prefix(s, len) == len;
}

size_t util_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t p = max;   /* s[max] exists: cutting there is fine if it starts a character */
    for (int k = 0; k < 3 && p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80; k++)
        p--;
    return p;
}

size_t util_utf8_repair(char *out, const char *str, size_t len)
{
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t i = 0, o = 0;
    while (i < len) {
        size_t ok = util_utf8_prefix(str + i, len - i);   /* copy valid runs whole */
        if (out)
            memcpy(out + o, str + i, ok);
        o += ok;
        i += ok;
        if (i == len)
            break;
        long bad = -s_seq((const unsigned char *)str + i, len - i);
        if (out)
            memcpy(out + o, fffd, sizeof fffd);
        o += sizeof fffd;
        i += (size_t)bad;
    }
    if (out)
        out[o] = '\0';
    return o;
}
