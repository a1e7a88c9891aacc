/* train.c -- the training loop: data preparation, steps, validation, early stop.
 *
 * Preparation: the model items (rows occurring in training data), the
 * per-user chunks of consecutive targets, one workspace per thread.
 * Each epoch shuffles the chunks (seeded by (seed, epoch)) and cuts them
 * into batches of at least `batch` examples.  A step:
 *
 *   1. tables T = E W for the current parameters      (threads split rows)
 *   2. chunks assigned to threads, least-loaded first  (deterministic)
 *   3. per-thread gradients summed in thread order     (threads split rows)
 *   4. back through T = E W                             (threads split rows)
 *   5. clip the global norm, AdamW with linear warm-up
 *
 * After each epoch the parameters are scored on the validation split by
 * the served fast path (attn_eval_model) and the best epoch is kept.
 */
#include "attn/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/train_int.h"
#include "util/clock.h"

#define S_MAX_THREADS 64

void attn_train_defaults(attn_train_opts *o, int d)
{
    memset(o, 0, sizeof *o);
    o->epochs = 40;
    o->m = d;
    o->heads = 2;
    o->l_max = 50;
    o->lr = 2e-3;
    o->warmup = 1.0;
    o->weight_decay = 0.01;
    o->clip = 5.0;
    o->dropout = 0.05;
    o->beta1 = 0.9;
    o->beta2 = 0.98;
    o->batch = 256;
    o->neg = 0;
    o->mask = ATTN_TRAIN_MASK_HISTORY;
    o->residual = 1;
    o->item_bias = 1;
    o->seed = 1;
    o->threads = 2;
    o->patience = 5;
    o->val_protocol = ATTN_EVAL_FULL;
    o->chunk = 64;
    o->sa_len = 8;
}

int attn_train_check_opts(const attn_train_opts *o, int d, char *why, size_t why_len)
{
#define S_BAD(...) do { snprintf(why, why_len, __VA_ARGS__); return ATTN_EINVAL; } while (0)
    char dummy[8];
    if (!why) {
        why = dummy;
        why_len = sizeof dummy;
    }
    if (!o)
        S_BAD("no options");
    if (o->epochs < 1 || o->epochs > 100000)
        S_BAD("epochs: %d is out of range 1..100000", o->epochs);
    if (o->m < 1 || o->m > 4096)
        S_BAD("dim-m: %d is out of range 1..4096", o->m);
    if (o->heads < 1 || o->heads > o->m || o->m % o->heads)
        S_BAD("heads: %d must divide dim-m (%d)", o->heads, o->m);
    if (o->l_max < 1 || o->l_max > 4096)
        S_BAD("l-max: %d is out of range 1..4096", o->l_max);
    if (!(o->lr > 0.0 && o->lr < 10.0))
        S_BAD("lr: %g, expected a value in (0, 10)", o->lr);
    if (!(o->warmup >= 0.0 && o->warmup <= 1000.0))
        S_BAD("warmup: %g epochs is out of range 0..1000", o->warmup);
    if (!(o->weight_decay >= 0.0 && o->weight_decay * o->lr < 1.0))
        S_BAD("weight-decay: %g, expected >= 0 and weight-decay * lr < 1", o->weight_decay);
    if (!(o->clip >= 0.0) || !isfinite(o->clip))
        S_BAD("clip: %g, expected >= 0 (0 = none)", o->clip);
    if (!(o->dropout >= 0.0 && o->dropout < 1.0))
        S_BAD("dropout: %g is out of range [0, 1)", o->dropout);
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0) || !(o->beta2 >= 0.0 && o->beta2 < 1.0))
        S_BAD("adam betas: %g, %g, expected in [0, 1)", o->beta1, o->beta2);
    if (o->batch < 1 || o->batch > 1000000)
        S_BAD("batch: %d is out of range 1..1000000", o->batch);
    if (o->neg < 0 || o->neg > 100000)
        S_BAD("neg: %d is out of range 0..100000 (0 = full softmax)", o->neg);
    if (o->threads < 1 || o->threads > S_MAX_THREADS)
        S_BAD("threads: %d is out of range 1..%d", o->threads, S_MAX_THREADS);
    if (o->patience < 0)
        S_BAD("patience: %d, expected >= 0", o->patience);
    if (o->mask < ATTN_TRAIN_MASK_NONE || o->mask > ATTN_TRAIN_MASK_USER)
        S_BAD("mask: %d is not none, history or user", o->mask);
    if (o->val_protocol != ATTN_EVAL_FULL && o->val_protocol != ATTN_EVAL_SAMPLED)
        S_BAD("validation protocol: %d is not full or sampled", o->val_protocol);
    if (!(o->ema >= 0.0 && o->ema < 1.0))
        S_BAD("ema: %g is out of range [0, 1)", o->ema);
    if (o->sa_len < 0 || o->sa_len > ATTN_SA_MAX)
        S_BAD("self-attn: window %d is out of range 0..%d (0 = no block)", o->sa_len, ATTN_SA_MAX);
    if (o->refit && o->patience != 0)
        S_BAD("refit: the validation targets are training data, so there is nothing to "
              "stop early on; needs patience 0 (it trains exactly the epochs asked for)");
    if (o->chunk < 1 || o->chunk > 4096)
        S_BAD("chunk: %d is out of range 1..4096", o->chunk);
    if (d < 1)
        S_BAD("embedding dimension %d", d);
    return ATTN_OK;
