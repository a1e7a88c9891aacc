/* score.c -- the fast path: one request, no allocation.
 *
 * Per request (docs/MODEL.md has the algebra):
 *
 *   1. bias[j] = pos_bias[j] + log w_j, -inf padded to lp (L rounded up to 16);
 *      bias and scale are multiplied by log2(e), since the kernels' softmax
 *      is in base 2 (vexp.h).
 *   2. Find the history's k, v rows: in the tables (ALL, identity), or
 *      projected now with the tile kernel (NONE).  Rows of bfloat16 tables
 *      are widened to floats into the scratch first (the history's whole,
 *      a block of candidates at a time): they cross the memory bus at half
 *      the bytes, and the kernels still compute in float.  A model with a
 *      self-attention block turns them (and its context rows') into
 *      contextual k', v' rows in the scratch first (s_self_attend), and
 *      its feed-forward layer, if any, updates those rows in place (s_ffn).
 *   3. Pack the keys transposed, KT = [k_0 .. k_{L-1}] as an m x lp matrix,
 *      so each head's slice is a contiguous dh x lp block that the tile
 *      kernel streams.  The values are not packed: they are read in place.
 *   4. For each block of R candidates (found in the tables, or projected now
 *      into the scratch: NONE) and each head h:
 *          Z = Q_h KT_h                     (logits: R x lp, in L1)
 *          E = 2^(scale Z + bias - max)     (softmax_exp, in place)
 *          score += (E V_h) . g_h / sum(E)  (av_dot: the values' rows are
 *                                            the B operand, read in place)
 *      For the identity model S = Q K is the logits product itself (q = g =
 *      k = v), so one tile and a fused softmax_dot pass suffice.
 *      bfloat16 tables on a CPU with vdpbf16ps (kern.h: attn_kern_dp) skip
 *      the widening of step 2: the history is packed as pairs of bfloat16,
 *      the candidates' rows are read in place, and each head is two
 *      products on pairs -- Z = Q_h K_hᵀ and S = G_h V_hᵀ -- and
 *      softmax_dot (s_head_dp).
 *      Candidate rows are read in place through pointers, never gathered;
 *      the next block's rows are prefetched a head at a time, as the
 *      current block's heads are done.
 *   5. Item bias, a finiteness check, top-k, and for the k winners only the
 *      head-averaged attention weights are recomputed for the explanations.
 *
 * The scratch holds every buffer, sized once in attn_scratch_new for the
 * limits it was given; attn_score only checks a request against them.
 * Nothing in it is sized by max_cand times the model's width: candidates
 * only ever occupy one block.
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
#include "util/mem.h"
#include "util/set.h"

/* NONE projects candidates (and builds effective rows) this many at a time
 * into the scratch, a multiple of every kernel's rows.  Not one block: the
 * projection streams all of [W_Q | W_Oᵀ] (1.2 MB at d = m = 384), which the
 * scoring between two blocks pushes out of L2 -- per block, that cost P4
 * a third more time than projecting everything first. */
#define S_CHUNK 48

/* Floats needed per buffer that depends on the tables (the rest depends on
 * the limits and m only).  Nothing here grows with max_cand: a NONE-mode
 * scratch projects and holds one chunk of candidates, not the whole
 * request. */
typedef struct s_need {
    size_t eff;    /* embedding rows built per request (residual added, or widened
                      from bfloat16): the history and one chunk */
    size_t wide;   /* ALL, bfloat16: the history's widened [k | v ...] rows and one
                      block's [q | g] rows */
    size_t proj;   /* NONE: projected history rows and one block of candidates */
    size_t sa;     /* self-attention block: the history's contextual [k | v] rows */
    int ffn;       /* the block's feed-forward width (0: none): a block of hidden
                      rows and one of their products with W2 */
    int wcols, hcols;   /* row widths the buffers are carved at */
    int ctx;       /* context rows a request may add to the history: sa_len - 1 */
} s_need;

