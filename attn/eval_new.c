/* eval_new.c -- the runner of eval_new.h: every event of a fresh item,
 * ranked with the history before it.
 *
 * One pass over the users; a user without fresh events costs one scan of
 * their rows.  Per user: mark the rows they ever touched (sampled: the
 * unseen rows become a pool, permuted in place by a partial Fisher-Yates
 * per query from a generator keyed by (seed, user, position), so every
 * method sees the same negatives).  Per query: the history is the events
 * before the target, newest first; full and fresh candidates skip the
 * history's rows, marked in a second array.  Memory: two byte arrays, a
 * pool and a candidate list of n_rows, scores and ties of n_rows, and the
 * longest history.
 */
#include "attn/eval_new.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

void attn_eval_new_defaults(attn_eval_new_opts *o)
{
    memset(o, 0, sizeof *o);
    o->protocol = ATTN_EVAL_NEW_SAMPLED;
    o->n_neg = 100;
    o->seed = 1;
    o->k = 10;
}

/* The run's scratch, sized once. */
typedef struct s_ws {
    uint8_t *seen;        /* n_rows: the user touched the row */
    uint8_t *in_hist;     /* n_rows: the row is in the query's history */
    uint32_t *pool;       /* n_rows: sampled: the user's unseen rows */
    uint32_t *cand;       /* n_rows + 1 */
    double *score, *tie;  /* n_rows + 1 */
    uint32_t *hist;       /* longest sequence */
    float *hw;            /* longest sequence */
} s_ws;

static void s_ws_free(s_ws *w)
{
    free(w->seen);
    free(w->in_hist);
    free(w->pool);
    free(w->cand);
    free(w->score);
    free(w->tie);
    free(w->hist);
    free(w->hw);
}

static int s_ws_init(s_ws *w, const attn_seqs *s)
{
    memset(w, 0, sizeof *w);
    uint64_t longest = 1;
    for (uint32_t u = 0; u < s->n_users; u++)
        if (s->off[u + 1] - s->off[u] > longest)
            longest = s->off[u + 1] - s->off[u];
    size_t n = (size_t)s->n_rows + 1;
    w->seen = calloc(n, 1);
    w->in_hist = calloc(n, 1);
    w->pool = malloc(n * sizeof *w->pool);
    w->cand = malloc(n * sizeof *w->cand);
    w->score = malloc(n * sizeof *w->score);
    w->tie = malloc(n * sizeof *w->tie);
    w->hist = malloc((size_t)longest * sizeof *w->hist);
    w->hw = malloc((size_t)longest * sizeof *w->hw);
    return w->seen && w->in_hist && w->pool && w->cand && w->score && w->tie && w->hist &&
                   w->hw ? ATTN_OK : ATTN_ENOMEM;
}

/* The candidates after cand[0] = the target, for the query of user u at
 * position pos; returns their count with the target. */
static int s_candidates(const attn_seqs *s, const uint8_t *fresh, const attn_eval_new_opts *o,
                        s_ws *w, uint32_t n_pool, uint32_t u, uint64_t pos, int n_hist,
                        uint64_t *short_neg)
{
    int n = 1;
    if (o->protocol == ATTN_EVAL_NEW_SAMPLED) {
        attn_eval_rng rng = attn_eval_rng_for(o->seed, u, 0x6E6577ull ^ (pos << 24));
        uint32_t want = n_pool < (uint32_t)o->n_neg ? n_pool : (uint32_t)o->n_neg;
        *short_neg += want < (uint32_t)o->n_neg;
        for (uint32_t i = 0; i < want; i++) {
            uint32_t j = i + attn_eval_rng_below(&rng, n_pool - i), t = w->pool[i];
            w->pool[i] = w->pool[j];
            w->pool[j] = t;
            w->cand[n++] = w->pool[i];
        }
        return n;
    }
    for (int i = 0; i < n_hist; i++)
        w->in_hist[w->hist[i]] = 1;
    for (uint32_t r = 0; r < s->n_rows; r++)
        if (!w->in_hist[r] && r != w->cand[0] &&
            (o->protocol == ATTN_EVAL_NEW_FULL || fresh[r]))
            w->cand[n++] = r;
    for (int i = 0; i < n_hist; i++)
        w->in_hist[w->hist[i]] = 0;
    return n;
}

