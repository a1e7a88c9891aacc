/* train_chunk.c -- forward and backward of one chunk of examples.
 *
 * A chunk is up to `chunk` consecutive targets t0..t1-1 of one user.  Their
 * histories are windows of the same sequence, so the expensive products are
 * done once per chunk, over the chunk's event rows (c0..t1-2) and the
 * step's candidate columns C (the first rows of the working set, shared by
 * every chunk of the step):
 *
 *     Z_h = K_X,h Q_C,hᵀ     S_h = V_X,h G_C,hᵀ           (P x |C|, per head)
 *
 * stored event-major (a row per event, a column per candidate) so that the
 * softmax loops can vectorise across candidates (train_kern.h).  Every
 * example then reads its window of rows: z = scale Z + bias, a = softmax
 * over the window, score = sum_h a . S + item bias.  The backward pass is
 * the same in reverse: each example adds its dZ, dS into the chunk's
 * matrices (windows overlap), and four more products per head turn them
 * into dQ, dG rows (the candidates', straight into dT) and dK, dV rows.
 *
 * The steps:
 *   1. the events' [k' | v'] rows (through the self-attention block and its
 *      feed-forward layer, if any)
 *   2. the products Z and S per head
 *   3. each example's window: position bias, event weights, dropout
 *   4. each example's candidate weights (masks, sampled weights) and target
 *   5. forward: every example's softmaxes as products (train_fact.c), or --
 *      when that cannot be trusted, and in the tests -- exactly, in blocks
 *      of S_BLOCK candidate columns that stay in L2 while every example of
 *      the chunk visits them (keeping each softmax's max and normaliser);
 *      then each example's loss softmax
 *   6. backward the same way (the exact path recomputes the attention from
 *      the kept max and normaliser: exp is cheaper than the memory to keep
 *      it), then the products back to dQ, dG, dK, dV and the event rows'
 *      gradients.
 *
 * Derivatives, for one example, candidate c and head h (s_j = S[c][j],
 * sc = sum_j a_j s_j, g = dLoss/dscore_c):
 *     dS[c][j] = g a_j
 *     dz_j     = g a_j (s_j - sc)        (softmax Jacobian)
 *     dZ[c][j] = scale dz_j,   dpos[position of j] += dz_j
 * and for the loss softmax with candidate weights n_c and target y:
 *     loss = log sum_c n_c exp(score_c) - score_y,  g_c = n_c p_c - [c = y]
 * (n_c: 1, 0 for a masked item, the sampled weight for a sampled negative,
 * or a repeat count for explicit lists).
 */
#include "attn/train_ws.h"

#include <math.h>
#include <string.h>

#include "attn/attn.h"

#define S_BLOCK 64   /* candidate columns per block: 4 matrices x 2 heads x ~113
                        events x 64 x 4 B = 231 KiB, inside L2 */

/* Working row of the user's event a. */
static inline size_t s_erow(const attn_tr_ws *ws, const attn_tr_cv *c, int a)
{
    return ws->erow[(uint32_t)a - c->lo];
}

/* Step 1 with a self-attention block (docs/MODEL.md §2.1), on the chunk's
 * event rows: event a (row p = a - c0) attends to events a - i, i < its
 * window (reaching back before c0, and before the example's own window, to
 * the user's first event: an event's context does not depend on which
 * example reads it, so the rows are shared by the chunk), weights
 * sa_a[p][i]; its [k' | v'] row is [k_a | v_a] + sum_i w_i [uk_j | uv_j].
 * Every vector here is a part of T (a linear function of E), so the way
 * back is gradients into dT rows, and attn_tr_backprop does the rest. */
static void s_sa_fwd(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c)
{
    const int m = net->m, tw = net->tw, Ls = net->sa_len;
    const float sc = 1.0f / sqrtf((float)m);
    const float *pos = net->md->sa_pos;
    for (int p = 0; p < c->P; p++) {
        const int a = c->c0 + p, nw = a + 1 < Ls ? a + 1 : Ls;
        const float *Ta = net->T + s_erow(ws, c, a) * tw;
        float *w = ws->sa_a + (size_t)p * Ls;
        float mx = -INFINITY;
        for (int i = 0; i < nw; i++) {
            const float *Tj = net->T + s_erow(ws, c, a - i) * tw;
            float z = 0.0f;
            for (int t = 0; t < m; t++)
                z += Ta[ATTN_TR_SQ * m + t] * Tj[ATTN_TR_SK * m + t];
            w[i] = sc * z + pos[i];
            if (w[i] > mx)
                mx = w[i];
        }
        float sum = 0.0f;
        for (int i = 0; i < nw; i++)
            sum += (w[i] = expf(w[i] - mx));
        for (int i = 0; i < nw; i++)
            w[i] /= sum;
        float *kv = ws->KV + (size_t)p * 2 * m;
        memcpy(kv, Ta + ATTN_TR_K * m, (size_t)2 * m * sizeof(float));
        for (int i = 0; i < nw; i++) {
            const float *Tj = net->T + s_erow(ws, c, a - i) * tw;
            for (int t = 0; t < 2 * m; t++)
                kv[t] += w[i] * Tj[ATTN_TR_UK * m + t];
        }
    }
}