struct attn_scratch {
    attn_limits lim;        /* what it was sized for */
    int d, m, heads;        /* shapes of the tables it was sized for */
    size_t lp;              /* max_hist rounded up to ATTN_KERN_COLS */
    s_need cap;             /* capacities of the table-dependent buffers */
    float *kt;              /* m x lp: history keys, transposed */
    float *bias;            /* lp: logit bias by position */
    float *z, *s, *w;       /* ATTN_KERN_MAX_ROWS x lp: logits (then weights), S, explained weights */
    float *score;           /* max_cand + MAX_ROWS: scores, accumulated by whole blocks */
    float *heff, *ceff;     /* if cap.eff: max_hist + ctx, S_CHUNK x round16(d) built rows */
    float *hwide, *cwide;   /* if cap.wide: (max_hist + ctx) x hcols, MAX_ROWS x wcols
                               widened rows */
    float *hproj, *cproj;   /* if cap.proj: (max_hist + MAX_ROWS) x hcols, S_CHUNK x wcols
                               projected rows */
    float *hsa;             /* if cap.sa: (max_hist + MAX_ROWS) x wcols [k' | v'] rows */
    uint16_t *hsa16;        /* if cap.sa and cap.wide: max_hist x wcols of them in
                               bfloat16, for the products on pairs */
    float *fh, *fy;         /* if cap.ffn: MAX_ROWS x ffn hidden rows, MAX_ROWS x wcols
                               their product with W2 */
    const float **hrow;     /* max_hist + ctx + MAX_ROWS: history (and context) row pointers */
    uint32_t *top;          /* max_k: winners (request indexes) */
    float *top_score;       /* max_k */
    uint32_t *because;      /* max_k x max_explain */
    float *because_w;       /* max_k x max_explain */
    int32_t *first;         /* max_hist: newest position holding the same row */
    util_set seen;          /* history row -> its newest position, over arena arrays */
    void *arena;            /* the single allocation everything above lives in */
    size_t bytes;
};

/* Requests build the embedding rows they read in the scratch: with
 * residuals to add (NONE), or stored in bfloat16 (identity model, NONE). */
static int s_builds_emb(const attn_tables *t)
{
    return t->eff || (t->prec != ATTN_PRECISION_F32 && (t->shared || t->w_qg));
}

/* Requests widen the precomputed rows they read (ALL, bfloat16). */
static int s_widens_rows(const attn_tables *t)
{
    return t->prec != ATTN_PRECISION_F32 && !t->shared && !t->w_qg;
}

/* The bfloat16 products (kern.h: attn_kern_dp) for tables whose every
 * product they can take, or NULL: bfloat16 rows that hold the vectors
 * themselves -- ALL's, or the identity model's effective embeddings -- and
 * heads of even width, so that no pair straddles two heads.  The rest
 * (NONE's projections, residuals added per request) widen their rows to
 * floats.  (A block's contextual rows are computed in float from widened
 * rows, then rounded to bfloat16 for the pairs: s_self_attend.) */
static const attn_kern_dp *s_dp(const attn_tables *t)
{
    if (t->prec == ATTN_PRECISION_F32 || t->w_qg || t->eff || t->dh % 2 != 0)
        return NULL;
    return attn_kern_dp_get();
}

static s_need s_needs(const attn_tables *t, const attn_limits *lim)
{
    s_need nd = {.wcols = t->wcols, .hcols = t->hcols, .ctx = t->sa_len ? t->sa_len - 1 : 0};
    const size_t hist = (size_t)lim->max_hist + (size_t)nd.ctx + ATTN_KERN_MAX_ROWS;
    if (s_builds_emb(t))
        nd.eff = ((size_t)lim->max_hist + (size_t)nd.ctx + S_CHUNK) *
                 attn_round_cols((size_t)t->d);
    if (s_widens_rows(t))
        nd.wide = ((size_t)lim->max_hist + (size_t)nd.ctx) * (size_t)t->hcols +
                  (size_t)ATTN_KERN_MAX_ROWS * (size_t)t->wcols;
    /* The history is projected in whole kernel blocks, so its last block may
     * write up to MAX_ROWS - 1 rows past max_hist. */
    if (t->w_qg)
        nd.proj = hist * (size_t)t->hcols + (size_t)S_CHUNK * (size_t)t->wcols;
    if (t->sa_len)
        nd.sa = ((size_t)lim->max_hist + ATTN_KERN_MAX_ROWS) * (size_t)t->wcols;
    nd.ffn = t->model->ffn;
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
    const size_t nk = (size_t)l->max_k, ne = (size_t)l->max_explain, nh = (size_t)l->max_hist;
    size_t off = 0;
    s->kt = s_carve(arena, &off, m * lp, sizeof(float));
    s->bias = s_carve(arena, &off, lp, sizeof(float));
    s->z = s_carve(arena, &off, R * lp, sizeof(float));
    s->s = s_carve(arena, &off, R * lp, sizeof(float));
    s->w = s_carve(arena, &off, R * lp, sizeof(float));
    s->score = s_carve(arena, &off, (size_t)l->max_cand + R, sizeof(float));
    s->heff = s->ceff = NULL;
    const size_t nc = (size_t)s->cap.ctx;   /* context rows after the history */
    if (s->cap.eff) {
        size_t deff = s->cap.eff / (nh + nc + S_CHUNK);
        s->heff = s_carve(arena, &off, (nh + nc) * deff, sizeof(float));
        s->ceff = s_carve(arena, &off, S_CHUNK * deff, sizeof(float));
    }
    s->hwide = s->cwide = NULL;
    if (s->cap.wide) {
        s->hwide = s_carve(arena, &off, (nh + nc) * (size_t)s->cap.hcols, sizeof(float));
        s->cwide = s_carve(arena, &off, R * (size_t)s->cap.wcols, sizeof(float));
    }
    s->hproj = s->cproj = s->hsa = NULL;
    if (s->cap.proj) {
        s->hproj = s_carve(arena, &off, (nh + nc + R) * (size_t)s->cap.hcols, sizeof(float));
        s->cproj = s_carve(arena, &off, S_CHUNK * (size_t)s->cap.wcols, sizeof(float));
    }
    s->hsa16 = NULL;
    if (s->cap.sa)
        s->hsa = s_carve(arena, &off, s->cap.sa, sizeof(float));
    if (s->cap.sa && s->cap.wide)
        s->hsa16 = s_carve(arena, &off, nh * (size_t)s->cap.wcols, sizeof(uint16_t));
    s->fh = s->fy = NULL;
    if (s->cap.ffn) {
        s->fh = s_carve(arena, &off, R * (size_t)s->cap.ffn, sizeof(float));
        s->fy = s_carve(arena, &off, R * (size_t)s->cap.wcols, sizeof(float));
    }
    s->hrow = s_carve(arena, &off, nh + nc + R, sizeof(float *));
    s->top = s_carve(arena, &off, nk, sizeof(uint32_t));
    s->top_score = s_carve(arena, &off, nk, sizeof(float));
    s->because = s_carve(arena, &off, nk * ne + 1, sizeof(uint32_t));
    s->because_w = s_carve(arena, &off, nk * ne + 1, sizeof(float));
    size_t hash = util_set_slots((uint32_t)nh);
    s->first = s_carve(arena, &off, nh + 1, sizeof(int32_t));
    uint32_t *key = s_carve(arena, &off, hash, sizeof(uint32_t));
    uint32_t *val = s_carve(arena, &off, hash, sizeof(uint32_t));
    uint32_t *stamp = s_carve(arena, &off, hash, sizeof(uint32_t));
    if (arena)   /* the arena is zeroed: the stamps start empty */
        util_set_init_at(&s->seen, (uint32_t)nh, key, val, stamp);
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
    s->cap = s_needs(t, lim);
    size_t bytes = s_layout(s, NULL);
    /* Zeroed once so that padding columns read by the kernels are finite. */
    if (!(s->arena = util_zalloc64(bytes, 1))) {
        free(s);
        return NULL;
    }
    s_layout(s, s->arena);
    s->bytes = sizeof *s + bytes;
    return s;
}

