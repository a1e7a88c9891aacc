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
 * The transition counts are kept by distance (eval_trans.c), so that the
 * window and the decay can be chosen after counting: attn_eval_base_tune
 * picks them on the validation split, as a baseline should be tuned --
 * never on the test targets it is compared on.
 */
#include "attn/eval_int.h"

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
    attn_eval_trans *trans; /* transition counts by distance */
    double *acc;            /* n_rows scratch: transition scores, kept zero */
    double *centroid;       /* d scratch */
};

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
    b->trans = attn_eval_trans_new(s, b->window);
    if (!b->count || !b->emb_norm || !b->acc || !b->centroid || !b->trans) {
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
    attn_eval_trans_free(&b->trans);
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
    attn_eval_trans_score(b->trans, b->window, b->decay, q, b->acc, score);
    for (int k = 0; k < q->n_cand; k++)
        tie[k] = b->count[q->cand[k]];
    return ATTN_OK;
}

int attn_eval_base_set_transition(attn_eval_base *b, int window, double decay)
{
    if (!b || window < 1 || window > attn_eval_trans_window(b->trans) ||
        !(decay > 0.0 && decay <= 1.0))
        return ATTN_EINVAL;
    b->window = window;
    b->decay = decay;
    return ATTN_OK;
}

int attn_eval_base_tune(attn_eval_base *b, const attn_eval_opts *o, attn_eval_tuned *out)
{
    static const double decays[] = {0.25, 0.5, 0.75, 1.0};
    const int most = attn_eval_trans_window(b->trans);
    memset(out, 0, sizeof *out);
    out->ndcg = -1.0;
    for (int w = 1; w <= most; w = w * 2 <= most || w == most ? w * 2 : most)
        for (size_t k = 0; k < sizeof decays / sizeof decays[0]; k++) {
            attn_eval_result r;
            b->window = w;
            b->decay = decays[k];
            int rc = attn_eval_run(b->s, o, attn_eval_transition, b, &r);
            if (rc != ATTN_OK)
                return rc;
            if (r.ndcg > out->ndcg) {
                out->ndcg = r.ndcg;
                out->hr = r.hr;
                out->window = w;
                out->decay = decays[k];
            }
            out->tried++;
        }
    b->window = out->window;
    b->decay = out->decay;
    return ATTN_OK;
}
