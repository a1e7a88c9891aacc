/* check_attn.c -- the attn/ math library: model, reference, fast path,
 * top-k.
 *
 * The fast path is checked against the reference (double precision, plain
 * loops, no shared code) on many random shapes, with every vector kernel
 * this CPU can run and in both precompute modes.  The reference itself is
 * checked against small cases worked by hand.
 *
 * Tolerances (docs/MODEL.md, "Numerical safety"): a fast score may differ
 * from the reference by S_RTOL times the larger of |reference score| and the
 * RMS of the request's reference scores.  The second term is the "absolute"
 * part: a score near zero is the difference of terms of the request's size,
 * and float arithmetic errs relative to those terms, not to their difference.
 * Rankings and explanations must agree exactly except where the reference's
 * own gap is within twice the tolerance (a near tie either way is correct).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/bf16.h"
#include "attn/kern.h"
#include "attn/model.h"
#include "attn/score.h"
#include "attn/topk.h"
#include "attn/trim.h"
#include "attn/train.h"
#include "tests/testutil.h"

#define S_RTOL 1e-4
#define S_WTOL 2e-5      /* attention weights, absolute (they lie in [0, 1]) */

/* ---- fixtures ----------------------------------------------------------- */

enum {
    F_PROJ = 1,       /* random projections (else all NULL: identity) */
    F_PARTIAL = 2,    /* some projections NULL (needs m == d) */
    F_RES = 4,        /* per-item residual */
    F_IBIAS = 8,      /* per-item bias */
    F_POS = 16,       /* position bias */
    F_WEIGHTS = 32,   /* request event weights */
    F_SA = 64,        /* a self-attention block (with F_PROJ only) */
    F_FFN = 128,      /* and a feed-forward layer on it (m a multiple of 8 only) */
};

typedef struct fx {
    int n, d, ld;
    float *emb;
    int64_t *pidx;          /* NULL when the model has no per-item arrays */
    attn_model *md;
} fx;

/* A catalog of n unit rows (times emb_scale), row stride ld >= d. */
static float *s_catalog(tu_rng *r, int n, int d, int ld, float emb_scale)
{
    float *e = calloc((size_t)n * ld, sizeof *e);
    ck_assert_ptr_nonnull(e);
    for (int i = 0; i < n; i++) {
        float *x = e + (size_t)i * ld;
        double ss = 0.0;
        tu_fill_normal(r, x, (size_t)d, 1.0f);
        for (int c = 0; c < d; c++)
            ss += (double)x[c] * x[c];
        for (int c = 0; c < d; c++)
            x[c] = (float)(x[c] / sqrt(ss + 1e-30)) * emb_scale;
        for (int c = d; c < ld; c++)
            x[c] = NAN;          /* stride padding must never be read */
    }
    return e;
}

/* The precision s_check_random builds its tables in. */
static attn_precision s_prec = ATTN_PRECISION_F32;

/* Give md's block a random feed-forward layer of width ffn: nonzero
 * weights and biases, scaled so that the layer moves [k' | v'] by about as
 * much as the block did.  For bfloat16 tables the weights are smaller: the
 * oracle's worst-case bound multiplies a row's radius by about
 * a^2 sqrt(2m ffn) for weights of scale a (score_ref.c, step 7), which at
 * a = 1 makes it too loose to catch anything; b2 still moves every score. */
static void s_add_ffn(tu_rng *r, attn_model *md, int ffn)
{
    ck_assert_int_eq(attn_model_add_ffn(md, ffn), ATTN_OK);
    const size_t w = 2 * (size_t)md->m;
    const float a = s_prec == ATTN_PRECISION_F32 ? 1.0f : 0.15f;
    tu_fill_normal(r, md->ffn_w1, w * ffn, a / sqrtf((float)w));
    tu_fill_normal(r, md->ffn_b1, (size_t)ffn, 0.3f);
    tu_fill_normal(r, md->ffn_w2, w * ffn, a / sqrtf((float)ffn));
    tu_fill_normal(r, md->ffn_b2, w, 0.3f);
}

/* A random model; wqk scales W_Q and W_K (logit spread). */
static attn_model *s_model(tu_rng *r, int d, int m, int heads, int l_max, int n_items,
                           unsigned flags, float wqk)
{
    attn_model *md;
    if (flags & (F_PROJ | F_PARTIAL)) {
        md = attn_model_new(d, m, heads, l_max, n_items, (flags & F_RES) != 0);
        ck_assert_ptr_nonnull(md);
        tu_fill_normal(r, md->wq, (size_t)d * m, wqk);
        tu_fill_normal(r, md->wk, (size_t)d * m, wqk);
        tu_fill_normal(r, md->wv, (size_t)d * m, 1.0f / sqrtf((float)d));
        tu_fill_normal(r, md->wo, (size_t)m * d, 1.0f / sqrtf((float)m));
        if (flags & F_PARTIAL) {
            float **w[4] = {&md->wq, &md->wk, &md->wv, &md->wo};
            for (int i = 0; i < 4; i++)
                if (tu_next(r) & 1) {
                    free(*w[i]);
                    *w[i] = NULL;
                }
        }
    } else {
        md = attn_model_identity(d, l_max);
        ck_assert_ptr_nonnull(md);
        if (n_items > 0) {
            md->n_items = n_items;
            md->item_ids = calloc((size_t)n_items, sizeof(int64_t));
            md->item_bias = calloc((size_t)n_items, sizeof(float));
            if (flags & F_RES)
                md->residual = calloc((size_t)n_items * d, sizeof(float));
        }
    }
    for (int i = 0; i < n_items; i++)
        md->item_ids[i] = 10 * i + 3;
    if (md->residual)
        tu_fill_normal(r, md->residual, (size_t)n_items * d, 0.2f);
    if (md->item_bias) {
        if (flags & F_IBIAS)
            tu_fill_normal(r, md->item_bias, (size_t)n_items, 0.5f);
        else {
            free(md->item_bias);
            md->item_bias = NULL;
        }
    }
    if ((flags & F_SA) && (flags & F_PROJ) && !(flags & F_PARTIAL)) {
        /* Windows shorter and longer than the history. */
        ck_assert_int_eq(attn_model_add_sa(md, 1 + (int)(tu_next(r) % (l_max + 4))), ATTN_OK);
        const size_t dm = (size_t)d * m;
        tu_fill_normal(r, md->sa_q, dm, wqk);
        tu_fill_normal(r, md->sa_k, dm, wqk);
        tu_fill_normal(r, md->sa_uk, dm, 1.0f / sqrtf((float)d));
        tu_fill_normal(r, md->sa_uv, dm, 1.0f / sqrtf((float)d));
        tu_fill_normal(r, md->sa_pos, (size_t)md->sa_len, 0.5f);
        if (flags & F_FFN)
            s_add_ffn(r, md, 16 * (1 + (int)(tu_next(r) % 4)));
    }
    if (flags & F_POS) {
        if (!md->pos_bias)
            md->pos_bias = calloc((size_t)l_max, sizeof(float));
        tu_fill_normal(r, md->pos_bias, (size_t)l_max, 0.5f);
    } else {
        free(md->pos_bias);
        md->pos_bias = NULL;
    }
    ck_assert_int_eq(attn_model_check(md, NULL, 0), ATTN_OK);
    return md;
}

static fx s_fixture(tu_rng *r, int n, int d, int m, int heads, int l_max, unsigned flags,
                    float wqk, float emb_scale)
{
    fx f = {.n = n, .d = d, .ld = d + (int)(tu_next(r) % 4)};
    f.emb = s_catalog(r, n, d, f.ld, emb_scale);
    int n_items = (flags & (F_RES | F_IBIAS)) ? n / 2 + 1 : 0;
    f.md = s_model(r, d, m, heads, l_max, n_items, flags, wqk);
    if (n_items > 0) {
        f.pidx = malloc((size_t)n * sizeof *f.pidx);
        for (int i = 0; i < n; i++)
            f.pidx[i] = (tu_next(r) % 3 == 0) ? -1 : (int64_t)(tu_next(r) % n_items);
    }
    return f;
}

static void s_fixture_free(fx *f)
{
    free(f->emb);
    free(f->pidx);
    attn_model_free(&f->md);
}

/* ---- the comparison ----------------------------------------------------- */

typedef struct rq_buf {
    uint32_t hist[256], cand[256];
    float w[256];
    attn_request rq;
} rq_buf;

static void s_request(tu_rng *r, rq_buf *b, int n, int L, int N, int k, int explain,
                      int weights)
{
    /* Up to 11 older context events (used by self-attention blocks only,
     * as many as the window wants; more, fewer or none). */
    int ctx = (int)(tu_next(r) % 12);
    if (L + ctx > 256)
        ctx = 256 - L;
    for (int j = 0; j < L + ctx; j++)
        b->hist[j] = (uint32_t)(tu_next(r) % n);
    for (int c = 0; c < N; c++)
        b->cand[c] = (uint32_t)(tu_next(r) % n);
    for (int j = 0; j < L; j++)
        b->w[j] = (float)(0.1 + 4.0 * tu_uniform(r));
    b->rq = (attn_request){.hist = b->hist, .hist_weight = weights ? b->w : NULL,
                           .n_hist = L, .n_ctx = ctx, .cand = b->cand, .n_cand = N, .k = k,
                           .explain = explain};
}

/* The reference's explanation weights with repeats merged, written the
 * plain quadratic way: a row's weight is the sum over its positions and sits
 * at its newest one; later positions get -1 so they are never chosen.
 * Returns the number of distinct rows (out may be NULL to count only). */
static int s_merge_repeats(const attn_request *rq, const double *w, double *out)
{
    int distinct = 0;
    for (int j = 0; j < rq->n_hist; j++) {
        int first = j;
        for (int i = 0; i < j; i++)
            if (rq->hist[i] == rq->hist[j]) {
                first = i;
                break;
            }
        if (out)
            out[j] = first == j ? 0.0 : -1.0;
        if (first == j)
            distinct++;
        if (out)
            out[first] += w[j];
    }
    return distinct;
}

/* Largest error seen, in units of the tolerance (reported by the suite). */
static double s_worst;

/* Score rq with the fast path and the reference and compare everything:
 * scores, ranking, explanations, and attn_score against attn_score_all. */
static void s_compare(const fx *f, const attn_tables *t, attn_scratch *s,
                      const attn_request *rq, double rtol, const char *what)
{
    const int N = rq->n_cand, L = rq->n_hist;
    double *ref = malloc((size_t)N * sizeof *ref), *w = malloc((size_t)N * L * sizeof *w);
    double *bnd = malloc((size_t)N * sizeof *bnd), *wbnd = malloc((size_t)N * sizeof *wbnd);
    float *all = malloc((size_t)N * sizeof *all);
    uint32_t *rtop = malloc((size_t)N * sizeof *rtop), etop[64];
    ck_assert_int_eq(attn_score_ref(f->md, f->emb, (size_t)f->n, (size_t)f->ld, f->pidx, rq,
                                    ref, w), ATTN_OK);
    /* Rounded tables (bfloat16) may move a score by up to the bound the
     * oracle derives from the precision (score_ref.c), on top of the float
     * tolerance; float tables get a bound of 0. */
    attn_tables_opts o = attn_tables_options(t);
    ck_assert_int_eq(attn_score_ref_bound(f->md, f->emb, (size_t)f->n, (size_t)f->ld, f->pidx,
                                          rq, &o, bnd, wbnd), ATTN_OK);
    ck_assert_int_eq(attn_score_all(t, rq, s, all), ATTN_OK);

    double rms = 0.0;
    for (int c = 0; c < N; c++)
        rms += ref[c] * ref[c];
    rms = sqrt(rms / N);
    for (int c = 0; c < N; c++) {
        double tol = rtol * fmax(fabs(ref[c]), rms) + bnd[c] + 1e-30;
        double err = fabs((double)all[c] - ref[c]);
        if (err / tol > s_worst)
            s_worst = err / tol;
        ck_assert_msg(err <= tol, "%s [%s]: score[%d] fast %.9g ref %.9g (tol %.3g)", what,
                      attn_kernel_name(), c, (double)all[c], ref[c], tol);
    }

    attn_result res;
    ck_assert_int_eq(attn_score(t, rq, s, &res), ATTN_OK);
    int n_ref = attn_topk_f64(ref, N, rq->k, rtop);
    ck_assert_int_eq(res.n, n_ref);
    int distinct = s_merge_repeats(rq, w, NULL);
    ck_assert_int_eq(res.n_explain, rq->explain < distinct ? rq->explain : distinct);
    for (int i = 0; i < res.n; i++) {
        uint32_t c = res.cand[i];
        ck_assert_uint_lt(c, (unsigned)N);
        /* Same code, same inputs: bitwise the same score. */
        ck_assert_msg(res.score[i] == all[c], "%s: attn_score and attn_score_all differ", what);
        if (c != rtop[i]) {
            double tol = 2 * rtol * fmax(fmax(fabs(ref[c]), fabs(ref[rtop[i]])), rms) +
                         bnd[c] + bnd[rtop[i]];
            ck_assert_msg(fabs(ref[c] - ref[rtop[i]]) <= tol,
                          "%s [%s]: rank %d is cand %u (ref %.9g), reference has %u (%.9g)",
                          what, attn_kernel_name(), i, c, ref[c], rtop[i], ref[rtop[i]]);
        }
        double wc[256];
        s_merge_repeats(rq, w + (size_t)c * L, wc);
        int ne = attn_topk_f64(wc, L, res.n_explain, etop);
        ck_assert_int_eq(ne, res.n_explain);
        for (int e = 0; e < ne; e++) {
            uint32_t j = res.because[(size_t)i * ne + e];
            float bw = res.because_weight[(size_t)i * ne + e];
            ck_assert_uint_lt(j, (unsigned)L);
            ck_assert_msg(fabs(bw - wc[j]) <= S_WTOL + wbnd[c],
                          "%s [%s]: weight of hist %u: %.9g vs %.9g", what, attn_kernel_name(),
                          j, (double)bw, wc[j]);
            if (j != etop[e])
                ck_assert_msg(fabs(wc[j] - wc[etop[e]]) <= 2 * (S_WTOL + wbnd[c]),
                              "%s [%s]: explanation %d of rank %d is hist %u (%.9g), "
                              "reference has %u (%.9g)", what, attn_kernel_name(), e, i, j,
                              wc[j], etop[e], wc[etop[e]]);
            if (e > 0)
                ck_assert(bw <= res.because_weight[(size_t)i * ne + e - 1]);
        }
    }
    free(ref);
    free(w);
    free(bnd);
    free(wbnd);
    free(all);
    free(rtop);
}

