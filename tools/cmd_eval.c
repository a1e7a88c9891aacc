/* cmd_eval.c -- 'attnctl eval DB': ranking quality beside the baselines.
 *
 * A thin main: load the catalog and every user's history from the store,
 * the model version asked for and the identity model (version 0), then run
 * each method through attn_eval_run under both protocols and print one
 * table (or JSON).  The model rows are scored by the daemon's fast path
 * (attn_eval_model), so the table measures what attnd serves.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "attn/attn.h"
#include "attn/eval.h"
#include "attn/trim.h"
#include "store/dataset.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "tools/eval_pair.h"
#include "util/clock.h"
#include "util/opt.h"

#define S_MAX_SEEDS 100
#define S_MAX_MODELS 5        /* model versions measured with --models */
#define S_MAX_VS (S_MAX_MODELS - 1)   /* the rows beyond the first model's */
#define S_TUNE_WINDOW 16      /* the largest transition window tuning tries */

/* --models: model versions, comma-separated. */
typedef struct s_versions {
    int n;
    int64_t v[S_MAX_MODELS];
} s_versions;

/* ---- the command line ------------------------------------------------------- */

typedef struct s_args {
    const char *db;
    int64_t version;          /* STORE_MODEL_ACTIVE: the active one */
    int json;
    int n_seeds;              /* sampled protocol: negative draws */
    uint64_t seed;            /* the first draw's; then seed + 1, ... */
    int n_neg;
    int split;                /* enum attn_eval_split */
    int threads;
    int precision;            /* enum attn_precision of the model rows' tables */
    attn_eval_base_opts bo;
    int tune;                 /* tune the transition baseline on validation */
    s_versions models;        /* --models: the first is `version`, vs the rest */
    s_versions vs;            /* the rest */
} s_args;

static int s_parse_models(void *field, const char *value, char *why, size_t why_len)
{
    s_versions *vs = field;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", value);
    vs->n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int64_t v;
        if (vs->n == S_MAX_MODELS || util_opt_read_i64(tok, &v) || v < 0 || v > INT32_MAX) {
            snprintf(why, why_len, "'%s': expected 2 to %d model versions, comma-separated",
                     value, S_MAX_MODELS);
            return -1;
        }
        for (int i = 0; i < vs->n; i++)
            if (vs->v[i] == v) {
                snprintf(why, why_len, "'%s': version %lld is named twice", value, (long long)v);
                return -1;
            }
        vs->v[vs->n++] = v;
    }
    if (vs->n < 2) {
        snprintf(why, why_len, "'%s': expected 2 to %d model versions, comma-separated (one "
                 "model: --model V)", value, S_MAX_MODELS);
        return -1;
    }
    return 0;
}

static const char *const s_splits[] = {"test", "valid", NULL};
static const int s_split_values[] = {ATTN_EVAL_TEST, ATTN_EVAL_VALID};
static const char *const s_precisions[] = {"f32", "bf16", NULL};
static const int s_precision_values[] = {ATTN_PRECISION_F32, ATTN_PRECISION_BF16};

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
};

static const util_opt s_opts[] = {
    {"model", "V", "model version to measure", UTIL_OPT_I64(s_args, version, 0, INT32_MAX),
     .def = "the active one"},
    {"json", NULL, "one JSON object: protocol -> method -> metrics",
     UTIL_OPT_FLAG(s_args, json, 1)},
    {"seeds", "N", "negative draws for the sampled protocol",
     UTIL_OPT_INT(s_args, n_seeds, 1, S_MAX_SEEDS)},
    {"seed", "S", "first seed (draws use S, S+1, ...)", UTIL_OPT_U64(s_args, seed, 0, INT32_MAX)},
    {"neg", "N", "sampled negatives per user", UTIL_OPT_INT(s_args, n_neg, 1, 100000)},
    {"split", NULL, "which target", UTIL_OPT_ENUM(s_args, split, s_splits, s_split_values)},
    {"threads", "T", "threads for building the model's tables",
     UTIL_OPT_INT(s_args, threads, 1, 64)},
    {"precision", NULL, "what the model rows' scoring tables are stored in, as attnd's "
     "model.precision", UTIL_OPT_ENUM(s_args, precision, s_precisions, s_precision_values)},
    {"models", "V,W", "measure these model versions (2-5) on the same users\n"
     "and candidates, and each against the first: the paired\n"
     "difference of HR@10 and NDCG@10 with its 95% interval\n"
     "over users", UTIL_OPT_CALL(s_args, models, s_parse_models), .def = "none"},
    {"window", "N", "transition baseline: recent items that vote, and ...",
     UTIL_OPT_INT(s_args, bo.window, 1, 1000), .def = "tuned"},
    {"decay", "X", "... the weight per step of distance; without these\n"
     "both are tuned on the validation split for each\n"
     "protocol (windows 1-16, decays 0.25-1)",
     UTIL_OPT_DBL(s_args, bo.decay, 0, 1), .flags = UTIL_OPT_MIN_OPEN, .def = "tuned"},
};

