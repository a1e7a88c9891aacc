/* cmd_train.c -- 'attnctl train DB': learn a model version and store it.
 *
 * A thin main over attn_train (attn/train.h): read the flags, load the
 * catalog and every user's history from the store, train with a progress
 * line on stderr, then write the best epoch's model as a new version with
 * its configuration (hyper-parameters, data size, training time) and
 * validation metrics, and make it active if asked.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "attn/attn.h"
#include "attn/eval.h"
#include "attn/train.h"
#include "store/dataset.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"

static void s_usage(FILE *out)
{
    fprintf(out,
        "usage: attnctl train DB [options]\n"
        "Learn the attention (W_Q, W_K, W_V, W_O, position bias, item bias, a\n"
        "per-item residual on top of the frozen text embeddings and a history\n"
        "self-attention block) by next-item prediction over every user's\n"
        "time-ordered history; the last two events of each user are held out\n"
        "(validation, test).  Early stopping on validation NDCG@10; the best epoch\n"
        "is saved as a new model version.  docs/TRAINING.md.\n"
        "\n"
        "  --epochs N         most epochs (default 40)\n"
        "  --dim-m M          attention width (default: the embedding dimension)\n"
        "  --heads H          heads, dividing M (default 2)\n"
        "  --l-max L          history events per prediction (default 50)\n"
        "  --self-attn W      history self-attention block: each event's key and\n"
        "                     value in the context of the W-1 events before it\n"
        "                     (default 8; 0 = none, half the table memory)\n"
        "  --lr X             peak learning rate (default 0.002)\n"
        "  --batch N          examples per step (default 256)\n"
        "  --neg K            K sampled negatives per example instead of ...\n"
        "  --full-softmax     ... every item as a candidate (the default)\n"
        "  --no-residual      do not learn per-item residuals\n"
        "  --no-item-bias     do not learn item biases\n"
        "  --weight-decay X   AdamW decoupled weight decay (default 0.01)\n"
        "  --dropout P        drop each history event with probability P (default 0.05)\n"
        "  --warmup E         linear warm-up over E epochs (default 1)\n"
        "  --cosine           then decay the rate along a half cosine to 0 at --epochs\n"
        "  --ema X            keep (and save) an exponential moving average of the\n"
        "                     weights, decay X per step (e.g. 0.999; default off)\n"
        "  --clip X           clip the global gradient norm at X, 0 = off (default 5)\n"
        "  --mask history|user|none   full softmax: leave out of the negatives the\n"
        "                     history's items (default), all the user's training\n"
        "                     items, or none\n"
        "  --val-protocol full|sampled   validation metric protocol (default full)\n"
        "  --seed S           seed (default 1): same seed and threads, same model\n"
        "  --threads T        threads (default 2)\n"
        "  --patience P       stop after P epochs without improvement, 0 = never (default 5)\n"
        "  --refit            train on the validation targets too, exactly --epochs\n"
        "                     epochs with no validation: the final fit once a run with\n"
        "                     validation has chosen the options (docs/TRAINING.md)\n"
        "  --activate         make the new version the one attnd serves\n"
        "  --quiet            no progress line\n");
}

static int s_long(const char *flag, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "attnctl train: %s: '%s' is not a whole number in %ld..%ld\n", flag,
                text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int s_double(const char *flag, const char *text, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "attnctl train: %s: '%s' is not a number in %g..%g\n", flag, text, min,
                max);
        return -1;
    }
    *out = v;
    return 0;
}

/* A flag whose value is one of names[]: *out = its index. */
static int s_choice(const char *flag, const char *text, const char *const *names, int n,
                    int *out)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(text, names[i])) {
            *out = i;
            return 0;
        }
    fprintf(stderr, "attnctl train: %s: '%s', expected", flag, text);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%s %s", i == 0 ? "" : i == n - 1 ? " or" : ",", names[i]);
    fputc('\n', stderr);
    return -1;
}

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
    cJSON_AddStringToObject(c, "loss", o->neg > 0 ? "sampled softmax" : "full softmax");
    cJSON_AddNumberToObject(c, "neg", o->neg);
    static const char *masks[] = {"none", "history", "user"};
    cJSON_AddStringToObject(c, "mask", masks[o->mask]);
    cJSON_AddNumberToObject(c, "epochs", o->epochs);
    cJSON_AddNumberToObject(c, "epochs_run", rep->epochs_run);
    cJSON_AddNumberToObject(c, "best_epoch", rep->best_epoch);
    cJSON_AddNumberToObject(c, "lr", o->lr);
    cJSON_AddNumberToObject(c, "warmup_epochs", o->warmup);
    cJSON_AddStringToObject(c, "lr_schedule", o->cosine ? "warmup+cosine" : "warmup+constant");
    cJSON_AddNumberToObject(c, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(c, "ema", o->ema);
    cJSON_AddNumberToObject(c, "clip", o->clip);
    cJSON_AddNumberToObject(c, "dropout", o->dropout);
    cJSON_AddNumberToObject(c, "beta1", o->beta1);
    cJSON_AddNumberToObject(c, "beta2", o->beta2);
    cJSON_AddNumberToObject(c, "batch", o->batch);
    cJSON_AddNumberToObject(c, "chunk", o->chunk);
    cJSON_AddNumberToObject(c, "self_attn", o->sa_len);
    cJSON_AddBoolToObject(c, "residual", o->residual);
    cJSON_AddBoolToObject(c, "item_bias", o->item_bias);
    cJSON_AddNumberToObject(c, "seed", (double)o->seed);
    cJSON_AddNumberToObject(c, "threads", o->threads);
    cJSON_AddNumberToObject(c, "patience", o->patience);
    cJSON_AddStringToObject(c, "val_protocol",
                            o->val_protocol == ATTN_EVAL_FULL ? "full" : "sampled");
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

int cmd_train(int argc, char **argv)
{
    enum {
        O_EPOCHS = 256, O_DIM_M, O_HEADS, O_L_MAX, O_LR, O_BATCH, O_NEG, O_FULL, O_NO_RES,
        O_NO_IBIAS, O_WD, O_DROPOUT, O_WARMUP, O_CLIP, O_MASK, O_VAL, O_SEED, O_THREADS,
        O_PATIENCE, O_ACTIVATE, O_QUIET, O_CHUNK, O_COSINE, O_EMA, O_REFIT, O_SA, O_HELP,
    };
    static const struct option opts[] = {
        {"epochs", required_argument, NULL, O_EPOCHS},
        {"dim-m", required_argument, NULL, O_DIM_M},
        {"heads", required_argument, NULL, O_HEADS},
        {"l-max", required_argument, NULL, O_L_MAX},
        {"lr", required_argument, NULL, O_LR},
        {"batch", required_argument, NULL, O_BATCH},
        {"neg", required_argument, NULL, O_NEG},
        {"full-softmax", no_argument, NULL, O_FULL},
        {"no-residual", no_argument, NULL, O_NO_RES},
        {"no-item-bias", no_argument, NULL, O_NO_IBIAS},
        {"weight-decay", required_argument, NULL, O_WD},
        {"dropout", required_argument, NULL, O_DROPOUT},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"clip", required_argument, NULL, O_CLIP},
        {"mask", required_argument, NULL, O_MASK},
        {"val-protocol", required_argument, NULL, O_VAL},
        {"seed", required_argument, NULL, O_SEED},
        {"threads", required_argument, NULL, O_THREADS},
        {"patience", required_argument, NULL, O_PATIENCE},
        {"activate", no_argument, NULL, O_ACTIVATE},
        {"quiet", no_argument, NULL, O_QUIET},
        {"chunk", required_argument, NULL, O_CHUNK},
        {"cosine", no_argument, NULL, O_COSINE},
        {"ema", required_argument, NULL, O_EMA},
        {"refit", no_argument, NULL, O_REFIT},
        {"self-attn", required_argument, NULL, O_SA},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    /* Flags are kept raw until the dimension is known (--dim-m defaults to d). */
    long epochs = -1, dim_m = -1, heads = -1, l_max = -1, batch = -1, neg = -1, seed = -1;
    long threads = -1, patience = -1, chunk = -1, sa = -1;
    double lr = -1, wd = -1, dropout = -1, warmup = -1, clip = -1, ema = -1;
    int full = 0, no_res = 0, no_ibias = 0, mask = -1, activate = 0, quiet = 0, val = -1;
    int cosine = 0, refit = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_EPOCHS: bad = s_long("--epochs", optarg, 1, 100000, &epochs); break;
        case O_DIM_M: bad = s_long("--dim-m", optarg, 1, 4096, &dim_m); break;
        case O_HEADS: bad = s_long("--heads", optarg, 1, 4096, &heads); break;
        case O_L_MAX: bad = s_long("--l-max", optarg, 1, 4096, &l_max); break;
        case O_LR: bad = s_double("--lr", optarg, 1e-9, 9.99, &lr); break;
        case O_BATCH: bad = s_long("--batch", optarg, 1, 1000000, &batch); break;
        case O_NEG: bad = s_long("--neg", optarg, 1, 100000, &neg); break;
        case O_FULL: full = 1; break;
        case O_NO_RES: no_res = 1; break;
        case O_NO_IBIAS: no_ibias = 1; break;
        case O_WD: bad = s_double("--weight-decay", optarg, 0, 1000, &wd); break;
        case O_DROPOUT: bad = s_double("--dropout", optarg, 0, 0.99, &dropout); break;
        case O_WARMUP: bad = s_double("--warmup", optarg, 0, 1000, &warmup); break;
        case O_CLIP: bad = s_double("--clip", optarg, 0, 1e9, &clip); break;
        case O_MASK: {
            static const char *const names[] = {"none", "history", "user"};
            bad = s_choice("--mask", optarg, names, 3, &mask);
            break;
        }
        case O_VAL: {
            /* index = enum attn_eval_protocol */
            static const char *const names[] = {"sampled", "full"};
            bad = s_choice("--val-protocol", optarg, names, 2, &val);
            break;
        }
        case O_SEED: bad = s_long("--seed", optarg, 0, INT32_MAX, &seed); break;
        case O_THREADS: bad = s_long("--threads", optarg, 1, 64, &threads); break;
        case O_PATIENCE: bad = s_long("--patience", optarg, 0, 100000, &patience); break;
        case O_CHUNK: bad = s_long("--chunk", optarg, 1, 4096, &chunk); break;
        case O_ACTIVATE: activate = 1; break;
        case O_COSINE: cosine = 1; break;
        case O_REFIT: refit = 1; break;
        case O_SA: bad = s_long("--self-attn", optarg, 0, ATTN_SA_MAX, &sa); break;
        case O_EMA: bad = s_double("--ema", optarg, 0, 0.999999, &ema); break;
        case O_QUIET: quiet = 1; break;
        case 'h':
        case O_HELP:
            s_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "attnctl train: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            s_usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
    }
    if (optind != argc - 1) {
        s_usage(stderr);
        return 2;
    }
    if (full && neg > 0) {
        fprintf(stderr, "attnctl train: --neg and --full-softmax exclude each other\n");
        return 2;
    }
    const char *path = argv[optind];

    int rc = 1;
    store *db = NULL;
    store_catalog *cat = NULL;
    store_dataset *ds = NULL;
    attn_model *md = NULL;
    char *config = NULL, *metrics = NULL;
    store_err err;
    if (store_open(&db, path, STORE_READWRITE, 10000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl train: %s\n", err.msg);
        goto out;
    }
    if (store_catalog_load(db, &cat, &err) != STORE_OK) {
        fprintf(stderr, "attnctl train: %s\n", err.msg);
        goto out;
    }
    if (cat->n == 0) {
        fprintf(stderr, "attnctl train: %s: no embedded items (%u without an embedding): run "
                        "'attnctl embed %s' first\n", path, cat->n_unembedded, path);
        goto out;
    }
    if (store_dataset_load(db, cat, &ds, &err) != STORE_OK) {
        fprintf(stderr, "attnctl train: %s\n", err.msg);
        goto out;
    }

    attn_train_opts o;
    attn_train_defaults(&o, cat->dim);
    if (epochs > 0) o.epochs = (int)epochs;
    if (dim_m > 0) o.m = (int)dim_m;
    if (heads > 0) o.heads = (int)heads;
    if (l_max > 0) o.l_max = (int)l_max;
    if (lr > 0) o.lr = lr;
    if (batch > 0) o.batch = (int)batch;
    if (neg > 0) o.neg = (int)neg;
    if (full) o.neg = 0;
    if (no_res) o.residual = 0;
    if (no_ibias) o.item_bias = 0;
    if (mask >= 0) o.mask = mask;
    if (wd >= 0) o.weight_decay = wd;
    if (dropout >= 0) o.dropout = dropout;
    if (warmup >= 0) o.warmup = warmup;
    if (clip >= 0) o.clip = clip;
    if (val >= 0) o.val_protocol = val;
    if (seed >= 0) o.seed = (uint64_t)seed;
    if (threads > 0) o.threads = (int)threads;
    if (patience >= 0) o.patience = (int)patience;
    if (chunk > 0) o.chunk = (int)chunk;
    if (cosine) o.cosine = 1;
    if (ema >= 0) o.ema = ema;
    if (sa >= 0) o.sa_len = (int)sa;
    if (refit) {
        o.refit = 1;
        if (patience < 0)
            o.patience = 0;   /* nothing to stop early on */
    }
    char why[512];
    if (attn_train_check_opts(&o, cat->dim, why, sizeof why) != ATTN_OK) {
        fprintf(stderr, "attnctl train: %s\n", why);
        rc = 2;
        goto out;
    }

    if (!quiet) {
        fprintf(stderr, "attnctl train: %s: %u items (d %d), %u users, %llu events; "
                        "m %d, %d heads, l_max %d, %s, %d threads, %s kernels\n",
                path, cat->n, cat->dim, ds->seqs.n_users, (unsigned long long)ds->n_events,
                o.m, o.heads, o.l_max, o.neg ? "sampled softmax" : "full softmax", o.threads,
                attn_train_kernel_name());
        if (ds->n_unembedded)
            fprintf(stderr, "attnctl train: note: %llu events of items without an embedding "
                            "are left out\n", (unsigned long long)ds->n_unembedded);
    }
    attn_train_data data = {.emb = cat->emb, .n_rows = cat->n, .ld = (size_t)cat->dim,
                            .d = cat->dim, .item_id = cat->item_id, .seqs = ds->seqs};
    s_prog prog = {.tty = isatty(STDERR_FILENO), .quiet = quiet};
    attn_train_report rep;
    int st = attn_train(&data, &o, s_on_progress, &prog, &md, &rep, why, sizeof why);
    if (rep.users_single && !quiet)
        fprintf(stderr, "attnctl train: skipped %u user%s with a single event (nothing to "
                        "predict from)\n", rep.users_single, rep.users_single == 1 ? "" : "s");
    if (rep.users_short && !quiet)
        fprintf(stderr, "attnctl train: %u user%s with 2-%d events give no training example "
                        "(their last %s held out)\n", rep.users_short,
                rep.users_short == 1 ? "" : "s", o.refit ? 2 : 3,
                o.refit ? "event is" : "two events are");
    if (st != ATTN_OK) {
        fprintf(stderr, "attnctl train: %s: %s\n", path, why);
        goto out;
    }
    config = s_config(&o, &rep, ds, cat);
    metrics = s_metrics(&o, &rep);
    if (!config || !metrics) {
        fprintf(stderr, "attnctl train: out of memory writing the model's config\n");
        goto out;
    }
    int64_t version = -1;
    if (store_model_save(db, md, config, metrics, activate, &version, &err) != STORE_OK) {
        fprintf(stderr, "attnctl train: %s\n", err.msg);
        goto out;
    }
    if (o.refit)
        printf("%s: model version %lld%s: refit, %d epochs on training and validation "
               "targets (no validation); %llu examples, %lld items, trained in %.1f s\n", path,
               (long long)version, activate ? " (active)" : "", rep.epochs_run,
               (unsigned long long)rep.examples, (long long)rep.items, rep.seconds);
    else
        printf("%s: model version %lld%s: best epoch %d of %d, valid (%s) HR@10 %.4f NDCG@10 "
               "%.4f; %llu examples, %lld items, trained in %.1f s\n", path, (long long)version,
               activate ? " (active)" : "", rep.best_epoch, rep.epochs_run,
               o.val_protocol == ATTN_EVAL_FULL ? "full" : "sampled", rep.val_hr, rep.val_ndcg,
               (unsigned long long)rep.examples, (long long)rep.items, rep.seconds);
    if (!activate)
        printf("make it the served model with: attnctl model activate %s %lld\n", path,
               (long long)version);
    rc = 0;
out:
    free(config);
    free(metrics);
    attn_model_free(&md);
    store_dataset_free(&ds);
    store_catalog_free(&cat);
    store_close(&db);
    return rc;
}