/* Every kernel this CPU can run, then back to automatic.  "avx512bf16" is
 * "avx512" plus the bfloat16 products (kern.h: attn_kern_dp): bfloat16
 * tables take a path of their own there. */
static const char *const s_kernels[] = {"generic", "avx2", "avx512", "avx512bf16"};
#define S_NKERN 4

/* The trainer's set at a scoring level: its own, or the best below (it has
 * no bfloat16 one: it trains in float). */
static const char *s_train_set(const char *scoring_set)
{
    return strcmp(scoring_set, "avx512bf16") == 0 ? "avx512" : scoring_set;
}

/* s_compare on every kernel set this CPU can run, then back to automatic. */
static void s_compare_every_kernel(const fx *f, const attn_tables *t, attn_scratch *s,
                                   const attn_request *rq, double rtol, const char *what)
{
    for (int kk = 0; kk < S_NKERN; kk++)
        if (attn_kernel_select(s_kernels[kk]) == ATTN_OK)
            s_compare(f, t, s, rq, rtol, what);
    attn_kernel_select(NULL);
}

static void s_check_random(tu_rng *r, int iters, unsigned flag_mask, unsigned flag_force,
                           float wqk, float emb_scale, double rtol, const char *what)
{
    for (int it = 0; it < iters; it++) {
        unsigned flags = ((unsigned)tu_next(r) & flag_mask) | flag_force;
        int heads = (flags & (F_PROJ | F_PARTIAL)) ? 1 + (int)(tu_next(r) % 4) : 1;
        if (tu_next(r) % 5 == 0 && (flags & F_PROJ))
            heads = 8;
        int d = 1 + (int)(tu_next(r) % 40);
        int m = d;
        if ((flags & F_PROJ) && !(flags & F_PARTIAL) && (tu_next(r) & 1))
            m = heads * (1 + (int)(tu_next(r) % 12));
        if (flag_force & F_FFN)   /* the layer needs m a multiple of 8 */
            m = 8 * (1 + (int)(tu_next(r) % 6));
        if (m % heads)
            heads = 1;
        int l_max = 1 + (int)(tu_next(r) % 40);
        fx f = s_fixture(r, 60, d, m, heads, l_max, flags, wqk, emb_scale);
        attn_precompute mode = (tu_next(r) & 1) ? ATTN_PRECOMPUTE_ALL : ATTN_PRECOMPUTE_NONE;
        attn_tables *t = NULL;
        attn_tables_opts to = {mode, s_prec, 1 + (int)(tu_next(r) % 3)};
        ck_assert_int_eq(attn_tables_build_opts(&t, f.md, f.emb, (size_t)f.n, (size_t)f.ld,
                                                f.pidx, &to), ATTN_OK);
        /* The tables own every row in bfloat16: the caller's matrix is free
         * to go (and stays readable here only for the reference). */
        ck_assert_int_eq(attn_tables_borrows_emb(t) != 0,
                         s_prec == ATTN_PRECISION_F32 &&
                             (mode == ATTN_PRECOMPUTE_NONE ||
                              (!f.md->wq && !f.md->wk && !f.md->wv && !f.md->wo &&
                               !(f.md->residual && f.pidx))));
        attn_limits lim = {.max_cand = 48, .max_hist = l_max, .max_k = 48, .max_explain = 6};
        attn_scratch *s = attn_scratch_new(t, &lim);
        ck_assert_ptr_nonnull(s);
        for (int q = 0; q < 3; q++) {
            int L = q == 0 ? l_max : 1 + (int)(tu_next(r) % l_max);
            int N = q == 1 ? 1 : 1 + (int)(tu_next(r) % 48);
            int k = 1 + (int)(tu_next(r) % 48);
            int ex = (int)(tu_next(r) % 7);
            rq_buf b;
            s_request(r, &b, f.n, L, N, k, ex, (flags & F_WEIGHTS) != 0);
            char name[160];
            snprintf(name, sizeof name, "%s it %d q %d flags %#x d %d m %d H %d L %d N %d %s %s",
                     what, it, q, flags, d, m, heads, L, N, mode ? "NONE" : "ALL",
                     s_prec == ATTN_PRECISION_F32 ? "f32" : "bf16");
            s_compare_every_kernel(&f, t, s, &b.rq, rtol, name);
        }
        attn_scratch_free(&s);
        attn_tables_free(&t);
        s_fixture_free(&f);
    }
}

/* ---- the fast path against the reference -------------------------------- */

/* The four kinds of trained model -- general, some projections the
 * identity, with a self-attention block, with a block and its feed-forward
 * layer -- n[0] .. n[3] random shapes each, in the precision s_prec says. */
static void s_check_models(tu_rng *r, const int n[4])
{
    s_check_random(r, n[0], F_PROJ | F_RES | F_IBIAS | F_POS | F_WEIGHTS, F_PROJ, 1.0f, 1.0f,
                   S_RTOL, "general");
    s_check_random(r, n[1], F_PARTIAL | F_RES | F_IBIAS | F_POS | F_WEIGHTS, F_PARTIAL, 1.0f,
                   1.0f, S_RTOL, "partial");
    s_check_random(r, n[2], F_RES | F_IBIAS | F_POS | F_WEIGHTS, F_PROJ | F_SA, 1.0f, 1.0f,
                   S_RTOL, "self-attention");
    s_check_random(r, n[3], F_RES | F_IBIAS | F_POS | F_WEIGHTS, F_PROJ | F_SA | F_FFN, 1.0f,
                   1.0f, S_RTOL, "feed-forward");
}

START_TEST(test_fast_random)
{
    tu_rng r = {101};
    s_worst = 0.0;
    s_check_models(&r, (const int[4]){60, 25, 40, 40});
    ck_assert(s_worst <= 1.0);
}
END_TEST

START_TEST(test_fast_identity)
{
    tu_rng r = {202};
    s_check_random(&r, 40, F_RES | F_IBIAS | F_POS | F_WEIGHTS, 0, 1.0f, 1.0f, S_RTOL,
                   "identity");
}
END_TEST

/* Logits in the hundreds: exp would overflow without the max subtraction,
 * and the softmax is nearly one-hot. */
START_TEST(test_fast_large_logits)
{
    tu_rng r = {303};
    s_check_random(&r, 20, F_RES | F_IBIAS | F_POS | F_WEIGHTS, F_PROJ, 8.0f, 1.0f, S_RTOL,
                   "large W");
    s_check_random(&r, 20, F_POS | F_WEIGHTS, 0, 1.0f, 5.0f, S_RTOL, "large identity");
}
END_TEST

/* The reference scores P1-like shapes too (bigger than the random ones). */
START_TEST(test_fast_bigger)
{
    tu_rng r = {404};
    int shapes[][4] = {{64, 4, 50, 100}, {96, 8, 33, 70}, {40, 2, 17, 5}};
    for (int i = 0; i < 3; i++) {
        int d = shapes[i][0], H = shapes[i][1], L = shapes[i][2], N = shapes[i][3];
        fx f = s_fixture(&r, 300, d, d, H, L, F_PROJ | F_POS | F_IBIAS | F_RES, 1.0f, 1.0f);
        for (int mode = 0; mode < 2; mode++) {
            attn_tables *t = NULL;
            ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, (size_t)f.n, (size_t)f.ld,
                                               f.pidx, (attn_precompute)mode, 2), ATTN_OK);
            attn_limits lim = {.max_cand = N, .max_hist = L, .max_k = 20, .max_explain = 5};
            attn_scratch *s = attn_scratch_new(t, &lim);
            rq_buf b;
            s_request(&r, &b, f.n, L, N, 20, 5, 1);
            s_compare_every_kernel(&f, t, s, &b.rq, S_RTOL, "bigger");
            attn_scratch_free(&s);
            attn_tables_free(&t);
        }
        s_fixture_free(&f);
    }
}
END_TEST

/* Candidates go through the fast path a block of R rows at a time (NONE
 * projects each block into the scratch as it goes): many blocks, a last
 * block that is not full, winners spanning several blocks for the
 * explanations, in both modes, with residuals (effective rows built per
 * block) and without. */
START_TEST(test_fast_blocks)
{
    tu_rng r = {1515};
    struct { int d, m, H, L, N; unsigned flags; } c[] = {
        {24, 32, 4, 19, 250, F_PROJ | F_RES | F_IBIAS | F_POS | F_WEIGHTS},
        {20, 20, 1, 5, 61, F_RES | F_IBIAS | F_POS},                   /* identity */
        {16, 48, 3, 33, 97, F_PROJ | F_POS},
        {40, 40, 2, 50, 1, F_PROJ | F_RES},
        {32, 64, 4, 50, 130, F_PROJ | F_RES | F_IBIAS | F_POS | F_WEIGHTS | F_SA},
        {32, 64, 4, 50, 130, F_PROJ | F_RES | F_IBIAS | F_POS | F_WEIGHTS | F_SA | F_FFN},
        /* Rows of 2 KiB or more, whose next block is asked for a head at
         * a time: read in place (ALL), a chunk ahead (NONE's embeddings of
         * d = 512), the identity's. */
        {64, 384, 8, 50, 100, F_PROJ | F_IBIAS | F_POS},
        {512, 64, 4, 20, 100, F_PROJ | F_RES | F_POS},
        {528, 528, 1, 20, 40, F_IBIAS | F_POS},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        fx f = s_fixture(&r, 200, c[i].d, c[i].m, c[i].H, c[i].L, c[i].flags, 1.0f, 1.0f);
        for (int mode = 0; mode < 2; mode++) {
            attn_tables *t = NULL;
            ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 200, (size_t)f.ld, f.pidx,
                                               (attn_precompute)mode, 2), ATTN_OK);
            attn_limits lim = {.max_cand = 256, .max_hist = c[i].L, .max_k = 40,
                               .max_explain = 6};
            attn_scratch *s = attn_scratch_new(t, &lim);
            ck_assert_ptr_nonnull(s);
            static rq_buf b;
            s_request(&r, &b, 200, c[i].L, c[i].N, 37, 6, (c[i].flags & F_WEIGHTS) != 0);
            char name[96];
            snprintf(name, sizeof name, "blocks d %d H %d L %d N %d %s", c[i].d, c[i].H,
                     c[i].L, c[i].N, mode ? "NONE" : "ALL");
            s_compare_every_kernel(&f, t, s, &b.rq, S_RTOL, name);
            attn_scratch_free(&s);
            attn_tables_free(&t);
        }
        s_fixture_free(&f);
    }
}
END_TEST

/* A NONE-mode scratch holds one block of projected candidates, not the
 * largest request's: raising max_cand costs a score per candidate and
 * nothing per candidate and model column (it used to reserve projected rows
 * for all of them: 31 MiB at max_cand 10000, m 384).  And the request at the
 * limit still agrees with the precomputed tables. */
