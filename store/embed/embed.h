/* embed.h -- the built-in text embedder: TF-IDF features reduced by a
 * randomized truncated SVD, L2-normalised.  No downloaded weights.  A fit
 * is kept as a basis in the database, and items that arrive later are
 * folded into the same space with it, never moving the vectors a trained
 * model learnt on.
 *
 *     store_embed_opts o = store_embed_defaults();
 *     store_embed_info info;
 *     if (store_embed_run(db, &o, &info, &err) != STORE_OK)   // one transaction
 *         die("%s", err.msg);
 *     if (info.folded)                   // a basis was stored: new items only
 *         printf("%zu new items folded in, %zu untouched\n", info.items, info.kept);
 *     else                               // the first embed (or o.refit): a fit
 *         printf("%zu items, %zu features, %zu empty\n", info.items, info.features,
 *                info.empty);
 *
 * The method (docs/IMPORT.md has the reasons):
 *   1. text = items.text, or the title when the text is empty;
 *   2. features: lower-cased words, word bigrams (within a phrase: not
 *      across punctuation) and character n-grams of each word, hashed into
 *      2^hash_bits buckets per block; features in fewer than min_df items
 *      of the fit are dropped (they cannot make two items closer), the
 *      max_features most frequent are kept -- the vocabulary;
 *   3. weights: sublinear tf (1 + ln tf) times smooth idf
 *      (ln((1+n)/(1+df)) + 1, n and df counted in the fit); the word block
 *      and the character block are each L2-normalised, the character block
 *      scaled by char_weight;
 *   4. a rank-dim truncated SVD of the fit's items x features matrix X by
 *      the randomized range finder (Halko, Martinsson & Tropp 2011): a
 *      seeded Gaussian test matrix with oversample extra columns,
 *      power_iters power iterations re-orthonormalised by QR (LAPACK
 *      sgeqrf/sorgqr), and the small SVD of the projected matrix (sgesdd),
 *      giving the top right singular vectors W (features x dim), each
 *      column's sign fixed so that the fit's largest entry is positive;
 *   5. an item's vector is x W (its TF-IDF row projected: the LSA document
 *      vector U Sigma, see project.c), L2-normalised.  An item without any
 *      kept feature (empty text) or whose projection vanishes gets a
 *      pseudo-random unit vector drawn from a hash of its ext_id and the
 *      seed: deterministic, nearly orthogonal to everything else, so it
 *      carries no false similarity (a zero vector cannot be normalised and
 *      would score 0 against every history).
 * The basis is steps 2-5's data: the options, the kept buckets with their
 * idf, and W.  Folding a text in runs steps 1, 3 and 5 with it, so an item
 * that was in the fit folds in to its fitted vector.  The same seed,
 * options and texts give the same vectors on one BLAS build.
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
    int refit;             /* store_embed_run: fit again although a basis is stored */
    int keep_models;       /* store_embed_run: a fit over existing vectors leaves the
                              active trained model active */
    double hold_out;       /* store_embed_run, fit only: the newest fraction of items
                              (store_items_newest) is left out of the fit and left
                              without a vector (experiments; 0 = none) */
    store_embed_progress_fn progress;   /* may be NULL */
    void *progress_ctx;
} store_embed_opts;

/* The defaults above (dim 0, seed 1). */
store_embed_opts store_embed_defaults(void);

typedef struct store_embed_info {
    size_t items;          /* vectors made (fitted, or folded in) */
    size_t features;       /* feature columns of the basis */
    size_t nonzeros;       /* entries of the TF-IDF matrix embedded */
    size_t empty;          /* items given the hashed unit vector */
    int rank;              /* components with a non-zero singular value */
    int dim_changed;       /* store_embed_run rewrote embedding_dim (store_dim follows) */
    int models_unusable;   /* trained models left inactive by a dimension change */
    /* store_embed_run only: */
    int folded;            /* 1: new items folded into the stored basis; 0: a fit */
    size_t kept;           /* items whose vector was left as it was */
    size_t moved;          /* a fit: items that had a vector before it */
    int refit;             /* a fit that replaced a space (a basis or vectors existed) */
    int64_t model_off;     /* the trained model the refit deactivated (0: none) */
    int64_t model_kept;    /* the trained model a refit left active (keep_models) */
    int old_models;        /* trained models, active or not, of the replaced space */
    size_t held_out;       /* items left out of the fit without a vector (hold_out) */
} store_embed_info;

/* A fitted basis: everything needed to embed a text as the fit did.
 * Owned arrays; store_embed_basis_free releases them. */
typedef struct store_embed_basis {
    store_embed_opts o;    /* the fit's options (dim, seed, features); callbacks NULL */
    size_t n_fit;          /* items in the fit (the n of the idf) */
    size_t cols;           /* kept feature columns */
    uint32_t *bucket;      /* cols: column j's hashed feature, strictly ascending */
    float *idf;            /* cols */
    float *proj;           /* cols x dim, row-major: the projection W */
    float *sigma;          /* dim: singular values, 0 past the rank (informative) */
    int rank;              /* non-zero columns of W */
    int64_t created_at;    /* unix seconds of the fit */
} store_embed_basis;

void store_embed_basis_free(store_embed_basis *b);   /* accepts a zeroed struct */

