/* val.c -- decode one field into what a column needs, or say why not.
 *
 * The same decoders serve CSV (every value is text) and JSONL (typed values),
 * so a file's format never changes which values are accepted: "12" and 12
 * are both an integer, "0.5" and 0.5 both a weight.  Messages start with
 * "column NAME:" and quote the offending text (shortened, bytes that are not
 * printable ASCII escaped), so that the line in the message can be found and
 * fixed without opening a hex editor.
 */
#include "store/import/read.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int s_why(char *why, size_t why_len, const store_import_val *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_why(char *why, size_t why_len, const store_import_val *v, const char *fmt, ...)
{
    if (why && why_len) {
        int n = snprintf(why, why_len, "column %s: ", v->name ? v->name : "?");
        if (n >= 0 && (size_t)n < why_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(why + n, why_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return STORE_ERR_INVAL;
}

/* s[0..len) made safe to quote in a one-line message. */
static const char *s_show(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 40) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7F && c != '\'')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", c);
    }
    buf[o] = '\0';
    return buf;
}

static int s_empty(const store_import_val *v)
{
    return v->kind == STORE_IMPORT_V_ABSENT || v->kind == STORE_IMPORT_V_NULL;
}

/* Integral doubles up to 2^53 are exact; past that a JSON integer has
 * already lost digits in cJSON, so it is refused rather than altered. */
static int s_integral(double x)
{
    return isfinite(x) && x == floor(x) && fabs(x) <= 9007199254740992.0;
}

int store_import_val_str(store_import_val *v, int trim, const char **out, size_t *out_len,
                         char *why, size_t why_len)
{
    *out = NULL;
    *out_len = 0;
    if (s_empty(v))
        return STORE_OK;
    if (v->kind == STORE_IMPORT_V_NUM) {
        if (!s_integral(v->num))
            return s_why(why, why_len, v, "expected a string or an integer, found %g",
                         v->num);
        int n = snprintf(v->buf, sizeof v->buf, "%.0f", v->num);
        *out = v->buf;
        *out_len = (size_t)n;
        return STORE_OK;
    }
    if (v->kind != STORE_IMPORT_V_STR)
        return s_why(why, why_len, v, "expected a string");
    const char *s = v->s;
    size_t n = v->len;
    if (memchr(s, '\0', n))
        return s_why(why, why_len, v, "contains a NUL byte");
    size_t bad = util_utf8_prefix(s, n);
    if (bad != n)
        return s_why(why, why_len, v,
                     "invalid UTF-8 at byte %zu (wrong encoding? try --latin1)", bad + 1);
    if (trim)
        store_import_trim(&s, &n);
    if (n == 0)
        return STORE_OK;
    /* The buffers behind a value (the CSV field buffer, the cJSON tree) are
     * the reader's own and live until the next record: terminating the
     * trimmed slice in place is safe and saves a copy per field. */
    ((char *)s)[n] = '\0';
    *out = s;
    *out_len = n;
    return STORE_OK;
}

/* The trimmed text of a V_STR value; *present = 0 when it is all blank. */
static void s_text(const store_import_val *v, const char **s, size_t *n, int *present)
{
    *s = v->s;
    *n = v->len;
    store_import_trim(s, n);
    *present = *n > 0;
}

int store_import_val_i64(store_import_val *v, int64_t *out, int *present,
                         char *why, size_t why_len)
{
    *present = 0;
    if (s_empty(v))
        return STORE_OK;
    char show[200];
    if (v->kind == STORE_IMPORT_V_NUM) {
        if (!s_integral(v->num))
            return s_why(why, why_len, v, "%g is not an integer", v->num);
        *out = (int64_t)v->num;
        *present = 1;
        return STORE_OK;
    }
    if (v->kind != STORE_IMPORT_V_STR)
        return s_why(why, why_len, v, "expected an integer");
    const char *s;
    size_t n;
    s_text(v, &s, &n, present);
    if (!*present)
        return STORE_OK;
    if (store_import_parse_i64(s, n, out) < 0)
        return s_why(why, why_len, v, "'%s' is not an integer",
                     s_show(s, n, show, sizeof show));
    return STORE_OK;
}