START_TEST(test_scratch_none_size)
{
    tu_rng r = {1616};
    fx f = s_fixture(&r, 50, 32, 96, 4, 12, F_PROJ | F_RES | F_IBIAS, 1.0f, 1.0f);
    attn_tables *tn = NULL, *ta = NULL;
    ck_assert_int_eq(attn_tables_build(&tn, f.md, f.emb, 50, (size_t)f.ld, f.pidx,
                                       ATTN_PRECOMPUTE_NONE, 1), ATTN_OK);
    ck_assert_int_eq(attn_tables_build(&ta, f.md, f.emb, 50, (size_t)f.ld, f.pidx,
                                       ATTN_PRECOMPUTE_ALL, 1), ATTN_OK);
    attn_limits small = {.max_cand = 100, .max_hist = 12, .max_k = 10, .max_explain = 3};
    attn_limits big = small;
    big.max_cand = 2100;
    attn_scratch *s1 = attn_scratch_new(tn, &small), *s2 = attn_scratch_new(tn, &big);
    attn_scratch *sa = attn_scratch_new(ta, &big);
    ck_assert_ptr_nonnull(s1);
    ck_assert_ptr_nonnull(s2);
    ck_assert_ptr_nonnull(sa);
    ck_assert_uint_le(attn_scratch_bytes(s2) - attn_scratch_bytes(s1),
                      2000 * sizeof(float) + 64);
    /* 2100 candidates (duplicates of 50 rows), scored both ways. */
    enum { N = 2100 };
    static uint32_t cand[N];
    static float a[N], n[N];
    uint32_t hist[12];
    for (int c = 0; c < N; c++)
        cand[c] = (uint32_t)(tu_next(&r) % 50);
    for (int j = 0; j < 12; j++)
        hist[j] = (uint32_t)(tu_next(&r) % 50);
    attn_request rq = {.hist = hist, .n_hist = 12, .cand = cand, .n_cand = N, .k = 10,
                       .explain = 3};
    ck_assert_int_eq(attn_score_all(ta, &rq, sa, a), ATTN_OK);
    ck_assert_int_eq(attn_score_all(tn, &rq, s2, n), ATTN_OK);
    int first[50];
    for (int x = 0; x < 50; x++)
        first[x] = -1;
    for (int c = 0; c < N; c++) {
        ck_assert_msg(fabsf(a[c] - n[c]) <= 1e-4f * fmaxf(1.0f, fabsf(a[c])),
                      "cand %d: ALL %.9g NONE %.9g", c, (double)a[c], (double)n[c]);
        /* Duplicates score bitwise alike, whichever block they fall in. */
        if (first[cand[c]] < 0)
            first[cand[c]] = c;
        ck_assert(n[c] == n[first[cand[c]]]);
    }
    attn_result res;
    ck_assert_int_eq(attn_score(tn, &rq, s2, &res), ATTN_OK);
    ck_assert_int_eq(res.n, 10);
    attn_scratch_free(&s1);
    attn_scratch_free(&s2);
    attn_scratch_free(&sa);
    attn_tables_free(&tn);
    attn_tables_free(&ta);
    s_fixture_free(&f);
}
END_TEST

/* One history item: its weight is exactly 1 and the score is S + bias;
 * k and explain beyond what there is are clipped. */
START_TEST(test_fast_edges)
{
    tu_rng r = {1414};
    for (int ident = 0; ident < 2; ident++) {
        fx f = s_fixture(&r, 40, 13, ident ? 13 : 24, ident ? 1 : 3, 7,
                         (ident ? 0 : F_PROJ) | F_POS | F_IBIAS | F_RES, 1.0f, 1.0f);
        for (int mode = 0; mode < 2; mode++) {
            attn_tables *t = NULL;
            ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 40, (size_t)f.ld, f.pidx,
                                               (attn_precompute)mode, 1), ATTN_OK);
            attn_limits lim = {.max_cand = 8, .max_hist = 7, .max_k = 8, .max_explain = 4};
            attn_scratch *s = attn_scratch_new(t, &lim);
            for (int kk = 0; kk < S_NKERN; kk++) {
                if (attn_kernel_select(s_kernels[kk]) != ATTN_OK)
                    continue;
                rq_buf b;
                s_request(&r, &b, 40, 1, 1, 5, 3, 1);
                s_compare(&f, t, s, &b.rq, S_RTOL, "L=1 N=1");
                attn_result res;
                ck_assert_int_eq(attn_score(t, &b.rq, s, &res), ATTN_OK);
                ck_assert_int_eq(res.n, 1);
                ck_assert_int_eq(res.n_explain, 1);
                ck_assert_uint_eq(res.because[0], 0);
                ck_assert_float_eq(res.because_weight[0], 1.0f);
                s_request(&r, &b, 40, 1, 8, 8, 4, 0);
                s_compare(&f, t, s, &b.rq, S_RTOL, "L=1 N=8");
                s_request(&r, &b, 40, 7, 8, 8, 0, 1);
                s_compare(&f, t, s, &b.rq, S_RTOL, "L=l_max explain=0");
            }
            attn_kernel_select(NULL);
            attn_scratch_free(&s);
            attn_tables_free(&t);
        }
        s_fixture_free(&f);
    }
}
END_TEST

/* Duplicate candidates score bitwise equal and rank by request index;
 * repeated history rows are explained once, with their weights summed. */
START_TEST(test_fast_duplicates)
{
    tu_rng r = {505};
    for (int ident = 0; ident < 2; ident++) {
        fx f = s_fixture(&r, 30, 16, 16, ident ? 1 : 2, 10, ident ? 0 : F_PROJ, 1.0f, 1.0f);
        attn_tables *t = NULL;
        ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, (size_t)f.n, (size_t)f.ld, NULL,
                                           ATTN_PRECOMPUTE_ALL, 1), ATTN_OK);
        attn_limits lim = {.max_cand = 16, .max_hist = 10, .max_k = 16, .max_explain = 10};
        attn_scratch *s = attn_scratch_new(t, &lim);
        uint32_t hist[] = {5, 7, 5, 9, 7};        /* 5 and 7 twice */
        uint32_t cand[] = {3, 4, 3, 5, 4, 3};     /* 3 three times, 4 twice */
        attn_request rq = {.hist = hist, .n_hist = 5, .cand = cand, .n_cand = 6, .k = 6,
                           .explain = 5};
        for (int kk = 0; kk < S_NKERN; kk++) {
            if (attn_kernel_select(s_kernels[kk]) != ATTN_OK)
                continue;
            attn_result res;
            ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_OK);
            int pos[6];
            for (int i = 0; i < res.n; i++)
                pos[res.cand[i]] = i;
            /* Equal candidates are adjacent, lower request index first. */
            ck_assert_int_eq(pos[2], pos[0] + 1);
            ck_assert_int_eq(pos[5], pos[2] + 1);
            ck_assert_int_eq(pos[4], pos[1] + 1);
            ck_assert(res.score[pos[0]] == res.score[pos[5]]);
            /* 5 and 7 appear twice: three distinct rows, each explained once,
             * at its newest position, with the weight of both views. */
            ck_assert_int_eq(res.n_explain, 3);
            for (int i = 0; i < res.n; i++) {
                const uint32_t *bc = res.because + (size_t)i * res.n_explain;
                const float *bw = res.because_weight + (size_t)i * res.n_explain;
                float sum = 0;
                for (int e = 0; e < res.n_explain; e++) {
                    ck_assert(bc[e] == 0 || bc[e] == 1 || bc[e] == 3);
                    sum += bw[e];
                }
                ck_assert_msg(fabsf(sum - 1.0f) < 1e-5f, "merged weights sum to %g", sum);
                ck_assert(bw[0] >= bw[1] && bw[1] >= bw[2]);
            }
            /* And each merged weight equals the reference's sum. */
            s_compare(&f, t, s, &rq, S_RTOL, "repeated history rows");
        }
        attn_kernel_select(NULL);
        attn_scratch_free(&s);
        attn_tables_free(&t);
        s_fixture_free(&f);
    }
}
END_TEST

/* The tables do not depend on how many threads built them. */
START_TEST(test_tables_threads)
{
    tu_rng r = {606};
    fx f = s_fixture(&r, 1000, 24, 32, 4, 8, F_PROJ | F_RES | F_IBIAS, 1.0f, 1.0f);
    attn_tables *t1 = NULL, *t3 = NULL;
    ck_assert_int_eq(attn_tables_build(&t1, f.md, f.emb, 1000, (size_t)f.ld, f.pidx,
                                       ATTN_PRECOMPUTE_ALL, 1), ATTN_OK);
    ck_assert_int_eq(attn_tables_build(&t3, f.md, f.emb, 1000, (size_t)f.ld, f.pidx,
                                       ATTN_PRECOMPUTE_ALL, 3), ATTN_OK);
    ck_assert_uint_eq(attn_tables_rows(t1), 1000);
    ck_assert_uint_eq(attn_tables_bytes(t1), attn_tables_bytes(t3));
    /* At least q, g, k, v for every row. */
    ck_assert_uint_ge(attn_tables_bytes(t1), 1000u * 4 * 32 * sizeof(float));
    attn_limits lim = {.max_cand = 100, .max_hist = 8, .max_k = 10, .max_explain = 2};
    attn_scratch *s = attn_scratch_new(t1, &lim);
    ck_assert(attn_scratch_fits(s, t3));
    float a[100], b[100];
    rq_buf q;
    s_request(&r, &q, 1000, 8, 100, 10, 2, 0);
    ck_assert_int_eq(attn_score_all(t1, &q.rq, s, a), ATTN_OK);
    ck_assert_int_eq(attn_score_all(t3, &q.rq, s, b), ATTN_OK);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    /* The copy in the tables is independent of the caller's model. */
    ck_assert_ptr_ne(attn_tables_model(t1), f.md);
    ck_assert_int_eq(attn_tables_model(t1)->heads, 4);
    attn_scratch_free(&s);
    attn_tables_free(&t1);
    attn_tables_free(&t3);
    attn_tables_free(&t3);          /* NULL is fine */
    s_fixture_free(&f);
}
END_TEST

/* The identity model and NONE mode cost no memory per catalog row. */
START_TEST(test_tables_memory)
{
    tu_rng r = {707};
    fx f = s_fixture(&r, 2000, 32, 32, 1, 8, 0, 1.0f, 1.0f);
    attn_model *gen = s_model(&r, 32, 32, 4, 8, 0, F_PROJ, 1.0f);
    struct { const attn_model *md; attn_precompute mode; } c[] = {
        {f.md, ATTN_PRECOMPUTE_ALL}, {f.md, ATTN_PRECOMPUTE_NONE}, {gen, ATTN_PRECOMPUTE_NONE},
    };
    for (int i = 0; i < 3; i++) {
        attn_tables *t1 = NULL, *t2 = NULL;
        ck_assert_int_eq(attn_tables_build(&t1, c[i].md, f.emb, 1000, (size_t)f.ld, NULL,
                                           c[i].mode, 1), ATTN_OK);
        ck_assert_int_eq(attn_tables_build(&t2, c[i].md, f.emb, 2000, (size_t)f.ld, NULL,
                                           c[i].mode, 1), ATTN_OK);
        ck_assert_uint_eq(attn_tables_bytes(t1), attn_tables_bytes(t2));
        attn_tables_free(&t1);
        attn_tables_free(&t2);
    }
    attn_model_free(&gen);
    s_fixture_free(&f);
}
END_TEST

/* ---- bfloat16 tables ------------------------------------------------------ */

/* The rounding of bf16.h against its definition, worked in double: the
 * nearest value with 8 significant bits, ties to the even one. */
static float s_bf16_nearest(float x)
{
    if (!isfinite(x) || x == 0.0f)
        return x;
    int ex;
    (void)frexp((double)x, &ex);                 /* |x| in [2^(ex-1), 2^ex) */
    if (ex < -125)
        ex = -125;                               /* subnormals: the float's own spacing */
    double ulp = ldexp(1.0, ex - 8), q = (double)x / ulp, fl = floor(q);
    double k = q - fl > 0.5 ? fl + 1 : q - fl < 0.5 ? fl : (fmod(fl, 2.0) == 0 ? fl : fl + 1);
    double y = k * ulp;
    return fabs(y) > 3.3895313892515355e38 ? copysignf(INFINITY, x) : (float)y;
}

START_TEST(test_bf16_rounding)
{
    tu_rng r = {1717};
    enum { N = 4099 };   /* odd: every vector loop's tail */
    static float x[N], back[N];
    static uint16_t h[N], hk[N];
    const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 1.00390625f /* tie, even below */,
                             1.01171875f /* tie, odd below: up */, 3.3895314e38f,
                             3.39e38f /* rounds to inf */, INFINITY, -INFINITY, 1e-40f,
                             -1.1754944e-38f, 65504.0f};
    for (int i = 0; i < N; i++) {
        uint32_t b = (uint32_t)tu_next(&r);
        memcpy(&x[i], &b, sizeof b);
        if (i < (int)(sizeof special / sizeof special[0]))
            x[i] = special[i];
        else if (i % 3 == 0)
            x[i] = (float)tu_uniform(&r) * 8.0f;
        if (isnan(x[i]))
            continue;
        float y = attn_bf16_to_f32(h[i] = attn_bf16_from_f32(x[i]));
        ck_assert_msg(memcmp(&y, &(float){s_bf16_nearest(x[i])}, sizeof y) == 0 ||
                          (y == 0.0f && s_bf16_nearest(x[i]) == 0.0f),
                      "bf16(%a) = %a, nearest even is %a", (double)x[i], (double)y,
                      (double)s_bf16_nearest(x[i]));
        if (isfinite(y) && isfinite(x[i]) && fabsf(x[i]) >= 1.1754944e-38f)
            ck_assert(fabs((double)y - x[i]) <= ATTN_BF16_U * fabs((double)x[i]));
    }
    x[N - 1] = NAN;
    h[N - 1] = attn_bf16_from_f32(NAN);
    ck_assert(isnan(attn_bf16_to_f32(h[N - 1])));
    /* Every kernel set narrows and widens bit for bit as the specification. */
    for (int kk = 0; kk < S_NKERN; kk++) {
        if (attn_kernel_select(s_kernels[kk]) != ATTN_OK)
            continue;
        const attn_kern *k = attn_kern_get();
        for (int n = N - 20; n <= N; n += 7) {
            memset(hk, 0xAB, sizeof hk);
            k->narrow(x, hk, (size_t)n);
            for (int i = 0; i < n; i++)
                if (isnan(x[i]))
                    ck_assert(isnan(attn_bf16_to_f32(hk[i])));
                else
                    ck_assert_msg(hk[i] == attn_bf16_from_f32(x[i]), "[%s] narrow(%a) = %#x",
                                  k->name, (double)x[i], hk[i]);
            ck_assert_uint_eq(hk[n < N ? n : N - 1], n < N ? 0xABABu : hk[N - 1]);
            k->widen(hk, back, (size_t)n);
            for (int i = 0; i < n; i++) {
                float want = attn_bf16_to_f32(hk[i]);
                ck_assert(memcmp(&back[i], &want, sizeof want) == 0);
            }
        }
    }
    attn_kernel_select(NULL);
}
END_TEST

