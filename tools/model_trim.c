/* model_trim.c -- 'attnctl model trim DB V': cut the parts of a model that
 * do not pay for themselves, by measurement.
 *
 *   1. measure V: validation NDCG@10 (every user with a validation target,
 *      the protocol chosen) and the time attn_score takes on a small
 *      (N 100, L 50: P1's and P3's shape) and a large (N 1000, L 200: P4's)
 *      request over this catalog, with the served fast path's tables;
 *   2. measure every single cut -- each head (attn/trim.h), the
 *      self-attention block (its feed-forward layer goes with it) and the
 *      block's feed-forward layer alone -- against V, and print them all;
 *   3. greedily, cheapest loss first, keep a cut while the model with every
 *      cut kept so far loses less than --max-loss NDCG@10 against V and is
 *      faster on the small request;
 *   4. save the result as a new version (not activated unless asked), or
 *      say that nothing pays and write nothing.
 * A cut's timings are taken beside V's: the two alternate in S_ROUNDS
 * rounds, each keeping its best round's median, and the change is cut over
 * the V timed beside it -- a shared machine slows whole seconds at a time,
 * and one reference taken once at the start made every later change look
 * like a gain or a loss of several times.  A cut must also save time to be
 * kept.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/eval.h"
#include "attn/score.h"
#include "attn/trim.h"
#include "store/dataset.h"
#include "store/store.h"
#include "tools/cmd.h"
#include "util/clock.h"
#include "util/opt.h"
#include "util/rng.h"

#define S_MAX_CUTS 18   /* the block, its feed-forward layer and up to 16 heads */
#define S_ROUNDS 3

typedef struct s_args {
    const char *db;
    int64_t version;
    double max_loss;
    int protocol;
    double seconds;
    int threads;
    int activate;
} s_args;

typedef struct s_figures {
    double ndcg;
    double us_small, us_large;    /* attn_score per request */
    double ref_small, ref_large;  /* the base model's, timed beside them */
    size_t table_bytes;
} s_figures;

typedef struct s_ctx {
    const s_args *a;
    store *db;
    store_catalog *cat;
    store_dataset *ds;
    attn_tables *base;        /* V's tables, kept to time every cut beside */
} s_ctx;

static const char *const s_protocols[] = {"sampled", "full", NULL};

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
    {"VERSION", NULL, NULL, UTIL_OPT_I64(s_args, version, 1, INT64_MAX)},
};

