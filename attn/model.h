/* model.h -- the parameters of one model version.
 *
 * Target attention between a user's history and each candidate (docs/MODEL.md
 * is the authority on the formula).  Shapes, row-major throughout:
 *
 *     W_Q, W_K, W_V   d x m        W_O   m x d        pos_bias   l_max
 *
 * and, optionally, a history self-attention block (sa_len > 0) that gives
 * each history event a key and value in the context of the sa_len - 1
 * events before it (docs/MODEL.md §2.1):
 *
 *     S_Q, S_K, U_K, U_V   d x m      sa_pos   sa_len
 *
 * and, on top of the block, optionally a feed-forward layer of width ffn
 * applied to each event's [k' | v'] row, a residual update (docs/MODEL.md
 * §2.2):  kv <- kv + relu(kv W1 + b1) W2 + b2
 *
 *     W1   2m x ffn    b1   ffn    W2   ffn x 2m    b2   2m
 *
 * A NULL projection means the identity (and requires m == d).  Version 0, the
 * identity model, has every projection NULL, one head and no biases: attention
 * by embedding similarity, usable before any training.
 *
 * Per-item parameters are keyed by items.item_id, not by catalog row, because
 * the catalog can change under a model: an item the model never saw has no
 * entry and keeps its pure text embedding and a zero bias.
 */
#ifndef ATTN_MODEL_H
#define ATTN_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct attn_model {
    int64_t version;      /* models.version; 0 is the identity model */
    int d;                /* embedding dimension (input) */
    int m;                /* attention width, a multiple of heads */
    int heads;            /* H: head width is m / heads */
    int l_max;            /* longest history the position bias covers */
    float scale;          /* logit scale, 1/sqrt(m/heads) unless trained otherwise */
    float *wq, *wk, *wv;  /* d x m each, or NULL = identity */
    float *wo;            /* m x d, or NULL = identity */
    float *pos_bias;      /* l_max, position 0 = newest; NULL = zeros */
    int64_t n_items;      /* entries in the per-item arrays below */
    int64_t *item_ids;    /* n_items, strictly ascending items.item_id */
    float *item_bias;     /* n_items, or NULL = zeros */
    float *residual;      /* n_items x d added to the text embedding, or NULL */
    int sa_len;           /* self-attention window (events, itself included); 0 = no block */
    float *sa_q, *sa_k;   /* d x m: the block's query and key projections */
    float *sa_uk, *sa_uv; /* d x m: what an attended event adds to the key / value */
    float *sa_pos;        /* sa_len, by distance (0 = the event itself) */
    int ffn;              /* hidden width of the block's feed-forward; 0 = none */
    float *ffn_w1;        /* 2m x ffn: [k' | v'] to the hidden layer */
    float *ffn_b1;        /* ffn */
    float *ffn_w2;        /* ffn x 2m: the hidden layer back, added to [k' | v'] */
    float *ffn_b2;        /* 2m */
} attn_model;

/* Logit scale of the identity model: cosine similarities of L2-normalised
 * text embeddings lie in [-1, 1], far too flat for a softmax; a temperature
 * of 0.1 lets the nearest history items dominate (docs/MODEL.md). */
#define ATTN_IDENTITY_SCALE 10.0f

/* Allocate an identity model of dimension d (version 0, one head, l_max
 * positions of zero bias).  Returns NULL on out-of-memory. */
attn_model *attn_model_identity(int d, int l_max);

/* Allocate a model with every array present and zeroed (wq..wo, pos_bias;
 * item arrays only when n_items > 0, residual only if with_residual).
 * Returns NULL on out-of-memory or bad shapes (m % heads, non-positive sizes). */
attn_model *attn_model_new(int d, int m, int heads, int l_max, int64_t n_items,
                           int with_residual);

/* Longest self-attention window: far beyond any useful one (attention
 * weight falls off within ~20 events, docs/QUALITY.md), and small enough
 * for the scorer's stack. */
#define ATTN_SA_MAX 256

/* Give md a self-attention block of window sa_len (>= 1), every array
 * zeroed -- a zero block changes no score.  ATTN_OK, ATTN_EINVAL (length
 * outside 1..ATTN_SA_MAX, or md already has one) or ATTN_ENOMEM (md unchanged). */
int attn_model_add_sa(attn_model *md, int sa_len);

/* Widest feed-forward layer (ATTN_KERN_COLS must divide its width, and 2m). */
#define ATTN_FFN_MAX 1024

/* Give md's self-attention block a feed-forward layer of width ffn, every
 * array zeroed -- a zero layer changes no score.  ATTN_OK, ATTN_EINVAL (no
 * block, a layer already, ffn outside 16..ATTN_FFN_MAX or not a multiple
 * of 16, or m not a multiple of 8) or ATTN_ENOMEM (md unchanged). */
int attn_model_add_ffn(attn_model *md, int ffn);

/* Deep copy; NULL on out-of-memory. */
attn_model *attn_model_clone(const attn_model *src);

/* Free the model and every array it owns; accepts NULL; sets *model_p = NULL. */
void attn_model_free(attn_model **model_p);

/* Check shapes and that every parameter is finite.  Returns ATTN_OK or
 * ATTN_EINVAL with a one-line reason in why (may be NULL). */
int attn_model_check(const attn_model *model, char *why, size_t why_len);

/* Index of item_id in model->item_ids, or -1.  Binary search. */
int64_t attn_model_item_index(const attn_model *model, int64_t item_id);

/* Bytes held by the model's arrays. */
size_t attn_model_bytes(const attn_model *model);

#endif
