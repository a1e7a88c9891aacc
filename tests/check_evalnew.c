/* check_evalnew.c -- the runner that ranks the events of items a model
 * never saw (attn/eval_new.h): which events are queries, their histories
 * and candidates under each protocol, the metrics against hand-computed
 * ranks, and the training data the baselines get.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/eval_new.h"
#include "tests/testutil.h"

/* Ten rows; rows 8 and 9 are fresh.
 *   user 0: 1 2 8 3 9    two queries (8 at 2, 9 at 4)
 *   user 1: 9 4          9 is the first event: no history, skipped
 *   user 2: 5 6          nothing fresh */
static const uint64_t s_off[] = {0, 5, 7, 9};
static const uint32_t s_row[] = {1, 2, 8, 3, 9, 9, 4, 5, 6};
static const uint8_t s_fresh[10] = {[8] = 1, [9] = 1};
static const attn_seqs s_seqs = {.n_users = 3, .n_rows = 10, .off = s_off, .row = s_row};

/* Score = the row number: higher rows rank first. */
static int s_by_row(void *ctx, const attn_eval_query *q, double *score, double *tie)
{
    (void)ctx;
    (void)tie;
    for (int i = 0; i < q->n_cand; i++)
        score[i] = q->cand[i];
    return ATTN_OK;
}

/* Records what a query looked like and checks the history is the events
 * before the target, newest first. */
typedef struct s_seen {
    int n;
    uint32_t target[16], n_cand[16], n_hist[16];
    uint32_t cand[16][16];
} s_seen;

static int s_record(void *ctx, const attn_eval_query *q, double *score, double *tie)
{
    s_seen *s = ctx;
    (void)tie;
    ck_assert_int_lt(s->n, 16);
    uint64_t b = s_off[q->user];
    /* The target is the event right after the history. */
    ck_assert_uint_eq(q->cand[0], s_row[b + (uint64_t)q->n_hist]);
    for (int i = 0; i < q->n_hist; i++)
        ck_assert_uint_eq(q->hist[i], s_row[b + (uint64_t)q->n_hist - 1 - (uint64_t)i]);
    s->target[s->n] = q->cand[0];
    s->n_cand[s->n] = (uint32_t)q->n_cand;
    s->n_hist[s->n] = (uint32_t)q->n_hist;
    for (int i = 0; i < q->n_cand && i < 16; i++)
        s->cand[s->n][i] = q->cand[i];
    s->n++;
    for (int i = 0; i < q->n_cand; i++)
        score[i] = 0;
    return ATTN_OK;
}

START_TEST(test_full_and_fresh)
{
    attn_eval_new_opts o;
    attn_eval_new_defaults(&o);
    attn_eval_new_result r;
    /* full: target 8 after {2, 1}: candidates {0,3,4,5,6,7,8,9}, 9 ahead:
     * rank 1.  Target 9 after {3, 8, 2, 1}: {0,4,5,6,7,9}: rank 0. */
    o.protocol = ATTN_EVAL_NEW_FULL;
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_by_row, NULL, &r), ATTN_OK);
    ck_assert_uint_eq(r.queries, 2);
    ck_assert_uint_eq(r.users, 1);
    ck_assert_uint_eq(r.no_history, 1);
    ck_assert_double_eq_tol(r.ndcg, (1.0 / log2(3.0) + 1.0) / 2, 1e-12);
    ck_assert_double_eq_tol(r.hr, 1.0, 1e-12);
    s_seen seen = {0};
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_record, &seen, &r), ATTN_OK);
    ck_assert_int_eq(seen.n, 2);
    ck_assert_uint_eq(seen.n_cand[0], 8);
    ck_assert_uint_eq(seen.n_cand[1], 6);
    /* k = 1: only the second query is a hit; rank ties are pessimistic. */
    o.k = 1;
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_by_row, NULL, &r), ATTN_OK);
    ck_assert_double_eq_tol(r.hr, 0.5, 1e-12);
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_record, &seen, &r), ATTN_OK);
    ck_assert_double_eq_tol(r.hr, 0.0, 1e-12);      /* all scores equal: last */
    /* fresh: target 8 among {8, 9}: rank 1; target 9 among {9}: rank 0. */
    o.k = 10;
    o.protocol = ATTN_EVAL_NEW_FRESH;
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_record, &seen, &r), ATTN_OK);
    ck_assert_uint_eq(seen.n_cand[0], 2);
    ck_assert_uint_eq(seen.cand[0][1], 9);
    ck_assert_uint_eq(seen.n_cand[1], 1);
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_by_row, NULL, &r), ATTN_OK);
    ck_assert_double_eq_tol(r.ndcg, (1.0 / log2(3.0) + 1.0) / 2, 1e-12);
}
END_TEST

