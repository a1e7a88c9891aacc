/* train_grad.c -- the loss and gradient of given examples, for the tests.
 *
 * The same engine as training (tables, chunk forward/backward, backprop
 * through the tables), one example per chunk and no dropout, so that a
 * finite-difference check of this function checks the code training runs.
 */
#include "attn/train.h"

#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/train_int.h"

#define S_CHUNK 64

/* grad (full shapes) from a step's gradient whose rows are the items. */
static void s_copy_grad(attn_model *grad, const attn_tr_grad *g, int64_t n_items)
{
    const attn_model *gd = g->dense;
    const size_t dm = (size_t)gd->d * (size_t)gd->m;
    float *dst[] = {grad->wq, grad->wk, grad->wv, grad->wo,
                    grad->sa_q, grad->sa_k, grad->sa_uk, grad->sa_uv};
    const float *src[] = {gd->wq, gd->wk, gd->wv, gd->wo, gd->sa_q, gd->sa_k, gd->sa_uk,
                          gd->sa_uv};
    for (size_t k = 0; k < sizeof dst / sizeof dst[0]; k++)
        if (dst[k] && src[k])
            memcpy(dst[k], src[k], dm * sizeof(float));
    memcpy(grad->pos_bias, gd->pos_bias, (size_t)gd->l_max * sizeof(float));
    if (gd->sa_len)
        memcpy(grad->sa_pos, gd->sa_pos, (size_t)gd->sa_len * sizeof(float));
    if (gd->ffn) {
        const size_t fw = (size_t)2 * gd->m * gd->ffn;
        memcpy(grad->ffn_w1, gd->ffn_w1, fw * sizeof(float));
        memcpy(grad->ffn_b1, gd->ffn_b1, (size_t)gd->ffn * sizeof(float));
        memcpy(grad->ffn_w2, gd->ffn_w2, fw * sizeof(float));
        memcpy(grad->ffn_b2, gd->ffn_b2, (size_t)2 * gd->m * sizeof(float));
    }
    if (grad->item_bias)
        memcpy(grad->item_bias, g->dbias, (size_t)n_items * sizeof(float));
    if (grad->residual && g->dres)
        memcpy(grad->residual, g->dres, (size_t)n_items * (size_t)gd->d * sizeof(float));
}

/* One step over all the examples, whose working set is every model item
 * (rows = items, so the per-item gradients land where grad wants them).
 * Consecutive targets of one user (t, t+1, ...) form one chunk, as in
 * training, so that the tests see chunks of several examples too. */
static int s_one_step(const attn_train_data *data, const attn_model *md,
                      const attn_train_example *ex, int n_ex, const uint32_t *cand, int n_cand,
                      int mask, const int32_t *row2mi, const uint32_t *mi2row, double *loss,
                      attn_model *grad)
{
    attn_tr_set set;
    attn_tr_grad g = {0};
    attn_tr_net *net = NULL;
    attn_tr_ws *ws = NULL;
    int st = attn_tr_set_init(&set, md->n_items, 1, md->n_items);
    if (st == ATTN_OK)
        st = attn_tr_grad_init(&g, md, md->n_items);
    if (st == ATTN_OK) {
        net = attn_tr_net_new(md, &set, data->emb, data->ld, mi2row);
        ws = net ? attn_tr_ws_new(net, S_CHUNK) : NULL;
        st = net && ws ? ATTN_OK : ATTN_ENOMEM;
    }
    if (st == ATTN_OK) {
        attn_tr_net_tables(net, 1);
        attn_tr_view v = {&data->seqs, row2mi};
        attn_tr_run run = {.mode = cand ? ATTN_TR_EXPLICIT : ATTN_TR_FULL, .mask = mask,
                           .loss_scale = 1.0f, .use_item_bias = md->item_bias != NULL,
                           .n_cand = n_cand};
        attn_tr_ws_zero(ws, set.n_ws);
        for (int e = 0, e1; e < n_ex && st == ATTN_OK; e = e1) {
            for (e1 = e + 1; e1 < n_ex && e1 - e < S_CHUNK && ex[e1].user == ex[e].user &&
                             ex[e1].t == ex[e1 - 1].t + 1; e1++)
                ;
            attn_tr_chunk ch = {ex[e].user, ex[e].t, ex[e1 - 1].t + 1};
            run.cand = cand ? cand + (size_t)e * n_cand : NULL;
            st = attn_tr_chunk_run(net, &v, ws, &ch, &run);
        }
        if (st == ATTN_OK) {
            *loss = attn_tr_ws_loss(ws);
            st = attn_tr_backprop(net, attn_tr_ws_dT(ws), attn_tr_ws_dbias(ws),
                                  attn_tr_ws_dpos(ws), attn_tr_ws_dsa_pos(ws),
                                  attn_tr_ws_dffn(ws), &g, 1);
        }
    }
    if (st == ATTN_OK)
        s_copy_grad(grad, &g, md->n_items);
    attn_tr_ws_free(&ws);
    attn_tr_net_free(&net);
    attn_tr_grad_free(&g);
    attn_tr_set_free(&set);
    return st;
}