static const util_opt_excl s_excl[] = {{"model", "models"}};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl eval",
    .usage = "DB [--model V | --models V,W,...] [--json] [--seeds N] [options]",
    .about =
        "Leave-one-out ranking quality: each user's last event is the target, the\n"
        "events before it the history.  HR@10 and NDCG@10 under two protocols:\n"
        "  sampled  the target among 100 items the user never interacted with,\n"
        "           drawn uniformly (mean and sd over --seeds draws)\n"
        "  full     the target among the whole catalog minus the user's history\n"
        "beside the baselines random, popularity, centroid, transition, the\n"
        "identity model (version 0) and, if the model has a self-attention block,\n"
        "the model with it (and its feed-forward layer) cut out (no-block).  See\n"
        "docs/QUALITY.md.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
    UTIL_OPT_EXCL(s_excl),
};

/* One method: a scorer and its context. */
typedef struct s_method {
    const char *name;
    attn_eval_fn fn;
    void *ctx;
} s_method;

#define S_N_BASE 6            /* random .. model */
#define S_N_METHODS (S_N_BASE + S_MAX_VS + 1)   /* + the model without its block */

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

static int s_tables(const attn_model *md, const store_catalog *cat, attn_eval_model **em,
                    const attn_tables_opts *to);

static int s_load_model(store *db, int64_t version, const store_catalog *cat, attn_model **md,
                        attn_eval_model **em, const attn_tables_opts *to)
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
    return s_tables(*md, cat, em, to);
}

/* The scoring tables of md over the catalog. */
static int s_tables(const attn_model *md, const store_catalog *cat, attn_eval_model **em,
                    const attn_tables_opts *to)
{
    int64_t *pi = attn_eval_param_index(md, cat->item_id, cat->n);
    if (!pi) {
        fprintf(stderr, "attnctl eval: out of memory\n");
        return -1;
    }
    int st = attn_eval_model_new_opts(em, md, cat->emb, cat->n, (size_t)cat->dim, pi, to);
    free(pi);
    if (st != ATTN_OK) {
        fprintf(stderr, "attnctl eval: model version %lld: cannot build its scoring tables (%s)\n",
                (long long)md->version, attn_strerror(st));
        return -1;
    }
    return 0;
}

