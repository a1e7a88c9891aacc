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
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The fields of a request, from one of two readers: the cJSON tree, or the
 * members util_json_scan found in place (the fast path, for requests in its
 * subset of JSON).  Both give every reader below the same values; the
 * scanned one never words an error: it gives up (declined) and the request
 * goes through cJSON, so that every message comes from one path. */
struct srv_fields {
    const cJSON *root;              /* the cJSON reader, or NULL */
    const util_json_field *members; /* the scanned reader's members */
    int n_members;
    int declined;                   /* scanned: a field needs the cJSON path */
    const srv_config *cfg;
    srv_arena *arena;
    char *why;
    size_t why_len;
    const char *prefix;   /* "events[3]." inside srv_field_each, else "" */
};

/* One value, from either reader: kind 0 for absent or null. */
typedef struct s_val {
    int kind;                   /* enum util_json_kind, or 0 */
    double num;                 /* a number's value */
    const char *str;            /* a string's bytes (NUL-terminated from cJSON only) */
    size_t len;
    size_t count;               /* an array's elements */
    const cJSON *node;          /* cJSON: the node (its children for arrays) */
    const char *text;           /* scanned: an array's text, for its elements */
} s_val;

/* An array's elements, from either reader. */
typedef struct s_iter {
    const cJSON *node;          /* cJSON: the next element */
    const char *at, *end;       /* scanned: the rest of the array's text */
} s_iter;

/* ---- the two readers -------------------------------------------------------- */

static void s_from_cjson(const cJSON *v, s_val *out)
{
    *out = (s_val){.node = v};
    if (!v || cJSON_IsNull(v))
        out->kind = 0;
    else if (cJSON_IsString(v)) {
        out->kind = UTIL_JSON_STRING;
        out->str = v->valuestring;
        out->len = strlen(v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        out->kind = UTIL_JSON_NUMBER;
        out->num = v->valuedouble;
    } else if (cJSON_IsBool(v))
        out->kind = cJSON_IsTrue(v) ? UTIL_JSON_TRUE : UTIL_JSON_FALSE;
    else if (cJSON_IsArray(v)) {
        out->kind = UTIL_JSON_ARRAY;
        out->count = (size_t)cJSON_GetArraySize(v);
    } else
        out->kind = UTIL_JSON_OBJECT;
}

/* A scanned value.  Numbers are read the way cJSON reads them (strtod over
 * a copy of the text), so both readers give the same double. */
static void s_from_scan(const util_json_field *v, s_val *out)
{
    *out = (s_val){.kind = v->kind == UTIL_JSON_NULL ? 0 : v->kind, .str = v->val,
                   .len = v->val_len, .count = v->count, .text = v->val};
    if (v->kind == UTIL_JSON_NUMBER) {
        char num[UTIL_JSON_NUMBER_MAX + 1];
        memcpy(num, v->val, v->val_len);
        num[v->val_len] = 0;
        out->num = strtod(num, NULL);
    }
}

/* The first member called name (cJSON's lookup also takes the first). */
static void s_get(const srv_fields *f, const char *name, s_val *out)
{
    if (f->root) {
        s_from_cjson(cJSON_GetObjectItemCaseSensitive(f->root, name), out);
        return;
    }
    size_t len = strlen(name);
    for (int i = 0; i < f->n_members; i++)
        if (f->members[i].key_len == len && !memcmp(f->members[i].key, name, len)) {
            s_from_scan(&f->members[i], out);
            return;
        }
    *out = (s_val){0};
}

static s_iter s_elements(const s_val *array)
{
    return (s_iter){.node = array->node ? array->node->child : NULL,
                    .at = array->text ? array->text + 1 : NULL,
                    .end = array->text ? array->text + array->len : NULL};
}

/* The next element into out (null elements keep their kind: an array of
 * strings holding null is an error, not a gap); 0 after the last. */
static int s_next(s_iter *it, s_val *out)
{
    if (it->at) {
        util_json_field e;
        if (!util_json_elem(&it->at, it->end, &e))
            return 0;
        s_from_scan(&e, out);
        out->kind = e.kind;
        return 1;
    }
    if (!it->node)
        return 0;
    s_from_cjson(it->node, out);
    if (cJSON_IsNull(it->node))
        out->kind = UTIL_JSON_NULL;
    it->node = it->node->next;
    return 1;
}

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
    if (!f->root) {
        f->declined = 1;   /* the cJSON path will say it */
        return -1;
    }
    int at = snprintf(f->why, f->why_len, "%s", f->prefix ? f->prefix : "");
    if (at < 0 || (size_t)at >= f->why_len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->why + at, f->why_len - (size_t)at, fmt, ap);
    va_end(ap);
    return -1;
}