static const util_opt s_opts[] = {
    {"max-loss", "X", "largest validation NDCG@10 a kept cut may cost",
     UTIL_OPT_DBL(s_args, max_loss, 0, 1)},
    {"protocol", "P", "validation protocol: full (every item) or sampled (100 negatives)",
     UTIL_OPT_ENUM(s_args, protocol, s_protocols, NULL)},
    {"seconds", "S", "time spent timing each model and request size",
     UTIL_OPT_DBL(s_args, seconds, 0.05, 60)},
    {"threads", "T", "threads for building tables", UTIL_OPT_INT(s_args, threads, 1, 64)},
    {"activate", NULL, "make the trimmed version the active one",
     UTIL_OPT_FLAG(s_args, activate, 1)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl model trim",
    .about = "Measure each head's, the self-attention block's and its feed-forward layer's\n"
             "contribution to VERSION's validation NDCG@10 and to its request time, keep the\n"
             "cuts that cost less than --max-loss and save time, and save the result as a new\n"
             "version (or say that nothing pays and write nothing).",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
};

/* ---- 1. measuring a model ------------------------------------------------- */

static int s_ndcg(const s_ctx *c, const attn_model *md, double *ndcg)
{
    int64_t *pi = attn_eval_param_index(md, c->cat->item_id, c->cat->n);
    attn_tables_opts to = {ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32, c->a->threads};
    attn_eval_model *em = NULL;
    int st = pi ? attn_eval_model_new_opts(&em, md, c->cat->emb, c->cat->n,
                                           (size_t)c->cat->dim, pi, &to) : ATTN_ENOMEM;
    free(pi);
    attn_eval_opts o;
    attn_eval_defaults(&o);
    o.split = ATTN_EVAL_VALID;
    o.protocol = c->a->protocol;
    attn_eval_result r;
    if (st == ATTN_OK)
        st = attn_eval_run(&c->ds->seqs, &o, attn_eval_model_score, em, &r);
    attn_eval_model_free(&em);
    *ndcg = st == ATTN_OK ? r.ndcg : NAN;
    return st;
}

/* Median microseconds attn_score takes on requests of N candidates and L
 * history events drawn from the catalog, over SECONDS. */
static double s_time(const s_ctx *c, const attn_tables *t, int n_cand, int n_hist,
                     double seconds)
{
    attn_limits lim = {.max_cand = n_cand, .max_hist = n_hist, .max_k = 10, .max_explain = 0};
    attn_scratch *sc = attn_scratch_new(t, &lim);
    uint32_t *cand = malloc((size_t)n_cand * sizeof *cand);
    uint32_t *hist = malloc((size_t)n_hist * sizeof *hist);
    float *w = malloc((size_t)n_hist * sizeof *w);
    double times[4096], med = NAN;
    int n = 0;
    uint64_t rng = 7;
    if (sc && cand && hist && w) {
        double end = util_now_s() + seconds;
        while (n < 4096 && (n < 5 || util_now_s() < end)) {
            for (int i = 0; i < n_cand; i++)
                cand[i] = util_rng_scale(util_splitmix64(&rng), c->cat->n);
            for (int i = 0; i < n_hist; i++) {
                hist[i] = util_rng_scale(util_splitmix64(&rng), c->cat->n);
                w[i] = 1;
            }
            attn_request rq = {.hist = hist, .hist_weight = w, .n_hist = n_hist, .cand = cand,
                               .n_cand = n_cand, .k = 10};
            attn_result res;
            uint64_t t0 = util_now_ns();
            if (attn_score(t, &rq, sc, &res) != ATTN_OK)
                break;
            times[n++] = (double)(util_now_ns() - t0) / 1e3;
        }
    }
    for (int i = 1; i < n; i++)   /* insertion sort: n is a few thousand at most */
        for (int j = i; j > 0 && times[j - 1] > times[j]; j--) {
            double x = times[j];
            times[j] = times[j - 1];
            times[j - 1] = x;
        }
    if (n)
        med = times[n / 2];
    attn_scratch_free(&sc);
    free(cand);
    free(hist);
    free(w);
    return med;
}

/* T's time and the base's beside it, in alternating rounds (REF may be T). */
static void s_time_pair(const s_ctx *c, const attn_tables *t, int n_cand, int n_hist,
                        double *us, double *ref_us)
{
    double slice = c->a->seconds / S_ROUNDS;
    *us = *ref_us = INFINITY;
    for (int r = 0; r < S_ROUNDS; r++) {
        double a = s_time(c, c->base, n_cand, n_hist, slice);
        double b = t == c->base ? a : s_time(c, t, n_cand, n_hist, slice);
        *ref_us = fmin(*ref_us, a);
        *us = fmin(*us, b);
    }
}

/* The figures of MD; the first model measured becomes the base. */
static int s_measure(s_ctx *c, const attn_model *md, s_figures *m)
{
    if (s_ndcg(c, md, &m->ndcg) != ATTN_OK)
        return -1;
    int64_t *pi = attn_eval_param_index(md, c->cat->item_id, c->cat->n);
    attn_tables *t = NULL;
    int st = pi ? attn_tables_build(&t, md, c->cat->emb, c->cat->n, (size_t)c->cat->dim, pi,
                                    ATTN_PRECOMPUTE_ALL, c->a->threads) : ATTN_ENOMEM;
    free(pi);
    if (st != ATTN_OK)
        return -1;
    int l_small = md->l_max < 50 ? md->l_max : 50, l_large = md->l_max < 200 ? md->l_max : 200;
    int n_small = c->cat->n < 100 ? (int)c->cat->n : 100;
    int n_large = c->cat->n < 1000 ? (int)c->cat->n : 1000;
    if (!c->base)
        c->base = t;
    s_time_pair(c, t, n_small, l_small, &m->us_small, &m->ref_small);
    s_time_pair(c, t, n_large, l_large, &m->us_large, &m->ref_large);
    m->table_bytes = attn_tables_bytes(t);
    if (t != c->base)
        attn_tables_free(&t);
    return isnan(m->us_small) || isinf(m->us_small) ? -1 : 0;
}

/* ---- 2. the cuts ------------------------------------------------------------ */

/* What a cut takes away, besides a head (head >= 0). */
enum { S_CUT_BLOCK = -1, S_CUT_FFN = -2 };

typedef struct s_cut {
    int head;                 /* the head cut, or S_CUT_BLOCK / S_CUT_FFN */
    s_figures m;              /* the model with this cut alone */
} s_cut;

/* NULL when the cut does not apply (the feed-forward layer once the block
 * is gone, a head cut leaving m unfit for the layer: attn/trim.h). */
static attn_model *s_apply(const attn_model *md, int head)
{
    int st;
    if (head == S_CUT_FFN)
        return attn_trim_ffn(md, &st);
    return head == S_CUT_BLOCK ? attn_trim_block(md, &st) : attn_trim_head(md, head, &st);
}

static void s_name(const s_cut *cut, char *buf, size_t len)
{
    if (cut->head == S_CUT_BLOCK)
        snprintf(buf, len, "self-attention block");
    else if (cut->head == S_CUT_FFN)
        snprintf(buf, len, "feed-forward layer");
    else
        snprintf(buf, len, "head %d", cut->head);
}

/* A model's time over the base's timed beside it. */
static double s_small_ratio(const s_figures *m)
{
    return m->us_small / m->ref_small;
}

static double s_large_ratio(const s_figures *m)
{
    return m->us_large / m->ref_large;
}

static void s_row(const char *what, const s_figures *m, const s_figures *base)
{
    printf("%-22s %+9.4f %8.1f %+6.1f%% %8.1f %+6.1f%% %9.2f MiB\n", what, m->ndcg - base->ndcg,
           m->us_small, 100 * (s_small_ratio(m) - 1), m->us_large, 100 * (s_large_ratio(m) - 1),
           m->table_bytes / 1048576.0);
}

static int s_cmp_loss(const void *a, const void *b)
{
    double x = ((const s_cut *)a)->m.ndcg, y = ((const s_cut *)b)->m.ndcg;
    return x > y ? -1 : x < y;   /* the smallest loss first */
}

/* Every single cut against the base model, printed.  Returns how many. */
static int s_single_cuts(s_ctx *c, const attn_model *md, const s_figures *base,
                         s_cut *cuts)
{
    int n = 0;
    printf("%-22s %9s %8s %7s %8s %7s %13s\n", "cut", "dNDCG@10", "small us", "", "large us", "",
           "tables");
    s_row("(none)", base, base);
    int first = md->ffn > 0 ? S_CUT_FFN : md->sa_len > 0 ? S_CUT_BLOCK : 0;
    for (int h = first; h < (md->heads > 1 ? md->heads : 0); h++) {
        attn_model *t = s_apply(md, h);
        if (!t)
            continue;
        cuts[n].head = h;
        if (s_measure(c, t, &cuts[n].m) == 0) {
            char name[40];
            s_name(&cuts[n], name, sizeof name);
            s_row(name, &cuts[n].m, base);
            n++;
        }
        attn_model_free(&t);
    }
    return n;
}

/* ---- 3. greedy ---------------------------------------------------------------- */

/* Heads are renumbered as they go: cutting head 1 makes head 2 the new 1. */
static int s_renumber(int head, const int *kept_heads, int n_kept)
{
    int shift = 0;
    for (int i = 0; i < n_kept; i++)
        shift += kept_heads[i] < head;
    return head - shift;
}

/* The model with every cut that passes, cheapest first; *n_kept cuts. */
static attn_model *s_greedy(s_ctx *c, const attn_model *md, const s_figures *base,
                            s_cut *cuts, int n, int *kept, int *n_kept, s_figures *final)
{
    qsort(cuts, (size_t)n, sizeof *cuts, s_cmp_loss);
    attn_model *cur = attn_model_clone(md);
    *final = *base;
    int heads_cut[S_MAX_CUTS], n_heads_cut = 0;
    *n_kept = 0;
    for (int i = 0; cur && i < n; i++) {
        if (base->ndcg - cuts[i].m.ndcg >= c->a->max_loss)
            continue;
        int h = cuts[i].head < 0 ? cuts[i].head
                                 : s_renumber(cuts[i].head, heads_cut, n_heads_cut);
        if (h >= 0 && cur->heads < 2)
            continue;
        attn_model *next = s_apply(cur, h);
        s_figures m;
        if (next && s_measure(c, next, &m) == 0 && base->ndcg - m.ndcg < c->a->max_loss &&
            s_small_ratio(&m) < s_small_ratio(final)) {
            attn_model_free(&cur);
            cur = next;
            *final = m;
            kept[(*n_kept)++] = i;
            if (cuts[i].head >= 0)
                heads_cut[n_heads_cut++] = cuts[i].head;
        } else {
            attn_model_free(&next);
        }
    }
    return cur;
}

/* ---- 4. the result ------------------------------------------------------------ */

static int s_save(const s_ctx *c, attn_model *t, const s_cut *cuts, const int *kept, int n_kept,
                  const s_figures *base, const s_figures *final)
{
    char config[512], metrics[256], list[256] = "";
    for (int i = 0; i < n_kept; i++) {
        char name[40];
        s_name(&cuts[kept[i]], name, sizeof name);
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s\"%s\"", i ? "," : "", name);
    }
    snprintf(config, sizeof config, "{\"trimmed_from\":%lld,\"cuts\":[%s],\"max_loss\":%g}",
             (long long)c->a->version, list, c->a->max_loss);
    snprintf(metrics, sizeof metrics, "{\"valid\":{\"protocol\":\"%s\",\"ndcg@10\":%.6f},"
             "\"valid_before_trim\":%.6f}", s_protocols[c->a->protocol], final->ndcg, base->ndcg);
    store *rw;
    store_err err;
    int64_t v;
    if (store_open(&rw, c->a->db, STORE_READWRITE, 10000, &err) != STORE_OK ||
        store_model_save(rw, t, config, metrics, c->a->activate, &v, &err) != STORE_OK) {
        fprintf(stderr, "attnctl model trim: %s\n", err.msg);
        store_close(&rw);
        return 1;
    }
    store_close(&rw);
    printf("%s: model version %lld%s: version %lld without %s; validation NDCG@10 %+.4f, "
           "small request %+.1f%%, large %+.1f%%, tables %.2f -> %.2f MiB\n", c->a->db,
           (long long)v, c->a->activate ? " (active)" : "", (long long)c->a->version, list,
           final->ndcg - base->ndcg, 100 * (s_small_ratio(final) - 1),
           100 * (s_large_ratio(final) - 1), base->table_bytes / 1048576.0,
           final->table_bytes / 1048576.0);
    return 0;
}

