/* check_eval.c -- the evaluator: metrics, split, candidates, baselines, the
 * served-model scorer, and the chronological load from the store.
 *
 * Expected values are worked out by hand in the comments, on data small
 * enough to check on paper.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/abtest.h"
#include "attn/attn.h"
#include "attn/eval.h"
#include "attn/score.h"
#include "store/dataset.h"
#include "store/store.h"
#include "tests/testutil.h"

/* ---- metrics ---------------------------------------------------------------- */

/* The paired difference (eval --models): users where either side is
 * missing (NAN: not evaluated) are left out; by hand, d = 1, 0, 0, 1 has
 * mean 0.5 and sample variance 1/3, so z = 2 gives 0.5 +- 2 sqrt(1/12). */
START_TEST(test_paired)
{
    const double x[] = {1, 0, 1, NAN, 1}, y[] = {0, 0, 1, 0.5, 0};
    attn_ab_stat d = attn_ab_paired(x, y, 5, 2.0);
    ck_assert_int_eq(d.n, 4);
    ck_assert_double_eq_tol(d.mean, 0.5, 1e-12);
    ck_assert_double_eq_tol(d.var, 1.0 / 3.0, 1e-12);
    ck_assert_double_eq_tol(d.lo, 0.5 - 2.0 * sqrt(1.0 / 12.0), 1e-12);
    ck_assert_double_eq_tol(d.hi, 0.5 + 2.0 * sqrt(1.0 / 12.0), 1e-12);
    /* y - x is the mirror image. */
    attn_ab_stat m = attn_ab_paired(y, x, 5, 2.0);
    ck_assert_double_eq_tol(m.mean, -0.5, 1e-12);
    ck_assert_double_eq_tol(m.lo, -d.hi, 1e-12);
    /* Identical sides: exactly 0, an interval of no width. */
    attn_ab_stat z = attn_ab_paired(x, x, 5, 1.96);
    ck_assert(z.n == 4 && z.mean == 0 && z.lo == 0 && z.hi == 0);
    /* Nothing to pair. */
    const double nan2[] = {NAN, NAN};
    ck_assert_int_eq(attn_ab_paired(nan2, y, 2, 1.96).n, 0);
}
END_TEST

START_TEST(test_metrics)
{
    ck_assert_double_eq_tol(attn_eval_ndcg(0, 10), 1.0, 1e-12);
    ck_assert_double_eq_tol(attn_eval_ndcg(1, 10), 1.0 / log2(3.0), 1e-12);   /* 0.6309 */
    ck_assert_double_eq_tol(attn_eval_ndcg(2, 10), 0.5, 1e-12);               /* 1/log2(4) */
    ck_assert_double_eq_tol(attn_eval_ndcg(9, 10), 1.0 / log2(11.0), 1e-12);  /* 0.2891 */
    ck_assert_double_eq_tol(attn_eval_ndcg(10, 10), 0.0, 1e-12);
    ck_assert_double_eq_tol(attn_eval_ndcg(3, 3), 0.0, 1e-12);
    ck_assert_double_eq_tol(attn_eval_hr(9, 10), 1.0, 1e-12);
    ck_assert_double_eq_tol(attn_eval_hr(10, 10), 0.0, 1e-12);
    ck_assert_double_eq_tol(attn_eval_hr(0, 1), 1.0, 1e-12);
}
END_TEST

START_TEST(test_rank_ties)
{
    /* Target 0 scores 0.5: one candidate above, one equal (counted against
     * it: pessimistic), one below -> rank 2. */
    double score[] = {0.5, 0.7, 0.5, 0.1};
    ck_assert_int_eq(attn_eval_rank(score, NULL, 4, 0), 2);
    ck_assert_int_eq(attn_eval_rank(score, NULL, 4, 1), 0);
    ck_assert_int_eq(attn_eval_rank(score, NULL, 4, 3), 3);
    /* A tie key larger than the equal candidate's wins the tie ... */
    double tie[] = {2.0, 1.0, 1.0, 0.0};
    ck_assert_int_eq(attn_eval_rank(score, tie, 4, 0), 1);
    /* ... an equal one does not. */
    double tie2[] = {1.0, 5.0, 1.0, 0.0};
    ck_assert_int_eq(attn_eval_rank(score, tie2, 4, 0), 2);
    /* A constant scorer ranks the target last. */
    double flat[20] = {0};
    ck_assert_int_eq(attn_eval_rank(flat, NULL, 20, 0), 19);
}
END_TEST

