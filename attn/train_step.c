/* train_step.c -- forward and backward of one chunk of examples.
 *
 * A chunk is up to `chunk` consecutive targets t0..t1-1 of one user.  Their
 * histories are windows of the same sequence, so the expensive products are
 * done once per chunk, over the chunk's columns (events c0..t1-2) and its
 * candidate rows C:
 *
 *     Z_h = K_X,h Q_C,hᵀ     S_h = V_X,h G_C,hᵀ           (P x |C|, per head)
 *
 * stored event-major (a row per event, a column per candidate) so that the
 * softmax loops can vectorise across candidates (train_kern.h).  Every
 * example then reads its window of rows: z = scale Z + bias,
 * a = softmax over the window, score = sum_h a . S + item bias.  The
 * backward pass is the same in reverse: each example adds its dZ, dS into
 * the chunk's matrices (windows overlap), and four more products per head
 * turn them into dQ, dK, dG, dV rows of dT.  With full softmax C is every
 * model item and Q, G are read in place from T; sampled candidates are
 * gathered into dense rows first.
 *
 * The products cost O(|C| (chunk + L) m) per chunk instead of O(|C| L m)
 * per example; what remains per example is the softmax over the window for
 * each candidate and head.  That part is memory-bound if done example by
 * example (every example sweeps all |C| rows of four matrices), so it runs
 * in blocks of S_BLOCK candidate columns, which stay in L2 while every
 * example of the chunk visits them: pass 1 scores (keeping each softmax's
 * max and normaliser), then each example's loss softmax over its
 * candidates, then pass 2 recomputes the attention from those (exp is
 * cheaper than the memory it would take to keep it) and goes backward.
 * An example's candidates are a multiplicity per row (mult): full softmax
 * is 1 for every row but the masked history, sampled lists count repeats.
 *
 * Derivatives, for one example, candidate c and head h (s_j = S[c][j],
 * sc = sum_j a_j s_j, g = dLoss/dscore_c):
 *     dS[c][j] = g a_j
 *     dz_j     = g a_j (s_j - sc)        (softmax Jacobian)
 *     dZ[c][j] = scale dz_j,   dpos[position of j] += dz_j
 * and for the loss softmax with multiplicities n_c and target y:
 *     loss = log sum_c n_c exp(score_c) - score_y,  g_c = n_c p_c - [c = y].
 */
#include "attn/train_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/train_kern.h"

#define S_BLOCK 64   /* candidate columns per block: 4 matrices x 2 heads x ~113
                        events x 64 x 4 B = 231 KiB, inside L2 */

struct attn_tr_ws {
    attn_tr_shape sh;
    const attn_tr_kern *k; /* the kernel set */
    int ncap;            /* most candidate rows in a chunk */
    int ldc;             /* ncap rounded up to ATTN_TR_LANES: row length of Z & co */
    int pcap;            /* most columns (events) in a chunk: chunk + l_max - 1 */
    int lcap;            /* most candidates drawn for one example */
    int l8;              /* l_max rounded up to 8: per-example row stride */
    float *dT;           /* n_mi x tw gradient accumulator */
    float *dbias;        /* n_mi */
    float *dpos;         /* l_max */
    float *dsa_pos;      /* sa_len: self-attention position bias gradient */
    float *sa_a;         /* pcap x sa_len: each event's self-attention weights */
    float *sa_x;         /* sa_len: scratch */
    int sa_len, tw;
    double loss;         /* summed (scaled) loss */
    float *QG;           /* ncap x 2m gathered [q | g] (not FULL) */
    float *dQG;          /* ncap x 2m */
    float *KV;           /* pcap x 2m gathered [k | v] of the events */
    float *dKV;          /* pcap x 2m */
    float *QT, *GT;      /* m x ldc: the candidates' q and g, transposed, zero padded */
    float *Z, *S;        /* heads x pcap x ldc */
    float *dZ, *dS;      /* heads x pcap x ldc */
    float *SC, *MX, *INV;  /* chunk x heads x ldc: each softmax's score part,
                              max and 1 / sum */
    uint32_t *mult;      /* chunk x ldc: multiplicity of each candidate */
    float *sg;           /* chunk x ldc: scores, then d loss / d score (0 = none) */
    float *bias;         /* chunk x l8: logit bias of each example's window */
    float *dbw;          /* chunk x l8: d loss / d bias */
    uint8_t *drop;       /* chunk x l8: dropped events */
    int *cb, *lw;        /* chunk: window's first event row, its length */
    uint32_t *tgt;       /* chunk: the target's candidate column */
    float *work;         /* ATTN_TR_LANES x l8: kernel scratch */
    uint32_t *list;      /* lcap: one example's drawn candidates */
    uint32_t *c_item;    /* ncap: model item of each candidate column */
    int32_t *slot;       /* n_mi: column of an item in this chunk, or -1 */
    uint32_t *useen;     /* n_mi: stamp of the user's training items */
    uint32_t stamp;      /* current stamp for useen */
    size_t n_mi, m, l_max;  /* accumulator sizes */
};