/* Backward of s_sa_fwd from dKV into dT and dsa_pos. */
static void s_sa_bwd(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c)
{
    const int m = net->m, tw = net->tw, Ls = net->sa_len;
    const float sc = 1.0f / sqrtf((float)m);
    for (int p = 0; p < c->P; p++) {
        const int a = c->c0 + p, nw = a + 1 < Ls ? a + 1 : Ls;
        const size_t ra = s_erow(ws, c, a) * tw;
        const float *Ta = net->T + ra;
        float *dTa = ws->dT + ra;
        const float *dkv = ws->dKV + (size_t)p * 2 * m;
        const float *w = ws->sa_a + (size_t)p * Ls;
        float *da = ws->sa_x;
        for (int t = 0; t < 2 * m; t++)
            dTa[ATTN_TR_K * m + t] += dkv[t];
        float gbar = 0.0f;
        for (int i = 0; i < nw; i++) {
            const size_t rj = s_erow(ws, c, a - i) * tw;
            const float *Tj = net->T + rj;
            float *dTj = ws->dT + rj;
            float g = 0.0f;
            for (int t = 0; t < 2 * m; t++) {
                g += dkv[t] * Tj[ATTN_TR_UK * m + t];
                dTj[ATTN_TR_UK * m + t] += w[i] * dkv[t];
            }
            da[i] = g;
            gbar += w[i] * g;
        }
        for (int i = 0; i < nw; i++) {
            const size_t rj = s_erow(ws, c, a - i) * tw;
            const float *Tj = net->T + rj;
            float *dTj = ws->dT + rj;
            const float dl = w[i] * (da[i] - gbar);
            ws->dsa_pos[i] += dl;
            for (int t = 0; t < m; t++) {
                dTa[ATTN_TR_SQ * m + t] += sc * dl * Tj[ATTN_TR_SK * m + t];
                dTj[ATTN_TR_SK * m + t] += sc * dl * Ta[ATTN_TR_SQ * m + t];
            }
        }
    }
}

/* Step 1b, with a feed-forward layer (docs/MODEL.md §2.2): each row x of
 * KV becomes x + relu(x W1 + b1) W2 + b2; the rows before (KV0) and the
 * hidden layer after its relu (FH) are kept for the way back.  In training
 * each hidden unit is dropped with probability q and the rest scaled by
 * 1 / (1 - q), drawn per chunk, so that FH > 0 marks exactly the units a
 * gradient passes through. */
static void s_ffn_fwd(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c,
                      const attn_tr_run *run)
{
    const attn_model *md = net->md;
    const int m2 = 2 * net->m, f = net->ffn, P = c->P;
    const double q = run->ffn_dropout;
    const float keep = q > 0.0 ? (float)(1.0 / (1.0 - q)) : 1.0f;
    attn_eval_rng rng = attn_eval_rng_for(run->seed ^ (run->epoch * 0x9E3779B97F4A7C15ull),
                                          c->ch->u, ((uint64_t)c->ch->t0 << 1) | 1);
    memcpy(ws->KV0, ws->KV, (size_t)P * m2 * sizeof(float));
    ws->k->mm_nn(P, f, m2, ws->KV0, (size_t)m2, md->ffn_w1, (size_t)f, ws->FH, (size_t)f, 0);
    for (int p = 0; p < P; p++) {
        float *h = ws->FH + (size_t)p * f, *kv = ws->KV + (size_t)p * m2;
        for (int k = 0; k < f; k++) {
            const float x = h[k] + md->ffn_b1[k];
            h[k] = x > 0.0f ? x : 0.0f;
        }
        for (int k = 0; q > 0.0 && k < f; k++)
            h[k] = attn_eval_rng_unit(&rng) < q ? 0.0f : h[k] * keep;
        for (int t = 0; t < m2; t++)
            kv[t] += md->ffn_b2[t];
    }
    ws->k->mm_nn(P, m2, f, ws->FH, (size_t)f, md->ffn_w2, (size_t)m2, ws->KV, (size_t)m2, 1);
}

