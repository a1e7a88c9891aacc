/* json_out.c -- see json_out.h. */
#include "daemon/json_out.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int srv_json_init(srv_json *w, size_t cap)
{
    memset(w, 0, sizeof *w);
    w->buf = malloc(cap);
    if (!w->buf)
        return -1;
    w->cap = cap;
    srv_json_reset(w);
    return 0;
}

void srv_json_free(srv_json *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

void srv_json_reset(srv_json *w)
{
    w->len = 0;
    w->depth = 0;
    w->first[0] = 1;
    w->after_key = 0;
    w->oom = 0;
    if (w->buf)
        w->buf[0] = 0;
}

static int s_reserve(srv_json *w, size_t more)
{
    if (w->len + more + 1 <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + more + 1)
        cap *= 2;
    char *p = realloc(w->buf, cap);
    if (!p) {
        w->oom = 1;
        return -1;
    }
    w->buf = p;
    w->cap = cap;
    return 0;
}

static void s_put(srv_json *w, const char *s, size_t n)
{
    if (w->oom || s_reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

/* Comma before a value or key unless it is the first at its depth. */
static void s_sep(srv_json *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (!w->first[w->depth])
        s_put(w, ",", 1);
    w->first[w->depth] = 0;
}

void srv_json_open(srv_json *w, char bracket)
{
    s_sep(w);
    s_put(w, &bracket, 1);
    if (w->depth + 1 < SRV_JSON_DEPTH)
        w->depth++;
    w->first[w->depth] = 1;
}

void srv_json_close(srv_json *w, char bracket)
{
    s_put(w, &bracket, 1);
    if (w->depth > 0)
        w->depth--;
}

static void s_str(srv_json *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (w->oom || s_reserve(w, len * 6 + 2))
        return;
    char *o = w->buf + w->len;
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
            *o++ = (char)c;   /* UTF-8 passes through: requests were validated */
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
    w->buf[w->len] = 0;
}

void srv_json_key(srv_json *w, const char *key)
{
    s_sep(w);
    s_str(w, key, strlen(key));
    s_put(w, ":", 1);
    w->after_key = 1;
}

void srv_json_str(srv_json *w, const char *s, size_t len)
{
    s_sep(w);
    s_str(w, s, len);
}

void srv_json_cstr(srv_json *w, const char *s)
{
    srv_json_str(w, s, strlen(s));
}

void srv_json_int(srv_json *w, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    s_sep(w);
    s_put(w, tmp, (size_t)n);
}

void srv_json_num(srv_json *w, double v)
{
    if (!isfinite(v)) {
        srv_json_null(w);
        return;
    }
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.6g", v);
    s_sep(w);
    s_put(w, tmp, (size_t)n);
}

void srv_json_bool(srv_json *w, int v)
{
    s_sep(w);
    s_put(w, v ? "true" : "false", v ? 4 : 5);
}

void srv_json_null(srv_json *w)
{
    s_sep(w);
    s_put(w, "null", 4);
}

void srv_json_raw(srv_json *w, const char *text, size_t len)
{
    s_sep(w);
    s_put(w, text, len);
}
