/* train_net.c -- the per-step tables T = E W and the way back through them.
 *
 * Once per optimizer step, over the step's working rows (train_set.c): E =
 * text + residual, the d x 4m matrix W = [W_Q | W_K | W_V | W_Oᵀ] (8m with
 * the self-attention block), T = E W (one product split by rows over the
 * threads), and the candidates' q and g transposed for the chunks.  After
 * the examples: dW = Eᵀ dT (per-thread partial sums over row ranges, added
 * in thread order) and dE = dT Wᵀ, which is the residual's gradient because
 * the text part is frozen.
 * Also the small fork-join helper every parallel part of the trainer uses.
 */
#include "attn/train_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/train_kern.h"
#include "util/mem.h"

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
    if (n > ATTN_TR_MAX_THREADS)
        n = ATTN_TR_MAX_THREADS;
    pthread_t th[ATTN_TR_MAX_THREADS];
    s_par job[ATTN_TR_MAX_THREADS];
    int started[ATTN_TR_MAX_THREADS] = {0};
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

attn_tr_net *attn_tr_net_new(const attn_model *md, const attn_tr_set *set, const float *emb,
                             size_t ld, const uint32_t *mi2row)
{
    if (!md || !set || !emb || !mi2row || !md->wq || !md->wk || !md->wv || !md->wo ||
        !md->pos_bias || md->m % md->heads)
        return NULL;
    attn_tr_net *net = calloc(1, sizeof *net);
    if (!net)
        return NULL;
    net->md = md;
    net->set = set;
    net->d = md->d;
    net->m = md->m;
    net->heads = md->heads;
    net->dh = md->m / md->heads;
    net->l_max = md->l_max;
    net->n_mi = md->n_items;
    net->sa_len = md->sa_len;
    net->ffn = md->ffn;
    net->tw = (md->sa_len ? 8 : 4) * md->m;
    net->emb = emb;
    net->ld = ld;
    net->mi2row = mi2row;
    const size_t cap = (size_t)set->cap, d = (size_t)md->d, tw = (size_t)net->tw;
    const size_t m = (size_t)md->m;
    /* Candidates are at most every working row. */
    net->ldc = (int)((cap + ATTN_TR_LANES - 1) / ATTN_TR_LANES * ATTN_TR_LANES);
    net->E = util_zalloc64(cap * d, sizeof(float));
    net->W = util_zalloc64(d * tw, sizeof(float));
    net->WT = util_zalloc64(d * tw, sizeof(float));
    net->T = util_zalloc64(cap * tw, sizeof(float));
    net->QT = util_zalloc64(m * (size_t)net->ldc, sizeof(float));
    net->GT = util_zalloc64(m * (size_t)net->ldc, sizeof(float));
    if (md->ffn) {
        net->F1T = util_zalloc64(2 * m * (size_t)md->ffn, sizeof(float));
        net->F2T = util_zalloc64(2 * m * (size_t)md->ffn, sizeof(float));
    }
    if (!net->E || !net->W || !net->WT || !net->T || !net->QT || !net->GT ||
        (md->ffn && (!net->F1T || !net->F2T))) {
        attn_tr_net_free(&net);
        return NULL;
    }
    return net;
}

void attn_tr_net_free(attn_tr_net **net_p)
{
    if (!net_p || !*net_p)
        return;
    attn_tr_net *net = *net_p;
    free(net->E);
    free(net->W);
    free(net->WT);
    free(net->T);
    free(net->QT);
    free(net->GT);
    free(net->F1T);
    free(net->F2T);
    free(net);
    *net_p = NULL;
}

/* The parts of W in order (enum ATTN_TR_Q ..): a d x m matrix each, but
 * W_O, which is m x d and enters transposed. */
static float *s_part(const attn_model *md, int p)
{
    float *const parts[8] = {md->wq, md->wk, md->wv, md->wo,
                             md->sa_q, md->sa_k, md->sa_uk, md->sa_uv};
    return parts[p];
}

