/* json.c -- see json.h. */
#include "util/json.h"

#include <stdint.h>
#include <string.h>

size_t util_json_quote(char *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            *o++ = '\\';
            switch (c) {
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            }
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    return (size_t)(o - out);
}

size_t util_json_nul_escape(const char *buf, size_t len)
{
    /* A raw NUL cuts a C string just the same (cJSON takes it inside a
     * string), and is never valid JSON: look for an escape before it only. */
    const char *raw = memchr(buf, 0, len);
    if (raw)
        len = (size_t)(raw - buf);
    const char *p = buf, *end = buf + len;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        const char *run = p;
        while (p < end && *p == '\\')
            p++;
        /* An odd run of backslashes escapes what follows; an even one is
         * escaped backslashes only. */
        if (((p - run) & 1) && end - p >= 5 && !memcmp(p, "u0000", 5))
            return (size_t)(p - 1 - buf);
    }
    return len;
}

/* ---- the top-level scanner ------------------------------------------------ */

typedef struct s_scan {
    const char *p, *end;
} s_scan;

static void s_ws(s_scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* A string at s->p (its opening quote): 0 past its closing quote, with
 * whether it held an escape; -1 when it does not end. */
static int s_string(s_scan *s, int *escaped)
{
    const char *p = s->p + 1;
    *escaped = 0;
    while (p < s->end && *p != '"') {
        if (*p == '\\') {
            *escaped = 1;
            p++;
        }
        p++;
    }
    if (p >= s->end)
        return -1;
    s->p = p + 1;
    return 0;
}

/* Skip one value of any kind; -1 on malformed structure. */
static int s_value(s_scan *s)
{
    int depth = 0, esc;
    do {
        s_ws(s);
        if (s->p >= s->end)
            return -1;
        char c = *s->p;
        if (c == '"') {
            if (s_string(s, &esc))
                return -1;
        } else if (c == '{' || c == '[') {
            depth++;
            s->p++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return -1;
            s->p++;
        } else if (c == ',' || c == ':') {
            if (depth == 0)
                return -1;
            s->p++;
        } else {
            const char *at = s->p;
            while (s->p < s->end && !strchr(",:]}\" \n\r\t", *s->p))
                s->p++;
            if (s->p == at)
                return -1;
        }
    } while (depth > 0);
    return 0;
}

/* One member at s->p into m; -1 on malformed text. */
static int s_member(s_scan *s, const char *buf, util_json_member *m)
{
    if (s->p >= s->end || *s->p != '"')
        return -1;
    m->start = (size_t)(s->p - buf);
    m->key = s->p + 1;
    if (s_string(s, &m->key_escaped))
        return -1;
    m->key_len = (size_t)(s->p - 1 - m->key);
    s_ws(s);
    if (s->p >= s->end || *s->p++ != ':')
        return -1;
    s_ws(s);
    m->val = s->p;
    m->val_string = s->p < s->end && *s->p == '"';
    m->val_escaped = 0;
    if (m->val_string ? s_string(s, &m->val_escaped) : s_value(s))
        return -1;
    m->val_len = (size_t)(s->p - m->val);
    m->end = (size_t)(s->p - buf);
    return 0;
}

int util_json_members(const char *buf, size_t len,
                      int (*fn)(void *ctx, const util_json_member *m), void *ctx)
{
    s_scan s = {.p = buf, .end = buf + len};
    s_ws(&s);
    if (s.p >= s.end || *s.p++ != '{')
        return -1;
    s_ws(&s);
    if (s.p < s.end && *s.p == '}')
        return 0;
    for (;;) {
        util_json_member m;
        if (s_member(&s, buf, &m))
            return -1;
        if (fn(ctx, &m))
            return 1;
        s_ws(&s);
        if (s.p < s.end && *s.p == '}')
            return 0;
        if (s.p >= s.end || *s.p++ != ',')
            return -1;
        s_ws(&s);
    }
}

/* ---- the strict scanner ----------------------------------------------------- *
 * A recursive descent over the subset util_json_scan documents.  It reads
 * every byte (a request parser that skipped what it does not use could
 * accept text a full parser refuses), and it never decodes: values are
 * ranges of the buffer, so reading them costs nothing until asked. */

typedef struct s_strict {
    const char *p, *end;
    unsigned high;        /* OR of every byte inside strings: bit 7 set, UTF-8 to check */
    int depth;            /* containers left that may still open */
} s_strict;

static void s_strict_ws(s_strict *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* Bit 7 of each byte of w that may be '"', '\\' or below 0x20 (bytes
 * >= 0x80 never are).  The lowest flagged byte is exact; a borrow can flag
 * bytes above it too, which only sends the caller to look closer. */
static uint64_t s_special8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) & high;
}

/* A string at s->p (its quote) without escapes or control bytes: s->p goes
 * past its closing quote, *at and *len get its contents.  -1 otherwise.
 * Eight bytes at a time: ids and keys are short, so most strings end in
 * their first or second word. */
