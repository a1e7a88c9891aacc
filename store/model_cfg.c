/* model_cfg.c -- the JSON in models.config: reading it, and writing it from
 * a model plus whatever settings the trainer wants to keep beside it.
 *
 * The shape keys (d, m, heads, l_max, scale, identity, sa_len, ffn)
 * describe the tensors and are what store_model_load trusts; any other key
 * is the trainer's (learning rate, epochs, seed ...) and is kept verbatim.
 */
#include "store/model_cfg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

/* An integer-valued JSON number in [lo, hi] at key, or -1 with why filled. */
static int s_get_int(const cJSON *obj, const char *key, long lo, long hi, long *out,
                     char *why, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) {
        snprintf(why, len, "config has no number '%s'", key);
        return -1;
    }
    double x = v->valuedouble;
    if (!(x >= (double)lo && x <= (double)hi) || x != floor(x)) {
        snprintf(why, len, "config '%s' is %g, expected an integer in %ld..%ld", key, x, lo, hi);
        return -1;
    }
    *out = (long)x;
    return 0;
}

int store_model_cfg_parse(const char *json, store_model_cfg *cfg, char *why, size_t len)
{
    memset(cfg, 0, sizeof *cfg);
    cJSON *obj = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(obj)) {
        snprintf(why, len, "config is not a JSON object");
        cJSON_Delete(obj);
        return -1;
    }
    long d, m, heads, l_max;
    int rc = -1;
    if (s_get_int(obj, "d", 1, 65536, &d, why, len) || s_get_int(obj, "m", 1, 65536, &m, why, len)
        || s_get_int(obj, "heads", 1, 65536, &heads, why, len)
        || s_get_int(obj, "l_max", 1, 1 << 20, &l_max, why, len))
        goto out;
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(obj, "scale");
    if (!cJSON_IsNumber(scale) || !isfinite((float)scale->valuedouble)
        || !(scale->valuedouble > 0)) {
        snprintf(why, len, "config 'scale' is missing or not a finite number > 0");
        goto out;
    }
    if (m % heads) {
        snprintf(why, len, "config m=%ld is not a multiple of heads=%ld", m, heads);
        goto out;
    }
    cfg->d = (int)d;
    cfg->m = (int)m;
    cfg->heads = (int)heads;
    cfg->l_max = (int)l_max;
    cfg->scale = (float)scale->valuedouble;
    cfg->identity = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "identity"));
    long sa_len = 0;
    if (cJSON_GetObjectItemCaseSensitive(obj, "sa_len") &&
        s_get_int(obj, "sa_len", 0, ATTN_SA_MAX, &sa_len, why, len))
        goto out;
    cfg->sa_len = (int)sa_len;
    long ffn = 0;
    if (cJSON_GetObjectItemCaseSensitive(obj, "ffn") &&
        s_get_int(obj, "ffn", 0, ATTN_FFN_MAX, &ffn, why, len))
        goto out;
    /* What attn_model_add_ffn needs, said here with the config's numbers. */
    if (ffn > 0 && (ffn % 16 || !sa_len || m % 8)) {
        snprintf(why, len, "config ffn=%ld needs %s", ffn,
                 ffn % 16 ? "a multiple of 16" : !sa_len ? "a self-attention block (sa_len > 0)"
                                                       : "m a multiple of 8");
        goto out;
    }
    cfg->ffn = (int)ffn;
    rc = 0;
out:
    cJSON_Delete(obj);
    return rc;
}

/* Set key to a number, refusing a caller's value that disagrees. */
static int s_put_num(cJSON *obj, const char *key, double x, char *why, size_t len)
{
    cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (old) {
        if (!cJSON_IsNumber(old) || (float)old->valuedouble != (float)x) {
            char *txt = cJSON_PrintUnformatted(old);
            snprintf(why, len, "config '%s' is %s but the model's is %g", key,
                     txt ? txt : "?", x);
            cJSON_free(txt);
            return -1;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    }
    return cJSON_AddNumberToObject(obj, key, x) ? 0 : -1;
}

char *store_model_cfg_write(const attn_model *model, const char *extra, char *why, size_t len)
{
    cJSON *obj = extra ? cJSON_Parse(extra) : cJSON_CreateObject();
    if (!cJSON_IsObject(obj)) {
        snprintf(why, len, "config is not a JSON object");
        cJSON_Delete(obj);
        return NULL;
    }
    why[0] = '\0';
    int identity = !model->wq && !model->wk && !model->wv && !model->wo;
    char *out = NULL;
    if (s_put_num(obj, "d", model->d, why, len) || s_put_num(obj, "m", model->m, why, len)
        || s_put_num(obj, "heads", model->heads, why, len)
        || s_put_num(obj, "l_max", model->l_max, why, len)
        || s_put_num(obj, "scale", model->scale, why, len)
        || s_put_num(obj, "sa_len", model->sa_len, why, len)
        || s_put_num(obj, "ffn", model->ffn, why, len))
        goto done;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "identity");
    if (!cJSON_AddBoolToObject(obj, "identity", identity))
        goto done;
    out = cJSON_PrintUnformatted(obj);
done:
    if (!out && !why[0])
        snprintf(why, len, "out of memory writing the config");
    cJSON_Delete(obj);
    return out;
}

int store_model_cfg_valid_json(const char *json)
{
    cJSON *obj = cJSON_Parse(json);
    int ok = obj != NULL;
    cJSON_Delete(obj);
    return ok;
}
