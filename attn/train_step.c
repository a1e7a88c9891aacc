/* train_step.c -- a thread's workspace for chunks of examples: the gradient
 * accumulators of a step and the buffers of one chunk, sized once.
 *
 * The accumulators are by working row (the step's set, train_set.c), so
 * their size follows the step, not the catalog.  The chunk buffers are
 * event-major matrices (a row per history event, a column per candidate):
 * train_chunk.c says what each holds.
 */
#include "attn/train_int.h"

#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/train_kern.h"
#include "attn/train_ws.h"
#include "util/mem.h"

static void *s_alloc(size_t n, size_t size, int *ok)
{
    void *p = util_zalloc64(n, size);
    if (!p)
        *ok = 0;
    return p;
}

attn_tr_ws *attn_tr_ws_new(const attn_tr_net *net, int chunk)
{
    if (!net || chunk < 1)
        return NULL;
    attn_tr_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    int ok = 1;
    ws->k = attn_tr_kern_get();
    const size_t cap = (size_t)net->set->cap, m = (size_t)net->m, H = (size_t)net->heads;
    const size_t ch = (size_t)chunk, L = (size_t)net->l_max;
    ws->chunk = chunk;
    ws->ldc = net->ldc;
    ws->pcap = chunk + net->l_max - 1;
    ws->l8 = (net->l_max + 7) & ~7;
    ws->tw = net->tw;
    ws->sa_len = net->sa_len;
    ws->l_max = net->l_max;
    ws->nffn = net->ffn ? attn_tr_ffn_size(net->m, net->ffn) : 0;
    const size_t P = (size_t)ws->pcap, C = (size_t)ws->ldc, L8 = (size_t)ws->l8;
    ws->dT = s_alloc(cap * (size_t)net->tw, sizeof(float), &ok);
    ws->dbias = s_alloc(cap, sizeof(float), &ok);
    ws->dpos = s_alloc(L, sizeof(float), &ok);
    ws->dsa_pos = s_alloc((size_t)net->sa_len, sizeof(float), &ok);
    ws->sa_a = s_alloc(P * (size_t)net->sa_len, sizeof(float), &ok);
    ws->sa_x = s_alloc((size_t)net->sa_len, sizeof(float), &ok);
    ws->KV = s_alloc(P * 2 * m, sizeof(float), &ok);
    if (net->ffn) {
        ws->dffn = s_alloc(ws->nffn, sizeof(float), &ok);
        ws->KV0 = s_alloc(P * 2 * m, sizeof(float), &ok);
        ws->FH = s_alloc(P * (size_t)net->ffn, sizeof(float), &ok);
        ws->dFH = s_alloc(P * (size_t)net->ffn, sizeof(float), &ok);
    }
    ws->dKV = s_alloc(P * 2 * m, sizeof(float), &ok);
    ws->Z = s_alloc(H * P * C, sizeof(float), &ok);
    ws->S = s_alloc(H * P * C, sizeof(float), &ok);
    ws->dZ = s_alloc(H * P * C, sizeof(float), &ok);
    ws->dS = s_alloc(H * P * C, sizeof(float), &ok);
    ws->SC = s_alloc(ch * H * C, sizeof(float), &ok);
    ws->MX = s_alloc(ch * H * C, sizeof(float), &ok);
    ws->INV = s_alloc(ch * H * C, sizeof(float), &ok);
    ws->wt = s_alloc(ch * C, sizeof(float), &ok);
    ws->sg = s_alloc(ch * C, sizeof(float), &ok);
    ws->bias = s_alloc(ch * L8, sizeof(float), &ok);
    ws->dbw = s_alloc(ch * L8, sizeof(float), &ok);
    ws->drop = s_alloc(ch * L8, 1, &ok);
    ws->cb = s_alloc(ch, sizeof(int), &ok);
    ws->lw = s_alloc(ch, sizeof(int), &ok);
    ws->tgt = s_alloc(ch, sizeof(uint32_t), &ok);
    ws->erow = s_alloc(P + (size_t)net->sa_len, sizeof(uint32_t), &ok);
    ws->work = s_alloc(ATTN_TR_LANES * L8, sizeof(float), &ok);
    ws->beta = s_alloc(ch * P, sizeof(float), &ok);
    ws->gp = s_alloc(ch * C, sizeof(float), &ok);
    ws->hp = s_alloc(ch * C, sizeof(float), &ok);
    ws->gpt = s_alloc(C * ch, sizeof(float), &ok);
    ws->hpt = s_alloc(C * ch, sizeof(float), &ok);
    ws->d1t = s_alloc(P * ch, sizeof(float), &ok);
    ws->d2t = s_alloc(P * ch, sizeof(float), &ok);
    if (!ok)
        attn_tr_ws_free(&ws);
    return ws;
}

void attn_tr_ws_free(attn_tr_ws **ws_p)
{
    if (!ws_p || !*ws_p)
        return;
    attn_tr_ws *ws = *ws_p;
    void *p[] = {ws->dT, ws->dbias, ws->dpos, ws->dsa_pos, ws->sa_a, ws->sa_x, ws->KV,
                 ws->dKV, ws->Z, ws->S, ws->dZ, ws->dS, ws->SC, ws->MX, ws->INV, ws->wt,
                 ws->sg, ws->bias, ws->dbw, ws->drop, ws->cb, ws->lw, ws->tgt, ws->erow,
                 ws->work, ws->beta, ws->gp, ws->hp, ws->gpt, ws->hpt, ws->d1t, ws->d2t,
                 ws->dffn, ws->KV0, ws->FH, ws->dFH};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
    free(ws);
    *ws_p = NULL;
}

float *attn_tr_ws_dT(attn_tr_ws *ws) { return ws->dT; }
float *attn_tr_ws_dbias(attn_tr_ws *ws) { return ws->dbias; }
float *attn_tr_ws_dpos(attn_tr_ws *ws) { return ws->dpos; }
float *attn_tr_ws_dsa_pos(attn_tr_ws *ws) { return ws->dsa_pos; }
float *attn_tr_ws_dffn(attn_tr_ws *ws) { return ws->dffn; }
double attn_tr_ws_loss(const attn_tr_ws *ws) { return ws->loss; }

/* Only the accumulators; the chunk buffers are rebuilt per chunk. */
void attn_tr_ws_zero(attn_tr_ws *ws, int64_t n_ws)
{
    memset(ws->dT, 0, (size_t)n_ws * (size_t)ws->tw * sizeof(float));
    memset(ws->dbias, 0, (size_t)n_ws * sizeof(float));
    if (ws->sa_len)
        memset(ws->dsa_pos, 0, (size_t)ws->sa_len * sizeof(float));
    memset(ws->dpos, 0, (size_t)ws->l_max * sizeof(float));
    if (ws->nffn)
        memset(ws->dffn, 0, ws->nffn * sizeof(float));
    ws->loss = 0.0;
}