/* bfloat16 tables against the reference, with the error bound the oracle
 * derives from the 8-bit significand on top of the float tolerance, in
 * every mode, layout and kernel set (s_check_random); and the bound is not
 * vacuous: the errors seen use a real share of it. */
START_TEST(test_bf16_random)
{
    tu_rng r = {1818};
    s_prec = ATTN_PRECISION_BF16;
    s_worst = 0.0;
    s_check_models(&r, (const int[4]){40, 15, 25, 25});   /* the names say f32 or bf16 */
    s_check_random(&r, 25, F_RES | F_IBIAS | F_POS | F_WEIGHTS, 0, 1.0f, 1.0f, S_RTOL,
                   "bf16 identity");
    s_check_random(&r, 10, F_RES | F_IBIAS | F_POS | F_WEIGHTS, F_PROJ, 8.0f, 1.0f, S_RTOL,
                   "bf16 large W");
    s_prec = ATTN_PRECISION_F32;
    ck_assert(s_worst <= 1.0);
    ck_assert_msg(s_worst > 0.01, "worst bf16 error %.3g of the tolerance: is it rounding?",
                  s_worst);
}
END_TEST

/* Every kernel set's logits (kern.h) on their own, given B's columns as rows
 * too (attn_kern_bcols), against the same sums in double: inner dimensions
 * of one vector, two, three and a partial one; every padded width from 1
 * real column of 16 to none padded, so that both the block and AVX-512's
 * dot-product tail run.  Padding columns must come out -inf with a finite
 * raw product, and the row maxima must be the real columns' alone.  The
 * tolerance is K ulps of the sum of magnitudes (float sums in any order). */
START_TEST(test_logits_tail)
{
    enum { R = ATTN_KERN_MAX_ROWS, KMAX = 56, CMAX = 112, AOFF = 5, BOFF = 3 };
    tu_rng r = {4242};
    static float arow[R][AOFF + KMAX], bcol[CMAX][BOFF + KMAX], b[KMAX * CMAX];
    static float z[R * CMAX], raw[R * CMAX], bias[CMAX];
    const float *a[R], *col[CMAX];
    for (int i = 0; i < R; i++) {
        for (int t = 0; t < AOFF + KMAX; t++)
            arow[i][t] = (float)tu_normal(&r);
        a[i] = arow[i];
    }
    for (int j = 0; j < CMAX; j++) {
        for (int t = 0; t < BOFF + KMAX; t++)
            bcol[j][t] = (float)tu_normal(&r);
        for (int t = 0; t < KMAX; t++)
            b[(size_t)t * CMAX + j] = bcol[j][BOFF + t];
        col[j] = bcol[j];
    }
    const int Ks[] = {16, 32, 48, 40, KMAX};
    const float scale = 0.61f;
    int runs = 0;
    for (int kk = 0; kk < S_NKERN; kk++) {
        if (attn_kernel_select(s_kernels[kk]) != ATTN_OK)
            continue;
        const attn_kern *k = attn_kern_get();
        for (int ki = 0; ki < 5; ki++)
            for (int n = 1; n <= CMAX; n++) {
                const int K = Ks[ki], ncols = (n + 15) / 16 * 16, ld = CMAX;
                for (int j = 0; j < ncols; j++)
                    bias[j] = j < n ? (float)tu_normal(&r) : -INFINITY;
                const attn_kern_bcols bc = {col, BOFF, n};
                float mx[R];
                k->logits(a, AOFF, K, b, (size_t)ld, ncols, scale, bias, z, raw, (size_t)ld, mx,
                          &bc);
                runs++;
                for (int i = 0; i < k->rows; i++) {
                    double want_mx = -INFINITY;
                    for (int j = 0; j < ncols; j++) {
                        const float gz = z[(size_t)i * ld + j], gr = raw[(size_t)i * ld + j];
                        if (j >= n) {
                            ck_assert_msg(isinf(gz) && gz < 0 && isfinite(gr),
                                          "[%s] K %d n %d: padding [%d][%d] z %g raw %g",
                                          k->name, K, n, i, j, (double)gz, (double)gr);
                            continue;
                        }
                        double sum = 0.0, mag = 0.0;
                        for (int t = 0; t < K; t++) {
                            double p = (double)arow[i][AOFF + t] * bcol[j][BOFF + t];
                            sum += p;
                            mag += fabs(p);
                        }
                        const double tol = K * 0x1p-23 * mag + 1e-30;
                        ck_assert_msg(fabs(gr - sum) <= tol,
                                      "[%s] K %d n %d: raw [%d][%d] %.9g, want %.9g", k->name,
                                      K, n, i, j, (double)gr, sum);
                        const double wz = sum * scale + bias[j];
                        ck_assert_msg(fabs(gz - wz) <= tol * scale + 1e-6 * fabs(wz),
                                      "[%s] K %d n %d: z [%d][%d] %.9g, want %.9g", k->name, K,
                                      n, i, j, (double)gz, wz);
                        want_mx = fmax(want_mx, (double)gz);
                    }
                    ck_assert_msg(mx[i] == (float)want_mx, "[%s] K %d n %d: row max %d %.9g",
                                  k->name, K, n, i, (double)mx[i]);
                }
            }
    }
    ck_assert_int_ge(runs, 2 * 5 * CMAX);   /* generic and the CPU's own set at least */
    attn_kernel_select(NULL);
}
END_TEST

/* The bfloat16 products (kern.h: attn_kern_dp) on their own, against the
 * same sums in double: every column width the blocking has (48-wide chunks,
 * a 32 or 16 wide rest), every count of real columns in the last vector
 * (padding: -inf logits, finite products), short and long inner
 * dimensions, rows read at an odd offset.  The products of bfloat16 values
 * are exact, so the only error is the float sums': at most 2 K2 ulps of the
 * sum of magnitudes.  Only on a CPU that has the instruction; elsewhere the
 * set must not be handed out. */
START_TEST(test_dp_kernels)
{
    if (attn_kernel_select("avx512bf16") != ATTN_OK) {
        ck_assert_ptr_null(attn_kern_dp_get());
        return;
    }
    const attn_kern_dp *dp = attn_kern_dp_get();
    ck_assert_ptr_nonnull(dp);
    ck_assert_int_eq(dp->rows, attn_kern_get()->rows);
    enum { R = ATTN_KERN_MAX_ROWS, KMAX = 24, CMAX = 112, AOFF = 3 };
    tu_rng r = {909};
    static uint16_t arow[R][AOFF + 2 * KMAX];
    static uint32_t b[KMAX * CMAX];
    static float c[R * CMAX], z[R * CMAX], bias[CMAX];
    const uint16_t *a[R];
    for (int i = 0; i < R; i++) {
        for (int t = 0; t < AOFF + 2 * KMAX; t++)
            arow[i][t] = attn_bf16_from_f32((float)tu_normal(&r));
        a[i] = arow[i];
    }
    for (int i = 0; i < KMAX * CMAX; i++)
        b[i] = (uint32_t)attn_bf16_from_f32((float)tu_normal(&r)) |
               (uint32_t)attn_bf16_from_f32((float)tu_normal(&r)) << 16;
    for (int j = 0; j < CMAX; j++)
        bias[j] = j % 7 == 6 ? -INFINITY : (float)tu_normal(&r);
    const int K2s[] = {1, 3, 8, KMAX};
    const float scale = 0.37f;
    static float bias_n[CMAX], raw[R * CMAX];
    /* A kernel may skip the padding's products (kern_avx512bf16.c does when
     * the last vector holds two real columns or fewer). */
    for (int ki = 0; ki < 4; ki++)
        for (int ncols = 16; ncols <= CMAX; ncols += 16)
            for (int nreal = ncols - 15; nreal <= ncols; nreal++) {
                const int K2 = K2s[ki], ld = CMAX;
                for (int j = 0; j < CMAX; j++)
                    bias_n[j] = j < nreal ? bias[j] : -INFINITY;
                dp->tile(a, AOFF, K2, b, (size_t)ld, ncols, nreal, c, (size_t)ld);
                float mx[R];
                dp->logits(a, AOFF, K2, b, (size_t)ld, ncols, nreal, scale, bias_n, z, raw,
                           (size_t)ld, mx);
                for (int i = 0; i < dp->rows; i++) {
                    double want_mx = -INFINITY;
                    for (int j = 0; j < ncols; j++) {
                        const size_t at = (size_t)i * ld + j;
                        if (j >= nreal) {   /* padding: -inf logits, finite products */
                            ck_assert_msg(isinf(z[at]) && z[at] < 0,
                                          "padding logit K2 %d ncols %d nreal %d [%d][%d]: %g",
                                          K2, ncols, nreal, i, j, (double)z[at]);
                            ck_assert(isfinite(c[at]) && isfinite(raw[at]));
                            continue;
                        }
                        double sum = 0.0, mag = 0.0;
                        for (int t = 0; t < 2 * K2; t++) {
                            uint32_t pair = b[(size_t)(t / 2) * ld + j];
                            double p = (double)attn_bf16_to_f32(arow[i][AOFF + t]) *
                                       attn_bf16_to_f32((uint16_t)(t % 2 ? pair >> 16 : pair));
                            sum += p;
                            mag += fabs(p);
                        }
                        double tol = 2.0 * K2 * 0x1p-23 * mag + 1e-30;
                        ck_assert_msg(fabs(c[at] - sum) <= tol,
                                      "tile K2 %d ncols %d nreal %d [%d][%d]: %.9g, want %.9g",
                                      K2, ncols, nreal, i, j, (double)c[at], sum);
                        ck_assert(raw[at] == c[at]);   /* same sums */
                        double wz = sum * scale + bias_n[j];
                        float gz = z[at];
                        if (isinf(bias_n[j]))
                            ck_assert(isinf(gz) && gz < 0);
                        else
                            ck_assert_msg(fabs(gz - wz) <= tol * scale + 1e-6 * fabs(wz),
                                          "logits K2 %d ncols %d nreal %d [%d][%d]: %.9g, "
                                          "want %.9g", K2, ncols, nreal, i, j, (double)gz, wz);
                        want_mx = fmax(want_mx, isinf(bias_n[j]) ? -INFINITY : (double)gz);
                    }
                    ck_assert_msg(mx[i] == (float)want_mx, "row max %d: %.9g, want %.9g", i,
                                  (double)mx[i], want_mx);
                }
            }
    ck_assert_int_eq(attn_kernel_select("avx512"), ATTN_OK);
    ck_assert_ptr_null(attn_kern_dp_get());   /* the float set alone widens */
    attn_kernel_select(NULL);
}
END_TEST

/* A bfloat16 table is half a float one, and owns its rows. */
START_TEST(test_bf16_memory)
{
    tu_rng r = {1919};
    fx f = s_fixture(&r, 1000, 32, 64, 4, 8, F_PROJ | F_POS, 1.0f, 1.0f);
    attn_tables *t32 = NULL, *t16 = NULL;
    attn_tables_opts o = {ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_BF16, 2};
    ck_assert_int_eq(attn_tables_build(&t32, f.md, f.emb, 1000, (size_t)f.ld, NULL,
                                       ATTN_PRECOMPUTE_ALL, 2), ATTN_OK);
    ck_assert_int_eq(attn_tables_build_opts(&t16, f.md, f.emb, 1000, (size_t)f.ld, NULL, &o),
                     ATTN_OK);
    /* Rows of [q | g | k | v], m = 64: 256 elements; float tables have
     * room for a kernel block's spill. */
    size_t model = attn_tables_bytes(t32) - 1016 * 256 * sizeof(float);
    ck_assert_uint_eq(attn_tables_bytes(t16), model + 1000 * 256 * sizeof(uint16_t));
    ck_assert_int_eq(attn_tables_options(t16).precision, ATTN_PRECISION_BF16);
    ck_assert_int_eq(attn_tables_options(t32).precision, ATTN_PRECISION_F32);
    ck_assert_int_eq(attn_tables_borrows_emb(t16), 0);
    ck_assert_int_eq(attn_tables_borrows_emb(t32), 0);
    /* The identity model in bfloat16 copies the embeddings at half size
     * instead of aliasing them. */
    attn_model *id = attn_model_identity(32, 8);
    attn_tables *ti = NULL;
    ck_assert_int_eq(attn_tables_build_opts(&ti, id, f.emb, 1000, (size_t)f.ld, NULL, &o),
                     ATTN_OK);
    ck_assert_int_eq(attn_tables_borrows_emb(ti), 0);
    ck_assert_uint_ge(attn_tables_bytes(ti), 1000 * 32 * sizeof(uint16_t));
    o.precision = (attn_precision)7;
    attn_tables *bad = NULL;
    ck_assert_int_eq(attn_tables_build_opts(&bad, f.md, f.emb, 1000, (size_t)f.ld, NULL, &o),
                     ATTN_EINVAL);
    ck_assert_ptr_null(bad);
    ck_assert_int_eq(attn_tables_build_opts(&bad, f.md, f.emb, 1000, (size_t)f.ld, NULL, NULL),
                     ATTN_EINVAL);
    attn_tables_free(&t32);
    attn_tables_free(&t16);
    attn_tables_free(&ti);
    attn_model_free(&id);
    s_fixture_free(&f);
}
END_TEST

