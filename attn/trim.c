/* trim.c -- see trim.h. */
#include "attn/trim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

/* Copy the columns of a d x m matrix except [lo, lo + w) into d x (m - w). */
static void s_drop_cols(const float *src, int d, int m, int lo, int w, float *dst)
{
    int m2 = m - w;
    for (int r = 0; r < d; r++) {
        const float *s = src + (size_t)r * m;
        float *o = dst + (size_t)r * m2;
        memcpy(o, s, (size_t)lo * sizeof *o);
        memcpy(o + lo, s + lo + w, (size_t)(m - lo - w) * sizeof *o);
    }
}

/* Source index of entry i of a [k | v] vector (2 m2 long) once the head's
 * columns [lo, lo + w) are gone from both halves. */
static int s_kv_src(int i, int m2, int lo, int w)
{
    const int half = i / m2, c = i % m2;
    return half * (m2 + w) + (c < lo ? c : c + w);
}

/* The feed-forward layer without the head's [k | v] entries: its rows of
 * W1, its columns of W2 and its entries of b2, into t's (larger) arrays. */
static void s_ffn_drop_head(const attn_model *md, attn_model *t, int lo, int w)
{
    const int f = md->ffn, m2 = md->m - w, n2 = 2 * m2, n = 2 * md->m;
    for (int i = 0; i < n2; i++) {
        const int src = s_kv_src(i, m2, lo, w);
        memcpy(t->ffn_w1 + (size_t)i * f, md->ffn_w1 + (size_t)src * f, (size_t)f * sizeof(float));
        t->ffn_b2[i] = md->ffn_b2[src];
        for (int c = 0; c < f; c++)
            t->ffn_w2[(size_t)c * n2 + i] = md->ffn_w2[(size_t)c * n + src];
    }
}

attn_model *attn_trim_head(const attn_model *md, int h, int *status)
{
    *status = ATTN_EINVAL;
    if (!md || md->heads < 2 || h < 0 || h >= md->heads || !md->wq || !md->wk || !md->wv ||
        !md->wo)
        return NULL;
    int w = md->m / md->heads, m2 = md->m - w, lo = h * w;
    attn_model *t = attn_model_clone(md);
    *status = ATTN_ENOMEM;
    if (!t)
        return NULL;
    float **cols[] = {&t->wq, &t->wk, &t->wv, &t->sa_q, &t->sa_k, &t->sa_uk, &t->sa_uv};
    const float *from[] = {md->wq, md->wk, md->wv, md->sa_q, md->sa_k, md->sa_uk, md->sa_uv};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        if (!from[i])
            continue;
        s_drop_cols(from[i], md->d, md->m, lo, w, *cols[i]);
    }
    /* W_O is m x d: the head's rows go. */
    memmove(t->wo + (size_t)lo * md->d, md->wo + (size_t)(lo + w) * md->d,
            (size_t)(md->m - lo - w) * md->d * sizeof *t->wo);
    memcpy(t->wo, md->wo, (size_t)lo * md->d * sizeof *t->wo);
    /* The block's logits are a dot product over all m columns scaled by
     * 1/sqrt(m): keep that scale for the columns left. */
    if (t->sa_q) {
        float keep = sqrtf((float)m2 / (float)md->m);
        for (size_t i = 0; i < (size_t)md->d * m2; i++)
            t->sa_q[i] *= keep;
    }
    if (md->ffn)
        s_ffn_drop_head(md, t, lo, w);
    t->m = m2;
    t->heads = md->heads - 1;
    t->version = 0;
    *status = attn_model_check(t, NULL, 0);
    if (*status != ATTN_OK)
        attn_model_free(&t);
    return t;
}

/* Drop t's feed-forward layer. */
static void s_drop_ffn(attn_model *t)
{
    free(t->ffn_w1);
    free(t->ffn_b1);
    free(t->ffn_w2);
    free(t->ffn_b2);
    t->ffn_w1 = t->ffn_b1 = t->ffn_w2 = t->ffn_b2 = NULL;
    t->ffn = 0;
}

attn_model *attn_trim_ffn(const attn_model *md, int *status)
{
    *status = ATTN_EINVAL;
    if (!md || md->ffn == 0)
        return NULL;
    attn_model *t = attn_model_clone(md);
    *status = ATTN_ENOMEM;
    if (!t)
        return NULL;
    s_drop_ffn(t);
    t->version = 0;
    *status = ATTN_OK;
    return t;
}

attn_model *attn_trim_block(const attn_model *md, int *status)
{
    *status = ATTN_EINVAL;
    if (!md || md->sa_len == 0)
        return NULL;
    attn_model *t = attn_model_clone(md);
    *status = ATTN_ENOMEM;
    if (!t)
        return NULL;
    free(t->sa_q);
    free(t->sa_k);
    free(t->sa_uk);
    free(t->sa_uv);
    free(t->sa_pos);
    t->sa_q = t->sa_k = t->sa_uk = t->sa_uv = t->sa_pos = NULL;
    t->sa_len = 0;
    s_drop_ffn(t);   /* it is the block's */
    t->version = 0;
    *status = ATTN_OK;
    return t;
}
