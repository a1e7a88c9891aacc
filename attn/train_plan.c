/* train_plan.c -- everything a training run sizes before its first step.
 *
 * 1. Model items: the catalog rows that occur in training data, numbered
 *    in catalog order.  Users are counted by what they can give (a single
 *    event: nothing; 2-3 events, 2 with refit: only validation and test).
 * 2. Chunks: each user's training targets in runs of at most `chunk`.
 * 3. Parameters: small random projections, zero biases, residuals zero --
 *    or random for an item whose text vector is zero (an item without
 *    text: its learned vector is all it has, docs/TRAINING.md §1).
 * 4. The step's buffers: working set, tables, gradients, moments and one
 *    workspace per thread, all sized for the largest step.
 */
#include "attn/train_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

#define S_FAIL(st, ...) (snprintf((st)->why, (st)->why_len, __VA_ARGS__), ATTN_EINVAL)

/* Step 1 and 2 counted: model items marked in row2mi (0), examples and
 * chunks. */
static size_t s_count(attn_tr_state *st)
{
    const attn_seqs *s = &st->data->seqs;
    attn_train_report *rep = st->rep;
    size_t n_chunks = 0;
    const uint64_t chunk = (uint64_t)st->o->chunk;
    for (uint32_t u = 0; u < s->n_users; u++) {
        uint64_t n = s->off[u + 1] - s->off[u];
        uint64_t n_train = attn_eval_train_len(s, u);
        if (n == 1)
            rep->users_single++;
        else if (n_train < 2)
            rep->users_short++;
        else
            rep->users++;
        for (uint64_t i = 0; i < n_train; i++)
            st->row2mi[s->row[s->off[u] + i]] = 0;
        if (n_train >= 2) {
            uint64_t targets = n_train - 1;    /* positions 1 .. n_train-1 */
            st->examples += targets;
            n_chunks += (size_t)((targets + chunk - 1) / chunk);
        }
    }
    return n_chunks;
}

static int s_items_and_chunks(attn_tr_state *st)
{
    const attn_train_data *data = st->data;
    const attn_seqs *s = &data->seqs;
    st->row2mi = malloc((data->n_rows ? data->n_rows : 1) * sizeof *st->row2mi);
    if (!st->row2mi)
        return ATTN_ENOMEM;
    for (size_t r = 0; r < data->n_rows; r++)
        st->row2mi[r] = -1;
    size_t n_chunks = s_count(st);
    if (st->examples == 0)
        return S_FAIL(st, "too few interactions: no user has the %d events a training example "
                      "needs (%u users: %u with a single event, %u with 2-%d events)",
                      s->refit ? 3 : 4, s->n_users, st->rep->users_single, st->rep->users_short,
                      s->refit ? 2 : 3);
    for (size_t r = 0; r < data->n_rows; r++)
        st->n_mi += st->row2mi[r] == 0;
    if (st->n_mi < 2)
        return S_FAIL(st, "too few items: training data holds %lld distinct item, nothing to "
                      "rank", (long long)st->n_mi);
    if (st->n_mi > INT32_MAX)
        return S_FAIL(st, "too many items for the trainer: %lld", (long long)st->n_mi);
    st->mi2row = malloc((size_t)st->n_mi * sizeof *st->mi2row);
    st->param_index = malloc(data->n_rows * sizeof *st->param_index);
    st->chunks = malloc(n_chunks * sizeof *st->chunks);
    if (!st->mi2row || !st->param_index || !st->chunks)
        return ATTN_ENOMEM;
    int64_t k = 0;
    for (size_t r = 0; r < data->n_rows; r++) {
        if (st->row2mi[r] == 0) {
            st->row2mi[r] = (int32_t)k;
            st->mi2row[k++] = (uint32_t)r;
        }
        st->param_index[r] = st->row2mi[r];
    }
    const uint32_t chunk = (uint32_t)st->o->chunk;
    for (uint32_t u = 0; u < s->n_users; u++) {
        uint32_t n_train = (uint32_t)attn_eval_train_len(s, u);
        for (uint32_t t = 1; t < n_train; t += chunk) {
            uint32_t t1 = t + chunk < n_train ? t + chunk : n_train;
            st->chunks[st->n_chunks++] = (attn_tr_chunk){u, t, t1};
        }
    }
    st->rep->examples = st->examples;
    st->rep->items = st->n_mi;
    return ATTN_OK;
}

static double s_normal(attn_eval_rng *rng)
{
    double u1 = attn_eval_rng_unit(rng), u2 = attn_eval_rng_unit(rng);
    return sqrt(-2.0 * log(u1 + 1e-300)) * cos(2.0 * M_PI * u2);
}

/* Step 3.  The untrained model ranks by item bias alone.  The
 * self-attention block gets a random query and key and zero outputs, so it
 * starts as no block at all and grows only as far as it helps; so does its
 * feed-forward layer.  An item
 * whose text vector is zero would have E = 0 and so no gradient at all:
 * its residual starts at unit scale instead, like a text vector. */
