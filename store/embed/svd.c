/* svd.c -- truncated SVD of a sparse matrix by randomized range
 * finding (Halko, Martinsson & Tropp, "Finding structure with randomness",
 * 2011, algorithms 4.4 and 5.1).
 *
 * X is n x V sparse (items x features), k = dim + oversample (at most
 * min(n, V)).  Dense work arrays: Y (n x k) and Z (V x k), row-major, so the
 * sparse products stream through X's rows once each (and are the cost:
 * 2 * nnz * k flops per product, 2 * power_iters + 2 products):
 *
 *     Y = X Omega                    Omega: V x k, N(0,1) from the seed
 *     repeat q times:  Q = orth(Y);  Z = orth(X^T Q);  Y = X Z
 *     Q = orth(Y)                    range of X, n x k
 *     Z = X^T Q = B^T                B = Q^T X, k x V
 *     Z = Q_z R                      QR, Q_z formed too (sorgqr)
 *     R = U_r S V_r^T                small SVD
 *     => B^T = (Q_z U_r) S V_r^T, so X ~ Q B = (Q V_r) S (Q_z U_r)^T:
 *        the right singular vectors are W = Q_z U_r (V x k), of which the
 *        first dim columns are the projection.
 *
 * The output is W, not the item vectors: an item's vector is x W (its
 * TF-IDF row projected, project.c), the same map for the fitted items and
 * for a text folded in later.  For the fitted rows x W = Q V_r S + (I - Q
 * Q^T) X W: the LSA vectors U S plus the part of X outside the range the
 * random test matrix captured, which the power iterations make small and
 * which vanishes when X has rank <= k.
 *
 * Taking R from a QR of Z, rather than an eigendecomposition of B B^T,
 * keeps single precision accurate: the singular values are never squared.
 * LAPACK is called through its Fortran interface: Debian's libopenblas
 * exports sgeqrf_/sorgqr_/sgesdd_ but is built without LAPACKE (no
 * lapacke.h), and this is the ABI every LAPACK shares.  gfortran passes a
 * CHARACTER argument's length as a hidden trailing size_t, given explicitly
 * below.
 */
#include "store/embed/embed.h"
#include "util/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau, float *work,
             const int *lwork, int *info);
void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda,
             const float *tau, float *work, const int *lwork, int *info);
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s,
             float *u, const int *ldu, float *vt, const int *ldvt, float *work,
             const int *lwork, int *iwork, int *info, size_t jobz_len);

typedef struct s_ws {
    float *cm;        /* column-major copy for LAPACK, max(n, V) x k */
    float *tau;       /* k Householder scalars */
    float *work;      /* LAPACK workspace */
    int lwork;        /* floats in work */
} s_ws;

static int s_fail(store_err *err, int code, const char *what, int info)
{
    if (err) {
        err->code = code;
        if (code == STORE_ERR_NOMEM)
            snprintf(err->msg, sizeof err->msg, "embed: out of memory in the SVD");
        else
            snprintf(err->msg, sizeof err->msg, "embed: LAPACK %s failed (info %d)", what, info);
    }
    return code;
}

/* Fill x[0..n) with N(0,1) by Box-Muller from a seeded splitmix64 stream,
 * so the test matrix is the same everywhere. */
static void s_gauss(uint64_t *s, float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 2) {
        double g[2];
        util_splitmix_gauss2(s, g);
        x[i] = (float)g[0];
        if (i + 1 < n)
            x[i + 1] = (float)g[1];
    }
}

/* Dense rows are padded to a multiple of LANE floats (zero in the padding,
 * which products of zero-padded inputs keep at zero), so that the inner
 * loops below have a constant trip count and compile to vector code at -O2. */
#define LANE 8

static inline void s_axpy(float *restrict y, float a, const float *restrict x, int ld)
{
    for (int c = 0; c < ld; c += LANE)
        for (int q = 0; q < LANE; q++)
            y[c + q] += a * x[c + q];
}

