/* train_epoch.c -- an epoch: steps, the learning-rate schedule, keep-best.
 *
 * Each epoch shuffles the chunks (seeded by (seed, epoch)) and cuts them
 * into batches of at least `batch` examples.  A step:
 *
 *   1. the working set: sampled negatives and the batch's targets as
 *      candidates, then the items of the batch's histories (train_set.c)
 *   2. tables T = E W over the working rows            (threads split rows)
 *   3. chunks assigned to threads, least-loaded first  (deterministic)
 *   4. per-thread gradients summed in thread order     (threads split rows)
 *   5. back through T = E W                             (threads split rows)
 *   6. clip the global norm; the rate of the schedule; AdamW
 *
 * After each epoch the parameters are scored on the validation split by
 * the served fast path (attn_eval_model) and the best epoch is kept.
 */
#include "attn/train_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "util/clock.h"

/* ---- one step ------------------------------------------------------------- */

/* Step 1: the working set of chunks order[b0, b1). */
static void s_working_set(attn_tr_state *st, uint64_t epoch)
{
    attn_tr_set *set = &st->set;
    const attn_seqs *s = &st->data->seqs;
    attn_tr_set_reset(set);
    if (!set->full) {
        attn_tr_set_sample(set, st->o->neg, st->o->seed ^ (epoch << 32) ^ st->step);
        for (size_t k = st->b0; k < st->b1; k++) {
            const attn_tr_chunk *ch = &st->order[k];
            const uint32_t *ev = s->row + s->off[ch->u];
            for (uint32_t t = ch->t0; t < ch->t1; t++)
                attn_tr_set_add(set, (uint32_t)st->row2mi[ev[t]]);
        }
    }
    attn_tr_set_close_cand(set);
    for (size_t k = st->b0; k < st->b1 && !set->full; k++) {
        const attn_tr_chunk *ch = &st->order[k];
        const uint32_t *ev = s->row + s->off[ch->u];
        uint32_t lo, hi;
        attn_tr_chunk_span(ch, st->o->l_max, st->o->sa_len, &lo, &hi);
        for (uint32_t a = lo; a < hi; a++)
            attn_tr_set_add(set, (uint32_t)st->row2mi[ev[a]]);
    }
}

/* Step 3, on thread i: its chunks of the batch. */
static void s_work(void *arg, int i)
{
    attn_tr_state *st = arg;
    st->status[i] = ATTN_OK;
    for (size_t k = st->b0; k < st->b1; k++) {
        if (st->owner[k - st->b0] != i)
            continue;
        int rc = attn_tr_chunk_run(st->net, &st->view, st->ws[i], &st->order[k], &st->run);
        if (rc != ATTN_OK) {
            st->status[i] = rc;
            return;
        }
    }
}

/* Step 4, on thread i: every thread's accumulators into thread 0's. */
static void s_reduce(void *arg, int i)
{
    attn_tr_state *st = arg;
    const size_t n = (size_t)st->set.n_ws, w = (size_t)st->net->tw;
    const size_t lo = n * (size_t)i / (size_t)st->threads;
    const size_t hi = n * (size_t)(i + 1) / (size_t)st->threads;
    float *d0 = attn_tr_ws_dT(st->ws[0]), *b0 = attn_tr_ws_dbias(st->ws[0]);
    for (int k = 1; k < st->threads; k++) {
        const float *dk = attn_tr_ws_dT(st->ws[k]), *bk = attn_tr_ws_dbias(st->ws[k]);
        for (size_t x = lo * w; x < hi * w; x++)
            d0[x] += dk[x];
        for (size_t r = lo; r < hi; r++)
            b0[r] += bk[r];
    }
}

static void s_zero(void *arg, int i)
{
    attn_tr_state *st = arg;
    attn_tr_ws_zero(st->ws[i], st->set.n_ws);
}

/* The batch starting at order[i0]: chunks until `batch` examples, each to
 * the least-loaded thread.  Returns its examples; st->b0, b1 set. */
static size_t s_batch(attn_tr_state *st, size_t i0)
{
    size_t i1 = i0, n_ex = 0;
    size_t load[ATTN_TR_MAX_THREADS] = {0};
    while (i1 < st->n_chunks && n_ex < (size_t)st->o->batch) {
        size_t len = st->order[i1].t1 - st->order[i1].t0;
        int best = 0;
        for (int k = 1; k < st->threads; k++)
            if (load[k] < load[best])
                best = k;
        st->owner[i1 - i0] = best;
        load[best] += len;
        n_ex += len;
        i1++;
    }
    st->b0 = i0;
    st->b1 = i1;
    return n_ex;
}