/* ---- split and candidates ---------------------------------------------------- */

START_TEST(test_split)
{
    /* Users of 1, 2, 3 and 5 events. */
    uint64_t off[] = {0, 1, 3, 6, 11};
    uint32_t row[11] = {0};
    attn_seqs s = {.n_users = 4, .n_rows = 3, .off = off, .row = row};
    const int64_t test[] = {-1, 1, 2, 4}, valid[] = {-1, -1, 1, 3};
    const uint64_t train[] = {0, 0, 1, 3};
    for (uint32_t u = 0; u < 4; u++) {
        ck_assert_int_eq(attn_eval_target(&s, u, ATTN_EVAL_TEST), test[u]);
        ck_assert_int_eq(attn_eval_target(&s, u, ATTN_EVAL_VALID), valid[u]);
        ck_assert_uint_eq(attn_eval_train_len(&s, u), train[u]);
    }
    /* Refit: only the test target is held out; the targets do not move. */
    s.refit = 1;
    const uint64_t train_refit[] = {0, 1, 2, 4};
    for (uint32_t u = 0; u < 4; u++) {
        ck_assert_int_eq(attn_eval_target(&s, u, ATTN_EVAL_TEST), test[u]);
        ck_assert_uint_eq(attn_eval_train_len(&s, u), train_refit[u]);
    }
}
END_TEST

START_TEST(test_candidates_full)
{
    /* Catalog of 10 rows; events 3 1 4 1 5 (item 1 twice). */
    uint64_t off[] = {0, 5};
    uint32_t row[] = {3, 1, 4, 1, 5};
    attn_seqs s = {.n_users = 1, .n_rows = 10, .off = off, .row = row};
    attn_eval_opts o;
    attn_eval_defaults(&o);
    o.protocol = ATTN_EVAL_FULL;
    uint8_t mark[10] = {0};
    uint32_t cand[10];
    int n;
    /* Test: target 5, history {3, 1, 4, 1}: every other row but those. */
    ck_assert_int_eq(attn_eval_candidates(&s, 0, &o, mark, cand, &n), ATTN_OK);
    const uint32_t want[] = {5, 0, 2, 6, 7, 8, 9};
    ck_assert_int_eq(n, 7);
    for (int i = 0; i < n; i++)
        ck_assert_uint_eq(cand[i], want[i]);
    /* Valid: target 1 (also in its history {3, 1, 4}) stays a candidate. */
    o.split = ATTN_EVAL_VALID;
    ck_assert_int_eq(attn_eval_candidates(&s, 0, &o, mark, cand, &n), ATTN_OK);
    const uint32_t want_v[] = {1, 0, 2, 5, 6, 7, 8, 9};
    ck_assert_int_eq(n, 8);
    for (int i = 0; i < n; i++)
        ck_assert_uint_eq(cand[i], want_v[i]);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(mark[i], 0);
}
END_TEST

START_TEST(test_candidates_sampled)
{
    enum { N = 300 };
    tu_rng r = {5};
    uint64_t off[] = {0, 20};
    uint32_t row[20];
    for (int i = 0; i < 20; i++)
        row[i] = (uint32_t)(tu_next(&r) % N);
    attn_seqs s = {.n_users = 1, .n_rows = N, .off = off, .row = row};
    attn_eval_opts o;
    attn_eval_defaults(&o);
    uint8_t mark[N] = {0};
    uint32_t a[N], b[N], c[N];
    int na, nb, nc;
    ck_assert_int_eq(attn_eval_candidates(&s, 0, &o, mark, a, &na), ATTN_OK);
    ck_assert_int_eq(na, 101);
    ck_assert_uint_eq(a[0], row[19]);
    for (int i = 1; i < na; i++) {
        for (int j = 0; j < 20; j++)
            ck_assert_msg(a[i] != row[j], "negative %u was interacted with", a[i]);
        for (int j = 1; j < i; j++)
            ck_assert_msg(a[i] != a[j], "negative %u drawn twice", a[i]);
    }
    for (int i = 0; i < N; i++)
        ck_assert_uint_eq(mark[i], 0);
    /* Same seed, same draw; another seed, another draw. */
    ck_assert_int_eq(attn_eval_candidates(&s, 0, &o, mark, b, &nb), ATTN_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof(uint32_t) * 101), 0);
    o.seed = 2;
    ck_assert_int_eq(attn_eval_candidates(&s, 0, &o, mark, c, &nc), ATTN_OK);
    ck_assert_int_ne(memcmp(a, c, sizeof(uint32_t) * 101), 0);
}
END_TEST

