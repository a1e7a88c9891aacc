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
#include "util/json.h"
#include "util/utf8.h"

static const char *s_codes[SRV_CODE_COUNT] = {
    "ok", "bad_json", "bad_frame", "too_large", "bad_request", "unknown_op",
    "busy", "unavailable", "store", "internal", "reload_failed", "forbidden", "rate_limited",
    "unknown_model"};

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
    const char *prefix;   /* "events[3]." inside srv_field_each, else "" */
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
    int at = snprintf(f->why, f->why_len, "%s", f->prefix ? f->prefix : "");
    if (at < 0 || (size_t)at >= f->why_len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->why + at, f->why_len - (size_t)at, fmt, ap);
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

/* A required, non-empty array of at most max elements (of `what`); limit
 * names the configuration key behind max (NULL: none). */
static int s_array(srv_fields *f, const char *name, int max, const char *limit, const char *what,
                   const cJSON **out, int *count)
{
    const cJSON *v = s_get(f, name);
    if (!v)
        return srv_fields_fail(f, "%s: missing", name);
    if (!cJSON_IsArray(v))
        return srv_fields_fail(f, "%s: expected an array of %s", name, what);
    int n = cJSON_GetArraySize(v);
    if (n == 0)
        return srv_fields_fail(f, "%s: empty array", name);
    if (n > max)
        return srv_fields_fail(f, "%s: %d items, more than %s (%d)", name, n,
                               limit ? limit : "the limit", max);
    *out = v;
    *count = n;
    return 0;
}

int srv_field_strs(srv_fields *f, const char *name, int max, const char *limit, srv_str **out,
                   int *n)
{
    const cJSON *v;
    int count;
    if (s_array(f, name, max, limit, "strings", &v, &count))
        return -1;
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

int srv_field_i64(srv_fields *f, const char *name, int required, int64_t lo, int64_t hi,
                  int64_t def, int64_t *out)
{
    const cJSON *v = s_get(f, name);
    if (!v) {
        *out = def;
        return required ? srv_fields_fail(f, "%s: missing", name) : 0;
    }
    /* Doubles hold integers exactly up to 2^53; bounds beyond that are
     * clamped there, so that no integer is silently rounded. */
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    double dlo = (double)lo > -9007199254740992.0 ? (double)lo : -9007199254740992.0;
    double dhi = (double)hi < 9007199254740992.0 ? (double)hi : 9007199254740992.0;
    if (!(d == floor(d)) || d < dlo || d > dhi)
        return srv_fields_fail(f, "%s: expected an integer in %.0f..%.0f", name, dlo, dhi);
    *out = (int64_t)d;
    return 0;
}

/* d is no good as a float in [lo, hi]: a float that underflows to 0 or a
 * subnormal would poison log(w). */
static int s_bad_float(double d, double lo, double hi)
{
    return !isfinite(d) || d < lo || d > hi || (d != 0 && fabs(d) < FLT_MIN) || fabs(d) > FLT_MAX;
}

int srv_field_float(srv_fields *f, const char *name, double lo, double hi, float def, float *out)
{
    const cJSON *v = s_get(f, name);
    if (!v) {
        *out = def;
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (s_bad_float(d, lo, hi))
        return srv_fields_fail(f, "%s: expected a finite number in %g..%g that a float holds "
                                  "without underflow", name, lo > FLT_MIN ? lo : FLT_MIN,
                               hi < FLT_MAX ? hi : FLT_MAX);
    *out = (float)d;
    return 0;
}

int srv_field_each(srv_fields *f, const char *name, int max, const char *limit,
                   int (*fn)(srv_fields *item, int i, int n, void *ctx), void *ctx, int *n)
{
    const cJSON *v;
    int count;
    if (s_array(f, name, max, limit, "objects", &v, &count))
        return -1;
    char prefix[96];
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        snprintf(prefix, sizeof prefix, "%s%.40s[%d].", f->prefix ? f->prefix : "", name, i);
        if (!cJSON_IsObject(e))
            return srv_fields_fail(f, "%s[%d]: expected an object", name, i);
        srv_fields item = {.root = e, .cfg = f->cfg, .arena = f->arena, .why = f->why,
                           .why_len = f->why_len, .prefix = prefix};
        if (fn(&item, i, count, ctx) != 0)
            return -1;
    }
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
        if (s_bad_float(d, lo, hi))
            return srv_fields_fail(f, "%s[%d]: expected a finite number in %g..%g that a float "
                                      "holds without underflow", name, i, lo > FLT_MIN ? lo
                                      : FLT_MIN, hi < FLT_MAX ? hi : FLT_MAX);
        a[i] = (float)d;
    }
    *out = a;
    return 0;
}

