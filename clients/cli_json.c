/* cli_json.c -- the few JSON chores every client repeats: parse an object,
 * read a string member, tell an ok reply from an error reply, build the
 * error replies the client itself decides on, and a growable text buffer for
 * requests built without cJSON (attn-load builds thousands a second).
 */
#include "clients/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"

cJSON *cli_json_object(const char *text, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

cJSON *cli_json_object_strict(const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j)
        return NULL;
    while (end && end < text + len && (*end == ' ' || *end == '\t' || *end == '\r' ||
                                       *end == '\n'))
        end++;
    if (!cJSON_IsObject(j) || (end && end < text + len)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

const char *cli_json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int cli_reply_status(const cJSON *reply, const char **code, const char **message)
{
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(reply, "ok");
    if (cJSON_IsTrue(ok))
        return 1;
    if (!cJSON_IsFalse(ok))
        return -1;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
    const char *c = cli_json_str(e, "code"), *m = cli_json_str(e, "message");
    if (code)
        *code = c ? c : "?";
    if (message)
        *message = m ? m : "?";
    return 0;
}

cJSON *cli_error_reply(const cJSON *id, const char *code, const char *message)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *e = cJSON_CreateObject();
    cJSON *idc = id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull();
    if (!r || !e || !idc || !cJSON_AddItemToObject(r, "id", idc)) {
        cJSON_Delete(r);
        cJSON_Delete(e);
        cJSON_Delete(idc);   /* not attached: ours to free */
        return NULL;
    }
    if (!cJSON_AddFalseToObject(r, "ok") || !cJSON_AddItemToObject(r, "error", e)) {
        cJSON_Delete(r);
        cJSON_Delete(e);
        return NULL;
    }
    if (!cJSON_AddStringToObject(e, "code", code) ||
        !cJSON_AddStringToObject(e, "message", message)) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

/* ---- buffer --------------------------------------------------------------- */

static int s_reserve(cli_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int cli_buf_put(cli_buf *b, const void *p, size_t n)
{
    if (s_reserve(b, n))
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int cli_buf_puts(cli_buf *b, const char *s)
{
    return cli_buf_put(b, s, strlen(s));
}

int cli_buf_printf(cli_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return cli_buf_put(b, small, (size_t)n);
    if (s_reserve(b, (size_t)n))
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int cli_buf_json_str(cli_buf *b, const char *s)
{
    size_t len = strlen(s);
    if (s_reserve(b, UTIL_JSON_QUOTED_MAX(len)))
        return -1;
    b->len += util_json_quote(b->data + b->len, s, len);
    b->data[b->len] = '\0';
    return 0;
}

void cli_buf_reset(cli_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void cli_buf_free(cli_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
