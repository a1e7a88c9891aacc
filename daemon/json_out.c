/* json_out.c -- see json_out.h. */
#include "daemon/json_out.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ftoa.h"
#include "util/json.h"
#include "util/utf8.h"

#include "util/json.h"

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

/* Valid UTF-8 is quoted as it is; anything else (a database row written by
 * hand) is repaired first, so that a reply is always valid JSON text. */
static void s_str(srv_json *w, const char *s, size_t len)
{
    if (w->oom)
        return;
    char *fixed = NULL;
    if (!util_utf8_valid(s, len)) {
        fixed = malloc(util_utf8_repair(NULL, s, len) + 1);
        if (!fixed) {
            w->oom = 1;
            return;
        }
        len = util_utf8_repair(fixed, s, len);
        s = fixed;
    }
    if (s_reserve(w, UTIL_JSON_QUOTED_MAX(len)) == 0) {
        w->len += util_json_quote(w->buf + w->len, s, len);
        w->buf[w->len] = 0;
    }
    free(fixed);
}

/* Keys are mostly our own literals, plain ASCII with nothing to escape:
 * those are copied as they are; anything else (an experiment arm's name
 * from the config) is validated and quoted like a value. */
void srv_json_key(srv_json *w, const char *key)
{
    size_t len = 0;
    int plain = 1;
    for (; key[len]; len++)
        plain &= (unsigned char)key[len] >= 0x20 && (unsigned char)key[len] < 0x7f &&
                 key[len] != '"' && key[len] != '\\';
    s_sep(w);
    if (!plain)
        s_str(w, key, len);
    else if (!w->oom && s_reserve(w, len + 2) == 0) {
        w->buf[w->len] = '"';
        memcpy(w->buf + w->len + 1, key, len);
        w->buf[w->len + 1 + len] = '"';
        w->len += len + 2;
    }
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
    char tmp[24], *o = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--o = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--o = '-';
    s_sep(w);
    s_put(w, o, (size_t)(tmp + sizeof tmp - o));
}

/* Six significant digits, like %.6g, without printf: glibc's float path
 * costs ~2,000 instructions a number, and a reply carries one score per
 * item and per explanation.  Handles 1e-4 <= |v| < 1e6 (scores and
 * weights) in integer arithmetic; anything else goes to snprintf. */
static int s_format_num(char *out, double v)
{
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10};
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e6))
        return snprintf(out, 32, "%.6g", v);
    /* e = floor(log10(a)) in -4..5; the six digits are round(a * 10^(5 - e)). */
    int e = (int)floor(log10(a));
    long digits = lround(a * pow10[5 - e]);
    if (digits >= 1000000) {          /* rounding carried into a seventh digit */
        digits /= 10;
        e++;
    } else if (digits < 100000) {     /* log10 landed just below a power of ten */
        e--;
        digits = lround(a * pow10[5 - e]);
    }
    if (e >= 6 || e < -4)             /* %g switches to an exponent here: let it */
        return snprintf(out, 32, "%.6g", v);
    char d[6];
    for (int i = 5; i >= 0; i--) {
        d[i] = (char)('0' + digits % 10);
        digits /= 10;
    }
    int nd = 6;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    char *o = out;
    if (v < 0)
        *o++ = '-';
    if (e >= 0) {
        for (int i = 0; i <= e; i++)
            *o++ = i < nd ? d[i] : '0';
        if (nd > e + 1) {
            *o++ = '.';
            for (int i = e + 1; i < nd; i++)
                *o++ = d[i];
        }
    } else {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -e - 1; i++)
            *o++ = '0';
        for (int i = 0; i < nd; i++)
            *o++ = d[i];
    }
    *o = 0;
    return (int)(o - out);
}

void srv_json_num(srv_json *w, double v)
{
    if (!isfinite(v)) {
        srv_json_null(w);
        return;
    }
    char tmp[32];
    int n = s_format_num(tmp, v);
    s_sep(w);
    s_put(w, tmp, (size_t)n);
}

void srv_json_f32(srv_json *w, float v)
{
    if (!isfinite(v)) {
        srv_json_null(w);
        return;
    }
    char tmp[UTIL_F32_MAX];
    size_t n = util_f32_shortest(tmp, v);
    s_sep(w);
    s_put(w, tmp, n);
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