int attn_train_grad(const attn_train_data *data, const attn_model *md,
                    const attn_train_example *ex, int n_ex, const uint32_t *cand, int n_cand,
                    int mask, double *loss, attn_model *grad)
{
    if (!data || !md || !ex || n_ex < 1 || !loss || !grad || !md->item_ids ||
        md->n_items < 1 || grad->n_items != md->n_items || grad->d != md->d ||
        grad->m != md->m || grad->l_max != md->l_max || (md->residual && !grad->residual) ||
        grad->sa_len != md->sa_len || grad->ffn != md->ffn ||
        (cand && n_cand < 1) || !md->pos_bias || !grad->pos_bias)
        return ATTN_EINVAL;
    if (attn_seqs_check(&data->seqs, NULL, 0) != ATTN_OK || data->seqs.n_rows != data->n_rows)
        return ATTN_EINVAL;
    /* Catalog rows -> model items, from the model's item ids. */
    int32_t *row2mi = malloc(data->n_rows * sizeof *row2mi);
    uint32_t *mi2row = malloc((size_t)md->n_items * sizeof *mi2row);
    if (!row2mi || !mi2row) {
        free(row2mi);
        free(mi2row);
        return ATTN_ENOMEM;
    }
    int st = ATTN_OK;
    for (int64_t i = 0; i < md->n_items; i++)
        mi2row[i] = UINT32_MAX;
    for (size_t r = 0; r < data->n_rows; r++) {
        int64_t k = attn_model_item_index(md, data->item_id[r]);
        row2mi[r] = (int32_t)k;
        if (k >= 0)
            mi2row[k] = (uint32_t)r;
    }
    for (int64_t i = 0; i < md->n_items; i++)
        if (mi2row[i] == UINT32_MAX)
            st = ATTN_EINVAL;
    for (int e = 0; e < n_ex && st == ATTN_OK; e++) {
        const attn_seqs *s = &data->seqs;
        if (ex[e].user >= s->n_users || ex[e].t < 1 ||
            ex[e].t >= s->off[ex[e].user + 1] - s->off[ex[e].user]) {
            st = ATTN_EINVAL;
            break;
        }
        for (uint32_t i = 0; i <= ex[e].t; i++)
            if (row2mi[s->row[s->off[ex[e].user] + i]] < 0)
                st = ATTN_EINVAL;
        if (cand)
            for (int i = 0; i < n_cand; i++)
                if ((int64_t)cand[(size_t)e * n_cand + i] >= md->n_items)
                    st = ATTN_EINVAL;
    }
    if (st == ATTN_OK)
        st = s_one_step(data, md, ex, n_ex, cand, n_cand, mask, row2mi, mi2row, loss, grad);
    free(row2mi);
    free(mi2row);
    return st;
}
