/* cmd_evalnew.c -- 'attnctl eval-new DB --newest F': how well items that
 * arrived after training are ranked (attn/eval_new.h).
 *
 * The experiment it closes (docs/QUALITY.md, "New items without
 * retraining"): `attnctl embed --hold-out-newest F` fitted the basis
 * without the newest items and left them without a vector, `attnctl train`
 * learnt without their events, a plain `attnctl embed` folded them in.
 * This command finds the same items again (store_items_newest: the data
 * decides, not a file), and ranks every event that targets one of them,
 * with the history before it, beside the baselines -- which learn only
 * from the events the model saw -- and beside the "no text" treatment: the
 * same models with every new item given the hashed unit vector an item
 * without usable text gets, i.e. knowing nothing about it.  A new item
 * without any vector is not ranked at all by attnd (it comes back in
 * `unknown`): NDCG 0 by construction.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/eval_new.h"
#include "store/dataset.h"
#include "store/embed/embed.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"
#include "util/opt.h"

#define S_MAX_SEEDS 20
#define S_METHODS 8
#define S_PROTOCOLS 3

typedef struct s_args {
    const char *db;
    double newest;
    int64_t version;
    int n_seeds;
    uint64_t seed;
    int n_neg;
    int threads;
    int json;
} s_args;

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
};

static const util_opt s_opts[] = {
    {"newest", "F", "the new items: the fraction F with the newest first event",
     UTIL_OPT_DBL(s_args, newest, 0, 1), .flags = UTIL_OPT_REQUIRED | UTIL_OPT_MIN_OPEN,
     .def = ""},
    {"model", "V", "model version to measure", UTIL_OPT_I64(s_args, version, 0, INT32_MAX),
     .def = "the active one"},
    {"seeds", "N", "negative draws for the sampled protocol",
     UTIL_OPT_INT(s_args, n_seeds, 1, S_MAX_SEEDS)},
    {"seed", "S", "first seed (draws use S, S+1, ...)", UTIL_OPT_U64(s_args, seed, 0, INT32_MAX)},
    {"neg", "N", "sampled negatives per event", UTIL_OPT_INT(s_args, n_neg, 1, 100000)},
    {"threads", "T", "threads for building the models' tables",
     UTIL_OPT_INT(s_args, threads, 1, 64)},
    {"json", NULL, "one JSON object: protocol -> method -> metrics",
     UTIL_OPT_FLAG(s_args, json, 1)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl eval-new",
    .usage = "DB --newest F [--model V] [--seeds N] [--json]",
    .about =
        "Ranking quality on items added after training: every event of one of the\n"
        "F newest items (by first event) is ranked with the user's history before it,\n"
        "  sampled  among 100 items the user never interacted with\n"
        "  full     among the whole catalog minus the history\n"
        "  fresh    among the new items minus the history\n"
        "beside random, popularity, centroid and transition (learnt from the events\n"
        "of the other items only), the identity model, and both models with the new\n"
        "items' vectors replaced by random unit vectors ('no text').  The new items\n"
        "must have vectors: hold them out with 'attnctl embed --hold-out-newest F',\n"
        "train, then fold them in with 'attnctl embed'.  See docs/QUALITY.md.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
};

static const char *const s_proto_name[S_PROTOCOLS] = {"sampled", "full", "fresh"};

typedef struct s_run {
    store *db;
    store_catalog *cat;
    store_dataset *ds;
    uint8_t *fresh;                 /* cat->n flags */
    uint32_t n_fresh;
    float *blind;                   /* cat->emb with the fresh rows random: "no text" */
    attn_model *md, *idm;
    int64_t md_knows;               /* fresh items the model has parameters for */
    attn_eval_model *em[4];         /* model, identity; then both over blind */
    attn_eval_new_train train;
    attn_eval_base *base;
    struct { const char *name; attn_eval_fn fn; void *ctx; } m[S_METHODS];
    double hr[S_PROTOCOLS][S_METHODS][S_MAX_SEEDS], ndcg[S_PROTOCOLS][S_METHODS][S_MAX_SEEDS];
    attn_eval_new_result last;      /* of the full protocol */
} s_run;

static void s_run_free(s_run *r)
{
    attn_eval_base_free(&r->base);
    attn_eval_new_train_free(&r->train);
    for (int i = 0; i < 4; i++)
        attn_eval_model_free(&r->em[i]);
    attn_model_free(&r->md);
    attn_model_free(&r->idm);
    free(r->blind);
    free(r->fresh);
    store_dataset_free(&r->ds);
    store_catalog_free(&r->cat);
    store_close(&r->db);
}

