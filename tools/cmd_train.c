/* cmd_train.c -- 'attnctl train DB': learn a model version and store it.
 *
 * A thin main over attn_train (attn/train.h): read the flags, load the
 * catalog and every user's history from the store, train with a progress
 * line on stderr, then write the best epoch's model as a new version with
 * its configuration (hyper-parameters, data size, training time) and
 * validation metrics, and make it active if asked.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "attn/attn.h"
#include "attn/eval.h"
#include "attn/train.h"
#include "store/dataset.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"
#include "util/opt.h"

/* What the command line sets: the trainer's options and the tool's own. */
typedef struct s_args {
    attn_train_opts o;
    const char *db;
    int activate, quiet;
} s_args;

static const char *const s_masks[] = {"none", "history", "user", NULL};
static const int s_mask_values[] = {ATTN_TRAIN_MASK_NONE, ATTN_TRAIN_MASK_HISTORY,
                                    ATTN_TRAIN_MASK_USER};
static const char *const s_protocols[] = {"full", "sampled", NULL};
static const int s_protocol_values[] = {ATTN_EVAL_FULL, ATTN_EVAL_SAMPLED};

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
};

static const util_opt s_opts[] = {
    {"epochs", "N", "most epochs", UTIL_OPT_INT(s_args, o.epochs, 1, 100000)},
    {"dim-m", "M", "attention width", UTIL_OPT_INT(s_args, o.m, 1, 4096),
     .def = "the embedding dimension"},
    {"heads", "H", "heads, dividing M", UTIL_OPT_INT(s_args, o.heads, 1, 4096)},
    {"l-max", "L", "history events per prediction", UTIL_OPT_INT(s_args, o.l_max, 1, 4096)},
    {"self-attn", "W", "history self-attention block: each event's key and\n"
     "value in the context of the W-1 events before it;\n0 = none, half the table memory",
     UTIL_OPT_INT(s_args, o.sa_len, 0, ATTN_SA_MAX)},
    {"ffn", "F", "a feed-forward layer of width F (a multiple of 16)\n"
     "on the block's rows, a second, non-linear layer; 0 = none",
     UTIL_OPT_INT(s_args, o.ffn, 0, ATTN_FFN_MAX)},
    {"ffn-dropout", "P", "drop each of its hidden units with probability P",
     UTIL_OPT_DBL(s_args, o.ffn_dropout, 0, 0.99)},
    {"lr", "X", "peak learning rate", UTIL_OPT_DBL(s_args, o.lr, 1e-9, 9.99)},
    {"batch", "N", "examples per step", UTIL_OPT_INT(s_args, o.batch, 1, 1000000)},
    {"neg", "K", "sampled softmax: K items drawn per step, shared by\n"
     "its examples with the step's targets (a catalog of at\n"
     "most K items trains with full softmax), or ...",
     UTIL_OPT_INT(s_args, o.neg, 1, 100000)},
    {"full-softmax", NULL, "... every item as a candidate, whatever the catalog",
     UTIL_OPT_FLAG(s_args, o.neg, 0)},
    {"no-residual", NULL, "do not learn per-item residuals", UTIL_OPT_FLAG(s_args, o.residual, 0)},
    {"no-item-bias", NULL, "do not learn item biases", UTIL_OPT_FLAG(s_args, o.item_bias, 0)},
    {"weight-decay", "X", "AdamW decoupled weight decay",
     UTIL_OPT_DBL(s_args, o.weight_decay, 0, 1000)},
    {"dropout", "P", "drop each history event with probability P",
     UTIL_OPT_DBL(s_args, o.dropout, 0, 0.99)},
    {"warmup", "E", "linear warm-up over E epochs", UTIL_OPT_DBL(s_args, o.warmup, 0, 1000)},
    {"cosine", NULL, "then decay the rate along a half cosine to 0 at\n"
     "--epochs or at the end of --time-budget, whichever\n"
     "comes first (the default)",
     UTIL_OPT_FLAG(s_args, o.cosine, 1)},
    {"constant", NULL, "... or keep the peak rate after warm-up",
     UTIL_OPT_FLAG(s_args, o.cosine, 0)},
    {"ema", "X", "keep (and save) an exponential moving average of the\n"
     "weights, decay X per step (e.g. 0.999; 0 = off)", UTIL_OPT_DBL(s_args, o.ema, 0, 0.999999)},
    {"clip", "X", "clip the global gradient norm at X, 0 = off",
     UTIL_OPT_DBL(s_args, o.clip, 0, 1e9)},
    {"mask", NULL, "leave out of the negatives (full or sampled) the\n"
     "history's items, all the user's training items, or none",
     UTIL_OPT_ENUM(s_args, o.mask, s_masks, s_mask_values)},
    {"val-protocol", NULL, "validation metric protocol",
     UTIL_OPT_ENUM(s_args, o.val_protocol, s_protocols, s_protocol_values)},
    {"val-users", "N", "validate on every k-th user, about N of them",
     UTIL_OPT_U32(s_args, o.val_users, 0, INT32_MAX),
     .def = "all, or 2e8 / items of them on big catalogs"},
    {"seed", "S", "seed: same seed and threads, same model",
     UTIL_OPT_U64(s_args, o.seed, 0, INT32_MAX)},
    {"threads", "T", "threads", UTIL_OPT_INT(s_args, o.threads, 1, 64)},
    {"patience", "P", "stop after P epochs without improvement (with --cosine,\n"
     "counting only epochs past its midpoint), 0 = never;\n"
     "with --refit the default is 0", UTIL_OPT_INT(s_args, o.patience, 0, 100000)},
    {"time-budget", "S", "start no epoch that would end past S seconds of\n"
     "training (judged by the slowest epoch so far), 0 = no\n"
     "limit; --refit ignores it",
     UTIL_OPT_DBL(s_args, o.time_budget, 0, 1e9)},
    {"chunk", "N", "most targets of one user processed together",
     UTIL_OPT_INT(s_args, o.chunk, 1, 4096)},
    {"refit", NULL, "train on the validation targets too, exactly --epochs\n"
     "epochs with no validation: the final fit once a run with\n"
     "validation has chosen the options (docs/TRAINING.md)", UTIL_OPT_FLAG(s_args, o.refit, 1)},
    {"activate", NULL, "make the new version the one attnd serves",
     UTIL_OPT_FLAG(s_args, activate, 1)},
    {"quiet", NULL, "no progress line", UTIL_OPT_FLAG(s_args, quiet, 1)},
};

