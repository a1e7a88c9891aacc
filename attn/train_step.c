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
 * Per example and head only O(|C| L) scalar work remains (the softmax and
 * its derivative); the products cost O(|C| (chunk + L) m) per chunk instead
 * of O(|C| L m) per example.
 *
 * Derivatives, for one example, candidate c and head h (s_j = S[c][j],
 * sc = sum_j a_j s_j, g = dLoss/dscore_c):
 *     dS[c][j] = g a_j
 *     dz_j     = g a_j (s_j - sc)        (softmax Jacobian)
 *     dZ[c][j] = scale dz_j,   dpos[position of j] += dz_j
 */
#include "attn/train_int.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

struct attn_tr_ws {
    attn_tr_shape sh;
    int ncap;            /* most candidate rows in a chunk */
    int pcap;            /* most columns in a chunk: chunk + l_max - 1 */
    int lcap;            /* most candidates of one example */
    float *dT;           /* n_mi x 4m gradient accumulator */
    float *dbias;        /* n_mi */
    float *dpos;         /* l_max */
    double loss;         /* summed (scaled) loss */
    float *QG;           /* ncap x 2m gathered [q | g] (not FULL) */
    float *dQG;          /* ncap x 2m */
    float *KV;           /* pcap x 2m gathered [k | v] of the columns */
    float *dKV;          /* pcap x 2m */
    float *Z, *S;        /* heads x ncap x pcap */
    float *dZ, *dS;      /* heads x ncap x pcap */
    float *A;            /* lcap x heads x l_max: attention of the current example */
    float *SC;           /* lcap x heads: per-head score parts */
    double *score;       /* lcap */
    uint32_t *list;      /* lcap: candidate slots of the current example */
    uint32_t *c_item;    /* ncap: model item of each slot */
    int32_t *slot;       /* n_mi: slot of an item in this chunk, or -1 */
    uint32_t *seen;      /* n_mi: stamp of items in the history so far */
    uint32_t *useen;     /* n_mi: stamp of the user's training items */
    uint32_t stamp;      /* current stamp for seen / useen */
    float *bias;         /* l_max: logit bias of the window's events */
    float *dbw;          /* l_max: d loss / d bias of the window's events */
    uint8_t *drop;       /* l_max: dropped events of the window */
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
    const size_t n = (size_t)net->n_mi, m = (size_t)net->m, H = (size_t)net->heads;
    const size_t L = (size_t)net->l_max;
    size_t per_ex;
    if (sh->mode == ATTN_TR_FULL)
        per_ex = n;
    else if (sh->mode == ATTN_TR_SAMPLED)
        per_ex = (size_t)sh->neg + 1;
    else
        per_ex = (size_t)sh->n_cand;
    size_t ncap = sh->mode == ATTN_TR_FULL ? n : per_ex * (size_t)sh->chunk;
    if (ncap > n)
        ncap = n;
    ws->ncap = (int)ncap;
    ws->lcap = (int)per_ex;
    ws->pcap = sh->chunk + net->l_max - 1;
    const size_t P = (size_t)ws->pcap;
    ws->dT = s_alloc(n * 4 * m, sizeof(float));
    ws->dbias = s_alloc(n, sizeof(float));
    ws->dpos = s_alloc(L, sizeof(float));
    if (sh->mode != ATTN_TR_FULL) {
        ws->QG = s_alloc(ncap * 2 * m, sizeof(float));
        ws->dQG = s_alloc(ncap * 2 * m, sizeof(float));
    }
    ws->KV = s_alloc(P * 2 * m, sizeof(float));
    ws->dKV = s_alloc(P * 2 * m, sizeof(float));
    ws->Z = s_alloc(H * ncap * P, sizeof(float));
    ws->S = s_alloc(H * ncap * P, sizeof(float));
    ws->dZ = s_alloc(H * ncap * P, sizeof(float));
    ws->dS = s_alloc(H * ncap * P, sizeof(float));
    ws->A = s_alloc(per_ex * H * L, sizeof(float));
    ws->SC = s_alloc(per_ex * H, sizeof(float));
    ws->score = s_alloc(per_ex, sizeof(double));
    ws->list = s_alloc(per_ex, sizeof(uint32_t));
    ws->c_item = s_alloc(ncap, sizeof(uint32_t));
    ws->slot = s_alloc(n, sizeof(int32_t));
    ws->seen = s_alloc(n, sizeof(uint32_t));
    ws->useen = s_alloc(n, sizeof(uint32_t));
    ws->bias = s_alloc(L, sizeof(float));
    ws->dbw = s_alloc(L, sizeof(float));
    ws->drop = s_alloc(L, 1);
    if (!ws->dT || !ws->dbias || !ws->dpos || (sh->mode != ATTN_TR_FULL && (!ws->QG || !ws->dQG)) ||
        !ws->KV || !ws->dKV || !ws->Z || !ws->S || !ws->dZ || !ws->dS || !ws->A || !ws->SC ||
        !ws->score || !ws->list || !ws->c_item || !ws->slot || !ws->seen || !ws->useen ||
        !ws->bias || !ws->dbw || !ws->drop) {
        attn_tr_ws_free(&ws);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        ws->slot[i] = -1;
    /* FULL: every model item is a row, slot = item. */
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
    free(ws->dT);
    free(ws->dbias);
    free(ws->dpos);
    free(ws->QG);
    free(ws->dQG);
    free(ws->KV);
    free(ws->dKV);
    free(ws->Z);
    free(ws->S);
    free(ws->dZ);
    free(ws->dS);
    free(ws->A);
    free(ws->SC);
    free(ws->score);
    free(ws->list);
    free(ws->c_item);
    free(ws->slot);
    free(ws->seen);
    free(ws->useen);
    free(ws->bias);
    free(ws->dbw);
    free(ws->drop);
    free(ws);
    *ws_p = NULL;
}

float *attn_tr_ws_dT(attn_tr_ws *ws) { return ws->dT; }
float *attn_tr_ws_dbias(attn_tr_ws *ws) { return ws->dbias; }
float *attn_tr_ws_dpos(attn_tr_ws *ws) { return ws->dpos; }
double attn_tr_ws_loss(const attn_tr_ws *ws) { return ws->loss; }

/* Only the accumulators; the chunk buffers are cleared per chunk. */
void attn_tr_ws_zero(attn_tr_ws *ws)
{
    memset(ws->dT, 0, ws->n_mi * 4 * ws->m * sizeof(float));
    memset(ws->dbias, 0, ws->n_mi * sizeof(float));
    memset(ws->dpos, 0, ws->l_max * sizeof(float));
    ws->loss = 0.0;
}

/* A fresh stamp for the seen / useen marks; clears them on wrap-around. */
static uint32_t s_stamp(attn_tr_ws *ws, size_t n)
{
    if (++ws->stamp == 0) {
        memset(ws->seen, 0, n * sizeof *ws->seen);
        memset(ws->useen, 0, n * sizeof *ws->useen);
        ws->stamp = 1;
    }
    return ws->stamp;
}

/* Slot of model item mi among the chunk's candidate rows, adding it. */
static int s_slot(attn_tr_ws *ws, uint32_t mi, int *nc)
{
    if (ws->slot[mi] < 0) {
        ws->slot[mi] = *nc;
        ws->c_item[*nc] = mi;
        (*nc)++;
    }
    return ws->slot[mi];
}

/* The candidates of example (u, t) as slots into ws->list; the target's
 * entry is list[0].  Returns the count.  SAMPLED draws `neg` items uniformly
 * from model items outside the user's training items (rejection; after 64
 * failed tries an item other than the target is accepted, so a user who has
 * seen nearly everything cannot stall the loop). */
static int s_candidates(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_run *run,
                        uint32_t target, uint32_t u, uint32_t t, int ex, int *nc)
{
    int n = 0;
    if (run->mode == ATTN_TR_FULL) {
        ws->list[n++] = target;
        for (uint32_t i = 0; i < (uint32_t)net->n_mi; i++) {
            if (i == target || (run->mask_seen && ws->seen[i] == ws->stamp))
                continue;
            ws->list[n++] = i;
        }
        return n;
    }
    if (run->mode == ATTN_TR_EXPLICIT) {
        const uint32_t *c = run->cand + (size_t)ex * run->n_cand;
        for (int i = 0; i < run->n_cand; i++)
            ws->list[n++] = (uint32_t)s_slot(ws, c[i], nc);
        return n;
    }
    ws->list[n++] = (uint32_t)s_slot(ws, target, nc);
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
        ws->list[n++] = (uint32_t)s_slot(ws, it, nc);
    }
    return n;
}