int attn_scratch_fits(const attn_scratch *s, const attn_tables *t)
{
    if (!s || !t || s->d != t->d || s->m != t->m || s->heads != t->heads)
        return 0;
    s_need nd = s_needs(t, &s->lim);
    /* Buffers are carved by row width, so a capacity fits only at the width
     * it was sized for (any width fits an empty need). */
    return (nd.eff == 0 || nd.eff == s->cap.eff) &&
           (nd.wide == 0 || (nd.wide == s->cap.wide && nd.hcols == s->cap.hcols)) &&
           (nd.proj == 0 || (nd.proj == s->cap.proj && nd.hcols == s->cap.hcols)) &&
           (nd.sa == 0 || nd.sa == s->cap.sa) && nd.ffn <= s->cap.ffn &&
           nd.ctx == s->cap.ctx;
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
    const attn_kern_dp *dp; /* bfloat16 rows in place, on pairs (s_dp), or NULL */
    int L, N, lp;
    int Lc;                 /* L plus the context rows a self-attention block reads */
    float scale2;           /* logit scale times log2(e): kernels work in base 2 */
    size_t q_off, g_off, k_off, v_off;
    size_t s_off;           /* self-attention block: [sq | sk] of a history row (then
                               [uk | uv] wcols on) */
    size_t cspan;           /* floats of a candidate's source row worth prefetching */
} s_view;

static int s_validate(const attn_tables *t, const attn_request *rq, const attn_scratch *s,
                      int ranked)
{
    if (!t || !rq || !s || !rq->hist || !rq->cand || rq->n_hist < 1 || rq->n_cand < 1 ||
        rq->n_ctx < 0)
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
    for (int j = rq->n_hist; j < rq->n_hist + rq->n_ctx; j++)
        if (rq->hist[j] >= t->n)
            return ATTN_EINVAL;
    for (int c = 0; c < rq->n_cand; c++)
        if (rq->cand[c] >= t->n)
            return ATTN_EINVAL;
    return ATTN_OK;
}

/* Pointers to n catalog rows, padded with repeats of the last one to total
 * (kernels read whole blocks, pack reads up to lp columns).  Float rows
 * with nothing to add are read in place (off and span unused).  Otherwise
 * elements [off, off + span) of each row are built in buf, ldb floats
 * apart -- widened from bfloat16, and with the row's residual added when
 * the tables say so (then off = 0, span = d) -- and the pointers point
 * there, so offsets into such a row are relative to off. */
