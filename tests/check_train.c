/* check_train.c -- the trainer: gradients, determinism, learning, bad input.
 *
 * Gradients are checked against an independent oracle: the loss is
 * recomputed from attn_score_ref (the scorer's plain double-precision
 * reference, which shares no code with the trainer) and differentiated by
 * central finite differences, parameter by parameter.  Learning is checked
 * on data generated here in which the next item is predictable.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/attn.h"
#include "attn/eval.h"
#include "attn/score.h"
#include "attn/train.h"
#include "tests/testutil.h"

/* ---- a small data set ---------------------------------------------------- */

typedef struct s_data {
    attn_train_data td;
    float *emb;
    int64_t *item_id;
    uint64_t *off;
    uint32_t *row;
    float *weight;
} s_data;

static void s_data_free(s_data *d)
{
    free(d->emb);
    free(d->item_id);
    free(d->off);
    free(d->row);
    free(d->weight);
    memset(d, 0, sizeof *d);
}

/* Users with the given lengths; events drawn by next(prev) (or uniformly
 * when next is NULL); embeddings N(0, 1/d) per component; item ids 10, 20, ... */
static void s_data_make(s_data *d, int n_rows, int dim, int n_users, const int *len,
                        int (*next)(tu_rng *, int, int), int weights, uint64_t seed)
{
    tu_rng r = {seed};
    memset(d, 0, sizeof *d);
    uint64_t total = 0;
    for (int u = 0; u < n_users; u++)
        total += (uint64_t)len[u];
    d->emb = malloc((size_t)n_rows * dim * sizeof *d->emb);
    d->item_id = malloc((size_t)n_rows * sizeof *d->item_id);
    d->off = malloc(((size_t)n_users + 1) * sizeof *d->off);
    d->row = malloc(total * sizeof *d->row);
    d->weight = weights ? malloc(total * sizeof *d->weight) : NULL;
    tu_fill_normal(&r, d->emb, (size_t)n_rows * dim, 1.0f / sqrtf((float)dim));
    for (int i = 0; i < n_rows; i++)
        d->item_id[i] = 10 * (i + 1);
    uint64_t k = 0;
    for (int u = 0; u < n_users; u++) {
        d->off[u] = k;
        int prev = (int)(tu_next(&r) % (uint64_t)n_rows);
        for (int j = 0; j < len[u]; j++) {
            int x = next && j > 0 ? next(&r, prev, n_rows) : (int)(tu_next(&r) % (uint64_t)n_rows);
            d->row[k] = (uint32_t)x;
            if (d->weight)
                d->weight[k] = (float)(0.5 + 1.5 * tu_uniform(&r));
            prev = x;
            k++;
        }
    }
    d->off[n_users] = k;
    d->td = (attn_train_data){.emb = d->emb, .n_rows = (size_t)n_rows, .ld = (size_t)dim,
                              .d = dim, .item_id = d->item_id,
                              .seqs = {.n_users = (uint32_t)n_users, .n_rows = (uint32_t)n_rows,
                                       .off = d->off, .row = d->row, .weight = d->weight}};
}

/* A model over every row, random parameters of a useful size. */
static attn_model *s_model(const s_data *d, int m, int heads, int l_max, int residual,
                           uint64_t seed)
{
    tu_rng r = {seed};
    int dim = d->td.d;
    attn_model *md = attn_model_new(dim, m, heads, l_max, (int64_t)d->td.n_rows, residual);
    ck_assert_ptr_nonnull(md);
    tu_fill_normal(&r, md->wq, (size_t)dim * m, 0.8f);
    tu_fill_normal(&r, md->wk, (size_t)dim * m, 0.8f);
    tu_fill_normal(&r, md->wv, (size_t)dim * m, 0.8f);
    tu_fill_normal(&r, md->wo, (size_t)dim * m, 0.8f);
    tu_fill_normal(&r, md->pos_bias, (size_t)l_max, 0.5f);
    tu_fill_normal(&r, md->item_bias, d->td.n_rows, 0.5f);
    if (residual)
        tu_fill_normal(&r, md->residual, d->td.n_rows * (size_t)dim, 0.3f);
    for (size_t i = 0; i < d->td.n_rows; i++)
        md->item_ids[i] = d->item_id[i];
    md->scale = 1.0f / sqrtf((float)(m / heads));
    return md;
}