/* 1. The database, its catalog, histories and the new items' rows. */
static int s_load(s_run *r, const s_args *a)
{
    store_err err;
    int64_t *ids = NULL;
    size_t n_ids = 0;
    if (store_open(&r->db, a->db, STORE_READONLY, 10000, &err) != STORE_OK ||
        store_catalog_load(r->db, &r->cat, &err) != STORE_OK ||
        store_dataset_load(r->db, r->cat, &r->ds, &err) != STORE_OK ||
        store_items_newest(r->db, a->newest, &ids, &n_ids, &err) != STORE_OK) {
        fprintf(stderr, "attnctl eval-new: %s\n", err.msg);
        return 1;
    }
    r->fresh = calloc(r->cat->n ? r->cat->n : 1, 1);
    size_t missing = 0;
    for (size_t i = 0; r->fresh && i < n_ids; i++) {
        int64_t row = store_catalog_row(r->cat, ids[i]);
        if (row < 0)
            missing++;
        else
            r->fresh[row] = 1, r->n_fresh++;
    }
    free(ids);
    if (!r->fresh) {
        fprintf(stderr, "attnctl eval-new: out of memory\n");
        return 1;
    }
    if (missing || !n_ids) {
        fprintf(stderr, "attnctl eval-new: %s: %zu of the %zu newest items have no vector: fold "
                "them in first with 'attnctl embed %s'\n", a->db, missing, n_ids, a->db);
        return 1;
    }
    return 0;
}

/* The scoring tables of model over emb into *em. */
static int s_tables(const s_run *r, const attn_model *md, const float *emb, attn_eval_model **em,
                    int threads)
{
    int64_t *pi = attn_eval_param_index(md, r->cat->item_id, r->cat->n);
    int st = pi ? attn_eval_model_new(em, md, emb, r->cat->n, (size_t)r->cat->dim, pi, threads)
                : ATTN_ENOMEM;
    free(pi);
    if (st != ATTN_OK)
        fprintf(stderr, "attnctl eval-new: model version %lld: cannot build its scoring tables "
                "(%s)\n", (long long)md->version, attn_strerror(st));
    return st != ATTN_OK;
}

