/* cmd_eval.c -- 'attnctl eval DB': ranking quality beside the baselines.
 *
 * A thin main: load the catalog and every user's history from the store,
 * the model version asked for and the identity model (version 0), then run
 * each method through attn_eval_run under both protocols and print one
 * table (or JSON).  The model rows are scored by the daemon's fast path
 * (attn_eval_model), so the table measures what attnd serves.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "attn/attn.h"
#include "attn/eval.h"
#include "store/dataset.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"

#define S_MAX_SEEDS 100

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: attnctl eval DB [--model V] [--json] [--seeds N] [options]\n"
            "Leave-one-out ranking quality: each user's last event is the target, the\n"
            "events before it the history.  HR@10 and NDCG@10 under two protocols:\n"
            "  sampled  the target among 100 items the user never interacted with,\n"
            "           drawn uniformly (mean and sd over --seeds draws)\n"
            "  full     the target among the whole catalog minus the user's history\n"
            "beside the baselines random, popularity, centroid, transition and the\n"
            "identity model (version 0).  See docs/QUALITY.md.\n"
            "\n"
            "  --model V     model version to measure (default: the active one)\n"
            "  --json        one JSON object: protocol -> method -> metrics\n"
            "  --seeds N     negative draws for the sampled protocol (default 3)\n"
            "  --seed S      first seed (default 1; draws use S, S+1, ...)\n"
            "  --neg N       sampled negatives per user (default 100)\n"
            "  --split test|valid   which target (default test)\n"
            "  --threads T   threads for building the model's tables (default 2)\n"
            "  --window N    transition baseline: recent items that vote (default 8)\n"
            "  --decay X     transition baseline: weight per step of distance (default 0.5)\n");
}

static int s_int(const char *flag, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "attnctl eval: %s: '%s' is not a whole number in %ld..%ld\n", flag,
                text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* One method: a scorer and its context. */
typedef struct s_method {
    const char *name;
    attn_eval_fn fn;
    void *ctx;
} s_method;

#define S_N_METHODS 6

/* Results of one method under one protocol, over seeds. */
typedef struct s_cell {
    double hr[S_MAX_SEEDS], ndcg[S_MAX_SEEDS];
    int n;
    attn_eval_result last;
} s_cell;

static void s_mean_sd(const double *x, int n, double *mean, double *sd)
{
    double m = 0.0, q = 0.0;
    for (int i = 0; i < n; i++)
        m += x[i];
    m /= n;
    for (int i = 0; i < n; i++)
        q += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

/* 1 if version was trained with --refit (its config says so), 0 if not,
 * -1 (said) on error. */
static int s_model_refit(store *db, int64_t version)
{
    store_err err;
    store_model_info *list = NULL;
    size_t n = 0;
    if (store_model_list(db, &list, &n, &err) != STORE_OK) {
        fprintf(stderr, "attnctl eval: %s\n", err.msg);
        return -1;
    }
    int refit = 0;
    for (size_t i = 0; i < n; i++)
        if (list[i].version == version && list[i].config) {
            cJSON *c = cJSON_Parse(list[i].config);
            refit = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "refit"));
            cJSON_Delete(c);
        }
    store_model_list_free(&list, n);
    return refit;
}

static int s_load_model(store *db, int64_t version, const store_catalog *cat, attn_model **md,
                        attn_eval_model **em, int threads)
{
    store_err err;
    if (store_model_load(db, version, md, &err) != STORE_OK) {
        if (err.code == STORE_ERR_NOTFOUND && version != STORE_MODEL_ACTIVE)
            fprintf(stderr, "attnctl eval: model version %lld does not exist (%s); "
                            "'attnctl model list %s' shows the versions\n",
                    (long long)version, err.msg, store_path(db));
        else
            fprintf(stderr, "attnctl eval: %s\n", err.msg);
        return -1;
    }
    if ((*md)->d != cat->dim) {
        fprintf(stderr, "attnctl eval: model version %lld has dimension %d but the catalog "
                        "has %d\n", (long long)(*md)->version, (*md)->d, cat->dim);
        return -1;
    }
    int64_t *pi = attn_eval_param_index(*md, cat->item_id, cat->n);
    if (!pi) {
        fprintf(stderr, "attnctl eval: out of memory\n");
        return -1;
    }
    int st = attn_eval_model_new(em, *md, cat->emb, cat->n, (size_t)cat->dim, pi, threads);
    free(pi);
    if (st != ATTN_OK) {
        fprintf(stderr, "attnctl eval: model version %lld: cannot build its scoring tables (%s)\n",
                (long long)(*md)->version, attn_strerror(st));
        return -1;
    }
    return 0;
}

