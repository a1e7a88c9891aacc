/* model.c -- allocation, copying and validation of model parameters.
 *
 * A model is a bag of row-major float arrays plus its shapes.  Arrays are
 * allocated 64-byte aligned (util_zalloc64: the vector loads of
 * tables.c) so that code elsewhere (store/, the trainer) can also hand us
 * arrays from plain malloc: attn_model_free() releases everything with free().
 */
#include "attn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "util/mem.h"

/* Shape sanity bounds: far beyond any real model, small enough that every
 * product of two of them fits comfortably in size_t and int arithmetic. */
#define S_MAX_DIM (1 << 16)
#define S_MAX_LEN (1 << 20)

/* Zeroed array of n elements (n may be 0: returns NULL with *ok left
 * alone, as an absent optional array).  Sets *ok = 0 on out-of-memory. */
static void *s_zalloc(size_t n, size_t size, int *ok)
{
    void *p = n ? util_zalloc64(n, size) : NULL;
    if (n && !p)
        *ok = 0;
    return p;
}

static void *s_dup(const void *src, size_t n, size_t size, int *ok)
{
    if (!src || n == 0)
        return NULL;
    void *p = s_zalloc(n, size, ok);
    if (p)
        memcpy(p, src, n * size);
    return p;
}

attn_model *attn_model_new(int d, int m, int heads, int l_max, int64_t n_items,
                           int with_residual)
{
    if (d < 1 || m < 1 || heads < 1 || l_max < 1 || n_items < 0 ||
        d > S_MAX_DIM || m > S_MAX_DIM || l_max > S_MAX_LEN || m % heads != 0)
        return NULL;
    attn_model *md = calloc(1, sizeof *md);
    if (!md)
        return NULL;
    int ok = 1;
    md->version = 0;
    md->d = d;
    md->m = m;
    md->heads = heads;
    md->l_max = l_max;
    md->scale = 1.0f / sqrtf((float)(m / heads));
    md->wq = s_zalloc((size_t)d * m, sizeof(float), &ok);
    md->wk = s_zalloc((size_t)d * m, sizeof(float), &ok);
    md->wv = s_zalloc((size_t)d * m, sizeof(float), &ok);
    md->wo = s_zalloc((size_t)m * d, sizeof(float), &ok);
    md->pos_bias = s_zalloc((size_t)l_max, sizeof(float), &ok);
    md->n_items = n_items;
    if (n_items > 0) {
        md->item_ids = s_zalloc((size_t)n_items, sizeof(int64_t), &ok);
        md->item_bias = s_zalloc((size_t)n_items, sizeof(float), &ok);
        if (with_residual)
            md->residual = s_zalloc((size_t)n_items * d, sizeof(float), &ok);
    }
    if (!ok)
        attn_model_free(&md);
    return md;
}

int attn_model_add_sa(attn_model *md, int sa_len)
{
    if (!md || md->sa_len || sa_len < 1 || sa_len > ATTN_SA_MAX)
        return ATTN_EINVAL;
    int ok = 1;
    const size_t dm = (size_t)md->d * (size_t)md->m;
    float *q = s_zalloc(dm, sizeof(float), &ok), *k = s_zalloc(dm, sizeof(float), &ok);
    float *uk = s_zalloc(dm, sizeof(float), &ok), *uv = s_zalloc(dm, sizeof(float), &ok);
    float *pos = s_zalloc((size_t)sa_len, sizeof(float), &ok);
    if (!ok) {
        free(q);
        free(k);
        free(uk);
        free(uv);
        free(pos);
        return ATTN_ENOMEM;
    }
    md->sa_len = sa_len;
    md->sa_q = q;
    md->sa_k = k;
    md->sa_uk = uk;
    md->sa_uv = uv;
    md->sa_pos = pos;
    return ATTN_OK;
}