/* Fit on n texts and embed them into out (n x o->dim, row-major, each row
 * unit length); the basis goes to *basis when it is not NULL (free it with
 * store_embed_basis_free).  keys[i] (the ext_id; may be NULL for all)
 * seeds the vector of an item without features.  Pure computation: no
 * database.  STORE_ERR_INVAL on bad options, STORE_ERR_NOMEM, STORE_ERR_IO
 * if LAPACK reports a failure. */
int store_embed_fit(const char *const *texts, const char *const *keys, size_t n,
                    const store_embed_opts *o, float *out, store_embed_basis *basis,
                    store_embed_info *info, store_err *err);

/* Embed n texts into out (n x b->o.dim) with a fitted basis: the vector a
 * text in the fit was given, for any text.  Features the fit did not keep
 * are ignored.  Pure computation. */
int store_embed_fold(const store_embed_basis *b, const char *const *texts,
                     const char *const *keys, size_t n, float *out, store_embed_info *info,
                     store_err *err);

/* The unit vector of an item without features (step 5): from key and seed. */
void store_embed_hash_unit(const char *key, uint64_t seed, float *v, int dim);

/* ---- the database ------------------------------------------------------------ */

/* Embed a database, in one transaction with a catalog_version bump when a
 * vector was written.
 *
 * With a basis stored and no o->refit: fold in the items that have no
 * vector (new, or whose text changed) and never touch another; meta
 * 'embedder' counts them.  o's feature options are ignored (the basis has
 * its own); o->dim other than 0 or the basis's, force_dim and hold_out are
 * STORE_ERR_INVAL (they need a fit).  Refused with STORE_ERR_INVAL when
 * meta 'embedder' says the vectors were imported after the fit: new
 * vectors would not share their space.
 *
 * Otherwise fit on every item (but the held-out ones), write every vector,
 * the basis and meta 'embedder'.  If that replaces a space (a basis or any
 * vector existed), the active trained model is deactivated -- the identity
 * model (version 0) serves -- unless o->keep_models; info says which.
 * o->dim must equal embedding_dim unless o->force_dim, which also rewrites
 * embedding_dim and resizes the identity model (store_dim_rewrite;
 * info->dim_changed says it happened, and the handle's store_dim is then the
 * new one).  STORE_ERR_DIM when the dimension differs without force_dim. */
int store_embed_run(store *db, const store_embed_opts *o, store_embed_info *info,
                    store_err *err);

/* The basis stored in db (basis.c).  STORE_ERR_NOTFOUND when there is none;
 * STORE_ERR_CORRUPT naming the row when a row is missing, misshapen or out
 * of range.  On failure b is zeroed. */
int store_embed_basis_load(store *db, store_embed_basis *b, store_err *err);
/* Only the options and counts of the stored basis (its config row): no
 * arrays are read and b holds none (cols is 0).  Same codes as _load. */
int store_embed_basis_peek(store *db, store_embed_basis *b, store_err *err);
/* Replace the stored basis with b, inside the caller's store_begin. */
int store_embed_basis_save(store *db, const store_embed_basis *b, store_err *err);

/* ---- the stages, for tests and benchmarks ---------------------------------- */

/* A sparse items x features matrix, compressed rows. */
typedef struct store_embed_csr {
    size_t rows, cols;     /* items, feature columns */
    size_t *rowptr;        /* rows + 1 offsets into col/val */
    uint32_t *col;         /* feature column of each entry */
    float *val;            /* weight of each entry */
} store_embed_csr;

void store_embed_csr_free(store_embed_csr *m);   /* accepts a zeroed struct */

/* The vocabulary of the texts (step 2): b->o = *o, b->n_fit, b->cols,
 * b->bucket and b->idf; the rest of b zeroed. */
int store_embed_vocab(const char *const *texts, size_t n, const store_embed_opts *o,
                      store_embed_basis *b, store_err *err);

/* TF-IDF matrix of the texts over b's vocabulary (step 3). */
int store_embed_tfidf(const char *const *texts, size_t n, const store_embed_basis *b,
                      store_embed_csr *out, store_err *err);

/* The rank-dim truncated SVD of x (step 4): the projection W into proj
 * (x->cols x dim, row-major; columns past the rank are zero) and the
 * singular values into sigma (dim), signs fixed on x's rows.  *rank
 * receives the number of non-zero singular values kept. */
int store_embed_svd(const store_embed_csr *x, int dim, const store_embed_opts *o, float *proj,
                    float *sigma, int *rank, store_err *err);

/* x W into out (x->rows x b->o.dim), unnormalised. */
void store_embed_xw(const store_embed_basis *b, const store_embed_csr *x, float *out);

/* Step 5: out = the normalised x W of every row, or the hashed unit vector
 * of keys[i] (NULL: "") for a row without features or with a vanishing
 * projection.  Returns how many rows got the hashed vector. */
size_t store_embed_project(const store_embed_basis *b, const store_embed_csr *x,
                           const char *const *keys, float *out);

/* The parameters as the JSON stored in meta 'embedder'; caller frees.
 * b and info may be NULL. */
char *store_embed_describe(const store_embed_opts *o, const store_embed_basis *b,
                           const store_embed_info *info);

#endif
