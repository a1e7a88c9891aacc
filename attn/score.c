/* score.c -- the fast path: one request, no allocation.
 *
 * Per request (docs/MODEL.md has the algebra):
 *
 *   1. bias[j] = pos_bias[j] + log w_j, -inf padded to lp (L rounded up to 16);
 *      bias and scale are multiplied by log2(e), since the kernels' softmax
 *      is in base 2 (vexp.h).
 *   2. Find every row's q, g (candidates) and k, v (history): in the tables
 *      (ALL, identity), or projected now with the tile kernel (NONE).
 *   3. Pack the history transposed, KT = [k_0 .. k_{L-1}] as an m x lp matrix
 *      (likewise VT), so each head's slice is a contiguous dh x lp block that
 *      the tile kernel streams.
 *   4. For each block of R candidates and each head h, two tiles
 *          Z = Q_h KT_h   and   S = G_h VT_h      (R x lp each, in L1)
 *      then one fused pass: score += sum_j softmax_j(scale Z + bias) S_j
 *      (the kernels' logits epilogue also keeps each row's maximum).
 *      Candidate rows are read in place through pointers, never gathered.
 *      For the identity model S = Z (q = g = k = v), so one tile suffices.
 *   5. Item bias, a finiteness check, top-k, and for the k winners only the
 *      head-averaged attention weights are recomputed for the explanations.
 *
 * The scratch holds every buffer, sized once in attn_scratch_new for the
 * limits it was given; attn_score only checks a request against them.
 */
#include "attn/score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/kern.h"
#include "attn/tables.h"
#include "attn/topk.h"
#include "attn/vexp.h"

/* Floats needed per buffer that depends on the tables (the rest depends on
 * the limits and m only). */
typedef struct s_need {
    size_t vt;     /* m x lp when V differs from K */
    size_t eff;    /* effective rows built per request */
    size_t proj;   /* NONE: projected candidate and history rows */
} s_need;

struct attn_scratch {
    attn_limits lim;        /* what it was sized for */
    int d, m, heads;        /* shapes of the tables it was sized for */
    size_t lp;              /* max_hist rounded up to ATTN_KERN_COLS */
    s_need cap;             /* capacities of the table-dependent buffers */
    float *kt, *vt;         /* m x lp: history keys and values, transposed */
    float *bias;            /* lp: logit bias by position */
    float *z, *s, *w;       /* ATTN_KERN_MAX_ROWS x lp: logits, S, weights of a block */
    float *score;           /* max_cand + ATTN_KERN_MAX_ROWS */
    float *eff;             /* (max_hist + max_cand) x round16(d), if cap.eff */
    float *proj;            /* (max_hist + max_cand + 2 MAX_ROWS) x wcols, if cap.proj */
    const float **qrow;     /* max_cand + MAX_ROWS: candidate row pointers */
    const float **hrow;     /* max_hist + MAX_ROWS: history row pointers */
    const float **wrow;     /* max_k + MAX_ROWS: winners' row pointers */
    uint32_t *top;          /* max_k: winners (request indexes) */
    float *top_score;       /* max_k */
    uint32_t *because;      /* max_k x max_explain */
    float *because_w;       /* max_k x max_explain */
    int32_t *first;         /* max_hist: newest position holding the same row */
    uint32_t *seen_row;     /* dedup hash: 2 x max_hist rounded to a power of two */
    uint32_t *seen_gen;     /* generation stamps: clearing the hash is O(1) */
    uint32_t seen_mask, seen_cur;
    void *arena;            /* the single allocation everything above lives in */
    size_t bytes;
};

static s_need s_needs(const attn_tables *t, const attn_limits *lim, size_t lp)
{
    s_need nd = {0, 0, 0};
    size_t rows = (size_t)lim->max_hist + lim->max_cand;
    if (!t->shared)
        nd.vt = (size_t)t->m * lp;
    if (t->eff)
        nd.eff = rows * attn_round_cols((size_t)t->d);
    if (t->w_qg)
        nd.proj = (rows + 2 * ATTN_KERN_MAX_ROWS) * (size_t)t->wcols;
    return nd;
}

/* ---- scratch ------------------------------------------------------------ */

/* Carve n elements of size sz, 64-byte aligned, from an arena at *off. */
static void *s_carve(char *arena, size_t *off, size_t n, size_t sz)
{
    void *p = arena ? arena + *off : NULL;
    *off += (n * sz + 63) & ~(size_t)63;
    return p;
}

