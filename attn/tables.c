/* tables.c -- building the per-model, per-catalog tables of the fast path.
 *
 * Called once per model or catalog load (the daemon's snapshot build), never
 * on the request path.  The work is one GEMM, effective embeddings times
 * [W_Q | W_Oᵀ | W_K | W_V], done with the same tile kernel as requests (so
 * its speed does not depend on which core OpenBLAS picked) and split across
 * `threads` pthreads by ranges of rows.  Each thread walks its rows in chunks
 * of S_CHUNK and the weights in panels of S_PANEL columns so that a panel
 * (d x S_PANEL floats) stays in L2 while every row of the chunk goes past it.
 *
 * Memory per catalog row (tables.h has the layouts), float tables:
 *   identity model          0 (aliases the embeddings); 4 round16(d) bytes with a
 *                           residual in ALL mode
 *   ALL                     8 round16(2m) bytes  (about 16 m: 6 KiB for m = 384)
 *   NONE                    0, plus 8 bytes (param_index copy) with a residual
 *   any mode, item bias     +4 bytes
 * bfloat16 tables: ALL 4 round16(2m) bytes (3 KiB for m = 384); identity and
 * NONE own a bfloat16 copy of the embeddings, 2 round16(d) bytes, instead of
 * aliasing them (so the caller may free its float matrix); biases and the
 * param_index copy as above.  The build computes each chunk of rows in float
 * and narrows it, so the values are the float tables' rounded once.
 */
#include "attn/tables.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "attn/attn.h"
#include "attn/kern.h"
#include "util/mem.h"

#define S_CHUNK 48       /* rows per step: a multiple of every kernel's rows */
#define S_PANEL 192      /* weight columns per step: a multiple of 48 and of 16 */
#define S_MAX_THREADS 64

/* The big table: rows are read at random, one or two per catalog item per
 * request, so with 4 KiB pages nearly every row costs a TLB miss as well as
 * a cache miss.  Ask for transparent huge pages (a hint: where THP is off the
 * call fails harmlessly and the table works the same). */
#define S_HUGE (2u << 20)