static void s_rows(const attn_tables *t, const attn_kern *k, const uint32_t *rows, int n,
                   size_t off, size_t span, float *buf, size_t ldb, const float **out,
                   int total)
{
    const int bf16 = t->prec != ATTN_PRECISION_F32;
    for (int i = 0; i < n; i++) {
        const char *x = attn_tables_row(t, rows[i]) + off * t->esize;
        int64_t p = t->eff ? t->pidx[rows[i]] : -1;
        if (!bf16 && p < 0) {
            out[i] = (const float *)x;
            continue;
        }
        float *e = buf + (size_t)i * ldb;
        if (bf16)
            k->widen((const uint16_t *)x, e, span);
        else
            memcpy(e, x, span * sizeof *e);
        if (p >= 0) {
            const float *res = t->model->residual + (size_t)p * t->d;
            for (int c = 0; c < t->d; c++)
                e[c] += res[c];
        }
        out[i] = e;
    }
    for (int i = n; i < total; i++)
        out[i] = out[n - 1];
}

/* Weight columns per step of a projection: a panel of d x S_PANEL floats
 * stays in L2 while every row block goes past it (as in tables.c). */
#define S_PANEL 192

/* NONE: project n rows through w (d x wcols) into proj (room for n rounded
 * up to whole kernel blocks), and repoint them, padding to total as in
 * s_rows.  row[] must already be padded to a whole kernel block. */
static void s_project(const attn_tables *t, const attn_kern *k, const float *w, int cols,
                      const float **row, int n, float *proj, int total)
{
    const size_t ld = (size_t)cols;
    for (int c0 = 0; c0 < cols; c0 += S_PANEL) {
        int pw = cols - c0 < S_PANEL ? cols - c0 : S_PANEL;
        for (int i = 0; i < n; i += k->rows)
            k->tile(row + i, 0, t->d, w + c0, ld, pw, proj + (size_t)i * ld + c0, ld);
    }
    for (int i = 0; i < total; i++)
        row[i] = proj + (size_t)(i < n ? i : n - 1) * ld;
}

/* The q|g rows of the n <= S_CHUNK candidates cand[0..n) into
 * out[0..n + MAX_ROWS) (padded with repeats): pointers into the tables, or
 * (NONE) rows projected into the scratch now -- a chunk at a time, which is
 * why a NONE scratch does not grow with the number of candidates. */
static void s_cand_rows(const attn_tables *t, const s_view *v, attn_scratch *s,
                        const uint32_t *cand, int n, const float **out)
{
    if (s_widens_rows(t))   /* [q | g], at q_off = 0 */
        s_rows(t, v->k, cand, n, t->q_off, 2 * (size_t)t->m, s->cwide, (size_t)t->wcols, out,
               n + ATTN_KERN_MAX_ROWS);
    else
        s_rows(t, v->k, cand, n, 0, (size_t)t->d, s->ceff, attn_round_cols((size_t)t->d), out,
               n + ATTN_KERN_MAX_ROWS);
    if (t->w_qg)
        s_project(t, v->k, t->w_qg, t->wcols, out, n, s->cproj, n + ATTN_KERN_MAX_ROWS);
}

/* ---- prefetching ----------------------------------------------------------
 *
 * Every row a request reads is a random catalog row in tables far bigger
 * than the caches: without help each line is a DRAM miss the kernels wait
 * for.  So while a block computes, the next block's rows are asked for a
 * head at a time: after head h of this block, the lines head h of the next
 * one will read (its q and g slices), in the order they will be read.  A
 * head's worth of lines fits the core's miss queue, so the prefetches do
 * not stall the arithmetic, and each slice has a whole block's arithmetic
 * to arrive in.  (Before: the whole next block at once when a block was
 * done -- the prefetch instructions then stalled behind a full miss queue
 * with nothing to overlap; this is 7-14% faster at P3 and P4 with f32
 * tables, 3 KiB of q and g a row.  Tried on Zen 5 and no better: the lines
 * paced over the kernels' inner loops, the default on the Intel core of
 * wave 1 (12-43% slower at P1-P3); two blocks ahead; prefetcht2 or
 * prefetchnta; every other line, or a row's first lines only;
 * docs/PERFORMANCE.md.) */

/* The cache lines of elements [off, off + span) of catalog row r: first
 * line and count. */
static inline const char *s_span(const attn_tables *t, uint32_t r, size_t off, size_t span,
                                 int *lines)
{
    uintptr_t a = (uintptr_t)(attn_tables_row(t, r) + off * t->esize);
    uintptr_t f = a & ~(uintptr_t)63, l = (a + span * t->esize - 1) & ~(uintptr_t)63;
    *lines = (int)((l - f) / 64) + 1;
    return (const char *)f;
}

/* Rows whose span is narrower than this (bytes) are asked for whole when a
 * block is done, as before: paced, P1-P2 (512 bytes and 1 KiB a row) and the
 * bfloat16 rows of P3-P4 (1.5 KiB) were no faster, P1 3-5% slower. */