/* Lay the scratch out over arena (NULL: just measure).  Returns bytes. */
static size_t s_layout(attn_scratch *s, char *arena)
{
    const attn_limits *l = &s->lim;
    const size_t R = ATTN_KERN_MAX_ROWS, lp = s->lp, m = (size_t)s->m;
    const size_t nk = (size_t)l->max_k, ne = (size_t)l->max_explain;
    size_t off = 0;
    s->kt = s_carve(arena, &off, m * lp, sizeof(float));
    s->vt = s->cap.vt ? s_carve(arena, &off, s->cap.vt, sizeof(float)) : NULL;
    s->bias = s_carve(arena, &off, lp, sizeof(float));
    s->z = s_carve(arena, &off, R * lp, sizeof(float));
    s->s = s_carve(arena, &off, R * lp, sizeof(float));
    s->w = s_carve(arena, &off, R * lp, sizeof(float));
    s->score = s_carve(arena, &off, (size_t)l->max_cand + R, sizeof(float));
    s->eff = s->cap.eff ? s_carve(arena, &off, s->cap.eff, sizeof(float)) : NULL;
    s->proj = s->cap.proj ? s_carve(arena, &off, s->cap.proj, sizeof(float)) : NULL;
    s->qrow = s_carve(arena, &off, (size_t)l->max_cand + R, sizeof(float *));
    s->hrow = s_carve(arena, &off, (size_t)l->max_hist + R, sizeof(float *));
    s->wrow = s_carve(arena, &off, nk + R, sizeof(float *));
    s->top = s_carve(arena, &off, nk, sizeof(uint32_t));
    s->top_score = s_carve(arena, &off, nk, sizeof(float));
    s->because = s_carve(arena, &off, nk * ne + 1, sizeof(uint32_t));
    s->because_w = s_carve(arena, &off, nk * ne + 1, sizeof(float));
    size_t hash = 16;
    while (hash < 2 * (size_t)l->max_hist)
        hash <<= 1;
    s->seen_mask = (uint32_t)hash - 1;
    s->first = s_carve(arena, &off, (size_t)l->max_hist + 1, sizeof(int32_t));
    s->seen_row = s_carve(arena, &off, hash, sizeof(uint32_t));
    s->seen_gen = s_carve(arena, &off, hash, sizeof(uint32_t));
    return off;
}

/* Limits beyond which the arena size arithmetic could overflow an int. */
#define S_MAX_LIMIT (1 << 24)

attn_scratch *attn_scratch_new(const attn_tables *t, const attn_limits *lim)
{
    if (!t || !lim || lim->max_cand < 1 || lim->max_hist < 1 || lim->max_k < 1 ||
        lim->max_explain < 0 || lim->max_cand > S_MAX_LIMIT || lim->max_hist > S_MAX_LIMIT ||
        lim->max_k > S_MAX_LIMIT || lim->max_explain > S_MAX_LIMIT)
        return NULL;
    attn_scratch *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->lim = *lim;
    s->d = t->d;
    s->m = t->m;
    s->heads = t->heads;
    s->lp = attn_round_cols((size_t)lim->max_hist);
    s->cap = s_needs(t, lim, s->lp);
    size_t bytes = s_layout(s, NULL);
    if (posix_memalign(&s->arena, 64, bytes) != 0) {
        free(s);
        return NULL;
    }
    /* Zeroed once so that padding columns read by the kernels are finite. */
    memset(s->arena, 0, bytes);
    s_layout(s, s->arena);
    s->bytes = sizeof *s + bytes;
    return s;
}

int attn_scratch_fits(const attn_scratch *s, const attn_tables *t)
{
    if (!s || !t || s->d != t->d || s->m != t->m || s->heads != t->heads)
        return 0;
    s_need nd = s_needs(t, &s->lim, s->lp);
    return nd.vt <= s->cap.vt && nd.eff <= s->cap.eff && nd.proj <= s->cap.proj;
}

void attn_scratch_free(attn_scratch **scratch_p)
{
    if (!scratch_p || !*scratch_p)
        return;
    free((*scratch_p)->arena);
    free(*scratch_p);
    *scratch_p = NULL;
}

size_t attn_scratch_bytes(const attn_scratch *s)
{
    return s ? s->bytes : 0;
}

/* ---- one request -------------------------------------------------------- */

