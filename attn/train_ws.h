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
    /* accumulators of the step, by working row */
    float *dT;           /* cap x tw */
    float *dbias;        /* cap */
    float *dpos;         /* l_max */
    float *dsa_pos;      /* sa_len */
    double loss;         /* summed (scaled) loss */
    /* one chunk */
    uint32_t *erow;      /* P + sa_len: working row of each event from the chunk's span */
    float *sa_a;         /* P x sa_len: each event's self-attention weights */
    float *sa_x;         /* sa_len: scratch */
    float *KV, *dKV;     /* P x 2m: the events' [k' | v'] and their gradient */
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
};

#endif