/* Threads share tables, each with its own scratch, and get the same
 * answers as one thread alone. */
typedef struct s_thr {
    const attn_tables *t;
    const rq_buf *q;
    int nq;
    float *out;          /* nq x 32 scores */
    int st;
} s_thr;

static void *s_thread(void *arg)
{
    s_thr *a = arg;
    attn_limits lim = {.max_cand = 32, .max_hist = 12, .max_k = 5, .max_explain = 2};
    attn_scratch *s = attn_scratch_new(a->t, &lim);
    a->st = s ? ATTN_OK : ATTN_ENOMEM;
    for (int rep = 0; rep < 20 && a->st == ATTN_OK; rep++)
        for (int i = 0; i < a->nq && a->st == ATTN_OK; i++) {
            attn_result res;
            a->st = attn_score_all(a->t, &a->q[i].rq, s, a->out + (size_t)i * 32);
            if (a->st == ATTN_OK)
                a->st = attn_score(a->t, &a->q[i].rq, s, &res);
        }
    attn_scratch_free(&s);
    return NULL;
}

START_TEST(test_threads_share_tables)
{
    tu_rng r = {1313};
    fx f = s_fixture(&r, 500, 32, 32, 4, 12, F_PROJ | F_POS | F_IBIAS | F_RES, 1.0f, 1.0f);
    attn_tables *t = NULL;
    ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 500, (size_t)f.ld, f.pidx,
                                       ATTN_PRECOMPUTE_ALL, 2), ATTN_OK);
    enum { NQ = 8 };
    static rq_buf q[NQ];
    for (int i = 0; i < NQ; i++)
        s_request(&r, &q[i], 500, 12, 32, 5, 2, 1);
    float one[NQ * 32], two[2][NQ * 32];
    s_thr solo = {t, q, NQ, one, 0};
    s_thread(&solo);
    ck_assert_int_eq(solo.st, ATTN_OK);
    s_thr a[2] = {{t, q, NQ, two[0], 0}, {t, q, NQ, two[1], 0}};
    pthread_t tid[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&tid[i], NULL, s_thread, &a[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(tid[i], NULL);
        ck_assert_int_eq(a[i].st, ATTN_OK);
        ck_assert(memcmp(one, two[i], sizeof one) == 0);
    }
    attn_tables_free(&t);
    s_fixture_free(&f);
}
END_TEST

/* ---- the reference against hand-worked cases ---------------------------- */

START_TEST(test_ref_by_hand)
{
    /* d = m = 2, one head, scale 1, W_Q = W_K = W_O = I, W_V = [[1,2],[3,4]].
     * History e0 = (1,0), e1 = (0,1); candidate (1,0).
     * z = (1, 0) + pos_bias (0.5, 0) + log w (0, log 2) = (1.5, log 2).
     * v0 = (1,2), v1 = (3,4); u = a0 v0 + a1 v1; score = u . (1,0) + beta. */
    attn_model *md = attn_model_new(2, 2, 1, 2, 1, 0);
    md->scale = 1.0f;
    float wv[] = {1, 2, 3, 4};
    memcpy(md->wv, wv, sizeof wv);
    free(md->wq);
    free(md->wk);
    free(md->wo);
    md->wq = md->wk = md->wo = NULL;
    md->pos_bias[0] = 0.5f;
    md->item_ids[0] = 42;
    md->item_bias[0] = 0.25f;
    ck_assert_int_eq(attn_model_check(md, NULL, 0), ATTN_OK);
    float emb[] = {1, 0, 0, 1, 1, 0};
    int64_t pidx[] = {-1, -1, 0};
    uint32_t hist[] = {0, 1}, cand[] = {2, 0};
    float w[] = {1.0f, 2.0f};
    attn_request rq = {.hist = hist, .hist_weight = w, .n_hist = 2, .cand = cand, .n_cand = 2};
    double sc[2], wt[4];
    ck_assert_int_eq(attn_score_ref(md, emb, 3, 2, pidx, &rq, sc, wt), ATTN_OK);
    double e0 = exp(1.5), e1 = 2.0, a0 = e0 / (e0 + e1), a1 = e1 / (e0 + e1);
    ck_assert_double_eq_tol(sc[0], a0 * 1 + a1 * 3 + 0.25, 1e-12);
    ck_assert_double_eq_tol(sc[1], a0 * 1 + a1 * 3, 1e-12);
    ck_assert_double_eq_tol(wt[0], a0, 1e-12);
    ck_assert_double_eq_tol(wt[1], a1, 1e-12);

    /* Two heads of width 1 average their weights: with W = I, head 0 sees
     * coordinate 0 and head 1 coordinate 1. */
    attn_model *m2 = attn_model_new(2, 2, 2, 2, 0, 0);
    m2->scale = 1.0f;
    free(m2->wq); free(m2->wk); free(m2->wv); free(m2->wo);
    m2->wq = m2->wk = m2->wv = m2->wo = NULL;
    float emb2[] = {1, 0, 0, 1, 2, 3};
    uint32_t c2[] = {2};
    attn_request rq2 = {.hist = hist, .n_hist = 2, .cand = c2, .n_cand = 1};
    ck_assert_int_eq(attn_score_ref(m2, emb2, 3, 2, NULL, &rq2, sc, wt), ATTN_OK);
    /* head 0: z = (2, 0); head 1: z = (0, 3). */
    double h0a0 = exp(2.0) / (exp(2.0) + 1), h1a1 = exp(3.0) / (exp(3.0) + 1);
    /* ctx = (h0: a0*1 + a1*0, h1: a0*0 + a1*1) = (h0a0, h1a1); score = ctx . (2,3) */
    ck_assert_double_eq_tol(sc[0], 2 * h0a0 + 3 * h1a1, 1e-12);
    ck_assert_double_eq_tol(wt[0], (h0a0 + (1 - h1a1)) / 2, 1e-12);
    ck_assert_double_eq_tol(wt[1], ((1 - h0a0) + h1a1) / 2, 1e-12);
    attn_model_free(&md);
    attn_model_free(&m2);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

/* The block worked by hand: d = m = 1, every projection 1, S_Q = S_K =
 * U_K = 1, U_V = 2, window 2. */
static attn_model *s_hand_block(void)
{
    attn_model *md = attn_model_new(1, 1, 1, 2, 0, 0);
    ck_assert_int_eq(attn_model_add_sa(md, 2), ATTN_OK);
    md->wq[0] = md->wk[0] = md->wv[0] = md->wo[0] = 1.0f;
    md->sa_q[0] = md->sa_k[0] = md->sa_uk[0] = 1.0f;
    md->sa_uv[0] = 2.0f;
    md->scale = 1.0f;
    return md;
}

/* The self-attention block (docs/MODEL.md §2.1): a case worked by hand, a
 * zero block that changes nothing, and a random one that does. */
START_TEST(test_self_attention)
{
    /* s_hand_block; history e = (1, 2) newest first; candidate e = 1. */
    attn_model *md = s_hand_block();
    ck_assert_int_eq(attn_model_check(md, NULL, 0), ATTN_OK);
    float emb[3] = {1.0f, 2.0f, 1.0f};
    uint32_t hist[2] = {0, 1}, cand[1] = {2};
    attn_request rq = {.hist = hist, .n_hist = 2, .cand = cand, .n_cand = 1, .k = 1};
    /* Newest event: attends to itself (logit 1*1) and the older one (1*2). */
    double a0 = 1.0 / (1.0 + exp(1.0)), a1 = 1.0 - a0;
    double k0 = 1.0 + a0 * 1.0 + a1 * 2.0, v0 = 1.0 + 2.0 * (a0 * 1.0 + a1 * 2.0);
    /* Oldest: only itself. */
    double k1 = 2.0 + 2.0, v1 = 2.0 + 4.0;
    double b0 = 1.0 / (1.0 + exp(k1 - k0)), want = b0 * v0 + (1.0 - b0) * v1;
    double ref;
    ck_assert_int_eq(attn_score_ref(md, emb, 3, 1, NULL, &rq, &ref, NULL), ATTN_OK);
    ck_assert_msg(fabs(ref - want) < 1e-9, "reference %.12g, by hand %.12g", ref, want);
    for (int mode = 0; mode < 2; mode++) {
        attn_tables *t = NULL;
        ck_assert_int_eq(attn_tables_build(&t, md, emb, 3, 1, NULL, (attn_precompute)mode, 1),
                         ATTN_OK);
        attn_limits lim = {.max_cand = 1, .max_hist = 2, .max_k = 1, .max_explain = 2};
        attn_scratch *sc = attn_scratch_new(t, &lim);
        float fast;
        ck_assert_int_eq(attn_score_all(t, &rq, sc, &fast), ATTN_OK);
        ck_assert_msg(fabs(fast - want) < 1e-5 * want, "fast %.9g, by hand %.9g", (double)fast,
                      want);
        /* The older event as context only: one attended event whose key and
         * value still see it; without the context, only itself. */
        attn_request r1 = {.hist = hist, .n_hist = 1, .n_ctx = 1, .cand = cand, .n_cand = 1,
                           .k = 1};
        double ref1;
        ck_assert_int_eq(attn_score_ref(md, emb, 3, 1, NULL, &r1, &ref1, NULL), ATTN_OK);
        ck_assert_int_eq(attn_score_all(t, &r1, sc, &fast), ATTN_OK);
        ck_assert_msg(fabs(ref1 - v0) < 1e-9 && fabs(fast - v0) < 1e-5 * v0,
                      "context: ref %.9g fast %.9g, by hand %.9g", ref1, (double)fast, v0);
        r1.n_ctx = 0;
        ck_assert_int_eq(attn_score_ref(md, emb, 3, 1, NULL, &r1, &ref1, NULL), ATTN_OK);
        ck_assert_int_eq(attn_score_all(t, &r1, sc, &fast), ATTN_OK);
        ck_assert_msg(fabs(ref1 - 3.0) < 1e-9 && fabs(fast - 3.0) < 1e-5,
                      "no context: ref %.9g fast %.9g, by hand 3", ref1, (double)fast);
        /* Context rows are checked like history rows. */
        uint32_t bad[2] = {0, 7};
        r1.hist = bad;
        r1.n_ctx = 1;
        ck_assert_int_eq(attn_score_all(t, &r1, sc, &fast), ATTN_EINVAL);
        ck_assert_int_eq(attn_score_ref(md, emb, 3, 1, NULL, &r1, &ref1, NULL), ATTN_EINVAL);
        r1.n_ctx = -1;
        ck_assert_int_eq(attn_score_all(t, &r1, sc, &fast), ATTN_EINVAL);
        attn_scratch_free(&sc);
        attn_tables_free(&t);
    }
    attn_model_free(&md);

    /* A zero block scores as no block; a random one does not. */
    tu_rng r = {1717};
    fx f = s_fixture(&r, 80, 16, 24, 3, 12, F_PROJ | F_RES | F_IBIAS | F_POS, 1.0f, 1.0f);
    rq_buf b;
    s_request(&r, &b, f.n, 12, 30, 5, 3, 1);
    double plain[30], zero[30], rnd[30];
    ck_assert_int_eq(attn_score_ref(f.md, f.emb, 80, (size_t)f.ld, f.pidx, &b.rq, plain, NULL),
                     ATTN_OK);
    ck_assert_int_eq(attn_model_add_sa(f.md, 5), ATTN_OK);
    ck_assert_int_eq(attn_score_ref(f.md, f.emb, 80, (size_t)f.ld, f.pidx, &b.rq, zero, NULL),
                     ATTN_OK);
    for (int c = 0; c < 30; c++)
        ck_assert_msg(fabs(zero[c] - plain[c]) <= 1e-12 * fmax(1.0, fabs(plain[c])),
                      "zero block changed score %d: %.12g vs %.12g", c, zero[c], plain[c]);
    tu_fill_normal(&r, f.md->sa_q, 16 * 24, 1.0f);
    tu_fill_normal(&r, f.md->sa_k, 16 * 24, 1.0f);
    tu_fill_normal(&r, f.md->sa_uk, 16 * 24, 0.5f);
    tu_fill_normal(&r, f.md->sa_uv, 16 * 24, 0.5f);
    ck_assert_int_eq(attn_score_ref(f.md, f.emb, 80, (size_t)f.ld, f.pidx, &b.rq, rnd, NULL),
                     ATTN_OK);
    double diff = 0.0;
    for (int c = 0; c < 30; c++)
        diff = fmax(diff, fabs(rnd[c] - plain[c]));
    ck_assert_msg(diff > 1e-2, "a random block changed scores by only %g", diff);

    /* What attn_model_check refuses. */
    char why[160];
    float *keep = f.md->sa_uv;
    f.md->sa_uv = NULL;
    ck_assert_int_eq(attn_model_check(f.md, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, "sa_len=5") && strstr(why, "missing"), "%s", why);
    f.md->sa_uv = keep;
    f.md->sa_pos[2] = NAN;
    ck_assert_int_eq(attn_model_check(f.md, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, "sa_pos[2]"), "%s", why);
    f.md->sa_pos[2] = 0.0f;
    f.md->sa_len = ATTN_SA_MAX + 1;
    ck_assert_int_eq(attn_model_check(f.md, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, "sa_len"), "%s", why);
    f.md->sa_len = 5;
    ck_assert_int_eq(attn_model_add_sa(f.md, 3), ATTN_EINVAL);   /* already has one */
    float *wq = f.md->wq;
    f.md->wq = NULL;
    ck_assert_int_eq(attn_model_check(f.md, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, "self-attention"), "%s", why);
    f.md->wq = wq;
    ck_assert_int_eq(attn_model_check(f.md, why, sizeof why), ATTN_OK);
    s_fixture_free(&f);
}
END_TEST

/* attn_model_check refuses md, saying w1 (and w2, unless NULL). */
static void s_refused(const attn_model *md, const char *w1, const char *w2)
{
    char why[160];
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, w1) && (!w2 || strstr(why, w2)), "%s", why);
}

