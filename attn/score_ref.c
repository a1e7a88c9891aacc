/* score_ref.c -- the reference scorer: the test oracle for the fast path.
 *
 * Written to be obviously right rather than fast: every quantity of the
 * formula in docs/MODEL.md is computed from the model's own matrices with
 * plain loops in double precision.  It shares no code with the fast path
 * (tables.c, score.c, kern_*.c) on purpose, so that a mistake in the fast
 * path's algebra (the W_O e trick, precomputed tables, the packed layouts,
 * the polynomial exp) cannot be repeated here and cancel out in the tests.
 */
#include "attn/score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

/* out[0..m) = e[0..d) W, W row-major d x m; NULL W is the identity (m == d). */
static void s_row_times(const double *e, const float *w, int d, int m, double *out)
{
    if (!w) {
        memcpy(out, e, (size_t)d * sizeof *out);
        return;
    }
    for (int t = 0; t < m; t++)
        out[t] = 0.0;
    for (int i = 0; i < d; i++)
        for (int t = 0; t < m; t++)
            out[t] += e[i] * (double)w[(size_t)i * m + t];
}

/* The effective embedding of catalog row r: text embedding + residual. */
static void s_effective(const attn_model *md, const float *emb, size_t ld,
                        const int64_t *param_index, uint32_t r, double *out)
{
    const float *x = emb + (size_t)r * ld;
    int64_t p = param_index ? param_index[r] : -1;
    for (int i = 0; i < md->d; i++)
        out[i] = (double)x[i];
    if (p >= 0 && md->residual)
        for (int i = 0; i < md->d; i++)
            out[i] += (double)md->residual[(size_t)p * md->d + i];
}

static int s_check(const attn_model *md, const float *emb, size_t n, size_t ld,
                   const int64_t *param_index, const attn_request *rq, const double *scores)
{
    if (!md || !emb || !rq || !scores || !rq->hist || !rq->cand)
        return ATTN_EINVAL;
    if (md->d < 1 || md->m < 1 || md->heads < 1 || md->m % md->heads ||
        ld < (size_t)md->d || ((!md->wq || !md->wk || !md->wv || !md->wo) && md->m != md->d))
        return ATTN_EINVAL;
    if (rq->n_hist < 1 || rq->n_hist > md->l_max || rq->n_cand < 1 || rq->n_ctx < 0)
        return ATTN_EINVAL;
    for (int j = 0; j < rq->n_hist + rq->n_ctx; j++)
        if (rq->hist[j] >= n)
            return ATTN_EINVAL;
    for (int j = 0; j < rq->n_hist; j++)
        if (rq->hist_weight && !(rq->hist_weight[j] > 0.0f && isfinite(rq->hist_weight[j])))
            return ATTN_EINVAL;
    for (int c = 0; c < rq->n_cand; c++)
        if (rq->cand[c] >= n)
            return ATTN_EINVAL;
    if (param_index) {
        for (int j = 0; j < rq->n_hist + rq->n_ctx; j++)
            if (param_index[rq->hist[j]] < -1 || param_index[rq->hist[j]] >= md->n_items)
                return ATTN_EINVAL;
        for (int c = 0; c < rq->n_cand; c++)
            if (param_index[rq->cand[c]] < -1 || param_index[rq->cand[c]] >= md->n_items)
                return ATTN_EINVAL;
    }
    return ATTN_OK;
}