/* Where this request's vectors are, once step 2 is done. */
typedef struct s_view {
    const attn_kern *k;
    int L, N, lp;
    float scale2;           /* logit scale times log2(e): kernels work in base 2 */
    size_t q_off, g_off, k_off, v_off;
} s_view;

static int s_validate(const attn_tables *t, const attn_request *rq, const attn_scratch *s,
                      int ranked)
{
    if (!t || !rq || !s || !rq->hist || !rq->cand || rq->n_hist < 1 || rq->n_cand < 1)
        return ATTN_EINVAL;
    if (ranked && (rq->k < 1 || rq->explain < 0))
        return ATTN_EINVAL;
    if (!attn_scratch_fits(s, t))
        return ATTN_EINVAL;
    if (rq->n_hist > s->lim.max_hist || rq->n_hist > t->model->l_max ||
        rq->n_cand > s->lim.max_cand)
        return ATTN_ELIMIT;
    if (ranked && (rq->k > s->lim.max_k || rq->explain > s->lim.max_explain))
        return ATTN_ELIMIT;
    for (int j = 0; j < rq->n_hist; j++) {
        if (rq->hist[j] >= t->n)
            return ATTN_EINVAL;
        if (rq->hist_weight && !(rq->hist_weight[j] > 0.0f && isfinite(rq->hist_weight[j])))
            return ATTN_EINVAL;
    }
    for (int c = 0; c < rq->n_cand; c++)
        if (rq->cand[c] >= t->n)
            return ATTN_EINVAL;
    return ATTN_OK;
}

/* Pointers to n catalog rows (effective ones built in buf when needed),
 * padded with repeats to a whole number of kernel blocks. */
static void s_rows(const attn_tables *t, const uint32_t *rows, int n, float *buf,
                   const float **out)
{
    size_t deff = attn_round_cols((size_t)t->d);
    for (int i = 0; i < n; i++) {
        const float *x = t->base + (size_t)rows[i] * t->stride;
        int64_t p = t->eff ? t->pidx[rows[i]] : -1;
        if (p >= 0) {
            const float *res = t->model->residual + (size_t)p * t->d;
            float *e = buf + (size_t)i * deff;
            for (int c = 0; c < t->d; c++)
                e[c] = x[c] + res[c];
            x = e;
        }
        out[i] = x;
    }
    for (int i = n; i < n + ATTN_KERN_MAX_ROWS; i++)
        out[i] = out[n - 1];
}

/* NONE: project n rows through w (d x wcols) into proj, and repoint them. */
static void s_project(const attn_tables *t, const attn_kern *k, const float *w,
                      const float **row, int n, float *proj)
{
    const size_t ld = (size_t)t->wcols;
    for (int i = 0; i < n; i += k->rows)
        k->tile(row + i, 0, t->d, w, ld, t->wcols, proj + (size_t)i * ld, ld);
    for (int i = 0; i < n + ATTN_KERN_MAX_ROWS; i++)
        row[i] = proj + (size_t)(i < n ? i : n - 1) * ld;
}

/* Ask for the cache lines of rows [c0, c0 + n) of ptr, span floats from off:
 * candidate rows are scattered over a catalog far bigger than the caches, and
 * naming them a block ahead overlaps their misses with the current block. */
static void s_prefetch(const float *const *ptr, int c0, int n, size_t off, size_t span)
{
    for (int i = c0; i < c0 + n; i++)
        for (size_t x = 0; x < span; x += 16)
            __builtin_prefetch(ptr[i] + off + x, 0, 3);
}

/* The same for catalog rows, before their pointers exist: history rows
 * are asked for first thing, so that their misses overlap the setup work. */
static void s_prefetch_catalog(const attn_tables *t, const uint32_t *rows, int n, size_t off,
                               size_t span)
{
    for (int i = 0; i < n; i++) {
        const float *x = t->base + (size_t)rows[i] * t->stride + off;
        for (size_t c = 0; c < span; c += 16)
            __builtin_prefetch(x + c, 0, 3);
    }
}