/* Y (n x ld) = X (n x V) * A (V x ld), all row-major. */
static void s_xa(const store_embed_csr *x, const float *a, int ld, float *y)
{
    for (size_t i = 0; i < x->rows; i++) {
        float *yi = y + i * (size_t)ld;
        memset(yi, 0, (size_t)ld * sizeof *yi);
        for (size_t e = x->rowptr[i]; e < x->rowptr[i + 1]; e++)
            s_axpy(yi, x->val[e], a + (size_t)x->col[e] * (size_t)ld, ld);
    }
}

/* Z (V x ld) = X^T (V x n) * Q (n x ld), row-major. */
static void s_xtq(const store_embed_csr *x, const float *q, int ld, float *z)
{
    memset(z, 0, x->cols * (size_t)ld * sizeof *z);
    for (size_t i = 0; i < x->rows; i++) {
        const float *qi = q + i * (size_t)ld;
        for (size_t e = x->rowptr[i]; e < x->rowptr[i + 1]; e++)
            s_axpy(z + (size_t)x->col[e] * (size_t)ld, x->val[e], qi, ld);
    }
}

/* The first k columns of a row-major m x ld matrix to column-major and back
 * (the padding is left alone). */
static void s_to_cm(const float *rm, size_t m, int k, int ld, float *cm)
{
    for (size_t i = 0; i < m; i++)
        for (int c = 0; c < k; c++)
            cm[i + (size_t)c * m] = rm[i * (size_t)ld + (size_t)c];
}

static void s_from_cm(const float *cm, size_t m, int k, int ld, float *rm)
{
    for (size_t i = 0; i < m; i++)
        for (int c = 0; c < k; c++)
            rm[i * (size_t)ld + (size_t)c] = cm[i + (size_t)c * m];
}

/* QR of a (m x k, row-major, row stride ld) in ws->cm; the factor stays in
 * ws->cm and ws->tau. */
static int s_qr(s_ws *ws, const float *a, size_t m, int k, int ld, store_err *err)
{
    int mi = (int)m, info = 0;
    s_to_cm(a, m, k, ld, ws->cm);
    sgeqrf_(&mi, &k, ws->cm, &mi, ws->tau, ws->work, &ws->lwork, &info);
    return info ? s_fail(err, STORE_ERR_IO, "sgeqrf", info) : STORE_OK;
}

/* a (m x k, row stride ld) := an orthonormal basis of its columns. */
static int s_orth(s_ws *ws, float *a, size_t m, int k, int ld, store_err *err)
{
    int rc = s_qr(ws, a, m, k, ld, err);
    if (rc != STORE_OK)
        return rc;
    int mi = (int)m, info = 0;
    sorgqr_(&mi, &k, &k, ws->cm, &mi, ws->tau, ws->work, &ws->lwork, &info);
    if (info)
        return s_fail(err, STORE_ERR_IO, "sorgqr", info);
    s_from_cm(ws->cm, m, k, ld, a);
    return STORE_OK;
}

/* Workspace big enough for sgeqrf/sorgqr on the tallest matrix. */
static int s_ws_init(s_ws *ws, size_t m, int k, store_err *err)
{
    memset(ws, 0, sizeof *ws);
    int mi = (int)m, info = 0, query = -1;
    float w1 = 0, w2 = 0, dummy[1] = {0};
    /* Workspace queries (lwork = -1) read no matrix; dummies keep every
     * pointer valid all the same. */
    sgeqrf_(&mi, &k, dummy, &mi, dummy, &w1, &query, &info);
    sorgqr_(&mi, &k, &k, dummy, &mi, dummy, &w2, &query, &info);
    ws->lwork = (int)fmaxf(fmaxf(w1, w2), (float)k * 64);
    ws->cm = malloc(m * (size_t)k * sizeof *ws->cm);
    ws->tau = malloc((size_t)k * sizeof *ws->tau);
    ws->work = malloc((size_t)ws->lwork * sizeof *ws->work);
    if (!ws->cm || !ws->tau || !ws->work)
        return s_fail(err, STORE_ERR_NOMEM, NULL, 0);
    return STORE_OK;
}