/* Backward of s_ffn_fwd: the layer's gradients into dffn ([dW1 | db1 |
 * dW2 | db2]), and dKV turned into the gradient of the rows before it. */
static void s_ffn_bwd(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c,
                      const attn_tr_run *run)
{
    const int m2 = 2 * net->m, f = net->ffn, P = c->P;
    const size_t w = (size_t)m2 * f;
    const float keep = run->ffn_dropout > 0.0 ? (float)(1.0 / (1.0 - run->ffn_dropout)) : 1.0f;
    float *dw1 = ws->dffn, *db1 = dw1 + w, *dw2 = db1 + f, *db2 = dw2 + w;
    for (int p = 0; p < P; p++)
        for (int t = 0; t < m2; t++)
            db2[t] += ws->dKV[(size_t)p * m2 + t];
    ws->k->mm_tn(P, f, m2, ws->FH, (size_t)f, ws->dKV, (size_t)m2, dw2, (size_t)m2, 1);
    ws->k->mm_nn(P, f, m2, ws->dKV, (size_t)m2, net->F2T, (size_t)f, ws->dFH, (size_t)f, 0);
    for (int p = 0; p < P; p++) {
        const float *h = ws->FH + (size_t)p * f;
        float *dh = ws->dFH + (size_t)p * f;
        for (int k = 0; k < f; k++) {
            dh[k] = h[k] > 0.0f ? dh[k] * keep : 0.0f;
            db1[k] += dh[k];
        }
    }
    ws->k->mm_tn(P, m2, f, ws->KV0, (size_t)m2, ws->dFH, (size_t)f, dw1, (size_t)f, 1);
    ws->k->mm_nn(P, m2, f, ws->dFH, (size_t)f, net->F1T, (size_t)m2, ws->dKV, (size_t)m2, 1);
}

/* Step 1: the working rows of the span's events, and their [k' | v']. */
static void s_events(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                     const attn_tr_cv *c, const attn_tr_run *run)
{
    const int m2 = 2 * net->m, tw = net->tw;
    for (uint32_t a = c->lo; a + 1 < c->ch->t1; a++)
        ws->erow[a - c->lo] = (uint32_t)net->set->mi2ws[v->row2mi[c->ev[a]]];
    if (net->sa_len) {
        s_sa_fwd(net, ws, c);
        if (net->ffn)
            s_ffn_fwd(net, ws, c, run);
        return;
    }
    for (int p = 0; p < c->P; p++)
        memcpy(ws->KV + (size_t)p * m2, net->T + s_erow(ws, c, c->c0 + p) * tw + ATTN_TR_K * net->m,
               (size_t)m2 * sizeof(float));
}

/* Step 2: Z_h = K_h Q_hᵀ and S_h = V_h G_hᵀ, an event per row and a
 * candidate per column. */
static void s_products(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c)
{
    const int m = net->m, dh = net->dh;
    const size_t m2 = (size_t)2 * m, C = c->C;
    for (int h = 0; h < net->heads; h++) {
        ws->k->mm_nn(c->P, c->Cn, dh, ws->KV + h * dh, m2, net->QT + (size_t)h * dh * net->ldc,
                     (size_t)net->ldc, ws->Z + h * c->plane, C, 0);
        ws->k->mm_nn(c->P, c->Cn, dh, ws->KV + m + h * dh, m2,
                     net->GT + (size_t)h * dh * net->ldc, (size_t)net->ldc,
                     ws->S + h * c->plane, C, 0);
    }
}

/* Step 3: each example's window -- bias by position (newest = position 0 =
 * last row), log event weight, dropout. */
