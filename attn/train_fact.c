/* train_fact.c -- a chunk's softmaxes as products instead of exponentials.
 *
 * Every example e of a chunk attends over its own window of the chunk's
 * event rows p, candidate by candidate, with logits scale Z[p][c] +
 * bias_e[p].  The bias depends on the example (positions shift by one per
 * example), Z does not.  So the exponential factors:
 *
 *   exp(scale Z[p][c] + bias_e[p] - const) = E[p][c] beta[e][p]
 *   E[p][c]    = exp(scale Z[p][c] - mx_c)           (once per chunk)
 *   beta[e][p] = exp(bias_e[p] - max_p bias_e[p])    (0 outside the window,
 *                                                     and for dropped events)
 *
 * and every example's softmax and its gradient are products of small
 * matrices (ES = E o S, g the loss gradient of each score):
 *
 *   den = beta E,  num = beta ES,  sc = num / den         (forward)
 *   G = g / den,  Hm = G o sc                              (backward)
 *   A1 = betaᵀ G,  A2 = betaᵀ Hm
 *   dS = E o A1,   dZ = scale (ES o A1 - E o A2)
 *   dbias_e[p] = beta[e][p] ((G ESᵀ)[e][p] - (Hm Eᵀ)[e][p])
 *
 * (a_ep = beta E / den; dS = sum_e g a, dz = g a (S - sc)).  That is P x C
 * exponentials per head instead of examples x window x C, and the rest runs
 * in the product kernels.  beta is banded -- an example's window is l_max
 * rows of the chunk's chunk + l_max - 1 -- so the products go over blocks
 * of FX_EB examples and only the rows their windows cover.
 *
 * One catch: mx_c is the largest logit of candidate c over the whole chunk,
 * not over each window, so a window whose logits are all far below it
 * (beyond float range, ~87) would underflow to den = 0.  The forward pass
 * checks every denominator and gives the chunk back to the exact
 * per-example path (train_chunk.c) when one is that small; it is not met
 * in practice, and the tests force both paths.
 */
#include "attn/train_ws.h"

#include <math.h>
#include <string.h>

#include "attn/attn.h"

#define FX_EB 32            /* examples per band block: the products' vector width */
#define FX_TINY 1e-30f      /* smallest denominator trusted */

static int s_exact;

void attn_tr_force_exact(int on)
{
    s_exact = on;
}

/* Rows [*r0, *r1) the windows of examples [e0, e1) cover. */
static void s_band(const attn_tr_ws *ws, int e0, int e1, int *r0, int *r1)
{
    *r0 = ws->cb[e0];
    *r1 = 0;
    for (int e = e0; e < e1; e++) {
        if (ws->cb[e] < *r0)
            *r0 = ws->cb[e];
        if (ws->cb[e] + ws->lw[e] > *r1)
            *r1 = ws->cb[e] + ws->lw[e];
    }
}

static void s_beta(attn_tr_ws *ws, const attn_tr_cv *c)
{
    const size_t P = (size_t)ws->pcap;
    for (int e = 0; e < c->nex; e++) {
        const float *bias = ws->bias + (size_t)e * ws->l8;
        float *b = ws->beta + (size_t)e * P;
        float mx = ATTN_TR_NEG;
        for (int j = 0; j < ws->lw[e]; j++)
            mx = bias[j] > mx ? bias[j] : mx;
        memset(b, 0, (size_t)c->P * sizeof *b);
        for (int j = 0; j < ws->lw[e]; j++)
            b[ws->cb[e] + j] = expf(bias[j] - mx);   /* a dropped event: exactly 0 */
    }
}

int attn_tr_fact_forward(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c)
{
    if (s_exact)
        return 0;
    const int H = net->heads;
    const size_t C = c->C, P = (size_t)ws->pcap, HC = (size_t)H * C;
    s_beta(ws, c);
    for (int h = 0; h < H; h++) {
        float *E = ws->dZ + h * c->plane, *ES = ws->dS + h * c->plane;
        ws->k->fx_exp(ws->Z + h * c->plane, ws->S + h * c->plane, C, c->P, c->Cn,
                      net->md->scale, ws->MX + (size_t)h * C, E, ES);
        for (int e0 = 0; e0 < c->nex; e0 += FX_EB) {
            const int e1 = e0 + FX_EB < c->nex ? e0 + FX_EB : c->nex;
            int r0, r1;
            s_band(ws, e0, e1, &r0, &r1);
            const float *b = ws->beta + (size_t)e0 * P + r0;
            ws->k->mm_nn(e1 - e0, c->Cn, r1 - r0, b, P, E + (size_t)r0 * C, C,
                         ws->INV + ((size_t)e0 * H + h) * C, HC, 0);
            ws->k->mm_nn(e1 - e0, c->Cn, r1 - r0, b, P, ES + (size_t)r0 * C, C,
                         ws->SC + ((size_t)e0 * H + h) * C, HC, 0);
        }
    }
    for (int e = 0; e < c->nex; e++)
        for (int h = 0; h < H; h++) {
            const float *den = ws->INV + ((size_t)e * H + h) * C;
            float *sc = ws->SC + ((size_t)e * H + h) * C;
            for (int col = 0; col < c->Cn; col++) {
                if (!(den[col] >= FX_TINY))
                    return 0;
                sc[col] /= den[col];
            }
        }
    return 1;
}