/* ---- the envelope --------------------------------------------------------- */

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
    size_t nul = util_json_nul_escape(buf, len);
    if (nul != len) {
        snprintf(why, why_len, "message: a NUL (\\u0000 or a zero byte) at byte %zu: strings "
                 "must not contain NUL", nul);
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
                        .why_len = why_len, .prefix = ""};
        if (rq->op->parse(&f, &rq->args) != 0)
            code = SRV_E_BAD_REQUEST;
    }
    cJSON_Delete(root);
    return code;
}

/* ---- peek ----------------------------------------------------------------- *
 * The main thread reads op and id off the top level of the object without
 * parsing it (util_json_members), and gives up (op NULL) on anything it
 * does not understand; the full parse on a worker then names the problem. */

/* An id worth echoing: a plain string of valid UTF-8 within SRV_ID_MAX
 * bytes and no escapes beyond the simple ones, or a short integer. */
static void s_peek_id(const util_json_member *m, char *id_json)
{
    const char *at = m->val;
    size_t len = m->val_len;
    if (m->val_string) {
        at++;
        len -= 2;
        if (len > SRV_ID_MAX || !util_utf8_valid(at, len))
            return;
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)at[i] < 0x20 ||
                (at[i] == '\\' && (i + 1 >= len || !at[i + 1] ||   /* strchr finds the NUL */
                                    !strchr("\"\\/bfnrt", at[i + 1]))))
                return;
            else if (at[i] == '\\')
                i++;
        memcpy(id_json, m->val, m->val_len);
        id_json[m->val_len] = 0;
        return;
    }
    size_t digits = len && at[0] == '-' ? len - 1 : len;
    if (digits == 0 || digits > 15 || (digits > 1 && at[len - digits] == '0'))
        return;
    for (size_t i = len - digits; i < len; i++)
        if (at[i] < '0' || at[i] > '9')
            return;
    memcpy(id_json, at, len);
    id_json[len] = 0;
}

typedef struct s_peek {
    const srv_op **op;
    char *id_json;
    int have_op, have_id;
} s_peek;

/* The first "op" and the first "id", as the full parse reads them. */
static int s_peek_member(void *ctx, const util_json_member *m)
{
    s_peek *pk = ctx;
    int is_op = !m->key_escaped && m->key_len == 2 && !memcmp(m->key, "op", 2);
    int is_id = !m->key_escaped && m->key_len == 2 && !memcmp(m->key, "id", 2);
    if (is_op && !pk->have_op && m->val_string && !m->val_escaped)
        *pk->op = srv_op_find(m->val + 1, m->val_len - 2);
    if (is_id && !pk->have_id)
        s_peek_id(m, pk->id_json);
    pk->have_op |= is_op;
    pk->have_id |= is_id;
    return pk->have_op && pk->have_id;
}

void srv_request_peek(const char *buf, size_t len, const srv_op **op, char *id_json)
{
    *op = NULL;
    strcpy(id_json, "null");
    s_peek pk = {.op = op, .id_json = id_json};
    if (util_json_members(buf, len, s_peek_member, &pk) < 0)
        *op = NULL;   /* a damaged message: let the full parse say what is wrong */
}