static void s_windows(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c,
                      const attn_tr_run *run)
{
    const int L = net->l_max, L8 = ws->l8;
    for (int e = 0; e < c->nex; e++) {
        const int t = (int)c->ch->t0 + e;
        const int w0 = t > L ? t - L : 0, Lw = t - w0;
        float *bias = ws->bias + (size_t)e * L8;
        uint8_t *drop = ws->drop + (size_t)e * L8;
        ws->cb[e] = w0 - c->c0;
        ws->lw[e] = Lw;
        attn_eval_rng rng = attn_eval_rng_for(run->seed ^ (run->epoch * 0xC2B2AE3D27D4EB4Full),
                                              c->ch->u, (uint64_t)t << 1);
        int kept = 0;
        for (int j = 0; j < Lw; j++) {
            drop[j] = run->dropout > 0.0 && attn_eval_rng_unit(&rng) < run->dropout;
            kept += !drop[j];
            bias[j] = net->md->pos_bias[Lw - 1 - j] + (c->w ? logf(c->w[w0 + j]) : 0.0f);
        }
        if (kept == 0)
            drop[Lw - 1] = 0;   /* always keep the newest event */
        for (int j = 0; j < Lw; j++)
            if (drop[j])
                bias[j] = ATTN_TR_NEG;
        memset(ws->dbw + (size_t)e * L8, 0, (size_t)L8 * sizeof(float));
    }
}

/* Candidate column of catalog row r, or -1 if its item is no candidate. */
static inline int s_col(const attn_tr_net *net, const attn_tr_view *v, uint32_t r)
{
    const int32_t mi = v->row2mi[r];
    const int32_t col = mi >= 0 ? net->set->mi2ws[mi] : -1;
    return col < net->set->n_cand ? col : -1;
}

/* Step 4: each example's candidate weights and target column.  Row 0 is
 * built first -- the sampled weight or 1 everywhere, 0 for the history
 * before t0 (or every training item of the user) -- and each later example
 * copies it and masks its own earlier events; filled from the last example
 * down, so row 0 is read before it is finished. */
static void s_weights(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                      const attn_tr_cv *c, const attn_tr_run *run)
{
    const attn_tr_set *set = net->set;
    const size_t C = c->C;
    float *base = ws->wt;
    memset(base, 0, C * sizeof *base);
    if (run->mode == ATTN_TR_EXPLICIT) {
        for (int e = 0; e < c->nex; e++) {
            float *row = ws->wt + (size_t)e * C;
            memset(row, 0, C * sizeof *row);
            for (int i = 0; i < run->n_cand; i++)
                row[set->mi2ws[run->cand[(size_t)e * run->n_cand + i]]] += 1.0f;
            ws->tgt[e] = (uint32_t)set->mi2ws[run->cand[(size_t)e * run->n_cand]];
        }
        return;
    }
    for (int col = 0; col < c->Nc; col++)
        base[col] = col < set->n_sampled ? set->w_sampled : 1.0f;
    const uint64_t n_masked = run->mask == ATTN_TRAIN_MASK_USER ?
        attn_eval_train_len(v->seqs, c->ch->u) : run->mask == ATTN_TRAIN_MASK_HISTORY ?
        c->ch->t0 : 0;
    for (uint64_t i = 0; i < n_masked; i++) {
        int col = s_col(net, v, c->ev[i]);
        if (col >= 0)
            base[col] = 0.0f;
    }
    for (int e = c->nex - 1; e >= 0; e--) {
        float *row = ws->wt + (size_t)e * C;
        if (e > 0)
            memcpy(row, base, C * sizeof *row);
        for (int i = 0; run->mask == ATTN_TRAIN_MASK_HISTORY && i < e; i++) {
            int col = s_col(net, v, c->ev[c->ch->t0 + (uint32_t)i]);
            if (col >= 0)
                row[col] = 0.0f;
        }
        ws->tgt[e] = (uint32_t)s_col(net, v, c->ev[c->ch->t0 + (uint32_t)e]);
        row[ws->tgt[e]] = 1.0f;
    }
}

/* Example e's score of each weighted column in [c0, c1): its item bias and
 * the heads' parts (ws->SC). */
static void s_sum_heads(const attn_tr_net *net, attn_tr_ws *ws, int e, size_t C, int c0, int c1,
                        const float *ibias)
{
    const int H = net->heads;
    const float *wt = ws->wt + (size_t)e * C;
    float *score = ws->sg + (size_t)e * C;
    for (int col = c0; col < c1; col++) {
        if (wt[col] == 0.0f)
            continue;
        float sc = ibias ? ibias[net->set->ws2mi[col]] : 0.0f;
        for (int h = 0; h < H; h++)
            sc += ws->SC[((size_t)e * H + h) * C + (size_t)col];
        score[col] = sc;
    }
}

/* Pass 1 over the candidate columns [r0, r1): every example's per-head
 * softmax and score of each candidate. */
