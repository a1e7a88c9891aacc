/* proto.c -- the request envelope, the top-level peek and the field reader.
 *
 * Every check names the field it rejects, because the message is all a
 * frontend developer sees of our validation.  cJSON parses (into the
 * calling thread's arena, see arena.h); nothing outside this file sees its
 * tree.
 */
#include "daemon/proto.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon/ops.h"
#include "util/utf8.h"

static const char *s_codes[SRV_CODE_COUNT] = {
    "ok", "bad_json", "bad_frame", "too_large", "bad_request", "unknown_op",
    "busy", "unavailable", "store", "internal", "reload_failed"};

const char *srv_code_name(int code)
{
    return code >= 0 && code < SRV_CODE_COUNT ? s_codes[code] : "internal";
}

struct srv_fields {
    const cJSON *root;
    const srv_config *cfg;
    srv_arena *arena;
    char *why;
    size_t why_len;
};

/* ---- field reader --------------------------------------------------------- */

const srv_config *srv_fields_config(const srv_fields *f)
{
    return f->cfg;
}

void *srv_fields_alloc(srv_fields *f, size_t bytes)
{
    void *p = srv_arena_alloc(f->arena, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

int srv_fields_fail(srv_fields *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->why, f->why_len, fmt, ap);
    va_end(ap);
    return -1;
}

static const cJSON *s_get(const srv_fields *f, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->root, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int srv_field_present(const srv_fields *f, const char *name)
{
    return s_get(f, name) != NULL;
}

int srv_field_int(srv_fields *f, const char *name, int lo, int hi, int def, int *out)
{
    const cJSON *v = s_get(f, name);
    if (!v) {
        *out = def;
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d == floor(d)) || d < lo || d > hi)
        return srv_fields_fail(f, "%s: expected an integer in %d..%d", name, lo, hi);
    *out = (int)d;
    return 0;
}

int srv_field_bool(srv_fields *f, const char *name, int def, int *out)
{
    const cJSON *v = s_get(f, name);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v))
        return srv_fields_fail(f, "%s: expected true or false", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Copy a cJSON string into the arena.  Requests never hold NUL (the
 * envelope refuses \u0000), so strlen is the string's length. */
static int s_copy(srv_fields *f, const char *text, srv_str *out)
{
    size_t len = strlen(text);
    char *s = srv_arena_alloc(f->arena, len + 1);
    if (!s)
        return -1;
    memcpy(s, text, len + 1);
    out->s = s;
    out->len = (uint32_t)len;
    return 0;
}

int srv_field_str(srv_fields *f, const char *name, int required, srv_str *out)
{
    const cJSON *v = s_get(f, name);
    out->s = NULL;
    out->len = 0;
    if (!v)
        return required ? srv_fields_fail(f, "%s: missing", name) : 0;
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return srv_fields_fail(f, "%s: expected a non-empty string", name);
    if (s_copy(f, v->valuestring, out))
        return srv_fields_fail(f, "%s: out of memory", name);
    return 0;
}

int srv_field_strs(srv_fields *f, const char *name, int max, const char *limit, srv_str **out,
                   int *n)
{
    const cJSON *v = s_get(f, name);
    if (!v)
        return srv_fields_fail(f, "%s: missing", name);
    if (!cJSON_IsArray(v))
        return srv_fields_fail(f, "%s: expected an array of strings", name);
    int count = cJSON_GetArraySize(v);
    if (count == 0)
        return srv_fields_fail(f, "%s: empty array", name);
    if (count > max)
        return srv_fields_fail(f, "%s: %d items, more than %s (%d)", name, count,
                               limit ? limit : "the limit", max);
    srv_str *a = srv_arena_alloc(f->arena, (size_t)count * sizeof *a);
    if (!a)
        return srv_fields_fail(f, "%s: out of memory", name);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) || !e->valuestring[0])
            return srv_fields_fail(f, "%s[%d]: expected a non-empty string", name, i);
        if (s_copy(f, e->valuestring, &a[i]))
            return srv_fields_fail(f, "%s: out of memory", name);
    }
    *out = a;
    *n = count;
    return 0;
}