#undef S_BAD
}

/* ---- preparation ----------------------------------------------------------- */

typedef struct s_prep {
    int32_t *row2mi;        /* n_rows */
    uint32_t *mi2row;       /* n_mi */
    int64_t n_mi;
    attn_tr_chunk *chunks;  /* every chunk of every user */
    size_t n_chunks;
    uint64_t examples;
} s_prep;

static void s_prep_free(s_prep *p)
{
    free(p->row2mi);
    free(p->mi2row);
    free(p->chunks);
    memset(p, 0, sizeof *p);
}

static int s_prepare(const attn_train_data *data, const attn_train_opts *o, s_prep *p,
                     attn_train_report *rep, char *why, size_t why_len)
{
    const attn_seqs *s = &data->seqs;
    memset(p, 0, sizeof *p);
    p->row2mi = malloc((data->n_rows ? data->n_rows : 1) * sizeof *p->row2mi);
    if (!p->row2mi)
        return ATTN_ENOMEM;
    for (size_t r = 0; r < data->n_rows; r++)
        p->row2mi[r] = -1;
    size_t n_chunks = 0;
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
            p->row2mi[s->row[s->off[u] + i]] = 0;
        if (n_train >= 2) {
            uint64_t targets = n_train - 1;    /* positions 1 .. n_train-1 */
            p->examples += targets;
            n_chunks += (size_t)((targets + (uint64_t)o->chunk - 1) / (uint64_t)o->chunk);
        }
    }
    if (p->examples == 0) {
        snprintf(why, why_len, "too few interactions: no user has the %d events a training "
                 "example needs (%u users: %u with a single event, %u with 2-%d events)",
                 s->refit ? 3 : 4, s->n_users, rep->users_single, rep->users_short,
                 s->refit ? 2 : 3);
        return ATTN_EINVAL;
    }
    for (size_t r = 0; r < data->n_rows; r++)
        if (p->row2mi[r] == 0)
            p->n_mi++;
    if (p->n_mi < 2) {
        snprintf(why, why_len, "too few items: training data holds %lld distinct item, "
                 "nothing to rank", (long long)p->n_mi);
        return ATTN_EINVAL;
    }
    if (p->n_mi > INT32_MAX) {
        snprintf(why, why_len, "too many items for the trainer: %lld", (long long)p->n_mi);
        return ATTN_EINVAL;
    }
    p->mi2row = malloc((size_t)p->n_mi * sizeof *p->mi2row);
    p->chunks = malloc(n_chunks * sizeof *p->chunks);
    if (!p->mi2row || !p->chunks)
        return ATTN_ENOMEM;
    int64_t k = 0;
    for (size_t r = 0; r < data->n_rows; r++)
        if (p->row2mi[r] == 0) {
            p->row2mi[r] = (int32_t)k;
            p->mi2row[k++] = (uint32_t)r;
        }
    for (uint32_t u = 0; u < s->n_users; u++) {
        uint64_t n_train = attn_eval_train_len(s, u);
        for (uint64_t t = 1; t < n_train; t += (uint64_t)o->chunk) {
            uint64_t t1 = t + (uint64_t)o->chunk < n_train ? t + (uint64_t)o->chunk : n_train;
            p->chunks[p->n_chunks++] = (attn_tr_chunk){u, (uint32_t)t, (uint32_t)t1};
        }
    }
    rep->examples = p->examples;
    rep->items = p->n_mi;
    return ATTN_OK;
}