/* ---- the oracle ------------------------------------------------------------- */

/* Loss of the examples from attn_score_ref: for each, the history is the
 * l_max events before t (newest first, with weights), the candidates every
 * model item (minus the history's items but the target, if mask) or the
 * explicit list; loss = logsumexp(scores) - score(target). */
static double s_oracle(const s_data *d, const attn_model *md, const attn_train_example *ex,
                       int n_ex, const uint32_t *cand, int n_cand, int mask)
{
    const attn_seqs *s = &d->td.seqs;
    int64_t *pi = attn_eval_param_index(md, d->item_id, d->td.n_rows);
    ck_assert_ptr_nonnull(pi);
    double total = 0.0;
    uint32_t hist[64], cl[256];
    float hw[64];
    double sc[256];
    for (int e = 0; e < n_ex; e++) {
        const uint32_t *ev = s->row + s->off[ex[e].user];
        const float *w = s->weight ? s->weight + s->off[ex[e].user] : NULL;
        int t = (int)ex[e].t, L = t < md->l_max ? t : md->l_max;
        for (int j = 0; j < L; j++) {
            hist[j] = ev[t - 1 - j];
            hw[j] = w ? w[t - 1 - j] : 1.0f;
        }
        int n = 0;
        if (cand) {
            for (int i = 0; i < n_cand; i++)
                cl[n++] = (uint32_t)md->item_ids[cand[(size_t)e * n_cand + i]] / 10 - 1;
        } else {
            cl[n++] = ev[t];
            for (uint32_t r = 0; r < d->td.n_rows; r++) {
                int seen = 0;
                for (int i = 0; i < t && mask; i++)
                    seen |= ev[i] == r;
                if (r != ev[t] && !seen)
                    cl[n++] = r;
            }
        }
        attn_request rq = {.hist = hist, .hist_weight = hw, .n_hist = L, .cand = cl,
                           .n_cand = n, .k = 1};
        ck_assert_int_eq(attn_score_ref(md, d->emb, d->td.n_rows, (size_t)d->td.d, pi, &rq, sc,
                                        NULL), ATTN_OK);
        double mx = -INFINITY, sum = 0.0;
        for (int i = 0; i < n; i++)
            mx = sc[i] > mx ? sc[i] : mx;
        for (int i = 0; i < n; i++)
            sum += exp(sc[i] - mx);
        total += mx + log(sum) - sc[0];
    }
    free(pi);
    return total;
}