/* Step 6's rate (attn_tr_rate): warm-up, then constant or a half cosine
 * to 0 at the planned steps or the time budget, whichever comes first. */
static double s_rate(attn_tr_state *st)
{
    const double at = (double)(st->step + 1);
    const double elapsed = util_now_s() - st->t_start;
    if (st->t_warm < 0.0 && at >= st->warm_steps)
        st->t_warm = elapsed;
    return attn_tr_rate(st->o, st->warm_steps, st->total_steps, at, elapsed, st->t_warm);
}

/* Steps 4-6 once the chunks have run: *loss gets the batch's mean loss. */
static int s_update(attn_tr_state *st, int epoch, double *loss)
{
    const attn_train_opts *o = st->o;
    attn_tr_par(st->threads, s_reduce, st);
    float *dpos0 = attn_tr_ws_dpos(st->ws[0]), *dsa0 = attn_tr_ws_dsa_pos(st->ws[0]);
    float *dffn0 = attn_tr_ws_dffn(st->ws[0]);
    const size_t nffn = o->ffn ? attn_tr_ffn_size(o->m, o->ffn) : 0;
    *loss = 0.0;
    for (int k = 0; k < st->threads; k++) {
        *loss += attn_tr_ws_loss(st->ws[k]);
        const float *dk = attn_tr_ws_dpos(st->ws[k]), *dsk = attn_tr_ws_dsa_pos(st->ws[k]);
        for (int j = 0; k > 0 && j < o->l_max; j++)
            dpos0[j] += dk[j];
        for (int j = 0; k > 0 && j < o->sa_len; j++)
            dsa0[j] += dsk[j];
        const float *dfk = attn_tr_ws_dffn(st->ws[k]);
        for (size_t j = 0; k > 0 && j < nffn; j++)
            dffn0[j] += dfk[j];
    }
    if (attn_tr_backprop(st->net, attn_tr_ws_dT(st->ws[0]), attn_tr_ws_dbias(st->ws[0]), dpos0,
                         dsa0, dffn0, &st->grad, st->threads) != ATTN_OK) {
        snprintf(st->why, st->why_len, "out of memory in a training step");
        return ATTN_ENOMEM;
    }
    if (!o->item_bias)
        memset(st->grad.dbias, 0, (size_t)st->set.n_ws * sizeof *st->grad.dbias);
    const double norm = attn_tr_grad_norm(&st->grad, st->set.n_ws, st->md->d);
    if (!isfinite(norm) || !isfinite(*loss)) {
        snprintf(st->why, st->why_len, "epoch %d: the loss became non-finite: training "
                 "diverged (try a lower --lr)", epoch);
        return ATTN_ERANGE;
    }
    attn_tr_hyper h = {.lr = st->lr = s_rate(st), .beta1 = o->beta1, .beta2 = o->beta2,
                       .wd = o->weight_decay, .item_bias = o->item_bias,
                       .gscale = o->clip > 0.0 && norm > o->clip ? o->clip / norm : 1.0};
    attn_tr_adam_step(&st->adam, st->md, &st->grad, &st->set, &h);
    if (st->ema)
        attn_tr_ema(st->ema, st->md, o->ema);
    st->step++;
    return ATTN_OK;
}

/* One step over the batch order[b0, b1) of n_ex examples. */
static int s_step(attn_tr_state *st, int epoch, size_t n_ex, double *loss)
{
    s_working_set(st, (uint64_t)epoch);
    attn_tr_par(st->threads, s_zero, st);
    st->run.loss_scale = 1.0f / (float)n_ex;
    attn_tr_net_tables(st->net, st->threads);
    attn_tr_par(st->threads, s_work, st);
    for (int k = 0; k < st->threads; k++)
        if (st->status[k] != ATTN_OK) {
            snprintf(st->why, st->why_len, "epoch %d: a score became non-finite: training "
                     "diverged (try a lower --lr)", epoch);
            return st->status[k];
        }
    return s_update(st, epoch, loss);
}

/* ---- the epoch ------------------------------------------------------------- */