int attn_score_ref(const attn_model *md, const float *emb, size_t n, size_t ld,
                   const int64_t *param_index, const attn_request *rq,
                   double *scores, double *weights)
{
    int st = s_check(md, emb, n, ld, param_index, rq, scores);
    if (st != ATTN_OK)
        return st;
    const int d = md->d, m = md->m, H = md->heads, dh = m / H, L = rq->n_hist;
    const int Ls = md->sa_len;
    /* With a block, up to Ls - 1 older events are context (score.h). */
    const int n_ctx = Ls > 0 ? (rq->n_ctx < Ls - 1 ? rq->n_ctx : Ls - 1) : 0, Lc = L + n_ctx;
    size_t need = (size_t)L * m * 2        /* k, v of every history row */
                + (size_t)Lc * m * 4       /* sq, sk, uk, uv of every history and context row */
                + (size_t)(Ls > 0 ? Ls : 1) /* self-attention weights of one row */
                + (size_t)d * 2            /* e_c, u */
                + (size_t)m * 2            /* q, ctx */
                + (size_t)L * H            /* a[h][j] */
                + (size_t)L;               /* logit bias of every position */
    double *buf = malloc(need * sizeof *buf);
    if (!buf)
        return ATTN_ENOMEM;
    double *k = buf, *v = k + (size_t)L * m, *e = v + (size_t)L * m, *u = e + d;
    double *q = u + d, *ctx = q + m, *a = ctx + m, *lb = a + (size_t)L * H;
    double *sq = lb + L, *sk = sq + (size_t)Lc * m, *uk = sk + (size_t)Lc * m;
    double *uv = uk + (size_t)Lc * m, *sw = uv + (size_t)Lc * m;

    for (int j = 0; j < Lc; j++) {
        s_effective(md, emb, ld, param_index, rq->hist[j], e);
        if (j < L) {
            s_row_times(e, md->wk, d, m, k + (size_t)j * m);
            s_row_times(e, md->wv, d, m, v + (size_t)j * m);
            double w = rq->hist_weight ? (double)rq->hist_weight[j] : 1.0;
            lb[j] = (md->pos_bias ? (double)md->pos_bias[j] : 0.0) + log(w);
        }
        if (Ls > 0) {
            s_row_times(e, md->sa_q, d, m, sq + (size_t)j * m);
            s_row_times(e, md->sa_k, d, m, sk + (size_t)j * m);
            s_row_times(e, md->sa_uk, d, m, uk + (size_t)j * m);
            s_row_times(e, md->sa_uv, d, m, uv + (size_t)j * m);
        }
    }
    /* The self-attention block (docs/MODEL.md §2.1): event j (newest first)
     * attends to itself and the events before it, positions j .. j+Ls-1
     * that the history and its context hold; i is the distance.  It reads
     * sq, sk, uk, uv and writes only k, v, so the order of j does not
     * matter. */
    for (int j = 0; j < L && Ls > 0; j++) {
        int nw = Lc - j < Ls ? Lc - j : Ls;
        double zmax = -INFINITY, sum = 0.0;
        for (int i = 0; i < nw; i++) {
            double dot = 0.0;
            for (int t = 0; t < m; t++)
                dot += sq[(size_t)j * m + t] * sk[(size_t)(j + i) * m + t];
            sw[i] = dot / sqrt((double)m) + (double)md->sa_pos[i];
            zmax = sw[i] > zmax ? sw[i] : zmax;
        }
        for (int i = 0; i < nw; i++)
            sum += (sw[i] = exp(sw[i] - zmax));
        for (int i = 0; i < nw; i++)
            for (int t = 0; t < m; t++) {
                k[(size_t)j * m + t] += sw[i] / sum * uk[(size_t)(j + i) * m + t];
                v[(size_t)j * m + t] += sw[i] / sum * uv[(size_t)(j + i) * m + t];
            }
    }
    for (int c = 0; c < rq->n_cand; c++) {
        uint32_t row = rq->cand[c];
        s_effective(md, emb, ld, param_index, row, e);
        s_row_times(e, md->wq, d, m, q);
        for (int h = 0; h < H; h++) {
            double *ah = a + (size_t)h * L, zmax = -INFINITY, sum = 0.0;
            for (int j = 0; j < L; j++) {
                double dot = 0.0;
                for (int t = h * dh; t < (h + 1) * dh; t++)
                    dot += q[t] * k[(size_t)j * m + t];
                ah[j] = (double)md->scale * dot + lb[j];
                if (ah[j] > zmax)
                    zmax = ah[j];
            }
            for (int j = 0; j < L; j++) {
                ah[j] = exp(ah[j] - zmax);
                sum += ah[j];
            }
            for (int j = 0; j < L; j++)
                ah[j] /= sum;
            for (int t = h * dh; t < (h + 1) * dh; t++) {
                ctx[t] = 0.0;
                for (int j = 0; j < L; j++)
                    ctx[t] += ah[j] * v[(size_t)j * m + t];
            }
        }
        s_row_times(ctx, md->wo, m, d, u);
        double s = 0.0;
        for (int i = 0; i < d; i++)
            s += u[i] * e[i];
        int64_t p = param_index ? param_index[row] : -1;
        if (p >= 0 && md->item_bias)
            s += (double)md->item_bias[p];
        scores[c] = s;
        if (weights)
            for (int j = 0; j < L; j++) {
                double w = 0.0;
                for (int h = 0; h < H; h++)
                    w += a[(size_t)h * L + j];
                weights[(size_t)c * L + j] = w / H;
            }
    }
    free(buf);
    return ATTN_OK;
}