static void s_print_json(s_cell cells[2][S_N_METHODS], const s_method *m)
{
    static const char *proto[2] = {"sampled", "full"};
    printf("{");
    for (int p = 0; p < 2; p++) {
        printf("%s\"%s\":{", p ? "," : "", proto[p]);
        for (int i = 0; i < S_N_METHODS; i++) {
            double hr, hr_sd, nd, nd_sd;
            s_mean_sd(cells[p][i].hr, cells[p][i].n, &hr, &hr_sd);
            s_mean_sd(cells[p][i].ndcg, cells[p][i].n, &nd, &nd_sd);
            printf("%s\"%s\":{\"hr@10\":%.6f,\"ndcg@10\":%.6f", i ? "," : "", m[i].name, hr,
                   nd);
            if (p == 0)
                printf(",\"hr@10_sd\":%.6f,\"ndcg@10_sd\":%.6f", hr_sd, nd_sd);
            printf("}");
        }
        printf("}");
    }
    printf("}\n");
}

static void s_print_table(s_cell cells[2][S_N_METHODS], const s_method *m, int n_seeds,
                          int n_neg)
{
    printf("%-9s %-11s %-17s %-17s\n", "protocol", "method", "HR@10", "NDCG@10");
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < S_N_METHODS; i++) {
            double hr, hr_sd, nd, nd_sd;
            s_mean_sd(cells[p][i].hr, cells[p][i].n, &hr, &hr_sd);
            s_mean_sd(cells[p][i].ndcg, cells[p][i].n, &nd, &nd_sd);
            if (p == 0)
                printf("%-9s %-11s %.4f ± %.4f   %.4f ± %.4f\n", "sampled", m[i].name, hr,
                       hr_sd, nd, nd_sd);
            else
                printf("%-9s %-11s %.4f            %.4f\n", "full", m[i].name, hr, nd);
        }
    printf("sampled: %d negatives, mean ± sd over %d seed%s; full: every item but the "
           "user's history\n", n_neg, n_seeds, n_seeds == 1 ? "" : "s");
}