int srv_field_floats(srv_fields *f, const char *name, int n, double lo, double hi, float **out)
{
    const cJSON *v = s_get(f, name);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return srv_fields_fail(f, "%s: expected an array of %d numbers", name, n);
    float *a = srv_arena_alloc(f->arena, (size_t)n * sizeof *a);
    if (!a)
        return srv_fields_fail(f, "%s: out of memory", name);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        /* A float that underflows to 0 or a subnormal would poison log(w). */
        if (!isfinite(d) || d < lo || d > hi || (d != 0 && fabs(d) < FLT_MIN) ||
            fabs(d) > FLT_MAX)
            return srv_fields_fail(f, "%s[%d]: expected a finite number in %g..%g that a float "
                                      "holds without underflow", name, i, lo > FLT_MIN ? lo
                                      : FLT_MIN, hi < FLT_MAX ? hi : FLT_MAX);
        a[i] = (float)d;
    }
    *out = a;
    return 0;
}

/* ---- the envelope --------------------------------------------------------- */

/* A JSON "\u0000" outside an escaped backslash: cJSON would end the C
 * string there and "u1\u0000x" would silently be served as "u1". */
static int s_has_nul_escape(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        const char *run = p;
        while (p < end && *p == '\\')
            p++;
        if (((p - run) & 1) && end - p >= 5 && !memcmp(p, "u0000", 5))
            return 1;
    }
    return 0;
}

static int s_read_id(const cJSON *root, srv_request *rq, char *why, size_t why_len)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!id || cJSON_IsNull(id))
        return 0;
    if (cJSON_IsString(id) && strlen(id->valuestring) <= SRV_ID_MAX) {
        /* Fits: id_json holds the worst case of 6 bytes per escaped byte. */
        srv_json w = {.buf = rq->id_json, .cap = sizeof rq->id_json};
        srv_json_reset(&w);
        srv_json_cstr(&w, id->valuestring);
        return 0;
    }
    if (cJSON_IsNumber(id) && id->valuedouble == floor(id->valuedouble) &&
        fabs(id->valuedouble) < 9007199254740992.0) {
        snprintf(rq->id_json, sizeof rq->id_json, "%.0f", id->valuedouble);
        return 0;
    }
    snprintf(why, why_len, "id: expected a string of at most %d bytes or an integer",
             SRV_ID_MAX);
    return -1;
}

/* Syntax and shape: valid UTF-8, no NUL escapes, one JSON object and only
 * whitespace after it.  The tree (caller deletes) or NULL with why. */
