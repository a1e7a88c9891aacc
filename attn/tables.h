/* tables.h -- the layout of attn_tables (internal to attn/: tables.c builds
 * it, score.c reads it).  docs/MODEL.md explains the algebra.
 *
 * For every catalog row r the fast path needs four m-vectors:
 *
 *     q = e W_Q      g = W_O e  (= e W_Oᵀ)      k = e W_K      v = e W_V
 *
 * where e is the effective embedding (text + residual).  They live at
 * base + r * stride + {q,g,k,v}_off.  Three layouts:
 *
 *   identity     all projections are the identity, so q = g = k = v = e:
 *                base aliases the caller's embeddings (zero extra memory),
 *                every offset is 0.  With a residual in ATTN_PRECOMPUTE_ALL
 *                mode base is an owned copy of the effective embeddings.
 *   ALL          owned rows [q | g | pad | k | v | pad], stride 2 wcols;
 *                with a self-attention block the history side of a row
 *                also holds [sq | sk | pad | uk | uv | pad] (stride 4 wcols).
 *   NONE         base aliases the embeddings and requests project the rows
 *                they touch with w_qg and w_kv.
 *
 * The history side of a row (k_off onwards, hcols floats) has the same
 * layout whether it lives in the tables (ALL) or is projected per request
 * (NONE): [k | v | pad], then with a block [sq | sk | pad | uk | uv | pad]
 * starting wcols after k.
 *
 * When `eff` is set the rows at base are text embeddings without their
 * residual, and a request must build effective rows itself (pidx says which).
 *
 * Precision (score.h): in bfloat16 tables every row at base is owned and
 * bfloat16 -- ALL's rows as above; for the identity model and NONE a copy
 * of the (effective, resp. text) embeddings, stride round16(d) -- and a
 * request widens what it reads into its scratch before the kernels run.
 */
#ifndef ATTN_TABLES_H
#define ATTN_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "attn/kern.h"
#include "attn/model.h"
#include "attn/score.h"

struct attn_tables {
    attn_model *model;         /* private deep copy */
    attn_precompute mode;      /* as built */
    int threads;               /* as asked for */
    size_t n;                  /* catalog rows */
    int d, m, heads, dh;       /* shapes; dh = m / heads */
    int shared;                /* every projection is the identity: q = g = k = v = e */
    int eff;                   /* requests must add residuals themselves (see above) */

    attn_precision prec;       /* what the rows at base are stored in */
    size_t esize;              /* bytes per element there: 4 (float) or 2 (bfloat16) */
    const void *base;          /* row r's vectors start at element r * stride of base */
    size_t stride;             /* elements between rows */
    size_t q_off, g_off, k_off, v_off;   /* offsets of q, g, k, v in a row (elements) */
    void *rows;                /* owned rows (base points here), or NULL */

    const float *emb;          /* the caller's embeddings (borrowed), ld floats a row */
    size_t ld;
    int64_t *pidx;             /* copy of param_index when eff is set, else NULL */
    float *row_bias;           /* item bias by catalog row, or NULL = zeros */

    float *w_qg, *w_kv;        /* NONE: d x wcols [W_Q | W_Oᵀ] and d x hcols [W_K | W_V]
                                  (+ [S_Q | S_K], [U_K | U_V]), zero padded */
    int wcols;                 /* 2m rounded up to ATTN_KERN_COLS */
    int hcols;                 /* history side: wcols, or 3 wcols with a block */
    int sa_len;                /* the model's self-attention window, 0 = none */
    size_t bytes;              /* memory owned, for attn_tables_bytes */
};

/* The first element of catalog row r (at esize bytes each). */
static inline const char *attn_tables_row(const attn_tables *t, size_t r)
{
    return (const char *)t->base + r * t->stride * t->esize;
}

/* x rounded up to a multiple of ATTN_KERN_COLS. */
static inline size_t attn_round_cols(size_t x)
{
    return (x + ATTN_KERN_COLS - 1) / ATTN_KERN_COLS * ATTN_KERN_COLS;
}

#endif