/* W = [parts] (d x parts*m) from md's matrices. */
static void s_pack(const attn_model *md, float *W, int parts)
{
    const int d = md->d, m = md->m, w = parts * m;
    for (int p = 0; p < parts; p++) {
        const float *src = s_part(md, p);
        for (int i = 0; i < d; i++)
            for (int t = 0; t < m; t++)
                W[(size_t)i * w + (size_t)p * m + t] =
                    p == ATTN_TR_G ? src[(size_t)t * d + i] : src[(size_t)i * m + t];
    }
}

/* md's matrices from W = [parts]: the inverse of s_pack. */
static void s_unpack(attn_model *md, const float *W, int parts)
{
    const int d = md->d, m = md->m, w = parts * m;
    for (int p = 0; p < parts; p++) {
        float *dst = s_part(md, p);
        for (int i = 0; i < d; i++)
            for (int t = 0; t < m; t++)
                dst[p == ATTN_TR_G ? (size_t)t * d + i : (size_t)i * m + t] =
                    W[(size_t)i * w + (size_t)p * m + t];
    }
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

/* This thread's rows of E and T. */
static void s_rows_part(void *arg, int i)
{
    s_tables_job *job = arg;
    attn_tr_net *net = job->net;
    const attn_model *md = net->md;
    const attn_tr_set *set = net->set;
    const int d = net->d, tw = net->tw;
    int64_t lo, hi;
    s_rows(set->n_ws, i, job->threads, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const uint32_t mi = set->ws2mi[r];
        float *e = net->E + (size_t)r * d;
        const float *x = net->emb + (size_t)net->mi2row[mi] * net->ld;
        if (md->residual) {
            const float *res = md->residual + (size_t)mi * d;
            for (int k = 0; k < d; k++)
                e[k] = x[k] + res[k];
        } else {
            memcpy(e, x, (size_t)d * sizeof *e);
        }
    }
    if (hi > lo)
        attn_tr_kern_get()->mm_nn((int)(hi - lo), tw, d, net->E + (size_t)lo * d, (size_t)d,
                                  net->W, (size_t)tw, net->T + (size_t)lo * tw, (size_t)tw, 0);
}

/* The candidates' q and g transposed (an item per column, zero past the
 * last), which every chunk of the step reads: this thread's columns. */
static void s_cand_part(void *arg, int i)
{
    s_tables_job *job = arg;
    attn_tr_net *net = job->net;
    const int m = net->m, tw = net->tw;
    int64_t lo, hi;
    const int nc = net->set->n_cand, ldc = net->ldc;
    const int cn = (nc + ATTN_TR_LANES - 1) / ATTN_TR_LANES * ATTN_TR_LANES;
    s_rows(cn, i, job->threads, &lo, &hi);
    for (int t = 0; t < m; t++) {
        float *qt = net->QT + (size_t)t * ldc, *gt = net->GT + (size_t)t * ldc;
        for (int64_t c = lo; c < hi; c++) {
            const float *row = net->T + (size_t)c * tw;
            qt[c] = c < nc ? row[ATTN_TR_Q * m + t] : 0.0f;
            gt[c] = c < nc ? row[ATTN_TR_G * m + t] : 0.0f;
        }
    }
}

void attn_tr_net_tables(attn_tr_net *net, int threads)
{
    const int d = net->d, m4 = net->tw;
    s_pack(net->md, net->W, net->sa_len ? 8 : 4);
    for (int i = 0; i < d; i++)
        for (int t = 0; t < m4; t++)
            net->WT[(size_t)t * d + i] = net->W[(size_t)i * m4 + t];
    /* The feed-forward's matrices transposed, for its backward products. */
    const int m2 = 2 * net->m, f = net->ffn;
    for (int t = 0; t < m2 && f; t++)
        for (int k = 0; k < f; k++) {
            net->F1T[(size_t)k * m2 + t] = net->md->ffn_w1[(size_t)t * f + k];
            net->F2T[(size_t)t * f + k] = net->md->ffn_w2[(size_t)k * m2 + t];
        }
    s_tables_job job = {net, threads < 1 ? 1 : threads};
    attn_tr_par(job.threads, s_rows_part, &job);
    attn_tr_par(job.threads, s_cand_part, &job);     /* needs every row of T */
}
int attn_tr_grad_init(attn_tr_grad *g, const attn_model *md, int64_t cap)
{
    memset(g, 0, sizeof *g);
    g->dense = attn_model_new(md->d, md->m, md->heads, md->l_max, 0, 0);
    if (g->dense && md->sa_len && attn_model_add_sa(g->dense, md->sa_len) != ATTN_OK)
        attn_model_free(&g->dense);
    if (g->dense && md->ffn && attn_model_add_ffn(g->dense, md->ffn) != ATTN_OK)
        attn_model_free(&g->dense);
    g->dres = md->residual ? util_zalloc64((size_t)cap * (size_t)md->d, sizeof(float)) : NULL;
    g->dbias = util_zalloc64((size_t)cap, sizeof(float));
    if (!g->dense || (md->residual && !g->dres) || !g->dbias) {
        attn_tr_grad_free(g);
        return ATTN_ENOMEM;
    }
    return ATTN_OK;
}

void attn_tr_grad_free(attn_tr_grad *g)
{
    attn_model_free(&g->dense);
    free(g->dres);
    free(g->dbias);
    memset(g, 0, sizeof *g);
}

typedef struct s_back_job {
    const attn_tr_net *net;
    const float *dT;
    float *dW;          /* threads x d x tw partial sums */
    float *dE;          /* cap x d, or NULL */
    int threads;
} s_back_job;

static void s_back_part(void *arg, int i)
{
    s_back_job *job = arg;
    const attn_tr_net *net = job->net;
    const int d = net->d, m4 = net->tw;
    int64_t lo, hi;
    s_rows(net->set->n_ws, i, job->threads, &lo, &hi);
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
                     const float *dpos, const float *dsa_pos, const float *dffn,
                     attn_tr_grad *g, int threads)
{
    const int d = net->d, m4 = net->tw;
    if (threads < 1)
        threads = 1;
    if (threads > ATTN_TR_MAX_THREADS)
        threads = ATTN_TR_MAX_THREADS;
    float *dW = util_zalloc64((size_t)threads * d * m4, sizeof(float));
    if (!dW)
        return ATTN_ENOMEM;
    s_back_job job = {net, dT, dW, g->dres, threads};
    attn_tr_par(threads, s_back_part, &job);
    for (int k = 1; k < threads; k++) {
        const float *src = dW + (size_t)k * d * m4;
        for (size_t i = 0; i < (size_t)d * m4; i++)
            dW[i] += src[i];
    }
    attn_model *gd = g->dense;
    s_unpack(gd, dW, net->sa_len ? 8 : 4);
    if (net->sa_len)
        memcpy(gd->sa_pos, dsa_pos, (size_t)net->sa_len * sizeof(float));
    if (net->ffn) {
        const size_t w = (size_t)2 * net->m * net->ffn, f = (size_t)net->ffn;
        memcpy(gd->ffn_w1, dffn, w * sizeof(float));
        memcpy(gd->ffn_b1, dffn + w, f * sizeof(float));
        memcpy(gd->ffn_w2, dffn + w + f, w * sizeof(float));
        memcpy(gd->ffn_b2, dffn + 2 * w + f, (size_t)2 * net->m * sizeof(float));
    }
    memcpy(g->dbias, dbias, (size_t)net->set->n_ws * sizeof(float));
    memcpy(gd->pos_bias, dpos, (size_t)net->l_max * sizeof(float));
    free(dW);
    return ATTN_OK;
}
