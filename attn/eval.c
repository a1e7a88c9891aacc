/* eval.c -- the leave-one-out runner: targets, candidate sets, metrics.
 *
 * One pass over the users.  For each one with a target in the split it
 * builds the history (newest first, as the daemon is given it), the
 * candidate set of the protocol, asks the scorer, and ranks the target.
 * Every method is run through this one loop with the same seed, so all of
 * them see identical candidates.  Memory: three arrays of n_rows (marks,
 * candidates, scores) and one of the longest history; nothing per user.
 */
#include "attn/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

int attn_seqs_check(const attn_seqs *s, char *why, size_t why_len)
{
    char dummy[8];
    if (!why) {
        why = dummy;
        why_len = sizeof dummy;
    }
    if (!s || (s->n_users > 0 && (!s->off || !s->row))) {
        snprintf(why, why_len, "no sequences");
        return ATTN_EINVAL;
    }
    if (s->n_users > 0 && s->off[0] != 0) {
        snprintf(why, why_len, "offsets must start at 0");
        return ATTN_EINVAL;
    }
    for (uint32_t u = 0; u < s->n_users; u++) {
        if (s->off[u + 1] < s->off[u]) {
            snprintf(why, why_len, "user %u: offsets go backwards", u);
            return ATTN_EINVAL;
        }
        for (uint64_t i = s->off[u]; i < s->off[u + 1]; i++) {
            if (s->row[i] >= s->n_rows) {
                snprintf(why, why_len, "user %u event %llu: row %u outside the catalog (%u rows)",
                         u, (unsigned long long)(i - s->off[u]), s->row[i], s->n_rows);
                return ATTN_EINVAL;
            }
            if (s->weight && !(s->weight[i] > 0.0f && isfinite(s->weight[i]))) {
                snprintf(why, why_len, "user %u event %llu: weight %g, expected finite > 0", u,
                         (unsigned long long)(i - s->off[u]), (double)s->weight[i]);
                return ATTN_EINVAL;
            }
        }
    }
    return ATTN_OK;
}

int64_t attn_eval_target(const attn_seqs *s, uint32_t u, int split)
{
    int64_t n = (int64_t)(s->off[u + 1] - s->off[u]);
    int64_t t = split == ATTN_EVAL_VALID ? n - 2 : n - 1;
    return t >= 1 ? t : -1;
}

int attn_eval_rank(const double *score, const double *tie, int n, int target)
{
    const double st = score[target], tt = tie ? tie[target] : 0.0;
    int rank = 0;
    for (int i = 0; i < n; i++) {
        if (i == target)
            continue;
        if (score[i] > st || (score[i] == st && (tie ? tie[i] : 0.0) >= tt))
            rank++;
    }
    return rank;
}

double attn_eval_ndcg(int rank, int k)
{
    return rank >= 0 && rank < k ? 1.0 / log2((double)rank + 2.0) : 0.0;
}

double attn_eval_hr(int rank, int k)
{
    return rank >= 0 && rank < k ? 1.0 : 0.0;
}

void attn_eval_defaults(attn_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    o->split = ATTN_EVAL_TEST;
    o->protocol = ATTN_EVAL_SAMPLED;
    o->n_neg = 100;
    o->seed = 1;
    o->k = 10;
}

static int s_opts_ok(const attn_eval_opts *o)
{
    return o && (o->split == ATTN_EVAL_TEST || o->split == ATTN_EVAL_VALID) &&
           (o->protocol == ATTN_EVAL_SAMPLED || o->protocol == ATTN_EVAL_FULL) &&
           o->n_neg >= 1 && o->k >= 1;
}

/* Sampled negatives: n_neg distinct rows that are not marked.  mark holds
 * the user's every item on entry; drawn rows get marked too (so no row is
 * drawn twice) and are listed in cand for the caller to unmark.  When few
 * rows are free, enumerate them instead of rejection sampling, which would
 * otherwise spin. */