static cJSON *s_parse_object(const char *buf, size_t len, char *why, size_t why_len)
{
    if (!util_utf8_valid(buf, len)) {
        snprintf(why, why_len, "message: not valid UTF-8");
        return NULL;
    }
    if (s_has_nul_escape(buf, len)) {
        snprintf(why, why_len, "message: strings must not contain NUL (\\u0000)");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= buf && at <= buf + len ? (long)(at - buf) : -1;
        snprintf(why, why_len, "message: invalid JSON near byte %ld", off);
        return NULL;
    }
    while (end && end < buf + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && end < buf + len && *end) {
        snprintf(why, why_len, "message: trailing bytes after the JSON value at byte %ld",
                 (long)(end - buf));
        cJSON_Delete(root);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(why, why_len, "message: expected a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* The op row, or a code with why: its name is cut on a character boundary
 * so that the message stays valid UTF-8. */
static int s_read_op(const cJSON *root, srv_request *rq, char *why, size_t why_len)
{
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(root, "op");
    if (!op) {
        snprintf(why, why_len, "op: missing");
        return SRV_E_BAD_REQUEST;
    }
    if (!cJSON_IsString(op)) {
        snprintf(why, why_len, "op: expected a string");
        return SRV_E_BAD_REQUEST;
    }
    size_t len = strlen(op->valuestring);
    rq->op = srv_op_find(op->valuestring, len);
    if (rq->op)
        return SRV_OK;
    int shown = (int)util_utf8_cut(op->valuestring, len, 64);
    snprintf(why, why_len, "op: '%.*s%s' is not one of %s", shown, op->valuestring,
             (size_t)shown < len ? "..." : "", srv_op_names());
    return SRV_E_UNKNOWN_OP;
}

int srv_request_parse(const char *buf, size_t len, const srv_config *cfg, srv_arena *args_arena,
                      srv_request *rq, char *why, size_t why_len)
{
    rq->op = NULL;
    rq->args = NULL;
    strcpy(rq->id_json, "null");
    if ((size_t)cfg->max_message_bytes < len) {
        snprintf(why, why_len, "message: %zu bytes, more than limits.max_message_bytes (%d)", len,
                 cfg->max_message_bytes);
        return SRV_E_TOO_LARGE;
    }
    cJSON *root = s_parse_object(buf, len, why, why_len);
    if (!root)
        return SRV_E_BAD_JSON;
    int code = SRV_E_BAD_REQUEST;
    if (s_read_id(root, rq, why, why_len) == 0)
        code = s_read_op(root, rq, why, why_len);
    if (code == SRV_OK && rq->op->parse) {
        srv_fields f = {.root = root, .cfg = cfg, .arena = args_arena, .why = why,
                        .why_len = why_len};
        if (rq->op->parse(&f, &rq->args) != 0)
            code = SRV_E_BAD_REQUEST;
    }
    cJSON_Delete(root);
    return code;
}

/* ---- peek ----------------------------------------------------------------- *
 * A scanner over the top level of one object: it skips values it does not
 * want without building anything, and gives up (op NULL) on anything it
 * does not understand; the full parse on a worker then names the problem. */

typedef struct s_scan {
    const char *p, *end;
} s_scan;

static void s_ws(s_scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* A string at s->p: its raw text between the quotes into at and len, and
 * whether it held an escape.  -1 when unterminated. */
static int s_string(s_scan *s, const char **at, size_t *len, int *escaped)
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
    *at = s->p + 1;
    *len = (size_t)(p - *at);
    s->p = p + 1;
    return 0;
}

/* Skip one value of any kind; -1 on malformed input. */
static int s_skip(s_scan *s)
{
    int depth = 0;
    do {
        s_ws(s);
        if (s->p >= s->end)
            return -1;
        const char *at;
        size_t len;
        int esc;
        char c = *s->p;
        if (c == '"') {
            if (s_string(s, &at, &len, &esc))
                return -1;
        } else if (c == '{' || c == '[') {
            depth++;
            s->p++;
        } else if (c == '}' || c == ']') {
            depth--;
            s->p++;
        } else if (c == ',' || c == ':') {
            s->p++;
        } else {
            while (s->p < s->end && !strchr(",:]}\" \n\r\t", *s->p))
                s->p++;
        }
    } while (depth > 0);
    return depth == 0 ? 0 : -1;
}

/* An id worth echoing: a plain string of valid UTF-8 within SRV_ID_MAX
 * bytes and no escapes beyond the simple ones, or a short integer. */
static void s_peek_id(const char *at, size_t len, int quoted, int escaped, char *id_json)
{
    if (quoted) {
        if (len > SRV_ID_MAX || !util_utf8_valid(at, len))
            return;
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)at[i] < 0x20 || (escaped && at[i] == '\\' &&
                                                (i + 1 >= len || !strchr("\"\\/bfnrt", at[i + 1]))))
                return;
            else if (at[i] == '\\')
                i++;
        id_json[0] = '"';
        memcpy(id_json + 1, at, len);
        id_json[len + 1] = '"';
        id_json[len + 2] = 0;
        return;
    }
    size_t digits = len && at[0] == '-' ? len - 1 : len;
    if (digits == 0 || digits > 15 || (len > 1 && at[len - digits] == '0'))
        return;
    for (size_t i = len - digits; i < len; i++)
        if (at[i] < '0' || at[i] > '9')
            return;
    memcpy(id_json, at, len);
    id_json[len] = 0;
}

void srv_request_peek(const char *buf, size_t len, const srv_op **op, char *id_json)
{
    s_scan s = {.p = buf, .end = buf + len};
    int have_op = 0, have_id = 0;
    *op = NULL;
    strcpy(id_json, "null");
    s_ws(&s);
    if (s.p >= s.end || *s.p++ != '{')
        return;
    while (!(have_op && have_id)) {
        s_ws(&s);
        const char *key, *val;
        size_t klen, vlen;
        int kesc, vesc;
        if (s.p >= s.end || *s.p != '"' || s_string(&s, &key, &klen, &kesc))
            return;
        s_ws(&s);
        if (s.p >= s.end || *s.p++ != ':')
            return;
        s_ws(&s);
        const char *value_at = s.p;
        int is_op = !kesc && klen == 2 && !memcmp(key, "op", 2);
        int is_id = !kesc && klen == 2 && !memcmp(key, "id", 2);
        if (s.p < s.end && *s.p == '"') {
            if (s_string(&s, &val, &vlen, &vesc))
                return;
            if (is_op && !vesc && !have_op)
                *op = srv_op_find(val, vlen);
            if (is_id && !have_id)
                s_peek_id(val, vlen, 1, vesc, id_json);
        } else {
            if (s_skip(&s))
                return;
            if (is_id && !have_id)
                s_peek_id(value_at, (size_t)(s.p - value_at), 0, 0, id_json);
        }
        have_op |= is_op;
        have_id |= is_id;
        s_ws(&s);
        if (s.p >= s.end || *s.p != ',')
            return;
        s.p++;
    }
}