static int s_strict_string(s_strict *s, const char **at, size_t *len)
{
    const unsigned char *p = (const unsigned char *)s->p + 1;
    const unsigned char *end = (const unsigned char *)s->end;
    uint64_t high = 0;
    for (;;) {
        unsigned c;
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            uint64_t t = s_special8(w);
            if (!t) {
                high |= w;
                p += 8;
                continue;
            }
            int k = __builtin_ctzll(t) >> 3;
            high |= w & ((1ull << (8 * k)) - 1);   /* the bytes before it only */
            p += k;
        } else {
            while (p < end && *p != '"' && *p != '\\' && *p >= 0x20)
                high |= *p++;
            if (p >= end)
                return -1;
        }
        c = *p;
        if (c != '"')
            return -1;   /* an escape or a control byte */
        *at = s->p + 1;
        *len = (size_t)((const char *)p - *at);
        s->p = (const char *)p + 1;
        s->high |= (unsigned)((high & 0x8080808080808080ull) != 0) << 7;
        return 0;
    }
}

static int s_digits(s_strict *s)
{
    const char *at = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > at ? 0 : -1;
}

/* RFC 8259's number grammar, and no longer than UTIL_JSON_NUMBER_MAX. */
static int s_strict_number(s_strict *s)
{
    const char *at = s->p;
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (s->p >= s->end || *s->p < '1' || *s->p > '9' || s_digits(s))
        return -1;
    if (s->p < s->end && *s->p == '.' && (s->p++, s_digits(s)))
        return -1;
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s_digits(s))
            return -1;
    }
    return s->p - at <= UTIL_JSON_NUMBER_MAX ? 0 : -1;
}

static int s_strict_word(s_strict *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
        return -1;
    s->p += n;
    return 0;
}

static int s_strict_value(s_strict *s, util_json_field *v);

/* The members of an object or the elements of an array, s->p just past
 * its bracket; each member's key and value into fields[0..max) while
 * there is room (fields NULL: none kept).  The count, or -1. */
static int s_strict_items(s_strict *s, char close, util_json_field *fields, int max)
{
    int n = 0;
    s_strict_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        util_json_field tmp, *f = fields && n < max ? &fields[n] : &tmp;
        f->key = NULL;
        f->key_len = 0;
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"' || s_strict_string(s, &f->key, &f->key_len))
                return -1;
            s_strict_ws(s);
            if (s->p >= s->end || *s->p++ != ':')
                return -1;
            s_strict_ws(s);
        }
        if (s_strict_value(s, f))
            return -1;
        n++;
        s_strict_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return n;
        }
        if (s->p >= s->end || *s->p++ != ',')
            return -1;
        s_strict_ws(s);
    }
}

static int s_strict_value(s_strict *s, util_json_field *v)
{
    if (s->p >= s->end)
        return -1;
    const char *at = s->p;
    char c = *s->p;
    int rc;
    v->count = 0;
    if (c == '"') {
        v->kind = UTIL_JSON_STRING;
        return s_strict_string(s, &v->val, &v->val_len);
    }
    if (c == '[' || c == '{') {
        if (s->depth-- <= 0)
            return -1;
        s->p++;
        int n = s_strict_items(s, c == '[' ? ']' : '}', NULL, 0);
        s->depth++;
        v->kind = c == '[' ? UTIL_JSON_ARRAY : UTIL_JSON_OBJECT;
        v->count = n > 0 ? (size_t)n : 0;
        rc = n < 0 ? -1 : 0;
    } else if (c == 't') {
        v->kind = UTIL_JSON_TRUE;
        rc = s_strict_word(s, "true", 4);
    } else if (c == 'f') {
        v->kind = UTIL_JSON_FALSE;
        rc = s_strict_word(s, "false", 5);
    } else if (c == 'n') {
        v->kind = UTIL_JSON_NULL;
        rc = s_strict_word(s, "null", 4);
    } else {
        v->kind = UTIL_JSON_NUMBER;
        rc = s_strict_number(s);
    }
    v->val = at;
    v->val_len = (size_t)(s->p - at);
    return rc;
}

int util_json_scan(const char *buf, size_t len, util_json_field *fields, int max, int depth,
                   int *high)
{
    s_strict s = {.p = buf, .end = buf + len, .depth = depth};
    s_strict_ws(&s);
    if (s.p >= s.end || *s.p++ != '{')
        return -1;
    int n = s_strict_items(&s, '}', fields, max);
    s_strict_ws(&s);
    if (n < 0 || n > max || s.p != s.end)
        return -1;
    *high = (s.high & 0x80) != 0;
    return n;
}

int util_json_elem(const char **at, const char *end, util_json_field *e)
{
    s_strict s = {.p = *at, .end = end, .depth = 1 << 30};
    s_strict_ws(&s);
    if (s.p < s.end && *s.p == ',')
        s.p++;
    s_strict_ws(&s);
    if (s.p >= s.end || *s.p == ']')
        return 0;
    e->key = NULL;
    e->key_len = 0;
    if (s_strict_value(&s, e))
        return 0;   /* not text util_json_scan accepted */
    *at = s.p;
    return 1;
}