/* 2. The models (over the real and the "no text" vectors) and baselines. */
static int s_prepare(s_run *r, const s_args *a)
{
    store_err err;
    const store_catalog *c = r->cat;
    if (store_model_load(r->db, a->version, &r->md, &err) != STORE_OK ||
        store_model_load(r->db, 0, &r->idm, &err) != STORE_OK) {
        fprintf(stderr, "attnctl eval-new: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < c->n; i++)
        r->md_knows += r->fresh[i] && attn_model_item_index(r->md, c->item_id[i]) >= 0;
    size_t bytes = c->n * (size_t)c->dim * sizeof *r->blind;
    if (!(r->blind = malloc(bytes ? bytes : 1)) ||
        attn_eval_new_train_make(&r->ds->seqs, r->fresh, &r->train) != ATTN_OK ||
        !(r->base = attn_eval_base_new(&r->train.seqs, c->emb, (size_t)c->dim, c->dim, NULL))) {
        fprintf(stderr, "attnctl eval-new: out of memory\n");
        return 1;
    }
    memcpy(r->blind, c->emb, bytes);
    for (size_t i = 0; i < c->n; i++)
        if (r->fresh[i])
            store_embed_hash_unit(store_catalog_ext(c, (uint32_t)i), 1,
                                  r->blind + i * (size_t)c->dim, c->dim);
    if (s_tables(r, r->md, c->emb, &r->em[0], a->threads) ||
        s_tables(r, r->idm, c->emb, &r->em[1], a->threads) ||
        s_tables(r, r->md, r->blind, &r->em[2], a->threads) ||
        s_tables(r, r->idm, r->blind, &r->em[3], a->threads))
        return 1;
    /* em[]: 0 model, 1 identity, 2 model over blind, 3 identity over blind. */
    static const char *const names[S_METHODS] = {
        "random", "popularity", "centroid", "transition",
        "identity", "model", "identity, no text", "model, no text"};
    const attn_eval_fn fns[4] = {attn_eval_random, attn_eval_popularity, attn_eval_centroid,
                                 attn_eval_transition};
    void *const ctx[S_METHODS] = {r->base, r->base, r->base, r->base,
                                  r->em[1], r->em[0], r->em[3], r->em[2]};
    for (int i = 0; i < S_METHODS; i++) {
        r->m[i].name = names[i];
        r->m[i].fn = i < 4 ? fns[i] : attn_eval_model_score;
        r->m[i].ctx = ctx[i];
    }
    return 0;
}

/* 3. Every method under every protocol (the sampled one per seed). */
static int s_measure(s_run *r, const s_args *a)
{
    for (int p = 0; p < S_PROTOCOLS; p++)
        for (int s = 0; s < (p == 0 ? a->n_seeds : 1); s++)
            for (int i = 0; i < S_METHODS; i++) {
                attn_eval_new_opts o;
                attn_eval_new_defaults(&o);
                o.protocol = p;
                o.n_neg = a->n_neg;
                o.seed = a->seed + (uint64_t)s;
                attn_eval_new_result res;
                int st = attn_eval_new_run(&r->ds->seqs, r->fresh, &o, r->m[i].fn, r->m[i].ctx,
                                           &res);
                if (st != ATTN_OK) {
                    fprintf(stderr, "attnctl eval-new: %s (%s): %s\n", r->m[i].name,
                            s_proto_name[p], attn_strerror(st));
                    return 1;
                }
                r->hr[p][i][s] = res.hr;
                r->ndcg[p][i][s] = res.ndcg;
                if (p == 1)
                    r->last = res;
            }
    return 0;
}

/* Mean of x[0..n). */
static double s_mean(const double *x, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m += x[i] / n;
    return m;
}

/* 4. A table or JSON. */
static void s_report(const s_run *r, const s_args *a)
{
    const attn_eval_new_result *res = &r->last;
    if (a->json) {
        printf("{\"items\":%u,\"events\":%llu,\"users\":%u", r->n_fresh,
               (unsigned long long)res->queries, res->users);
        for (int p = 0; p < S_PROTOCOLS; p++) {
            printf(",\"%s\":{", s_proto_name[p]);
            int ns = p == 0 ? a->n_seeds : 1;
            for (int i = 0; i < S_METHODS; i++)
                printf("%s\"%s\":{\"hr@10\":%.6f,\"ndcg@10\":%.6f}", i ? "," : "", r->m[i].name,
                       s_mean(r->hr[p][i], ns), s_mean(r->ndcg[p][i], ns));
            printf("}");
        }
        printf("}\n");
        return;
    }
    printf("%s: model version %lld vs identity on the %u newest items (%.3g of those with "
           "events): %llu events of %u users ranked, %llu first events skipped (no history)\n",
           a->db, (long long)r->md->version, r->n_fresh, a->newest,
           (unsigned long long)res->queries, res->users, (unsigned long long)res->no_history);
    printf("%-18s %-17s %-17s %-17s\n", "", "sampled", "full", "fresh");
    printf("%-18s %-8s %-8s %-8s %-8s %-8s %-8s\n", "method", "NDCG@10", "HR@10", "NDCG@10",
           "HR@10", "NDCG@10", "HR@10");
    for (int i = 0; i < S_METHODS; i++) {
        printf("%-18s", r->m[i].name);
        for (int p = 0; p < S_PROTOCOLS; p++) {
            int ns = p == 0 ? a->n_seeds : 1;
            printf(" %.4f   %.4f  ", s_mean(r->ndcg[p][i], ns), s_mean(r->hr[p][i], ns));
        }
        printf("\n");
    }
    printf("sampled: %d negatives, mean over %d seed%s; no text: the new items' vectors "
           "replaced by random unit vectors; without any vector attnd does not rank them "
           "(NDCG 0)\n", a->n_neg, a->n_seeds, a->n_seeds == 1 ? "" : "s");
    if (r->md_knows)
        printf("note: model version %lld has per-item parameters for %lld of these items: it "
               "was trained with them, so they are not new to it\n", (long long)r->md->version,
               (long long)r->md_knows);
}

int cmd_evalnew(int argc, char **argv)
{
    s_args a = {.version = STORE_MODEL_ACTIVE, .n_seeds = 3, .seed = 1, .n_neg = 100,
                .threads = 2};
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    s_run *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "attnctl eval-new: out of memory\n");
        return 1;
    }
    double t0 = util_now_s();
    rc = s_load(r, &a);
    if (rc == 0)
        rc = s_prepare(r, &a);
    if (rc == 0)
        rc = s_measure(r, &a);
    if (rc == 0) {
        s_report(r, &a);
        fflush(stdout);
        fprintf(stderr, "attnctl eval-new: %.1f s\n", util_now_s() - t0);
    }
    s_run_free(r);
    free(r);
    return rc;
}