/* Initial parameters: small random projections (so heads differ), zero
 * biases and residuals -- the untrained model ranks by item bias alone.
 * The self-attention block gets a random query and key and zero outputs,
 * so it starts as no block at all and grows only as far as it helps. */
static void s_init(attn_model *md, uint64_t seed)
{
    attn_eval_rng rng = attn_eval_rng_for(seed, 0x696E6974, 0);
    const size_t dm = (size_t)md->d * md->m;
    const double sd_in = 1.0 / sqrt((double)md->d), sd_out = 1.0 / sqrt((double)md->m);
    /* Drawn in this order (NULL: absent), so a seed means the same weights. */
    struct { float *w; double sd; } init[] = {
        {md->wq, sd_in}, {md->wk, sd_in}, {md->wv, sd_in}, {md->wo, sd_out},
        {md->sa_q, sd_in}, {md->sa_k, sd_in},
    };
    for (size_t k = 0; k < sizeof init / sizeof init[0]; k++)
        for (size_t i = 0; init[k].w && i < dm; i++) {
            double u1 = attn_eval_rng_unit(&rng), u2 = attn_eval_rng_unit(&rng);
            init[k].w[i] = (float)(init[k].sd * sqrt(-2.0 * log(u1 + 1e-300)) *
                                   cos(2.0 * M_PI * u2));
        }
}

/* ---- one step -------------------------------------------------------------- */

typedef struct s_ctx {
    const attn_train_data *data;
    const attn_train_opts *o;
    attn_tr_net *net;
    attn_tr_view view;
    attn_tr_ws *ws[S_MAX_THREADS];
    int threads;
    /* the current batch */
    const attn_tr_chunk *chunks;     /* shuffled chunks of the epoch */
    size_t b0, b1;                   /* this batch: chunks [b0, b1) */
    int *owner;                      /* chunk -> thread, for [b0, b1) */
    attn_tr_run run;
    int status[S_MAX_THREADS];
} s_ctx;

static void s_work(void *arg, int i)
{
    s_ctx *c = arg;
    c->status[i] = ATTN_OK;
    for (size_t k = c->b0; k < c->b1; k++) {
        if (c->owner[k - c->b0] != i)
            continue;
        int st = attn_tr_chunk_run(c->net, &c->view, c->ws[i], &c->chunks[k], &c->run);
        if (st != ATTN_OK) {
            c->status[i] = st;
            return;
        }
    }
}