static void s_init(attn_tr_state *st)
{
    attn_model *md = st->md;
    attn_eval_rng rng = attn_eval_rng_for(st->o->seed, 0x696E6974, 0);
    const size_t dm = (size_t)md->d * md->m;
    const double sd_in = 1.0 / sqrt((double)md->d), sd_out = 1.0 / sqrt((double)md->m);
    /* Drawn in this order (NULL: absent), so a seed means the same weights. */
    struct { float *w; double sd; } init[] = {
        {md->wq, sd_in}, {md->wk, sd_in}, {md->wv, sd_in}, {md->wo, sd_out},
        {md->sa_q, sd_in}, {md->sa_k, sd_in},
    };
    for (size_t k = 0; k < sizeof init / sizeof init[0]; k++)
        for (size_t i = 0; init[k].w && i < dm; i++)
            init[k].w[i] = (float)(init[k].sd * s_normal(&rng));
    /* The feed-forward's first layer random, its output zero: like the
     * block, it starts as no layer and grows only as far as it helps. */
    const size_t fw = (size_t)2 * md->m * (size_t)md->ffn;
    const double sd_ffn = 1.0 / sqrt(2.0 * md->m);
    for (size_t i = 0; i < fw; i++)
        md->ffn_w1[i] = (float)(sd_ffn * s_normal(&rng));
    for (int64_t i = 0; i < st->n_mi; i++)
        md->item_ids[i] = st->data->item_id[st->mi2row[i]];
    const int d = md->d;
    for (int64_t i = 0; md->residual && i < st->n_mi; i++) {
        const float *x = st->data->emb + (size_t)st->mi2row[i] * st->data->ld;
        int zero = 1;
        for (int k = 0; k < d && zero; k++)
            zero = x[k] == 0.0f;
        if (!zero)
            continue;
        attn_eval_rng ri = attn_eval_rng_for(st->o->seed, 0x72657369, (uint64_t)i);
        for (int k = 0; k < d; k++)
            md->residual[(size_t)i * d + k] = (float)(sd_in * s_normal(&ri));
    }
}

/* Most working rows of a step: its candidates (every item, or the
 * negatives and at most batch + chunk - 1 targets) and the events of at most
 * `batch` chunks' spans. */
static int64_t s_ws_cap(const attn_tr_state *st, int full)
{
    const attn_train_opts *o = st->o;
    const int64_t ex = (int64_t)o->batch + o->chunk - 1;
    const int64_t ctx = o->sa_len > 1 ? o->sa_len - 1 : 0;
    const int64_t events = ex + (int64_t)o->batch * (o->l_max + ctx);
    int64_t cap = (full ? st->n_mi : (int64_t)o->neg + ex) + events;
    return cap < st->n_mi ? cap : st->n_mi;
}

/* Step 4. */
static int s_buffers(attn_tr_state *st)
{
    const attn_train_opts *o = st->o;
    const int full = o->neg == 0 || (int64_t)o->neg >= st->n_mi;
    if (attn_tr_set_init(&st->set, st->n_mi, full, s_ws_cap(st, full)) != ATTN_OK ||
        attn_tr_grad_init(&st->grad, st->md, st->set.cap) != ATTN_OK ||
        attn_tr_adam_init(&st->adam, st->md) != ATTN_OK)
        return ATTN_ENOMEM;
    if (o->ema > 0.0 && !(st->ema = attn_model_clone(st->md)))
        return ATTN_ENOMEM;
    st->net = attn_tr_net_new(st->md, &st->set, st->data->emb, st->data->ld, st->mi2row);
    if (!st->net)
        return ATTN_ENOMEM;
    st->threads = o->threads;
    for (int i = 0; i < st->threads; i++)
        if (!(st->ws[i] = attn_tr_ws_new(st->net, o->chunk)))
            return ATTN_ENOMEM;
    st->order = malloc(st->n_chunks * sizeof *st->order);
    st->owner = malloc(st->n_chunks * sizeof *st->owner);
    if (!st->order || !st->owner)
        return ATTN_ENOMEM;
    st->view = (attn_tr_view){&st->data->seqs, st->row2mi};
    st->run = (attn_tr_run){.mode = ATTN_TR_FULL, .mask = o->mask, .dropout = o->dropout,
                            .ffn_dropout = o->ffn_dropout,
                            .seed = o->seed, .use_item_bias = o->item_bias};
    return ATTN_OK;
}

int attn_tr_plan(attn_tr_state *st)
{
    const attn_train_opts *o = st->o;
    int rc = s_items_and_chunks(st);
    if (rc == ATTN_OK) {
        st->md = attn_model_new(st->data->d, o->m, o->heads, o->l_max, st->n_mi, o->residual);
        rc = st->md && (!o->sa_len || attn_model_add_sa(st->md, o->sa_len) == ATTN_OK) &&
                     (!o->ffn || attn_model_add_ffn(st->md, o->ffn) == ATTN_OK)
                 ? ATTN_OK : ATTN_ENOMEM;
    }
    if (rc == ATTN_OK) {
        s_init(st);
        rc = s_buffers(st);
    }
    if (rc == ATTN_ENOMEM)
        snprintf(st->why, st->why_len, "out of memory setting up training (%lld items)",
                 (long long)st->n_mi);
    st->best_ndcg = -1.0;
    st->t_warm = -1.0;      /* warm_steps, total_steps: each epoch (train_epoch.c) */
    return rc;
}

void attn_tr_state_free(attn_tr_state *st)
{
    for (int i = 0; i < ATTN_TR_MAX_THREADS; i++)
        attn_tr_ws_free(&st->ws[i]);
    attn_tr_net_free(&st->net);
    attn_tr_set_free(&st->set);
    attn_tr_grad_free(&st->grad);
    attn_tr_adam_free(&st->adam);
    attn_model_free(&st->md);
    attn_model_free(&st->ema);
    attn_model_free(&st->best);
    free(st->row2mi);
    free(st->mi2row);
    free(st->param_index);
    free(st->chunks);
    free(st->order);
    free(st->owner);
}
