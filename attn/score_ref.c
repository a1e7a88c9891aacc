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
#include "attn/bf16.h"

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

/* The block's feed-forward layer on one event's row (docs/MODEL.md §2.2):
 * x = [k | v] (2m), x += relu(x W1 + b1) W2 + b2.  tmp holds 2m + ffn. */
static void s_ffn_row(const attn_model *md, double *k, double *v, double *tmp)
{
    const int m = md->m, f = md->ffn, w = 2 * m;
    double *x = tmp, *h = tmp + w;
    for (int t = 0; t < m; t++) {
        x[t] = k[t];
        x[m + t] = v[t];
    }
    for (int c = 0; c < f; c++) {
        double a = (double)md->ffn_b1[c];
        for (int t = 0; t < w; t++)
            a += x[t] * (double)md->ffn_w1[(size_t)t * f + c];
        h[c] = a > 0.0 ? a : 0.0;
    }
    for (int t = 0; t < w; t++) {
        double y = x[t] + (double)md->ffn_b2[t];
        for (int c = 0; c < f; c++)
            y += h[c] * (double)md->ffn_w2[(size_t)c * w + t];
        if (t < m)
            k[t] = y;
        else
            v[t - m] = y;
    }
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
    if (md->ffn > 0 && (md->sa_len < 1 || !md->ffn_w1 || !md->ffn_b1 || !md->ffn_w2 ||
                        !md->ffn_b2))
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
                + (size_t)L                /* logit bias of every position */
                + (size_t)(md->ffn > 0 ? 2 * m + md->ffn : 0);   /* one row's feed-forward */
    double *buf = malloc(need * sizeof *buf);
    if (!buf)
        return ATTN_ENOMEM;
    double *k = buf, *v = k + (size_t)L * m, *e = v + (size_t)L * m, *u = e + d;
    double *q = u + d, *ctx = q + m, *a = ctx + m, *lb = a + (size_t)L * H;
    double *sq = lb + L, *sk = sq + (size_t)Lc * m, *uk = sk + (size_t)Lc * m;
    double *uv = uk + (size_t)Lc * m, *sw = uv + (size_t)Lc * m;
    double *ft = sw + (Ls > 0 ? Ls : 1);

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
        if (md->ffn > 0)
            s_ffn_row(md, k + (size_t)j * m, v + (size_t)j * m, ft);
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

/* ---- how far rounded tables may move a score --------------------------------
 *
 * Tables of precision u (bfloat16: u = 2^-8, 8 significant bits rounded to
 * nearest, bf16.h) store every element x of the rows a request
 * reads as x(1 + d) with |d| <= u; the arithmetic after that is float, and
 * its own error (~1e-6 relative) is the float tolerance's business.  What
 * rounding the rows alone can do to one head's term of a score, with every
 * error aligned against us:
 *
 *   1. A stored vector x~ has a radius r >= |x~ - x| per element: r = u|x|
 *      where the tables store x itself (ALL), r = u |e| |W| where they store
 *      the text embedding e and project per request (NONE; the residual is
 *      added in float, so it is exact).
 *   2. A product of two: |x~ y~ - x y| <= |x| ry + rx |y| + rx ry, so a
 *      logit moves by at most B_j = scale sum_t (|q_t| rk_jt + rq_t |k_jt| +
 *      rq_t rk_jt); let B = max_j B_j.
 *   3. Softmax: a~_j = a_j e^dz_j / sum_i a_i e^dz_i with |dz| <= B, so
 *      a~_j / a_j lies in [e^-2B, e^2B] and |a~_j - a_j| <= a_j (e^2B - 1).
 *   4. The value terms s_j = v_j . g move by R_j = sum_t (|g_t| rv_jt +
 *      rg_t |v_jt| + rg_t rv_jt).
 *   5. sum a~ s~ - sum a s = sum (a~ - a) s~ + sum a (s~ - s), so the head's
 *      term moves by at most (e^2B - 1) max_j (|s_j| + R_j) + max_j R_j,
 *      and a score by the sum of that over heads (item bias: exact).
 *   6. A self-attention block turns k into k' = k + sum_i alpha_i uk_i: its
 *      radius is rk + sum alpha ruk + (e^2B' - 1) sum alpha (|uk| + ruk),
 *      with B' from sq and sk as in 2 (scale 1/sqrt(m)) -- the same steps,
 *      one level down; v' likewise.  (The float kernels keep k', v' in
 *      float; see 8.)
 *   7. Its feed-forward layer maps x = [k' | v'] to x + relu(x W1 + b1) W2
 *      + b2.  relu moves no farther than its input, so the radius becomes
 *      r + |W2|ᵀ (|W1|ᵀ r): the weights are float in every table.
 *   8. ALL's bfloat16 tables may have k', v' rounded to bfloat16 once more,
 *      for the products on pairs (score.c, kern.h: attn_kern_dp): a value
 *      x~ within r of x rounds to within u|x~| of itself, so the radius
 *      becomes r + u (|x| + r).
 * The head-averaged attention weights move by at most the mean over heads
 * of e^2B - 1 (step 3, a_j <= 1).  docs/MODEL.md ("bfloat16 tables") has the
 * same derivation and what it comes to in practice.
 */

/* out[t] = sum_i e[i] w[i*rs + t*cs], t < m, i < d; w NULL is the identity.
 * ab: |e| and |w| (the radius of a product rounded before it). */
static void s_times(const double *e, const float *w, int d, int m, size_t rs, size_t cs,
                    int ab, double *out)
{
    if (!w) {
        for (int t = 0; t < m; t++)
            out[t] = ab ? fabs(e[t]) : e[t];
        return;
    }
    for (int t = 0; t < m; t++) {
        double s = 0.0;
        for (int i = 0; i < d; i++) {
            double x = (double)w[(size_t)i * rs + (size_t)t * cs];
            s += ab ? fabs(e[i]) * fabs(x) : e[i] * x;
        }
        out[t] = s;
    }
}

/* One projected vector and its radius (step 1): pre = the tables store the
 * text embedding et, rounded before the projection. */
static void s_proj_r(const double *e, const double *et, const float *w, int d, int m,
                     size_t rs, size_t cs, int pre, double u, double *x, double *r)
{
    s_times(e, w, d, m, rs, cs, 0, x);
    if (pre)
        s_times(et, w, d, m, rs, cs, 1, r);
    for (int t = 0; t < m; t++)
        r[t] = u * (pre ? r[t] : fabs(x[t]));
}

/* Step 2's bound on a dot product of n elements. */
static double s_dot_r(const double *x, const double *rx, const double *y, const double *ry,
                      int n)
{
    double b = 0.0;
    for (int t = 0; t < n; t++)
        b += fabs(x[t]) * ry[t] + rx[t] * fabs(y[t]) + rx[t] * ry[t];
    return b;
}

/* Steps 1, 6 and 7 for the history: k'', v'' rows (L x m) and their radii.
 * hv holds 4 L m + 8 Lc m + 2 d + window doubles, + 2 m + ffn with a
 * feed-forward layer. */
typedef struct s_hrad {
    double *k, *rk, *v, *rv;        /* L x m each */
    double *sa[8];                  /* sq, rsq, sk, rsk, uk, ruk, uv, ruv: Lc x m each */
    double *e, *et, *w;             /* d, d, window */
    double *ft;                     /* 2 m + ffn: the feed-forward's row and hidden layer */
} s_hrad;

/* Step 7 on one row: s_ffn_row, and the radius carried through it. */
static void s_ffn_r(const attn_model *md, double *k, double *rk, double *v, double *rv,
                    double *ft)
{
    const int m = md->m, f = md->ffn, w = 2 * m;
    double *r = ft, *rh = ft + w;
    for (int t = 0; t < m; t++) {
        r[t] = rk[t];
        r[m + t] = rv[t];
    }
    for (int c = 0; c < f; c++) {
        double a = 0.0;
        for (int t = 0; t < w; t++)
            a += r[t] * fabs((double)md->ffn_w1[(size_t)t * f + c]);
        rh[c] = a;
    }
    for (int t = 0; t < w; t++) {
        double y = r[t];
        for (int c = 0; c < f; c++)
            y += rh[c] * fabs((double)md->ffn_w2[(size_t)c * w + t]);
        if (t < m)
            rk[t] = y;
        else
            rv[t - m] = y;
    }
    s_ffn_row(md, k, v, ft);   /* the radius is done with ft */
}

static void s_hist_r(const attn_model *md, const float *emb, size_t ld, const int64_t *pidx,
                     const attn_request *rq, int Lc, int pre, double u, s_hrad *h)
{
    const int d = md->d, m = md->m, L = rq->n_hist, Ls = md->sa_len;
    const float *sw[4] = {md->sa_q, md->sa_k, md->sa_uk, md->sa_uv};
    for (int j = 0; j < Lc; j++) {
        s_effective(md, emb, ld, NULL, rq->hist[j], h->et);
        s_effective(md, emb, ld, pidx, rq->hist[j], h->e);
        size_t o = (size_t)j * m;
        if (j < L) {
            s_proj_r(h->e, h->et, md->wk, d, m, (size_t)m, 1, pre, u, h->k + o, h->rk + o);
            s_proj_r(h->e, h->et, md->wv, d, m, (size_t)m, 1, pre, u, h->v + o, h->rv + o);
        }
        for (int p = 0; p < 4 && Ls > 0; p++)
            s_proj_r(h->e, h->et, sw[p], d, m, (size_t)m, 1, pre, u, h->sa[2 * p] + o,
                     h->sa[2 * p + 1] + o);
    }
    for (int j = 0; j < L && Ls > 0; j++) {
        const int nw = Lc - j < Ls ? Lc - j : Ls;
        const double *sq = h->sa[0] + (size_t)j * m, *rsq = h->sa[1] + (size_t)j * m;
        double zmax = -INFINITY, sum = 0.0, B = 0.0;
        for (int i = 0; i < nw; i++) {
            size_t o = (size_t)(j + i) * m;
            double dot = 0.0;
            for (int t = 0; t < m; t++)
                dot += sq[t] * h->sa[2][o + t];
            h->w[i] = dot / sqrt((double)m) + (double)md->sa_pos[i];
            zmax = h->w[i] > zmax ? h->w[i] : zmax;
            B = fmax(B, s_dot_r(sq, rsq, h->sa[2] + o, h->sa[3] + o, m) / sqrt((double)m));
        }
        for (int i = 0; i < nw; i++)
            sum += (h->w[i] = exp(h->w[i] - zmax));
        const double grow = expm1(2.0 * B);
        for (int i = 0; i < nw; i++)
            for (int t = 0; t < m; t++) {
                size_t o = (size_t)j * m + t, oi = (size_t)(j + i) * m + t;
                double a = h->w[i] / sum;
                h->k[o] += a * h->sa[4][oi];
                h->rk[o] += a * (h->sa[5][oi] + grow * (fabs(h->sa[4][oi]) + h->sa[5][oi]));
                h->v[o] += a * h->sa[6][oi];
                h->rv[o] += a * (h->sa[7][oi] + grow * (fabs(h->sa[6][oi]) + h->sa[7][oi]));
            }
        if (md->ffn > 0)
            s_ffn_r(md, h->k + (size_t)j * m, h->rk + (size_t)j * m, h->v + (size_t)j * m,
                    h->rv + (size_t)j * m, h->ft);
        for (int t = 0; t < m && !pre; t++) {   /* step 8 (u = 0 for float tables) */
            size_t o = (size_t)j * m + t;
            h->rk[o] += u * (fabs(h->k[o]) + h->rk[o]);
            h->rv[o] += u * (fabs(h->v[o]) + h->rv[o]);
        }
    }
}

/* Steps 2-5 for one candidate (q, g and radii of m each). */
static void s_cand_r(const attn_model *md, const s_hrad *h, int L, const double *q,
                     const double *rq, const double *g, const double *rg, double *bound,
                     double *wbound)
{
    const int m = md->m, H = md->heads, dh = m / H;
    double b = 0.0, wb = 0.0;
    for (int hd = 0; hd < H; hd++) {
        const size_t o = (size_t)hd * dh;
        double B = 0.0, smax = 0.0, rmax = 0.0;
        for (int j = 0; j < L; j++) {
            const size_t oj = (size_t)j * m + o;
            B = fmax(B, (double)md->scale * s_dot_r(q + o, rq + o, h->k + oj, h->rk + oj, dh));
            double R = s_dot_r(g + o, rg + o, h->v + oj, h->rv + oj, dh), s = 0.0;
            for (int t = 0; t < dh; t++)
                s += h->v[oj + t] * g[o + t];
            smax = fmax(smax, fabs(s) + R);
            rmax = fmax(rmax, R);
        }
        b += expm1(2.0 * B) * smax + rmax;
        wb += expm1(2.0 * B) / H;
    }
    *bound = b;
    if (wbound)
        *wbound = wb;
}

int attn_score_ref_bound(const attn_model *md, const float *emb, size_t n, size_t ld,
                         const int64_t *param_index, const attn_request *rq,
                         const attn_tables_opts *opts, double *bound, double *wbound)
{
    int st = s_check(md, emb, n, ld, param_index, rq, bound);
    if (st != ATTN_OK)
        return st;
    if (!opts || (opts->precision != ATTN_PRECISION_F32 && opts->precision != ATTN_PRECISION_BF16))
        return ATTN_EINVAL;
    const double u = opts->precision == ATTN_PRECISION_BF16 ? ATTN_BF16_U : 0.0;
    const int pre = opts->mode == ATTN_PRECOMPUTE_NONE;
    const int d = md->d, m = md->m, L = rq->n_hist, Ls = md->sa_len;
    const int Lc = L + (Ls > 0 ? (rq->n_ctx < Ls - 1 ? rq->n_ctx : Ls - 1) : 0);
    size_t need = (size_t)L * m * 4 + (size_t)Lc * m * 8 + (size_t)d * 2 + (size_t)m * 4 +
                  (size_t)(Ls > 0 ? Ls : 1) + (size_t)(md->ffn > 0 ? 2 * m + md->ffn : 0);
    double *buf = malloc(need * sizeof *buf);
    if (!buf)
        return ATTN_ENOMEM;
    s_hrad h = {.k = buf};
    h.rk = h.k + (size_t)L * m;
    h.v = h.rk + (size_t)L * m;
    h.rv = h.v + (size_t)L * m;
    h.sa[0] = h.rv + (size_t)L * m;
    for (int p = 1; p < 8; p++)
        h.sa[p] = h.sa[p - 1] + (size_t)Lc * m;
    h.e = h.sa[7] + (size_t)Lc * m;
    h.et = h.e + d;
    double *q = h.et + d, *rq_ = q + m, *g = rq_ + m, *rg = g + m;
    h.w = rg + m;
    h.ft = h.w + (Ls > 0 ? Ls : 1);
    s_hist_r(md, emb, ld, param_index, rq, Lc, pre, u, &h);
    for (int c = 0; c < rq->n_cand; c++) {
        s_effective(md, emb, ld, NULL, rq->cand[c], h.et);
        s_effective(md, emb, ld, param_index, rq->cand[c], h.e);
        s_proj_r(h.e, h.et, md->wq, d, m, (size_t)m, 1, pre, u, q, rq_);
        s_proj_r(h.e, h.et, md->wo, d, m, 1, (size_t)d, pre, u, g, rg);   /* g = W_O e */
        s_cand_r(md, &h, L, q, rq_, g, rg, &bound[c], wbound ? &wbound[c] : NULL);
    }
    free(buf);
    return ATTN_OK;
}