/* Fast scores of md's tables (mode, precision) on rq, into out. */
static void s_fast_scores(const fx *f, const attn_model *md, attn_precompute mode,
                          attn_precision prec, const attn_request *rq, float *out)
{
    attn_tables *t = NULL;
    attn_tables_opts o = {mode, prec, 1};
    ck_assert_int_eq(attn_tables_build_opts(&t, md, f->emb, (size_t)f->n, (size_t)f->ld, f->pidx,
                                            &o), ATTN_OK);
    attn_limits lim = {.max_cand = rq->n_cand, .max_hist = rq->n_hist, .max_k = 5,
                       .max_explain = 3};
    attn_scratch *sc = attn_scratch_new(t, &lim);
    ck_assert_ptr_nonnull(sc);
    ck_assert_int_eq(attn_score_all(t, rq, sc, out), ATTN_OK);
    attn_scratch_free(&sc);
    attn_tables_free(&t);
}

/* The block's feed-forward layer (docs/MODEL.md §2.2): a case worked by
 * hand (the reference), a zero layer that scores exactly as no layer (the
 * reference and every fast path), a random one that does not, and what
 * attn_model_add_ffn and attn_model_check refuse. */
START_TEST(test_ffn)
{
    /* test_self_attention's hand case with a layer of width 1 set by hand
     * (the reference takes any width; the fast path needs multiples of 16):
     * W1 = (-1, 1)ᵀ, b1 = -1.9, W2 = (2, 3), b2 = (0.1, -0.2), so
     * h = relu(v' - k' - 1.9), k'' = k' + 2h + 0.1, v'' = v' + 3h - 0.2. */
    attn_model *md = s_hand_block();
    float w1[2] = {-1.0f, 1.0f}, b1[1] = {-1.9f}, w2[2] = {2.0f, 3.0f}, b2[2] = {0.1f, -0.2f};
    md->ffn = 1;
    md->ffn_w1 = w1;
    md->ffn_b1 = b1;
    md->ffn_w2 = w2;
    md->ffn_b2 = b2;
    float emb[3] = {1.0f, 2.0f, 1.0f};
    uint32_t hist[2] = {0, 1}, cand[1] = {2};
    attn_request rq = {.hist = hist, .n_hist = 2, .cand = cand, .n_cand = 1, .k = 1};
    double a0 = 1.0 / (1.0 + exp(1.0)), a1 = 1.0 - a0;
    double k0 = 1.0 + a0 + 2.0 * a1, v0 = 1.0 + 2.0 * (a0 + 2.0 * a1), k1 = 4.0, v1 = 6.0;
    double h0 = fmax(0.0, v0 - k0 + (double)b1[0]), h1 = fmax(0.0, v1 - k1 + (double)b1[0]);
    ck_assert(h0 == 0.0 && h1 > 0.0);   /* one event on each side of the relu */
    k0 += 2.0 * h0 + (double)b2[0];
    v0 += 3.0 * h0 + (double)b2[1];
    k1 += 2.0 * h1 + (double)b2[0];
    v1 += 3.0 * h1 + (double)b2[1];
    double b0 = 1.0 / (1.0 + exp(k1 - k0)), want = b0 * v0 + (1.0 - b0) * v1, ref;
    ck_assert_int_eq(attn_score_ref(md, emb, 3, 1, NULL, &rq, &ref, NULL), ATTN_OK);
    ck_assert_msg(fabs(ref - want) < 1e-9, "reference %.12g, by hand %.12g", ref, want);
    s_refused(md, "ffn=1", "multiple of 16");
    md->ffn_w1 = md->ffn_b1 = md->ffn_w2 = md->ffn_b2 = NULL;
    md->ffn = 0;
    attn_model_free(&md);

    /* A zero layer changes no score, bit for bit; a random one does. */
    tu_rng r = {2121};
    fx f = s_fixture(&r, 80, 16, 24, 3, 12, F_PROJ | F_RES | F_IBIAS | F_POS | F_SA, 1.0f, 1.0f);
    rq_buf b;
    s_request(&r, &b, f.n, 12, 30, 5, 3, 1);
    double plain[30], zero[30], rnd[30];
    float fplain[30], fzero[30];
    ck_assert_int_eq(attn_score_ref(f.md, f.emb, 80, (size_t)f.ld, f.pidx, &b.rq, plain, NULL),
                     ATTN_OK);
    attn_model *z = attn_model_clone(f.md);
    ck_assert_int_eq(attn_model_add_ffn(z, 32), ATTN_OK);
    ck_assert_int_eq(z->ffn, 32);
    ck_assert_int_eq(attn_model_check(z, NULL, 0), ATTN_OK);
    ck_assert_uint_eq(attn_model_bytes(z), attn_model_bytes(f.md) +
                                               (4 * 24 * 32 + 32 + 2 * 24) * sizeof(float));
    ck_assert_int_eq(attn_score_ref(z, f.emb, 80, (size_t)f.ld, f.pidx, &b.rq, zero, NULL),
                     ATTN_OK);
    for (int c = 0; c < 30; c++)
        ck_assert_msg(zero[c] == plain[c], "zero layer changed reference score %d: %.17g vs "
                      "%.17g", c, zero[c], plain[c]);
    for (int kk = 0; kk < S_NKERN; kk++)
        for (int mode = 0; mode < 2 && attn_kernel_select(s_kernels[kk]) == ATTN_OK; mode++)
            for (int p = 0; p < 2; p++) {
                s_fast_scores(&f, f.md, (attn_precompute)mode, (attn_precision)p, &b.rq, fplain);
                s_fast_scores(&f, z, (attn_precompute)mode, (attn_precision)p, &b.rq, fzero);
                for (int c = 0; c < 30; c++)
                    ck_assert_msg(fzero[c] == fplain[c], "[%s] mode %d prec %d: zero layer "
                                  "changed score %d: %.9g vs %.9g", attn_kernel_name(), mode, p,
                                  c, (double)fzero[c], (double)fplain[c]);
            }
    attn_kernel_select(NULL);
    attn_model *cp = attn_model_clone(z);   /* clones carry the layer */
    ck_assert_ptr_nonnull(cp);
    ck_assert_int_eq(cp->ffn, 32);
    ck_assert_ptr_ne(cp->ffn_w1, z->ffn_w1);
    attn_model_free(&cp);
    attn_model_free(&z);
    s_add_ffn(&r, f.md, 16);
    ck_assert_int_eq(attn_score_ref(f.md, f.emb, 80, (size_t)f.ld, f.pidx, &b.rq, rnd, NULL),
                     ATTN_OK);
    double diff = 0.0;
    for (int c = 0; c < 30; c++)
        diff = fmax(diff, fabs(rnd[c] - plain[c]));
    ck_assert_msg(diff > 1e-2, "a random layer changed scores by only %g", diff);

    /* What attn_model_check refuses. */
    float *keep = f.md->ffn_w2;
    f.md->ffn_w2 = NULL;
    s_refused(f.md, "ffn=16", "missing");
    f.md->ffn_w2 = keep;
    f.md->ffn_b1[3] = NAN;
    s_refused(f.md, "ffn_b1[3]", NULL);
    f.md->ffn_b1[3] = 0.0f;
    f.md->ffn_w2[100] = INFINITY;
    s_refused(f.md, "ffn_w2[100]", NULL);
    f.md->ffn_w2[100] = 0.0f;
    f.md->ffn = 0;
    s_refused(f.md, "ffn=0", "present");
    f.md->ffn = -16;
    s_refused(f.md, ">= 0", NULL);
    f.md->ffn = 16;
    ck_assert_int_eq(attn_model_check(f.md, NULL, 0), ATTN_OK);

    /* What attn_model_add_ffn refuses, leaving the model as it was. */
    ck_assert_int_eq(attn_model_add_ffn(f.md, 16), ATTN_EINVAL);   /* already has one */
    ck_assert_int_eq(attn_model_add_ffn(NULL, 16), ATTN_EINVAL);
    attn_model *nb = attn_model_new(16, 24, 3, 12, 0, 0);           /* no block */
    ck_assert_int_eq(attn_model_add_ffn(nb, 16), ATTN_EINVAL);
    ck_assert_int_eq(attn_model_add_sa(nb, 3), ATTN_OK);
    const int bad_width[] = {0, 8, 24, 1040, -16};
    for (size_t i = 0; i < sizeof bad_width / sizeof bad_width[0]; i++)
        ck_assert_int_eq(attn_model_add_ffn(nb, bad_width[i]), ATTN_EINVAL);
    ck_assert_int_eq(nb->ffn, 0);
    ck_assert_ptr_null(nb->ffn_w1);
    ck_assert_int_eq(attn_model_add_ffn(nb, ATTN_FFN_MAX), ATTN_OK);
    attn_model_free(&nb);
    attn_model *odd = attn_model_new(12, 12, 3, 12, 0, 0);          /* m % 8 != 0 */
    ck_assert_int_eq(attn_model_add_sa(odd, 3), ATTN_OK);
    ck_assert_int_eq(attn_model_add_ffn(odd, 16), ATTN_EINVAL);
    odd->ffn = 16;   /* forced past attn_model_add_ffn: check says why */
    s_refused(odd, "m a multiple of 8", NULL);
    odd->ffn = 0;
    attn_model_free(&odd);
    s_fixture_free(&f);
}
END_TEST

START_TEST(test_score_errors)
{
    tu_rng r = {808};
    fx f = s_fixture(&r, 20, 8, 8, 1, 6, F_PROJ, 1.0f, 1.0f);   /* heads as the identity's */
    attn_tables *t = NULL;
    ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 20, (size_t)f.ld, NULL,
                                       ATTN_PRECOMPUTE_ALL, 1), ATTN_OK);
    attn_limits lim = {.max_cand = 4, .max_hist = 5, .max_k = 3, .max_explain = 2};
    attn_scratch *s = attn_scratch_new(t, &lim);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_gt(attn_scratch_bytes(s), 0);
    uint32_t hist[8] = {1, 2, 3, 4, 5, 6}, cand[8] = {7, 8, 9, 10, 11};
    float w[8] = {1, 1, 1, 1, 1, 1};
    attn_request ok = {.hist = hist, .hist_weight = w, .n_hist = 3, .cand = cand, .n_cand = 4,
                       .k = 3, .explain = 2};
    attn_result res;
    float sc[8];
    ck_assert_int_eq(attn_score(t, &ok, s, &res), ATTN_OK);

    attn_request rq = ok;
    rq.n_hist = 6;                 /* over max_hist 5 (and l_max 6 is fine) */
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_ELIMIT);
    ck_assert_int_eq(attn_score_all(t, &rq, s, sc), ATTN_ELIMIT);
    rq = ok; rq.n_cand = 5;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_ELIMIT);
    rq = ok; rq.k = 4;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_ELIMIT);
    ck_assert_int_eq(attn_score_all(t, &rq, s, sc), ATTN_OK);   /* k is ignored there */
    rq = ok; rq.explain = 3;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_ELIMIT);
    rq = ok; rq.n_hist = 0;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    rq = ok; rq.n_cand = 0;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    rq = ok; rq.k = 0;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    rq = ok; rq.explain = -1;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    rq = ok; cand[2] = 20;         /* row out of the catalog */
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    ck_assert_int_eq(attn_score_all(t, &rq, s, sc), ATTN_EINVAL);
    cand[2] = 9;
    hist[1] = 1000000;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    hist[1] = 2;
    w[0] = 0.0f;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    w[0] = -1.0f;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    w[0] = NAN;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    w[0] = INFINITY;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    w[0] = 1.0f;
    rq.hist = NULL;
    ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
    ck_assert_int_eq(attn_score(NULL, &ok, s, &res), ATTN_EINVAL);
    ck_assert_int_eq(attn_score(t, NULL, s, &res), ATTN_EINVAL);
    ck_assert_int_eq(attn_score(t, &ok, NULL, &res), ATTN_EINVAL);
    ck_assert_int_eq(attn_score(t, &ok, s, NULL), ATTN_EINVAL);
    ck_assert_int_eq(attn_score_all(t, &ok, s, NULL), ATTN_EINVAL);
    ck_assert_int_eq(attn_score(t, &ok, s, &res), ATTN_OK);

    /* A history longer than the model's position bias. */
    attn_limits big = {.max_cand = 4, .max_hist = 8, .max_k = 3, .max_explain = 2};
    attn_scratch *s8 = attn_scratch_new(t, &big);
    rq = ok; rq.n_hist = 7;
    ck_assert_int_eq(attn_score(t, &rq, s8, &res), ATTN_ELIMIT);
    ck_assert_int_eq(attn_score_ref(f.md, f.emb, 20, (size_t)f.ld, NULL, &rq, (double[4]){0},
                                    NULL), ATTN_EINVAL);
    attn_scratch_free(&s8);

    /* Scratches and tables that do not go together. */
    fx g = s_fixture(&r, 20, 8, 8, 1, 6, 0, 1.0f, 1.0f);          /* identity, d = 8 */
    fx h = s_fixture(&r, 20, 12, 12, 1, 6, 0, 1.0f, 1.0f);        /* identity, d = 12 */
    attn_tables *ti = NULL, *t12 = NULL, *tn = NULL;
    ck_assert_int_eq(attn_tables_build(&ti, g.md, g.emb, 20, (size_t)g.ld, NULL,
                                       ATTN_PRECOMPUTE_ALL, 1), ATTN_OK);
    ck_assert_int_eq(attn_tables_build(&t12, h.md, h.emb, 20, (size_t)h.ld, NULL,
                                       ATTN_PRECOMPUTE_ALL, 1), ATTN_OK);
    ck_assert_int_eq(attn_tables_build(&tn, f.md, f.emb, 20, (size_t)f.ld, NULL,
                                       ATTN_PRECOMPUTE_NONE, 1), ATTN_OK);
    ck_assert(!attn_scratch_fits(s, t12));                       /* other d */
    ck_assert_int_eq(attn_score(t12, &ok, s, &res), ATTN_EINVAL);
    ck_assert(attn_scratch_fits(s, ti));                         /* needs less */
    attn_scratch *si = attn_scratch_new(ti, &lim);
    /* Precomputed tables need nothing the identity's scratch lacks (values
     * are read in place, never packed), whatever the projections. */
    ck_assert(attn_scratch_fits(si, t));
    ck_assert_int_eq(attn_score(t, &ok, si, &res), ATTN_OK);
    ck_assert(!attn_scratch_fits(si, tn));                       /* no room to project */
    ck_assert_int_eq(attn_score(tn, &ok, si, &res), ATTN_EINVAL);
    ck_assert(!attn_scratch_fits(s, tn));                        /* no room to project */
    ck_assert_int_eq(attn_score(tn, &ok, s, &res), ATTN_EINVAL);
    attn_scratch *sn = attn_scratch_new(tn, &lim);
    ck_assert(attn_scratch_fits(sn, t));
    ck_assert_int_eq(attn_score(t, &ok, sn, &res), ATTN_OK);
    ck_assert_int_eq(attn_score(tn, &ok, sn, &res), ATTN_OK);

    /* Bad limits. */
    attn_limits bad = lim;
    bad.max_cand = 0;
    ck_assert_ptr_null(attn_scratch_new(t, &bad));
    bad = lim; bad.max_explain = -1;
    ck_assert_ptr_null(attn_scratch_new(t, &bad));
    ck_assert_ptr_null(attn_scratch_new(NULL, &lim));

    attn_scratch_free(&si);
    attn_scratch_free(&sn);
    attn_scratch_free(&s);
    attn_scratch_free(&s);          /* NULL is fine */
    attn_tables_free(&tn);
    attn_tables_free(&ti);
    attn_tables_free(&t12);
    attn_tables_free(&t);
    s_fixture_free(&g);
    s_fixture_free(&h);
    s_fixture_free(&f);
}
END_TEST