static void s_print_json(const s_cell cells[2][S_N_METHODS], const s_method *m, int n_methods,
                         const cmd_eval_pair *pair)
{
    static const char *proto[2] = {"sampled", "full"};
    printf("{");
    for (int p = 0; p < 2; p++) {
        printf("%s\"%s\":{", p ? "," : "", proto[p]);
        for (int i = 0; i < n_methods; i++) {
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
    if (pair) {
        printf(",\"paired\":[");
        cmd_eval_pair_json(pair);
        printf("]");
    }
    printf("}\n");
}

static void s_print_table(const s_cell cells[2][S_N_METHODS], const s_method *m, int n_methods,
                          int n_seeds, int n_neg)
{
    printf("%-9s %-11s %-17s %-17s\n", "protocol", "method", "HR@10", "NDCG@10");
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < n_methods; i++) {
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

/* ---- the run: plan, then steps ----------------------------------------------
 *   1. s_load: the database, its catalog and histories; some user must have
 *      the events the split needs
 *   2. s_prepare: the model asked for, the other --models and the identity model
 *      with their scoring tables, and the baselines (learning from what the
 *      model did)
 *   3. s_measure: the transition baseline tuned on the validation split
 *      (s_tune), then every method under both protocols, the sampled one
 *      per seed
 *   4. s_report: a table or JSON, the notes, the time taken
 * Each step says what went wrong itself and returns the exit status. */

typedef struct s_run {
    store *db;
    store_catalog *cat;
    store_dataset *ds;
    attn_model *md, *idm;            /* the model measured, the identity model */
    attn_eval_model *em, *eid;       /* their scoring tables */
    attn_model *vmd[S_MAX_VS];       /* the other --models */
    attn_eval_model *vem[S_MAX_VS];
    attn_model *nbmd;                /* the model without its block (it has one) */
    attn_eval_model *nbem;
    char vname[S_MAX_MODELS][24];
    cmd_eval_pair *pair;             /* --models: per-user results, paired */
    attn_eval_base *base;
    int refit;                       /* md was trained with --refit */
    attn_eval_tuned tuned[2];        /* the transition baseline's choice, per protocol */
    int n_methods;
    s_method m[S_N_METHODS];
    s_cell cells[2][S_N_METHODS];    /* [0 sampled, 1 full][method] */
    double seconds;                  /* spent in s_measure */
} s_run;

static void s_run_free(s_run *r)
{
    attn_eval_base_free(&r->base);
    cmd_eval_pair_free(&r->pair);
    attn_eval_model_free(&r->em);
    attn_eval_model_free(&r->eid);
    for (int i = 0; i < S_MAX_VS; i++) {
        attn_eval_model_free(&r->vem[i]);
        attn_model_free(&r->vmd[i]);
    }
    attn_eval_model_free(&r->nbem);
    attn_model_free(&r->nbmd);
    attn_model_free(&r->md);
    attn_model_free(&r->idm);
    store_dataset_free(&r->ds);
    store_catalog_free(&r->cat);
    store_close(&r->db);
}

static int s_load(s_run *r, const s_args *a)
{
    store_err err;
    if (store_open(&r->db, a->db, STORE_READONLY, 10000, &err) != STORE_OK ||
        store_catalog_load(r->db, &r->cat, &err) != STORE_OK) {
        fprintf(stderr, "attnctl eval: %s\n", err.msg);
        return 1;
    }
    if (r->cat->n == 0) {
        fprintf(stderr, "attnctl eval: %s: no embedded items (%u without an embedding): run "
                        "'attnctl embed %s' first\n", a->db, r->cat->n_unembedded, a->db);
        return 1;
    }
    if (store_dataset_load(r->db, r->cat, &r->ds, &err) != STORE_OK) {
        fprintf(stderr, "attnctl eval: %s\n", err.msg);
        return 1;
    }
    const attn_seqs *seqs = &r->ds->seqs;
    uint32_t with_target = 0;
    for (uint32_t u = 0; u < seqs->n_users; u++)
        with_target += attn_eval_target(seqs, u, a->split) >= 0;
    if (with_target == 0) {
        fprintf(stderr, "attnctl eval: %s: too few interactions: no user has the %d events "
                        "the %s split needs (%u users, %llu events)\n", a->db,
                a->split == ATTN_EVAL_TEST ? 2 : 3, a->split == ATTN_EVAL_TEST ? "test" : "valid",
                seqs->n_users, (unsigned long long)r->ds->n_events);
        return 1;
    }
    return 0;
}

/* r->refit from the measured model's config; and no version measured
 * (--models: any of them) may have been refit when the split is the
 * validation targets it learnt from. */
static int s_check_refit(s_run *r, const s_args *a)
{
    for (int i = -1; i < a->vs.n; i++) {
        const int64_t v = i < 0 ? r->md->version : r->vmd[i]->version;
        const int refit = s_model_refit(r->db, v);
        if (refit < 0)
            return 1;
        if (i < 0)
            r->refit = refit;
        if (refit && a->split == ATTN_EVAL_VALID) {
            fprintf(stderr, "attnctl eval: %s: model version %lld was refit on the validation "
                            "targets (attnctl train --refit): its validation score means "
                            "nothing; use --split test\n", a->db, (long long)v);
            return 1;
        }
    }
    return 0;
}

static int s_prepare(s_run *r, const s_args *a)
{
    attn_tables_opts to = {ATTN_PRECOMPUTE_ALL, (attn_precision)a->precision, a->threads};
    if (s_load_model(r->db, a->version, r->cat, &r->md, &r->em, &to) ||
        s_load_model(r->db, 0, r->cat, &r->idm, &r->eid, &to))
        return 1;
    for (int i = 0; i < a->vs.n; i++)
        if (s_load_model(r->db, a->vs.v[i], r->cat, &r->vmd[i], &r->vem[i], &to))
            return 1;
    /* The ablation baseline: the model with its self-attention block cut
     * (attn/trim.h), its feed-forward layer with it, not retrained -- what
     * the block adds to this model. */
    if (r->md->sa_len > 0) {
        int st;
        if (!(r->nbmd = attn_trim_block(r->md, &st))) {
            fprintf(stderr, "attnctl eval: the model without its block: %s\n", attn_strerror(st));
            return 1;
        }
        if (s_tables(r->nbmd, r->cat, &r->nbem, &to))
            return 1;
    }
    if (s_check_refit(r, a))
        return 1;
    /* The baselines learn from what the model learnt from. */
    r->ds->seqs.refit = r->refit;
    r->base = attn_eval_base_new(&r->ds->seqs, r->cat->emb, (size_t)r->cat->dim, r->cat->dim,
                                 &a->bo);
    if (!r->base) {
        fprintf(stderr, "attnctl eval: out of memory building the baselines\n");
        return 1;
    }
    const s_method m[S_N_BASE] = {
        {"random", attn_eval_random, r->base},       {"popularity", attn_eval_popularity, r->base},
        {"centroid", attn_eval_centroid, r->base},   {"transition", attn_eval_transition, r->base},
        {"identity", attn_eval_model_score, r->eid}, {"model", attn_eval_model_score, r->em},
    };
    memcpy(r->m, m, sizeof m);
    for (int i = 0; i < a->vs.n; i++) {
        snprintf(r->vname[i], sizeof r->vname[i], "v%lld", (long long)a->vs.v[i]);
        r->m[S_N_BASE + i] = (s_method){r->vname[i], attn_eval_model_score, r->vem[i]};
    }
    r->n_methods = S_N_BASE + a->vs.n;
    if (r->nbem)
        r->m[r->n_methods++] = (s_method){"no-block", attn_eval_model_score, r->nbem};
    if (a->models.n) {
        snprintf(r->vname[S_MAX_VS], sizeof r->vname[S_MAX_VS], "v%lld",
                 (long long)a->models.v[0]);
        r->m[S_N_BASE - 1].name = r->vname[S_MAX_VS];
        r->pair = cmd_eval_pair_new(a->models.n, r->ds->seqs.n_users, a->models.v);
        if (!r->pair) {
            fprintf(stderr, "attnctl eval: out of memory\n");
            return 1;
        }
    }
    return 0;
}

/* The transition baseline's window and decay for each protocol, chosen on
 * the validation split by counts that hold the validation targets out --
 * also when the model was refit and the baselines count them (r->base). */
static int s_tune(s_run *r, const s_args *a)
{
    for (int p = 0; p < 2; p++)
        r->tuned[p] = (attn_eval_tuned){.window = a->bo.window, .decay = a->bo.decay};
    if (!a->tune)
        return 0;
    attn_seqs seqs = r->ds->seqs;
    seqs.refit = 0;
    attn_eval_base *vb = r->refit ? attn_eval_base_new(&seqs, r->cat->emb, (size_t)r->cat->dim,
                                                       r->cat->dim, &a->bo) : r->base;
    int st = vb ? ATTN_OK : ATTN_ENOMEM;
    for (int p = 0; p < 2 && st == ATTN_OK; p++) {
        attn_eval_opts o;
        attn_eval_defaults(&o);
        o.split = ATTN_EVAL_VALID;
        o.protocol = p == 0 ? ATTN_EVAL_SAMPLED : ATTN_EVAL_FULL;
        o.n_neg = a->n_neg;
        o.seed = a->seed;
        st = attn_eval_base_tune(vb, &o, &r->tuned[p]);
    }
    if (vb != r->base)
        attn_eval_base_free(&vb);
    if (st != ATTN_OK)
        fprintf(stderr, "attnctl eval: tuning the transition baseline: %s\n", attn_strerror(st));
    return st != ATTN_OK;
}

/* Method i under protocol p (0 sampled, 1 full) with the seed-th draw. */
static int s_measure_one(s_run *r, const s_args *a, int p, int seed, int i)
{
    attn_eval_opts o;
    attn_eval_defaults(&o);
    o.split = a->split;
    o.protocol = p == 0 ? ATTN_EVAL_SAMPLED : ATTN_EVAL_FULL;
    o.n_neg = a->n_neg;
    o.seed = a->seed + (uint64_t)seed;
    attn_eval_result res;
    /* With --models the model rows (the first at S_N_BASE - 1) keep
     * every user's result for the paired comparison. */
    const int k = i - (S_N_BASE - 1);
    cmd_eval_pair *pair = k >= 0 && k < a->models.n ? r->pair : NULL;
    int st = attn_eval_run_users(&r->ds->seqs, &o, r->m[i].fn, r->m[i].ctx, &res,
                                 pair ? cmd_eval_pair_hr(pair) : NULL,
                                 pair ? cmd_eval_pair_ndcg(pair) : NULL);
    if (st == ATTN_OK && pair)
        cmd_eval_pair_add(pair, p, k);
    if (st != ATTN_OK) {
        fprintf(stderr, "attnctl eval: %s (%s protocol): %s%s\n", r->m[i].name,
                p == 0 ? "sampled" : "full", attn_strerror(st),
                st == ATTN_ERANGE ? ": a score came out non-finite" : "");
        return 1;
    }
    s_cell *cl = &r->cells[p][i];
    cl->hr[cl->n] = res.hr;
    cl->ndcg[cl->n] = res.ndcg;
    cl->n++;
    cl->last = res;
    return 0;
}

static int s_measure(s_run *r, const s_args *a)
{
    double t0 = util_now_s();
    if (s_tune(r, a))
        return 1;
    for (int p = 0; p < 2; p++) {
        attn_eval_base_set_transition(r->base, r->tuned[p].window, r->tuned[p].decay);
        for (int s = 0; s < (p == 0 ? a->n_seeds : 1); s++)
            for (int i = 0; i < r->n_methods; i++)
                if (s_measure_one(r, a, p, s, i))
                    return 1;
    }
    r->seconds = util_now_s() - t0;
    return 0;
}

static void s_report(const s_run *r, const s_args *a)
{
    const attn_model *md = r->md;
    if (a->json) {
        s_print_json(r->cells, r->m, r->n_methods, r->pair);
    } else {
        const attn_eval_result *res = &r->cells[1][0].last;
        char sa[72] = "";
        if (md->sa_len)
            snprintf(sa, sizeof sa, ", self-attention window %d", md->sa_len);
        if (md->ffn)
            snprintf(sa + strlen(sa), sizeof sa - strlen(sa), ", feed-forward %d", md->ffn);
        printf("%s: model version %lld (d %d, m %d, %d heads, l_max %d%s%s) vs identity; "
               "%u users evaluated, %u skipped (fewer than %d events)\n", a->db,
               (long long)md->version, md->d, md->m, md->heads, md->l_max, sa,
               r->refit ? ", refit: it and the baselines learnt from every event but the last"
                        : "",
               res->users, res->skipped, a->split == ATTN_EVAL_TEST ? 2 : 3);
        for (int i = 0; i < a->vs.n; i++)
            printf("%s: model version %lld (d %d, m %d, %d heads, l_max %d, %s)\n", r->vname[i],
                   (long long)a->vs.v[i], r->vmd[i]->d, r->vmd[i]->m, r->vmd[i]->heads,
                   r->vmd[i]->l_max, r->vmd[i]->sa_len ? "with a self-attention block"
                                                        : "no self-attention block");
        printf("transition: %s window %d decay %g (sampled), window %d decay %g (full)\n",
               a->tune ? "tuned on the validation split:" : "given:", r->tuned[0].window,
               r->tuned[0].decay, r->tuned[1].window, r->tuned[1].decay);
        s_print_table(r->cells, r->m, r->n_methods, a->n_seeds, a->n_neg);
        if (r->pair)
            cmd_eval_pair_print(r->pair);
        if (r->cells[0][0].last.short_neg)
            printf("note: %u users have fewer than %d unseen items; all of theirs were used\n",
                   r->cells[0][0].last.short_neg, a->n_neg);
    }
    if (r->ds->n_unembedded)
        fprintf(stderr, "attnctl eval: note: %llu events of items without an embedding were "
                        "left out\n", (unsigned long long)r->ds->n_unembedded);
    fprintf(stderr, "attnctl eval: %.1f s\n", r->seconds);
}

int cmd_eval(int argc, char **argv)
{
    s_args a = {.version = STORE_MODEL_ACTIVE, .n_seeds = 3, .seed = 1, .n_neg = 100,
                .split = ATTN_EVAL_TEST, .threads = 2, .precision = ATTN_PRECISION_F32,
                .bo = {.window = 8, .decay = 0.5}};
    uint64_t given = 0;
    int rc = util_opt_main(&s_cmd, argc, argv, &a, &given);
    if (rc >= 0)
        return rc;
    /* Unless the window or the decay is given, both are tuned: count
     * transitions as far as the largest window tried. */
    a.tune = !util_opt_given(&s_cmd, given, "window") && !util_opt_given(&s_cmd, given, "decay");
    if (a.models.n) {
        a.version = a.models.v[0];
        a.vs.n = a.models.n - 1;
        memcpy(a.vs.v, a.models.v + 1, (size_t)a.vs.n * sizeof *a.vs.v);
    }
    if (a.tune)
        a.bo.window = S_TUNE_WINDOW;
    s_run *r = calloc(1, sizeof *r);   /* the cells hold every seed's results: ~20 KiB */
    if (!r) {
        fprintf(stderr, "attnctl eval: out of memory\n");
        return 1;
    }
    rc = s_load(r, &a);
    if (rc == 0)
        rc = s_prepare(r, &a);
    if (rc == 0)
        rc = s_measure(r, &a);
    if (rc == 0)
        s_report(r, &a);
    s_run_free(r);
    free(r);
    return rc;
}