/* Shuffle the chunks (Fisher-Yates, seeded by epoch); the epoch's steps. */
static uint64_t s_shuffle(attn_tr_state *st, int epoch)
{
    memcpy(st->order, st->chunks, st->n_chunks * sizeof *st->order);
    attn_eval_rng rng = attn_eval_rng_for(st->o->seed, 0x73687566, (uint64_t)epoch);
    for (size_t i = st->n_chunks; i > 1; i--) {
        size_t j = attn_eval_rng_below(&rng, (uint32_t)i);
        attn_tr_chunk t = st->order[i - 1];
        st->order[i - 1] = st->order[j];
        st->order[j] = t;
    }
    uint64_t steps = 0;
    for (size_t i = 0, acc = 0; i < st->n_chunks; i++) {
        acc += st->order[i].t1 - st->order[i].t0;
        if (acc >= (size_t)st->o->batch || i + 1 == st->n_chunks) {
            steps++;
            acc = 0;
        }
    }
    return steps;
}

/* The epoch's progress so far, to the callback; nonzero: stop. */
static int s_report(attn_tr_state *st, attn_train_progress *pr, double t_epoch, uint64_t ex_done)
{
    if (!st->progress)
        return 0;
    const double now = util_now_s();
    pr->epochs = st->o->epochs;
    pr->lr = st->lr;
    pr->best_ndcg = st->best_ndcg;
    pr->best_epoch = st->rep->best_epoch;
    pr->examples_per_s = (double)ex_done / (now - t_epoch + 1e-9);
    pr->elapsed_s = now - st->t_start;
    if (pr->end_of_epoch)
        pr->eta_s = (now - st->t_start) / pr->epoch * (st->o->epochs - pr->epoch);
    else
        pr->eta_s = (now - t_epoch) / (double)pr->step *
                    ((double)(pr->steps - pr->step) + (double)(st->o->epochs - pr->epoch) *
                                                          (double)pr->steps);
    /* The budget starts no epoch it cannot finish: training ends by then. */
    const double budget_left = st->o->time_budget - pr->elapsed_s;
    if (st->o->time_budget > 0.0 && !st->o->refit && pr->eta_s > budget_left)
        pr->eta_s = budget_left > 0.0 ? budget_left : 0.0;
    return st->progress(st->pctx, pr);
}

/* Users a validation scores by default: all of them, unless every user
 * against the whole catalog would exceed S_VAL_BUDGET candidate scores
 * (then a fixed sample of that many candidates' worth, at least 1000). */
#define S_VAL_BUDGET 2e8

static uint32_t s_val_users(const attn_train_data *data)
{
    const double all = (double)data->seqs.n_users * (double)data->n_rows;
    if (all <= S_VAL_BUDGET)
        return 0;
    const double n = S_VAL_BUDGET / (double)data->n_rows;
    return n < 1000.0 ? 1000u : (uint32_t)n;
}

/* Validation NDCG@10 of the current parameters (or their average), through
 * the served fast path. */
static int s_validate(attn_tr_state *st, const attn_model *cur, attn_eval_result *r)
{
    const attn_train_data *data = st->data;
    const attn_train_opts *o = st->o;
    attn_model *ex = attn_tr_export(cur);
    attn_eval_model *em = NULL;
    int rc = ex ? attn_eval_model_new(&em, ex, data->emb, data->n_rows, data->ld,
                                      st->param_index, o->threads) : ATTN_ENOMEM;
    if (rc == ATTN_OK) {
        attn_eval_opts eo;
        attn_eval_defaults(&eo);
        eo.split = ATTN_EVAL_VALID;
        eo.protocol = o->val_protocol;
        eo.seed = o->seed;
        eo.max_users = o->val_users ? o->val_users : s_val_users(data);
        rc = attn_eval_run(&data->seqs, &eo, attn_eval_model_score, em, r);
    }
    attn_eval_model_free(&em);
    attn_model_free(&ex);
    return rc;
}

/* Whether an epoch without a better validation counts against --patience.
 * On the cosine only once warm-up is over and the rate has decayed to half
 * its peak: a plateau at a high rate is the rate's noise, not the end of
 * learning.  On ML-1M with a 3,600 s budget (a cosine over all 40 epochs)
 * validation stalled at 0.187-0.188 from epoch 7, patience 5 ended the run
 * at epoch 12 with the rate still at 80% of its peak, and it tested 0.179
 * against the 0.192 the same schedule reaches when it decays in 1,500 s
 * (docs/QUALITY.md). */
static int s_counts_against_patience(const attn_tr_state *st)
{
    return !st->o->cosine ||
           ((double)st->step >= st->warm_steps && st->lr <= 0.5 * st->o->lr);
}