static void *s_alloc_table(size_t n, size_t size)
{
    if (n > SIZE_MAX / size)
        return NULL;
    size_t bytes = n * size;
    if (bytes < 2 * S_HUGE)
        return util_alloc64(n, size);
    void *p = NULL;
    if (posix_memalign(&p, S_HUGE, bytes) != 0)
        return NULL;
    (void)madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

/* Effective embedding of catalog row r into out[0..d). */
static void s_effective(const attn_model *md, const float *emb, size_t ld,
                        const int64_t *param_index, size_t r, float *out)
{
    const float *x = emb + r * ld;
    int64_t p = param_index ? param_index[r] : -1;
    if (p >= 0 && md->residual) {
        const float *res = md->residual + (size_t)p * md->d;
        for (int i = 0; i < md->d; i++)
            out[i] = x[i] + res[i];
    } else {
        memcpy(out, x, (size_t)md->d * sizeof *out);
    }
}

/* Fill a d x wcols block of [A | B] in a matrix of row stride ld: A is W
 * (d x m) or the identity when NULL, likewise B; columns past 2m stay zero. */
static void s_pair(float *w, int ld, int wcols, int d, int m, const float *a, const float *b,
                   int b_transposed)
{
    for (int i = 0; i < d; i++)
        memset(w + (size_t)i * ld, 0, (size_t)wcols * sizeof *w);
    for (int i = 0; i < d; i++) {
        float *row = w + (size_t)i * ld;
        for (int t = 0; t < m; t++) {
            row[t] = a ? a[(size_t)i * m + t] : (float)(i == t);
            /* W_O is m x d; g = W_O e is e times W_Oᵀ, whose (i, t) is W_O[t][i]. */
            float bv = !b ? (float)(i == t) : b_transposed ? b[(size_t)t * d + i]
                                                           : b[(size_t)i * m + t];
            row[m + t] = bv;
        }
    }
}

typedef struct s_job {
    attn_tables *t;
    const attn_kern *k;
    const int64_t *param_index;
    size_t chunk_lo, chunk_hi;   /* chunks [lo, hi) of S_CHUNK rows */
    int status;
} s_job;

/* Project the rows of chunks [lo, hi) into t->rows.  Float tables: in
 * place (the final block of the catalog may spill up to ATTN_KERN_MAX_ROWS
 * rows past n: t->rows has room); bfloat16: into a chunk of float rows,
 * narrowed into place once the chunk is done. */
static void *s_worker(void *arg)
{
    s_job *job = arg;
    attn_tables *t = job->t;
    const attn_model *md = t->model;
    const int R = job->k->rows, has_res = md->residual && job->param_index;
    const int bf16 = t->prec == ATTN_PRECISION_BF16;
    const float *ptr[S_CHUNK + ATTN_KERN_MAX_ROWS];
    float *buf = has_res ? util_alloc64((size_t)S_CHUNK * t->d, sizeof(float)) : NULL;
    float *fbuf = bf16 ? util_alloc64((size_t)S_CHUNK * t->stride, sizeof(float)) : NULL;
    if ((has_res && !buf) || (bf16 && !fbuf)) {
        free(buf);
        free(fbuf);
        job->status = ATTN_ENOMEM;
        return NULL;
    }
    for (size_t c = job->chunk_lo; c < job->chunk_hi; c++) {
        size_t r0 = c * S_CHUNK;
        int nr = (int)(t->n - r0 < S_CHUNK ? t->n - r0 : S_CHUNK);
        for (int i = 0; i < nr; i++) {
            if (has_res) {
                s_effective(md, t->emb, t->ld, job->param_index, r0 + i, buf + (size_t)i * t->d);
                ptr[i] = buf + (size_t)i * t->d;
            } else {
                ptr[i] = t->emb + (r0 + i) * t->ld;
            }
        }
        for (int i = nr; i < S_CHUNK + ATTN_KERN_MAX_ROWS; i++)
            ptr[i] = ptr[nr - 1];
        float *out = bf16 ? fbuf : (float *)t->rows + r0 * t->stride;
        for (int half = 0; half < 2; half++) {
            const float *w = half ? t->w_kv : t->w_qg;
            const int cols = half ? t->hcols : t->wcols;
            size_t out_off = half ? (size_t)t->wcols : 0;
            for (int c0 = 0; c0 < cols; c0 += S_PANEL) {
                int pw = cols - c0 < S_PANEL ? cols - c0 : S_PANEL;
                for (int i = 0; i < nr; i += R)
                    job->k->tile(ptr + i, 0, t->d, w + c0, (size_t)cols, pw,
                                 out + (size_t)i * t->stride + out_off + c0, t->stride);
            }
        }
        if (bf16)
            job->k->narrow(fbuf, (uint16_t *)t->rows + r0 * t->stride, (size_t)nr * t->stride);
    }
    free(buf);
    free(fbuf);
    job->status = ATTN_OK;
    return NULL;
}

/* ALL mode, general model: rows = [q | g | pad | k | v | pad], with a
 * self-attention block followed by [sq | sk | pad | uk | uv | pad]. */
static int s_build_rows(attn_tables *t, const int64_t *param_index, int threads)
{
    t->stride = (size_t)t->wcols + (size_t)t->hcols;
    /* Float rows are written in whole kernel blocks, in place. */
    size_t nrows = t->prec == ATTN_PRECISION_F32 ? t->n + ATTN_KERN_MAX_ROWS : t->n;
    t->rows = s_alloc_table(nrows * t->stride, t->esize);
    if (!t->rows)
        return ATTN_ENOMEM;
    t->base = t->rows;
    t->q_off = 0;
    t->g_off = (size_t)t->m;
    t->k_off = (size_t)t->wcols;
    t->v_off = (size_t)t->wcols + t->m;

    size_t chunks = (t->n + S_CHUNK - 1) / S_CHUNK;
    if ((size_t)threads > chunks)
        threads = chunks ? (int)chunks : 1;
    if (threads > S_MAX_THREADS)
        threads = S_MAX_THREADS;
    s_job job[S_MAX_THREADS];
    pthread_t tid[S_MAX_THREADS];
    int started[S_MAX_THREADS] = {0};
    const attn_kern *k = attn_kern_get();
    for (int i = 0; i < threads; i++)
        job[i] = (s_job){.t = t, .k = k, .param_index = param_index,
                         .chunk_lo = chunks * i / threads,
                         .chunk_hi = chunks * (i + 1) / threads, .status = ATTN_OK};
    /* Helpers take jobs 1..; a helper that cannot start is done inline. */
    for (int i = 1; i < threads; i++)
        started[i] = pthread_create(&tid[i], NULL, s_worker, &job[i]) == 0;
    s_worker(&job[0]);
    int st = job[0].status;
    for (int i = 1; i < threads; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            s_worker(&job[i]);
        if (job[i].status != ATTN_OK)
            st = job[i].status;
    }
    return st;
}

/* Rows that are the embeddings themselves, owned: the effective ones
 * (identity model with residual, ALL mode: param_index given), or the text
 * embeddings in bfloat16 (param_index NULL: identity model or NONE, where a
 * float table would alias the caller's). */
static int s_build_emb_copy(attn_tables *t, const int64_t *param_index)
{
    t->stride = attn_round_cols((size_t)t->d);
    t->rows = s_alloc_table(t->n * t->stride, t->esize);
    float *row = util_alloc64(t->stride, sizeof(float));
    if (!t->rows || !row) {
        free(row);
        return ATTN_ENOMEM;
    }
    memset(row, 0, t->stride * sizeof *row);
    const attn_kern *k = attn_kern_get();
    for (size_t r = 0; r < t->n; r++) {
        if (t->prec == ATTN_PRECISION_F32) {
            float *out = (float *)t->rows + r * t->stride;
            s_effective(t->model, t->emb, t->ld, param_index, r, out);
            memset(out + t->d, 0, (t->stride - t->d) * sizeof *out);
        } else {
            s_effective(t->model, t->emb, t->ld, param_index, r, row);
            k->narrow(row, (uint16_t *)t->rows + r * t->stride, t->stride);
        }
    }
    free(row);
    t->base = t->rows;
    return ATTN_OK;
}

static int s_check_args(const attn_model *model, const float *emb, size_t n, size_t ld,
                        const int64_t *param_index, const attn_tables_opts *o)
{
    if (!o || attn_model_check(model, NULL, 0) != ATTN_OK)
        return ATTN_EINVAL;
    if ((!emb && n > 0) || ld < (size_t)model->d || o->threads < 1 || n > UINT32_MAX ||
        (o->mode != ATTN_PRECOMPUTE_ALL && o->mode != ATTN_PRECOMPUTE_NONE) ||
        (o->precision != ATTN_PRECISION_F32 && o->precision != ATTN_PRECISION_BF16))
        return ATTN_EINVAL;
    if (param_index)
        for (size_t r = 0; r < n; r++)
            if (param_index[r] < -1 || param_index[r] >= model->n_items)
                return ATTN_EINVAL;
    return ATTN_OK;
}

int attn_tables_build(attn_tables **out, const attn_model *model, const float *emb,
                      size_t n, size_t ld, const int64_t *param_index,
                      attn_precompute mode, int threads)
{
    attn_tables_opts o = {.mode = mode, .precision = ATTN_PRECISION_F32, .threads = threads};
    return attn_tables_build_opts(out, model, emb, n, ld, param_index, &o);
}

int attn_tables_build_opts(attn_tables **out, const attn_model *model, const float *emb,
                           size_t n, size_t ld, const int64_t *param_index,
                           const attn_tables_opts *o)
{
    if (!out)
        return ATTN_EINVAL;
    *out = NULL;
    int st = s_check_args(model, emb, n, ld, param_index, o);
    if (st != ATTN_OK)
        return st;
    const attn_precompute mode = o->mode;
    const int threads = o->threads;
    attn_tables *t = calloc(1, sizeof *t);
    if (!t || !(t->model = attn_model_clone(model))) {
        free(t);
        return ATTN_ENOMEM;
    }
    const attn_model *md = t->model;
    t->mode = mode;
    t->prec = o->precision;
    t->threads = threads;
    t->esize = t->prec == ATTN_PRECISION_F32 ? sizeof(float) : sizeof(uint16_t);
    t->n = n;
    t->d = md->d;
    t->m = md->m;
    t->heads = md->heads;
    t->dh = md->m / md->heads;
    t->emb = emb;
    t->ld = ld;
    t->shared = !md->wq && !md->wk && !md->wv && !md->wo;
    t->wcols = (int)attn_round_cols(2 * (size_t)md->m);
    t->sa_len = md->sa_len;
    t->hcols = (md->sa_len ? 3 : 1) * t->wcols;
    int has_res = md->residual && param_index;

    /* Defaults: every vector is the text embedding itself. */
    t->base = emb;
    t->stride = ld;
    st = ATTN_OK;
    if (md->item_bias && param_index) {
        if (!(t->row_bias = util_alloc64(n, sizeof(float))))
            st = ATTN_ENOMEM;
        for (size_t r = 0; st == ATTN_OK && r < n; r++)
            t->row_bias[r] = param_index[r] >= 0 ? md->item_bias[param_index[r]] : 0.0f;
    }
    if (st == ATTN_OK && has_res && (mode == ATTN_PRECOMPUTE_NONE)) {
        t->eff = 1;
        if (!(t->pidx = util_alloc64(n, sizeof(int64_t))))
            st = ATTN_ENOMEM;
        else if (n)
            memcpy(t->pidx, param_index, n * sizeof(int64_t));
    }
    if (st == ATTN_OK && t->shared && has_res && mode == ATTN_PRECOMPUTE_ALL)
        st = s_build_emb_copy(t, param_index);
    else if (st == ATTN_OK && t->prec != ATTN_PRECISION_F32 &&
             (t->shared || mode == ATTN_PRECOMPUTE_NONE))
        st = s_build_emb_copy(t, NULL);
    if (st == ATTN_OK && !t->shared) {
        t->w_qg = util_alloc64((size_t)t->d * t->wcols, sizeof(float));
        t->w_kv = util_alloc64((size_t)t->d * t->hcols, sizeof(float));
        if (!t->w_qg || !t->w_kv) {
            st = ATTN_ENOMEM;
        } else {
            s_pair(t->w_qg, t->wcols, t->wcols, t->d, t->m, md->wq, md->wo, 1);
            s_pair(t->w_kv, t->hcols, t->wcols, t->d, t->m, md->wk, md->wv, 0);
            if (md->sa_len) {
                s_pair(t->w_kv + t->wcols, t->hcols, t->wcols, t->d, t->m, md->sa_q, md->sa_k, 0);
                s_pair(t->w_kv + 2 * t->wcols, t->hcols, t->wcols, t->d, t->m, md->sa_uk,
                       md->sa_uv, 0);
            }
            /* NONE keeps the weights for requests; ALL only needs them now. */
            if (mode == ATTN_PRECOMPUTE_ALL) {
                st = s_build_rows(t, param_index, threads);
                free(t->w_qg);
                free(t->w_kv);
                t->w_qg = t->w_kv = NULL;
            }
        }
    }
    if (st != ATTN_OK) {
        attn_tables_free(&t);
        return st;
    }
    t->bytes = sizeof *t + attn_model_bytes(t->model);
    if (t->rows) {
        int spill = !t->shared && mode == ATTN_PRECOMPUTE_ALL && t->prec == ATTN_PRECISION_F32;
        t->bytes += (spill ? t->n + ATTN_KERN_MAX_ROWS : t->n) * t->stride * t->esize;
    }
    t->bytes += t->pidx ? n * sizeof(int64_t) : 0;
    t->bytes += t->row_bias ? n * sizeof(float) : 0;
    t->bytes += t->w_qg ? (size_t)t->d * (t->wcols + t->hcols) * sizeof(float) : 0;
    *out = t;
    return ATTN_OK;
}

void attn_tables_free(attn_tables **tables_p)
{
    if (!tables_p || !*tables_p)
        return;
    attn_tables *t = *tables_p;
    attn_model_free(&t->model);
    free(t->rows);
    free(t->pidx);
    free(t->row_bias);
    free(t->w_qg);
    free(t->w_kv);
    free(t);
    *tables_p = NULL;
}

size_t attn_tables_bytes(const attn_tables *t)
{
    return t ? t->bytes : 0;
}

int attn_tables_borrows_emb(const attn_tables *t)
{
    return t && t->n > 0 && t->base == (const void *)t->emb;
}

attn_tables_opts attn_tables_options(const attn_tables *t)
{
    attn_tables_opts o = {ATTN_PRECOMPUTE_ALL, ATTN_PRECISION_F32, 1};
    if (t)
        o = (attn_tables_opts){t->mode, t->prec, t->threads};
    return o;
}

size_t attn_tables_rows(const attn_tables *t)
{
    return t ? t->n : 0;
}

const attn_model *attn_tables_model(const attn_tables *t)
{
    return t ? t->model : NULL;
}
