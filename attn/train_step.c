/* train_step.c -- forward and backward of one chunk of examples.
 *
 * A chunk is up to `chunk` consecutive targets t0..t1-1 of one user.  Their
 * histories are windows of the same sequence, so the expensive products are
 * done once per chunk, over the chunk's columns (events c0..t1-2) and its
 * candidate rows C:
 *
 *     Z_h = Q_C,h K_X,hᵀ     S_h = G_C,h V_X,hᵀ           (|C| x P, per head)
 *
 * and every example then reads its window of columns: z = scale Z + bias,
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
 * in blocks of S_BLOCK candidate rows, which stay in L2 while every example
 * of the chunk visits them: pass 1 scores, then each example's loss
 * softmax over its candidates, then pass 2 recomputes the attention (exp is
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

#define S_BLOCK 32   /* candidate rows per block: 4 matrices x 2 heads x 32 rows
                        x ~128 columns x 4 B = 128 KiB, inside L2 */

struct attn_tr_ws {
    attn_tr_shape sh;
    const attn_tr_kern *k; /* the kernel set */
    int ncap;            /* most candidate rows in a chunk */
    int pcap;            /* most columns in a chunk: chunk + l_max - 1 */
    int pp;              /* row stride of Z & co: pcap + 8 rounded up to 16 */
    int lcap;            /* most candidates drawn for one example */
    int l8;              /* l_max rounded up to 8: a window's padded length */
    float *dT;           /* n_mi x 4m gradient accumulator */
    float *dbias;        /* n_mi */
    float *dpos;         /* l_max */
    double loss;         /* summed (scaled) loss */
    float *QG;           /* ncap x 2m gathered [q | g] (not FULL) */
    float *dQG;          /* ncap x 2m */
    float *KV;           /* pcap x 2m gathered [k | v] of the columns */
    float *dKV;          /* pcap x 2m */
    float *KT, *VT;      /* m x pp: the columns' keys and values, transposed */
    float *Z, *S;        /* heads x ncap x pp */
    float *dZ, *dS;      /* heads x ncap x pp */
    uint32_t *mult;      /* chunk x ncap: multiplicity of each row as a candidate */
    float *sg;           /* chunk x ncap: scores, then d loss / d score */
    float *bias;         /* chunk x l8: logit bias of each example's window, padded */
    float *dbw;          /* chunk x l8: d loss / d bias */
    uint8_t *drop;       /* chunk x l8: dropped events */
    int *cb, *n8, *lw;   /* chunk: window start column, padded length, length */
    uint32_t *tgt;       /* chunk: the target's row */
    float *e;            /* l8: attention of one row, scratch */
    uint32_t *list;      /* lcap: one example's drawn candidates */
    uint32_t *c_item;    /* ncap: model item of each row */
    int32_t *slot;       /* n_mi: row of an item in this chunk, or -1 */
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
    ws->lcap = (int)per_ex;
    ws->pcap = sh->chunk + net->l_max - 1;
    ws->pp = (ws->pcap + 8 + 15) & ~15;
    ws->l8 = (net->l_max + 7) & ~7;
    const size_t P = (size_t)ws->pcap, Pp = (size_t)ws->pp, L8 = (size_t)ws->l8;
    ws->dT = s_alloc(n * 4 * m, sizeof(float));
    ws->dbias = s_alloc(n, sizeof(float));
    ws->dpos = s_alloc(L, sizeof(float));
    if (sh->mode != ATTN_TR_FULL) {
        ws->QG = s_alloc(ncap * 2 * m, sizeof(float));
        ws->dQG = s_alloc(ncap * 2 * m, sizeof(float));
    }
    ws->KV = s_alloc(P * 2 * m, sizeof(float));
    ws->dKV = s_alloc(P * 2 * m, sizeof(float));
    ws->KT = s_alloc(m * Pp, sizeof(float));
    ws->VT = s_alloc(m * Pp, sizeof(float));
    ws->Z = s_alloc(H * ncap * Pp, sizeof(float));
    ws->S = s_alloc(H * ncap * Pp, sizeof(float));
    ws->dZ = s_alloc(H * ncap * Pp, sizeof(float));
    ws->dS = s_alloc(H * ncap * Pp, sizeof(float));
    ws->mult = s_alloc(ch * ncap, sizeof(uint32_t));
    ws->sg = s_alloc(ch * ncap, sizeof(float));
    ws->bias = s_alloc(ch * L8, sizeof(float));
    ws->dbw = s_alloc(ch * L8, sizeof(float));
    ws->drop = s_alloc(ch * L8, 1);
    ws->cb = s_alloc(ch, sizeof(int));
    ws->n8 = s_alloc(ch, sizeof(int));
    ws->lw = s_alloc(ch, sizeof(int));
    ws->tgt = s_alloc(ch, sizeof(uint32_t));
    ws->e = s_alloc(L8, sizeof(float));
    ws->list = s_alloc(per_ex, sizeof(uint32_t));
    ws->c_item = s_alloc(ncap, sizeof(uint32_t));
    ws->slot = s_alloc(n, sizeof(int32_t));
    ws->useen = s_alloc(n, sizeof(uint32_t));
    if (!ws->dT || !ws->dbias || !ws->dpos || (sh->mode != ATTN_TR_FULL && (!ws->QG || !ws->dQG)) ||
        !ws->KV || !ws->dKV || !ws->KT || !ws->VT || !ws->Z || !ws->S || !ws->dZ || !ws->dS ||
        !ws->mult || !ws->sg || !ws->bias || !ws->dbw || !ws->drop || !ws->cb || !ws->n8 ||
        !ws->lw || !ws->tgt || !ws->e || !ws->list || !ws->c_item || !ws->slot || !ws->useen) {
        attn_tr_ws_free(&ws);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        ws->slot[i] = -1;
    /* FULL: every model item is a row, row = item. */
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
    void *p[] = {ws->dT, ws->dbias, ws->dpos, ws->QG, ws->dQG, ws->KV, ws->dKV, ws->KT,
                 ws->VT, ws->Z, ws->S, ws->dZ, ws->dS, ws->mult, ws->sg, ws->bias, ws->dbw,
                 ws->drop, ws->cb, ws->n8, ws->lw, ws->tgt, ws->e, ws->list, ws->c_item,
                 ws->slot, ws->useen};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
    free(ws);
    *ws_p = NULL;
}

float *attn_tr_ws_dT(attn_tr_ws *ws) { return ws->dT; }
float *attn_tr_ws_dbias(attn_tr_ws *ws) { return ws->dbias; }
float *attn_tr_ws_dpos(attn_tr_ws *ws) { return ws->dpos; }
double attn_tr_ws_loss(const attn_tr_ws *ws) { return ws->loss; }

/* Only the accumulators; the chunk buffers are rebuilt per chunk. */
void attn_tr_ws_zero(attn_tr_ws *ws)
{
    memset(ws->dT, 0, ws->n_mi * 4 * ws->m * sizeof(float));
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

/* The candidate rows and each example's multiplicities.  Returns Nc. */
static int s_candidates(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                        const attn_tr_chunk *ch, const attn_tr_run *run, const uint32_t *ev)
{
    const int nex = (int)(ch->t1 - ch->t0);
    if (run->mode == ATTN_TR_FULL) {
        const int n = (int)net->n_mi;
        /* Row 0 holds the mask of the history so far; each example copies
         * it, then its own event joins the history. */
        uint32_t *base = ws->mult;
        for (int c = 0; c < n; c++)
            base[c] = 1;
        if (run->mask_seen)
            for (uint32_t i = 0; i < ch->t0; i++)
                base[v->row2mi[ev[i]]] = 0;
        for (int e = nex - 1; e >= 0; e--) {
            /* Fill from the last example down so that row 0 is read before
             * it is overwritten: example e's mask is row 0 plus the events
             * t0 .. t0+e-1. */
            uint32_t *row = ws->mult + (size_t)e * n;
            if (e > 0)
                memcpy(row, base, (size_t)n * sizeof *row);
            if (run->mask_seen)
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
    /* Rows first (so that Nc is known), then the counts. */
    for (int e = 0; e < nex; e++) {
        uint32_t t = ch->t0 + (uint32_t)e;
        int n = s_draw(net, ws, run, (uint32_t)v->row2mi[ev[t]], ch->u, t, e);
        for (int i = 0; i < n; i++)
            s_slot(ws, ws->list[i], &nc);
    }
    memset(ws->mult, 0, (size_t)nex * nc * sizeof *ws->mult);
    for (int e = 0; e < nex; e++) {
        uint32_t t = ch->t0 + (uint32_t)e;
        int n = s_draw(net, ws, run, (uint32_t)v->row2mi[ev[t]], ch->u, t, e);
        uint32_t *row = ws->mult + (size_t)e * nc;
        for (int i = 0; i < n; i++)
            row[ws->slot[ws->list[i]]]++;
        ws->tgt[e] = (uint32_t)ws->slot[ws->list[0]];
    }
    return nc;
}

/* Pass 1 over a block of rows: every example's score of each candidate. */
static void s_scores(const attn_tr_net *net, attn_tr_ws *ws, int nex, int Nc, int r0, int r1,
                     const float *ibias)
{
    const attn_tr_kern *k = ws->k;
    const int H = net->heads, Pp = ws->pp, L8 = ws->l8;
    const float scale = net->md->scale;
    const size_t plane = (size_t)Nc * Pp;
    for (int e = 0; e < nex; e++) {
        const uint32_t *mult = ws->mult + (size_t)e * Nc;
        float *score = ws->sg + (size_t)e * Nc;
        const float *bias = ws->bias + (size_t)e * L8;
        for (int c = r0; c < r1; c++) {
            if (!mult[c])
                continue;
            float sc = 0.0f, inv;
            for (int h = 0; h < H; h++) {
                const size_t row = h * plane + (size_t)c * Pp + ws->cb[e];
                sc += k->softmax_fwd(ws->Z + row, bias, scale, ws->n8[e], ws->S + row, ws->e,
                                     &inv);
            }
            score[c] = sc + (ibias ? ibias[ws->c_item[c]] : 0.0f);
        }
    }
}

/* The loss softmax of example e: its loss (unscaled), and g_c * loss_scale
 * in place of the scores.  NAN if a score is not finite. */
static double s_loss(attn_tr_ws *ws, int e, int Nc, float loss_scale)
{
    const uint32_t *mult = ws->mult + (size_t)e * Nc;
    float *sg = ws->sg + (size_t)e * Nc;
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
    for (int c = 0; c < Nc; c++)
        if (mult[c])
            sg[c] = (float)((mult[c] * exp(sg[c] - lse) - (c == (int)y ? 1.0 : 0.0)) * loss_scale);
    return loss;
}

/* Pass 2 over a block of rows: recompute each attention, go backward. */
static void s_backward(const attn_tr_net *net, attn_tr_ws *ws, int nex, int Nc, int r0, int r1,
                       const float *ibias)
{
    const attn_tr_kern *k = ws->k;
    const int H = net->heads, Pp = ws->pp, L8 = ws->l8;
    const float scale = net->md->scale;
    const size_t plane = (size_t)Nc * Pp;
    for (int e = 0; e < nex; e++) {
        const uint32_t *mult = ws->mult + (size_t)e * Nc;
        const float *g = ws->sg + (size_t)e * Nc;
        const float *bias = ws->bias + (size_t)e * L8;
        float *dbw = ws->dbw + (size_t)e * L8;
        for (int c = r0; c < r1; c++) {
            if (!mult[c] || g[c] == 0.0f)
                continue;
            if (ibias)
                ws->dbias[ws->c_item[c]] += g[c];
            for (int h = 0; h < H; h++) {
                const size_t row = h * plane + (size_t)c * Pp + ws->cb[e];
                float inv;
                float sc = k->softmax_fwd(ws->Z + row, bias, scale, ws->n8[e], ws->S + row,
                                          ws->e, &inv);
                k->softmax_bwd(ws->e, ws->S + row, sc, g[c] * inv, scale, ws->n8[e],
                               ws->dZ + row, ws->dS + row, dbw);
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
    const int m4 = 4 * m, m2 = 2 * m;
    const uint32_t *ev = sq->row + sq->off[ch->u];
    const float *w = sq->weight ? sq->weight + sq->off[ch->u] : NULL;
    const int nex = (int)(ch->t1 - ch->t0);
    const int c0 = (int)ch->t0 > L ? (int)ch->t0 - L : 0;
    const int P = (int)ch->t1 - 1 - c0;           /* columns: events c0 .. t1-2 */
    const int Pp = ws->pp;                         /* row stride of Z & co */
    const int ncols = (P + 8 + 15) & ~15;          /* columns computed: windows may
                                                      read up to 7 past P */
    const int Nc = s_candidates(net, v, ws, ch, run, ev);

    /* The columns' [k | v] as rows and, transposed, as KT and VT (zero past
     * P); the candidates' [q | g], gathered unless every item is one. */
    for (int p = 0; p < P; p++) {
        const float *tr = net->T + (size_t)v->row2mi[ev[c0 + p]] * m4 + ATTN_TR_K * m;
        memcpy(ws->KV + (size_t)p * m2, tr, (size_t)m2 * sizeof(float));
        for (int i = 0; i < m; i++) {
            ws->KT[(size_t)i * Pp + p] = tr[i];
            ws->VT[(size_t)i * Pp + p] = tr[m + i];
        }
    }
    for (int i = 0; i < m; i++) {
        memset(ws->KT + (size_t)i * Pp + P, 0, (size_t)(ncols - P) * sizeof(float));
        memset(ws->VT + (size_t)i * Pp + P, 0, (size_t)(ncols - P) * sizeof(float));
    }
    const float *Qb, *Gb;
    int ldq;
    if (run->mode == ATTN_TR_FULL) {
        Qb = net->T + ATTN_TR_Q * m;
        Gb = net->T + ATTN_TR_G * m;
        ldq = m4;
    } else {
        for (int c = 0; c < Nc; c++) {
            const float *tr = net->T + (size_t)ws->c_item[c] * m4;
            memcpy(ws->QG + (size_t)c * m2, tr + ATTN_TR_Q * m, (size_t)m * sizeof(float));
            memcpy(ws->QG + (size_t)c * m2 + m, tr + ATTN_TR_G * m, (size_t)m * sizeof(float));
        }
        Qb = ws->QG;
        Gb = ws->QG + m;
        ldq = m2;
    }
    /* Z_h = Q_h K_hᵀ and S_h = G_h V_hᵀ over the chunk's columns. */
    const size_t plane = (size_t)Nc * Pp;
    for (int h = 0; h < H; h++) {
        k->mm_nn(Nc, ncols, dh, Qb + h * dh, (size_t)ldq, ws->KT + (size_t)h * dh * Pp,
                 (size_t)Pp, ws->Z + h * plane, (size_t)Pp, 0);
        k->mm_nn(Nc, ncols, dh, Gb + h * dh, (size_t)ldq, ws->VT + (size_t)h * dh * Pp,
                 (size_t)Pp, ws->S + h * plane, (size_t)Pp, 0);
    }
    memset(ws->dZ, 0, (size_t)H * plane * sizeof(float));
    memset(ws->dS, 0, (size_t)H * plane * sizeof(float));

    /* Each example's window: bias by position (newest = position 0 = last
     * column), dropout, padding to a multiple of 8. */
    for (int e = 0; e < nex; e++) {
        const int t = (int)ch->t0 + e;
        const int w0 = t > L ? t - L : 0, Lw = t - w0, n8 = (Lw + 7) & ~7;
        float *bias = ws->bias + (size_t)e * L8;
        uint8_t *drop = ws->drop + (size_t)e * L8;
        ws->cb[e] = w0 - c0;
        ws->lw[e] = Lw;
        ws->n8[e] = n8;
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
        for (int j = 0; j < n8; j++)
            if (j >= Lw || drop[j])
                bias[j] = ATTN_TR_NEG;
        memset(ws->dbw + (size_t)e * L8, 0, (size_t)L8 * sizeof(float));
    }

    const float *ibias = run->use_item_bias ? net->md->item_bias : NULL;
    for (int r0 = 0; r0 < Nc; r0 += S_BLOCK)
        s_scores(net, ws, nex, Nc, r0, r0 + S_BLOCK < Nc ? r0 + S_BLOCK : Nc, ibias);
    int st = ATTN_OK;
    for (int e = 0; e < nex && st == ATTN_OK; e++) {
        double loss = s_loss(ws, e, Nc, run->loss_scale);
        if (!isfinite(loss))
            st = ATTN_ERANGE;
        else
            ws->loss += loss * run->loss_scale;
    }

    if (st == ATTN_OK) {
        for (int r0 = 0; r0 < Nc; r0 += S_BLOCK)
            s_backward(net, ws, nex, Nc, r0, r0 + S_BLOCK < Nc ? r0 + S_BLOCK : Nc, ibias);
        for (int e = 0; e < nex; e++) {
            const float *dbw = ws->dbw + (size_t)e * L8;
            const uint8_t *drop = ws->drop + (size_t)e * L8;
            const int Lw = ws->lw[e];
            for (int j = 0; j < Lw; j++)
                if (!drop[j])
                    ws->dpos[Lw - 1 - j] += dbw[j];
        }
        /* dQ_h (+)= dZ_h K_h, dG_h (+)= dS_h V_h, dK_h = dZ_hᵀ Q_h, dV_h = dS_hᵀ G_h.
         * With full softmax dQ, dG land in dT directly. */
        float *dQb, *dGb;
        int lddq, acc = run->mode == ATTN_TR_FULL;
        if (acc) {
            dQb = ws->dT + ATTN_TR_Q * m;
            dGb = ws->dT + ATTN_TR_G * m;
            lddq = m4;
        } else {
            dQb = ws->dQG;
            dGb = ws->dQG + m;
            lddq = m2;
        }
        for (int h = 0; h < H; h++) {
            const float *dz = ws->dZ + h * plane, *ds = ws->dS + h * plane;
            k->mm_nn(Nc, dh, P, dz, (size_t)Pp, ws->KV + h * dh, (size_t)m2, dQb + h * dh,
                     (size_t)lddq, acc);
            k->mm_nn(Nc, dh, P, ds, (size_t)Pp, ws->KV + m + h * dh, (size_t)m2, dGb + h * dh,
                     (size_t)lddq, acc);
            k->mm_tn(Nc, P, dh, dz, (size_t)Pp, Qb + h * dh, (size_t)ldq, ws->dKV + h * dh,
                     (size_t)m2, 0);
            k->mm_tn(Nc, P, dh, ds, (size_t)Pp, Gb + h * dh, (size_t)ldq, ws->dKV + m + h * dh,
                     (size_t)m2, 0);
        }
        /* Scatter the gathered rows' gradients into dT, in a fixed order. */
        for (int p = 0; p < P; p++) {
            float *dt = ws->dT + (size_t)v->row2mi[ev[c0 + p]] * m4 + ATTN_TR_K * m;
            const float *src = ws->dKV + (size_t)p * m2;
            for (int i = 0; i < m2; i++)
                dt[i] += src[i];
        }
        if (!acc)
            for (int c = 0; c < Nc; c++) {
                float *dt = ws->dT + (size_t)ws->c_item[c] * m4;
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
