/* project.c -- step 5 of the embedder: a TF-IDF row to its unit vector,
 * the one map shared by the fit and by every text folded in later.
 *
 * Why x W, and why that is the fold-in.  Let X (n x V) be the fit's TF-IDF
 * matrix and X = U S W^T its SVD, truncated to the top dim components
 * (U: n x dim orthonormal columns, S diagonal, W: V x dim orthonormal
 * columns).  The LSA vector of fitted item i is row i of U S, and since
 * W^T W = I,
 *
 *     (U S)_i = (U S W^T W)_i = (X W)_i = x_i W,
 *
 * so the item vectors are a linear map of the TF-IDF rows.  The classic
 * fold-in of a new document (Deerwester et al. 1990; Berry, Dumais &
 * O'Brien 1995) asks which row u of U it would have had: u = x W S^-1,
 * i.e. u S = x W -- the same map.  (A space defined by U alone would fold
 * in with x W S^-1; ours weighs each component by its singular value, as
 * the vectors always have, so no S appears.)  Every vector is then
 * L2-normalised, v = x W / |x W|, and x itself depends only on the text
 * and the stored vocabulary, idf and block weights (tfidf.c).  So one
 * function computes every vector, fitted or folded in, from the basis:
 * an item of the fit folds in to exactly its fitted vector, and a new
 * item lands in the same coordinates the model was trained on.
 *
 * The randomized SVD (svd.c) finds W; the fitted vectors are defined as
 * x W rather than as the Q V_r S the algorithm also offers, which differs
 * by the part of X outside the captured range and could not be reproduced
 * for a text without its row of Q.
 */
#include "store/embed/embed.h"

#include <math.h>
#include <string.h>

void store_embed_xw(const store_embed_basis *b, const store_embed_csr *x, float *out)
{
    const int dim = b->o.dim;
    for (size_t i = 0; i < x->rows; i++) {
        float *restrict yi = out + i * (size_t)dim;
        memset(yi, 0, (size_t)dim * sizeof *yi);
        for (size_t e = x->rowptr[i]; e < x->rowptr[i + 1]; e++) {
            const float *restrict w = b->proj + (size_t)x->col[e] * (size_t)dim;
            const float a = x->val[e];
            for (int c = 0; c < dim; c++)
                yi[c] += a * w[c];
        }
    }
}

size_t store_embed_project(const store_embed_basis *b, const store_embed_csr *x,
                           const char *const *keys, float *out)
{
    const int dim = b->o.dim;
    size_t empty = 0;
    store_embed_xw(b, x, out);
    for (size_t i = 0; i < x->rows; i++) {
        float *v = out + i * (size_t)dim;
        double s = 0;
        for (int c = 0; c < dim; c++)
            s += (double)v[c] * v[c];
        /* No kept feature (or a projection at rounding level): the
         * documented hashed direction instead of noise or a zero. */
        if (x->rowptr[i] == x->rowptr[i + 1] || !(s > 1e-12)) {
            store_embed_hash_unit(keys ? keys[i] : NULL, b->o.seed, v, dim);
            empty++;
            continue;
        }
        float inv = (float)(1.0 / sqrt(s));
        for (int c = 0; c < dim; c++)
            v[c] *= inv;
    }
    return empty;
}