/* Overflowing inputs: a non-finite score is ATTN_ERANGE, never a ranking. */
START_TEST(test_score_erange)
{
    tu_rng r = {909};
    for (int ident = 0; ident < 2; ident++) {
        fx f = s_fixture(&r, 10, 8, 8, ident ? 1 : 2, 4, ident ? 0 : F_PROJ, 1.0f, 1e25f);
        for (int mode = 0; mode < 2; mode++) {
            attn_tables *t = NULL;
            ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 10, (size_t)f.ld, NULL,
                                               (attn_precompute)mode, 1), ATTN_OK);
            attn_limits lim = {.max_cand = 4, .max_hist = 4, .max_k = 4, .max_explain = 2};
            attn_scratch *s = attn_scratch_new(t, &lim);
            uint32_t hist[] = {1, 2, 3}, cand[] = {4, 5};
            attn_request rq = {.hist = hist, .n_hist = 3, .cand = cand, .n_cand = 2, .k = 2,
                               .explain = 1};
            for (int kk = 0; kk < S_NKERN; kk++) {
                if (attn_kernel_select(s_kernels[kk]) != ATTN_OK)
                    continue;
                attn_result res;
                float sc[2];
                ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_ERANGE);
                ck_assert_int_eq(res.n, 0);
                ck_assert_int_eq(attn_score_all(t, &rq, s, sc), ATTN_ERANGE);
            }
            attn_kernel_select(NULL);
            attn_scratch_free(&s);
            attn_tables_free(&t);
        }
        s_fixture_free(&f);
    }
}
END_TEST

START_TEST(test_tables_errors)
{
    tu_rng r = {1010};
    fx f = s_fixture(&r, 10, 8, 8, 2, 4, F_PROJ | F_IBIAS, 1.0f, 1.0f);
    attn_tables *t = (attn_tables *)&r;          /* must be reset to NULL */
    ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 10, 7, f.pidx, ATTN_PRECOMPUTE_ALL, 1),
                     ATTN_EINVAL);                /* ld < d */
    ck_assert_ptr_null(t);
    ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 10, 8, f.pidx, ATTN_PRECOMPUTE_ALL, 0),
                     ATTN_EINVAL);
    ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 10, 8, f.pidx, (attn_precompute)7, 1),
                     ATTN_EINVAL);
    ck_assert_int_eq(attn_tables_build(&t, NULL, f.emb, 10, 8, f.pidx, ATTN_PRECOMPUTE_ALL, 1),
                     ATTN_EINVAL);
    f.pidx[3] = f.md->n_items;                   /* past the model's items */
    ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 10, (size_t)f.ld, f.pidx,
                                       ATTN_PRECOMPUTE_ALL, 1), ATTN_EINVAL);
    f.pidx[3] = -2;
    ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 10, (size_t)f.ld, f.pidx,
                                       ATTN_PRECOMPUTE_NONE, 1), ATTN_EINVAL);
    f.pidx[3] = -1;
    f.md->wq[5] = NAN;                            /* the model is checked */
    ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 10, (size_t)f.ld, f.pidx,
                                       ATTN_PRECOMPUTE_ALL, 1), ATTN_EINVAL);
    f.md->wq[5] = 0.0f;
    ck_assert_int_eq(attn_tables_build(&t, f.md, f.emb, 10, (size_t)f.ld, f.pidx,
                                       ATTN_PRECOMPUTE_ALL, 1), ATTN_OK);
    attn_tables_free(&t);
    ck_assert_ptr_null(t);
    /* An empty catalog builds (a store may be empty); no row is valid. */
    for (int mode = 0; mode < 2; mode++) {
        ck_assert_int_eq(attn_tables_build(&t, f.md, NULL, 0, 8, NULL, (attn_precompute)mode, 2),
                         ATTN_OK);
        ck_assert_uint_eq(attn_tables_rows(t), 0);
        attn_limits lim = {.max_cand = 2, .max_hist = 2, .max_k = 2, .max_explain = 0};
        attn_scratch *s = attn_scratch_new(t, &lim);
        uint32_t row = 0;
        attn_request rq = {.hist = &row, .n_hist = 1, .cand = &row, .n_cand = 1, .k = 1};
        attn_result res;
        ck_assert_int_eq(attn_score(t, &rq, s, &res), ATTN_EINVAL);
        attn_scratch_free(&s);
        attn_tables_free(&t);
    }
    s_fixture_free(&f);
}
END_TEST

/* One switch for every kernel family: forcing a set forces the trainer's
 * too (issue 12: scoring and training used to test different CPU flags). */
START_TEST(test_kernel_select)
{
    const char *autoname = attn_kernel_name();
    ck_assert_str_eq(attn_train_kernel_name(), s_train_set(autoname));
    ck_assert_int_eq(attn_kernel_select("generic"), ATTN_OK);
    ck_assert_str_eq(attn_kernel_name(), "generic");
    ck_assert_str_eq(attn_train_kernel_name(), "generic");
    for (int kk = 0; kk < S_NKERN; kk++)
        if (attn_kernel_select(s_kernels[kk]) == ATTN_OK) {
            ck_assert_str_eq(attn_kernel_name(), s_kernels[kk]);
            ck_assert_str_eq(attn_train_kernel_name(), s_train_set(s_kernels[kk]));
        }
    ck_assert_int_eq(attn_kernel_select("generic"), ATTN_OK);
    ck_assert_int_eq(attn_kernel_select("no-such-isa"), ATTN_EINVAL);
    ck_assert_str_eq(attn_kernel_name(), "generic");
    ck_assert_int_eq(attn_kernel_select("auto"), ATTN_OK);
    ck_assert_str_eq(attn_kernel_name(), autoname);
}
END_TEST

/* ---- model -------------------------------------------------------------- */

START_TEST(test_model_basic)
{
    attn_model *id = attn_model_identity(16, 50);
    ck_assert_ptr_nonnull(id);
    ck_assert_int_eq(id->version, 0);
    ck_assert_int_eq(id->heads, 1);
    ck_assert_int_eq(id->m, 16);
    ck_assert_float_eq(id->scale, ATTN_IDENTITY_SCALE);
    ck_assert_ptr_null(id->wq);
    ck_assert_int_eq(attn_model_check(id, NULL, 0), ATTN_OK);
    ck_assert_int_eq(attn_model_item_index(id, 5), -1);

    attn_model *md = attn_model_new(8, 12, 3, 20, 5, 1);
    ck_assert_ptr_nonnull(md);
    ck_assert_float_eq_tol(md->scale, 0.5f, 1e-7f);       /* 1/sqrt(12/3) */
    ck_assert_ptr_nonnull(md->residual);
    for (int i = 0; i < 5; i++)
        md->item_ids[i] = 100 + 7 * i;
    md->wk[3] = 1.5f;
    ck_assert_int_eq(attn_model_check(md, NULL, 0), ATTN_OK);
    ck_assert_int_eq(attn_model_item_index(md, 100), 0);
    ck_assert_int_eq(attn_model_item_index(md, 128), 4);
    ck_assert_int_eq(attn_model_item_index(md, 114), 2);
    ck_assert_int_eq(attn_model_item_index(md, 99), -1);
    ck_assert_int_eq(attn_model_item_index(md, 101), -1);
    ck_assert_int_eq(attn_model_item_index(md, 200), -1);
    size_t want = sizeof *md + 4 * 8 * 12 * sizeof(float) + 20 * sizeof(float) +
                  5 * sizeof(int64_t) + 5 * sizeof(float) + 5 * 8 * sizeof(float);
    ck_assert_uint_eq(attn_model_bytes(md), want);

    attn_model *cp = attn_model_clone(md);
    ck_assert_ptr_nonnull(cp);
    ck_assert_ptr_ne(cp->wk, md->wk);
    ck_assert_float_eq(cp->wk[3], 1.5f);
    ck_assert_uint_eq(attn_model_bytes(cp), want);
    ck_assert_int_eq(attn_model_item_index(cp, 121), 3);

    ck_assert_ptr_null(attn_model_new(8, 10, 3, 20, 0, 0));   /* 10 % 3 */
    ck_assert_ptr_null(attn_model_new(0, 8, 1, 20, 0, 0));
    ck_assert_ptr_null(attn_model_new(8, 8, 1, 0, 0, 0));
    ck_assert_ptr_null(attn_model_new(8, 8, 1, 4, -1, 0));
    ck_assert_ptr_null(attn_model_identity(0, 4));
    ck_assert_ptr_null(attn_model_clone(NULL));

    attn_model_free(&id);
    ck_assert_ptr_null(id);
    attn_model_free(&id);
    attn_model_free(&md);
    attn_model_free(&cp);
}
END_TEST

START_TEST(test_model_check)
{
    char why[128];
    attn_model *md = attn_model_new(4, 4, 2, 6, 3, 1);
    for (int i = 0; i < 3; i++)
        md->item_ids[i] = i;
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_OK);

    md->wv[7] = NAN;
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, "wv[7]") != NULL, "why: %s", why);
    md->wv[7] = 0.0f;
    md->residual[5] = INFINITY;
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, "residual") != NULL, "why: %s", why);
    md->residual[5] = 0.0f;
    md->pos_bias[2] = -INFINITY;
    ck_assert_int_eq(attn_model_check(md, NULL, 0), ATTN_EINVAL);
    md->pos_bias[2] = 0.0f;
    md->scale = NAN;
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_EINVAL);
    md->scale = 1.0f;
    md->item_ids[2] = 1;                          /* not strictly ascending */
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, "ascending") != NULL, "why: %s", why);
    md->item_ids[2] = 2;
    md->heads = 3;                                /* 4 % 3 */
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_EINVAL);
    md->heads = 2;
    md->m = 6;                                    /* shapes no longer match... */
    free(md->wq);
    md->wq = NULL;                                /* ...and NULL needs m == d */
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, "identity") != NULL, "why: %s", why);
    md->m = 4;
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_OK);
    md->l_max = 0;
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_EINVAL);
    md->l_max = 6;
    int64_t *ids = md->item_ids;
    md->item_ids = NULL;
    ck_assert_int_eq(attn_model_check(md, why, sizeof why), ATTN_EINVAL);
    md->item_ids = ids;
    ck_assert_int_eq(attn_model_check(NULL, why, sizeof why), ATTN_EINVAL);
    attn_model_free(&md);
}
END_TEST

