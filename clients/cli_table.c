/* cli_table.c -- attn-query's human output.
 *
 * A rank reply becomes a ranked list a person can judge at a glance: the
 * title first (ext ids mean nothing to a reader), the score, and on the
 * next line the history items that explain it.  Everything the daemon
 * reports beside the ranking -- unknown and excluded candidates, the
 * fallback -- is printed too: a silent omission would look like a ranking
 * bug.  Other replies are flattened to "dotted.key: value" lines.
 */
#include "clients/cli.h"

#include <math.h>
#include <string.h>

/* "Title [ext]", or "ext" when the item has no title. */
static void s_item_name(FILE *out, const cJSON *it)
{
    const char *ext = cli_json_str(it, "item"), *title = cli_json_str(it, "title");
    if (title && *title)
        fprintf(out, "%s [%s]", title, ext ? ext : "?");
    else
        fprintf(out, "%s", ext ? ext : "?");
}

static void s_str_list(FILE *out, const char *label, const cJSON *arr)
{
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n == 0)
        return;
    fprintf(out, "%s (%d): ", label, n);
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, arr) {
        fprintf(out, "%s%s", i++ ? ", " : "", cJSON_IsString(e) ? e->valuestring : "?");
    }
    fprintf(out, "\n");
}

static void s_rank(FILE *out, const cJSON *r)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(r, "items");
    int n = cJSON_GetArraySize(items);
    if (n == 0) {
        fprintf(out, "no results\n");
    } else {
        fprintf(out, "%4s  %10s  %s\n", "rank", "score", "item");
        const cJSON *it;
        int rank = 0;
        cJSON_ArrayForEach(it, items) {
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(it, "score");
            fprintf(out, "%4d  %10.4f  ", ++rank, cJSON_IsNumber(sc) ? sc->valuedouble : NAN);
            s_item_name(out, it);
            fprintf(out, "\n");
            const cJSON *because = cJSON_GetObjectItemCaseSensitive(it, "because");
            if (cJSON_GetArraySize(because) > 0) {
                fprintf(out, "%16s  because you interacted with: ", "");
                const cJSON *b;
                int i = 0;
                cJSON_ArrayForEach(b, because) {
                    const cJSON *w = cJSON_GetObjectItemCaseSensitive(b, "weight");
                    fprintf(out, "%s", i++ ? "; " : "");
                    s_item_name(out, b);
                    if (cJSON_IsNumber(w))
                        fprintf(out, " %.2f", w->valuedouble);
                }
                fprintf(out, "\n");
            }
        }
    }
    s_str_list(out, "unknown candidates", cJSON_GetObjectItemCaseSensitive(r, "unknown"));
    s_str_list(out, "excluded (already seen)", cJSON_GetObjectItemCaseSensitive(r, "excluded"));
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(r, "fallback");
    if (cJSON_IsObject(fb)) {
        const char *kind = cli_json_str(fb, "kind"), *why = cli_json_str(fb, "reason");
        fprintf(out, "fallback: %s (%s): no usable history, so items are ranked by "
                "interaction count and have no explanation\n",
                kind ? kind : "?", why ? why : "?");
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(r, "model"),
                *cat = cJSON_GetObjectItemCaseSensitive(r, "catalog"),
                *hist = cJSON_GetObjectItemCaseSensitive(r, "history"),
                *took = cJSON_GetObjectItemCaseSensitive(r, "took_us");
    if (cJSON_IsNumber(model))
        fprintf(out, "model %.0f", model->valuedouble);
    if (cJSON_IsNumber(cat))
        fprintf(out, ", catalog %.0f", cat->valuedouble);
    if (cJSON_IsNumber(hist))
        fprintf(out, ", %.0f history items", hist->valuedouble);
    if (cJSON_IsNumber(took))
        fprintf(out, ", %.0f us in attnd", took->valuedouble);
    if (cJSON_IsNumber(model) || cJSON_IsNumber(took))
        fprintf(out, "\n");
}

static void s_scalar(FILE *out, const cJSON *v)
{
    if (cJSON_IsString(v))
        fprintf(out, "%s", v->valuestring);
    else if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
             fabs(v->valuedouble) < 1e15)
        fprintf(out, "%.0f", v->valuedouble);
    else if (cJSON_IsNumber(v))
        fprintf(out, "%.6g", v->valuedouble);
    else if (cJSON_IsBool(v))
        fprintf(out, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else
        fprintf(out, "null");
}

static int s_all_scalars(const cJSON *arr)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (cJSON_IsObject(e) || cJSON_IsArray(e))
            return 0;
    }
    return 1;
}

static void s_flatten(FILE *out, const char *prefix, const cJSON *v)
{
    char key[512];
    if (cJSON_IsObject(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", e->string);
            s_flatten(out, key, e);
        }
    } else if (cJSON_IsArray(v) && !s_all_scalars(v)) {
        const cJSON *e;
        int i = 0;
        cJSON_ArrayForEach(e, v) {
            snprintf(key, sizeof key, "%s[%d]", prefix, i++);
            s_flatten(out, key, e);
        }
    } else if (cJSON_IsArray(v)) {
        fprintf(out, "%s: ", prefix);
        const cJSON *e;
        int i = 0;
        cJSON_ArrayForEach(e, v) {
            fprintf(out, "%s", i++ ? ", " : "");
            s_scalar(out, e);
        }
        fprintf(out, "\n");
    } else {
        fprintf(out, "%s: ", prefix);
        s_scalar(out, v);
        fprintf(out, "\n");
    }
}

void cli_table_print(FILE *out, const cJSON *reply, int is_rank)
{
    if (is_rank && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")))
        s_rank(out, reply);
    else
        s_flatten(out, "", reply);
}