/* Forward and backward of one example whose history is the window of
 * columns [cb, cb + Lw) (newest last).  Returns its loss (unscaled). */
static double s_example(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_run *run,
                        int n_list, int nc_ld, int cb, int Lw, const float *ibias)
{
    const int H = net->heads, P = ws->pcap;
    const float scale = net->md->scale;
    const size_t plane = (size_t)nc_ld * P;
    /* Forward: attention, per-head score parts, scores. */
    double mx = -INFINITY;
    for (int i = 0; i < n_list; i++) {
        const uint32_t c = ws->list[i];
        double sc_all = 0.0;
        for (int h = 0; h < H; h++) {
            const float *z = ws->Z + h * plane + (size_t)c * P + cb;
            const float *s = ws->S + h * plane + (size_t)c * P + cb;
            float *a = ws->A + ((size_t)i * H + h) * Lw;
            float zmax = -INFINITY;
            for (int j = 0; j < Lw; j++) {
                a[j] = scale * z[j] + ws->bias[j];
                zmax = a[j] > zmax ? a[j] : zmax;
            }
            float sum = 0.0f;
            for (int j = 0; j < Lw; j++) {
                a[j] = expf(a[j] - zmax);
                sum += a[j];
            }
            const float inv = 1.0f / sum;
            float dot = 0.0f;
            for (int j = 0; j < Lw; j++) {
                a[j] *= inv;
                dot += a[j] * s[j];
            }
            ws->SC[(size_t)i * H + h] = dot;
            sc_all += dot;
        }
        if (ibias)
            sc_all += ibias[ws->c_item[c]];
        ws->score[i] = sc_all;
        if (sc_all > mx)
            mx = sc_all;
    }
    if (!isfinite(mx))
        return NAN;
    double sum = 0.0;
    for (int i = 0; i < n_list; i++)
        sum += exp(ws->score[i] - mx);
    const double lse = mx + log(sum);
    const double loss = lse - ws->score[0];
    /* Backward. */
    for (int i = 0; i < n_list; i++) {
        const uint32_t c = ws->list[i];
        double p = exp(ws->score[i] - lse);
        const float g = (float)((p - (i == 0 ? 1.0 : 0.0)) * run->loss_scale);
        if (g == 0.0f)
            continue;
        if (ibias)
            ws->dbias[ws->c_item[c]] += g;
        for (int h = 0; h < H; h++) {
            const float *s = ws->S + h * plane + (size_t)c * P + cb;
            float *dz = ws->dZ + h * plane + (size_t)c * P + cb;
            float *ds = ws->dS + h * plane + (size_t)c * P + cb;
            const float *a = ws->A + ((size_t)i * H + h) * Lw;
            const float sc = ws->SC[(size_t)i * H + h];
            for (int j = 0; j < Lw; j++) {
                const float ga = g * a[j];
                const float dzz = ga * (s[j] - sc);
                ds[j] += ga;
                dz[j] += scale * dzz;
                ws->dbw[j] += dzz;
            }
        }
    }
    return loss;
}