static void s_ws_free(s_ws *ws)
{
    free(ws->cm);
    free(ws->tau);
    free(ws->work);
}

/* SVD of the k x k upper triangle R held in ws->cm (leading dimension V):
 * singular values into s, U_r (column-major) into u. */
static int s_small_svd(s_ws *ws, size_t v, int k, float *s, float *u, store_err *err)
{
    size_t kk = (size_t)k * (size_t)k;
    float *r = calloc(kk, sizeof *r), *vt = malloc(kk * sizeof *vt);
    int *iwork = malloc(8 * (size_t)k * sizeof *iwork);
    float *work = NULL;
    int rc = STORE_OK;
    if (!r || !vt || !iwork) {
        rc = s_fail(err, STORE_ERR_NOMEM, NULL, 0);
        goto out;
    }
    for (int c = 0; c < k; c++)
        for (int i = 0; i <= c; i++)
            r[(size_t)i + (size_t)c * (size_t)k] = ws->cm[(size_t)i + (size_t)c * v];
    int info = 0, query = -1;
    float wq = 0;
    sgesdd_("A", &k, &k, r, &k, s, u, &k, vt, &k, &wq, &query, iwork, &info, 1);
    int lwork = (int)wq + 1;
    if (!(work = malloc((size_t)lwork * sizeof *work))) {
        rc = s_fail(err, STORE_ERR_NOMEM, NULL, 0);
        goto out;
    }
    sgesdd_("A", &k, &k, r, &k, s, u, &k, vt, &k, work, &lwork, iwork, &info, 1);
    if (info)
        rc = s_fail(err, STORE_ERR_IO, "sgesdd", info);
out:
    free(r);
    free(vt);
    free(iwork);
    free(work);
    return rc;
}

/* Make each column of W positive where x W is largest in magnitude over
 * the fit's rows: an SVD fixes a vector only up to sign, and a stable sign
 * keeps re-runs comparable. */
static int s_fix_signs(const store_embed_csr *x, float *proj, int dim, store_err *err)
{
    float *xw = malloc((x->rows ? x->rows : 1) * (size_t)dim * sizeof *xw);
    if (!xw)
        return s_fail(err, STORE_ERR_NOMEM, NULL, 0);
    store_embed_basis b = {.o = {.dim = dim}, .cols = x->cols, .proj = proj};
    store_embed_xw(&b, x, xw);
    for (int c = 0; c < dim; c++) {
        float best = 0;
        for (size_t i = 0; i < x->rows; i++) {
            float v = xw[i * (size_t)dim + (size_t)c];
            if (fabsf(v) > fabsf(best))
                best = v;
        }
        if (best < 0)
            for (size_t j = 0; j < x->cols; j++)
                proj[j * (size_t)dim + (size_t)c] = -proj[j * (size_t)dim + (size_t)c];
    }
    free(xw);
    return STORE_OK;
}

/* Steps 1-3 of the header: Q (in y) and the QR of Z = X^T Q (in ws). */
static int s_range(const store_embed_csr *x, const store_embed_opts *o, s_ws *ws, int ki, int ld,
                   float *y, float *z, store_err *err)
{
    size_t n = x->rows, v = x->cols, k = (size_t)ki;
    /* Omega in Z's buffer, row by row so that the padding stays zero. */
    uint64_t state = o->seed * 0x2545F4914F6CDD1Dull + 0x5EED;
    for (size_t j = 0; j < v; j++)
        s_gauss(&state, z + j * (size_t)ld, k);
    s_xa(x, z, ld, y);
    int rc = STORE_OK, steps = o->power_iters > 0 ? o->power_iters : 0;
    for (int it = 0; it < steps && rc == STORE_OK; it++) {
        rc = s_orth(ws, y, n, ki, ld, err);
        if (rc == STORE_OK) {
            s_xtq(x, y, ld, z);
            rc = s_orth(ws, z, v, ki, ld, err);
        }
        if (rc == STORE_OK)
            s_xa(x, z, ld, y);
        if (o->progress)
            o->progress(o->progress_ctx, "svd", (size_t)it + 1, (size_t)steps + 1);
    }
    if (rc == STORE_OK)
        rc = s_orth(ws, y, n, ki, ld, err);    /* Q */
    if (rc == STORE_OK) {
        s_xtq(x, y, ld, z);                    /* B^T */
        rc = s_qr(ws, z, v, ki, ld, err);      /* R (and Q_z's reflectors) in ws->cm */
    }
    return rc;
}

