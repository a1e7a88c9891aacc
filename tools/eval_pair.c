/* eval_pair.c -- see eval_pair.h. */
#include "tools/eval_pair.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "attn/abtest.h"

#define S_Z95 1.959963984540054   /* two-sided 95% normal quantile */

struct cmd_eval_pair {
    int n_models;
    uint32_t n_users;
    const int64_t *versions;       /* borrowed */
    double *buf[2];                /* one run's HR, NDCG per user */
    double *sum;                   /* [protocol][model][metric][user] */
    int *runs;                     /* [protocol][model]: runs added */
};

static double *s_sum(const cmd_eval_pair *p, int protocol, int k, int metric)
{
    size_t cell = ((size_t)protocol * (size_t)p->n_models + (size_t)k) * 2 + (size_t)metric;
    return p->sum + cell * p->n_users;
}

cmd_eval_pair *cmd_eval_pair_new(int n_models, uint32_t n_users, const int64_t *versions)
{
    cmd_eval_pair *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_models = n_models;
    p->n_users = n_users;
    p->versions = versions;
    size_t n = n_users ? n_users : 1;
    p->buf[0] = malloc(n * sizeof(double));
    p->buf[1] = malloc(n * sizeof(double));
    p->sum = calloc(2 * (size_t)n_models * 2 * n, sizeof(double));
    p->runs = calloc(2 * (size_t)n_models, sizeof(int));
    if (!p->buf[0] || !p->buf[1] || !p->sum || !p->runs)
        cmd_eval_pair_free(&p);
    return p;
}

void cmd_eval_pair_free(cmd_eval_pair **pp)
{
    if (!pp || !*pp)
        return;
    cmd_eval_pair *p = *pp;
    free(p->buf[0]);
    free(p->buf[1]);
    free(p->sum);
    free(p->runs);
    free(p);
    *pp = NULL;
}

double *cmd_eval_pair_hr(cmd_eval_pair *p)
{
    return p->buf[0];
}

double *cmd_eval_pair_ndcg(cmd_eval_pair *p)
{
    return p->buf[1];
}

void cmd_eval_pair_add(cmd_eval_pair *p, int protocol, int k)
{
    for (int metric = 0; metric < 2; metric++) {
        double *s = s_sum(p, protocol, k, metric);
        for (uint32_t u = 0; u < p->n_users; u++)
            s[u] += p->buf[metric][u];   /* NAN (user not evaluated) stays NAN */
    }
    p->runs[protocol * p->n_models + k]++;
}

cmd_eval_diff cmd_eval_pair_diff(const cmd_eval_pair *p, int protocol, int k, int metric)
{
    /* Sums over the same number of seeds on both sides: their difference
     * over that number is the difference of the per-user means. */
    const double *b = s_sum(p, protocol, k, metric), *a = s_sum(p, protocol, 0, metric);
    int runs = p->runs[protocol * p->n_models + k];
    attn_ab_stat d = attn_ab_paired(b, a, (int)p->n_users, S_Z95);
    double r = runs > 0 ? runs : 1;
    return (cmd_eval_diff){d.mean / r, d.lo / r, d.hi / r, d.n};
}

static const char *const s_proto[2] = {"sampled", "full"};
static const char *const s_metric[2] = {"HR@10", "NDCG@10"};
static const char *const s_metric_json[2] = {"hr@10", "ndcg@10"};

void cmd_eval_pair_print(const cmd_eval_pair *p)
{
    printf("paired: each version against v%lld on the same users and candidates; mean "
           "difference and its 95%% interval over users\n", (long long)p->versions[0]);
    printf("%-9s %-13s %-8s %-10s %-22s %s\n", "protocol", "versions", "metric", "difference",
           "95% interval", "users");
    for (int k = 1; k < p->n_models; k++)
        for (int proto = 0; proto < 2; proto++)
            for (int metric = 0; metric < 2; metric++) {
                cmd_eval_diff d = cmd_eval_pair_diff(p, proto, k, metric);
                char vs[32];
                snprintf(vs, sizeof vs, "v%lld - v%lld", (long long)p->versions[k],
                         (long long)p->versions[0]);
                printf("%-9s %-13s %-8s %+.4f    [%+.4f, %+.4f]     %d%s\n", s_proto[proto], vs,
                       s_metric[metric], d.mean, d.lo, d.hi, d.users,
                       d.lo > 0 ? "  better" : d.hi < 0 ? "  worse" : "");
            }
}

void cmd_eval_pair_json(const cmd_eval_pair *p)
{
    int first = 1;
    for (int k = 1; k < p->n_models; k++)
        for (int proto = 0; proto < 2; proto++)
            for (int metric = 0; metric < 2; metric++) {
                cmd_eval_diff d = cmd_eval_pair_diff(p, proto, k, metric);
                printf("%s{\"protocol\":\"%s\",\"version\":%lld,\"against\":%lld,"
                       "\"metric\":\"%s\",\"diff\":%.6f,\"lo\":%.6f,\"hi\":%.6f,\"users\":%d}",
                       first ? "" : ",", s_proto[proto], (long long)p->versions[k],
                       (long long)p->versions[0], s_metric_json[metric], d.mean, d.lo, d.hi,
                       d.users);
                first = 0;
            }
}
