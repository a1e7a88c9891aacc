/* eval_trans.c -- item-to-item transition counts by distance, for the
 * transition baseline (eval_base.c).
 *
 * count_k(a -> b) is how often b follows a exactly k events later in a
 * training history, for k up to the window the counts were built with.
 * Keeping the distances apart (instead of one pre-weighted sum) lets a
 * query choose its window and decay -- which is what tuning them on the
 * validation split needs -- without recounting:
 *
 *   score(c) = sum_{i<W} decay^i  sum_{k<=W} decay^(k-1) count_k(h_i -> c)
 *
 * for the W newest history items h_0 (newest), h_1, ...  Storage is one
 * CSR matrix whose row (a, k) lists the b with count_k(a -> b) > 0, b
 * ascending: about 8 bytes per distinct (a, k, b), built by a counting sort
 * on rows and a sort within each (short) row -- never a dense n_rows^2
 * matrix, so it fits catalogs of any size.
 */
#include "attn/eval_int.h"

#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

struct attn_eval_trans {
    int window;          /* the largest distance counted */
    uint32_t n_rows;
    uint64_t *off;       /* n_rows * window + 1 */
    uint32_t *dst;       /* b of each entry */
    float *cnt;          /* its count */
};

static int s_u32_cmp(const void *a, const void *b)
{
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Each row's entries sorted and merged into (dst, count); rows compacted. */
static void s_merge_rows(attn_eval_trans *t, uint64_t n_row)
{
    uint64_t out = 0;
    for (uint64_t r = 0; r < n_row; r++) {
        const uint64_t lo = t->off[r], hi = t->off[r + 1];
        qsort(t->dst + lo, (size_t)(hi - lo), sizeof *t->dst, s_u32_cmp);
        t->off[r] = out;
        for (uint64_t i = lo; i < hi; i++) {
            if (i > lo && t->dst[i] == t->dst[i - 1]) {
                t->cnt[out - 1] += 1.0f;
                continue;
            }
            t->dst[out] = t->dst[i];
            t->cnt[out++] = 1.0f;
        }
    }
    t->off[n_row] = out;
}

attn_eval_trans *attn_eval_trans_new(const attn_seqs *s, int window)
{
    attn_eval_trans *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->window = window;
    t->n_rows = s->n_rows;
    const uint64_t W = (uint64_t)window, n_row = (uint64_t)s->n_rows * W;
    t->off = calloc(n_row + 1, sizeof *t->off);
    if (!t->off)
        goto fail;
    /* Counting sort on rows (a, k): sizes, offsets, then the entries. */
    for (uint32_t u = 0; u < s->n_users; u++) {
        const uint32_t *ev = s->row + s->off[u];
        const uint64_t n = attn_eval_train_len(s, u);
        for (uint64_t j = 1; j < n; j++)
            for (uint64_t k = 1; k <= W && k <= j; k++)
                t->off[(uint64_t)ev[j - k] * W + (k - 1) + 1]++;
    }
    for (uint64_t r = 0; r < n_row; r++)
        t->off[r + 1] += t->off[r];
    const uint64_t total = t->off[n_row];
    t->dst = malloc((total ? total : 1) * sizeof *t->dst);
    t->cnt = malloc((total ? total : 1) * sizeof *t->cnt);
    uint64_t *fill = malloc(n_row * sizeof *fill + 1);
    if (!t->dst || !t->cnt || !fill) {
        free(fill);
        goto fail;
    }
    memcpy(fill, t->off, n_row * sizeof *fill);
    for (uint32_t u = 0; u < s->n_users; u++) {
        const uint32_t *ev = s->row + s->off[u];
        const uint64_t n = attn_eval_train_len(s, u);
        for (uint64_t j = 1; j < n; j++)
            for (uint64_t k = 1; k <= W && k <= j; k++)
                t->dst[fill[(uint64_t)ev[j - k] * W + (k - 1)]++] = ev[j];
    }
    free(fill);
    s_merge_rows(t, n_row);
    return t;
fail:
    attn_eval_trans_free(&t);
    return NULL;
}

void attn_eval_trans_free(attn_eval_trans **t_p)
{
    if (!t_p || !*t_p)
        return;
    attn_eval_trans *t = *t_p;
    free(t->off);
    free(t->dst);
    free(t->cnt);
    free(t);
    *t_p = NULL;
}

int attn_eval_trans_window(const attn_eval_trans *t)
{
    return t->window;
}

void attn_eval_trans_score(const attn_eval_trans *t, int window, double decay,
                           const attn_eval_query *q, double *acc, double *score)
{
    const uint64_t W = (uint64_t)t->window;
    const int w = q->n_hist < window ? q->n_hist : window;
    double vote = 1.0;
    for (int i = 0; i < w; i++, vote *= decay) {
        const uint64_t base = (uint64_t)q->hist[i] * W;
        double pw = vote;
        for (int k = 1; k <= window; k++, pw *= decay)
            for (uint64_t e = t->off[base + (uint64_t)k - 1]; e < t->off[base + (uint64_t)k]; e++)
                acc[t->dst[e]] += pw * t->cnt[e];
    }
    for (int k = 0; k < q->n_cand; k++)
        score[k] = acc[q->cand[k]];
    /* Clear only what was touched, so a query costs its history, not the
     * catalog. */
    for (int i = 0; i < w; i++) {
        const uint64_t base = (uint64_t)q->hist[i] * W;
        for (uint64_t e = t->off[base]; e < t->off[base + (uint64_t)window]; e++)
            acc[t->dst[e]] = 0.0;
    }
}
