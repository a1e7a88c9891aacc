/* eval_model.c -- scoring evaluation queries with the served fast path.
 *
 * The model and identity rows of every quality table come from here, so
 * they measure what the daemon would answer: the same tables
 * (attn_tables_build, everything precomputed as the daemon does by
 * default), the same scorer (attn_score_all), the same history cut (the
 * newest l_max events, and the older ones as self-attention context) and
 * weights.  Nothing in here knows how the model
 * was trained.
 */
#include "attn/eval.h"

#include <stdlib.h>

#include "attn/attn.h"
#include "attn/score.h"

struct attn_eval_model {
    attn_tables *t;       /* fast-path tables of the model over the catalog */
    attn_scratch *s;      /* one scratch: the runner is single-threaded */
    float *buf;           /* n: float scores from the fast path */
    int l_max;            /* history cut */
    int l_ctx;            /* context events a self-attention block reads: sa_len - 1 */
    size_t n;             /* catalog rows = most candidates a query can have */
};

int attn_eval_model_new(attn_eval_model **out, const attn_model *model, const float *emb,
                        size_t n, size_t ld, const int64_t *param_index, int threads)
{
    attn_tables_opts o = {ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32, threads};
    return attn_eval_model_new_opts(out, model, emb, n, ld, param_index, &o);
}

int attn_eval_model_new_opts(attn_eval_model **out, const attn_model *model, const float *emb,
                             size_t n, size_t ld, const int64_t *param_index,
                             const attn_tables_opts *opts)
{
    if (!out)
        return ATTN_EINVAL;
    *out = NULL;
    if (!model || !emb || !opts || n == 0 || n > (size_t)INT32_MAX || opts->threads < 1)
        return ATTN_EINVAL;
    attn_eval_model *em = calloc(1, sizeof *em);
    if (!em)
        return ATTN_ENOMEM;
    em->n = n;
    em->l_max = model->l_max;
    em->l_ctx = model->sa_len > 0 ? model->sa_len - 1 : 0;
    int st = attn_tables_build_opts(&em->t, model, emb, n, ld, param_index, opts);
    if (st == ATTN_OK) {
        attn_limits lim = {.max_cand = (int)n, .max_hist = model->l_max, .max_k = 1,
                           .max_explain = 0};
        em->s = attn_scratch_new(em->t, &lim);
        em->buf = malloc(n * sizeof *em->buf);
        if (!em->s || !em->buf)
            st = ATTN_ENOMEM;
    }
    if (st != ATTN_OK) {
        attn_eval_model_free(&em);
        return st;
    }
    *out = em;
    return ATTN_OK;
}

void attn_eval_model_free(attn_eval_model **em_p)
{
    if (!em_p || !*em_p)
        return;
    attn_eval_model *em = *em_p;
    attn_tables_free(&em->t);
    attn_scratch_free(&em->s);
    free(em->buf);
    free(em);
    *em_p = NULL;
}

int attn_eval_model_score(void *ctx, const attn_eval_query *q, double *score, double *tie)
{
    attn_eval_model *em = ctx;
    (void)tie;
    if (q->n_cand < 1 || (size_t)q->n_cand > em->n || q->n_hist < 1)
        return ATTN_EINVAL;
    /* The newest l_max events; the older ones are context for a model with
     * a self-attention block, as the daemon passes them. */
    const int n_hist = q->n_hist < em->l_max ? q->n_hist : em->l_max;
    const int n_ctx = q->n_hist - n_hist < em->l_ctx ? q->n_hist - n_hist : em->l_ctx;
    attn_request rq = {.hist = q->hist, .hist_weight = q->hist_weight, .n_hist = n_hist,
                       .n_ctx = n_ctx, .cand = q->cand, .n_cand = q->n_cand,
                       .k = 1, .explain = 0};
    int st = attn_score_all(em->t, &rq, em->s, em->buf);
    if (st != ATTN_OK)
        return st;
    for (int i = 0; i < q->n_cand; i++)
        score[i] = em->buf[i];
    return ATTN_OK;
}

int64_t *attn_eval_param_index(const attn_model *model, const int64_t *item_id, size_t n)
{
    int64_t *pi = malloc((n ? n : 1) * sizeof *pi);
    if (!pi)
        return NULL;
    for (size_t r = 0; r < n; r++)
        pi[r] = attn_model_item_index(model, item_id[r]);
    return pi;
}
