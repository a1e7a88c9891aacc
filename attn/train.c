/* train.c -- training, in outline: check, plan, epochs, export.
 *
 *   attn_train
 *     check the data and the options
 *     plan          model items, chunks, parameters, buffers   (train_plan.c)
 *     epochs        each: steps (working set -> tables -> chunks -> reduce
 *                   -> backprop -> clip -> schedule -> AdamW), then
 *                   validation and keep-best                    (train_epoch.c)
 *     export        the kept epoch, item biases centred
 *
 * The defaults and the option checks live here too: one place says what
 * every knob means and where it may go.
 */
#include "attn/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/train_run.h"
#include "util/clock.h"

#define S_MAX_THREADS ATTN_TR_MAX_THREADS

void attn_train_defaults(attn_train_opts *o, int d)
{
    memset(o, 0, sizeof *o);
    o->epochs = 40;
    o->m = d;
    o->heads = 2;
    o->l_max = 50;
    o->lr = 3e-3;
    o->warmup = 1.0;
    o->cosine = 1;
    o->weight_decay = 0.01;
    o->clip = 5.0;
    o->dropout = 0.05;
    o->beta1 = 0.9;
    o->beta2 = 0.98;
    o->batch = 256;
    o->neg = 1024;
    o->mask = ATTN_TRAIN_MASK_HISTORY;
    o->residual = 1;
    o->item_bias = 1;
    o->seed = 1;
    o->threads = 2;
    o->patience = 5;
    o->val_protocol = ATTN_EVAL_FULL;
    o->val_users = 0;
    o->chunk = 64;
    o->sa_len = 16;
    o->ffn_dropout = 0.2;
    o->time_budget = 1500.0;
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
    if (!(o->time_budget >= 0.0) || o->time_budget > 1e9)
        S_BAD("time-budget: %g s is out of range 0..1e9", o->time_budget);
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
    if (o->ffn < 0 || o->ffn > ATTN_FFN_MAX || o->ffn % 16)
        S_BAD("ffn: width %d must be a multiple of 16 in 0..%d (0 = none)", o->ffn, ATTN_FFN_MAX);
    if (o->ffn && !o->sa_len)
        S_BAD("ffn: the feed-forward layer works on the self-attention block's rows; "
              "it needs --self-attn above 0");
    if (!(o->ffn_dropout >= 0.0 && o->ffn_dropout < 1.0))
        S_BAD("ffn-dropout: %g is out of range [0, 1)", o->ffn_dropout);
    if (o->ffn && o->m % 8)
        S_BAD("ffn: needs dim-m a multiple of 8, have %d", o->m);
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

/* The model as it will be saved. */
attn_model *attn_tr_export(const attn_model *md)
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
    int rc;
    if ((rc = s_check_data(data, why, why_len)) != ATTN_OK ||
        (rc = attn_train_check_opts(o, data->d, why, why_len)) != ATTN_OK)
        return rc;
    /* With refit the validation targets are training data: every use of
     * the sequences (examples, model items, masks) sees that. */
    attn_train_data own = *data;
    own.seqs.refit = o->refit != 0;
    attn_tr_state st = {.data = &own, .o = o, .progress = progress, .pctx = pctx, .rep = rep,
                        .why = why, .why_len = why_len, .t_start = util_now_s()};
    rc = attn_tr_plan(&st);
    int stop = 0;
    for (int epoch = 1; rc == ATTN_OK && !stop && epoch <= o->epochs; epoch++)
        rc = attn_tr_epoch(&st, epoch, &stop);
    if (rc == ATTN_OK && !st.best) {
        snprintf(why, why_len, "stopped before the first epoch finished: no model");
        rc = ATTN_EINVAL;
    }
    if (rc == ATTN_OK && !(*out = attn_tr_export(st.best))) {
        snprintf(why, why_len, "out of memory exporting the model");
        rc = ATTN_ENOMEM;
    }
    rep->seconds = util_now_s() - st.t_start;
    attn_tr_state_free(&st);
    return rc;
}
