/* snapshot.h -- everything a request reads, built together, swapped together.
 *
 * A snapshot is the catalog, the models it serves (the active one first,
 * then those models.serve and experiment arms name), each with the tables
 * precomputed for it over this catalog, the popularity prior and the
 * titles.  Workers take a reference for the
 * length of one request; a reload builds the next snapshot beside the
 * serving one and publishes it; the old one is freed by whoever drops the
 * last reference.  So a reload never blocks a request and never frees
 * memory a request still reads.
 */
#ifndef DAEMON_SNAPSHOT_H
#define DAEMON_SNAPSHOT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "attn/score.h"
#include "daemon/config.h"
#include "daemon/experiment.h"
#include "store/store.h"

#define SRV_TITLE_MAX 1024   /* bytes of a title kept, cut on a character boundary */

/* One model over the snapshot's catalog. */
typedef struct srv_model {
    int64_t version;
    attn_tables *tables;        /* model + precomputed projections */
    const attn_model *model;    /* borrowed from tables */
    int64_t *param_index;       /* per catalog row: index into the model's item params, or -1 */
    int l_hist;                 /* history used per request: min(max_history, model l_max) */
    int l_ctx;                  /* older events read after it as self-attention context:
                                   the model's sa_len - 1, 0 without a block */
    size_t bytes;               /* tables and parameter index */
    int precision;              /* enum cfg_precision: what its tables hold */
} srv_model;

typedef struct srv_snapshot {
    atomic_int refs;            /* references: the published slot + requests */
    store_catalog *cat;         /* items and embeddings */
    int n_models;
    srv_model models[SRV_MODELS_MAX];   /* [0] is the active model */
    int arm_model[SRV_ARMS_MAX];        /* experiment arm -> index into models */
    float *popularity;          /* per catalog row: interaction count (cold-start prior) */
    store_titles *titles;       /* per catalog row, or NULL with server.titles off */
    size_t title_bytes;         /* memory the titles hold */
    int64_t model_version;      /* the active model's, models[0].version */
    int64_t catalog_version;
    double build_ms;            /* time the build took */
    size_t bytes;               /* memory the snapshot holds */
    char checksum[STORE_CHECKSUM_HEX];  /* a snapshot file's BLAKE2b-256; "" for a database */
    uint64_t file_dev, file_ino;  /* the file it was built from: a file renamed over the
                                     path is a new one (reload.c) */
} srv_snapshot;

/* Build a snapshot from the database in cfg (own read-only connection),
 * loading the active model, models.serve's and exp's arms' versions.
 * Returns 0, or -1 with a one-line reason. */
int srv_snapshot_build(const srv_config *cfg, const srv_experiment *exp, srv_snapshot **out,
                       char *why, size_t why_len);

/* The loaded model with this version, or NULL. */
const srv_model *srv_snapshot_model(const srv_snapshot *snap, int64_t version);

/* Title of a catalog row (not NUL-terminated, valid UTF-8); "" without
 * titles. */
const char *srv_snapshot_title(const srv_snapshot *snap, uint32_t row, size_t *len);

/* Drop a reference; the last one frees.  Accepts NULL; sets *snap_p = NULL. */
void srv_snapshot_release(srv_snapshot **snap_p);

/* The published snapshot with a reference taken, or NULL before the first. */
srv_snapshot *srv_snapshot_acquire(void);

/* Publish snap (the caller's reference moves into the slot); the previous
 * one is released.  NULL unpublishes (shutdown). */
void srv_snapshot_publish(srv_snapshot *snap);

#endif