static void *s_alloc(size_t n, size_t size)
{
    void *p = NULL;
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / size || posix_memalign(&p, 64, n * size) != 0)
        return NULL;
    memset(p, 0, n * size);
    return p;
}

attn_tr_ws *attn_tr_ws_new(const attn_tr_net *net, const attn_tr_shape *sh)
{
    if (!net || !sh || sh->chunk < 1)
        return NULL;
    attn_tr_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->sh = *sh;
    ws->k = attn_tr_kern_get();
    const size_t n = (size_t)net->n_mi, m = (size_t)net->m, H = (size_t)net->heads;
    const size_t L = (size_t)net->l_max, ch = (size_t)sh->chunk;
    size_t per_ex;
    if (sh->mode == ATTN_TR_FULL)
        per_ex = 1;
    else if (sh->mode == ATTN_TR_SAMPLED)
        per_ex = (size_t)sh->neg + 1;
    else
        per_ex = (size_t)sh->n_cand;
    size_t ncap = sh->mode == ATTN_TR_FULL ? n : per_ex * ch;
    if (ncap > n)
        ncap = n;
    ws->ncap = (int)ncap;
    ws->ldc = (int)((ncap + ATTN_TR_LANES - 1) / ATTN_TR_LANES * ATTN_TR_LANES);
    ws->lcap = (int)per_ex;
    ws->pcap = sh->chunk + net->l_max - 1;
    ws->l8 = (net->l_max + 7) & ~7;
    const size_t P = (size_t)ws->pcap, C = (size_t)ws->ldc, L8 = (size_t)ws->l8;
    ws->tw = net->tw;
    ws->sa_len = net->sa_len;
    ws->dsa_pos = s_alloc((size_t)net->sa_len, sizeof(float));
    ws->sa_a = s_alloc((size_t)ws->pcap * (size_t)net->sa_len, sizeof(float));
    ws->sa_x = s_alloc((size_t)net->sa_len, sizeof(float));
    ws->dT = s_alloc(n * (size_t)net->tw, sizeof(float));
    ws->dbias = s_alloc(n, sizeof(float));
    ws->dpos = s_alloc(L, sizeof(float));
    if (sh->mode != ATTN_TR_FULL) {
        ws->QG = s_alloc(ncap * 2 * m, sizeof(float));
        ws->dQG = s_alloc(ncap * 2 * m, sizeof(float));
    }
    ws->KV = s_alloc(P * 2 * m, sizeof(float));
    ws->dKV = s_alloc(P * 2 * m, sizeof(float));
    ws->QT = s_alloc(m * C, sizeof(float));
    ws->GT = s_alloc(m * C, sizeof(float));
    ws->Z = s_alloc(H * P * C, sizeof(float));
    ws->S = s_alloc(H * P * C, sizeof(float));
    ws->dZ = s_alloc(H * P * C, sizeof(float));
    ws->dS = s_alloc(H * P * C, sizeof(float));
    ws->SC = s_alloc(ch * H * C, sizeof(float));
    ws->MX = s_alloc(ch * H * C, sizeof(float));
    ws->INV = s_alloc(ch * H * C, sizeof(float));
    ws->mult = s_alloc(ch * C, sizeof(uint32_t));
    ws->sg = s_alloc(ch * C, sizeof(float));
    ws->bias = s_alloc(ch * L8, sizeof(float));
    ws->dbw = s_alloc(ch * L8, sizeof(float));
    ws->drop = s_alloc(ch * L8, 1);
    ws->cb = s_alloc(ch, sizeof(int));
    ws->lw = s_alloc(ch, sizeof(int));
    ws->tgt = s_alloc(ch, sizeof(uint32_t));
    ws->work = s_alloc(ATTN_TR_LANES * L8, sizeof(float));
    ws->list = s_alloc(per_ex, sizeof(uint32_t));
    ws->c_item = s_alloc(ncap, sizeof(uint32_t));
    ws->slot = s_alloc(n, sizeof(int32_t));
    ws->useen = s_alloc(n, sizeof(uint32_t));
    if (!ws->dT || !ws->dbias || !ws->dpos || (sh->mode != ATTN_TR_FULL && (!ws->QG || !ws->dQG)) ||
        !ws->KV || !ws->dKV || !ws->QT || !ws->GT || !ws->Z || !ws->S || !ws->dZ || !ws->dS ||
        !ws->SC || !ws->MX || !ws->INV || !ws->mult || !ws->sg || !ws->bias || !ws->dbw ||
        !ws->drop || !ws->cb || !ws->lw || !ws->tgt || !ws->work || !ws->list || !ws->c_item ||
        !ws->slot || !ws->useen) {
        attn_tr_ws_free(&ws);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        ws->slot[i] = -1;
    /* FULL: every model item is a candidate, column = item. */
    if (sh->mode == ATTN_TR_FULL)
        for (size_t i = 0; i < n; i++)
            ws->c_item[i] = (uint32_t)i;
    ws->n_mi = n;
    ws->m = m;
    ws->l_max = L;
    return ws;
}

void attn_tr_ws_free(attn_tr_ws **ws_p)
{
    if (!ws_p || !*ws_p)
        return;
    attn_tr_ws *ws = *ws_p;
    void *p[] = {ws->dsa_pos, ws->sa_a, ws->sa_x, ws->dT, ws->dbias, ws->dpos, ws->QG,
                 ws->dQG, ws->KV, ws->dKV, ws->QT, ws->GT, ws->Z, ws->S, ws->dZ, ws->dS,
                 ws->SC, ws->MX, ws->INV, ws->mult, ws->sg, ws->bias, ws->dbw, ws->drop, ws->cb, ws->lw, ws->tgt, ws->work,
                 ws->list, ws->c_item, ws->slot, ws->useen};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
    free(ws);
    *ws_p = NULL;
}

float *attn_tr_ws_dT(attn_tr_ws *ws) { return ws->dT; }
float *attn_tr_ws_dbias(attn_tr_ws *ws) { return ws->dbias; }
float *attn_tr_ws_dpos(attn_tr_ws *ws) { return ws->dpos; }
float *attn_tr_ws_dsa_pos(attn_tr_ws *ws) { return ws->dsa_pos; }
double attn_tr_ws_loss(const attn_tr_ws *ws) { return ws->loss; }

/* Only the accumulators; the chunk buffers are rebuilt per chunk. */
void attn_tr_ws_zero(attn_tr_ws *ws)
{
    memset(ws->dT, 0, ws->n_mi * (size_t)ws->tw * sizeof(float));
    if (ws->sa_len)
        memset(ws->dsa_pos, 0, (size_t)ws->sa_len * sizeof(float));
    memset(ws->dbias, 0, ws->n_mi * sizeof(float));
    memset(ws->dpos, 0, ws->l_max * sizeof(float));
    ws->loss = 0.0;
}

/* Row of model item mi among the chunk's candidate rows, adding it. */
static uint32_t s_slot(attn_tr_ws *ws, uint32_t mi, int *nc)
{
    if (ws->slot[mi] < 0) {
        ws->slot[mi] = *nc;
        ws->c_item[*nc] = mi;
        (*nc)++;
    }
    return (uint32_t)ws->slot[mi];
}

/* The drawn candidates of example (u, t), target first, as model items in
 * ws->list; returns the count.  SAMPLED draws `neg` items uniformly from
 * model items outside the user's training items (rejection; after 64
 * failed tries an item other than the target is accepted, so a user who
 * has seen nearly everything cannot stall the loop). */
static int s_draw(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_run *run,
                  uint32_t target, uint32_t u, uint32_t t, int ex)
{
    int n = 0;
    if (run->mode == ATTN_TR_EXPLICIT) {
        const uint32_t *c = run->cand + (size_t)ex * run->n_cand;
        for (int i = 0; i < run->n_cand; i++)
            ws->list[n++] = c[i];
        return n;
    }
    ws->list[n++] = target;
    attn_eval_rng rng = attn_eval_rng_for(run->seed ^ (run->epoch * 0x9E3779B97F4A7C15ull), u,
                                          ((uint64_t)t << 1) | 1u);
    for (int k = 0; k < run->neg; k++) {
        uint32_t it = 0;
        for (int tries = 0; tries < 64; tries++) {
            it = attn_eval_rng_below(&rng, (uint32_t)net->n_mi);
            if (ws->useen[it] != ws->stamp)
                break;
        }
        if (it == target)
            it = (it + 1) % (uint32_t)net->n_mi;
        ws->list[n++] = it;
    }
    return n;
}

/* The candidates and each example's multiplicities (rows of stride ldc,
 * zero past Nc).  Returns Nc. */
static int s_candidates(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                        const attn_tr_chunk *ch, const attn_tr_run *run, const uint32_t *ev)
{
    const int nex = (int)(ch->t1 - ch->t0);
    const size_t C = (size_t)ws->ldc;
    memset(ws->mult, 0, (size_t)nex * C * sizeof *ws->mult);
    if (run->mode == ATTN_TR_FULL) {
        const int n = (int)net->n_mi;
        /* Row 0 holds the mask of the history before t0 (or of all the
         * user's training items); each later example copies it and, for a
         * history mask, adds its own earlier events.  Filled from the last
         * example down, so row 0 is read before it is finished. */
        uint32_t *base = ws->mult;
        for (int c = 0; c < n; c++)
            base[c] = 1;
        const uint64_t n_masked = run->mask == ATTN_TRAIN_MASK_USER ?
            attn_eval_train_len(v->seqs, ch->u) : run->mask == ATTN_TRAIN_MASK_HISTORY ? ch->t0 : 0;
        for (uint64_t i = 0; i < n_masked; i++)
            base[v->row2mi[ev[i]]] = 0;
        for (int e = nex - 1; e >= 0; e--) {
            uint32_t *row = ws->mult + (size_t)e * C;
            if (e > 0)
                memcpy(row, base, (size_t)n * sizeof *row);
            if (run->mask == ATTN_TRAIN_MASK_HISTORY)
                for (int i = 0; i < e; i++)
                    row[v->row2mi[ev[ch->t0 + (uint32_t)i]]] = 0;
            ws->tgt[e] = (uint32_t)v->row2mi[ev[ch->t0 + (uint32_t)e]];
            row[ws->tgt[e]] = 1;
        }
        return n;
    }
    int nc = 0;
    if (run->mode == ATTN_TR_SAMPLED) {
        if (++ws->stamp == 0) {
            memset(ws->useen, 0, ws->n_mi * sizeof *ws->useen);
            ws->stamp = 1;
        }
        uint64_t n_train = attn_eval_train_len(v->seqs, ch->u);
        for (uint64_t i = 0; i < n_train; i++)
            ws->useen[v->row2mi[ev[i]]] = ws->stamp;
    }
    /* The draws are a function of (seed, epoch, user, t): draw once to
     * number the columns, once more to count. */
    for (int e = 0; e < nex; e++) {
        uint32_t t = ch->t0 + (uint32_t)e;
        int n = s_draw(net, ws, run, (uint32_t)v->row2mi[ev[t]], ch->u, t, e);
        for (int i = 0; i < n; i++)
            s_slot(ws, ws->list[i], &nc);
    }
    for (int e = 0; e < nex; e++) {
        uint32_t t = ch->t0 + (uint32_t)e;
        int n = s_draw(net, ws, run, (uint32_t)v->row2mi[ev[t]], ch->u, t, e);
        uint32_t *row = ws->mult + (size_t)e * C;
        for (int i = 0; i < n; i++)
            row[ws->slot[ws->list[i]]]++;
        ws->tgt[e] = (uint32_t)ws->slot[ws->list[0]];
    }
    return nc;
}

/* Pass 1 over the candidate columns [r0, r1): every example's per-head
 * softmax and score of each candidate. */
static void s_scores(const attn_tr_net *net, attn_tr_ws *ws, int nex, int r0, int r1,
                     const float *ibias)
{
    const attn_tr_kern *k = ws->k;
    const int H = net->heads, L8 = ws->l8;
    const size_t C = (size_t)ws->ldc, plane = (size_t)ws->pcap * C;
    const float scale = net->md->scale;
    for (int e = 0; e < nex; e++) {
        const float *bias = ws->bias + (size_t)e * L8;
        const size_t at = (size_t)ws->cb[e] * C + (size_t)r0;
        for (int h = 0; h < H; h++) {
            const size_t eh = ((size_t)e * H + h) * C + (size_t)r0;
            k->sm_fwd(ws->Z + h * plane + at, ws->S + h * plane + at, C, ws->lw[e], bias, scale,
                      r1 - r0, ws->SC + eh, ws->MX + eh, ws->INV + eh, ws->work);
        }
        const uint32_t *mult = ws->mult + (size_t)e * C;
        float *score = ws->sg + (size_t)e * C;
        for (int c = r0; c < r1; c++) {
            if (!mult[c])
                continue;
            float sc = ibias ? ibias[ws->c_item[c]] : 0.0f;
            for (int h = 0; h < H; h++)
                sc += ws->SC[((size_t)e * H + h) * C + (size_t)c];
            score[c] = sc;
        }
    }
}

/* The loss softmax of example e: its loss (unscaled), and g_c * loss_scale
 * in place of the scores (0 where the candidate is absent); item-bias
 * gradients.  NAN if a score is not finite. */
static double s_loss(attn_tr_ws *ws, int e, int Nc, float loss_scale, int item_bias)
{
    const size_t C = (size_t)ws->ldc;
    const uint32_t *mult = ws->mult + (size_t)e * C;
    float *sg = ws->sg + (size_t)e * C;
    double mx = -INFINITY;
    for (int c = 0; c < Nc; c++)
        if (mult[c] && sg[c] > mx)
            mx = sg[c];
    if (!isfinite(mx))
        return NAN;
    double sum = 0.0;
    for (int c = 0; c < Nc; c++)
        if (mult[c])
            sum += mult[c] * exp(sg[c] - mx);
    const double lse = mx + log(sum);
    const uint32_t y = ws->tgt[e];
    const double loss = lse - sg[y];
    for (int c = 0; c < (int)C; c++) {
        if (!mult[c]) {
            sg[c] = 0.0f;
            continue;
        }
        sg[c] = (float)((mult[c] * exp(sg[c] - lse) - (c == (int)y ? 1.0 : 0.0)) * loss_scale);
        if (item_bias)
            ws->dbias[ws->c_item[c]] += sg[c];
    }
    return loss;
}

/* Pass 2 over the candidate columns [r0, r1): recompute each attention,
 * go backward into dZ, dS and the bias gradient. */
static void s_backward(const attn_tr_net *net, attn_tr_ws *ws, int nex, int r0, int r1)
{
    const attn_tr_kern *k = ws->k;
    const int H = net->heads, L8 = ws->l8;
    const size_t C = (size_t)ws->ldc, plane = (size_t)ws->pcap * C;
    const float scale = net->md->scale;
    for (int e = 0; e < nex; e++) {
        const float *bias = ws->bias + (size_t)e * L8;
        const size_t at = (size_t)ws->cb[e] * C + (size_t)r0;
        const float *g = ws->sg + (size_t)e * C + (size_t)r0;
        for (int h = 0; h < H; h++) {
            const size_t eh = ((size_t)e * H + h) * C + (size_t)r0;
            k->sm_bwd(ws->Z + h * plane + at, ws->S + h * plane + at, C, ws->lw[e], bias, scale,
                      r1 - r0, g, ws->SC + eh, ws->MX + eh, ws->INV + eh, ws->dZ + h * plane + at,
                      ws->dS + h * plane + at, ws->dbw + (size_t)e * L8, ws->work);
        }
    }
}

/* The self-attention block (docs/MODEL.md §2.1), on the chunk's event rows:
 * event a (row p = a - c0) attends to events j = a - i, i < its window
 * (it reaches back before c0, and before the example's own window, to the
 * user's first event: an event's context does not depend on which example
 * reads it, so the rows are shared by the chunk), weights sa_a[p][i]; its
 * [k' | v'] row is [k_a | v_a] + sum_i w_i [uk_j | uv_j].  Every vector
 * here is a part of T (a linear function of E), so the way back is
 * gradients into dT rows, and attn_tr_backprop does the rest. */
static void s_sa_fwd(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                     const uint32_t *ev, int c0, int P)
{
    const int m = net->m, tw = net->tw, Ls = net->sa_len;
    const float sc = 1.0f / sqrtf((float)m);
    const float *pos = net->md->sa_pos;
    for (int p = 0; p < P; p++) {
        const int a = c0 + p, nw = a + 1 < Ls ? a + 1 : Ls;
        const float *Ta = net->T + (size_t)v->row2mi[ev[a]] * tw;
        float *w = ws->sa_a + (size_t)p * Ls;
        float mx = -INFINITY;
        for (int i = 0; i < nw; i++) {
            const float *Tj = net->T + (size_t)v->row2mi[ev[a - i]] * tw;
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
            const float *Tj = net->T + (size_t)v->row2mi[ev[a - i]] * tw;
            for (int t = 0; t < 2 * m; t++)
                kv[t] += w[i] * Tj[ATTN_TR_UK * m + t];
        }
    }
}

/* Backward of s_sa_fwd from dKV into dT and dsa_pos. */
static void s_sa_bwd(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                     const uint32_t *ev, int c0, int P)
{
    const int m = net->m, tw = net->tw, Ls = net->sa_len;
    const float sc = 1.0f / sqrtf((float)m);
    for (int p = 0; p < P; p++) {
        const int a = c0 + p, nw = a + 1 < Ls ? a + 1 : Ls;
        const size_t ra = (size_t)v->row2mi[ev[a]] * tw;
        const float *Ta = net->T + ra;
        float *dTa = ws->dT + ra;
        const float *dkv = ws->dKV + (size_t)p * 2 * m;
        const float *w = ws->sa_a + (size_t)p * Ls;
        float *da = ws->sa_x;
        for (int t = 0; t < 2 * m; t++)
            dTa[ATTN_TR_K * m + t] += dkv[t];
        float gbar = 0.0f;
        for (int i = 0; i < nw; i++) {
            const size_t rj = (size_t)v->row2mi[ev[a - i]] * tw;
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
            const size_t rj = (size_t)v->row2mi[ev[a - i]] * tw;
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

int attn_tr_chunk_run(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                      const attn_tr_chunk *ch, const attn_tr_run *run)
{
    const attn_tr_kern *k = ws->k;
    const attn_seqs *sq = v->seqs;
    const int m = net->m, H = net->heads, dh = net->dh, L = net->l_max, L8 = ws->l8;
    const int tw = net->tw, m2 = 2 * m;   /* tw: row width of T and dT */
    const uint32_t *ev = sq->row + sq->off[ch->u];
    const float *w = sq->weight ? sq->weight + sq->off[ch->u] : NULL;
    const int nex = (int)(ch->t1 - ch->t0);
    const int c0 = (int)ch->t0 > L ? (int)ch->t0 - L : 0;
    const int P = (int)ch->t1 - 1 - c0;           /* event rows: c0 .. t1-2 */
    const size_t C = (size_t)ws->ldc, plane = (size_t)ws->pcap * C;
    const int Nc = s_candidates(net, v, ws, ch, run, ev);
    const int Cn = (int)((Nc + ATTN_TR_LANES - 1) / ATTN_TR_LANES * ATTN_TR_LANES);

    /* The events' [k | v]; the candidates' [q | g] as rows (gathered unless
     * every item is one) and transposed (QT, GT, zero past Nc). */
    if (net->sa_len)
        s_sa_fwd(net, v, ws, ev, c0, P);
    else
        for (int p = 0; p < P; p++)
            memcpy(ws->KV + (size_t)p * m2,
                   net->T + (size_t)v->row2mi[ev[c0 + p]] * tw + ATTN_TR_K * m,
                   (size_t)m2 * sizeof(float));
    const float *Qb, *Gb;
    int ldq;
    if (run->mode == ATTN_TR_FULL) {
        Qb = net->T + ATTN_TR_Q * m;
        Gb = net->T + ATTN_TR_G * m;
        ldq = tw;
    } else {
        for (int c = 0; c < Nc; c++) {
            const float *tr = net->T + (size_t)ws->c_item[c] * tw;
            memcpy(ws->QG + (size_t)c * m2, tr + ATTN_TR_Q * m, (size_t)m * sizeof(float));
            memcpy(ws->QG + (size_t)c * m2 + m, tr + ATTN_TR_G * m, (size_t)m * sizeof(float));
        }
        Qb = ws->QG;
        Gb = ws->QG + m;
        ldq = m2;
    }
    for (int c = 0; c < Nc; c++) {
        const float *q = Qb + (size_t)c * ldq, *g = Gb + (size_t)c * ldq;
        for (int t = 0; t < m; t++) {
            ws->QT[(size_t)t * C + c] = q[t];
            ws->GT[(size_t)t * C + c] = g[t];
        }
    }
    for (int t = 0; t < m; t++) {
        memset(ws->QT + (size_t)t * C + Nc, 0, (size_t)(Cn - Nc) * sizeof(float));
        memset(ws->GT + (size_t)t * C + Nc, 0, (size_t)(Cn - Nc) * sizeof(float));
    }
    /* Z_h = K_h Q_hᵀ and S_h = V_h G_hᵀ: an event per row, a candidate per
     * column. */
    for (int h = 0; h < H; h++) {
        k->mm_nn(P, Cn, dh, ws->KV + h * dh, (size_t)m2, ws->QT + (size_t)h * dh * C, C,
                 ws->Z + h * plane, C, 0);
        k->mm_nn(P, Cn, dh, ws->KV + m + h * dh, (size_t)m2, ws->GT + (size_t)h * dh * C, C,
                 ws->S + h * plane, C, 0);
        for (int p = 0; p < P; p++) {
            memset(ws->dZ + h * plane + (size_t)p * C, 0, (size_t)Cn * sizeof(float));
            memset(ws->dS + h * plane + (size_t)p * C, 0, (size_t)Cn * sizeof(float));
        }
    }

    /* Each example's window: bias by position (newest = position 0 = last
     * row) and dropout. */
    for (int e = 0; e < nex; e++) {
        const int t = (int)ch->t0 + e;
        const int w0 = t > L ? t - L : 0, Lw = t - w0;
        float *bias = ws->bias + (size_t)e * L8;
        uint8_t *drop = ws->drop + (size_t)e * L8;
        ws->cb[e] = w0 - c0;
        ws->lw[e] = Lw;
        attn_eval_rng rng = attn_eval_rng_for(run->seed ^ (run->epoch * 0xC2B2AE3D27D4EB4Full),
                                              ch->u, (uint64_t)t << 1);
        int kept = 0;
        for (int j = 0; j < Lw; j++) {
            drop[j] = run->dropout > 0.0 && attn_eval_rng_unit(&rng) < run->dropout;
            kept += !drop[j];
            bias[j] = net->md->pos_bias[Lw - 1 - j] + (w ? logf(w[w0 + j]) : 0.0f);
        }
        if (kept == 0)
            drop[Lw - 1] = 0;   /* always keep the newest event */
        for (int j = 0; j < Lw; j++)
            if (drop[j])
                bias[j] = ATTN_TR_NEG;
        memset(ws->dbw + (size_t)e * L8, 0, (size_t)L8 * sizeof(float));
    }

    const float *ibias = run->use_item_bias ? net->md->item_bias : NULL;
    for (int r0 = 0; r0 < Cn; r0 += S_BLOCK)
        s_scores(net, ws, nex, r0, r0 + S_BLOCK < Cn ? r0 + S_BLOCK : Cn, ibias);
    int st = ATTN_OK;
    for (int e = 0; e < nex && st == ATTN_OK; e++) {
        double loss = s_loss(ws, e, Nc, run->loss_scale, ibias != NULL);
        if (!isfinite(loss))
            st = ATTN_ERANGE;
        else
            ws->loss += loss * run->loss_scale;
    }

    if (st == ATTN_OK) {
        for (int r0 = 0; r0 < Cn; r0 += S_BLOCK)
            s_backward(net, ws, nex, r0, r0 + S_BLOCK < Cn ? r0 + S_BLOCK : Cn);
        for (int e = 0; e < nex; e++) {
            const float *dbw = ws->dbw + (size_t)e * L8;
            const uint8_t *drop = ws->drop + (size_t)e * L8;
            const int Lw = ws->lw[e];
            for (int j = 0; j < Lw; j++)
                if (!drop[j])
                    ws->dpos[Lw - 1 - j] += dbw[j];
        }
        /* dQ_h (+)= dZ_hᵀ K_h, dG_h (+)= dS_hᵀ V_h, dK_h = dZ_h Q_h, dV_h = dS_h G_h.
         * With full softmax dQ, dG land in dT directly. */
        float *dQb, *dGb;
        int lddq, acc = run->mode == ATTN_TR_FULL;
        if (acc) {
            dQb = ws->dT + ATTN_TR_Q * m;
            dGb = ws->dT + ATTN_TR_G * m;
            lddq = tw;
        } else {
            dQb = ws->dQG;
            dGb = ws->dQG + m;
            lddq = m2;
        }
        for (int h = 0; h < H; h++) {
            const float *dz = ws->dZ + h * plane, *ds = ws->dS + h * plane;
            k->mm_tn(P, Nc, dh, dz, C, ws->KV + h * dh, (size_t)m2, dQb + h * dh, (size_t)lddq,
                     acc);
            k->mm_tn(P, Nc, dh, ds, C, ws->KV + m + h * dh, (size_t)m2, dGb + h * dh,
                     (size_t)lddq, acc);
            k->mm_nn(P, dh, Nc, dz, C, Qb + h * dh, (size_t)ldq, ws->dKV + h * dh, (size_t)m2, 0);
            k->mm_nn(P, dh, Nc, ds, C, Gb + h * dh, (size_t)ldq, ws->dKV + m + h * dh,
                     (size_t)m2, 0);
        }
        /* Scatter the gathered rows' gradients into dT, in a fixed order. */
        if (net->sa_len)
            s_sa_bwd(net, v, ws, ev, c0, P);
        else
            for (int p = 0; p < P; p++) {
                float *dt = ws->dT + (size_t)v->row2mi[ev[c0 + p]] * tw + ATTN_TR_K * m;
                const float *src = ws->dKV + (size_t)p * m2;
                for (int i = 0; i < m2; i++)
                    dt[i] += src[i];
            }
        if (!acc)
            for (int c = 0; c < Nc; c++) {
                float *dt = ws->dT + (size_t)ws->c_item[c] * tw;
                const float *src = ws->dQG + (size_t)c * m2;
                for (int i = 0; i < m; i++) {
                    dt[ATTN_TR_Q * m + i] += src[i];
                    dt[ATTN_TR_G * m + i] += src[m + i];
                }
            }
    }
    if (run->mode != ATTN_TR_FULL)
        for (int c = 0; c < Nc; c++)
            ws->slot[ws->c_item[c]] = -1;
    return st;
}