static int s_load(s_ctx *c, attn_model **md)
{
    store_err err;
    int refit = 0;
    if (store_open(&c->db, c->a->db, STORE_READONLY, 10000, &err) != STORE_OK ||
        store_catalog_load(c->db, &c->cat, &err) != STORE_OK ||
        store_model_load(c->db, c->a->version, md, &err) != STORE_OK ||
        store_model_refit(c->db, c->a->version, &refit, &err) != STORE_OK ||
        store_dataset_load(c->db, c->cat, &c->ds, &err) != STORE_OK) {
        fprintf(stderr, "attnctl model trim: %s\n", err.msg);
        return 1;
    }
    if (refit) {
        fprintf(stderr, "attnctl model trim: model version %lld was refit on the validation "
                "targets (attnctl train --refit): there is nothing held out to measure cuts on; "
                "trim the version it was refit from\n", (long long)c->a->version);
        return 1;
    }
    if (!(*md)->wq || !(*md)->wk || !(*md)->wv || !(*md)->wo) {
        fprintf(stderr, "attnctl model trim: model version %lld has identity projections: "
                "nothing to cut\n", (long long)c->a->version);
        return 1;
    }
    return 0;
}

static int s_trim(s_ctx *c, const attn_model *md)
{
    s_figures base, final;
    s_cut cuts[S_MAX_CUTS];
    if (s_measure(c, md, &base)) {
        fprintf(stderr, "attnctl model trim: cannot measure version %lld\n",
                (long long)c->a->version);
        return 1;
    }
    printf("version %lld: %d heads, m %d, self-attention %d, feed-forward %d; validation (%s) "
           "NDCG@10 %.4f; small request %.1f us, large %.1f us\n", (long long)c->a->version,
           md->heads, md->m, md->sa_len, md->ffn, s_protocols[c->a->protocol], base.ndcg,
           base.us_small, base.us_large);
    int n = s_single_cuts(c, md, &base, cuts), kept[S_MAX_CUTS], n_kept;
    attn_model *t = s_greedy(c, md, &base, cuts, n, kept, &n_kept, &final);
    int rc = 0;
    if (!t) {
        fprintf(stderr, "attnctl model trim: out of memory\n");
        rc = 1;
    } else if (n_kept == 0) {
        printf("nothing pays: no cut costs less than %g NDCG@10 and saves time; nothing "
               "written\n", c->a->max_loss);
    } else {
        rc = s_save(c, t, cuts, kept, n_kept, &base, &final);
    }
    attn_model_free(&t);
    return rc;
}

int cmd_model_trim(int argc, char **argv)
{
    s_args a = {.max_loss = 0.002, .protocol = ATTN_EVAL_FULL, .seconds = 0.5, .threads = 2};
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    s_ctx c = {.a = &a};
    attn_model *md = NULL;
    rc = s_load(&c, &md);
    if (rc == 0)
        rc = s_trim(&c, md);
    attn_model_free(&md);
    attn_tables_free(&c.base);
    store_dataset_free(&c.ds);
    store_catalog_free(&c.cat);
    store_close(&c.db);
    return rc;
}