/* Compare every parameter's analytic gradient with a central difference. */
static void s_gradcheck(const s_data *d, attn_model *md, const attn_train_example *ex,
                        int n_ex, const uint32_t *cand, int n_cand, int mask)
{
    attn_model *g = attn_model_new(md->d, md->m, md->heads, md->l_max, md->n_items,
                                   md->residual != NULL);
    ck_assert_ptr_nonnull(g);
    double loss;
    ck_assert_int_eq(attn_train_grad(&d->td, md, ex, n_ex, cand, n_cand, mask, &loss, g),
                     ATTN_OK);
    double ref = s_oracle(d, md, ex, n_ex, cand, n_cand, mask);
    ck_assert_msg(fabs(loss - ref) <= 1e-4 * fmax(1.0, fabs(ref)), "loss %.8g, oracle %.8g",
                  loss, ref);
    struct {
        const char *name;
        float *p, *g;
        size_t n;
    } arr[] = {
        {"wq", md->wq, g->wq, (size_t)md->d * md->m},
        {"wk", md->wk, g->wk, (size_t)md->d * md->m},
        {"wv", md->wv, g->wv, (size_t)md->d * md->m},
        {"wo", md->wo, g->wo, (size_t)md->d * md->m},
        {"pos_bias", md->pos_bias, g->pos_bias, (size_t)md->l_max},
        {"item_bias", md->item_bias, g->item_bias, (size_t)md->n_items},
        {"residual", md->residual, g->residual, (size_t)md->n_items * md->d},
    };
    int checked = 0;
    for (size_t a = 0; a < sizeof arr / sizeof arr[0]; a++) {
        if (!arr[a].p)
            continue;
        double worst = 0.0;
        for (size_t i = 0; i < arr[a].n; i++) {
            float keep = arr[a].p[i];
            float hp = keep + 2e-3f, hm = keep - 2e-3f;
            arr[a].p[i] = hp;
            double lp = s_oracle(d, md, ex, n_ex, cand, n_cand, mask);
            arr[a].p[i] = hm;
            double lm = s_oracle(d, md, ex, n_ex, cand, n_cand, mask);
            arr[a].p[i] = keep;
            double fd = (lp - lm) / ((double)hp - (double)hm);
            double an = arr[a].g[i];
            double err = fabs(an - fd) / fmax(0.05, fabs(fd));
            worst = fmax(worst, err);
            ck_assert_msg(err < 1e-3, "%s[%zu]: analytic %.7g, finite difference %.7g",
                          arr[a].name, i, an, fd);
            checked++;
        }
        ck_assert_msg(worst < 1e-3, "%s: worst relative error %.3g", arr[a].name, worst);
    }
    ck_assert_int_gt(checked, 0);
    attn_model_free(&g);
}

START_TEST(test_gradient_full)
{
    s_data d;
    const int len[] = {9, 6, 12};
    s_data_make(&d, 7, 6, 3, len, NULL, 1, 11);
    attn_model *md = s_model(&d, 4, 2, 4, 1, 12);
    /* t < l_max, t = l_max, t > l_max (window cut), several users. */
    attn_train_example ex[] = {{0, 1}, {0, 4}, {0, 8}, {1, 5}, {2, 11}, {2, 3}};
    s_gradcheck(&d, md, ex, 6, NULL, 0, 0);
    s_gradcheck(&d, md, ex, 6, NULL, 0, 1);
    attn_model_free(&md);
    s_data_free(&d);
}
END_TEST

START_TEST(test_gradient_sampled)
{
    s_data d;
    const int len[] = {10, 8};
    s_data_make(&d, 9, 5, 2, len, NULL, 0, 21);
    attn_model *md = s_model(&d, 6, 3, 5, 1, 22);
    attn_train_example ex[] = {{0, 7}, {1, 2}, {0, 9}};
    /* Explicit candidate lists (model item indexes, target first), with a
     * repeated negative: sampling with replacement can repeat one. */
    uint32_t cand[3 * 4];
    for (int e = 0; e < 3; e++) {
        const uint32_t *ev = d.row + d.off[ex[e].user];
        cand[e * 4] = ev[ex[e].t];
        cand[e * 4 + 1] = (ev[ex[e].t] + 1) % 9;
        cand[e * 4 + 2] = (ev[ex[e].t] + 3) % 9;
        cand[e * 4 + 3] = (ev[ex[e].t] + 1) % 9;
    }
    s_gradcheck(&d, md, ex, 3, cand, 4, 0);
    attn_model_free(&md);
    s_data_free(&d);
}
END_TEST

START_TEST(test_gradient_no_residual)
{
    s_data d;
    const int len[] = {7, 7};
    s_data_make(&d, 6, 4, 2, len, NULL, 1, 31);
    attn_model *md = s_model(&d, 4, 1, 3, 0, 32);
    attn_train_example ex[] = {{0, 6}, {1, 4}};
    s_gradcheck(&d, md, ex, 2, NULL, 0, 1);
    attn_model_free(&md);
    s_data_free(&d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("gradient");
    tcase_set_timeout(tc, 60 * tu_slowdown());
    tcase_add_test(tc, test_gradient_full);
    tcase_add_test(tc, test_gradient_sampled);
    tcase_add_test(tc, test_gradient_no_residual);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