static void s_scores(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c, int r0, int r1,
                     const float *ibias)
{
    const int H = net->heads, L8 = ws->l8;
    const size_t C = c->C;
    const float scale = net->md->scale;
    for (int e = 0; e < c->nex; e++) {
        const float *bias = ws->bias + (size_t)e * L8;
        const size_t at = (size_t)ws->cb[e] * C + (size_t)r0;
        for (int h = 0; h < H; h++) {
            const size_t eh = ((size_t)e * H + h) * C + (size_t)r0;
            ws->k->sm_fwd(ws->Z + h * c->plane + at, ws->S + h * c->plane + at, C, ws->lw[e],
                          bias, scale, r1 - r0, ws->SC + eh, ws->MX + eh, ws->INV + eh,
                          ws->work);
        }
        s_sum_heads(net, ws, e, C, r0, r1, ibias);
    }
}

/* The loss softmax of example e: its loss (unscaled), and g_c * loss_scale
 * in place of the scores (0 where the candidate is absent); item-bias
 * gradients.  NAN if a score is not finite. */
static double s_loss(attn_tr_ws *ws, const attn_tr_cv *c, int e, float loss_scale, int item_bias)
{
    const size_t C = c->C;
    const float *wt = ws->wt + (size_t)e * C;
    float *sg = ws->sg + (size_t)e * C;
    double mx = -INFINITY;
    for (int col = 0; col < c->Nc; col++)
        if (wt[col] != 0.0f && sg[col] > mx)
            mx = sg[col];
    if (!isfinite(mx))
        return NAN;
    /* One exponential per candidate, kept in place of its score. */
    const uint32_t y = ws->tgt[e];
    const double sy = sg[y];
    double sum = 0.0;
    for (int col = 0; col < (int)C; col++) {
        sg[col] = wt[col] != 0.0f ? wt[col] * expf((float)(sg[col] - mx)) : 0.0f;
        sum += sg[col];
    }
    const double loss = mx + log(sum) - sy;
    const float inv = (float)(loss_scale / sum);
    for (int col = 0; col < (int)C; col++) {
        sg[col] = sg[col] * inv - (col == (int)y ? loss_scale : 0.0f);
        if (item_bias && wt[col] != 0.0f)
            ws->dbias[col] += sg[col];
    }
    return loss;
}

/* Pass 2 over the candidate columns [r0, r1): recompute each attention,
 * go backward into dZ, dS and the bias gradient. */
static void s_backward(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c, int r0, int r1)
{
    const int H = net->heads, L8 = ws->l8;
    const size_t C = c->C, plane = c->plane;
    const float scale = net->md->scale;
    for (int e = 0; e < c->nex; e++) {
        const float *bias = ws->bias + (size_t)e * L8;
        const size_t at = (size_t)ws->cb[e] * C + (size_t)r0;
        const float *g = ws->sg + (size_t)e * C + (size_t)r0;
        for (int h = 0; h < H; h++) {
            const size_t eh = ((size_t)e * H + h) * C + (size_t)r0;
            ws->k->sm_bwd(ws->Z + h * plane + at, ws->S + h * plane + at, C, ws->lw[e], bias,
                          scale, r1 - r0, g, ws->SC + eh, ws->MX + eh, ws->INV + eh,
                          ws->dZ + h * plane + at, ws->dS + h * plane + at,
                          ws->dbw + (size_t)e * L8, ws->work);
        }
    }
}

/* The scores from the factorised softmax's per-head parts. */
static void s_fact_scores(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c,
                          const float *ibias)
{
    for (int e = 0; e < c->nex; e++)
        s_sum_heads(net, ws, e, c->C, 0, c->Nc, ibias);
}

/* Step 5: every example's scores -- factorised (train_fact.c), or exactly
 * in blocks -- then its loss.  *fact says which path ran. */
static int s_forward(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c,
                     const attn_tr_run *run, int *fact)
{
    const float *ibias = run->use_item_bias ? net->md->item_bias : NULL;
    *fact = attn_tr_fact_forward(net, ws, c);
    if (*fact) {
        s_fact_scores(net, ws, c, ibias);
    } else {
        for (int h = 0; h < net->heads; h++)
            for (int p = 0; p < c->P; p++) {
                memset(ws->dZ + h * c->plane + (size_t)p * c->C, 0, (size_t)c->Cn * sizeof(float));
                memset(ws->dS + h * c->plane + (size_t)p * c->C, 0, (size_t)c->Cn * sizeof(float));
            }
        for (int r0 = 0; r0 < c->Cn; r0 += S_BLOCK)
            s_scores(net, ws, c, r0, r0 + S_BLOCK < c->Cn ? r0 + S_BLOCK : c->Cn, ibias);
    }
    for (int e = 0; e < c->nex; e++) {
        double loss = s_loss(ws, c, e, run->loss_scale, ibias != NULL);
        if (!isfinite(loss))
            return ATTN_ERANGE;
        ws->loss += loss * run->loss_scale;
    }
    return ATTN_OK;
}