/* Steps 1-3: bias, row pointers (projected if need be), packed history. */
static void s_prepare(const attn_tables *t, const attn_request *rq, attn_scratch *s,
                      s_view *v)
{
    const attn_model *md = t->model;
    /* k and v of a row (contiguous), or the embedding NONE will project. */
    if (t->w_qg || t->shared)
        s_prefetch_catalog(t, rq->hist, rq->n_hist, 0, (size_t)t->d);
    else
        s_prefetch_catalog(t, rq->hist, rq->n_hist, t->k_off, t->v_off + t->m - t->k_off);
    v->k = attn_kern_get();
    v->L = rq->n_hist;
    v->N = rq->n_cand;
    v->lp = (int)attn_round_cols((size_t)v->L);
    /* Logits in base 2 (vexp.h): log2(e) (scale Z + bias). */
    v->scale2 = md->scale * ATTN_VEXP_LOG2E;
    for (int j = 0; j < v->L; j++)
        s->bias[j] = ((md->pos_bias ? md->pos_bias[j] : 0.0f) +
                      (rq->hist_weight ? logf(rq->hist_weight[j]) : 0.0f)) * ATTN_VEXP_LOG2E;
    /* Padding positions: -inf makes their weight exactly 0 (kern.h). */
    for (int j = v->L; j < v->lp; j++)
        s->bias[j] = -INFINITY;

    /* Effective rows, when built here, go to eff: history first. */
    float *ceff = t->eff ? s->eff + (size_t)v->L * attn_round_cols((size_t)t->d) : NULL;
    s_rows(t, rq->hist, v->L, s->eff, s->hrow);
    s_rows(t, rq->cand, v->N, ceff, s->qrow);
    if (t->w_qg) {
        float *hproj = s->proj;
        float *cproj = s->proj + ((size_t)v->L + ATTN_KERN_MAX_ROWS) * t->wcols;
        s_project(t, v->k, t->w_kv, s->hrow, v->L, hproj);
        s_project(t, v->k, t->w_qg, s->qrow, v->N, cproj);
        v->q_off = v->k_off = 0;
        v->g_off = v->v_off = (size_t)t->m;
    } else {
        v->q_off = t->q_off;
        v->g_off = t->g_off;
        v->k_off = t->k_off;
        v->v_off = t->v_off;
    }
    v->k->pack(s->hrow, v->k_off, v->L, t->m, (size_t)v->lp, s->kt);
    if (!t->shared)
        v->k->pack(s->hrow, v->v_off, v->L, t->m, (size_t)v->lp, s->vt);
}

/* Step 4: scores[c] for every candidate, item bias included.  Returns
 * ATTN_ERANGE if one is not finite. */
static int s_scores(const attn_tables *t, const attn_request *rq, attn_scratch *s,
                    const s_view *v, float *scores)
{
    const attn_kern *k = v->k;
    const int R = k->rows, dh = t->dh, lp = v->lp;
    const float scale = v->scale2;
    /* q and g of a row: contiguous in every layout but the identity's. */
    const size_t span = t->shared ? (size_t)t->m : v->g_off + t->m - v->q_off;
    float acc[ATTN_KERN_MAX_ROWS], mx[ATTN_KERN_MAX_ROWS];
    int bad = 0;
    s_prefetch(s->qrow, 0, v->N < R ? v->N : R, v->q_off, span);
    for (int c0 = 0; c0 < v->N; c0 += R) {
        if (c0 + R < v->N)
            s_prefetch(s->qrow, c0 + R, v->N - c0 - R < R ? v->N - c0 - R : R, v->q_off, span);
        for (int r = 0; r < R; r++)
            acc[r] = 0.0f;
        for (int h = 0; h < t->heads; h++) {
            size_t hoff = (size_t)h * dh;
            /* Identity: S = Q K too, before scale and bias: keep it raw. */
            k->logits(s->qrow + c0, v->q_off + hoff, dh, s->kt + hoff * lp, lp, lp, scale,
                      s->bias, s->z, t->shared ? s->s : NULL, lp, mx);
            if (!t->shared)
                k->tile(s->qrow + c0, v->g_off + hoff, dh, s->vt + hoff * lp, lp, lp, s->s, lp);
            k->softmax_dot(s->z, s->s, lp, lp, mx, acc);
        }
        int nr = v->N - c0 < R ? v->N - c0 : R;
        for (int r = 0; r < nr; r++) {
            float x = acc[r] + (t->row_bias ? t->row_bias[rq->cand[c0 + r]] : 0.0f);
            bad |= !isfinite(x);
            scores[c0 + r] = x;
        }
    }
    return bad ? ATTN_ERANGE : ATTN_OK;
}

/* Map each history position to the newest position holding the same row;
 * returns the number of distinct rows.  A user who watched an item twice
 * should read "because you watched X" once, with the attention X got in all. */