static const util_opt_excl s_excl[] = {{"neg", "full-softmax"}, {"cosine", "constant"}};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl train",
    .usage = "DB [options]",
    .about =
        "Learn the attention (W_Q, W_K, W_V, W_O, position bias, item bias, a\n"
        "per-item residual on top of the frozen text embeddings and a history\n"
        "self-attention block) by next-item prediction over every user's\n"
        "time-ordered history; the last two events of each user are held out\n"
        "(validation, test).  Early stopping on validation NDCG@10; the best epoch\n"
        "is saved as a new model version.  docs/TRAINING.md.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
    UTIL_OPT_EXCL(s_excl),
};

static void s_hms(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, len, "?");
    else if (s < 60)
        snprintf(buf, len, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, len, "%dh%02dm", (int)s / 3600, (int)s / 60 % 60);
}

typedef struct s_prog {
    int tty;          /* stderr is a terminal: redraw a live line */
    int quiet;
    double last;      /* last redraw */
    int shown;        /* a live line is on screen */
} s_prog;

static int s_on_progress(void *ctx, const attn_train_progress *p)
{
    s_prog *pr = ctx;
    if (pr->quiet)
        return 0;
    char eta[32];
    s_hms(p->eta_s, eta, sizeof eta);
    if (p->end_of_epoch) {
        if (pr->shown)
            fputs("\r\033[K", stderr);
        pr->shown = 0;
        if (isnan(p->val_ndcg))   /* refit: no validation */
            fprintf(stderr, "epoch %d/%d  loss %.4f  %.0f ex/s  elapsed %.0fs  ETA %s\n",
                    p->epoch, p->epochs, p->loss, p->examples_per_s, p->elapsed_s, eta);
        else
            fprintf(stderr, "epoch %d/%d  loss %.4f  valid HR@10 %.4f NDCG@10 %.4f%s  "
                    "%.0f ex/s  elapsed %.0fs  ETA %s\n", p->epoch, p->epochs, p->loss,
                    p->val_hr, p->val_ndcg, p->best_epoch == p->epoch ? " *" : "  ",
                    p->examples_per_s, p->elapsed_s, eta);
        return 0;
    }
    double now = util_now_s();
    if (!pr->tty || now - pr->last < 0.25)
        return 0;
    pr->last = now;
    fprintf(stderr, "\r\033[Kepoch %d/%d  step %llu/%llu  loss %.4f  %.0f ex/s  ETA %s",
            p->epoch, p->epochs, (unsigned long long)p->step, (unsigned long long)p->steps,
            p->loss, p->examples_per_s, eta);
    fflush(stderr);
    pr->shown = 1;
    return 0;
}