#define S_PACE_BYTES 2048

/* Ask for all of it now. */
static void s_prefetch_rows(const attn_tables *t, const uint32_t *rows, int n, size_t off,
                            size_t span)
{
    for (int i = 0; i < n; i++) {
        int lines;
        const char *p = s_span(t, rows[i], off, span, &lines);
        for (int l = 0; l < lines; l++)
            attn_prefetch(p + 64 * l);
    }
}

/* Ask for part h of H of what block `next` (n rows from rows) reads, where
 * h is the head just computed.  Rows read in place a block at a time: head
 * h's q and g slices (q alone for the identity, whose g is q).  Rows a
 * chunk ahead (NONE, effective rows): the h-th H-th of each row's span. */
static void s_prefetch_head(const attn_tables *t, const s_view *v, const uint32_t *rows, int n,
                            int in_place, int h)
{
    if (n <= 0)
        return;
    if (in_place) {
        const size_t hoff = (size_t)h * t->dh;
        s_prefetch_rows(t, rows, n, v->q_off + hoff, t->dh);
        if (!t->shared)
            s_prefetch_rows(t, rows, n, v->g_off + hoff, t->dh);
        return;
    }
    const size_t off = t->w_qg ? 0 : v->q_off;
    for (int i = 0; i < n; i++) {
        int lines;
        const char *p = s_span(t, rows[i], off, v->cspan, &lines);
        for (int l = lines * h / t->heads; l < lines * (h + 1) / t->heads; l++)
            attn_prefetch(p + 64 * l);
    }
}

/* Step 2c, a block with a feed-forward layer (docs/MODEL.md §2.2): each of
 * the L rows x = [k' | v'] in s->hsa becomes x + relu(x W1 + b1) W2 + b2,
 * a kernel block of rows at a time through the tile kernel (2m and ffn are
 * multiples of ATTN_KERN_COLS: attn_model_add_ffn).  L x 2m x ffn x 2
 * multiply-adds. */
static void s_ffn(const attn_tables *t, attn_scratch *s, int L, const attn_kern *k)
{
    const attn_model *md = t->model;
    const int R = k->rows, f = md->ffn, w = 2 * t->m;
    const size_t ld = (size_t)t->wcols;   /* == 2m, as m % 8 == 0 */
    const float *x[ATTN_KERN_MAX_ROWS], *hid[ATTN_KERN_MAX_ROWS];
    for (int r = 0; r < R; r++)
        hid[r] = s->fh + (size_t)r * f;
    for (int j0 = 0; j0 < L; j0 += R) {
        const int nr = L - j0 < R ? L - j0 : R;
        for (int r = 0; r < R; r++)   /* pad with the block's last row */
            x[r] = s->hsa + (size_t)(j0 + (r < nr ? r : nr - 1)) * ld;
        k->tile(x, 0, w, md->ffn_w1, (size_t)f, f, s->fh, (size_t)f);
        for (int r = 0; r < nr; r++) {
            float *h = s->fh + (size_t)r * f;
            for (int c = 0; c < f; c++) {
                const float a = h[c] + md->ffn_b1[c];
                h[c] = a > 0.0f ? a : 0.0f;
            }
        }
        k->tile(hid, 0, f, md->ffn_w2, (size_t)w, w, s->fy, (size_t)w);
        for (int r = 0; r < nr; r++) {
            float *o = s->hsa + (size_t)(j0 + r) * ld;
            const float *y = s->fy + (size_t)r * w;
            for (int c = 0; c < w; c++)
                o[c] += y[c] + md->ffn_b2[c];
        }
    }
}

/* Step 2b, models with a self-attention block (docs/MODEL.md §2.1): each
 * history event's key and value in the context of the events before it,
 * into the scratch; the row pointers move there.  L x window x 3m
 * multiply-adds: small beside the candidates' L x N x 4m. */