/* Sum every thread's accumulators into thread 0's, rows split by thread. */
static void s_reduce(void *arg, int i)
{
    s_ctx *c = arg;
    const size_t n = (size_t)c->net->n_mi, w = (size_t)c->net->tw;
    const size_t lo = n * (size_t)i / (size_t)c->threads, hi = n * (size_t)(i + 1) / (size_t)c->threads;
    float *d0 = attn_tr_ws_dT(c->ws[0]), *b0 = attn_tr_ws_dbias(c->ws[0]);
    for (int k = 1; k < c->threads; k++) {
        const float *dk = attn_tr_ws_dT(c->ws[k]), *bk = attn_tr_ws_dbias(c->ws[k]);
        for (size_t x = lo * w; x < hi * w; x++)
            d0[x] += dk[x];
        for (size_t r = lo; r < hi; r++)
            b0[r] += bk[r];
    }
}

static void s_zero(void *arg, int i)
{
    s_ctx *c = arg;
    attn_tr_ws_zero(c->ws[i]);
}

/* ---- validation and export ---------------------------------------------------- */

/* The model as it will be saved: a copy with item biases centred (a
 * constant shift changes no ranking among model items, and makes zero --
 * what an item unknown to the model gets -- the average). */
static attn_model *s_export(const attn_model *md)
{
    attn_model *out = attn_model_clone(md);
    if (!out)
        return NULL;
    out->version = 0;
    if (out->item_bias && out->n_items > 0) {
        double mean = 0.0;
        for (int64_t i = 0; i < out->n_items; i++)
            mean += out->item_bias[i];
        mean /= (double)out->n_items;
        for (int64_t i = 0; i < out->n_items; i++)
            out->item_bias[i] = (float)(out->item_bias[i] - mean);
    }
    return out;
}

static int s_validate(const attn_train_data *data, const attn_train_opts *o, const s_prep *p,
                      const attn_model *md, attn_eval_result *r)
{
    attn_model *ex = s_export(md);
    int64_t *pi = malloc(data->n_rows * sizeof *pi);
    int st = ATTN_ENOMEM;
    attn_eval_model *em = NULL;
    if (ex && pi) {
        for (size_t i = 0; i < data->n_rows; i++)
            pi[i] = p->row2mi[i];
        st = attn_eval_model_new(&em, ex, data->emb, data->n_rows, data->ld, pi, o->threads);
    }
    if (st == ATTN_OK) {
        attn_eval_opts eo;
        attn_eval_defaults(&eo);
        eo.split = ATTN_EVAL_VALID;
        eo.protocol = o->val_protocol;
        eo.seed = o->seed;
        st = attn_eval_run(&data->seqs, &eo, attn_eval_model_score, em, r);
    }
    attn_eval_model_free(&em);
    attn_model_free(&ex);
    free(pi);
    return st;
}

/* ---- the loop ----------------------------------------------------------------- */

static int s_check_data(const attn_train_data *data, char *why, size_t why_len)
{
    if (!data || !data->emb || data->d < 1 || data->ld < (size_t)data->d || !data->item_id ||
        data->n_rows == 0 || data->n_rows > INT32_MAX) {
        snprintf(why, why_len, "no catalog: embeddings missing or empty");
        return ATTN_EINVAL;
    }
    if (data->seqs.n_rows != data->n_rows) {
        snprintf(why, why_len, "sequences are over %u rows but the catalog has %zu",
                 data->seqs.n_rows, data->n_rows);
        return ATTN_EINVAL;
    }
    for (size_t r = 1; r < data->n_rows; r++)
        if (data->item_id[r] <= data->item_id[r - 1]) {
            snprintf(why, why_len, "catalog item ids are not strictly ascending at row %zu", r);
            return ATTN_EINVAL;
        }
    return attn_seqs_check(&data->seqs, why, why_len);
}