/* Why a feed-forward layer of width f cannot go on md, or NULL if it can. */
static const char *s_ffn_bad(const attn_model *md, int f)
{
    if (!md->sa_len)
        return "needs a self-attention block";
    if (f < 16 || f > ATTN_FFN_MAX || f % 16)
        return "width must be a multiple of 16 in 16..1024";
    if (md->m % 8)
        return "needs m a multiple of 8";
    return NULL;
}

int attn_model_add_ffn(attn_model *md, int ffn)
{
    if (!md || md->ffn || s_ffn_bad(md, ffn))
        return ATTN_EINVAL;
    int ok = 1;
    const size_t wn = (size_t)2 * md->m * (size_t)ffn;
    float *w1 = s_zalloc(wn, sizeof(float), &ok), *b1 = s_zalloc((size_t)ffn, sizeof(float), &ok);
    float *w2 = s_zalloc(wn, sizeof(float), &ok);
    float *b2 = s_zalloc((size_t)2 * md->m, sizeof(float), &ok);
    if (!ok) {
        free(w1);
        free(b1);
        free(w2);
        free(b2);
        return ATTN_ENOMEM;
    }
    md->ffn = ffn;
    md->ffn_w1 = w1;
    md->ffn_b1 = b1;
    md->ffn_w2 = w2;
    md->ffn_b2 = b2;
    return ATTN_OK;
}

attn_model *attn_model_identity(int d, int l_max)
{
    if (d < 1 || l_max < 1 || d > S_MAX_DIM || l_max > S_MAX_LEN)
        return NULL;
    attn_model *md = calloc(1, sizeof *md);
    if (!md)
        return NULL;
    int ok = 1;
    md->version = 0;
    md->d = md->m = d;
    md->heads = 1;
    md->l_max = l_max;
    md->scale = ATTN_IDENTITY_SCALE;
    /* Zeros rather than NULL so that a trainer starting from the identity
     * model finds a position bias it can update in place. */
    md->pos_bias = s_zalloc((size_t)l_max, sizeof(float), &ok);
    if (!ok)
        attn_model_free(&md);
    return md;
}

attn_model *attn_model_clone(const attn_model *src)
{
    if (!src)
        return NULL;
    attn_model *md = calloc(1, sizeof *md);
    if (!md)
        return NULL;
    *md = *src;
    int ok = 1;
    size_t dm = (size_t)src->d * (size_t)src->m, ni = (size_t)src->n_items;
    md->wq = s_dup(src->wq, dm, sizeof(float), &ok);
    md->wk = s_dup(src->wk, dm, sizeof(float), &ok);
    md->wv = s_dup(src->wv, dm, sizeof(float), &ok);
    md->wo = s_dup(src->wo, dm, sizeof(float), &ok);
    md->pos_bias = s_dup(src->pos_bias, (size_t)src->l_max, sizeof(float), &ok);
    md->item_ids = s_dup(src->item_ids, ni, sizeof(int64_t), &ok);
    md->item_bias = s_dup(src->item_bias, ni, sizeof(float), &ok);
    md->residual = s_dup(src->residual, ni * (size_t)src->d, sizeof(float), &ok);
    md->sa_q = s_dup(src->sa_q, dm, sizeof(float), &ok);
    md->sa_k = s_dup(src->sa_k, dm, sizeof(float), &ok);
    md->sa_uk = s_dup(src->sa_uk, dm, sizeof(float), &ok);
    md->sa_uv = s_dup(src->sa_uv, dm, sizeof(float), &ok);
    md->sa_pos = s_dup(src->sa_pos, (size_t)src->sa_len, sizeof(float), &ok);
    const size_t fw = (size_t)2 * src->m * (size_t)src->ffn;
    md->ffn_w1 = s_dup(src->ffn_w1, fw, sizeof(float), &ok);
    md->ffn_b1 = s_dup(src->ffn_b1, (size_t)src->ffn, sizeof(float), &ok);
    md->ffn_w2 = s_dup(src->ffn_w2, fw, sizeof(float), &ok);
    md->ffn_b2 = s_dup(src->ffn_b2, src->ffn ? (size_t)2 * src->m : 0, sizeof(float), &ok);
    if (!ok)
        attn_model_free(&md);
    return md;
}

