/* eval_base.c -- the baselines every model is measured beside.
 *
 * All of them learn only from training data (each user's events but the
 * last two), the same data the trainer sees, so none has seen a
 * validation or test target:
 *
 *   random       uniform scores: the floor.
 *   popularity   how often each item occurs in training data.
 *   centroid     cosine between the candidate's text embedding and the mean
 *                of the history's: what the text alone knows.
 *   transition   windowed item-to-item transition counts: "people who had
 *                just watched a, b, c went on to watch x".  Strong on
 *                MovieLens, where sessions of related films are common.
 *
 * The transition counts are a sparse matrix in CSR form (source row ->
 * sorted (destination, weight) pairs), built by sorting every training
 * pair once: memory is about 12 bytes per distinct pair, where a dense
 * n_rows^2 matrix would not fit a large catalog.
 */
#include "attn/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

struct attn_eval_base {
    const attn_seqs *s;     /* borrowed: the sequences */
    const float *emb;       /* borrowed: n_rows x d text embeddings */
    size_t ld;              /* their row stride */
    int d;
    int window;             /* transition window */
    double decay;           /* transition decay per step of distance */
    double *count;          /* n_rows training counts */
    double *emb_norm;       /* n_rows L2 norms of the embeddings */
    uint64_t *t_off;        /* n_rows + 1: CSR row offsets of the transitions */
    uint32_t *t_dst;        /* destinations, ascending within a row */
    double *t_w;            /* their decayed counts */
    double *acc;            /* n_rows scratch: transition scores, kept zero */
    double *centroid;       /* d scratch */
};

typedef struct s_pair {
    uint32_t src, dst;
    double w;
} s_pair;

static int s_pair_cmp(const void *a, const void *b)
{
    const s_pair *x = a, *y = b;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    if (x->dst != y->dst)
        return x->dst < y->dst ? -1 : 1;
    return 0;
}

/* Collect every (earlier, later) training pair within the window, sort,
 * merge duplicates into CSR.  The pair weights are exact binary fractions
 * for decay 0.5, so the sum does not depend on the merge order anyway. */
static int s_transitions(attn_eval_base *b)
{
    const attn_seqs *s = b->s;
    size_t n_pairs = 0;
    for (uint32_t u = 0; u < s->n_users; u++) {
        uint64_t n = attn_eval_train_len(s, u);
        for (uint64_t j = 1; j < n; j++)
            n_pairs += j < (uint64_t)b->window ? j : (uint64_t)b->window;
    }
    s_pair *p = malloc((n_pairs ? n_pairs : 1) * sizeof *p);
    b->t_off = calloc((size_t)s->n_rows + 1, sizeof *b->t_off);
    if (!p || !b->t_off) {
        free(p);
        return ATTN_ENOMEM;
    }
    size_t k = 0;
    for (uint32_t u = 0; u < s->n_users; u++) {
        const uint32_t *ev = s->row + s->off[u];
        uint64_t n = attn_eval_train_len(s, u);
        for (uint64_t j = 1; j < n; j++) {
            double w = 1.0;
            for (uint64_t dist = 1; dist <= (uint64_t)b->window && dist <= j; dist++) {
                p[k++] = (s_pair){ev[j - dist], ev[j], w};
                w *= b->decay;
            }
        }
    }
    qsort(p, n_pairs, sizeof *p, s_pair_cmp);
    size_t n_uniq = 0;
    for (size_t i = 0; i < n_pairs; i++) {
        if (n_uniq > 0 && p[n_uniq - 1].src == p[i].src && p[n_uniq - 1].dst == p[i].dst)
            p[n_uniq - 1].w += p[i].w;
        else
            p[n_uniq++] = p[i];
    }
    b->t_dst = malloc((n_uniq ? n_uniq : 1) * sizeof *b->t_dst);
    b->t_w = malloc((n_uniq ? n_uniq : 1) * sizeof *b->t_w);
    if (!b->t_dst || !b->t_w) {
        free(p);
        return ATTN_ENOMEM;
    }
    for (size_t i = 0; i < n_uniq; i++) {
        b->t_off[p[i].src + 1]++;
        b->t_dst[i] = p[i].dst;
        b->t_w[i] = p[i].w;
    }
    for (uint32_t r = 0; r < s->n_rows; r++)
        b->t_off[r + 1] += b->t_off[r];
    free(p);
    return ATTN_OK;
}