/* W = Q_z U_r[:, :dim] into proj, with the components at rounding level
 * (and those past k) left zero; ws->cm holds the QR of Z. */
static int s_project(s_ws *ws, size_t v, int ki, int dim, const float *s, const float *u,
                     float *proj, float *sigma, int *rank, store_err *err)
{
    int vi = (int)v, info = 0;
    sorgqr_(&vi, &ki, &ki, ws->cm, &vi, ws->tau, ws->work, &ws->lwork, &info);
    if (info)
        return s_fail(err, STORE_ERR_IO, "sorgqr", info);
    int d_eff = dim < ki ? dim : ki;
    /* proj (V x d_eff, row stride dim) = Q_z (column-major V x k, seen
     * row-major as k x V) transposed, times U_r (column-major k x k, seen
     * row-major as U_r^T) transposed. */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, vi, d_eff, ki, 1.0f, ws->cm, vi, u, ki,
                0.0f, proj, dim);
    float smax = s[0];
    for (int c = 0; c < dim; c++) {
        /* Components at rounding level are noise, not structure. */
        int keep = c < d_eff && s[c] > smax * 1e-5f;
        sigma[c] = keep ? s[c] : 0.0f;
        *rank += keep;
        if (!keep)
            for (size_t j = 0; j < v; j++)
                proj[j * (size_t)dim + (size_t)c] = 0.0f;
    }
    return STORE_OK;
}

int store_embed_svd(const store_embed_csr *x, int dim, const store_embed_opts *o, float *proj,
                    float *sigma, int *rank, store_err *err)
{
    size_t n = x->rows, v = x->cols;
    *rank = 0;
    memset(proj, 0, v * (size_t)dim * sizeof *proj);
    memset(sigma, 0, (size_t)dim * sizeof *sigma);
    size_t k = (size_t)dim + (size_t)(o->oversample > 0 ? o->oversample : 0);
    if (k > n)
        k = n;
    if (k > v)
        k = v;
    if (k == 0)
        return STORE_OK;
    if (n > INT32_MAX / 2 || v > INT32_MAX / 2)
        return s_fail(err, STORE_ERR_INVAL, "(matrix too large)", 0);
    int ki = (int)k;
    int ld = (ki + LANE - 1) / LANE * LANE;
    float *y = calloc(n * (size_t)ld, sizeof *y);
    float *z = calloc(v * (size_t)ld, sizeof *z);
    float *s = malloc(k * sizeof *s);
    float *u = malloc(k * k * sizeof *u);
    s_ws ws;
    int rc = s_ws_init(&ws, n > v ? n : v, ki, err);
    if (rc == STORE_OK && (!y || !z || !s || !u))
        rc = s_fail(err, STORE_ERR_NOMEM, NULL, 0);
    if (rc == STORE_OK)
        rc = s_range(x, o, &ws, ki, ld, y, z, err);
    if (rc == STORE_OK)
        rc = s_small_svd(&ws, v, ki, s, u, err);
    if (rc == STORE_OK)
        rc = s_project(&ws, v, ki, dim, s, u, proj, sigma, rank, err);
    if (rc == STORE_OK)
        rc = s_fix_signs(x, proj, dim, err);
    if (rc == STORE_OK && o->progress)
        o->progress(o->progress_ctx, "svd", 1, 1);
    s_ws_free(&ws);
    free(y);
    free(z);
    free(s);
    free(u);
    return rc;
}