void attn_model_free(attn_model **model_p)
{
    if (!model_p || !*model_p)
        return;
    attn_model *md = *model_p;
    free(md->wq);
    free(md->wk);
    free(md->wv);
    free(md->wo);
    free(md->pos_bias);
    free(md->item_ids);
    free(md->item_bias);
    free(md->residual);
    free(md->sa_q);
    free(md->sa_k);
    free(md->sa_uk);
    free(md->sa_uv);
    free(md->sa_pos);
    free(md->ffn_w1);
    free(md->ffn_b1);
    free(md->ffn_w2);
    free(md->ffn_b2);
    free(md);
    *model_p = NULL;
}

/* Index of the first non-finite value of x[0..n), or -1. */
static long long s_first_bad(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return (long long)i;
    return -1;
}

#define S_WHY(...) (why ? (void)snprintf(why, why_len, __VA_ARGS__) : (void)0)

int attn_model_check(const attn_model *md, char *why, size_t why_len)
{
    if (!md) {
        S_WHY("model is NULL");
        return ATTN_EINVAL;
    }
    if (md->d < 1 || md->d > S_MAX_DIM || md->m < 1 || md->m > S_MAX_DIM) {
        S_WHY("d=%d, m=%d: dimensions must be in 1..%d", md->d, md->m, S_MAX_DIM);
        return ATTN_EINVAL;
    }
    if (md->heads < 1 || md->m % md->heads != 0) {
        S_WHY("heads=%d must be >= 1 and divide m=%d", md->heads, md->m);
        return ATTN_EINVAL;
    }
    if (md->l_max < 1 || md->l_max > S_MAX_LEN) {
        S_WHY("l_max=%d must be in 1..%d", md->l_max, S_MAX_LEN);
        return ATTN_EINVAL;
    }
    if (!isfinite(md->scale)) {
        S_WHY("scale is not finite");
        return ATTN_EINVAL;
    }
    if (md->sa_len > 0 && (!md->wq || !md->wk || !md->wv || !md->wo)) {
        S_WHY("a self-attention block needs all four projections (an identity one is NULL)");
        return ATTN_EINVAL;
    }
    if ((!md->wq || !md->wk || !md->wv || !md->wo) && md->m != md->d) {
        S_WHY("a NULL (identity) projection needs m == d, have m=%d d=%d", md->m, md->d);
        return ATTN_EINVAL;
    }
    if (md->n_items < 0 || (md->n_items > 0 && !md->item_ids)) {
        S_WHY("n_items=%lld without item_ids", (long long)md->n_items);
        return ATTN_EINVAL;
    }
    if (md->n_items == 0 && (md->item_bias || md->residual)) {
        S_WHY("per-item arrays present but n_items is 0");
        return ATTN_EINVAL;
    }
    if (md->sa_len < 0 || md->sa_len > ATTN_SA_MAX) {
        S_WHY("sa_len=%d must be in 0..%d", md->sa_len, ATTN_SA_MAX);
        return ATTN_EINVAL;
    }
    if ((md->sa_len > 0 && (!md->sa_q || !md->sa_k || !md->sa_uk || !md->sa_uv || !md->sa_pos)) ||
        (md->sa_len == 0 && (md->sa_q || md->sa_k || md->sa_uk || md->sa_uv || md->sa_pos))) {
        S_WHY("self-attention block: sa_len=%d but its arrays are %s", md->sa_len,
              md->sa_len > 0 ? "missing" : "present");
        return ATTN_EINVAL;
    }
    const int has_ffn = md->ffn_w1 || md->ffn_b1 || md->ffn_w2 || md->ffn_b2;
    if (md->ffn < 0 || (md->ffn > 0 && s_ffn_bad(md, md->ffn))) {
        S_WHY("ffn=%d: %s", md->ffn, md->ffn < 0 ? "must be >= 0" : s_ffn_bad(md, md->ffn));
        return ATTN_EINVAL;
    }
    if ((md->ffn > 0 && !(md->ffn_w1 && md->ffn_b1 && md->ffn_w2 && md->ffn_b2)) ||
        (md->ffn == 0 && has_ffn)) {
        S_WHY("feed-forward layer: ffn=%d but its arrays are %s", md->ffn,
              md->ffn > 0 ? "missing" : "present");
        return ATTN_EINVAL;
    }
    size_t dm = (size_t)md->d * (size_t)md->m, ni = (size_t)md->n_items;
    const size_t fw = (size_t)2 * md->m * (size_t)md->ffn;
    struct { const char *name; const float *x; size_t n; } arr[] = {
        {"wq", md->wq, dm}, {"wk", md->wk, dm}, {"wv", md->wv, dm}, {"wo", md->wo, dm},
        {"pos_bias", md->pos_bias, (size_t)md->l_max},
        {"item_bias", md->item_bias, ni}, {"residual", md->residual, ni * (size_t)md->d},
        {"sa_q", md->sa_q, dm}, {"sa_k", md->sa_k, dm}, {"sa_uk", md->sa_uk, dm},
        {"sa_uv", md->sa_uv, dm}, {"sa_pos", md->sa_pos, (size_t)md->sa_len},
        {"ffn_w1", md->ffn_w1, fw}, {"ffn_b1", md->ffn_b1, (size_t)md->ffn},
        {"ffn_w2", md->ffn_w2, fw}, {"ffn_b2", md->ffn_b2, (size_t)2 * md->m},
    };
    for (size_t a = 0; a < sizeof arr / sizeof arr[0]; a++) {
        long long bad = arr[a].x ? s_first_bad(arr[a].x, arr[a].n) : -1;
        if (bad >= 0) {
            S_WHY("%s[%lld] is not finite", arr[a].name, bad);
            return ATTN_EINVAL;
        }
    }
    for (int64_t i = 1; i < md->n_items; i++)
        if (md->item_ids[i] <= md->item_ids[i - 1]) {
            S_WHY("item_ids not strictly ascending at index %lld (%lld after %lld)",
                  (long long)i, (long long)md->item_ids[i], (long long)md->item_ids[i - 1]);
            return ATTN_EINVAL;
        }
    return ATTN_OK;
}

