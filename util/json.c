/* json.c -- see json.h. */
#include "util/json.h"

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