static int s_sample(const attn_seqs *s, uint32_t u, const attn_eval_opts *o, uint32_t n_seen,
                    uint8_t *mark, uint32_t *cand, int *n_out, int *short_neg)
{
    uint32_t n_free = s->n_rows - n_seen;
    int n = 0;
    *short_neg = 0;
    if (n_free <= (uint32_t)o->n_neg * 2u) {
        /* Enumerate, then a partial Fisher-Yates over the free rows. */
        for (uint32_t r = 0; r < s->n_rows; r++)
            if (!mark[r])
                cand[n++] = r;
        attn_eval_rng rng = attn_eval_rng_for(o->seed, u, 0x6E6567);
        int want = n < o->n_neg ? n : o->n_neg;
        for (int i = 0; i < want; i++) {
            uint32_t j = (uint32_t)i + attn_eval_rng_below(&rng, (uint32_t)(n - i));
            uint32_t t = cand[i];
            cand[i] = cand[j];
            cand[j] = t;
        }
        *short_neg = n < o->n_neg;
        n = want;
        for (int i = 0; i < n; i++)
            mark[cand[i]] = 1;
    } else {
        attn_eval_rng rng = attn_eval_rng_for(o->seed, u, 0x6E6567);
        while (n < o->n_neg) {
            uint32_t r = attn_eval_rng_below(&rng, s->n_rows);
            if (mark[r])
                continue;
            mark[r] = 1;
            cand[n++] = r;
        }
    }
    *n_out = n;
    return ATTN_OK;
}

/* Shared by attn_eval_candidates and the runner; reports short_neg. */
static int s_candidates(const attn_seqs *s, uint32_t u, const attn_eval_opts *o, uint8_t *mark,
                        uint32_t *cand, int *n_cand, int *short_neg)
{
    *n_cand = 0;
    *short_neg = 0;
    int64_t t = attn_eval_target(s, u, o->split);
    if (t < 0)
        return ATTN_OK;
    const uint32_t *ev = s->row + s->off[u];
    const uint64_t n_ev = s->off[u + 1] - s->off[u];
    const uint32_t target = ev[t];
    if (o->protocol == ATTN_EVAL_FULL) {
        /* Exclude the history (the events before the target), keep the target. */
        for (int64_t i = 0; i < t; i++)
            mark[ev[i]] = 1;
        int n = 0;
        cand[n++] = target;
        for (uint32_t r = 0; r < s->n_rows; r++)
            if (!mark[r] && r != target)
                cand[n++] = r;
        for (int64_t i = 0; i < t; i++)
            mark[ev[i]] = 0;
        *n_cand = n;
        return ATTN_OK;
    }
    /* Sampled: never-interacted items, over the user's whole sequence. */
    uint32_t n_seen = 0;
    for (uint64_t i = 0; i < n_ev; i++)
        if (!mark[ev[i]]) {
            mark[ev[i]] = 1;
            n_seen++;
        }
    int n_neg = 0;
    int st = s_sample(s, u, o, n_seen, mark, cand + 1, &n_neg, short_neg);
    for (uint64_t i = 0; i < n_ev; i++)
        mark[ev[i]] = 0;
    for (int i = 0; i < n_neg; i++)
        mark[cand[1 + i]] = 0;
    cand[0] = target;
    *n_cand = 1 + n_neg;
    return st;
}

int attn_eval_candidates(const attn_seqs *s, uint32_t u, const attn_eval_opts *o,
                         uint8_t *mark, uint32_t *cand, int *n_cand)
{
    int short_neg;
    if (!s || !s_opts_ok(o) || !mark || !cand || !n_cand || u >= s->n_users)
        return ATTN_EINVAL;
    return s_candidates(s, u, o, mark, cand, n_cand, &short_neg);
}

int attn_eval_run(const attn_seqs *s, const attn_eval_opts *o, attn_eval_fn fn, void *ctx,
                  attn_eval_result *out)
{
    return attn_eval_run_users(s, o, fn, ctx, out, NULL, NULL);
}

