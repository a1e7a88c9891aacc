/* abtest.c -- see abtest.h.  Sums in double, two passes: the variance of
 * hit rates near 0 or 1 loses digits in the one-pass formula. */
#include "attn/abtest.h"

#include <math.h>

attn_ab_stat attn_ab_mean(const double *x, int n, double z)
{
    attn_ab_stat s = {.n = n};
    if (n == 0)
        return s;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    s.mean = sum / n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (x[i] - s.mean) * (x[i] - s.mean);
    s.var = n > 1 ? ss / (n - 1) : 0;
    double half = z * sqrt(s.var / n);
    s.lo = s.mean - half;
    s.hi = s.mean + half;
    return s;
}

attn_ab_stat attn_ab_diff(const attn_ab_stat *a, const attn_ab_stat *b, double z)
{
    attn_ab_stat d = {.n = a->n + b->n, .mean = a->mean - b->mean};
    double se2 = (a->n ? a->var / a->n : 0) + (b->n ? b->var / b->n : 0);
    d.var = se2;
    double half = z * sqrt(se2);
    d.lo = d.mean - half;
    d.hi = d.mean + half;
    return d;
}

attn_ab_stat attn_ab_paired(const double *x, const double *y, int n, double z)
{
    attn_ab_stat s = {0};
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) {
            sum += x[i] - y[i];
            s.n++;
        }
    if (s.n == 0)
        return s;
    s.mean = sum / s.n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) {
            double d = x[i] - y[i] - s.mean;
            ss += d * d;
        }
    s.var = s.n > 1 ? ss / (s.n - 1) : 0;
    double half = z * sqrt(s.var / s.n);
    s.lo = s.mean - half;
    s.hi = s.mean + half;
    return s;
}