static char *s_config(const attn_train_opts *o, const attn_train_report *rep,
                      const store_dataset *ds, const store_catalog *cat)
{
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return NULL;
    cJSON_AddStringToObject(c, "trainer", "attn_train 1");
    cJSON_AddStringToObject(c, "task", o->refit ? "next-item, leave-last-out (refit)" :
                                                  "next-item, leave-last-two-out");
    cJSON_AddBoolToObject(c, "refit", o->refit);
    cJSON_AddStringToObject(c, "loss", o->neg > 0 && (int64_t)o->neg < rep->items
                                       ? "sampled softmax (shared negatives)" : "full softmax");
    cJSON_AddNumberToObject(c, "neg", o->neg);
    static const char *masks[] = {"none", "history", "user"};
    cJSON_AddStringToObject(c, "mask", masks[o->mask]);
    cJSON_AddNumberToObject(c, "epochs", o->epochs);
    cJSON_AddNumberToObject(c, "epochs_run", rep->epochs_run);
    cJSON_AddNumberToObject(c, "best_epoch", rep->best_epoch);
    cJSON_AddNumberToObject(c, "lr", o->lr);
    cJSON_AddNumberToObject(c, "warmup_epochs", o->warmup);
    /* Since the cosine may follow the clock, say which horizon it had. */
    cJSON_AddStringToObject(c, "lr_schedule",
                            !o->cosine ? "warmup+constant"
                            : o->time_budget > 0.0 && !o->refit ? "warmup+cosine(epochs|budget)"
                                                                : "warmup+cosine(epochs)");
    cJSON_AddNumberToObject(c, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(c, "ema", o->ema);
    cJSON_AddNumberToObject(c, "clip", o->clip);
    cJSON_AddNumberToObject(c, "dropout", o->dropout);
    cJSON_AddNumberToObject(c, "beta1", o->beta1);
    cJSON_AddNumberToObject(c, "beta2", o->beta2);
    cJSON_AddNumberToObject(c, "batch", o->batch);
    cJSON_AddNumberToObject(c, "chunk", o->chunk);
    cJSON_AddNumberToObject(c, "self_attn", o->sa_len);
    cJSON_AddNumberToObject(c, "ffn", o->ffn);
    cJSON_AddNumberToObject(c, "ffn_dropout", o->ffn_dropout);
    cJSON_AddBoolToObject(c, "residual", o->residual);
    cJSON_AddBoolToObject(c, "item_bias", o->item_bias);
    cJSON_AddNumberToObject(c, "seed", (double)o->seed);
    cJSON_AddNumberToObject(c, "threads", o->threads);
    cJSON_AddNumberToObject(c, "patience", o->patience);
    cJSON_AddNumberToObject(c, "time_budget", o->time_budget);
    cJSON_AddBoolToObject(c, "out_of_time", rep->out_of_time);
    cJSON_AddStringToObject(c, "val_protocol",
                            o->val_protocol == ATTN_EVAL_FULL ? "full" : "sampled");
    cJSON_AddNumberToObject(c, "val_users", o->val_users);
    cJSON_AddNumberToObject(c, "train_seconds", round(rep->seconds * 10.0) / 10.0);
    cJSON_AddStringToObject(c, "kernels", attn_train_kernel_name());
    cJSON *data = cJSON_AddObjectToObject(c, "data");
    if (data) {
        cJSON_AddNumberToObject(data, "users", ds->seqs.n_users);
        cJSON_AddNumberToObject(data, "users_trained", rep->users);
        cJSON_AddNumberToObject(data, "users_single_event", rep->users_single);
        cJSON_AddNumberToObject(data, "users_2_3_events", rep->users_short);
        cJSON_AddNumberToObject(data, "events", (double)ds->n_events);
        cJSON_AddNumberToObject(data, "examples", (double)rep->examples);
        cJSON_AddNumberToObject(data, "catalog_items", cat->n);
        cJSON_AddNumberToObject(data, "model_items", (double)rep->items);
        cJSON_AddNumberToObject(data, "catalog_version", (double)cat->version);
    }
    char *txt = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return txt;
}

static char *s_metrics(const attn_train_opts *o, const attn_train_report *rep)
{
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return NULL;
    cJSON *v = o->refit ? NULL : cJSON_AddObjectToObject(c, "valid");
    if (o->refit)
        cJSON_AddNullToObject(c, "valid");   /* validation targets were training data */
    if (v) {
        cJSON_AddStringToObject(v, "protocol",
                                o->val_protocol == ATTN_EVAL_FULL ? "full" : "sampled");
        cJSON_AddNumberToObject(v, "hr@10", round(rep->val_hr * 1e6) / 1e6);
        cJSON_AddNumberToObject(v, "ndcg@10", round(rep->val_ndcg * 1e6) / 1e6);
        cJSON_AddNumberToObject(v, "users", rep->val_users);
    }
    cJSON_AddNumberToObject(c, "train_loss", round(rep->loss * 1e6) / 1e6);
    char *txt = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return txt;
}

/* ---- the run: plan, then steps ----------------------------------------------
 *   1. s_load: the database, its catalog and every user's history
 *   2. s_complete_opts: what the catalog decides (--dim-m), checked whole
 *   3. s_fit: attn_train with a progress line
 *   4. s_save: the best model as a new version, with its config and metrics
 * Each step says what went wrong itself and returns the exit status. */

typedef struct s_run {
    store *db;
    store_catalog *cat;
    store_dataset *ds;
    attn_model *md;             /* the trained model */
    attn_train_report rep;
} s_run;

static void s_run_free(s_run *r)
{
    attn_model_free(&r->md);
    store_dataset_free(&r->ds);
    store_catalog_free(&r->cat);
    store_close(&r->db);
}

static int s_load(s_run *r, const char *path)
{
    store_err err;
    if (store_open(&r->db, path, STORE_READWRITE, 10000, &err) != STORE_OK ||
        store_catalog_load(r->db, &r->cat, &err) != STORE_OK) {
        fprintf(stderr, "attnctl train: %s\n", err.msg);
        return 1;
    }
    if (r->cat->n == 0) {
        fprintf(stderr, "attnctl train: %s: no embedded items (%u without an embedding): run "
                        "'attnctl embed %s' first\n", path, r->cat->n_unembedded, path);
        return 1;
    }
    if (store_dataset_load(r->db, r->cat, &r->ds, &err) != STORE_OK) {
        fprintf(stderr, "attnctl train: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* --dim-m defaults to the catalog's dimension; --refit has nothing to stop
 * early on, so its patience is 0 unless asked.  Then the whole set is
 * checked (heads dividing m, weight decay times lr, ...). */
static int s_complete_opts(s_args *a, uint64_t given, int dim)
{
    if (!util_opt_given(&s_cmd, given, "dim-m"))
        a->o.m = dim;
    if (a->o.refit && !util_opt_given(&s_cmd, given, "patience"))
        a->o.patience = 0;
    char why[512];
    if (attn_train_check_opts(&a->o, dim, why, sizeof why) != ATTN_OK) {
        fprintf(stderr, "attnctl train: %s\n", why);
        return 2;
    }
    return 0;
}

static void s_banner(const s_run *r, const s_args *a)
{
    const attn_train_opts *o = &a->o;
    fprintf(stderr, "attnctl train: %s: %u items (d %d), %u users, %llu events; "
                    "m %d, %d heads, l_max %d, %s, %d threads, %s kernels\n",
            a->db, r->cat->n, r->cat->dim, r->ds->seqs.n_users,
            (unsigned long long)r->ds->n_events, o->m, o->heads, o->l_max,
            o->neg > 0 && (uint32_t)o->neg < r->cat->n ? "sampled softmax" : "full softmax",
            o->threads, attn_train_kernel_name());
    if (r->ds->n_unembedded)
        fprintf(stderr, "attnctl train: note: %llu events of items without an embedding "
                        "are left out\n", (unsigned long long)r->ds->n_unembedded);
}

static int s_fit(s_run *r, const s_args *a)
{
    if (!a->quiet)
        s_banner(r, a);
    const store_catalog *cat = r->cat;
    attn_train_data data = {.emb = cat->emb, .n_rows = cat->n, .ld = (size_t)cat->dim,
                            .d = cat->dim, .item_id = cat->item_id, .seqs = r->ds->seqs};
    s_prog prog = {.tty = isatty(STDERR_FILENO), .quiet = a->quiet};
    char why[512];
    const attn_train_report *rep = &r->rep;
    int st = attn_train(&data, &a->o, s_on_progress, &prog, &r->md, &r->rep, why, sizeof why);
    if (rep->users_single && !a->quiet)
        fprintf(stderr, "attnctl train: skipped %u user%s with a single event (nothing to "
                        "predict from)\n", rep->users_single, rep->users_single == 1 ? "" : "s");
    if (rep->users_short && !a->quiet)
        fprintf(stderr, "attnctl train: %u user%s with 2-%d events give no training example "
                        "(their last %s held out)\n", rep->users_short,
                rep->users_short == 1 ? "" : "s", a->o.refit ? 2 : 3,
                a->o.refit ? "event is" : "two events are");
    if (st != ATTN_OK) {
        fprintf(stderr, "attnctl train: %s: %s\n", a->db, why);
        return 1;
    }
    return 0;
}

static void s_summary(const s_run *r, const s_args *a, int64_t version)
{
    const attn_train_report *rep = &r->rep;
    const char *active = a->activate ? " (active)" : "";
    if (a->o.refit)
        printf("%s: model version %lld%s: refit, %d epochs on training and validation "
               "targets (no validation); %llu examples, %lld items, trained in %.1f s\n",
               a->db, (long long)version, active, rep->epochs_run,
               (unsigned long long)rep->examples, (long long)rep->items, rep->seconds);
    else
        printf("%s: model version %lld%s: best epoch %d of %d, valid (%s) HR@10 %.4f NDCG@10 "
               "%.4f; %llu examples, %lld items, trained in %.1f s\n", a->db,
               (long long)version, active, rep->best_epoch, rep->epochs_run,
               a->o.val_protocol == ATTN_EVAL_FULL ? "full" : "sampled", rep->val_hr,
               rep->val_ndcg, (unsigned long long)rep->examples, (long long)rep->items,
               rep->seconds);
    if (rep->out_of_time)
        printf("stopped by the time budget (--time-budget %g s) after epoch %d of at most %d\n",
               a->o.time_budget, rep->epochs_run, a->o.epochs);
    if (!a->activate)
        printf("make it the served model with: attnctl model activate %s %lld\n", a->db,
               (long long)version);
}

static int s_save(s_run *r, const s_args *a)
{
    char *config = s_config(&a->o, &r->rep, r->ds, r->cat);
    char *metrics = s_metrics(&a->o, &r->rep);
    int rc = 1;
    int64_t version = -1;
    store_err err;
    if (!config || !metrics)
        fprintf(stderr, "attnctl train: out of memory writing the model's config\n");
    else if (store_model_save(r->db, r->md, config, metrics, a->activate, &version, &err) !=
             STORE_OK)
        fprintf(stderr, "attnctl train: %s\n", err.msg);
    else {
        s_summary(r, a, version);
        rc = 0;
    }
    free(config);
    free(metrics);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    s_args a = {0};
    attn_train_defaults(&a.o, 0);   /* m comes from the catalog (s_complete_opts) */
    uint64_t given;
    int rc = util_opt_main(&s_cmd, argc, argv, &a, &given);
    if (rc >= 0)
        return rc;
    s_run r = {0};
    rc = s_load(&r, a.db);
    if (rc == 0)
        rc = s_complete_opts(&a, given, r.cat->dim);
    if (rc == 0)
        rc = s_fit(&r, &a);
    if (rc == 0)
        rc = s_save(&r, &a);
    s_run_free(&r);
    return rc;
}