int attn_eval_run_users(const attn_seqs *s, const attn_eval_opts *o, attn_eval_fn fn, void *ctx,
                        attn_eval_result *out, double *hr_u, double *ndcg_u)
{
    if (!out)
        return ATTN_EINVAL;
    memset(out, 0, sizeof *out);
    if (!fn || !s_opts_ok(o) || attn_seqs_check(s, NULL, 0) != ATTN_OK || s->n_rows == 0)
        return ATTN_EINVAL;
    uint64_t longest = 0;
    for (uint32_t u = 0; u < s->n_users; u++)
        if (s->off[u + 1] - s->off[u] > longest)
            longest = s->off[u + 1] - s->off[u];
    if (longest > (uint64_t)INT32_MAX)
        return ATTN_EINVAL;
    size_t nr = s->n_rows;
    uint8_t *mark = calloc(nr, 1);
    uint32_t *cand = malloc((nr + 1) * sizeof *cand);
    double *score = malloc((nr + 1) * sizeof *score);
    double *tie = malloc((nr + 1) * sizeof *tie);
    uint32_t *hist = malloc((longest + 1) * sizeof *hist);
    float *hw = s->weight ? malloc((longest + 1) * sizeof *hw) : NULL;
    int st = ATTN_OK;
    if (!mark || !cand || !score || !tie || !hist || (s->weight && !hw)) {
        st = ATTN_ENOMEM;
        goto done;
    }
    for (uint32_t u = 0; u < s->n_users; u++) {
        if (hr_u)
            hr_u[u] = NAN;
        if (ndcg_u)
            ndcg_u[u] = NAN;
    }
    double hr = 0.0, ndcg = 0.0;
    const uint32_t every = o->max_users && s->n_users > o->max_users ?
        (s->n_users + o->max_users - 1) / o->max_users : 1;
    for (uint32_t u = 0; u < s->n_users && st == ATTN_OK; u++) {
        int64_t t = attn_eval_target(s, u, o->split);
        if (t < 0) {
            out->skipped++;
            continue;
        }
        if (u % every)
            continue;
        int n_cand, short_neg;
        if ((st = s_candidates(s, u, o, mark, cand, &n_cand, &short_neg)) != ATTN_OK)
            break;
        out->short_neg += (uint32_t)short_neg;
        const uint64_t base = s->off[u];
        for (int64_t j = 0; j < t; j++) {
            hist[j] = s->row[base + (uint64_t)(t - 1 - j)];
            if (hw)
                hw[j] = s->weight[base + (uint64_t)(t - 1 - j)];
        }
        attn_eval_query q = {.user = u, .seed = o->seed, .hist = hist, .hist_weight = hw,
                             .n_hist = (int)t, .cand = cand, .n_cand = n_cand};
        memset(tie, 0, (size_t)n_cand * sizeof *tie);
        if ((st = fn(ctx, &q, score, tie)) != ATTN_OK)
            break;
        for (int i = 0; i < n_cand; i++)
            if (!isfinite(score[i]) || !isfinite(tie[i])) {
                st = ATTN_ERANGE;
                break;
            }
        if (st != ATTN_OK)
            break;
        int rank = attn_eval_rank(score, tie, n_cand, 0);
        hr += attn_eval_hr(rank, o->k);
        ndcg += attn_eval_ndcg(rank, o->k);
        if (hr_u)
            hr_u[u] = attn_eval_hr(rank, o->k);
        if (ndcg_u)
            ndcg_u[u] = attn_eval_ndcg(rank, o->k);
        out->users++;
    }
    if (st == ATTN_OK && out->users > 0) {
        out->hr = hr / out->users;
        out->ndcg = ndcg / out->users;
    }
done:
    free(mark);
    free(cand);
    free(score);
    free(tie);
    free(hist);
    free(hw);
    return st;
}