attn_eval_base *attn_eval_base_new(const attn_seqs *s, const float *emb, size_t ld, int d,
                                   const attn_eval_base_opts *o)
{
    if (!s || !emb || d < 1 || ld < (size_t)d || attn_seqs_check(s, NULL, 0) != ATTN_OK)
        return NULL;
    if (o && (o->window < 1 || !(o->decay > 0.0 && o->decay <= 1.0)))
        return NULL;
    attn_eval_base *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->s = s;
    b->emb = emb;
    b->ld = ld;
    b->d = d;
    b->window = o ? o->window : 8;
    b->decay = o ? o->decay : 0.5;
    size_t nr = s->n_rows ? s->n_rows : 1;
    b->count = calloc(nr, sizeof *b->count);
    b->emb_norm = calloc(nr, sizeof *b->emb_norm);
    b->acc = calloc(nr, sizeof *b->acc);
    b->centroid = calloc((size_t)d, sizeof *b->centroid);
    if (!b->count || !b->emb_norm || !b->acc || !b->centroid ||
        s_transitions(b) != ATTN_OK) {
        attn_eval_base_free(&b);
        return NULL;
    }
    for (uint32_t u = 0; u < s->n_users; u++) {
        uint64_t n = attn_eval_train_len(s, u);
        for (uint64_t i = 0; i < n; i++)
            b->count[s->row[s->off[u] + i]] += 1.0;
    }
    for (uint32_t r = 0; r < s->n_rows; r++) {
        double q = 0.0;
        for (int i = 0; i < d; i++)
            q += (double)emb[(size_t)r * ld + i] * emb[(size_t)r * ld + i];
        b->emb_norm[r] = sqrt(q);
    }
    return b;
}

void attn_eval_base_free(attn_eval_base **base_p)
{
    if (!base_p || !*base_p)
        return;
    attn_eval_base *b = *base_p;
    free(b->count);
    free(b->emb_norm);
    free(b->t_off);
    free(b->t_dst);
    free(b->t_w);
    free(b->acc);
    free(b->centroid);
    free(b);
    *base_p = NULL;
}

double attn_eval_base_count(const attn_eval_base *b, uint32_t r)
{
    return b && r < b->s->n_rows ? b->count[r] : 0.0;
}

int attn_eval_random(void *base, const attn_eval_query *q, double *score, double *tie)
{
    (void)base;
    (void)tie;
    attn_eval_rng rng = attn_eval_rng_for(q->seed, q->user, 0x72616E64);
    for (int i = 0; i < q->n_cand; i++)
        score[i] = attn_eval_rng_unit(&rng);
    return ATTN_OK;
}

int attn_eval_popularity(void *base, const attn_eval_query *q, double *score, double *tie)
{
    const attn_eval_base *b = base;
    (void)tie;
    for (int i = 0; i < q->n_cand; i++)
        score[i] = b->count[q->cand[i]];
    return ATTN_OK;
}

int attn_eval_centroid(void *base, const attn_eval_query *q, double *score, double *tie)
{
    attn_eval_base *b = base;
    const int d = b->d;
    double *c = b->centroid, cn = 0.0;
    for (int i = 0; i < d; i++)
        c[i] = 0.0;
    for (int j = 0; j < q->n_hist; j++) {
        const float *e = b->emb + (size_t)q->hist[j] * b->ld;
        for (int i = 0; i < d; i++)
            c[i] += e[i];
    }
    for (int i = 0; i < d; i++)
        cn += c[i] * c[i];
    cn = sqrt(cn);
    for (int k = 0; k < q->n_cand; k++) {
        uint32_t r = q->cand[k];
        const float *e = b->emb + (size_t)r * b->ld;
        double dot = 0.0;
        for (int i = 0; i < d; i++)
            dot += c[i] * e[i];
        double den = cn * b->emb_norm[r];
        score[k] = den > 0.0 ? dot / den : 0.0;
        tie[k] = b->count[r];
    }
    return ATTN_OK;
}

int attn_eval_transition(void *base, const attn_eval_query *q, double *score, double *tie)
{
    attn_eval_base *b = base;
    int w = q->n_hist < b->window ? q->n_hist : b->window;
    double vote = 1.0;
    for (int k = 0; k < w; k++, vote *= b->decay) {
        uint32_t h = q->hist[k];
        for (uint64_t i = b->t_off[h]; i < b->t_off[h + 1]; i++)
            b->acc[b->t_dst[i]] += vote * b->t_w[i];
    }
    for (int k = 0; k < q->n_cand; k++) {
        score[k] = b->acc[q->cand[k]];
        tie[k] = b->count[q->cand[k]];
    }
    /* Clear only what was touched, so a query costs its history, not the
     * catalog. */
    for (int k = 0; k < w; k++) {
        uint32_t h = q->hist[k];
        for (uint64_t i = b->t_off[h]; i < b->t_off[h + 1]; i++)
            b->acc[b->t_dst[i]] = 0.0;
    }
    return ATTN_OK;
}
