/* train_opt.c -- AdamW (Loshchilov & Hutter 2019) over the model's arrays.
 *
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
#define S_ARR 12

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

double attn_tr_grad_norm(const attn_model *grad)
{
    s_arr g[S_ARR];
    int n = s_arrays(grad, g);
    double q = 0.0;
    for (int k = 0; k < n; k++)
        if (g[k].p)
            for (size_t i = 0; i < g[k].n; i++)
                q += (double)g[k].p[i] * g[k].p[i];
    return sqrt(q);
}

void attn_tr_adam_step(attn_tr_adam *a, attn_model *md, const attn_model *grad,
                       double gscale, double lr, double beta1, double beta2, double wd)
{
    s_arr p[S_ARR], g[S_ARR], m1[S_ARR], m2[S_ARR];
    int n = s_arrays(md, p);
    s_arrays(grad, g);
    s_arrays(a->m1, m1);
    s_arrays(a->m2, m2);
    a->t++;
    const double c1 = 1.0 - pow(beta1, (double)a->t), c2 = 1.0 - pow(beta2, (double)a->t);
    const float b1 = (float)beta1, b2 = (float)beta2, gs = (float)gscale;
    const float step = (float)(lr / c1), rc2 = (float)(1.0 / sqrt(c2)), eps = 1e-8f;
    for (int k = 0; k < n; k++) {
        if (!p[k].p || !g[k].p)
            continue;
        const float shrink = p[k].decay ? (float)(1.0 - lr * wd) : 1.0f;
        float *w = p[k].p, *u = m1[k].p, *v = m2[k].p;
        const float *gr = g[k].p;
        for (size_t i = 0; i < p[k].n; i++) {
            const float gi = gr[i] * gs;
            u[i] = b1 * u[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            w[i] = w[i] * shrink - step * u[i] / (sqrtf(v[i]) * rc2 + eps);
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