START_TEST(test_sampled)
{
    attn_eval_new_opts o;
    attn_eval_new_defaults(&o);
    o.n_neg = 3;
    attn_eval_new_result r;
    s_seen a = {0}, b = {0}, c = {0};
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_record, &a, &r), ATTN_OK);
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_record, &b, &r), ATTN_OK);
    ck_assert_int_eq(a.n, 2);
    /* Negatives: distinct, never a row of user 0 (1 2 3 8 9), the same on
     * every run of the same seed. */
    for (int q = 0; q < a.n; q++) {
        ck_assert_uint_eq(a.n_cand[q], 4);
        ck_assert(!memcmp(a.cand[q], b.cand[q], sizeof a.cand[q]));
        for (uint32_t i = 1; i < a.n_cand[q]; i++) {
            uint32_t x = a.cand[q][i];
            ck_assert_msg(x != 1 && x != 2 && x != 3 && x != 8 && x != 9, "row %u seen", x);
            for (uint32_t j = 1; j < i; j++)
                ck_assert_uint_ne(a.cand[q][j], x);
        }
    }
    /* Another seed, other draws (over both queries, 3 of the 5 unseen). */
    o.seed = 99;
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_record, &c, &r), ATTN_OK);
    ck_assert(memcmp(a.cand, c.cand, sizeof a.cand) != 0);
    /* More negatives than unseen rows: all five, counted. */
    o.n_neg = 50;
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_by_row, NULL, &r), ATTN_OK);
    ck_assert_uint_eq(r.short_neg, 2);
    /* Bad input is refused, not ranked. */
    o.n_neg = 0;
    ck_assert_int_eq(attn_eval_new_run(&s_seqs, s_fresh, &o, s_by_row, NULL, &r), ATTN_EINVAL);
    attn_seqs bad = s_seqs;
    bad.n_rows = 5;
    o.n_neg = 3;
    ck_assert_int_eq(attn_eval_new_run(&bad, s_fresh, &o, s_by_row, NULL, &r), ATTN_EINVAL);
}
END_TEST

static int s_nan(void *ctx, const attn_eval_query *q, double *score, double *tie)
{
    (void)ctx;
    (void)tie;
    for (int i = 0; i < q->n_cand; i++)
        score[i] = i == 1 ? NAN : 0;
    return ATTN_OK;
}

START_TEST(test_train_and_errors)
{
    float w[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    attn_seqs s = s_seqs;
    s.weight = w;
    attn_eval_new_train t;
    ck_assert_int_eq(attn_eval_new_train_make(&s, s_fresh, &t), ATTN_OK);
    /* user 0: 1 2 3; user 1: 4; user 2: 5 6 -- with their weights. */
    static const uint64_t off[] = {0, 3, 4, 6};
    static const uint32_t row[] = {1, 2, 3, 4, 5, 6};
    static const float wt[] = {1, 2, 4, 7, 8, 9};
    ck_assert(!memcmp(t.off, off, sizeof off));
    ck_assert(!memcmp(t.row, row, sizeof row));
    ck_assert(!memcmp(t.weight, wt, sizeof wt));
    ck_assert_int_eq(t.seqs.refit, 0);
    attn_eval_new_train_free(&t);
    attn_eval_new_train_free(&t);
    attn_eval_new_opts o;
    attn_eval_new_defaults(&o);
    o.protocol = ATTN_EVAL_NEW_FULL;
    attn_eval_new_result r;
    ck_assert_int_eq(attn_eval_new_run(&s, s_fresh, &o, s_nan, NULL, &r), ATTN_ERANGE);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("evalnew");
    TCase *tc = tcase_create("runner");
    tcase_add_test(tc, test_full_and_fresh);
    tcase_add_test(tc, test_sampled);
    tcase_add_test(tc, test_train_and_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
