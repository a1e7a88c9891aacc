/* abtest.h -- comparing the arms of an experiment: means with confidence
 * intervals, and the difference of two arms with its interval.
 *
 *     double x[] = {...};                 // one value per user (their mean hit rate)
 *     attn_ab_stat a = attn_ab_mean(x, n, 1.96);
 *     printf("%.3f [%.3f, %.3f]\n", a.mean, a.lo, a.hi);
 *     attn_ab_stat d = attn_ab_diff(&treat, &control, 1.96);   // treat - control
 *     if (d.lo > 0) puts("treatment is better");
 *
 * The unit is the user, not the impression: one user's impressions are
 * correlated (the same tastes, often the same list), so treating them as
 * independent would make every interval too narrow.  Each user contributes
 * the mean over their impressions; an arm's interval is the normal
 * approximation mean +- z sd / sqrt(n) over users, and a difference uses
 * Welch's standard error sqrt(sa^2/na + sb^2/nb).  With a few hundred users
 * per arm the normal and t intervals differ in the third digit.
 */
#ifndef ATTN_ABTEST_H
#define ATTN_ABTEST_H

typedef struct attn_ab_stat {
    int n;              /* users */
    double mean;
    double var;         /* sample variance of the per-user values (n - 1) */
    double lo, hi;      /* the interval */
} attn_ab_stat;

/* Mean and interval of x[0..n) at z (1.96 for 95%).  n = 0 gives a mean of
 * 0 and an empty interval; n = 1 an interval of zero width around it. */
attn_ab_stat attn_ab_mean(const double *x, int n, double z);

/* a - b with its interval at z. */
attn_ab_stat attn_ab_diff(const attn_ab_stat *a, const attn_ab_stat *b, double z);

/* Paired: the mean of x[i] - y[i] over the i where both are finite (n is
 * their count), with the interval mean +- z sd / sqrt(n) of those
 * differences.  For two models measured on the same users: the users'
 * own difficulty cancels in each difference, so the interval is far
 * narrower than attn_ab_diff's of two independent groups. */
attn_ab_stat attn_ab_paired(const double *x, const double *y, int n, double z);

#endif