/* Keep the epoch if it validates best (with refit: the last is kept). */
static int s_keep_best(attn_tr_state *st, int epoch, double ep_loss, attn_eval_result *vr)
{
    const attn_model *cur = st->ema ? st->ema : st->md;
    *vr = (attn_eval_result){.hr = NAN, .ndcg = NAN};
    int rc;
    if (!st->o->refit && (rc = s_validate(st, cur, vr)) != ATTN_OK) {
        snprintf(st->why, st->why_len, "epoch %d: validation failed (%s)", epoch,
                 attn_strerror(rc));
        return rc;
    }
    if (!st->o->refit && !(vr->ndcg > st->best_ndcg)) {
        st->bad_epochs += s_counts_against_patience(st);
        return ATTN_OK;
    }
    if (!st->o->refit)
        st->best_ndcg = vr->ndcg;
    attn_model_free(&st->best);
    if (!(st->best = attn_model_clone(cur))) {
        snprintf(st->why, st->why_len, "out of memory keeping the best model");
        return ATTN_ENOMEM;
    }
    attn_train_report *rep = st->rep;
    rep->best_epoch = epoch;
    rep->val_hr = vr->hr;
    rep->val_ndcg = vr->ndcg;
    rep->val_users = vr->users;
    rep->loss = ep_loss;
    st->bad_epochs = 0;
    return ATTN_OK;
}

/* The time budget: would another epoch, as slow as the slowest so far
 * (validation included), end past it?  Refit trains exactly its epochs. */
static int s_out_of_time(attn_tr_state *st, double t_this)
{
    if (t_this > st->slowest_epoch_s)
        st->slowest_epoch_s = t_this;
    if (st->o->time_budget <= 0.0 || st->o->refit || st->rep->epochs_run >= st->o->epochs)
        return 0;
    const double used = util_now_s() - st->t_start;
    if (used + st->slowest_epoch_s <= st->o->time_budget)
        return 0;
    st->rep->out_of_time = 1;
    return 1;
}

/* The schedule in the steps the run really takes.  A batch takes whole
 * chunks until it holds `batch` examples, so an epoch has fewer steps than
 * examples / batch -- half as many when a chunk is twice the batch -- and
 * how many depends on the shuffle.  So warm-up is sized by the first
 * epoch's count, and the cosine's horizon is re-aimed at each epoch's
 * start, which puts its end on the last epoch's last step. */
static void s_schedule(attn_tr_state *st, int epoch, uint64_t steps)
{
    if (epoch == 1)
        st->warm_steps = st->o->warmup * (double)steps;
    st->total_steps = (double)st->step + (double)steps * (double)(st->o->epochs - epoch + 1);
}

int attn_tr_epoch(attn_tr_state *st, int epoch, int *stop)
{
    const uint64_t steps = s_shuffle(st, epoch);
    s_schedule(st, epoch, steps);
    st->run.epoch = (uint64_t)epoch;
    const double t_epoch = util_now_s();
    double loss_sum = 0.0;
    uint64_t ex_done = 0, step = 0;
    for (size_t i0 = 0; i0 < st->n_chunks;) {
        const size_t n_ex = s_batch(st, i0);
        double bl = 0.0;
        int rc = s_step(st, epoch, n_ex, &bl);
        if (rc != ATTN_OK)
            return rc;
        loss_sum += bl * (double)n_ex;
        ex_done += n_ex;
        step++;
        i0 = st->b1;
        attn_train_progress pr = {.epoch = epoch, .step = step, .steps = steps,
                                  .loss = loss_sum / (double)ex_done};
        if (s_report(st, &pr, t_epoch, ex_done)) {
            st->rep->stopped = 1;
            break;
        }
    }
    st->rep->epochs_run = epoch;
    const double ep_loss = ex_done ? loss_sum / (double)ex_done : 0.0;
    attn_eval_result vr;
    int rc = s_keep_best(st, epoch, ep_loss, &vr);
    if (rc != ATTN_OK)
        return rc;
    attn_train_progress pr = {.epoch = epoch, .end_of_epoch = 1, .step = step, .steps = steps,
                              .loss = ep_loss, .val_hr = vr.hr, .val_ndcg = vr.ndcg};
    if (s_report(st, &pr, t_epoch, ex_done))
        st->rep->stopped = 1;
    *stop = st->rep->stopped || (st->o->patience > 0 && st->bad_epochs >= st->o->patience) ||
            s_out_of_time(st, util_now_s() - t_epoch);
    return ATTN_OK;
}