/* One query: user u's event at pos (pos >= 1) against its history. */
static int s_query(const attn_seqs *s, const uint8_t *fresh, const attn_eval_new_opts *o,
                   attn_eval_fn fn, void *ctx, s_ws *w, uint32_t n_pool, uint32_t u,
                   uint64_t pos, attn_eval_new_result *out)
{
    const uint64_t base = s->off[u];
    int n_hist = (int)pos;
    for (int i = 0; i < n_hist; i++) {          /* newest first */
        w->hist[i] = s->row[base + pos - 1 - (uint64_t)i];
        w->hw[i] = s->weight ? s->weight[base + pos - 1 - (uint64_t)i] : 1.0f;
    }
    w->cand[0] = s->row[base + pos];
    int n = s_candidates(s, fresh, o, w, n_pool, u, pos, n_hist, &out->short_neg);
    memset(w->tie, 0, (size_t)n * sizeof *w->tie);
    attn_eval_query q = {.user = u, .seed = o->seed, .hist = w->hist,
                         .hist_weight = s->weight ? w->hw : NULL, .n_hist = n_hist,
                         .cand = w->cand, .n_cand = n};
    int st = fn(ctx, &q, w->score, w->tie);
    if (st != ATTN_OK)
        return st;
    for (int i = 0; i < n; i++)
        if (!isfinite(w->score[i]) || !isfinite(w->tie[i]))
            return ATTN_ERANGE;
    int rank = attn_eval_rank(w->score, w->tie, n, 0);
    out->hr += attn_eval_hr(rank, o->k);
    out->ndcg += attn_eval_ndcg(rank, o->k);
    out->queries++;
    return ATTN_OK;
}

/* Every query of user u. */
static int s_user(const attn_seqs *s, const uint8_t *fresh, const attn_eval_new_opts *o,
                  attn_eval_fn fn, void *ctx, s_ws *w, uint32_t u, attn_eval_new_result *out)
{
    const uint64_t b = s->off[u], len = s->off[u + 1] - b;
    uint64_t any = 0;
    for (uint64_t i = 0; i < len; i++)
        any += fresh[s->row[b + i]];
    if (!any)
        return ATTN_OK;
    if (fresh[s->row[b]])
        out->no_history++;
    if (len < 2 || any == fresh[s->row[b]])
        return ATTN_OK;
    uint32_t n_pool = 0;
    if (o->protocol == ATTN_EVAL_NEW_SAMPLED) {
        for (uint64_t i = 0; i < len; i++)
            w->seen[s->row[b + i]] = 1;
        for (uint32_t r = 0; r < s->n_rows; r++)
            if (!w->seen[r])
                w->pool[n_pool++] = r;
        for (uint64_t i = 0; i < len; i++)
            w->seen[s->row[b + i]] = 0;
    }
    out->users++;
    for (uint64_t pos = 1; pos < len; pos++) {
        if (!fresh[s->row[b + pos]])
            continue;
        int st = s_query(s, fresh, o, fn, ctx, w, n_pool, u, pos, out);
        if (st != ATTN_OK)
            return st;
    }
    return ATTN_OK;
}

int attn_eval_new_run(const attn_seqs *s, const uint8_t *fresh, const attn_eval_new_opts *o,
                      attn_eval_fn fn, void *ctx, attn_eval_new_result *out)
{
    if (!out)
        return ATTN_EINVAL;
    memset(out, 0, sizeof *out);
    if (!s || !fresh || !o || !fn || o->n_neg < 1 || o->k < 1 ||
        o->protocol < ATTN_EVAL_NEW_SAMPLED || o->protocol > ATTN_EVAL_NEW_FRESH ||
        attn_seqs_check(s, NULL, 0) != ATTN_OK || (size_t)s->n_rows + 1 > (size_t)INT32_MAX)
        return ATTN_EINVAL;
    s_ws w;
    int st = s_ws_init(&w, s);
    for (uint32_t u = 0; st == ATTN_OK && u < s->n_users; u++)
        st = s_user(s, fresh, o, fn, ctx, &w, u, out);
    s_ws_free(&w);
    if (st == ATTN_OK && out->queries) {
        out->hr /= (double)out->queries;
        out->ndcg /= (double)out->queries;
    }
    return st;
}

void attn_eval_new_train_free(attn_eval_new_train *t)
{
    if (!t)
        return;
    free(t->off);
    free(t->row);
    free(t->weight);
    memset(t, 0, sizeof *t);
}

int attn_eval_new_train_make(const attn_seqs *s, const uint8_t *fresh, attn_eval_new_train *out)
{
    memset(out, 0, sizeof *out);
    if (!s || !fresh || attn_seqs_check(s, NULL, 0) != ATTN_OK)
        return ATTN_EINVAL;
    uint64_t total = s->n_users ? s->off[s->n_users] : 0;
    out->off = malloc(((size_t)s->n_users + 1) * sizeof *out->off);
    out->row = malloc((total ? total : 1) * sizeof *out->row);
    out->weight = s->weight ? malloc((total ? total : 1) * sizeof *out->weight) : NULL;
    if (!out->off || !out->row || (s->weight && !out->weight)) {
        attn_eval_new_train_free(out);
        return ATTN_ENOMEM;
    }
    uint64_t k = 0;
    out->off[0] = 0;
    for (uint32_t u = 0; u < s->n_users; u++) {
        for (uint64_t i = s->off[u]; i < s->off[u + 1]; i++) {
            if (fresh[s->row[i]])
                continue;
            out->row[k] = s->row[i];
            if (out->weight)
                out->weight[k] = s->weight[i];
            k++;
        }
        out->off[u + 1] = k;
    }
    out->seqs = (attn_seqs){.n_users = s->n_users, .n_rows = s->n_rows, .off = out->off,
                            .row = out->row, .weight = out->weight};
    return ATTN_OK;
}
