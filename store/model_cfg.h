/* model_cfg.h -- models.config JSON, private to the store core. */
#ifndef STORE_MODEL_CFG_H
#define STORE_MODEL_CFG_H

#include <stddef.h>
#include "attn/model.h"

/* The shape keys of a config. */
typedef struct store_model_cfg {
    int d, m, heads, l_max;
    float scale;
    int identity;      /* "identity": true -- no projection tensors expected */
    int sa_len;        /* "sa_len": self-attention window; absent = 0 = no block */
    int ffn;           /* "ffn": the block's feed-forward width; absent = 0 = none */
} store_model_cfg;

/* Parse and range-check json.  0 on success; -1 with a reason in why. */
int store_model_cfg_parse(const char *json, store_model_cfg *cfg, char *why, size_t len);

/* The config to store for model: extra (a JSON object or NULL) with the
 * shape keys set from the model.  A shape key in extra that disagrees with
 * the model is refused.  Returns malloc'ed text (free with free()), or NULL
 * with a reason in why. */
char *store_model_cfg_write(const attn_model *model, const char *extra, char *why, size_t len);

/* 1 if json parses as JSON, else 0. */
int store_model_cfg_valid_json(const char *json);

#endif
