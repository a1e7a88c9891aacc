/* train_ws.h -- the layout of a thread's chunk workspace, shared by
 * train_step.c (which sizes it) and train_chunk.c (which uses it).
 * Internal to attn/train*.c.
 *
 * Sizes: C = ldc, the step's candidates rounded up to ATTN_TR_LANES; P =
 * pcap, the most event rows of a chunk (chunk + l_max - 1); H heads; ch =
 * the most targets of a chunk; L8 = l_max rounded up to 8.
 */
#ifndef ATTN_TRAIN_WS_H
#define ATTN_TRAIN_WS_H

#include "attn/train_int.h"
#include "attn/train_kern.h"

struct attn_tr_ws {
    const attn_tr_kern *k; /* the kernel set */
    int chunk;           /* most targets of a chunk */
    int ldc;             /* row length of Z & co: C */
    int pcap;            /* P */
    int l8;              /* L8: per-example row stride */
    int tw, sa_len, l_max;
    size_t nffn;         /* floats of dffn, 0 without a feed-forward layer */
    /* accumulators of the step, by working row */
    float *dT;           /* cap x tw */
    float *dbias;        /* cap */
    float *dpos;         /* l_max */
    float *dsa_pos;      /* sa_len */
    float *dffn;         /* nffn: [dW1 | db1 | dW2 | db2] of the feed-forward */
    double loss;         /* summed (scaled) loss */
    /* one chunk */
    uint32_t *erow;      /* P + sa_len: working row of each event from the chunk's span */
    float *sa_a;         /* P x sa_len: each event's self-attention weights */
    float *sa_x;         /* sa_len: scratch */
    float *KV, *dKV;     /* P x 2m: the events' [k' | v'] and their gradient */
    float *KV0;          /* P x 2m: the block's rows before the feed-forward */
    float *FH, *dFH;     /* P x ffn: its hidden layer (after the relu), gradient */
    float *Z, *S;        /* H x P x C: logits and values by event and candidate */
    float *dZ, *dS;      /* H x P x C */
    float *SC, *MX, *INV;  /* ch x H x C: each softmax's score part, max, 1 / sum */
    float *wt;           /* ch x C: each candidate's weight in an example's loss */
    float *sg;           /* ch x C: scores, then d loss / d score (0 = none) */
    float *bias;         /* ch x L8: logit bias of each example's window */
    float *dbw;          /* ch x L8: d loss / d bias */
    uint8_t *drop;       /* ch x L8: dropped events */
    int *cb, *lw;        /* ch: window's first event row, its length */
    uint32_t *tgt;       /* ch: the target's candidate column */
    float *work;         /* ATTN_TR_LANES x L8: kernel scratch */
    /* the factorised softmax (train_fact.c) */
    float *beta;         /* ch x P: exp(bias - max bias) of each example's window, 0 outside */
    float *gp, *hp;      /* ch x C: g / den and (g / den) sc, one head at a time */
    float *gpt, *hpt;    /* C x ch: the same transposed */
    float *d1t, *d2t;    /* P x ch: their products with ES and E */
};

/* What every part of a chunk's computation needs to know (train_chunk.c). */
typedef struct attn_tr_cv {
    const attn_tr_chunk *ch;
    const uint32_t *ev;    /* the user's events (catalog rows) */
    const float *w;        /* their weights, or NULL */
    int nex;               /* examples: t1 - t0 */
    int c0;                /* first event row of the windows */
    int P;                 /* event rows: c0 .. t1-2 */
    uint32_t lo;           /* first event of the span (self-attention context) */
    int Nc, Cn;            /* candidates, and rounded up to the lanes */
    size_t C, plane;       /* row length, and one head's matrix */
} attn_tr_cv;

/* The factorised softmax of every example and head of the chunk, from Z
 * and S (kept): per-head scores in ws->SC, denominators in ws->INV.
 * Returns 1, or 0 when a denominator underflowed and the chunk must take
 * the exact path (nothing else is changed then but scratch). */
int attn_tr_fact_forward(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c);

/* Its backward pass, once ws->sg holds d loss / d score: dZ, dS (written,
 * not added) and the window-bias gradients dbw (added). */
void attn_tr_fact_backward(const attn_tr_net *net, attn_tr_ws *ws, const attn_tr_cv *c);

/* For the tests: 1 forces the exact per-example softmax everywhere. */
void attn_tr_force_exact(int on);

#endif