/* Step 6: backward through the softmaxes, the products and the events. */
static void s_back(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c,
                   const attn_tr_run *run, int fact)
{
    const int m = net->m, dh = net->dh, tw = net->tw, L8 = ws->l8;
    const size_t m2 = (size_t)2 * m, C = c->C;
    if (fact)
        attn_tr_fact_backward(net, ws, c);
    else
        for (int r0 = 0; r0 < c->Cn; r0 += S_BLOCK)
            s_backward(net, ws, c, r0, r0 + S_BLOCK < c->Cn ? r0 + S_BLOCK : c->Cn);
    for (int e = 0; e < c->nex; e++) {
        const float *dbw = ws->dbw + (size_t)e * L8;
        const uint8_t *drop = ws->drop + (size_t)e * L8;
        for (int j = 0; j < ws->lw[e]; j++)
            if (!drop[j])
                ws->dpos[ws->lw[e] - 1 - j] += dbw[j];
    }
    /* dQ_h += dZ_hᵀ K_h, dG_h += dS_hᵀ V_h (the candidates' rows of dT),
     * dK_h = dZ_h Q_h, dV_h = dS_h G_h. */
    const float *Qb = net->T + ATTN_TR_Q * m, *Gb = net->T + ATTN_TR_G * m;
    for (int h = 0; h < net->heads; h++) {
        const float *dz = ws->dZ + h * c->plane, *ds = ws->dS + h * c->plane;
        ws->k->mm_tn(c->P, c->Nc, dh, dz, C, ws->KV + h * dh, m2,
                     ws->dT + ATTN_TR_Q * m + h * dh, (size_t)tw, 1);
        ws->k->mm_tn(c->P, c->Nc, dh, ds, C, ws->KV + m + h * dh, m2,
                     ws->dT + ATTN_TR_G * m + h * dh, (size_t)tw, 1);
        ws->k->mm_nn(c->P, dh, c->Nc, dz, C, Qb + h * dh, (size_t)tw, ws->dKV + h * dh, m2, 0);
        ws->k->mm_nn(c->P, dh, c->Nc, ds, C, Gb + h * dh, (size_t)tw, ws->dKV + m + h * dh, m2,
                     0);
    }
    /* The event rows' gradients into dT, in a fixed order. */
    if (net->sa_len) {
        if (net->ffn)
            s_ffn_bwd(net, ws, c, run);
        s_sa_bwd(net, ws, c);
        return;
    }
    for (int p = 0; p < c->P; p++) {
        float *dt = ws->dT + s_erow(ws, c, c->c0 + p) * tw + ATTN_TR_K * m;
        const float *src = ws->dKV + (size_t)p * m2;
        for (size_t i = 0; i < m2; i++)
            dt[i] += src[i];
    }
}

int attn_tr_chunk_run(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                      const attn_tr_chunk *ch, const attn_tr_run *run)
{
    const attn_seqs *sq = v->seqs;
    attn_tr_cv c = {.ch = ch, .ev = sq->row + sq->off[ch->u],
                 .w = sq->weight ? sq->weight + sq->off[ch->u] : NULL,
                 .nex = (int)(ch->t1 - ch->t0), .C = (size_t)ws->ldc,
                 .Nc = net->set->n_cand};
    uint32_t hi;
    attn_tr_chunk_span(ch, net->l_max, net->sa_len, &c.lo, &hi);
    c.c0 = (int)ch->t0 > net->l_max ? (int)ch->t0 - net->l_max : 0;
    c.P = (int)ch->t1 - 1 - c.c0;
    c.Cn = (c.Nc + ATTN_TR_LANES - 1) / ATTN_TR_LANES * ATTN_TR_LANES;
    c.plane = (size_t)ws->pcap * c.C;
    s_events(net, v, ws, &c, run);
    s_products(net, ws, &c);
    s_windows(net, ws, &c, run);
    s_weights(net, v, ws, &c, run);
    int fact;
    int st = s_forward(net, ws, &c, run, &fact);
    if (st == ATTN_OK)
        s_back(net, ws, &c, run, fact);
    return st;
}