int store_import_val_time(store_import_val *v, int64_t *out, int *present,
                          char *why, size_t why_len)
{
    *present = 0;
    if (s_empty(v))
        return STORE_OK;
    if (v->kind != STORE_IMPORT_V_STR)
        return store_import_val_i64(v, out, present, why, why_len);
    char show[200];
    const char *s;
    size_t n;
    s_text(v, &s, &n, present);
    if (!*present)
        return STORE_OK;
    if (store_import_parse_i64(s, n, out) == 0 || store_import_parse_isotime(s, n, out) == 0)
        return STORE_OK;
    return s_why(why, why_len, v,
                 "'%s' is not an integer (unix seconds) nor an ISO-8601 UTC time",
                 s_show(s, n, show, sizeof show));
}

/* Why x is no good as a float, or NULL if it is fine. */
static const char *s_bad_float(double x)
{
    if (isnan(x))
        return "NaN";
    if (isinf(x))
        return "infinite";
    if (fabs(x) > FLT_MAX)
        return "out of float range";
    return NULL;
}

int store_import_val_f32(store_import_val *v, float *out, int *present,
                         char *why, size_t why_len)
{
    *present = 0;
    if (s_empty(v))
        return STORE_OK;
    char show[200];
    double x;
    if (v->kind == STORE_IMPORT_V_NUM)
        x = v->num;
    else if (v->kind == STORE_IMPORT_V_STR) {
        const char *s;
        size_t n;
        s_text(v, &s, &n, present);
        if (!*present)
            return STORE_OK;
        if (store_import_parse_double(s, n, &x) < 0)
            return s_why(why, why_len, v, "'%s' is not a number",
                         s_show(s, n, show, sizeof show));
    } else
        return s_why(why, why_len, v, "expected a number");
    const char *bad = s_bad_float(x);
    if (bad)
        return s_why(why, why_len, v, "value is %s", bad);
    *out = (float)x;
    *present = 1;
    return STORE_OK;
}

static int s_vec_json(store_import_val *v, int dim, float *out, char *why, size_t why_len)
{
    const cJSON *arr = v->arr;
    int n = cJSON_GetArraySize(arr);
    if (n != dim)
        return s_why(why, why_len, v, "embedding has %d values, embedding_dim is %d",
                     n, dim);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsNumber(e))
            return s_why(why, why_len, v, "value %d is not a number", i + 1);
        const char *bad = s_bad_float(e->valuedouble);
        if (bad)
            return s_why(why, why_len, v, "value %d is %s", i + 1, bad);
        out[i++] = (float)e->valuedouble;
    }
    return STORE_OK;
}

static int s_sep(char c)
{
    return c == ' ' || c == '\t' || c == ',' || c == ';' || c == '\r' || c == '\n';
}

static int s_vec_text(store_import_val *v, const char *s, size_t n, int dim, float *out,
                      char *why, size_t why_len)
{
    char show[200];
    if (n && s[0] == '[') {
        if (s[n - 1] != ']')
            return s_why(why, why_len, v, "embedding opens with '[' but does not close");
        s++;
        n -= 2;
    }
    const char *p = s, *end = s + n;
    int count = 0;
    for (;;) {
        while (p < end && s_sep(*p))
            p++;
        if (p == end)
            break;
        const char *q = p;
        while (q < end && !s_sep(*q))
            q++;
        double x;
        if (store_import_parse_double(p, (size_t)(q - p), &x) < 0)
            return s_why(why, why_len, v, "value %d '%s' is not a number", count + 1,
                         s_show(p, (size_t)(q - p), show, sizeof show));
        const char *bad = s_bad_float(x);
        if (bad)
            return s_why(why, why_len, v, "value %d is %s", count + 1, bad);
        if (count < dim)
            out[count] = (float)x;
        count++;
        p = q;
    }
    if (count != dim)
        return s_why(why, why_len, v, "embedding has %d values, embedding_dim is %d",
                     count, dim);
    return STORE_OK;
}

int store_import_val_vec(store_import_val *v, int dim, float *out, int *present,
                         char *why, size_t why_len)
{
    *present = 0;
    if (s_empty(v))
        return STORE_OK;
    if (v->kind == STORE_IMPORT_V_ARR) {
        *present = 1;
        return s_vec_json(v, dim, out, why, why_len);
    }
    if (v->kind != STORE_IMPORT_V_STR)
        return s_why(why, why_len, v, "expected an array of numbers");
    const char *s = v->s;
    size_t n = v->len;
    store_import_trim(&s, &n);
    if (n == 0)
        return STORE_OK;
    *present = 1;
    return s_vec_text(v, s, n, dim, out, why, why_len);
}