int cmd_eval(int argc, char **argv)
{
    enum { O_MODEL = 256, O_JSON, O_SEEDS, O_SEED, O_NEG, O_SPLIT, O_THREADS, O_WINDOW, O_DECAY,
           O_HELP };
    static const struct option opts[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"json", no_argument, NULL, O_JSON},
        {"seeds", required_argument, NULL, O_SEEDS},
        {"seed", required_argument, NULL, O_SEED},
        {"neg", required_argument, NULL, O_NEG},
        {"split", required_argument, NULL, O_SPLIT},
        {"threads", required_argument, NULL, O_THREADS},
        {"window", required_argument, NULL, O_WINDOW},
        {"decay", required_argument, NULL, O_DECAY},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    long version = STORE_MODEL_ACTIVE, n_seeds = 3, seed = 1, n_neg = 100, threads = 2;
    int json = 0, split = ATTN_EVAL_TEST;
    attn_eval_base_opts bo = {.window = 8, .decay = 0.5};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        long v;
        switch (c) {
        case O_MODEL:
            if (s_int("--model", optarg, 0, INT32_MAX, &version))
                return 2;
            break;
        case O_JSON: json = 1; break;
        case O_SEEDS:
            if (s_int("--seeds", optarg, 1, S_MAX_SEEDS, &n_seeds))
                return 2;
            break;
        case O_SEED:
            if (s_int("--seed", optarg, 0, INT32_MAX, &seed))
                return 2;
            break;
        case O_NEG:
            if (s_int("--neg", optarg, 1, 100000, &n_neg))
                return 2;
            break;
        case O_SPLIT:
            if (!strcmp(optarg, "test"))
                split = ATTN_EVAL_TEST;
            else if (!strcmp(optarg, "valid"))
                split = ATTN_EVAL_VALID;
            else {
                fprintf(stderr, "attnctl eval: --split: '%s', expected test or valid\n", optarg);
                return 2;
            }
            break;
        case O_THREADS:
            if (s_int("--threads", optarg, 1, 64, &v))
                return 2;
            threads = v;
            break;
        case O_WINDOW:
            if (s_int("--window", optarg, 1, 1000, &v))
                return 2;
            bo.window = (int)v;
            break;
        case O_DECAY: {
            char *end;
            errno = 0;
            double x = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(x > 0.0 && x <= 1.0)) {
                fprintf(stderr, "attnctl eval: --decay: '%s' is not a number in (0, 1]\n",
                        optarg);
                return 2;
            }
            bo.decay = x;
            break;
        }
        case 'h':
        case O_HELP:
            s_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "attnctl eval: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            s_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        s_usage(stderr);
        return 2;
    }
    const char *path = argv[optind];

    int rc = 1;
    store *db = NULL;
    store_catalog *cat = NULL;
    store_dataset *ds = NULL;
    attn_model *md = NULL, *idm = NULL;
    attn_eval_model *em = NULL, *eid = NULL;
    attn_eval_base *base = NULL;
    store_err err;
    if (store_open(&db, path, STORE_READONLY, 10000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl eval: %s\n", err.msg);
        goto out;
    }
    if (store_catalog_load(db, &cat, &err) != STORE_OK) {
        fprintf(stderr, "attnctl eval: %s\n", err.msg);
        goto out;
    }
    if (cat->n == 0) {
        fprintf(stderr, "attnctl eval: %s: no embedded items (%u without an embedding): run "
                        "'attnctl embed %s' first\n", path, cat->n_unembedded, path);
        goto out;
    }
    if (store_dataset_load(db, cat, &ds, &err) != STORE_OK) {
        fprintf(stderr, "attnctl eval: %s\n", err.msg);
        goto out;
    }
    uint32_t with_target = 0;
    for (uint32_t u = 0; u < ds->seqs.n_users; u++)
        with_target += attn_eval_target(&ds->seqs, u, split) >= 0;
    if (with_target == 0) {
        fprintf(stderr, "attnctl eval: %s: too few interactions: no user has the %d events "
                        "the %s split needs (%u users, %llu events)\n", path,
                split == ATTN_EVAL_TEST ? 2 : 3, split == ATTN_EVAL_TEST ? "test" : "valid",
                ds->seqs.n_users, (unsigned long long)ds->n_events);
        goto out;
    }
    if (s_load_model(db, version, cat, &md, &em, (int)threads) ||
        s_load_model(db, 0, cat, &idm, &eid, (int)threads))
        goto out;
    int refit = s_model_refit(db, md->version);
    if (refit < 0)
        goto out;
    if (refit && split == ATTN_EVAL_VALID) {
        fprintf(stderr, "attnctl eval: %s: model version %lld was refit on the validation "
                        "targets (attnctl train --refit): its validation score means nothing; "
                        "use --split test\n", path, (long long)md->version);
        goto out;
    }
    /* The baselines learn from what the model learnt from. */
    ds->seqs.refit = refit;
    base = attn_eval_base_new(&ds->seqs, cat->emb, (size_t)cat->dim, cat->dim, &bo);
    if (!base) {
        fprintf(stderr, "attnctl eval: out of memory building the baselines\n");
        goto out;
    }
    s_method m[S_N_METHODS] = {
        {"random", attn_eval_random, base},       {"popularity", attn_eval_popularity, base},
        {"centroid", attn_eval_centroid, base},   {"transition", attn_eval_transition, base},
        {"identity", attn_eval_model_score, eid}, {"model", attn_eval_model_score, em},
    };
    static s_cell cells[2][S_N_METHODS];
    memset(cells, 0, sizeof cells);
    double t0 = util_now_s();
    for (int p = 0; p < 2; p++) {
        int seeds = p == 0 ? (int)n_seeds : 1;
        for (int s = 0; s < seeds; s++)
            for (int i = 0; i < S_N_METHODS; i++) {
                attn_eval_opts o;
                attn_eval_defaults(&o);
                o.split = split;
                o.protocol = p == 0 ? ATTN_EVAL_SAMPLED : ATTN_EVAL_FULL;
                o.n_neg = (int)n_neg;
                o.seed = (uint64_t)seed + (uint64_t)s;
                attn_eval_result r;
                int st = attn_eval_run(&ds->seqs, &o, m[i].fn, m[i].ctx, &r);
                if (st != ATTN_OK) {
                    fprintf(stderr, "attnctl eval: %s (%s protocol): %s%s\n", m[i].name,
                            p == 0 ? "sampled" : "full", attn_strerror(st),
                            st == ATTN_ERANGE ? ": a score came out non-finite" : "");
                    goto out;
                }
                s_cell *cl = &cells[p][i];
                cl->hr[cl->n] = r.hr;
                cl->ndcg[cl->n] = r.ndcg;
                cl->n++;
                cl->last = r;
            }
    }
    double secs = util_now_s() - t0;
    if (json) {
        s_print_json(cells, m);
    } else {
        const attn_eval_result *r = &cells[1][0].last;
        char sa[48] = "";
        if (md->sa_len)
            snprintf(sa, sizeof sa, ", self-attention window %d", md->sa_len);
        printf("%s: model version %lld (d %d, m %d, %d heads, l_max %d%s%s) vs identity; "
               "%u users evaluated, %u skipped (fewer than %d events)\n", path,
               (long long)md->version, md->d, md->m, md->heads, md->l_max, sa,
               refit ? ", refit: it and the baselines learnt from every event but the last" : "",
               r->users, r->skipped, split == ATTN_EVAL_TEST ? 2 : 3);
        s_print_table(cells, m, (int)n_seeds, (int)n_neg);
        if (cells[0][0].last.short_neg)
            printf("note: %u users have fewer than %ld unseen items; all of theirs were used\n",
                   cells[0][0].last.short_neg, n_neg);
    }
    if (ds->n_unembedded)
        fprintf(stderr, "attnctl eval: note: %llu events of items without an embedding were "
                        "left out\n", (unsigned long long)ds->n_unembedded);
    fprintf(stderr, "attnctl eval: %.1f s\n", secs);
    rc = 0;
out:
    attn_eval_base_free(&base);
    attn_eval_model_free(&em);
    attn_eval_model_free(&eid);
    attn_model_free(&md);
    attn_model_free(&idm);
    store_dataset_free(&ds);
    store_catalog_free(&cat);
    store_close(&db);
    return rc;
}