static void s_self_attend(const attn_tables *t, attn_scratch *s, s_view *v)
{
    const attn_model *md = t->model;
    const int L = v->L, Lc = v->Lc, m = t->m, Ls = t->sa_len;
    const size_t w = (size_t)t->wcols, uo = v->s_off + w;
    const float sc = 1.0f / sqrtf((float)m);
    float a[ATTN_SA_MAX];
    for (int j = 0; j < L; j++) {
        const float *rj = s->hrow[j];
        const int nw = Lc - j < Ls ? Lc - j : Ls;
        float mx = -INFINITY, sum = 0.0f;
        v->k->dots(rj + v->s_off, s->hrow + j, v->s_off + (size_t)m, m, nw, a);
        for (int i = 0; i < nw; i++) {
            a[i] = a[i] * sc + md->sa_pos[i];
            mx = a[i] > mx ? a[i] : mx;
        }
        for (int i = 0; i < nw; i++)
            sum += (a[i] = expf(a[i] - mx));
        for (int i = 0; i < nw; i++)
            a[i] /= sum;
        float *out = s->hsa + (size_t)j * w;
        memcpy(out, rj + v->k_off, (size_t)m * sizeof *out);
        memcpy(out + m, rj + v->v_off, (size_t)m * sizeof *out);
        v->k->axpys(out, s->hrow + j, uo, 2 * m, nw, a);   /* [uk | uv] is contiguous */
    }
    if (md->ffn)   /* every row's k', v' is done: the context is no longer read */
        s_ffn(t, s, L, v->k);
    if (v->dp)   /* rounded to bfloat16 for the pairs (the bound's step 8, score_ref.c) */
        for (int j = 0; j < L; j++)
            v->k->narrow(s->hsa + (size_t)j * w, s->hsa16 + (size_t)j * w, 2 * (size_t)m);
    for (int j = 0; j < L + ATTN_KERN_MAX_ROWS; j++) {
        size_t o = (size_t)(j < L ? j : L - 1) * w;
        s->hrow[j] = v->dp ? (const float *)(s->hsa16 + o) : s->hsa + o;
    }
    v->k_off = 0;
    v->v_off = (size_t)m;
}

/* Steps 1-2: bias and history row pointers (projected if need be). */
static void s_prepare(const attn_tables *t, const attn_request *rq, attn_scratch *s,
                      s_view *v)
{
    const attn_model *md = t->model;
    v->k = attn_kern_get();
    v->dp = s_dp(t);   /* its rows per call are the float set's (both S_ROWS) */
    v->L = rq->n_hist;
    v->Lc = v->L + (t->sa_len ? (rq->n_ctx < t->sa_len - 1 ? rq->n_ctx : t->sa_len - 1) : 0);
    v->N = rq->n_cand;
    v->lp = (int)attn_round_cols((size_t)v->L);
    const int R = v->k->rows, first = t->w_qg || t->eff ? S_CHUNK : R;
    const int n0 = v->N < first ? v->N : first;
    /* First thing, what the pack and the first block wait for, so that the
     * setup below overlaps their misses: the history's keys and values
     * (NONE: the embeddings it projects now) and the first block's rows
     * (NONE: the first chunk's).
     * (Tried: the keys and the first head's values only, the other heads'
     * values paced through the first block -- no faster.) */
    if (t->w_qg) {
        s_prefetch_rows(t, rq->hist, v->Lc, 0, (size_t)t->d);
        s_prefetch_rows(t, rq->cand, n0, 0, (size_t)t->d);
    } else if (t->shared) {
        s_prefetch_rows(t, rq->hist, v->L, 0, (size_t)t->m);
        s_prefetch_rows(t, rq->cand, n0, 0, (size_t)t->m);
    } else {
        s_prefetch_rows(t, rq->hist, v->Lc, t->k_off, (size_t)t->hcols - (t->wcols - 2 * t->m));
        s_prefetch_rows(t, rq->cand, n0, t->q_off, t->g_off + t->m - t->q_off);
    }
    /* Logits in base 2 (vexp.h): log2(e) (scale Z + bias). */
    v->scale2 = md->scale * ATTN_VEXP_LOG2E;
    for (int j = 0; j < v->L; j++)
        s->bias[j] = ((md->pos_bias ? md->pos_bias[j] : 0.0f) +
                      (rq->hist_weight ? logf(rq->hist_weight[j]) : 0.0f)) * ATTN_VEXP_LOG2E;
    /* Padding positions: -inf makes their weight exactly 0 (kern.h). */
    for (int j = v->L; j < v->lp; j++)
        s->bias[j] = -INFINITY;

    const int total = v->Lc + ATTN_KERN_MAX_ROWS;
    /* The pairs read the history's rows in place, unless a block computes
     * them (s_self_attend narrows its rows then). */
    const int hist_in_place = v->dp && !t->sa_len;
    if (hist_in_place)   /* pack reads [k | v] as pairs; padded with repeats */
        for (int j = 0; j < total; j++)
            s->hrow[j] = (const float *)attn_tables_row(t, rq->hist[j < v->L ? j : v->L - 1]);
    else if (s_widens_rows(t))   /* the history side, [k | v | pad ...] from k_off */
        s_rows(t, v->k, rq->hist, v->Lc, t->k_off, (size_t)t->hcols, s->hwide,
               (size_t)t->hcols, s->hrow, total);
    else
        s_rows(t, v->k, rq->hist, v->Lc, 0, (size_t)t->d, s->heff,
               attn_round_cols((size_t)t->d), s->hrow, total);
    if (t->w_qg) {
        s_project(t, v->k, t->w_kv, t->hcols, s->hrow, v->Lc, s->hproj,
                  v->Lc + ATTN_KERN_MAX_ROWS);
        v->q_off = v->k_off = 0;
        v->g_off = v->v_off = (size_t)t->m;
        v->cspan = (size_t)t->d;          /* NONE reads the embedding, then projects */
    } else {
        v->q_off = t->q_off;
        v->g_off = t->g_off;
        /* Widened history rows start at k. */
        v->k_off = s_widens_rows(t) && !hist_in_place ? 0 : t->k_off;
        v->v_off = v->k_off + (t->v_off - t->k_off);
        /* q and g of a row: contiguous in every layout but the identity's. */
        v->cspan = t->shared ? (size_t)t->m : t->g_off + t->m - t->q_off;
    }
    v->s_off = v->k_off + (size_t)t->wcols;
    if (t->sa_len)
        s_self_attend(t, s, v);
}

