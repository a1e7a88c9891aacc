/* train_opt.c -- AdamW (Loshchilov & Hutter 2019) over the model's arrays.
 *
 * Per-item arrays (residuals, item biases) are updated on the step's
 * working rows only, "lazily": an item's moments and weight decay move in
 * the steps that touch it.  With full softmax every item is a working row
 * of every step, and this is plain AdamW.
 * The moments live in two more attn_model structs of the model's shapes,
 * so "every parameter" is one list walked the same way for the gradient
 * norm, the moments and the update.  Weight decay is decoupled (applied to
 * the weights, not added to the gradient) and only on the matrices and the
 * residuals: decaying a residual pulls the item back to its text
 * embedding, which is the prior we want; biases are left free.
 */
#include "attn/train_int.h"

#include <math.h>
#include <stdlib.h>

#include "attn/attn.h"

typedef struct s_arr {
    float *p;
    size_t n;
    int decay;
} s_arr;

/* The arrays of md in a fixed order; absent ones have p == NULL. */
#define S_ARR 16

static int s_arrays(const attn_model *md, s_arr out[S_ARR])
{
    const size_t dm = (size_t)md->d * md->m, ni = (size_t)md->n_items;
    out[0] = (s_arr){md->wq, dm, 1};
    out[1] = (s_arr){md->wk, dm, 1};
    out[2] = (s_arr){md->wv, dm, 1};
    out[3] = (s_arr){md->wo, dm, 1};
    out[4] = (s_arr){md->pos_bias, (size_t)md->l_max, 0};
    out[5] = (s_arr){md->item_bias, ni, 0};
    out[6] = (s_arr){md->residual, ni * (size_t)md->d, 1};
    out[7] = (s_arr){md->sa_q, md->sa_len ? dm : 0, 1};
    out[8] = (s_arr){md->sa_k, md->sa_len ? dm : 0, 1};
    out[9] = (s_arr){md->sa_uk, md->sa_len ? dm : 0, 1};
    out[10] = (s_arr){md->sa_uv, md->sa_len ? dm : 0, 1};
    out[11] = (s_arr){md->sa_pos, (size_t)md->sa_len, 0};
    const size_t fw = (size_t)2 * md->m * (size_t)md->ffn;
    out[12] = (s_arr){md->ffn_w1, fw, 1};
    out[13] = (s_arr){md->ffn_b1, (size_t)md->ffn, 0};
    out[14] = (s_arr){md->ffn_w2, fw, 1};
    out[15] = (s_arr){md->ffn_b2, md->ffn ? (size_t)2 * md->m : 0, 0};
    return S_ARR;
}

int attn_tr_adam_init(attn_tr_adam *a, const attn_model *md)
{
    a->t = 0;
    a->m1 = attn_model_new(md->d, md->m, md->heads, md->l_max, md->n_items, md->residual != NULL);
    a->m2 = attn_model_new(md->d, md->m, md->heads, md->l_max, md->n_items, md->residual != NULL);
    if (a->m1 && a->m2 && md->sa_len &&
        (attn_model_add_sa(a->m1, md->sa_len) || attn_model_add_sa(a->m2, md->sa_len)))
        attn_model_free(&a->m1);
    if (a->m1 && a->m2 && md->ffn &&
        (attn_model_add_ffn(a->m1, md->ffn) || attn_model_add_ffn(a->m2, md->ffn)))
        attn_model_free(&a->m1);
    if (!a->m1 || !a->m2) {
        attn_tr_adam_free(a);
        return ATTN_ENOMEM;
    }
    return ATTN_OK;
}

void attn_tr_adam_free(attn_tr_adam *a)
{
    attn_model_free(&a->m1);
    attn_model_free(&a->m2);
}

double attn_tr_grad_norm(const attn_tr_grad *g, int64_t n_ws, int d)
{
    s_arr a[S_ARR];
    int n = s_arrays(g->dense, a);
    double q = 0.0;
    for (int k = 0; k < n; k++)
        if (a[k].p)
            for (size_t i = 0; i < a[k].n; i++)
                q += (double)a[k].p[i] * a[k].p[i];
    for (int64_t r = 0; r < n_ws; r++) {
        q += (double)g->dbias[r] * g->dbias[r];
        for (int i = 0; g->dres && i < d; i++)
            q += (double)g->dres[(size_t)r * d + i] * g->dres[(size_t)r * d + i];
    }
    return sqrt(q);
}