int64_t attn_model_item_index(const attn_model *md, int64_t item_id)
{
    if (!md || !md->item_ids)
        return -1;
    int64_t lo = 0, hi = md->n_items;   /* search [lo, hi) */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (md->item_ids[mid] < item_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < md->n_items && md->item_ids[lo] == item_id ? lo : -1;
}

size_t attn_model_bytes(const attn_model *md)
{
    if (!md)
        return 0;
    size_t dm = (size_t)md->d * (size_t)md->m, ni = (size_t)md->n_items;
    size_t b = sizeof *md;
    b += (md->wq ? dm : 0) * sizeof(float) + (md->wk ? dm : 0) * sizeof(float);
    b += (md->wv ? dm : 0) * sizeof(float) + (md->wo ? dm : 0) * sizeof(float);
    b += md->pos_bias ? (size_t)md->l_max * sizeof(float) : 0;
    b += md->item_ids ? ni * sizeof(int64_t) : 0;
    b += md->item_bias ? ni * sizeof(float) : 0;
    b += md->residual ? ni * (size_t)md->d * sizeof(float) : 0;
    b += md->sa_len ? (4 * dm + (size_t)md->sa_len) * sizeof(float) : 0;
    b += md->ffn ? ((size_t)4 * md->m * md->ffn + md->ffn + 2 * (size_t)md->m) * sizeof(float) : 0;
    return b;
}
