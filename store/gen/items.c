/* items.c -- the demo catalog: topics, items, popularity, embeddings.
 *
 * Layout of the world (see world.h):
 *   - topics get a random popularity rank; users pick interests with weight
 *     1/(rank+2) and the catalog gives each topic a share 1/(rank+6), so
 *     popular topics are also the big ones, but not overwhelmingly;
 *   - items are dealt to topics by those shares (every topic gets at least
 *     one item when there are enough), in shuffled order;
 *   - inside a topic each item gets a distinct random rank and the weight
 *     1/(rank+1): Zipf with exponent 1, the classic long tail;
 *   - 10% of items blend a second topic, which they join at half weight.
 *
 * Embeddings (dim D): every topic has a random unit centroid c, every theme
 * a random unit direction s, every vocabulary word a random unit vector v
 * (seeded by the word's text, so "Throne" is the same vector in space opera
 * and in medieval history).  An item of topic t, theme k, title words W is
 *     normalise( c_t + 0.8 s_tk + 0.5 mean_{w in W} v_w + 0.5 g )
 * with g Gaussian-like noise of unit expected norm; a blend mixes the first
 * two terms of both topics.  In 64 dimensions that puts items of one theme
 * at cosine ~0.7, of one topic ~0.45 and of different topics ~0.
 */
#include "store/gen/world.h"
#include "util/hash.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BLEND_P 0.10      /* share of items with a second topic */
#define S_THEME_W 0.8       /* theme direction next to the topic centroid */
#define S_WORD_W 0.5        /* title words */
#define S_NOISE_W 0.5       /* per-item noise */

/* Fill v (dim doubles) with a random unit vector.  The Irwin-Hall normals
 * make the direction close enough to uniform for what the demo needs. */
static void s_random_unit(store_gen_rng *r, double *v, int dim)
{
    for (;;) {
        double ss = 0;
        for (int d = 0; d < dim; d++) {
            v[d] = store_gen_normal(r);
            ss += v[d] * v[d];
        }
        if (ss > 1e-12) {
            double inv = 1.0 / sqrt(ss);
            for (int d = 0; d < dim; d++)
                v[d] *= inv;
            return;
        }
    }
}

static void s_random_unit_f(store_gen_rng *r, float *out, double *tmp, int dim)
{
    s_random_unit(r, tmp, dim);
    for (int d = 0; d < dim; d++)
        out[d] = (float)tmp[d];
}

/* FNV-1a: a word's text picks its vector's stream. */
static uint64_t s_hash(const char *s)
{
    return util_fnv1a(UTIL_FNV_OFFSET, s, strlen(s));
}

