/* train_net.c -- the per-step tables T = E W and the way back through them.
 *
 * Once per optimizer step: E = text + residual for every model item, the
 * d x 4m matrix W = [W_Q | W_K | W_V | W_Oᵀ], and T = E W (one sgemm split
 * by rows over the threads).  After the examples: dW = Eᵀ dT (per-thread
 * partial sums over row ranges, added in thread order) and dE = dT Wᵀ,
 * which is the residual's gradient because the text part is frozen.
 * Also the small fork-join helper every parallel part of the trainer uses.
 */
#include "attn/train_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/train_kern.h"

#define S_MAX_THREADS 64

typedef struct s_par {
    void (*fn)(void *arg, int i);
    void *arg;
    int i;
} s_par;

static void *s_par_main(void *p)
{
    s_par *job = p;
    job->fn(job->arg, job->i);
    return NULL;
}

void attn_tr_par(int n, void (*fn)(void *arg, int i), void *arg)
{
    if (n > S_MAX_THREADS)
        n = S_MAX_THREADS;
    pthread_t th[S_MAX_THREADS];
    s_par job[S_MAX_THREADS];
    int started[S_MAX_THREADS] = {0};
    for (int i = 1; i < n; i++) {
        job[i] = (s_par){fn, arg, i};
        started[i] = pthread_create(&th[i], NULL, s_par_main, &job[i]) == 0;
    }
    fn(arg, 0);
    for (int i = 1; i < n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            fn(arg, i);
    }
}

static void *s_alloc(size_t n)
{
    void *p = NULL;
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / sizeof(float) || posix_memalign(&p, 64, n * sizeof(float)) != 0)
        return NULL;
    memset(p, 0, n * sizeof(float));
    return p;
}

