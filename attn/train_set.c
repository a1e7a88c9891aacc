/* train_set.c -- the working set of a step, and its sampled negatives.
 *
 * Rows are numbered in the order they join: the candidates first (so that
 * every chunk of the step reads them as the same contiguous rows of T),
 * then the history items.  mi2ws is an n_mi map that is cleared row by row
 * when the set is reset, so a step costs its own rows, never the catalog.
 *
 * Negatives (docs/TRAINING.md §1): k distinct items drawn uniformly, shared
 * by every example of the step.  The step's targets are candidates too (one
 * example's target is every other example's negative: in-batch negatives,
 * drawn as often as items are popular).  The loss's partition sum over the
 * items that are neither is estimated from the uniform draws: each drawn
 * item stands for (n_mi - undrawn targets) / k items, the weight
 * attn_tr_set_close_cand fixes (the "logQ" correction of
 * sampled softmax, Bengio & Senécal 2008, for a uniform proposal).  With k
 * at least the catalog, every item is a candidate and the loss is exactly
 * the full softmax.
 */
#include "attn/train_int.h"

#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

int attn_tr_set_init(attn_tr_set *s, int64_t n_mi, int full, int64_t ws_cap)
{
    memset(s, 0, sizeof *s);
    s->n_mi = n_mi;
    s->full = full;
    s->cap = full || ws_cap > n_mi ? n_mi : ws_cap;
    s->ws2mi = malloc((size_t)(s->cap > 0 ? s->cap : 1) * sizeof *s->ws2mi);
    s->mi2ws = malloc((size_t)n_mi * sizeof *s->mi2ws);
    s->perm = full ? NULL : malloc((size_t)n_mi * sizeof *s->perm);
    if (!s->ws2mi || !s->mi2ws || (!full && !s->perm)) {
        attn_tr_set_free(s);
        return ATTN_ENOMEM;
    }
    for (int64_t i = 0; i < n_mi; i++) {
        s->mi2ws[i] = -1;
        if (s->perm)
            s->perm[i] = (uint32_t)i;
    }
    attn_tr_set_reset(s);
    return ATTN_OK;
}

void attn_tr_set_free(attn_tr_set *s)
{
    free(s->ws2mi);
    free(s->mi2ws);
    free(s->perm);
    memset(s, 0, sizeof *s);
}

void attn_tr_set_reset(attn_tr_set *s)
{
    if (s->full) {
        /* Every item, in item order, once and for all. */
        if (s->n_ws != s->n_mi)
            for (int64_t i = 0; i < s->n_mi; i++) {
                s->ws2mi[i] = (uint32_t)i;
                s->mi2ws[i] = (int32_t)i;
            }
        s->n_ws = s->n_mi;
        s->n_cand = (int)s->n_mi;
        s->n_sampled = 0;
        s->w_sampled = 1.0f;
        return;
    }
    for (int64_t r = 0; r < s->n_ws; r++)
        s->mi2ws[s->ws2mi[r]] = -1;
    s->n_ws = 0;
    s->n_cand = 0;
    s->n_sampled = 0;
    s->w_sampled = 1.0f;
}

void attn_tr_set_sample(attn_tr_set *s, int k, uint64_t rng_seed)
{
    if (s->full)
        return;
    attn_eval_rng rng = attn_eval_rng_for(rng_seed, 0x6E656773, 0);
    const uint32_t n = (uint32_t)s->n_mi;
    if ((int64_t)k > s->n_mi)
        k = (int)s->n_mi;
    for (int i = 0; i < k; i++) {
        uint32_t j = (uint32_t)i + attn_eval_rng_below(&rng, n - (uint32_t)i);
        uint32_t t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
        attn_tr_set_add(s, s->perm[i]);
    }
    s->n_sampled = k;
}

void attn_tr_set_close_cand(attn_tr_set *s)
{
    s->n_cand = (int)s->n_ws;
    if (s->full || s->n_sampled == 0)
        return;
    /* The targets that were not drawn count once each; the k draws, a
     * uniform sample, stand for every other item. */
    const double rest = (double)s->n_mi - (double)(s->n_cand - s->n_sampled);
    s->w_sampled = rest > (double)s->n_sampled ? (float)(rest / (double)s->n_sampled) : 1.0f;
}