int attn_train(const attn_train_data *data, const attn_train_opts *o,
               attn_train_progress_fn progress, void *pctx, attn_model **out,
               attn_train_report *rep, char *why, size_t why_len)
{
    char dummy[8];
    attn_train_report rep_local;
    if (!why) {
        why = dummy;
        why_len = sizeof dummy;
    }
    why[0] = '\0';
    if (!rep)
        rep = &rep_local;
    memset(rep, 0, sizeof *rep);
    if (!out) {
        snprintf(why, why_len, "no output");
        return ATTN_EINVAL;
    }
    *out = NULL;
    int st;
    if ((st = s_check_data(data, why, why_len)) != ATTN_OK ||
        (st = attn_train_check_opts(o, data->d, why, why_len)) != ATTN_OK)
        return st;
    /* With refit the validation targets are training data: every use of
     * the sequences below (examples, model items, masks) sees that. */
    attn_train_data own = *data;
    own.seqs.refit = o->refit != 0;
    data = &own;
    const double t_start = util_now_s();
    s_prep p;
    if ((st = s_prepare(data, o, &p, rep, why, why_len)) != ATTN_OK) {
        if (st == ATTN_ENOMEM)
            snprintf(why, why_len, "out of memory preparing the training data");
        s_prep_free(&p);
        return st;
    }
    attn_model *md = attn_model_new(data->d, o->m, o->heads, o->l_max, p.n_mi, o->residual);
    attn_model *grad = attn_model_new(data->d, o->m, o->heads, o->l_max, p.n_mi, o->residual);
    attn_model *best = NULL, *ema = NULL;
    attn_tr_adam adam = {0};
    s_ctx c = {.data = data, .o = o, .threads = o->threads};
    attn_tr_chunk *order = malloc(p.n_chunks * sizeof *order);
    int *owner = malloc(p.n_chunks * sizeof *owner);
    st = ATTN_ENOMEM;
    if (md && grad && o->sa_len &&
        (attn_model_add_sa(md, o->sa_len) || attn_model_add_sa(grad, o->sa_len)))
        goto done;
    if (!md || !grad || !order || !owner || attn_tr_adam_init(&adam, md) != ATTN_OK)
        goto done;
    for (int64_t i = 0; i < p.n_mi; i++)
        md->item_ids[i] = data->item_id[p.mi2row[i]];
    s_init(md, o->seed);
    if (o->ema > 0.0 && !(ema = attn_model_clone(md)))
        goto done;
    c.net = attn_tr_net_new(md, data->emb, data->ld, p.mi2row);
    if (!c.net)
        goto done;
    c.view = (attn_tr_view){&data->seqs, p.row2mi};
    attn_tr_shape sh = {.mode = o->neg > 0 ? ATTN_TR_SAMPLED : ATTN_TR_FULL, .neg = o->neg,
                        .chunk = o->chunk};
    for (int i = 0; i < c.threads; i++)
        if (!(c.ws[i] = attn_tr_ws_new(c.net, &sh)))
            goto done;
    c.owner = owner;
    c.run = (attn_tr_run){.mode = sh.mode, .neg = o->neg, .mask = o->mask,
                          .dropout = o->dropout, .seed = o->seed,
                          .use_item_bias = o->item_bias};
    st = ATTN_OK;

    const double steps_est = (double)p.examples / o->batch;
    const double warm_steps = o->warmup * steps_est;
    const double total_steps = o->epochs * steps_est;
    uint64_t global_step = 0;
    double best_ndcg = -1.0, time_per_step = 0.0;
    int bad_epochs = 0;
    for (int epoch = 1; epoch <= o->epochs && st == ATTN_OK; epoch++) {
        /* Shuffle the chunks (Fisher-Yates, seeded by epoch). */
        memcpy(order, p.chunks, p.n_chunks * sizeof *order);
        attn_eval_rng rng = attn_eval_rng_for(o->seed, 0x73687566, (uint64_t)epoch);
        for (size_t i = p.n_chunks; i > 1; i--) {
            size_t j = attn_eval_rng_below(&rng, (uint32_t)i);
            attn_tr_chunk t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        /* Count the steps of this epoch. */
        uint64_t steps = 0;
        for (size_t i = 0, acc = 0; i < p.n_chunks; i++) {
            acc += order[i].t1 - order[i].t0;
            if (acc >= (size_t)o->batch || i + 1 == p.n_chunks) {
                steps++;
                acc = 0;
            }
        }
        c.chunks = order;
        c.run.epoch = (uint64_t)epoch;
        const double t_epoch = util_now_s();
        double loss_sum = 0.0;
        uint64_t ex_done = 0, step = 0;
        size_t i0 = 0;
        while (i0 < p.n_chunks && st == ATTN_OK) {
            /* The batch: chunks until `batch` examples; least-loaded thread. */
            size_t i1 = i0, n_ex = 0;
            size_t load[S_MAX_THREADS] = {0};
            while (i1 < p.n_chunks && n_ex < (size_t)o->batch) {
                size_t len = order[i1].t1 - order[i1].t0;
                int best_t = 0;
                for (int k = 1; k < c.threads; k++)
                    if (load[k] < load[best_t])
                        best_t = k;
                owner[i1 - i0] = best_t;
                load[best_t] += len;
                n_ex += len;
                i1++;
            }
            c.b0 = i0;
            c.b1 = i1;
            c.run.loss_scale = 1.0f / (float)n_ex;
            attn_tr_net_tables(c.net, c.threads);
            attn_tr_par(c.threads, s_work, &c);
            for (int k = 0; k < c.threads; k++)
                if (c.status[k] != ATTN_OK)
                    st = c.status[k];
            if (st != ATTN_OK) {
                snprintf(why, why_len, "epoch %d: a score became non-finite: training diverged "
                         "(try a lower --lr)", epoch);
                break;
            }
            attn_tr_par(c.threads, s_reduce, &c);
            double bl = 0.0;
            float *dpos0 = attn_tr_ws_dpos(c.ws[0]), *dsa0 = attn_tr_ws_dsa_pos(c.ws[0]);
            for (int k = 0; k < c.threads; k++) {
                bl += attn_tr_ws_loss(c.ws[k]);
                if (k > 0) {
                    const float *dk = attn_tr_ws_dpos(c.ws[k]);
                    for (int j = 0; j < o->l_max; j++)
                        dpos0[j] += dk[j];
                    const float *dsk = attn_tr_ws_dsa_pos(c.ws[k]);
                    for (int j = 0; j < o->sa_len; j++)
                        dsa0[j] += dsk[j];
                }
            }
            if ((st = attn_tr_backprop(c.net, attn_tr_ws_dT(c.ws[0]), attn_tr_ws_dbias(c.ws[0]),
                                       dpos0, dsa0, grad, c.threads)) != ATTN_OK) {
                snprintf(why, why_len, "out of memory in a training step");
                break;
            }
            if (!o->item_bias)
                memset(grad->item_bias, 0, (size_t)p.n_mi * sizeof(float));
            double norm = attn_tr_grad_norm(grad);
            if (!isfinite(norm) || !isfinite(bl)) {
                st = ATTN_ERANGE;
                snprintf(why, why_len, "epoch %d: the loss became non-finite: training "
                         "diverged (try a lower --lr)", epoch);
                break;
            }
            double gscale = o->clip > 0.0 && norm > o->clip ? o->clip / norm : 1.0;
            double lr = o->lr, at = (double)(global_step + 1);
            if (warm_steps > 0.0 && at < warm_steps)
                lr *= at / warm_steps;
            else if (o->cosine && total_steps > warm_steps)
                lr *= 0.5 * (1.0 + cos(M_PI * fmin(1.0, (at - warm_steps) /
                                                        (total_steps - warm_steps))));
            attn_tr_adam_step(&adam, md, grad, gscale, lr, o->beta1, o->beta2, o->weight_decay);
            if (ema)
                attn_tr_ema(ema, md, o->ema);
            attn_tr_par(c.threads, s_zero, &c);
            loss_sum += bl * (double)n_ex;
            ex_done += n_ex;
            step++;
            global_step++;
            i0 = i1;
            if (progress) {
                double now = util_now_s();
                time_per_step = (now - t_epoch) / (double)step;
                attn_train_progress pr = {
                    .epoch = epoch, .epochs = o->epochs, .step = step, .steps = steps,
                    .loss = loss_sum / (double)ex_done, .best_ndcg = best_ndcg,
                    .best_epoch = rep->best_epoch,
                    .examples_per_s = (double)ex_done / (now - t_epoch + 1e-9),
                    .elapsed_s = now - t_start,
                    .eta_s = time_per_step * ((double)(steps - step) +
                                              (double)(o->epochs - epoch) * (double)steps)};
                if (progress(pctx, &pr)) {
                    rep->stopped = 1;
                    break;
                }
            }
        }
        if (st != ATTN_OK)
            break;
        rep->epochs_run = epoch;
        attn_eval_result vr = {.hr = NAN, .ndcg = NAN};
        const attn_model *cur = ema ? ema : md;
        if (!o->refit && (st = s_validate(data, o, &p, cur, &vr)) != ATTN_OK) {
            snprintf(why, why_len, "epoch %d: validation failed (%s)", epoch, attn_strerror(st));
            break;
        }
        double ep_loss = ex_done ? loss_sum / (double)ex_done : 0.0;
        if (o->refit || vr.ndcg > best_ndcg) {   /* refit: the last epoch is the model */
            if (!o->refit)
                best_ndcg = vr.ndcg;
            attn_model_free(&best);
            if (!(best = attn_model_clone(cur))) {
                st = ATTN_ENOMEM;
                snprintf(why, why_len, "out of memory keeping the best model");
                break;
            }
            rep->best_epoch = epoch;
            rep->val_hr = vr.hr;
            rep->val_ndcg = vr.ndcg;
            rep->val_users = vr.users;
            rep->loss = ep_loss;
            bad_epochs = 0;
        } else {
            bad_epochs++;
        }
        double now = util_now_s();
        if (progress) {
            attn_train_progress pr = {
                .epoch = epoch, .epochs = o->epochs, .end_of_epoch = 1, .step = step,
                .steps = steps, .loss = ep_loss, .val_hr = vr.hr, .val_ndcg = vr.ndcg,
                .best_ndcg = best_ndcg, .best_epoch = rep->best_epoch,
                .examples_per_s = (double)ex_done / (now - t_epoch + 1e-9),
                .elapsed_s = now - t_start,
                .eta_s = (now - t_start) / epoch * (o->epochs - epoch)};
            if (progress(pctx, &pr))
                rep->stopped = 1;
        }
        if (rep->stopped || (o->patience > 0 && bad_epochs >= o->patience))
            break;
    }
    if (st == ATTN_OK) {
        if (!best) {
            snprintf(why, why_len, "stopped before the first epoch finished: no model");
            st = ATTN_EINVAL;
        } else if (!(*out = s_export(best))) {
            st = ATTN_ENOMEM;
            snprintf(why, why_len, "out of memory exporting the model");
        }
    } else if (st == ATTN_ENOMEM && !why[0]) {
        snprintf(why, why_len, "out of memory setting up training");
    }
    rep->seconds = util_now_s() - t_start;
done:
    if (st == ATTN_ENOMEM && !why[0])
        snprintf(why, why_len, "out of memory setting up training");
    for (int i = 0; i < S_MAX_THREADS; i++)
        attn_tr_ws_free(&c.ws[i]);
    attn_tr_net_free(&c.net);
    attn_tr_adam_free(&adam);
    attn_model_free(&md);
    attn_model_free(&grad);
    attn_model_free(&best);
    attn_model_free(&ema);
    free(order);
    free(owner);
    s_prep_free(&p);
    return st;
}