static void s_shuffle_u32(store_gen_rng *r, uint32_t *a, uint32_t n)
{
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = store_gen_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Items per topic: n * share / sum(share), rounded by largest remainder,
 * after one item each so that no topic is empty when n allows. */
static void s_quotas(const double *share, int nt, uint32_t n, uint32_t *quota)
{
    uint32_t base = n >= (uint32_t)nt ? 1 : 0;
    uint32_t rest = n - base * (uint32_t)nt;
    double sum = 0, frac[STORE_GEN_MAX_TOPICS];
    uint32_t given = 0;
    for (int t = 0; t < nt; t++)
        sum += share[t];
    for (int t = 0; t < nt; t++) {
        double x = (double)rest * share[t] / sum;
        quota[t] = base + (uint32_t)x;
        frac[t] = x - (double)(uint32_t)x;
        given += quota[t];
    }
    while (given < n) {
        int best = 0;
        for (int t = 1; t < nt; t++)
            if (frac[t] > frac[best])
                best = t;
        quota[best]++;
        frac[best] = -1.0;
        given++;
    }
}

uint32_t store_gen_cdf_draw(const store_gen_cdf *c, store_gen_rng *r)
{
    assert(c->n > 0);
    double x = store_gen_uniform(r) * c->cum[c->n - 1];
    uint32_t lo = 0, hi = c->n - 1;
    while (lo < hi) {                  /* first entry with cum > x */
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return c->item[lo];
}

/* Topics and their vectors, drawn from the world stream. */
static int s_build_topics(store_gen_world *w, store_gen_rng *r, uint32_t *rank_of)
{
    int nt = w->n_topics, dim = w->opt.dim;
    uint32_t perm[STORE_GEN_MAX_TOPICS];
    for (int t = 0; t < nt; t++)
        perm[t] = (uint32_t)t;
    s_shuffle_u32(r, perm, (uint32_t)nt);
    for (int t = 0; t < nt; t++) {
        rank_of[t] = perm[t];
        w->topic_pop[t] = 1.0 / (perm[t] + 2.0);
    }
    w->centroid = malloc((size_t)nt * (size_t)dim * sizeof(float));
    w->theme_dir = malloc((size_t)nt * STORE_GEN_THEMES * (size_t)dim * sizeof(float));
    double *tmp = malloc((size_t)dim * sizeof(double));
    if (!w->centroid || !w->theme_dir || !tmp) {
        free(tmp);
        return STORE_ERR_NOMEM;
    }
    for (int t = 0; t < nt; t++)
        s_random_unit_f(r, w->centroid + (size_t)t * (size_t)dim, tmp, dim);
    for (int t = 0; t < nt * STORE_GEN_THEMES; t++)
        s_random_unit_f(r, w->theme_dir + (size_t)t * (size_t)dim, tmp, dim);
    free(tmp);
    return STORE_OK;
}

/* Topic, rank and blend of every item. */
static int s_build_items(store_gen_world *w, store_gen_rng *r, const uint32_t *rank_of)
{
    int nt = w->n_topics;
    uint32_t n = w->opt.n_items;
    double share[STORE_GEN_MAX_TOPICS];
    uint32_t quota[STORE_GEN_MAX_TOPICS], off[STORE_GEN_MAX_TOPICS], used[STORE_GEN_MAX_TOPICS];
    for (int t = 0; t < nt; t++)
        share[t] = 1.0 / (rank_of[t] + 6.0);
    s_quotas(share, nt, n, quota);

    w->item = calloc(n, sizeof *w->item);
    uint32_t *label = malloc((size_t)n * sizeof *label);
    uint32_t *ranks = malloc((size_t)n * sizeof *ranks);
    if (!w->item || !label || !ranks) {
        free(label);
        free(ranks);
        return STORE_ERR_NOMEM;
    }
    /* Deal topic labels, shuffle them over item ids; ranks within each
     * topic are a shuffled 0..quota-1 so the head items are spread over
     * the id range rather than sitting at the first ids. */
    uint32_t k = 0;
    for (int t = 0; t < nt; t++) {
        off[t] = k;
        used[t] = 0;
        for (uint32_t j = 0; j < quota[t]; j++) {
            label[k] = (uint32_t)t;
            ranks[k] = j;
            k++;
        }
        s_shuffle_u32(r, ranks + off[t], quota[t]);
    }
    s_shuffle_u32(r, label, n);

    double pop_cum[STORE_GEN_MAX_TOPICS], acc = 0;
    for (int t = 0; t < nt; t++)
        pop_cum[t] = (acc += w->topic_pop[t]);
    store_gen_cdf all_topics = {(uint32_t)nt, NULL, pop_cum};
    uint32_t ident[STORE_GEN_MAX_TOPICS];
    for (int t = 0; t < nt; t++)
        ident[t] = (uint32_t)t;
    all_topics.item = ident;

    for (uint32_t i = 0; i < n; i++) {
        store_gen_item *it = &w->item[i];
        uint32_t t = label[i];
        it->topic = (uint8_t)t;
        it->pop = 1.0 / (ranks[off[t] + used[t]++] + 1.0);
        store_gen_rng ir;
        store_gen_rng_seed(&ir, w->opt.seed, STORE_GEN_STREAM_ITEM, i);
        it->theme = (uint8_t)store_gen_below(&ir, STORE_GEN_THEMES);
        it->topic2 = STORE_GEN_NONE;
        if (nt > 1 && store_gen_chance(&ir, S_BLEND_P)) {
            uint32_t t2;
            do
                t2 = store_gen_cdf_draw(&all_topics, &ir);
            while (t2 == t);
            it->topic2 = (uint8_t)t2;
            it->theme2 = (uint8_t)store_gen_below(&ir, STORE_GEN_THEMES);
            it->mix = (float)(0.3 + 0.2 * store_gen_uniform(&ir));
        }
    }
    free(label);
    free(ranks);
    return STORE_OK;
}

/* The samplers: per topic (primary members at full weight, blend members
 * at half) and per theme (primary members), in item order. */
static int s_build_cdfs(store_gen_world *w)
{
    int nt = w->n_topics;
    uint32_t n = w->opt.n_items;
    uint32_t nt_cnt[STORE_GEN_MAX_TOPICS] = {0};
    uint32_t th_cnt[STORE_GEN_MAX_TOPICS][STORE_GEN_THEMES] = {{0}};
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        const store_gen_item *it = &w->item[i];
        nt_cnt[it->topic]++;
        th_cnt[it->topic][it->theme]++;
        total += 2;
        if (it->topic2 != STORE_GEN_NONE) {
            nt_cnt[it->topic2]++;
            total++;
        }
    }
    w->pool_idx = malloc((total ? total : 1) * sizeof *w->pool_idx);
    w->pool_cum = malloc((total ? total : 1) * sizeof *w->pool_cum);
    if (!w->pool_idx || !w->pool_cum)
        return STORE_ERR_NOMEM;
    size_t at = 0;
    for (int t = 0; t < nt; t++) {
        w->by_topic[t] = (store_gen_cdf){0, w->pool_idx + at, w->pool_cum + at};
        at += nt_cnt[t];
        for (int k = 0; k < STORE_GEN_THEMES; k++) {
            w->by_theme[t][k] = (store_gen_cdf){0, w->pool_idx + at, w->pool_cum + at};
            at += th_cnt[t][k];
        }
    }
    assert(at == total);
    for (uint32_t i = 0; i < n; i++) {
        const store_gen_item *it = &w->item[i];
        store_gen_cdf *c = &w->by_topic[it->topic];
        c->item[c->n] = i;
        c->cum[c->n] = (c->n ? c->cum[c->n - 1] : 0.0) + it->pop;
        c->n++;
        c = &w->by_theme[it->topic][it->theme];
        c->item[c->n] = i;
        c->cum[c->n] = (c->n ? c->cum[c->n - 1] : 0.0) + it->pop;
        c->n++;
        if (it->topic2 != STORE_GEN_NONE) {
            c = &w->by_topic[it->topic2];
            c->item[c->n] = i;
            c->cum[c->n] = (c->n ? c->cum[c->n - 1] : 0.0) + 0.5 * it->pop;
            c->n++;
        }
    }
    /* Users only take interests in topics that have something to show. */
    double acc = 0;
    w->topic_cdf = (store_gen_cdf){0, w->topic_idx, w->topic_cum};
    for (int t = 0; t < nt; t++) {
        if (!w->by_topic[t].n)
            continue;
        w->topic_idx[w->topic_cdf.n] = (uint32_t)t;
        w->topic_cum[w->topic_cdf.n++] = (acc += w->topic_pop[t]);
    }
    return STORE_OK;
}

int store_gen_world_build(store_gen_world *w, const store_gen_opts *o)
{
    memset(w, 0, sizeof *w);
    w->opt = *o;
    w->n_topics = store_gen_n_topics;
    assert(w->n_topics > 0 && w->n_topics <= STORE_GEN_MAX_TOPICS);
    assert(o->n_items > 0 && o->dim > 0);

    store_gen_rng r;
    store_gen_rng_seed(&r, o->seed, STORE_GEN_STREAM_WORLD, 0);
    uint32_t rank_of[STORE_GEN_MAX_TOPICS];
    int rc = s_build_topics(w, &r, rank_of);
    if (rc == STORE_OK)
        rc = s_build_items(w, &r, rank_of);
    if (rc == STORE_OK)
        rc = s_build_cdfs(w);
    if (rc != STORE_OK)
        store_gen_world_free(w);
    return rc;
}

void store_gen_world_free(store_gen_world *w)
{
    free(w->centroid);
    free(w->theme_dir);
    free(w->item);
    free(w->pool_idx);
    free(w->pool_cum);
    w->centroid = w->theme_dir = NULL;
    w->item = NULL;
    w->pool_idx = NULL;
    w->pool_cum = NULL;
}

/* raw += scale * (c_t + S_THEME_W s_tk) */
static void s_add_topic(const store_gen_world *w, double *raw, int t, int k, double scale)
{
    int dim = w->opt.dim;
    const float *c = w->centroid + (size_t)t * (size_t)dim;
    const float *s = w->theme_dir + ((size_t)t * STORE_GEN_THEMES + (size_t)k) * (size_t)dim;
    for (int d = 0; d < dim; d++)
        raw[d] += scale * ((double)c[d] + S_THEME_W * (double)s[d]);
}

void store_gen_item_content(const store_gen_world *w, uint32_t i, int attempt,
                            store_gen_content *c)
{
    const store_gen_item *it = &w->item[i];
    int dim = w->opt.dim;
    store_gen_rng r;
    store_gen_rng_seed(&r, w->opt.seed, STORE_GEN_STREAM_TITLE,
                       (uint64_t)i | ((uint64_t)(uint32_t)attempt << 32));

    /* Published some time in the two years before the histories start. */
    c->updated_at = STORE_GEN_EPOCH - 1 - (int64_t)store_gen_below(&r, 2 * STORE_GEN_YEAR);

    const store_gen_topic *tp = &store_gen_topics[it->topic];
    const store_gen_topic *tp2 =
        it->topic2 != STORE_GEN_NONE ? &store_gen_topics[it->topic2] : NULL;
    const char *words[STORE_GEN_WORDS_MAX];
    int nw = 0;
    store_gen_title(c->title, tp, it->theme, tp2, it->theme2, &r, words, &nw);
    if (tp2)
        snprintf(c->text, sizeof c->text, "%s. Topics: %s (%s), %s (%s).", c->title,
                 tp->name, tp->theme[it->theme].name, tp2->name, tp2->theme[it->theme2].name);
    else
        snprintf(c->text, sizeof c->text, "%s. Topics: %s (%s).", c->title, tp->name,
                 tp->theme[it->theme].name);

    double *raw = c->scratch, *tmp = c->scratch + dim;
    for (int d = 0; d < dim; d++)
        raw[d] = 0.0;
    s_add_topic(w, raw, it->topic, it->theme, 1.0 - (double)it->mix);
    if (tp2)
        s_add_topic(w, raw, it->topic2, it->theme2, (double)it->mix);
    for (int j = 0; j < nw; j++) {
        store_gen_rng wr;
        store_gen_rng_seed(&wr, w->opt.seed, STORE_GEN_STREAM_WORD, s_hash(words[j]));
        s_random_unit(&wr, tmp, dim);
        for (int d = 0; d < dim; d++)
            raw[d] += S_WORD_W / nw * tmp[d];
    }
    double noise = S_NOISE_W / sqrt((double)dim), ss = 0;
    for (int d = 0; d < dim; d++) {
        raw[d] += noise * store_gen_normal(&r);
        ss += raw[d] * raw[d];
    }
    if (ss < 1e-24) {        /* defensive: cancellation to zero, only conceivable at dim 2 */
        raw[0] = 1.0;
        ss = 1.0;
    }
    double inv = 1.0 / sqrt(ss);
    for (int d = 0; d < dim; d++)
        c->emb[d] = (float)(raw[d] * inv);
}