int srv_field_present(const srv_fields *f, const char *name)
{
    s_val v;
    s_get(f, name, &v);
    return v.kind != 0;
}

int srv_field_int(srv_fields *f, const char *name, int lo, int hi, int def, int *out)
{
    s_val v;
    s_get(f, name, &v);
    if (!v.kind) {
        *out = def;
        return 0;
    }
    double d = v.kind == UTIL_JSON_NUMBER ? v.num : NAN;
    if (!(d == floor(d)) || d < lo || d > hi)
        return srv_fields_fail(f, "%s: expected an integer in %d..%d", name, lo, hi);
    *out = (int)d;
    return 0;
}

int srv_field_bool(srv_fields *f, const char *name, int def, int *out)
{
    s_val v;
    s_get(f, name, &v);
    if (!v.kind) {
        *out = def;
        return 0;
    }
    if (v.kind != UTIL_JSON_TRUE && v.kind != UTIL_JSON_FALSE)
        return srv_fields_fail(f, "%s: expected true or false", name);
    *out = v.kind == UTIL_JSON_TRUE;
    return 0;
}

/* Copy a string into the arena, NUL-terminated.  Requests never hold NUL
 * (the envelope refuses it), so the copy is the whole string. */
static int s_copy(srv_fields *f, const s_val *v, srv_str *out)
{
    char *s = srv_arena_alloc(f->arena, v->len + 1);
    if (!s)
        return -1;
    memcpy(s, v->str, v->len);
    s[v->len] = 0;
    out->s = s;
    out->len = (uint32_t)v->len;
    return 0;
}

int srv_field_str(srv_fields *f, const char *name, int required, srv_str *out)
{
    s_val v;
    s_get(f, name, &v);
    out->s = NULL;
    out->len = 0;
    if (!v.kind)
        return required ? srv_fields_fail(f, "%s: missing", name) : 0;
    if (v.kind != UTIL_JSON_STRING || v.len == 0)
        return srv_fields_fail(f, "%s: expected a non-empty string", name);
    if (s_copy(f, &v, out))
        return srv_fields_fail(f, "%s: out of memory", name);
    return 0;
}

/* A required, non-empty array of at most max elements (of `what`); limit
 * names the configuration key behind max (NULL: none). */
static int s_array(srv_fields *f, const char *name, int max, const char *limit, const char *what,
                   s_val *out)
{
    s_get(f, name, out);
    if (!out->kind)
        return srv_fields_fail(f, "%s: missing", name);
    if (out->kind != UTIL_JSON_ARRAY)
        return srv_fields_fail(f, "%s: expected an array of %s", name, what);
    if (out->count == 0)
        return srv_fields_fail(f, "%s: empty array", name);
    if (out->count > (size_t)max)
        return srv_fields_fail(f, "%s: %zu items, more than %s (%d)", name, out->count,
                               limit ? limit : "the limit", max);
    return 0;
}

/* The scanned reader's array of strings (candidates, histories): one pass
 * over text util_json_scan accepted, so each string ends at the next quote
 * (the subset has no escapes) and only commas and blanks lie between them.
 * The copies go into one block: with their NULs they fit in the array's
 * own text.  0, or -1 declined (an element that is no non-empty string). */