static int s_distinct_history(attn_scratch *s, const attn_request *rq)
{
    if (++s->seen_cur == 0) {   /* stamps wrapped: clear for real */
        memset(s->seen_gen, 0, (size_t)(s->seen_mask + 1) * sizeof *s->seen_gen);
        s->seen_cur = 1;
    }
    int distinct = 0;
    for (int j = 0; j < rq->n_hist; j++) {
        uint32_t row = rq->hist[j], h = (row * 2654435761u) & s->seen_mask;
        while (s->seen_gen[h] == s->seen_cur && rq->hist[s->seen_row[h]] != row)
            h = (h + 1) & s->seen_mask;
        if (s->seen_gen[h] == s->seen_cur) {
            s->first[j] = (int32_t)s->seen_row[h];
        } else {
            s->seen_gen[h] = s->seen_cur;
            s->seen_row[h] = (uint32_t)j;
            s->first[j] = j;
            distinct++;
        }
    }
    return distinct;
}

/* Step 5: head-averaged weights of the n winners, merged per distinct
 * history row, and their top entries. */
static void s_explain(const attn_tables *t, attn_scratch *s, const s_view *v, int n,
                      int n_explain, int merge)
{
    const attn_kern *k = v->k;
    const int R = k->rows, dh = t->dh, lp = v->lp;
    float mx[ATTN_KERN_MAX_ROWS];
    for (int i = 0; i < n; i++)
        s->wrow[i] = s->qrow[s->top[i]];
    for (int i = n; i < n + R; i++)
        s->wrow[i] = s->wrow[n - 1];
    for (int i0 = 0; i0 < n; i0 += R) {
        memset(s->w, 0, (size_t)R * lp * sizeof *s->w);
        for (int h = 0; h < t->heads; h++) {
            size_t hoff = (size_t)h * dh;
            k->logits(s->wrow + i0, v->q_off + hoff, dh, s->kt + hoff * lp, lp, lp,
                      v->scale2, s->bias, s->z, NULL, lp, mx);
            k->softmax_acc(s->z, lp, lp, mx, 1.0f / t->heads, s->w, lp);
        }
        for (int r = 0; r < R && i0 + r < n; r++) {
            float *wr = s->w + (size_t)r * lp;
            /* Repeats add into their newest position and drop out of the
             * selection (weights are >= 0, so -1 is never chosen). */
            for (int j = 0; merge && j < v->L; j++)
                if (s->first[j] != j) {
                    wr[s->first[j]] += wr[j];
                    wr[j] = -1.0f;
                }
            uint32_t *idx = s->because + (size_t)(i0 + r) * n_explain;
            attn_topk_f32(wr, v->L, n_explain, idx);
            for (int e = 0; e < n_explain; e++)
                s->because_w[(size_t)(i0 + r) * n_explain + e] = wr[idx[e]];
        }
    }
}

int attn_score(const attn_tables *t, const attn_request *rq, attn_scratch *s,
               attn_result *out)
{
    if (!out)
        return ATTN_EINVAL;
    memset(out, 0, sizeof *out);
    int st = s_validate(t, rq, s, 1);
    if (st != ATTN_OK)
        return st;
    s_view v;
    s_prepare(t, rq, s, &v);
    if ((st = s_scores(t, rq, s, &v, s->score)) != ATTN_OK)
        return st;
    int n = attn_topk_f32(s->score, v.N, rq->k, s->top);
    for (int i = 0; i < n; i++)
        s->top_score[i] = s->score[s->top[i]];
    int n_explain = 0;
    if (rq->explain > 0) {
        int distinct = s_distinct_history(s, rq);
        n_explain = rq->explain < distinct ? rq->explain : distinct;
        s_explain(t, s, &v, n, n_explain, distinct < v.L);
    }
    out->n = n;
    out->n_explain = n_explain;
    out->cand = s->top;
    out->score = s->top_score;
    out->because = s->because;
    out->because_weight = s->because_w;
    return ATTN_OK;
}

int attn_score_all(const attn_tables *t, const attn_request *rq, attn_scratch *s,
                   float *scores)
{
    if (!scores)
        return ATTN_EINVAL;
    int st = s_validate(t, rq, s, 0);
    if (st != ATTN_OK)
        return st;
    s_view v;
    s_prepare(t, rq, s, &v);
    return s_scores(t, rq, s, &v, scores);
}