int attn_tr_chunk_run(const attn_tr_net *net, const attn_tr_view *v, attn_tr_ws *ws,
                      const attn_tr_chunk *ch, const attn_tr_run *run)
{
    const attn_seqs *sq = v->seqs;
    const int m = net->m, H = net->heads, dh = net->dh, L = net->l_max;
    const int m4 = 4 * m, m2 = 2 * m;
    const uint32_t *ev = sq->row + sq->off[ch->u];
    const float *w = sq->weight ? sq->weight + sq->off[ch->u] : NULL;
    const int c0 = (int)ch->t0 > L ? (int)ch->t0 - L : 0;
    const int P = (int)ch->t1 - 1 - c0;         /* columns: events c0 .. t1-2 */
    const int Pl = ws->pcap;                     /* leading dimension of Z & co */
    const size_t nmi = (size_t)net->n_mi;
    const uint32_t stamp = s_stamp(ws, nmi);

    /* Marks: the history before t0 (mask) and the user's training items
     * (negatives avoid them). */
    if (run->mode == ATTN_TR_FULL && run->mask_seen)
        for (uint32_t i = 0; i < ch->t0; i++)
            ws->seen[v->row2mi[ev[i]]] = stamp;
    if (run->mode == ATTN_TR_SAMPLED) {
        uint64_t n_train = attn_eval_train_len(sq, ch->u);
        for (uint64_t i = 0; i < n_train; i++)
            ws->useen[v->row2mi[ev[i]]] = stamp;
    }

    /* Candidate lists first (sampled: they define the chunk's rows).  The
     * lists of all examples are kept by regenerating them below: drawing is
     * deterministic per (seed, epoch, user, t). */
    int nc = 0;
    if (run->mode != ATTN_TR_FULL)
        for (uint32_t t = ch->t0; t < ch->t1; t++)
            s_candidates(net, ws, run, (uint32_t)v->row2mi[ev[t]], ch->u, t,
                         (int)(t - ch->t0), &nc);
    const int Nc = run->mode == ATTN_TR_FULL ? (int)nmi : nc;

    /* Gather the columns' [k | v] and, if sampled, the rows' [q | g]. */
    for (int p = 0; p < P; p++) {
        const float *tr = net->T + (size_t)v->row2mi[ev[c0 + p]] * m4;
        memcpy(ws->KV + (size_t)p * m2, tr + ATTN_TR_K * m, (size_t)m2 * sizeof(float));
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
    const size_t plane = (size_t)Nc * Pl;
    for (int h = 0; h < H; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Nc, P, dh, 1.0f, Qb + h * dh, ldq,
                    ws->KV + h * dh, m2, 0.0f, ws->Z + h * plane, Pl);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Nc, P, dh, 1.0f, Gb + h * dh, ldq,
                    ws->KV + m + h * dh, m2, 0.0f, ws->S + h * plane, Pl);
    }
    memset(ws->dZ, 0, (size_t)H * plane * sizeof(float));
    memset(ws->dS, 0, (size_t)H * plane * sizeof(float));

    const float *ibias = run->use_item_bias ? net->md->item_bias : NULL;
    int st = ATTN_OK;
    for (uint32_t t = ch->t0; t < ch->t1; t++) {
        const int w0 = (int)t > L ? (int)t - L : 0;
        const int Lw = (int)t - w0, cb = w0 - c0;
        /* Bias by position (newest = position 0 = last column) and dropout. */
        attn_eval_rng rng = attn_eval_rng_for(run->seed ^ (run->epoch * 0xC2B2AE3D27D4EB4Full),
                                              ch->u, (uint64_t)t << 1);
        int kept = 0;
        for (int j = 0; j < Lw; j++) {
            const int pos = Lw - 1 - j;
            ws->drop[j] = run->dropout > 0.0 && attn_eval_rng_unit(&rng) < run->dropout;
            kept += !ws->drop[j];
            ws->bias[j] = net->md->pos_bias[pos] + (w ? logf(w[w0 + j]) : 0.0f);
            ws->dbw[j] = 0.0f;
        }
        if (kept == 0)
            ws->drop[Lw - 1] = 0;   /* always keep the newest event */
        for (int j = 0; j < Lw; j++)
            if (ws->drop[j])
                ws->bias[j] = -INFINITY;
        const uint32_t target = (uint32_t)v->row2mi[ev[t]];
        int n_list;
        if (run->mode == ATTN_TR_FULL) {
            n_list = s_candidates(net, ws, run, target, ch->u, t, 0, &nc);
        } else {
            int dummy = nc;
            n_list = s_candidates(net, ws, run, target, ch->u, t, (int)(t - ch->t0), &dummy);
        }
        double loss = s_example(net, ws, run, n_list, Nc, cb, Lw, ibias);
        if (!isfinite(loss)) {
            st = ATTN_ERANGE;
            break;
        }
        ws->loss += loss * run->loss_scale;
        for (int j = 0; j < Lw; j++)
            if (!ws->drop[j])
                ws->dpos[Lw - 1 - j] += ws->dbw[j];
        if (run->mode == ATTN_TR_FULL && run->mask_seen)
            ws->seen[target] = stamp;
    }

    if (st == ATTN_OK) {
        /* dQ_h = dZ_h K_h, dK_h = dZ_hᵀ Q_h, dG_h = dS_h V_h, dV_h = dS_hᵀ G_h. */
        float *dQb, *dGb;
        int lddq;
        if (run->mode == ATTN_TR_FULL) {
            dQb = ws->dT + ATTN_TR_Q * m;
            dGb = ws->dT + ATTN_TR_G * m;
            lddq = m4;
        } else {
            dQb = ws->dQG;
            dGb = ws->dQG + m;
            lddq = m2;
        }
        const float beta = run->mode == ATTN_TR_FULL ? 1.0f : 0.0f;
        for (int h = 0; h < H; h++) {
            const float *dz = ws->dZ + h * plane, *ds = ws->dS + h * plane;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Nc, dh, P, 1.0f, dz, Pl,
                        ws->KV + h * dh, m2, beta, dQb + h * dh, lddq);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Nc, dh, P, 1.0f, ds, Pl,
                        ws->KV + m + h * dh, m2, beta, dGb + h * dh, lddq);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, dh, Nc, 1.0f, dz, Pl,
                        Qb + h * dh, ldq, 0.0f, ws->dKV + h * dh, m2);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, dh, Nc, 1.0f, ds, Pl,
                        Gb + h * dh, ldq, 0.0f, ws->dKV + m + h * dh, m2);
        }
        /* Scatter the gathered rows' gradients into dT, in a fixed order. */
        for (int p = 0; p < P; p++) {
            float *dt = ws->dT + (size_t)v->row2mi[ev[c0 + p]] * m4 + ATTN_TR_K * m;
            const float *src = ws->dKV + (size_t)p * m2;
            for (int i = 0; i < m2; i++)
                dt[i] += src[i];
        }
        if (run->mode != ATTN_TR_FULL)
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