attn_tr_net *attn_tr_net_new(const attn_model *md, const float *emb, size_t ld,
                             const uint32_t *mi2row)
{
    if (!md || !emb || !md->wq || !md->wk || !md->wv || !md->wo || !md->pos_bias ||
        md->m % md->heads)
        return NULL;
    attn_tr_net *net = calloc(1, sizeof *net);
    if (!net)
        return NULL;
    net->md = md;
    net->d = md->d;
    net->m = md->m;
    net->heads = md->heads;
    net->dh = md->m / md->heads;
    net->l_max = md->l_max;
    net->n_mi = md->n_items;
    net->sa_len = md->sa_len;
    net->tw = (md->sa_len ? 8 : 4) * md->m;
    const size_t n = (size_t)md->n_items, d = (size_t)md->d, tw = (size_t)net->tw;
    net->text = s_alloc(n * d);
    net->E = s_alloc(n * d);
    net->W = s_alloc(d * tw);
    net->WT = s_alloc(d * tw);
    net->T = s_alloc(n * tw);
    if (!net->text || !net->E || !net->W || !net->WT || !net->T) {
        attn_tr_net_free(&net);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(net->text + i * d, emb + (size_t)mi2row[i] * ld, d * sizeof(float));
    return net;
}

void attn_tr_net_free(attn_tr_net **net_p)
{
    if (!net_p || !*net_p)
        return;
    attn_tr_net *net = *net_p;
    free(net->text);
    free(net->E);
    free(net->W);
    free(net->WT);
    free(net->T);
    free(net);
    *net_p = NULL;
}

typedef struct s_tables_job {
    attn_tr_net *net;
    int threads;
} s_tables_job;

static void s_rows(int64_t n, int i, int threads, int64_t *lo, int64_t *hi)
{
    *lo = n * i / threads;
    *hi = n * (i + 1) / threads;
}

static void s_tables_part(void *arg, int i)
{
    s_tables_job *job = arg;
    attn_tr_net *net = job->net;
    const attn_model *md = net->md;
    const int d = net->d, m4 = net->tw;
    int64_t lo, hi;
    s_rows(net->n_mi, i, job->threads, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        float *e = net->E + (size_t)r * d;
        const float *x = net->text + (size_t)r * d;
        if (md->residual) {
            const float *res = md->residual + (size_t)r * d;
            for (int k = 0; k < d; k++)
                e[k] = x[k] + res[k];
        } else {
            memcpy(e, x, (size_t)d * sizeof *e);
        }
    }
    if (hi > lo)
        attn_tr_kern_get()->mm_nn((int)(hi - lo), m4, d, net->E + (size_t)lo * d, (size_t)d,
                                  net->W, (size_t)m4, net->T + (size_t)lo * m4, (size_t)m4, 0);
}

void attn_tr_net_tables(attn_tr_net *net, int threads)
{
    const attn_model *md = net->md;
    const int d = net->d, m = net->m, m4 = net->tw;
    for (int i = 0; i < d; i++) {
        float *row = net->W + (size_t)i * m4;
        memcpy(row + ATTN_TR_Q * m, md->wq + (size_t)i * m, (size_t)m * sizeof(float));
        memcpy(row + ATTN_TR_K * m, md->wk + (size_t)i * m, (size_t)m * sizeof(float));
        memcpy(row + ATTN_TR_V * m, md->wv + (size_t)i * m, (size_t)m * sizeof(float));
        for (int t = 0; t < m; t++)
            row[ATTN_TR_G * m + t] = md->wo[(size_t)t * d + i];
        if (net->sa_len) {
            memcpy(row + ATTN_TR_SQ * m, md->sa_q + (size_t)i * m, (size_t)m * sizeof(float));
            memcpy(row + ATTN_TR_SK * m, md->sa_k + (size_t)i * m, (size_t)m * sizeof(float));
            memcpy(row + ATTN_TR_UK * m, md->sa_uk + (size_t)i * m, (size_t)m * sizeof(float));
            memcpy(row + ATTN_TR_UV * m, md->sa_uv + (size_t)i * m, (size_t)m * sizeof(float));
        }
    }
    for (int i = 0; i < d; i++)
        for (int t = 0; t < m4; t++)
            net->WT[(size_t)t * d + i] = net->W[(size_t)i * m4 + t];
    s_tables_job job = {net, threads < 1 ? 1 : threads};
    attn_tr_par(job.threads, s_tables_part, &job);
}

typedef struct s_back_job {
    const attn_tr_net *net;
    const float *dT;
    float *dW;          /* threads x d x tw partial sums */
    float *dE;          /* n_mi x d, or NULL */
    int threads;
} s_back_job;

static void s_back_part(void *arg, int i)
{
    s_back_job *job = arg;
    const attn_tr_net *net = job->net;
    const int d = net->d, m4 = net->tw;
    int64_t lo, hi;
    s_rows(net->n_mi, i, job->threads, &lo, &hi);
    float *dW = job->dW + (size_t)i * d * m4;
    if (hi <= lo) {
        memset(dW, 0, (size_t)d * m4 * sizeof *dW);
        return;
    }
    const int rows = (int)(hi - lo);
    const attn_tr_kern *k = attn_tr_kern_get();
    k->mm_tn(rows, d, m4, net->E + (size_t)lo * d, (size_t)d, job->dT + (size_t)lo * m4,
             (size_t)m4, dW, (size_t)m4, 0);
    if (job->dE)
        k->mm_nn(rows, d, m4, job->dT + (size_t)lo * m4, (size_t)m4, net->WT, (size_t)d,
                 job->dE + (size_t)lo * d, (size_t)d, 0);
}

int attn_tr_backprop(const attn_tr_net *net, const float *dT, const float *dbias,
                     const float *dpos, const float *dsa_pos, attn_model *grad, int threads)
{
    const int d = net->d, m = net->m, m4 = net->tw;
    if (threads < 1)
        threads = 1;
    if (threads > S_MAX_THREADS)
        threads = S_MAX_THREADS;
    float *dW = s_alloc((size_t)threads * d * m4);
    if (!dW)
        return ATTN_ENOMEM;
    s_back_job job = {net, dT, dW, grad->residual, threads};
    attn_tr_par(threads, s_back_part, &job);
    for (int k = 1; k < threads; k++) {
        const float *src = dW + (size_t)k * d * m4;
        for (size_t i = 0; i < (size_t)d * m4; i++)
            dW[i] += src[i];
    }
    for (int i = 0; i < d; i++) {
        const float *row = dW + (size_t)i * m4;
        memcpy(grad->wq + (size_t)i * m, row + ATTN_TR_Q * m, (size_t)m * sizeof(float));
        memcpy(grad->wk + (size_t)i * m, row + ATTN_TR_K * m, (size_t)m * sizeof(float));
        memcpy(grad->wv + (size_t)i * m, row + ATTN_TR_V * m, (size_t)m * sizeof(float));
        for (int t = 0; t < m; t++)
            grad->wo[(size_t)t * d + i] = row[ATTN_TR_G * m + t];
        if (net->sa_len) {
            memcpy(grad->sa_q + (size_t)i * m, row + ATTN_TR_SQ * m, (size_t)m * sizeof(float));
            memcpy(grad->sa_k + (size_t)i * m, row + ATTN_TR_SK * m, (size_t)m * sizeof(float));
            memcpy(grad->sa_uk + (size_t)i * m, row + ATTN_TR_UK * m, (size_t)m * sizeof(float));
            memcpy(grad->sa_uv + (size_t)i * m, row + ATTN_TR_UV * m, (size_t)m * sizeof(float));
        }
    }
    if (net->sa_len)
        memcpy(grad->sa_pos, dsa_pos, (size_t)net->sa_len * sizeof(float));
    if (grad->item_bias)
        memcpy(grad->item_bias, dbias, (size_t)net->n_mi * sizeof(float));
    memcpy(grad->pos_bias, dpos, (size_t)net->l_max * sizeof(float));
    free(dW);
    return ATTN_OK;
}