/* A scorer that knows the answer, and one that knows nothing. */
static int s_oracle(void *ctx, const attn_eval_query *q, double *score, double *tie)
{
    (void)ctx;
    (void)tie;
    for (int i = 0; i < q->n_cand; i++)
        score[i] = i == 0 ? 1.0 : 0.0;
    return ATTN_OK;
}

static int s_flat(void *ctx, const attn_eval_query *q, double *score, double *tie)
{
    (void)ctx;
    (void)tie;
    for (int i = 0; i < q->n_cand; i++)
        score[i] = 0.25;
    return ATTN_OK;
}

/* Checks the runner hands every query its history, newest first. */
static int s_history_check(void *ctx, const attn_eval_query *q, double *score, double *tie)
{
    const attn_seqs *s = ctx;
    (void)tie;
    const uint32_t *ev = s->row + s->off[q->user];
    int64_t t = attn_eval_target(s, q->user, ATTN_EVAL_TEST);
    ck_assert_int_eq(q->n_hist, t);
    for (int j = 0; j < q->n_hist; j++)
        ck_assert_uint_eq(q->hist[j], ev[t - 1 - j]);
    ck_assert_uint_eq(q->cand[0], ev[t]);
    for (int i = 0; i < q->n_cand; i++)
        score[i] = 0.0;
    return ATTN_OK;
}

static int s_nan(void *ctx, const attn_eval_query *q, double *score, double *tie)
{
    (void)ctx;
    (void)tie;
    for (int i = 0; i < q->n_cand; i++)
        score[i] = i == 3 ? NAN : 0.0;
    return ATTN_OK;
}

START_TEST(test_run)
{
    /* 50 rows; users of 1, 5 and 12 events; the 1-event user is skipped. */
    enum { N = 50 };
    uint64_t off[] = {0, 1, 6, 18};
    uint32_t row[18];
    for (int i = 0; i < 18; i++)
        row[i] = (uint32_t)((7 * i + 3) % N);
    attn_seqs s = {.n_users = 3, .n_rows = N, .off = off, .row = row};
    attn_eval_opts o;
    attn_eval_defaults(&o);
    attn_eval_result r;
    for (int p = 0; p < 2; p++) {
        o.protocol = p ? ATTN_EVAL_FULL : ATTN_EVAL_SAMPLED;
        ck_assert_int_eq(attn_eval_run(&s, &o, s_oracle, NULL, &r), ATTN_OK);
        ck_assert_uint_eq(r.users, 2);
        ck_assert_uint_eq(r.skipped, 1);
        ck_assert_double_eq_tol(r.hr, 1.0, 1e-12);
        ck_assert_double_eq_tol(r.ndcg, 1.0, 1e-12);
        ck_assert_int_eq(attn_eval_run(&s, &o, s_flat, NULL, &r), ATTN_OK);
        ck_assert_double_eq_tol(r.hr, 0.0, 1e-12);
        ck_assert_int_eq(attn_eval_run(&s, &o, s_history_check, &s, &r), ATTN_OK);
        ck_assert_int_eq(attn_eval_run(&s, &o, s_nan, NULL, &r), ATTN_ERANGE);
        /* Per user: the oracle's hits, NAN for the skipped user. */
        double hr_u[3], nd_u[3];
        ck_assert_int_eq(attn_eval_run_users(&s, &o, s_oracle, NULL, &r, hr_u, nd_u), ATTN_OK);
        ck_assert(isnan(hr_u[0]) && isnan(nd_u[0]));
        ck_assert(hr_u[1] == 1 && hr_u[2] == 1 && nd_u[1] == 1 && nd_u[2] == 1);
        ck_assert_int_eq(attn_eval_run_users(&s, &o, s_flat, NULL, &r, hr_u, NULL), ATTN_OK);
        ck_assert(isnan(hr_u[0]) && hr_u[1] == 0 && hr_u[2] == 0);
    }
    /* Sampled with fewer unseen items than negatives: all of them, counted. */
    o.protocol = ATTN_EVAL_SAMPLED;
    o.n_neg = 46;
    ck_assert_int_eq(attn_eval_run(&s, &o, s_oracle, NULL, &r), ATTN_OK);
    ck_assert_uint_eq(r.short_neg, 2);
    /* Bad input. */
    o.n_neg = 0;
    ck_assert_int_eq(attn_eval_run(&s, &o, s_oracle, NULL, &r), ATTN_EINVAL);
    o.n_neg = 100;
    row[4] = N;
    ck_assert_int_eq(attn_eval_run(&s, &o, s_oracle, NULL, &r), ATTN_EINVAL);
    char why[128];
    ck_assert_int_eq(attn_seqs_check(&s, why, sizeof why), ATTN_EINVAL);
    ck_assert_msg(strstr(why, "outside the catalog"), "%s", why);
}
END_TEST

