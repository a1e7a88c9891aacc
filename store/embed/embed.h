/* embed.h -- the built-in text embedder: TF-IDF features reduced by a
 * randomized truncated SVD, L2-normalised.  No downloaded weights.
 *
 *     store_embed_opts o = store_embed_defaults();
 *     o.dim = 64; o.seed = 1;
 *     store_embed_info info;
 *     if (store_embed_run(db, &o, &info, &err) != STORE_OK)   // every item, one transaction
 *         die("%s", err.msg);
 *     printf("%zu items, %zu features, %zu empty\n", info.items, info.features, info.empty);
 *
 * The method (docs/IMPORT.md has the reasons):
 *   1. text = items.text, or the title when the text is empty;
 *   2. features: lower-cased words, word bigrams (within a phrase: not
 *      across punctuation) and character n-grams of each word, hashed into
 *      2^hash_bits buckets per block; features in fewer than min_df items
 *      are dropped (they cannot make two items closer), the max_features
 *      most frequent are kept;
 *   3. weights: sublinear tf (1 + ln tf) times smooth idf
 *      (ln((1+n)/(1+df)) + 1); the word block and the character block are
 *      each L2-normalised, the character block scaled by char_weight;
 *   4. a rank-dim truncated SVD of that items x features matrix by the
 *      randomized range finder (Halko, Martinsson & Tropp 2011): a seeded
 *      Gaussian test matrix with oversample extra columns, power_iters
 *      power iterations re-orthonormalised by QR (LAPACK sgeqrf/sorgqr),
 *      and the small SVD of the projected matrix (sgesdd); the item vectors
 *      are U * Sigma (LSA document vectors), signs fixed so that each
 *      component's largest entry is positive;
 *   5. every vector L2-normalised.  An item without any kept feature (empty
 *      text) gets a pseudo-random unit vector drawn from a hash of its
 *      ext_id and the seed: deterministic, nearly orthogonal to everything
 *      else, so it carries no false similarity (a zero vector cannot be
 *      normalised and would score 0 against every history).
 * The same seed, options and texts give the same vectors on one BLAS build.
 */
#ifndef STORE_EMBED_H
#define STORE_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef void (*store_embed_progress_fn)(void *ctx, const char *stage, size_t done,
                                        size_t total);

typedef struct store_embed_opts {
    int dim;               /* output dimension; 0 = the database's embedding_dim */
    uint64_t seed;         /* test matrix and empty-text vectors */
    int bigrams;           /* word bigrams (1) */
    int char_min;          /* character n-grams of words, shortest (3); 0 = none */
    int char_max;          /*   ... longest (4) */
    float char_weight;     /* norm of the character block next to the word block's 1 (0.5) */
    int hash_bits;         /* buckets per block = 2^hash_bits (20) */
    int min_df;            /* a feature must occur in this many items (2) */
    int max_features;      /* keep the most frequent (50000) */
    int oversample;        /* extra test-matrix columns (10) */
    int power_iters;       /* power iterations (5) */
    int force_dim;         /* store_embed_run: rewrite embedding_dim if dim differs */
    store_embed_progress_fn progress;   /* may be NULL */
    void *progress_ctx;
} store_embed_opts;

/* The defaults above (dim 0, seed 1). */
store_embed_opts store_embed_defaults(void);

typedef struct store_embed_info {
    size_t items;          /* vectors made */
    size_t features;       /* feature columns kept */
    size_t nonzeros;       /* entries of the TF-IDF matrix */
    size_t empty;          /* items given the hashed unit vector */
    int rank;              /* components with a non-zero singular value */
    int dim_changed;       /* store_embed_run rewrote embedding_dim (store_dim follows) */
    int models_unusable;   /* trained models left inactive by a dimension change */
} store_embed_info;

/* Embed n texts into out (n x o->dim, row-major, each row unit length).
 * keys[i] (the ext_id; may be NULL for all) seeds the vector of an item
 * without features.  Pure computation: no database.  STORE_ERR_INVAL on bad
 * options, STORE_ERR_NOMEM, STORE_ERR_IO if LAPACK reports a failure. */
int store_embed_texts(const char *const *texts, const char *const *keys, size_t n,
                      const store_embed_opts *o, float *out, store_embed_info *info,
                      store_err *err);

/* Embed every item of the database from its text and write all vectors, meta
 * 'embedder' (the method and parameters as JSON) and a catalog_version bump
 * in one transaction.  o->dim must equal embedding_dim unless o->force_dim,
 * which also rewrites embedding_dim, resizes the identity model (version 0)
 * and activates it if the active model had the old dimension
 * (store_dim_rewrite; info->dim_changed says it happened, and the handle's
 * store_dim is then the new one).  STORE_ERR_DIM when the dimension
 * differs without force_dim. */
int store_embed_run(store *db, const store_embed_opts *o, store_embed_info *info,
                    store_err *err);

/* ---- the stages, for tests and benchmarks ---------------------------------- */

/* A sparse items x features matrix, compressed rows. */
typedef struct store_embed_csr {
    size_t rows, cols;     /* items, feature columns */
    size_t *rowptr;        /* rows + 1 offsets into col/val */
    uint32_t *col;         /* feature column of each entry */
    float *val;            /* weight of each entry */
} store_embed_csr;

/* TF-IDF matrix of the texts (steps 1-3 above). */
int store_embed_tfidf(const char *const *texts, size_t n, const store_embed_opts *o,
                      store_embed_csr *out, store_err *err);
void store_embed_csr_free(store_embed_csr *m);   /* accepts a zeroed struct */

/* U * Sigma of the rank-dim truncated SVD of x into out (rows x dim,
 * row-major; columns past the rank are zero), signs fixed (step 4).
 * *rank receives the number of non-zero singular values found. */
int store_embed_svd(const store_embed_csr *x, int dim, const store_embed_opts *o, float *out,
                    int *rank, store_err *err);

/* The parameters as the JSON stored in meta 'embedder'; caller frees. */
char *store_embed_describe(const store_embed_opts *o, const store_embed_info *info);

#endif