/* ---- top-k -------------------------------------------------------------- */

static const float *s_sort_keys;

static int s_cmp_rank(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    float sx = s_sort_keys[x], sy = s_sort_keys[y];
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return x < y ? -1 : x > y;
}

START_TEST(test_topk)
{
    float s[] = {1, 3, 3, 2, 3, 0, 2};
    uint32_t idx[8];
    ck_assert_int_eq(attn_topk_f32(s, 7, 4, idx), 4);
    uint32_t want[] = {1, 2, 4, 3};
    ck_assert(memcmp(idx, want, sizeof want) == 0);
    ck_assert_int_eq(attn_topk_f32(s, 7, 10, idx), 7);
    uint32_t all[] = {1, 2, 4, 3, 6, 0, 5};
    ck_assert(memcmp(idx, all, sizeof all) == 0);
    ck_assert_int_eq(attn_topk_f32(s, 0, 3, idx), 0);
    ck_assert_int_eq(attn_topk_f32(s, 7, 0, idx), 0);
    double d[] = {-1, -1, -1};
    ck_assert_int_eq(attn_topk_f64(d, 3, 2, idx), 2);
    ck_assert_uint_eq(idx[0], 0);
    ck_assert_uint_eq(idx[1], 1);

    /* Against a full sort, with many ties. */
    tu_rng r = {1111};
    float x[500];
    uint32_t got[500], ref[500];
    for (int it = 0; it < 200; it++) {
        int n = 1 + (int)(tu_next(&r) % 500), k = 1 + (int)(tu_next(&r) % 60);
        for (int i = 0; i < n; i++)
            x[i] = (float)(tu_next(&r) % 20) - 5.0f;
        if (it % 3 == 0)
            for (int i = 0; i < n; i++)
                x[i] = (float)tu_normal(&r);
        int nk = attn_topk_f32(x, n, k, got);
        ck_assert_int_eq(nk, k < n ? k : n);
        for (int i = 0; i < n; i++)
            ref[i] = (uint32_t)i;
        s_sort_keys = x;
        qsort(ref, (size_t)n, sizeof ref[0], s_cmp_rank);
        ck_assert(memcmp(got, ref, (size_t)nk * sizeof got[0]) == 0);
    }
}
END_TEST

START_TEST(test_strerror)
{
    ck_assert_str_eq(attn_strerror(ATTN_OK), "ok");
    ck_assert_str_eq(attn_strerror(ATTN_ELIMIT), "elimit");
    ck_assert_str_eq(attn_strerror(ATTN_ERANGE), "erange");
    ck_assert_str_eq(attn_strerror(12345), "unknown");
}
END_TEST

/* Scores of md on b's request, by the reference scorer. */
static void s_ref_scores(const fx *f, const attn_model *md, const rq_buf *b, double *out)
{
    ck_assert_int_eq(attn_score_ref(md, f->emb, (size_t)f->n, (size_t)f->ld, f->pidx, &b->rq,
                                    out, NULL), ATTN_OK);
}

/* Cutting head h scores what the original scores with head h's rows of W_O
 * zeroed (the other heads' attention is untouched); with a block, too, as
 * long as the block's logits did not read head h's columns (its S_Q, S_K
 * columns there are zero).  Cutting a zero block scores as the model. */
START_TEST(test_trim_oracle)
{
    tu_rng r = {4242};
    for (int with_block = 0; with_block < 2; with_block++) {
        unsigned flags = F_PROJ | F_RES | F_IBIAS | F_POS | (with_block ? F_SA : 0);
        fx f = s_fixture(&r, 80, 16, 24, 3, 12, flags, 1.0f, 1.0f);
        rq_buf b;
        s_request(&r, &b, f.n, 12, 30, 5, 0, 1);
        const int w = 24 / 3;
        for (int h = 0; h < 3; h++) {
            attn_model *ref = attn_model_clone(f.md);
            ck_assert_ptr_nonnull(ref);
            memset(ref->wo + (size_t)h * w * 16, 0, (size_t)w * 16 * sizeof(float));
            for (int row = 0; with_block && row < 16; row++)
                for (int c = h * w; c < (h + 1) * w; c++)
                    ref->sa_q[row * 24 + c] = ref->sa_k[row * 24 + c] = 0;
            int st;
            attn_model *cut = attn_trim_head(ref, h, &st);
            ck_assert_msg(cut && st == ATTN_OK, "status %d", st);
            ck_assert_int_eq(cut->heads, 2);
            ck_assert_int_eq(cut->m, 16);
            double a[30], c[30];
            s_ref_scores(&f, ref, &b, a);
            s_ref_scores(&f, cut, &b, c);
            /* With a block, S_Q is rescaled in float: a few ulps of float32. */
            double tol = with_block ? 1e-6 : 1e-9;
            for (int i = 0; i < 30; i++)
                ck_assert_msg(fabs(a[i] - c[i]) <= tol * fmax(1.0, fabs(a[i])),
                              "block %d head %d cand %d: %.12g vs %.12g", with_block, h, i, a[i],
                              c[i]);
            attn_model_free(&cut);
            attn_model_free(&ref);
        }
        int st;
        ck_assert_ptr_null(attn_trim_head(f.md, 3, &st));
        ck_assert_int_eq(st, ATTN_EINVAL);
        s_fixture_free(&f);
    }
    fx f = s_fixture(&r, 80, 16, 24, 3, 12, F_PROJ | F_RES | F_IBIAS | F_POS, 1.0f, 1.0f);
    rq_buf b;
    s_request(&r, &b, f.n, 12, 30, 5, 0, 1);
    double plain[30], cut_scores[30];
    s_ref_scores(&f, f.md, &b, plain);
    ck_assert_int_eq(attn_model_add_sa(f.md, 4), ATTN_OK);
    int st;
    attn_model *cut = attn_trim_block(f.md, &st);
    ck_assert_ptr_nonnull(cut);
    ck_assert_int_eq(cut->sa_len, 0);
    s_ref_scores(&f, cut, &b, cut_scores);
    for (int i = 0; i < 30; i++)
        ck_assert(fabs(plain[i] - cut_scores[i]) <= 1e-12 * fmax(1.0, fabs(plain[i])));
    ck_assert_ptr_null(attn_trim_block(cut, &st));
    ck_assert_int_eq(st, ATTN_EINVAL);
    ck_assert_ptr_null(attn_trim_ffn(cut, &st));
    ck_assert_int_eq(st, ATTN_EINVAL);
    attn_model_free(&cut);
    s_fixture_free(&f);
}
END_TEST

/* Trimming a model whose block has a feed-forward layer: cutting the block
 * takes the layer with it (the no-block baseline of attnctl eval), cutting
 * the layer alone scores as a zero layer, and cutting head h scores what the
 * original scores with head h's rows of W_O zeroed when the layer's W1 rows
 * for head h's entries of [k' | v'] are zero too (the hidden layer then
 * never read them).  A cut that leaves m not a multiple of 8 is refused. */
START_TEST(test_trim_ffn)
{
    tu_rng r = {4343};
    const int d = 16, m = 32, H = 4, w = m / H;
    fx f = s_fixture(&r, 80, d, m, H, 12, F_PROJ | F_RES | F_IBIAS | F_POS | F_SA | F_FFN, 1.0f,
                     1.0f);
    ck_assert_int_gt(f.md->ffn, 0);
    const int fw = f.md->ffn;
    rq_buf b;
    s_request(&r, &b, f.n, 12, 30, 5, 0, 1);
    double a[30], c[30];
    int st;
    /* The block and the layer with it. */
    attn_model *nb = attn_trim_block(f.md, &st), *plain = attn_model_clone(f.md);
    ck_assert_ptr_nonnull(nb);
    ck_assert_int_eq(nb->sa_len, 0);
    ck_assert_int_eq(nb->ffn, 0);
    ck_assert_ptr_null(nb->ffn_w1);
    ck_assert_int_eq(attn_model_check(nb, NULL, 0), ATTN_OK);
    attn_model_free(&nb);
    /* The layer alone: as a zero layer. */
    attn_model *nf = attn_trim_ffn(f.md, &st);
    ck_assert_ptr_nonnull(nf);
    ck_assert_int_eq(nf->ffn, 0);
    ck_assert_int_eq(nf->sa_len, f.md->sa_len);
    memset(plain->ffn_w1, 0, 2 * (size_t)m * fw * sizeof(float));
    memset(plain->ffn_b1, 0, (size_t)fw * sizeof(float));
    memset(plain->ffn_w2, 0, 2 * (size_t)m * fw * sizeof(float));
    memset(plain->ffn_b2, 0, 2 * (size_t)m * sizeof(float));
    s_ref_scores(&f, plain, &b, a);
    s_ref_scores(&f, nf, &b, c);
    for (int i = 0; i < 30; i++)
        ck_assert_msg(a[i] == c[i], "cand %d: %.17g vs %.17g", i, a[i], c[i]);
    attn_model_free(&nf);
    attn_model_free(&plain);
    /* A head. */
    for (int h = 0; h < H; h++) {
        attn_model *ref = attn_model_clone(f.md);
        ck_assert_ptr_nonnull(ref);
        memset(ref->wo + (size_t)h * w * d, 0, (size_t)w * d * sizeof(float));
        for (int row = 0; row < d; row++)
            for (int col = h * w; col < (h + 1) * w; col++)
                ref->sa_q[row * m + col] = ref->sa_k[row * m + col] = 0;
        for (int half = 0; half < 2; half++)
            memset(ref->ffn_w1 + (size_t)(half * m + h * w) * fw, 0,
                   (size_t)w * fw * sizeof(float));
        attn_model *cut = attn_trim_head(ref, h, &st);
        ck_assert_msg(cut && st == ATTN_OK, "head %d: status %d", h, st);
        ck_assert_int_eq(cut->m, m - w);
        ck_assert_int_eq(cut->ffn, fw);
        s_ref_scores(&f, ref, &b, a);
        s_ref_scores(&f, cut, &b, c);
        for (int i = 0; i < 30; i++)
            ck_assert_msg(fabs(a[i] - c[i]) <= 1e-6 * fmax(1.0, fabs(a[i])),
                          "head %d cand %d: %.12g vs %.12g", h, i, a[i], c[i]);
        /* And the fast path agrees with the reference on the cut model. */
        attn_tables *t = NULL;
        ck_assert_int_eq(attn_tables_build(&t, cut, f.emb, 80, (size_t)f.ld, f.pidx,
                                           ATTN_PRECOMPUTE_NONE, 1), ATTN_OK);
        attn_limits lim = {.max_cand = 30, .max_hist = 12, .max_k = 5, .max_explain = 3};
        attn_scratch *sc = attn_scratch_new(t, &lim);
        fx fc = f;
        fc.md = cut;
        s_compare(&fc, t, sc, &b.rq, S_RTOL, "trimmed head, feed-forward");
        attn_scratch_free(&sc);
        attn_tables_free(&t);
        attn_model_free(&cut);
        attn_model_free(&ref);
    }
    s_fixture_free(&f);
    /* m 24, 3 heads: a head cut leaves m 16 (fine); m 48, 4 heads: 36 (refused). */
    f = s_fixture(&r, 40, 8, 48, 4, 6, F_PROJ | F_SA | F_FFN, 1.0f, 1.0f);
    ck_assert_ptr_null(attn_trim_head(f.md, 1, &st));
    ck_assert_int_eq(st, ATTN_EINVAL);
    s_fixture_free(&f);
    f = s_fixture(&r, 40, 8, 24, 3, 6, F_PROJ | F_SA | F_FFN, 1.0f, 1.0f);
    attn_model *cut = attn_trim_head(f.md, 2, &st);
    ck_assert_msg(cut && st == ATTN_OK, "status %d", st);
    ck_assert_int_eq(cut->m, 16);
    attn_model_free(&cut);
    s_fixture_free(&f);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("attn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60.0 * tu_slowdown());
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_model_basic);
    tcase_add_test(tc, test_model_check);
    tcase_add_test(tc, test_topk);
    tcase_add_test(tc, test_ref_by_hand);
    tcase_add_test(tc, test_kernel_select);
    tcase_add_test(tc, test_fast_random);
    tcase_add_test(tc, test_fast_identity);
    tcase_add_test(tc, test_fast_large_logits);
    tcase_add_test(tc, test_fast_bigger);
    tcase_add_test(tc, test_fast_edges);
    tcase_add_test(tc, test_fast_blocks);
    tcase_add_test(tc, test_scratch_none_size);
    tcase_add_test(tc, test_fast_duplicates);
    tcase_add_test(tc, test_tables_threads);
    tcase_add_test(tc, test_threads_share_tables);
    tcase_add_test(tc, test_tables_memory);
    tcase_add_test(tc, test_tables_errors);
    tcase_add_test(tc, test_self_attention);
    tcase_add_test(tc, test_ffn);
    tcase_add_test(tc, test_score_errors);
    tcase_add_test(tc, test_score_erange);
    tcase_add_test(tc, test_bf16_rounding);
    tcase_add_test(tc, test_bf16_random);
    tcase_add_test(tc, test_bf16_memory);
    tcase_add_test(tc, test_dp_kernels);
    tcase_add_test(tc, test_logits_tail);
    tcase_add_test(tc, test_trim_oracle);
    tcase_add_test(tc, test_trim_ffn);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