static int s_scanned_strs(srv_fields *f, const s_val *v, srv_str *a)
{
    char *to = srv_arena_alloc(f->arena, v->len);
    if (!to)
        return -1;
    const char *p = v->text + 1;
    for (size_t i = 0; i < v->count; i++) {
        while (*p != '"') {
            if (*p != ',' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
                return -1;
            p++;
        }
        const char *q = ++p;
        while (*q != '"')
            q++;
        size_t len = (size_t)(q - p);
        if (len == 0)
            return -1;
        memcpy(to, p, len);
        to[len] = 0;
        a[i] = (srv_str){.s = to, .len = (uint32_t)len};
        to += len + 1;
        p = q + 1;
    }
    return 0;
}

int srv_field_strs(srv_fields *f, const char *name, int max, const char *limit, srv_str **out,
                   int *n)
{
    s_val v, e;
    if (s_array(f, name, max, limit, "strings", &v))
        return -1;
    srv_str *a = srv_arena_alloc(f->arena, v.count * sizeof *a);
    if (!a)
        return srv_fields_fail(f, "%s: out of memory", name);
    if (!f->root) {
        if (s_scanned_strs(f, &v, a))
            return srv_fields_fail(f, "%s: declined", name);
        *out = a;
        *n = (int)v.count;
        return 0;
    }
    s_iter it = s_elements(&v);
    for (int i = 0; s_next(&it, &e); i++) {
        if (e.kind != UTIL_JSON_STRING || e.len == 0)
            return srv_fields_fail(f, "%s[%d]: expected a non-empty string", name, i);
        if (s_copy(f, &e, &a[i]))
            return srv_fields_fail(f, "%s: out of memory", name);
    }
    *out = a;
    *n = (int)v.count;
    return 0;
}

int srv_field_i64(srv_fields *f, const char *name, int required, int64_t lo, int64_t hi,
                  int64_t def, int64_t *out)
{
    s_val v;
    s_get(f, name, &v);
    if (!v.kind) {
        *out = def;
        return required ? srv_fields_fail(f, "%s: missing", name) : 0;
    }
    /* Doubles hold integers exactly up to 2^53; bounds beyond that are
     * clamped there, so that no integer is silently rounded. */
    double d = v.kind == UTIL_JSON_NUMBER ? v.num : NAN;
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
    s_val v;
    s_get(f, name, &v);
    if (!v.kind) {
        *out = def;
        return 0;
    }
    double d = v.kind == UTIL_JSON_NUMBER ? v.num : NAN;
    if (s_bad_float(d, lo, hi))
        return srv_fields_fail(f, "%s: expected a finite number in %g..%g that a float holds "
                                  "without underflow", name, lo > FLT_MIN ? lo : FLT_MIN,
                               hi < FLT_MAX ? hi : FLT_MAX);
    *out = (float)d;
    return 0;
}

/* Objects inside arrays are the cJSON reader's alone: the scanned one
 * declines, and the request takes the cJSON path (record does). */
int srv_field_each(srv_fields *f, const char *name, int max, const char *limit,
                   int (*fn)(srv_fields *item, int i, int n, void *ctx), void *ctx, int *n)
{
    if (!f->root)
        return srv_fields_fail(f, "%s: objects need the cJSON reader", name);
    s_val v;
    if (s_array(f, name, max, limit, "objects", &v))
        return -1;
    char prefix[96];
    int i = 0;
    for (const cJSON *e = v.node->child; e; e = e->next, i++) {
        snprintf(prefix, sizeof prefix, "%s%.40s[%d].", f->prefix ? f->prefix : "", name, i);
        if (!cJSON_IsObject(e))
            return srv_fields_fail(f, "%s[%d]: expected an object", name, i);
        srv_fields item = {.root = e, .cfg = f->cfg, .arena = f->arena, .why = f->why,
                           .why_len = f->why_len, .prefix = prefix};
        if (fn(&item, i, (int)v.count, ctx) != 0)
            return -1;
    }
    *n = (int)v.count;
    return 0;
}

int srv_field_floats(srv_fields *f, const char *name, int n, double lo, double hi, float **out)
{
    s_val v, e;
    s_get(f, name, &v);
    if (v.kind != UTIL_JSON_ARRAY || v.count != (size_t)n)
        return srv_fields_fail(f, "%s: expected an array of %d numbers", name, n);
    float *a = srv_arena_alloc(f->arena, (size_t)n * sizeof *a);
    if (!a)
        return srv_fields_fail(f, "%s: out of memory", name);
    s_iter it = s_elements(&v);
    for (int i = 0; s_next(&it, &e); i++) {
        double d = e.kind == UTIL_JSON_NUMBER ? e.num : NAN;
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

int srv_request_parse_json(const char *buf, size_t len, const srv_config *cfg,
                           srv_arena *args_arena, srv_request *rq, char *why, size_t why_len)
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

static atomic_int s_fast = 1;

void srv_request_set_fast(int on)
{
    atomic_store(&s_fast, on);
}

/* ---- the fast path ---------------------------------------------------------- *
 * Requests in util_json_scan's subset (every request our clients send:
 * plain ids, no escapes) are read in place: no tree, no copies beyond the
 * op's fields.  Whatever the scan or a field reader cannot take, errors
 * included, goes to the cJSON path, which then answers it exactly as it
 * would have without this one (tests/check_proto.c holds the two to that). */

#define S_MEMBERS_MAX 32   /* members of a request the scan keeps (more: cJSON) */
#define S_DEPTH_MAX 32     /* nesting it follows (cJSON's limit is 1000) */

/* The id as s_read_id writes it; -1 when only the cJSON path may say. */
static int s_scanned_id(const srv_fields *f, srv_request *rq)
{
    s_val v;
    s_get(f, "id", &v);
    if (!v.kind)
        return 0;
    if (v.kind == UTIL_JSON_STRING && v.len <= SRV_ID_MAX) {
        /* Without escapes or control bytes the quoted form is the text. */
        rq->id_json[0] = '"';
        memcpy(rq->id_json + 1, v.str, v.len);
        memcpy(rq->id_json + 1 + v.len, "\"", 2);
        return 0;
    }
    if (v.kind == UTIL_JSON_NUMBER && v.num == floor(v.num) && fabs(v.num) < 9007199254740992.0) {
        snprintf(rq->id_json, sizeof rq->id_json, "%.0f", v.num);
        return 0;
    }
    return -1;
}

/* SRV_OK with rq filled, or -1: use the cJSON path (args_arena is as it was). */
static int s_parse_scanned(const char *buf, size_t len, const srv_config *cfg,
                           srv_arena *args_arena, srv_request *rq, char *why, size_t why_len)
{
    util_json_field m[S_MEMBERS_MAX];
    int high;
    int n = util_json_scan(buf, len, m, S_MEMBERS_MAX, S_DEPTH_MAX, &high);
    if (n < 0 || (high && !util_utf8_valid(buf, len)))
        return -1;
    srv_fields f = {.members = m, .n_members = n, .cfg = cfg, .arena = args_arena, .why = why,
                    .why_len = why_len, .prefix = ""};
    s_val op;
    s_get(&f, "op", &op);
    if (s_scanned_id(&f, rq) || op.kind != UTIL_JSON_STRING ||
        !(rq->op = srv_op_find(op.str, op.len)))
        return -1;
    if (!rq->op->parse)
        return SRV_OK;
    size_t mark = srv_arena_mark(args_arena);
    if (rq->op->parse(&f, &rq->args) != 0 || f.declined) {
        srv_arena_rewind(args_arena, mark);
        rq->args = NULL;
        return -1;
    }
    return SRV_OK;
}

int srv_request_parse(const char *buf, size_t len, const srv_config *cfg, srv_arena *args_arena,
                      srv_request *rq, char *why, size_t why_len)
{
    rq->op = NULL;
    rq->args = NULL;
    strcpy(rq->id_json, "null");
    if ((size_t)cfg->max_message_bytes >= len && atomic_load_explicit(&s_fast,
                                                                      memory_order_relaxed) &&
        s_parse_scanned(buf, len, cfg, args_arena, rq, why, why_len) == SRV_OK)
        return SRV_OK;
    return srv_request_parse_json(buf, len, cfg, args_arena, rq, why, why_len);
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