/* ---- baselines on a hand-made data set ----------------------------------------- */

/* Six rows.  u0 = 0 1 2 3 4 5 (training prefix 0 1 2 3), u1 = 1 2 3 0 5
 * (prefix 1 2 3), u2 = 2 2 (no prefix).  Training counts: row 0: 1,
 * rows 1-3: 2, rows 4-5: 0.  Transitions with window 2 and decay 0.5:
 * u0: 0>1 1, 1>2 1, 0>2 .5, 2>3 1, 1>3 .5; u1: 1>2 1, 2>3 1, 1>3 .5, so
 * 0>1 = 1, 0>2 = .5, 1>2 = 2, 1>3 = 1, 2>3 = 2. */
static uint64_t s_off[] = {0, 6, 11, 13};
static uint32_t s_row[] = {0, 1, 2, 3, 4, 5, 1, 2, 3, 0, 5, 2, 2};
static float s_emb[] = {1, 0, 0, 1, 1, 1, 2, 0, 0, 3, -1, 0};

START_TEST(test_baselines)
{
    attn_seqs s = {.n_users = 3, .n_rows = 6, .off = s_off, .row = s_row};
    attn_eval_base_opts bo = {.window = 2, .decay = 0.5};
    attn_eval_base *b = attn_eval_base_new(&s, s_emb, 2, 2, &bo);
    ck_assert_ptr_nonnull(b);
    const double counts[] = {1, 2, 2, 2, 0, 0};
    for (uint32_t i = 0; i < 6; i++)
        ck_assert_double_eq_tol(attn_eval_base_count(b, i), counts[i], 1e-12);

    uint32_t cand[] = {0, 1, 2, 3, 4, 5};
    double score[6], tie[6];
    attn_eval_query q = {.user = 0, .seed = 1, .cand = cand, .n_cand = 6};
    ck_assert_int_eq(attn_eval_popularity(b, &q, score, tie), ATTN_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(score[i], counts[i], 1e-12);

    /* Transition from history (newest first) 1, 0: c = 2: 1 * 2 + .5 * .5 = 2.25;
     * c = 3: 1 * 1 = 1; c = 1: .5 * 1 = .5; others 0; ties by count. */
    uint32_t hist[] = {1, 0};
    q.hist = hist;
    q.n_hist = 2;
    memset(tie, 0, sizeof tie);
    ck_assert_int_eq(attn_eval_transition(b, &q, score, tie), ATTN_OK);
    const double tr[] = {0, 0.5, 2.25, 1, 0, 0};
    for (int i = 0; i < 6; i++) {
        ck_assert_double_eq_tol(score[i], tr[i], 1e-12);
        ck_assert_double_eq_tol(tie[i], counts[i], 1e-12);
    }
    /* The scratch was cleared: a history with no transitions scores 0. */
    uint32_t hist2[] = {4, 5};
    q.hist = hist2;
    ck_assert_int_eq(attn_eval_transition(b, &q, score, tie), ATTN_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(score[i], 0.0, 1e-12);
    /* Only the window votes: 3 items back does not count. */
    uint32_t hist3[] = {4, 5, 1};
    q.hist = hist3;
    q.n_hist = 3;
    ck_assert_int_eq(attn_eval_transition(b, &q, score, tie), ATTN_OK);
    ck_assert_double_eq_tol(score[2], 0.0, 1e-12);

    /* Centroid of rows 0 (1,0) and 1 (0,1) is (.5,.5): cosine 1 with row 2
     * (1,1), 1/sqrt2 with rows 0, 1 and 3 (2,0), -1/sqrt2 with row 5 (-1,0). */
    q.hist = hist;
    q.n_hist = 2;
    uint32_t hist4[] = {0, 1};
    q.hist = hist4;
    ck_assert_int_eq(attn_eval_centroid(b, &q, score, tie), ATTN_OK);
    const double cs[] = {M_SQRT1_2, M_SQRT1_2, 1.0, M_SQRT1_2, M_SQRT1_2, -M_SQRT1_2};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(score[i], cs[i], 1e-6);

    /* Random: in [0, 1), a function of (seed, user). */
    double r1[6], r2[6], r3[6];
    attn_eval_random(b, &q, r1, tie);
    attn_eval_random(b, &q, r2, tie);
    q.seed = 2;
    attn_eval_random(b, &q, r3, tie);
    for (int i = 0; i < 6; i++) {
        ck_assert(r1[i] >= 0.0 && r1[i] < 1.0);
        ck_assert_double_eq(r1[i], r2[i]);
    }
    ck_assert(memcmp(r1, r3, sizeof r1) != 0);
    attn_eval_base_free(&b);
    ck_assert_ptr_null(b);
    attn_eval_base_free(NULL);
}
END_TEST

/* ---- the served model ------------------------------------------------------------ */

/* Sequences where each item follows from the one two steps back: the
 * transition baseline needs a window of 2 or more, tuning must find one,
 * and what it returns is the best of its grid. */
START_TEST(test_transition_tune)
{
    enum { U = 40, N = 30, LEN = 12 };
    static uint64_t off[U + 1];
    static uint32_t row[U * LEN];
    tu_rng r = {7};
    for (int u = 0; u < U; u++) {
        off[u + 1] = off[u] + LEN;
        uint32_t *ev = row + u * LEN;
        ev[0] = (uint32_t)(tu_next(&r) % N);
        ev[1] = (uint32_t)(tu_next(&r) % N);
        for (int t = 2; t < LEN; t++)
            ev[t] = (ev[t - 2] + 1) % N;
    }
    attn_seqs s = {.n_users = U, .n_rows = N, .off = off, .row = row};
    float emb[N * 2] = {0};
    attn_eval_base_opts bo = {.window = 4, .decay = 0.5};
    attn_eval_base *b = attn_eval_base_new(&s, emb, 2, 2, &bo);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(attn_eval_base_set_transition(b, 5, 0.5), ATTN_EINVAL);
    ck_assert_int_eq(attn_eval_base_set_transition(b, 2, 0.0), ATTN_EINVAL);
    attn_eval_opts o;
    attn_eval_defaults(&o);
    o.split = ATTN_EVAL_VALID;
    o.protocol = ATTN_EVAL_FULL;
    attn_eval_tuned t;
    ck_assert_int_eq(attn_eval_base_tune(b, &o, &t), ATTN_OK);
    ck_assert_int_eq(t.tried, 3 * 4);     /* windows 1, 2, 4 x four decays */
    ck_assert_int_ge(t.window, 2);
    /* Nothing in the grid beats it, and b now scores with it. */
    static const double decays[] = {0.25, 0.5, 0.75, 1.0};
    attn_eval_result res;
    for (int w = 1; w <= 4; w *= 2)
        for (int k = 0; k < 4; k++) {
            ck_assert_int_eq(attn_eval_base_set_transition(b, w, decays[k]), ATTN_OK);
            ck_assert_int_eq(attn_eval_run(&s, &o, attn_eval_transition, b, &res), ATTN_OK);
            ck_assert(res.ndcg <= t.ndcg + 1e-12);
        }
    ck_assert_int_eq(attn_eval_base_set_transition(b, t.window, t.decay), ATTN_OK);
    ck_assert_int_eq(attn_eval_run(&s, &o, attn_eval_transition, b, &res), ATTN_OK);
    ck_assert_double_eq_tol(res.ndcg, t.ndcg, 1e-12);
    ck_assert(t.ndcg > 0.7);
    ck_assert_int_eq(attn_eval_base_set_transition(b, 1, 0.5), ATTN_OK);
    ck_assert_int_eq(attn_eval_run(&s, &o, attn_eval_transition, b, &res), ATTN_OK);
    ck_assert(res.ndcg < 0.5);
    /* max_users: every 3rd user of 40 -> users 0, 3, ..., 39: 14 of them. */
    o.max_users = 15;
    ck_assert_int_eq(attn_eval_run(&s, &o, attn_eval_transition, b, &res), ATTN_OK);
    ck_assert_uint_eq(res.users, 14);
    attn_eval_base_free(&b);
}
END_TEST

START_TEST(test_model_fast_path)
{
    enum { N = 40, D = 8, M = 8, H = 2, LMAX = 6 };
    tu_rng r = {9};
    float *emb = malloc(sizeof(float) * N * D);
    tu_fill_normal(&r, emb, N * D, 0.4f);
    int64_t item_id[N];
    for (int i = 0; i < N; i++)
        item_id[i] = 100 + 3 * i;
    /* A model over every other item, so some rows have no parameters. */
    attn_model *md = attn_model_new(D, M, H, LMAX, N / 2, 1);
    ck_assert_ptr_nonnull(md);
    tu_fill_normal(&r, md->wq, D * M, 0.5f);
    tu_fill_normal(&r, md->wk, D * M, 0.5f);
    tu_fill_normal(&r, md->wv, D * M, 0.5f);
    tu_fill_normal(&r, md->wo, D * M, 0.5f);
    tu_fill_normal(&r, md->pos_bias, LMAX, 0.5f);
    tu_fill_normal(&r, md->item_bias, N / 2, 0.5f);
    tu_fill_normal(&r, md->residual, (N / 2) * D, 0.2f);
    for (int i = 0; i < N / 2; i++)
        md->item_ids[i] = item_id[2 * i];
    int64_t *pi = attn_eval_param_index(md, item_id, N);
    ck_assert_int_eq(pi[4], 2);
    ck_assert_int_eq(pi[5], -1);
    attn_eval_model *em;
    ck_assert_int_eq(attn_eval_model_new(&em, md, emb, N, D, pi, 1), ATTN_OK);
    /* A 10-event history (cut to l_max = 6) and every row as a candidate. */
    uint32_t hist[10], cand[N];
    float hw[10];
    for (int j = 0; j < 10; j++) {
        hist[j] = (uint32_t)((5 * j + 1) % N);
        hw[j] = 0.5f + 0.1f * j;
    }
    for (int i = 0; i < N; i++)
        cand[i] = (uint32_t)i;
    attn_eval_query q = {.user = 0, .hist = hist, .hist_weight = hw, .n_hist = 10,
                         .cand = cand, .n_cand = N};
    double fast[N], ref[N], tie[N];
    ck_assert_int_eq(attn_eval_model_score(em, &q, fast, tie), ATTN_OK);
    attn_request rq = {.hist = hist, .hist_weight = hw, .n_hist = LMAX, .cand = cand,
                       .n_cand = N, .k = 1};
    ck_assert_int_eq(attn_score_ref(md, emb, N, D, pi, &rq, ref, NULL), ATTN_OK);
    for (int i = 0; i < N; i++)
        ck_assert_msg(fabs(fast[i] - ref[i]) <= 1e-4 * fmax(1.0, fabs(ref[i])),
                      "row %d: fast %.7g, reference %.7g", i, fast[i], ref[i]);
    attn_eval_model_free(&em);
    ck_assert_ptr_null(em);
    free(pi);
    attn_model_free(&md);
    free(emb);
}
END_TEST

/* ---- the chronological load -------------------------------------------------------- */

START_TEST(test_dataset_order)
{
    const char *path = tu_path("order.db");
    unlink(path);
    store_err err;
    ck_assert_msg(store_init(path, 2, &err) == STORE_OK, "%s", err.msg);
    store *db;
    ck_assert_msg(store_open(&db, path, STORE_READWRITE, 2000, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    int64_t id[6], u1, u2;
    const char *ext[] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) {
        float e[2] = {(float)i, 1.0f};
        /* "f" is imported but not embedded. */
        ck_assert_msg(store_item_put(db, ext[i], ext[i], "", i == 5 ? NULL : e, 1, &id[i],
                                     &err) == STORE_OK, "%s", err.msg);
    }
    ck_assert_int_eq(store_user_put(db, "u1", &u1, &err), STORE_OK);
    ck_assert_int_eq(store_user_put(db, "u2", &u2, &err), STORE_OK);
    /* u1: three events in the same second, written out of order, one of
     * them twice with different kinds; one earlier; one of an unembedded item. */
    ck_assert_int_eq(store_event_put(db, u1, id[2], 100, "view", 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u1, id[0], 100, "view", 2.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u1, id[4], 100, "view", 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u1, id[4], 100, "like", 3.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u1, id[1], 50, "view", 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u1, id[5], 60, "view", 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_event_put(db, u2, id[3], 10, "view", 1.0f, &err), STORE_OK);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);

    store_catalog *cat;
    ck_assert_msg(store_catalog_load(db, &cat, &err) == STORE_OK, "%s", err.msg);
    ck_assert_uint_eq(cat->n, 5);
    store_dataset *ds;
    ck_assert_msg(store_dataset_load(db, cat, &ds, &err) == STORE_OK, "%s", err.msg);
    ck_assert_uint_eq(ds->seqs.n_users, 2);
    ck_assert_uint_eq(ds->n_unembedded, 1);
    ck_assert_uint_eq(ds->n_single, 1);
    ck_assert_uint_eq(ds->n_events, 6);
    ck_assert_int_eq(ds->user_id[0], u1);
    /* Chronological: b(50), then the 100s by item id a, c, e, e ('like'
     * before 'view'). */
    const int64_t want[] = {id[1], id[0], id[2], id[4], id[4]};
    const float want_w[] = {1.0f, 2.0f, 1.0f, 3.0f, 1.0f};
    ck_assert_uint_eq(ds->off[1], 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(cat->item_id[ds->row[i]], want[i]);
        ck_assert_double_eq(ds->weight[i], want_w[i]);
    }
    ck_assert_int_eq(attn_seqs_check(&ds->seqs, NULL, 0), ATTN_OK);
    /* Serving reads the same order backwards (newest first). */
    store_event ev[10];
    int n;
    ck_assert_int_eq(store_history(db, u1, 10, ev, &n, &err), STORE_OK);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (store_catalog_row(cat, ev[i].item_id) >= 0)
            ck_assert_int_eq(ev[i].item_id, want[4 - k++]);
    ck_assert_int_eq(k, 5);
    store_dataset_free(&ds);
    ck_assert_ptr_null(ds);
    store_dataset_free(NULL);
    store_catalog_free(&cat);
    store_close(&db);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_set_timeout(tc, 30 * tu_slowdown());
    tcase_add_test(tc, test_metrics);
    tcase_add_test(tc, test_paired);
    tcase_add_test(tc, test_rank_ties);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_candidates_full);
    tcase_add_test(tc, test_candidates_sampled);
    tcase_add_test(tc, test_run);
    tcase_add_test(tc, test_baselines);
    tcase_add_test(tc, test_transition_tune);
    tcase_add_test(tc, test_model_fast_path);
    tcase_add_test(tc, test_dataset_order);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