/* One block of up to R candidates, one head: acc[r] += the head's attention
 * term. */
static void s_head(const attn_tables *t, attn_scratch *s, const s_view *v, const float **blk,
                   int h, float *acc)
{
    const attn_kern *k = v->k;
    const int lp = v->lp;
    const size_t hoff = (size_t)h * t->dh;
    float mx[ATTN_KERN_MAX_ROWS], sum[ATTN_KERN_MAX_ROWS];
    const attn_kern_bcols keys = {s->hrow, v->k_off + hoff, v->L};
    /* Identity: S = Q K too, before scale and bias: keep it raw. */
    k->logits(blk, v->q_off + hoff, t->dh, s->kt + hoff * lp, lp, lp, v->scale2, s->bias,
              s->z, t->shared ? s->s : NULL, lp, mx, &keys);
    if (t->shared) {
        k->softmax_dot(s->z, s->s, lp, lp, mx, acc);
        return;
    }
    k->softmax_exp(s->z, lp, lp, mx, sum);
    k->av_dot(s->z, lp, v->L, s->hrow, v->v_off + hoff, t->dh, blk, v->g_off + hoff, sum, acc);
}

/* The same from bfloat16 rows on pairs (v->dp): both products of the head
 * -- the logits, and S = G_h V_hᵀ, each history value dotted with each
 * candidate's g -- then softmax_dot, as for the identity.  The same
 * multiply-adds as s_head's av_dot: L dh per row and head either way.
 * kt holds the history's pairs (s_scores): the keys' m/2 rows, then the
 * values'. */
static void s_head_dp(const attn_tables *t, attn_scratch *s, const s_view *v,
                      const uint16_t **blk, int h, float *acc)
{
    const int lp = v->lp, dh2 = t->dh / 2;
    const uint32_t *kp = (const uint32_t *)s->kt + (size_t)h * dh2 * lp;
    const uint32_t *vp = kp + (size_t)(t->m / 2) * lp;
    const size_t hoff = (size_t)h * t->dh;
    float mx[ATTN_KERN_MAX_ROWS];
    /* Identity: S is the logits' raw product, as in s_head. */
    v->dp->logits(blk, v->q_off + hoff, dh2, kp, lp, lp, v->L, v->scale2, s->bias, s->z,
                  t->shared ? s->s : NULL, lp, mx);
    if (!t->shared)
        v->dp->tile(blk, v->g_off + hoff, dh2, vp, lp, lp, v->L, s->s, lp);
    v->k->softmax_dot(s->z, s->s, lp, lp, mx, acc);
}

/* Pointers to the bfloat16 rows of n catalog rows, padded with repeats to
 * total (v->dp reads them in place). */
static void s_dp_rows(const attn_tables *t, const uint32_t *rows, int n, int total,
                      const uint16_t **out)
{
    for (int i = 0; i < total; i++)
        out[i] = (const uint16_t *)attn_tables_row(t, rows[i < n ? i : n - 1]);
}

/* Steps 3-4: scores[c] for every candidate, item bias included.  Returns
 * ATTN_ERANGE if a score is not finite.  scores has room for N rounded up
 * to whole blocks (the kernels write whole blocks). */