/* The update of n parameters w with gradients gr and moments u, v. */
typedef struct s_upd {
    float b1, b2, gs, step, rc2, shrink;
} s_upd;

static void s_adam(const s_upd *c, float *w, float *u, float *v, const float *gr, size_t n)
{
    const float eps = 1e-8f;
    for (size_t i = 0; i < n; i++) {
        const float gi = gr[i] * c->gs;
        u[i] = c->b1 * u[i] + (1.0f - c->b1) * gi;
        v[i] = c->b2 * v[i] + (1.0f - c->b2) * gi * gi;
        w[i] = w[i] * c->shrink - c->step * u[i] / (sqrtf(v[i]) * c->rc2 + eps);
    }
}

void attn_tr_adam_step(attn_tr_adam *a, attn_model *md, const attn_tr_grad *g,
                       const attn_tr_set *set, const attn_tr_hyper *h)
{
    s_arr p[S_ARR], gr[S_ARR], m1[S_ARR], m2[S_ARR];
    int n = s_arrays(md, p);
    s_arrays(g->dense, gr);
    s_arrays(a->m1, m1);
    s_arrays(a->m2, m2);
    a->t++;
    const double c1 = 1.0 - pow(h->beta1, (double)a->t), c2 = 1.0 - pow(h->beta2, (double)a->t);
    s_upd c = {(float)h->beta1, (float)h->beta2, (float)h->gscale, (float)(h->lr / c1),
               (float)(1.0 / sqrt(c2)), 1.0f};
    const float shrink = (float)(1.0 - h->lr * h->wd);
    /* The dense arrays: g->dense has no per-item arrays, so those are skipped. */
    for (int k = 0; k < n; k++) {
        if (!p[k].p || !gr[k].p)
            continue;
        c.shrink = p[k].decay ? shrink : 1.0f;
        s_adam(&c, p[k].p, m1[k].p, m2[k].p, gr[k].p, p[k].n);
    }
    /* The per-item arrays, on the working rows. */
    const size_t d = (size_t)md->d;
    for (int64_t r = 0; r < set->n_ws; r++) {
        const size_t mi = set->ws2mi[r];
        if (md->residual) {
            c.shrink = shrink;
            s_adam(&c, md->residual + mi * d, a->m1->residual + mi * d,
                   a->m2->residual + mi * d, g->dres + (size_t)r * d, d);
        }
        if (h->item_bias && md->item_bias) {
            c.shrink = 1.0f;
            s_adam(&c, md->item_bias + mi, a->m1->item_bias + mi, a->m2->item_bias + mi,
                   g->dbias + r, 1);
        }
    }
}

void attn_tr_ema(attn_model *avg, const attn_model *md, double decay)
{
    s_arr a[S_ARR], p[S_ARR];
    int n = s_arrays(avg, a);
    s_arrays(md, p);
    const float k = (float)decay, k1 = (float)(1.0 - decay);
    for (int i = 0; i < n; i++)
        if (a[i].p && p[i].p)
            for (size_t j = 0; j < a[i].n; j++)
                a[i].p[j] = k * a[i].p[j] + k1 * p[i].p[j];
}

double attn_tr_rate(const attn_train_opts *o, double warm, double total, double at,
                    double elapsed, double t_warm)
{
    if (warm > 0.0 && at < warm)
        return o->lr * at / warm;
    if (!o->cosine)
        return o->lr;
    /* Without a budget and with warm-up at least the run: constant, as before. */
    double f = total > warm ? (at - warm) / (total - warm) : 0.0;
    if (o->time_budget > 0.0 && !o->refit) {
        /* The budget, not the epochs, usually ends a long run: decaying
         * over the planned epochs alone would leave the rate near its peak. */
        const double span = o->time_budget - t_warm;
        f = fmax(f, span > 0.0 ? (elapsed - t_warm) / span : 1.0);
    }
    return o->lr * 0.5 * (1.0 + cos(M_PI * fmin(1.0, fmax(0.0, f))));
}
