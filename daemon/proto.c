/* proto.c -- request parsing and validation for protocol v1.
 *
 * Every check names the field it rejects, because the message is all a
 * frontend developer sees of our validation.
 */
#include "daemon/proto.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/utf8.h"

static const char *s_ops[SRV_OP_COUNT] = {"rank", "health", "stats", "info", "reload"};
static const char *s_codes[SRV_CODE_COUNT] = {
    "ok", "bad_json", "bad_frame", "too_large", "bad_request", "unknown_op",
    "busy", "unavailable", "store", "internal", "reload_failed"};

const char *srv_op_name(int op)
{
    return op >= 0 && op < SRV_OP_COUNT ? s_ops[op] : "unknown";
}

const char *srv_code_name(int code)
{
    return code >= 0 && code < SRV_CODE_COUNT ? s_codes[code] : "internal";
}

/* Integral JSON number in [lo, hi] into *out; default when absent. */
static int s_int_field(const cJSON *obj, const char *name, int lo, int hi, int def, int *out,
                       char *why, size_t why_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < lo || d > hi) {
        snprintf(why, why_len, "%s: expected an integer in %d..%d", name, lo, hi);
        return -1;
    }
    *out = (int)d;
    return 0;
}

static int s_bool_field(const cJSON *obj, const char *name, int *out, char *why, size_t why_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v)) {
        *out = 0;
        return 0;
    }
    if (!cJSON_IsBool(v)) {
        snprintf(why, why_len, "%s: expected true or false", name);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A non-empty array whose every element is a non-empty string. */
static int s_string_array(const cJSON *v, const char *name, int *n, char *why, size_t why_len)
{
    if (!cJSON_IsArray(v)) {
        snprintf(why, why_len, "%s: expected an array of strings", name);
        return -1;
    }
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++)
        if (!cJSON_IsString(e) || !e->valuestring[0]) {
            snprintf(why, why_len, "%s[%d]: expected a non-empty string", name, i);
            return -1;
        }
    if (i == 0) {
        snprintf(why, why_len, "%s: empty array", name);
        return -1;
    }
    *n = i;
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

static int s_parse_rank(const cJSON *root, const srv_config *cfg, srv_request *rq, char *why,
                        size_t why_len)
{
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(root, "history");
    if (cJSON_IsNull(user))
        user = NULL;
    if (cJSON_IsNull(hist))
        hist = NULL;
    if (!user == !hist) {
        snprintf(why, why_len, "user, history: exactly one of them is required");
        return -1;
    }
    if (user) {
        if (!cJSON_IsString(user) || !user->valuestring[0]) {
            snprintf(why, why_len, "user: expected a non-empty string");
            return -1;
        }
        rq->user = user->valuestring;
    } else {
        if (s_string_array(hist, "history", &rq->n_history, why, why_len))
            return -1;
        rq->history = hist;
    }
    const cJSON *weights = cJSON_GetObjectItemCaseSensitive(root, "weights");
    if (weights && !cJSON_IsNull(weights)) {
        if (!hist) {
            snprintf(why, why_len, "weights: only allowed with history");
            return -1;
        }
        if (!cJSON_IsArray(weights) || cJSON_GetArraySize(weights) != rq->n_history) {
            snprintf(why, why_len, "weights: expected an array of %d numbers (one per history item)",
                     rq->n_history);
            return -1;
        }
        int i = 0;
        for (const cJSON *e = weights->child; e; e = e->next, i++)
            if (!cJSON_IsNumber(e) || !(e->valuedouble > 0) || !isfinite(e->valuedouble) ||
                e->valuedouble > 3.4e38) {
                snprintf(why, why_len, "weights[%d]: expected a finite number > 0", i);
                return -1;
            }
        rq->weights = weights;
    }
    const cJSON *cand = cJSON_GetObjectItemCaseSensitive(root, "candidates");
    if (!cand || cJSON_IsNull(cand)) {
        snprintf(why, why_len, "candidates: missing");
        return -1;
    }
    if (s_string_array(cand, "candidates", &rq->n_cand, why, why_len))
        return -1;
    if (rq->n_cand > cfg->max_candidates) {
        snprintf(why, why_len, "candidates: %d items, more than limits.max_candidates (%d)",
                 rq->n_cand, cfg->max_candidates);
        return -1;
    }
    rq->candidates = cand;
    if (s_int_field(root, "k", 1, cfg->max_k, cfg->default_k, &rq->k, why, why_len) ||
        s_int_field(root, "explain", 0, cfg->max_explain, 0, &rq->explain, why, why_len) ||
        s_bool_field(root, "exclude_seen", &rq->exclude_seen, why, why_len) ||
        s_bool_field(root, "titles", &rq->titles, why, why_len))
        return -1;
    if (rq->exclude_seen && !user) {
        snprintf(why, why_len, "exclude_seen: only allowed with user");
        return -1;
    }
    return 0;
}

int srv_request_parse(const char *buf, size_t len, const srv_config *cfg, srv_request *rq,
                      cJSON **tree, char *why, size_t why_len)
{
    memset(rq, 0, sizeof *rq);
    strcpy(rq->id_json, "null");
    *tree = NULL;
    if ((size_t)cfg->max_message_bytes < len) {
        snprintf(why, why_len, "message: %zu bytes, more than limits.max_message_bytes (%d)", len,
                 cfg->max_message_bytes);
        return SRV_E_TOO_LARGE;
    }
    if (!util_utf8_valid(buf, len)) {
        snprintf(why, why_len, "message: not valid UTF-8");
        return SRV_E_BAD_JSON;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= buf && at <= buf + len ? (long)(at - buf) : -1;
        snprintf(why, why_len, "message: invalid JSON near byte %ld", off);
        return SRV_E_BAD_JSON;
    }
    /* Anything but whitespace after the object is an error, not ignored. */
    while (end && end < buf + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && end < buf + len && *end) {
        snprintf(why, why_len, "message: trailing bytes after the JSON value at byte %ld",
                 (long)(end - buf));
        cJSON_Delete(root);
        return SRV_E_BAD_JSON;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(why, why_len, "message: expected a JSON object");
        cJSON_Delete(root);
        return SRV_E_BAD_JSON;
    }
    int code = SRV_E_BAD_REQUEST;
    if (s_read_id(root, rq, why, why_len))
        goto fail;
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(root, "op");
    if (!op) {
        snprintf(why, why_len, "op: missing");
        goto fail;
    }
    if (!cJSON_IsString(op)) {
        snprintf(why, why_len, "op: expected a string");
        goto fail;
    }
    rq->op = -1;
    for (int i = 0; i < SRV_OP_COUNT; i++)
        if (!strcmp(op->valuestring, s_ops[i]))
            rq->op = i;
    if (rq->op < 0) {
        snprintf(why, why_len, "op: '%.64s' is not one of rank, health, stats, info, reload",
                 op->valuestring);
        code = SRV_E_UNKNOWN_OP;
        goto fail;
    }
    if (rq->op == SRV_OP_RANK && s_parse_rank(root, cfg, rq, why, why_len))
        goto fail;
    *tree = root;
    return SRV_OK;
fail:
    cJSON_Delete(root);
    return code;
}

void srv_reply_begin(srv_json *w, const char *id_json)
{
    srv_json_reset(w);
    srv_json_open(w, '{');
    srv_json_key(w, "id");
    srv_json_raw(w, id_json, strlen(id_json));
    srv_json_key(w, "ok");
}

void srv_reply_error(srv_json *w, const char *id_json, int code, const char *message)
{
    srv_reply_begin(w, id_json);
    srv_json_bool(w, 0);
    srv_json_key(w, "error");
    srv_json_open(w, '{');
    srv_json_key(w, "code");
    srv_json_cstr(w, srv_code_name(code));
    srv_json_key(w, "message");
    srv_json_cstr(w, message);
    srv_json_close(w, '}');
    srv_json_close(w, '}');
}