static int s_scores(const attn_tables *t, const attn_request *rq, attn_scratch *s,
                    const s_view *v, float *scores)
{
    const attn_kern *k = v->k;
    const int R = k->rows, H = t->heads;
    /* Rows built in the scratch (NONE, or effective rows) come a chunk at a
     * time; rows in the tables a block at a time (just pointers). */
    const int chunk = t->w_qg || t->eff ? S_CHUNK : R;
    const float *crow[S_CHUNK + ATTN_KERN_MAX_ROWS];
    int bad = 0;
    for (int c = 0; c < (v->N + R - 1) / R * R; c++)
        scores[c] = 0.0f;

    /* The keys were asked for first thing (s_prepare).  The history is
     * needed whole before the first block can finish, and there is little
     * to overlap it with.  (Tried: taking the first blocks head by head, so
     * that the history arrives one head's slice at a time under their
     * arithmetic -- no faster: the slices' traffic per head outruns a few
     * blocks' arithmetic, and DRAM serves slices slower than whole rows.) */
    if (v->dp)   /* as pairs: k's m/2, then v's (k_off is even: 0 or a multiple of
                    wcols); the identity's rows are k alone */
        k->pack(s->hrow, v->k_off / 2, v->L, t->shared ? t->m / 2 : t->m, (size_t)v->lp, s->kt);
    else
        k->pack(s->hrow, v->k_off, v->L, t->m, (size_t)v->lp, s->kt);

    /* Block by block, every head; after each head, its share of the rows
     * one chunk ahead (for the tables, the next block) is asked for. */
    const uint16_t *brow[ATTN_KERN_MAX_ROWS];
    const int paced = v->cspan * t->esize >= S_PACE_BYTES;
    for (int c0 = 0; c0 < v->N; c0 += R) {
        if (v->dp)
            s_dp_rows(t, rq->cand + c0, v->N - c0 < R ? v->N - c0 : R, R, brow);
        else if (c0 % chunk == 0)
            s_cand_rows(t, v, s, rq->cand + c0, v->N - c0 < chunk ? v->N - c0 : chunk, crow);
        const int ahead = c0 + chunk, nn = v->N - ahead < R ? v->N - ahead : R;
        const uint32_t *next = nn > 0 ? rq->cand + ahead : NULL;
        for (int h = 0; h < H; h++) {
            if (v->dp)
                s_head_dp(t, s, v, brow, h, scores + c0);
            else
                s_head(t, s, v, crow + c0 % chunk, h, scores + c0);
            if (paced)
                s_prefetch_head(t, v, next, nn, chunk == R, h);
        }
        if (!paced && nn > 0)
            s_prefetch_rows(t, next, nn, t->w_qg ? 0 : v->q_off, v->cspan);
    }
    for (int c = 0; c < v->N; c++) {
        float x = scores[c] + (t->row_bias ? t->row_bias[rq->cand[c]] : 0.0f);
        bad |= !isfinite(x);
        scores[c] = x;
    }
    return bad ? ATTN_ERANGE : ATTN_OK;
}

/* Map each history position to the newest position holding the same row;
 * returns the number of distinct rows.  A user who watched an item twice
 * should read "because you watched X" once, with the attention X got in all. */
static int s_distinct_history(attn_scratch *s, const attn_request *rq)
{
    util_set_clear(&s->seen);
    int distinct = 0;
    for (int j = 0; j < rq->n_hist; j++) {
        uint32_t first;
        if (util_set_put(&s->seen, rq->hist[j], (uint32_t)j, &first)) {
            s->first[j] = j;
            distinct++;
        } else {
            s->first[j] = (int32_t)first;
        }
    }
    return distinct;
}

/* Step 5: head-averaged weights of the n winners, merged per distinct
 * history row, and their top entries.  The winners' rows are found (NONE:
 * projected) again, a block at a time. */
static void s_explain(const attn_tables *t, const attn_request *rq, attn_scratch *s,
                      const s_view *v, int n, int n_explain, int merge)
{
    const attn_kern *k = v->k;
    const int R = k->rows, dh = t->dh, lp = v->lp;
    const float *blk[2 * ATTN_KERN_MAX_ROWS];
    const uint16_t *brow[ATTN_KERN_MAX_ROWS];
    uint32_t rows[ATTN_KERN_MAX_ROWS];
    float mx[ATTN_KERN_MAX_ROWS];
    for (int i0 = 0; i0 < n; i0 += R) {
        int nr = n - i0 < R ? n - i0 : R;
        for (int r = 0; r < nr; r++)
            rows[r] = rq->cand[s->top[i0 + r]];
        if (v->dp)
            s_dp_rows(t, rows, nr, R, brow);
        else
            s_cand_rows(t, v, s, rows, nr, blk);
        memset(s->w, 0, (size_t)R * lp * sizeof *s->w);
        for (int h = 0; h < t->heads; h++) {
            size_t hoff = (size_t)h * dh;
            if (v->dp) {
                v->dp->logits(brow, v->q_off + hoff, dh / 2,
                              (const uint32_t *)s->kt + hoff / 2 * lp, lp, lp, v->L,
                              v->scale2, s->bias, s->z, NULL, lp, mx);
            } else {
                const attn_kern_bcols keys = {s->hrow, v->k_off + hoff, v->L};
                k->logits(blk, v->q_off + hoff, dh, s->kt + hoff * lp, lp, lp, v->scale2,
                          s->bias, s->z, NULL, lp, mx, &keys);
            }
            k->softmax_acc(s->z, lp, lp, mx, 1.0f / t->heads, s->w, lp);
        }
        for (int r = 0; r < nr; r++) {
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
        s_explain(t, rq, s, &v, n, n_explain, distinct < v.L);
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
    /* Accumulated in the scratch: the kernels write whole blocks. */
    st = s_scores(t, rq, s, &v, s->score);
    memcpy(scores, s->score, (size_t)v.N * sizeof *scores);
    return st;
}