/* G = g / den and Hm = G sc for head h, as rows and transposed. */
static void s_g_h(attn_tr_ws *ws, const attn_tr_cv *c, int h, int H)
{
    const size_t C = c->C, ch = (size_t)ws->chunk;
    for (int e = 0; e < c->nex; e++) {
        const float *g = ws->sg + (size_t)e * C;
        const float *den = ws->INV + ((size_t)e * H + h) * C;
        const float *sc = ws->SC + ((size_t)e * H + h) * C;
        float *gp = ws->gp + (size_t)e * C, *hp = ws->hp + (size_t)e * C;
        for (int col = 0; col < c->Cn; col++) {
            gp[col] = g[col] / den[col];
            hp[col] = gp[col] * sc[col];
        }
    }
    /* Transposed in tiles of 16 x 16, so that neither side strides far. */
    for (int c0 = 0; c0 < c->Cn; c0 += 16)
        for (int e0 = 0; e0 < c->nex; e0 += 16)
            for (int col = c0; col < c0 + 16 && col < c->Cn; col++)
                for (int e = e0; e < e0 + 16 && e < c->nex; e++) {
                    ws->gpt[(size_t)col * ch + (size_t)e] = ws->gp[(size_t)e * C + (size_t)col];
                    ws->hpt[(size_t)col * ch + (size_t)e] = ws->hp[(size_t)e * C + (size_t)col];
                }
}

void attn_tr_fact_backward(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c)
{
    const int H = net->heads;
    const size_t C = c->C, P = (size_t)ws->pcap, ch = (size_t)ws->chunk;
    for (int h = 0; h < H; h++) {
        float *E = ws->dZ + h * c->plane, *ES = ws->dS + h * c->plane;
        float *A1 = ws->Z + h * c->plane, *A2 = ws->S + h * c->plane;   /* Z, S are spent */
        s_g_h(ws, c, h, H);
        for (int p = 0; p < c->P; p++) {
            memset(A1 + (size_t)p * C, 0, (size_t)c->Cn * sizeof(float));
            memset(A2 + (size_t)p * C, 0, (size_t)c->Cn * sizeof(float));
        }
        for (int e0 = 0; e0 < c->nex; e0 += FX_EB) {
            const int e1 = e0 + FX_EB < c->nex ? e0 + FX_EB : c->nex, nb = e1 - e0;
            int r0, r1;
            s_band(ws, e0, e1, &r0, &r1);
            const float *b = ws->beta + (size_t)e0 * P + r0;
            ws->k->mm_tn(nb, r1 - r0, c->Cn, b, P, ws->gp + (size_t)e0 * C, C,
                         A1 + (size_t)r0 * C, C, 1);
            ws->k->mm_tn(nb, r1 - r0, c->Cn, b, P, ws->hp + (size_t)e0 * C, C,
                         A2 + (size_t)r0 * C, C, 1);
            ws->k->mm_nn(r1 - r0, nb, c->Cn, ES + (size_t)r0 * C, C, ws->gpt + e0, ch,
                         ws->d1t + (size_t)r0 * ch + e0, ch, 0);
            ws->k->mm_nn(r1 - r0, nb, c->Cn, E + (size_t)r0 * C, C, ws->hpt + e0, ch,
                         ws->d2t + (size_t)r0 * ch + e0, ch, 0);
            for (int e = e0; e < e1; e++) {
                float *dbw = ws->dbw + (size_t)e * ws->l8;
                const float *be = ws->beta + (size_t)e * P;
                for (int j = 0; j < ws->lw[e]; j++) {
                    const size_t p = (size_t)(ws->cb[e] + j);
                    dbw[j] += be[p] * (ws->d1t[p * ch + (size_t)e] - ws->d2t[p * ch + (size_t)e]);
                }
            }
        }
        ws->k->fx_grad(E, ES, A1, A2, C, c->P, c->Cn, net->md->scale);
    }
}
