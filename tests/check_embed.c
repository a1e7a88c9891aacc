/* check_embed.c -- the built-in text embedder: determinism, unit norms,
 * similar texts closer than dissimilar ones, the empty-text rule, the
 * truncated SVD against a known spectrum and against a Jacobi
 * eigendecomposition, folding texts into a fitted basis, and a database
 * embedded in one transaction: the first fit, fold-ins that never move a
 * vector, the stored basis checked on load, refits and what they do to
 * trained models, the held-out newest items, --force-dim.
 *
 * The corpus is generated: a few topics, each a vocabulary, and texts drawn
 * from one topic plus words every topic shares, so that "same topic" is
 * known without anyone labelling anything.
 */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/embed/embed.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tests/testutil.h"
#include "tests/tu_daemon.h"

#define N_TOPICS 4
#define PER_TOPIC 30
#define N_TEXTS (N_TOPICS * PER_TOPIC)

static const char *const s_vocab[N_TOPICS][8] = {
    {"rocket", "orbit", "astronaut", "galaxy", "planet", "starship", "alien", "launch"},
    {"recipe", "kitchen", "baking", "flour", "sauce", "chef", "oven", "spices"},
    {"football", "goal", "striker", "league", "referee", "stadium", "penalty", "coach"},
    {"violin", "symphony", "orchestra", "piano", "concerto", "melody", "composer", "opera"},
};
static const char *const s_common[] = {"the", "story", "of", "a", "new", "great", "life", "day"};

/* Text i: five words of topic i % N_TOPICS and three common ones. */
static char **s_corpus(size_t n, uint64_t seed)
{
    tu_rng r = {seed};
    char **t = calloc(n, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        char buf[256] = "";
        size_t o = 0;
        for (int w = 0; w < 8; w++) {
            const char *word = w < 5 ? s_vocab[i % N_TOPICS][tu_next(&r) % 8]
                                     : s_common[tu_next(&r) % 8];
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", w ? " " : "", word);
        }
        t[i] = strdup(buf);
    }
    return t;
}

static void s_free_corpus(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
}

static float s_dot(const float *a, const float *b, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++)
        s += (double)a[i] * b[i];
    return (float)s;
}

static float *s_embed(char **texts, char **keys, size_t n, int dim, uint64_t seed,
                      store_embed_info *info)
{
    store_embed_opts o = store_embed_defaults();
    o.dim = dim;
    o.seed = seed;
    float *out = malloc(n * (size_t)dim * sizeof *out);
    store_err err = {0};
    ck_assert_msg(store_embed_fit((const char *const *)texts, (const char *const *)keys, n, &o,
                                  out, NULL, info, &err) == STORE_OK, "%s", err.msg);
    return out;
}

/* ---- pure embedding -------------------------------------------------------- */

START_TEST(test_deterministic_unit)
{
    char **t = s_corpus(N_TEXTS, 7);
    store_embed_info i1, i2;
    float *a = s_embed(t, NULL, N_TEXTS, 16, 3, &i1);
    float *b = s_embed(t, NULL, N_TEXTS, 16, 3, &i2);
    ck_assert_msg(memcmp(a, b, N_TEXTS * 16 * sizeof *a) == 0, "same seed, other vectors");
    ck_assert_uint_eq(i1.items, N_TEXTS);
    ck_assert_uint_gt(i1.features, 20);
    ck_assert_int_gt(i1.rank, 0);
    ck_assert_uint_eq(i1.empty, 0);
    for (size_t i = 0; i < N_TEXTS; i++) {
        float nrm = s_dot(a + i * 16, a + i * 16, 16);
        ck_assert_msg(fabsf(nrm - 1.0f) < 1e-5f, "row %zu has norm^2 %g", i, (double)nrm);
        for (int c = 0; c < 16; c++)
            ck_assert(isfinite(a[i * 16 + (size_t)c]));
    }
    free(a);
    free(b);
    s_free_corpus(t, N_TEXTS);
}
END_TEST

START_TEST(test_similar_closer)
{
    char **t = s_corpus(N_TEXTS, 11);
    store_embed_info info;
    const int d = 8;
    float *e = s_embed(t, NULL, N_TEXTS, d, 1, &info);
    double same = 0, other = 0;
    size_t n_same = 0, n_other = 0, nn_right = 0;
    for (size_t i = 0; i < N_TEXTS; i++) {
        size_t best = i;
        float best_s = -2;
        for (size_t j = 0; j < N_TEXTS; j++) {
            if (j == i)
                continue;
            float s = s_dot(e + i * d, e + j * d, d);
            if (i % N_TOPICS == j % N_TOPICS)
                same += s, n_same++;
            else
                other += s, n_other++;
            if (s > best_s)
                best_s = s, best = j;
        }
        nn_right += best % N_TOPICS == i % N_TOPICS;
    }
    same /= (double)n_same;
    other /= (double)n_other;
    ck_assert_msg(same > other + 0.4, "same topic %g, other topics %g", same, other);
    ck_assert_msg(nn_right >= N_TEXTS * 95 / 100, "nearest neighbour on topic for %zu of %d",
                  nn_right, N_TEXTS);
    free(e);
    s_free_corpus(t, N_TEXTS);

    /* Titles: shared words and shared n-grams ("Star W..."/"Star T...")
     * beat nothing in common.  The filler gives idf something to weigh. */
    char *titles[] = {
        "Star Wars (1977). Action, Adventure, Sci-Fi",
        "Star Trek: The Motion Picture (1979). Action, Adventure, Sci-Fi",
        "Sense and Sensibility (1995). Drama, Romance",
        "Pride and Prejudice (1995). Drama, Romance",
        "Toy Story (1995). Animation, Children's, Comedy",
        "Toy Story 2 (1999). Animation, Children's, Comedy",
        "Alien (1979). Horror, Sci-Fi",
        "Aliens (1986). Action, Horror, Sci-Fi",
        "Emma (1996). Drama, Romance",
        "Heat (1995). Action, Crime, Thriller",
    };
    size_t n = sizeof titles / sizeof titles[0];
    store_embed_opts o = store_embed_defaults();
    o.dim = 6;
    float *v = malloc(n * 6 * sizeof *v);
    store_err err = {0};
    ck_assert_int_eq(store_embed_fit((const char *const *)titles, NULL, n, &o, v, NULL, &info,
                                     &err), STORE_OK);
    float sw_st = s_dot(v, v + 6, 6), sw_ss = s_dot(v, v + 12, 6);
    float ts_ts2 = s_dot(v + 24, v + 30, 6), ts_pp = s_dot(v + 24, v + 18, 6);
    ck_assert_msg(sw_st > sw_ss, "star wars~trek %g <= star wars~sense %g", (double)sw_st,
                  (double)sw_ss);
    ck_assert_msg(ts_ts2 > ts_pp, "toy story~2 %g <= toy story~pride %g", (double)ts_ts2,
                  (double)ts_pp);
    free(v);
}
END_TEST

START_TEST(test_empty_text)
{
    char **t = s_corpus(N_TEXTS, 5);
    char *keys[N_TEXTS];
    char kbuf[N_TEXTS][16];
    for (int i = 0; i < N_TEXTS; i++) {
        snprintf(kbuf[i], sizeof kbuf[i], "item%d", i);
        keys[i] = kbuf[i];
    }
    /* Two empty texts and one whose words (and their character n-grams)
     * occur nowhere else, so min_df drops them: all three get the hashed
     * unit vector of their ext_id. */
    free(t[3]);
    t[3] = strdup("");
    free(t[8]);
    t[8] = strdup("   ...   ");
    free(t[9]);
    t[9] = strdup("qqqq zzzz");
    store_embed_info info;
    const int d = 12;
    float *a = s_embed(t, keys, N_TEXTS, d, 1, &info);
    ck_assert_uint_eq(info.empty, 3);
    float *b = s_embed(t, keys, N_TEXTS, d, 1, &info);
    ck_assert(memcmp(a + 3 * d, b + 3 * d, d * sizeof *a) == 0);
    ck_assert_float_eq_tol(s_dot(a + 3 * d, a + 3 * d, d), 1.0f, 1e-5f);
    /* Another ext_id, another direction. */
    ck_assert_float_lt(s_dot(a + 3 * d, a + 8 * d, d), 0.99f);
    /* The same ext_id gets the same vector whatever else is in the corpus. */
    char *one[] = {""};
    char *k1[] = {"item3"};
    float *c = s_embed(one, k1, 1, d, 1, &info);
    ck_assert(memcmp(a + 3 * d, c, d * sizeof *a) == 0);
    free(a);
    free(b);
    free(c);
    s_free_corpus(t, N_TEXTS);
}
END_TEST

/* A dense n x v row-major matrix as a CSR one with every entry stored. */
static store_embed_csr s_dense_csr(const float *a, int n, int v)
{
    store_embed_csr x = {.rows = (size_t)n, .cols = (size_t)v};
    x.rowptr = malloc(((size_t)n + 1) * sizeof *x.rowptr);
    x.col = malloc((size_t)n * (size_t)v * sizeof *x.col);
    x.val = malloc((size_t)n * (size_t)v * sizeof *x.val);
    for (int i = 0; i <= n; i++)
        x.rowptr[i] = (size_t)i * (size_t)v;
    for (size_t e = 0; e < (size_t)n * (size_t)v; e++) {
        x.col[e] = (uint32_t)(e % (size_t)v);
        x.val[e] = a[e];
    }
    return x;
}

START_TEST(test_svd_spectrum)
{
    /* A 40 x 30 matrix U diag(s) V^T with known, decaying s: the SVD stage
     * must recover U*s (so row norms of the output match those of U*s)
     * and see rank 5 when given a rank-5 matrix. */
    enum { n = 40, v = 30, r = 5 };
    tu_rng g = {3};
    static float dense[n][v];
    static float u[n][r], w[v][r];
    float s[r] = {10, 6, 3, 1.5f, 0.7f};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < r; k++)
            u[i][k] = (float)tu_normal(&g);
    for (int j = 0; j < v; j++)
        for (int k = 0; k < r; k++)
            w[j][k] = (float)tu_normal(&g);
    /* Orthonormalise the columns (Gram-Schmidt) so that s is the spectrum. */
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < r; k++) {
            float (*m)[r] = pass ? w : u;
            int rows = pass ? v : n;
            for (int q = 0; q < k; q++) {
                double dp = 0;
                for (int i = 0; i < rows; i++)
                    dp += m[i][k] * m[i][q];
                for (int i = 0; i < rows; i++)
                    m[i][k] -= (float)dp * m[i][q];
            }
            double nn = 0;
            for (int i = 0; i < rows; i++)
                nn += m[i][k] * m[i][k];
            for (int i = 0; i < rows; i++)
                m[i][k] /= (float)sqrt(nn);
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < v; j++) {
            double x = 0;
            for (int k = 0; k < r; k++)
                x += u[i][k] * s[k] * w[j][k];
            dense[i][j] = (float)x;
        }
    store_embed_csr x = s_dense_csr(&dense[0][0], n, v);
    store_embed_opts o = store_embed_defaults();
    float out[n * 8], proj[v * 8], sigma[8];
    int rank;
    store_err err = {0};
    ck_assert_int_eq(store_embed_svd(&x, 8, &o, proj, sigma, &rank, &err), STORE_OK);
    ck_assert_int_eq(rank, r);
    store_embed_basis bv = {.o = {.dim = 8}, .cols = v, .proj = proj};
    store_embed_xw(&bv, &x, out);
    /* W's kept columns are orthonormal, the rest zero; sigma is s. */
    for (int c = 0; c < 8; c++) {
        ck_assert_msg(fabs(sigma[c] - (c < r ? s[c] : 0)) < 1e-3 * s[0], "sigma %d: %g", c,
                      (double)sigma[c]);
        for (int c2 = 0; c2 < 8; c2++) {
            double dp = 0;
            for (int j = 0; j < v; j++)
                dp += (double)proj[j * 8 + c] * proj[j * 8 + c2];
            double want = c == c2 && c < r ? 1.0 : 0.0;
            ck_assert_msg(fabs(dp - want) < 1e-4, "W col %d . col %d = %g", c, c2, dp);
        }
    }
    for (int i = 0; i < n; i++) {
        double want = 0, got = 0;
        for (int k = 0; k < r; k++)
            want += (double)u[i][k] * u[i][k] * s[k] * s[k];
        for (int c = 0; c < 8; c++)
            got += (double)out[i * 8 + c] * out[i * 8 + c];
        ck_assert_msg(fabs(got - want) < 1e-3 * (1 + want), "row %d: %g vs %g", i, got, want);
    }
    /* Component c's column has norm s[c] (U's columns are unit). */
    for (int c = 0; c < r; c++) {
        double nn = 0;
        for (int i = 0; i < n; i++)
            nn += (double)out[i * 8 + c] * out[i * 8 + c];
        ck_assert_msg(fabs(sqrt(nn) - s[c]) < 1e-3 * s[0], "sigma %d: %g vs %g", c, sqrt(nn),
                      (double)s[c]);
    }
    /* Another seed draws another test matrix but finds the same subspace
     * of this exactly low-rank matrix: the same vectors (signs are fixed). */
    o.seed = 12345;
    float other[n * 8];
    ck_assert_int_eq(store_embed_svd(&x, 8, &o, proj, sigma, &rank, &err), STORE_OK);
    store_embed_xw(&bv, &x, other);
    for (int i = 0; i < n * 8; i++)
        ck_assert_msg(fabsf(out[i] - other[i]) < 1e-3f * s[0], "entry %d: %g vs %g", i,
                      (double)out[i], (double)other[i]);
    store_embed_csr_free(&x);
}
END_TEST

START_TEST(test_fewer_items_than_dim)
{
    char *t[] = {"red apple pie", "green apple tart", "red cherry pie"};
    store_embed_info info;
    float *e = s_embed(t, NULL, 3, 16, 1, &info);
    ck_assert_int_le(info.rank, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq_tol(s_dot(e + i * 16, e + i * 16, 16), 1.0f, 1e-5f);
    free(e);
}
END_TEST

/* ---- folding in ---------------------------------------------------------------- */

static double s_maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

START_TEST(test_fold_reproduces_fit)
{
    /* The corpus, an empty text and one of words nobody else has. */
    enum { n = N_TEXTS + 2, d = 12 };
    char **t = s_corpus(n, 17);
    free(t[N_TEXTS]);
    t[N_TEXTS] = strdup("");
    free(t[N_TEXTS + 1]);
    t[N_TEXTS + 1] = strdup("qqqq zzzz");
    char *keys[n], kbuf[n][16];
    for (int i = 0; i < n; i++) {
        snprintf(kbuf[i], sizeof kbuf[i], "k%d", i);
        keys[i] = kbuf[i];
    }
    store_embed_opts o = store_embed_defaults();
    o.dim = d;
    store_embed_basis b;
    store_embed_info info;
    store_err err = {0};
    float *fit = malloc(n * d * sizeof *fit), *fold = malloc(n * d * sizeof *fold);
    ck_assert_msg(store_embed_fit((const char *const *)t, (const char *const *)keys, n, &o, fit,
                                  &b, &info, &err) == STORE_OK, "%s", err.msg);
    ck_assert_uint_eq(b.n_fit, n);
    ck_assert_uint_eq(b.cols, info.features);
    /* All at once, and one text at a time (a row never depends on others). */
    ck_assert_int_eq(store_embed_fold(&b, (const char *const *)t, (const char *const *)keys, n,
                                      fold, &info, &err), STORE_OK);
    ck_assert_uint_eq(info.empty, 2);
    double md = s_maxdiff(fit, fold, n * d);
    ck_assert_msg(md <= 1e-5, "fold-in differs from the fit by %g", md);
    for (int i = 0; i < n; i++) {
        float one[d];
        ck_assert_int_eq(store_embed_fold(&b, (const char *const *)&t[i],
                                          (const char *const *)&keys[i], 1, one, &info, &err),
                         STORE_OK);
        md = s_maxdiff(fit + i * d, one, d);
        ck_assert_msg(md <= 1e-5, "text %d alone differs by %g", i, md);
    }
    /* A new text of topic 2 lands among topic 2's items. */
    const char *nt[] = {"striker penalty goal the stadium referee of a league"};
    float v[d];
    ck_assert_int_eq(store_embed_fold(&b, nt, NULL, 1, v, &info, &err), STORE_OK);
    ck_assert_float_eq_tol(s_dot(v, v, d), 1.0f, 1e-5f);
    double same = 0, other = 0;
    for (int i = 0; i < N_TEXTS; i++)
        *(i % N_TOPICS == 2 ? &same : &other) += s_dot(v, fit + i * d, d);
    same /= PER_TOPIC;
    other /= N_TEXTS - PER_TOPIC;
    ck_assert_msg(same > other + 0.4, "new text: its topic %g, others %g", same, other);
    store_embed_basis_free(&b);
    free(fit);
    free(fold);
    s_free_corpus(t, n);
}
END_TEST

/* Eigenvalues (descending) and eigenvectors (columns of v, n x n) of the
 * symmetric a (n x n, destroyed) by cyclic Jacobi rotations, in double: an
 * oracle that shares nothing with the randomized SVD. */
static void s_jacobi(double *a, int n, double *w, double *v)
{
    for (int i = 0; i < n * n; i++)
        v[i] = i % (n + 1) == 0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++)
                off += a[p * n + q] * a[p * n + q];
        if (off < 1e-26)
            break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                if (fabs(a[p * n + q]) < 1e-300)
                    continue;
                double th = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q]);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) {       /* A = J^T A J */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++)
        w[i] = a[i * n + i];
    for (int i = 0; i < n; i++)         /* selection sort, descending */
        for (int j = i + 1; j < n; j++)
            if (w[j] > w[i]) {
                double tw = w[i];
                w[i] = w[j];
                w[j] = tw;
                for (int k = 0; k < n; k++) {
                    double tv = v[k * n + i];
                    v[k * n + i] = v[k * n + j];
                    v[k * n + j] = tv;
                }
            }
}

START_TEST(test_svd_reference)
{
    /* A noisy rank-4 matrix with a clear gap: the randomized SVD's W and
     * sigma against the eigendecomposition of X^T X, and x W against X
     * times the reference eigenvectors (signs by the same rule). */
    enum { n = 50, v = 20, r = 4, d = 4 };
    static double x[n][v];
    tu_rng g = {41};
    const double sv[r] = {10, 7, 4, 2};
    static double a[n][r], bm[v][r];
    for (int i = 0; i < n; i++)
        for (int k = 0; k < r; k++)
            a[i][k] = tu_normal(&g) / sqrt((double)n);
    for (int j = 0; j < v; j++)
        for (int k = 0; k < r; k++)
            bm[j][k] = tu_normal(&g) / sqrt((double)v);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < v; j++) {
            x[i][j] = 0.01 * tu_normal(&g);
            for (int k = 0; k < r; k++)
                x[i][j] += a[i][k] * sv[k] * bm[j][k];
        }
    static float xf[n][v];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < v; j++)
            xf[i][j] = (float)x[i][j];
    store_embed_csr m = s_dense_csr(&xf[0][0], n, v);
    store_embed_opts o = store_embed_defaults();
    float proj[v * d], sigma[d], xw[n * d];
    int rank;
    store_err err = {0};
    ck_assert_int_eq(store_embed_svd(&m, d, &o, proj, sigma, &rank, &err), STORE_OK);
    ck_assert_int_eq(rank, d);
    store_embed_basis bv = {.o = {.dim = d}, .cols = v, .proj = proj};
    store_embed_xw(&bv, &m, xw);

    static double gram[v * v], w[v], ev[v * v];
    for (int p = 0; p < v; p++)
        for (int q = 0; q < v; q++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += x[i][p] * x[i][q];
            gram[p * v + q] = s;
        }
    s_jacobi(gram, v, w, ev);
    for (int c = 0; c < d; c++) {
        double ref_sigma = sqrt(w[c]);
        ck_assert_msg(fabs(sigma[c] - ref_sigma) < 1e-4 * ref_sigma, "sigma %d: %.7g vs %.7g", c,
                      (double)sigma[c], ref_sigma);
        double col[n], best = 0;
        for (int i = 0; i < n; i++) {
            col[i] = 0;
            for (int j = 0; j < v; j++)
                col[i] += x[i][j] * ev[j * v + c];
            if (fabs(col[i]) > fabs(best))
                best = col[i];
        }
        double sg = best < 0 ? -1 : 1;
        for (int i = 0; i < n; i++)
            ck_assert_msg(fabs(xw[i * d + c] - sg * col[i]) < 1e-4 * sv[0],
                          "x W [%d][%d]: %.7g vs %.7g", i, c, (double)xw[i * d + c], sg * col[i]);
        for (int j = 0; j < v; j++)
            ck_assert_msg(fabs(proj[j * d + c] - sg * ev[j * v + c]) < 1e-3,
                          "W [%d][%d]: %.6g vs %.6g", j, c, (double)proj[j * d + c],
                          sg * ev[j * v + c]);
    }
    store_embed_csr_free(&m);
}
END_TEST

/* ---- a database ------------------------------------------------------------------ */

static const char *s_db_with_texts(const char *name, int dim, size_t n)
{
    const char *path = tu_path(name);
    unlink(path);
    store_err err = {0};
    ck_assert_msg(store_init(path, dim, &err) == STORE_OK, "%s", err.msg);
    store *db;
    ck_assert_int_eq(store_open(&db, path, STORE_READWRITE, 2000, &err), STORE_OK);
    char **t = s_corpus(n, 21);
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    for (size_t i = 0; i < n; i++) {
        char ext[16];
        snprintf(ext, sizeof ext, "it%zu", i);
        /* Item 0: title only (the text falls back to it); item 1: nothing. */
        ck_assert_int_eq(store_item_put(db, ext, i == 0 ? t[i] : "Title",
                                        i == 0 ? "" : i == 1 ? "" : t[i], NULL, 1, NULL, &err),
                         STORE_OK);
    }
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    store_close(&db);
    s_free_corpus(t, n);
    return path;
}

static int64_t s_q(store *db, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(store_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A database of n generated texts, opened read-write and embedded once (the
 * first fit, default options). */
static store *s_fitted_db(const char *name, int dim, size_t n)
{
    const char *path = s_db_with_texts(name, dim, n);
    store *db;
    store_err err = {0};
    ck_assert_int_eq(store_open(&db, path, STORE_READWRITE, 2000, &err), STORE_OK);
    store_embed_opts o = store_embed_defaults();
    store_embed_info info;
    ck_assert_msg(store_embed_run(db, &o, &info, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(info.folded, 0);
    ck_assert_int_eq(info.refit, 0);     /* nothing had a vector: the first fit */
    return db;
}

START_TEST(test_run_db)
{
    const char *path = s_db_with_texts("embed.db", 8, 60);
    store *db;
    store_err err = {0};
    ck_assert_int_eq(store_open(&db, path, STORE_READWRITE, 2000, &err), STORE_OK);
    int64_t v0;
    ck_assert_int_eq(store_catalog_version(db, &v0, &err), STORE_OK);
    store_embed_opts o = store_embed_defaults();
    store_embed_info info;
    ck_assert_msg(store_embed_run(db, &o, &info, &err) == STORE_OK, "%s", err.msg);
    ck_assert_uint_eq(info.items, 60);
    ck_assert_uint_eq(info.empty, 1);       /* item 1: no text, title "Title" only once */
    ck_assert_int_eq(s_q(db, "SELECT count(*) FROM items WHERE length(embedding) = 32"), 60);
    int64_t v1;
    ck_assert_int_eq(store_catalog_version(db, &v1, &err), STORE_OK);
    ck_assert_int_eq(v1, v0 + 1);
    char meta[2048];
    ck_assert_int_eq(store_meta_get(db, "embedder", meta, sizeof meta, &err), STORE_OK);
    ck_assert_msg(strstr(meta, "\"method\":\"tfidf-svd\"") && strstr(meta, "\"dim\":8") &&
                  strstr(meta, "\"seed\":1"), "%s", meta);
    store_catalog *cat;
    ck_assert_msg(store_catalog_load(db, &cat, &err) == STORE_OK, "%s", err.msg);
    ck_assert_uint_eq(cat->n, 60);
    ck_assert_uint_eq(cat->n_unembedded, 0);
    store_catalog_free(&cat);
    store_close(&db);
}
END_TEST

START_TEST(test_run_dim)
{
    store *db = s_fitted_db("dim.db", 8, 40);
    const char *path = tu_path("dim.db");
    store_err err = {0};
    store_embed_opts o = store_embed_defaults();
    store_embed_info info;
    int64_t emb8 = s_q(db, "SELECT count(*) FROM items WHERE length(embedding) = 32");

    /* Another dimension with a stored basis: a fold-in cannot change it. */
    o.dim = 6;
    ck_assert_int_eq(store_embed_run(db, &o, &info, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "dimension 8, not 6") && strstr(err.msg, "--refit"), "%s",
                  err.msg);
    /* A refit to another dimension without --force-dim: refused, nothing
     * written. */
    o.refit = 1;
    ck_assert_int_eq(store_embed_run(db, &o, &info, &err), STORE_ERR_DIM);
    ck_assert_msg(strstr(err.msg, "embedding_dim is 8, not 6") && strstr(err.msg, "--force-dim"),
                  "%s", err.msg);
    ck_assert_int_eq(s_q(db, "SELECT count(*) FROM items WHERE length(embedding) = 32"), emb8);

    /* With it: embedding_dim, every blob and the identity model change
     * together; a trained model of the old dimension is set aside. */
    ck_assert_int_eq(sqlite3_exec(store_sqlite(db),
                                  "UPDATE models SET active = 0; INSERT INTO models(version, "
                                  "created_at, heads, d_model, config, active) VALUES "
                                  "(5, 0, 2, 8, '{}', 1)", NULL, NULL, NULL), SQLITE_OK);
    o.force_dim = 1;
    ck_assert_msg(store_embed_run(db, &o, &info, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(info.dim_changed, 1);
    ck_assert_int_eq(info.models_unusable, 1);
    store_close(&db);
    ck_assert_int_eq(store_open(&db, path, STORE_READWRITE, 2000, &err), STORE_OK);
    ck_assert_int_eq(store_dim(db), 6);
    ck_assert_int_eq(s_q(db, "SELECT count(*) FROM items WHERE length(embedding) = 24"), 40);
    ck_assert_int_eq(s_q(db, "SELECT d_model FROM models WHERE version = 0"), 6);
    ck_assert_int_eq(s_q(db, "SELECT version FROM models WHERE active = 1"), 0);
    store_catalog *cat;
    ck_assert_msg(store_catalog_load(db, &cat, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(cat->dim, 6);
    store_catalog_free(&cat);
    store_close(&db);
}
END_TEST

/* Every item's embedding blob, in item_id order: n rows of dim floats
 * (NaN-filled for a NULL), and which were NULL. */
static float *s_vectors(store *db, int dim, size_t *n, uint8_t **null_out)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(store_sqlite(db), "SELECT embedding FROM items ORDER BY "
                                        "item_id", -1, &st, NULL), SQLITE_OK);
    size_t cap = 64, k = 0;
    float *v = malloc(cap * (size_t)dim * sizeof *v);
    uint8_t *nul = malloc(cap);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (k == cap) {
            cap *= 2;
            v = realloc(v, cap * (size_t)dim * sizeof *v);
            nul = realloc(nul, cap);
        }
        nul[k] = sqlite3_column_type(st, 0) == SQLITE_NULL;
        if (nul[k])
            for (int c = 0; c < dim; c++)
                v[k * (size_t)dim + (size_t)c] = NAN;
        else {
            ck_assert_int_eq(sqlite3_column_bytes(st, 0), dim * 4);
            memcpy(v + k * (size_t)dim, sqlite3_column_blob(st, 0), (size_t)dim * 4);
        }
        k++;
    }
    sqlite3_finalize(st);
    *n = k;
    if (null_out)
        *null_out = nul;
    else
        free(nul);
    return v;
}

static void s_exec(store *db, const char *sql)
{
    char *msg = NULL;
    ck_assert_msg(sqlite3_exec(store_sqlite(db), sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s",
                  sql, msg ? msg : "");
}

static void s_put_item(store *db, const char *ext, const char *text)
{
    store_err err = {0};
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    ck_assert_msg(store_item_put(db, ext, "Title", text, NULL, 1, NULL, &err) == STORE_OK, "%s",
                  err.msg);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
}

START_TEST(test_run_fold)
{
    enum { d = 8, n0 = 60 };
    store *db = s_fitted_db("fold.db", d, n0);
    store_err err = {0};
    store_embed_opts o = store_embed_defaults();
    store_embed_info info;
    ck_assert_int_eq(s_q(db, "SELECT count(*) FROM embedder_basis"), 5);
    size_t n;
    float *fitted = s_vectors(db, d, &n, NULL);
    ck_assert_uint_eq(n, n0);

    /* Five items lose their vector (their text "changed"), three arrive:
     * one with item 7's text, one of topic 2, one empty. */
    s_exec(db, "UPDATE items SET embedding = NULL WHERE item_id IN (3, 10, 20, 33, 59)");
    /* Behind the store's back, item 12's text changes but its vector
     * stays: only a re-embedding of vectors that exist would move it. */
    s_exec(db, "UPDATE items SET text = 'violin opera symphony melody' WHERE item_id = 12");
    char *t7 = NULL;
    {
        sqlite3_stmt *st;
        sqlite3_prepare_v2(store_sqlite(db), "SELECT text FROM items WHERE item_id = 8", -1, &st,
                           NULL);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        t7 = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    s_put_item(db, "new-a", t7);
    s_put_item(db, "new-b", "football striker referee goal penalty stadium");
    s_put_item(db, "new-c", "");
    int64_t v0;
    ck_assert_int_eq(store_catalog_version(db, &v0, &err), STORE_OK);
    ck_assert_msg(store_embed_run(db, &o, &info, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(info.folded, 1);
    ck_assert_uint_eq(info.items, 8);
    ck_assert_uint_eq(info.kept, n0 - 5);
    ck_assert_uint_eq(info.empty, 1);
    int64_t v1;
    ck_assert_int_eq(store_catalog_version(db, &v1, &err), STORE_OK);
    ck_assert_int_eq(v1, v0 + 1);
    uint8_t *nul;
    float *now = s_vectors(db, d, &n, &nul);
    ck_assert_uint_eq(n, n0 + 3);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(!nul[i], "item %zu has no vector", i + 1);
    free(nul);
    for (size_t i = 0; i < n0; i++) {
        int refolded = i + 1 == 3 || i + 1 == 10 || i + 1 == 20 || i + 1 == 33 || i + 1 == 59;
        if (refolded) {
            double md = s_maxdiff(fitted + i * d, now + i * d, d);
            ck_assert_msg(md <= 1e-5, "item %zu folded in %g from its fitted vector", i + 1, md);
        } else {
            ck_assert_msg(!memcmp(fitted + i * d, now + i * d, d * sizeof *now),
                          "item %zu was moved by a fold-in", i + 1);
        }
    }
    ck_assert_msg(s_maxdiff(fitted + 7 * d, now + n0 * d, d) <= 1e-5, "same text, other vector");
    char meta[2048];
    ck_assert_int_eq(store_meta_get(db, "embedder", meta, sizeof meta, &err), STORE_OK);
    ck_assert_msg(strstr(meta, "\"folded_items\":8") && strstr(meta, "\"fit_items\":60"), "%s",
                  meta);

    /* Nothing without a vector: nothing written, no reload. */
    ck_assert_int_eq(store_embed_run(db, &o, &info, &err), STORE_OK);
    ck_assert_uint_eq(info.items, 0);
    ck_assert_uint_eq(info.kept, n0 + 3);
    ck_assert_int_eq(store_catalog_version(db, &v0, &err), STORE_OK);
    ck_assert_int_eq(v0, v1);
    free(t7);
    free(fitted);
    free(now);
    store_close(&db);
}
END_TEST

/* A fold-in that must not happen: the error code and a word of its message;
 * the item without a vector keeps none. */
static void s_fold_refused(store *db, const store_embed_opts *o, int code, const char *word)
{
    store_embed_info info;
    store_err err = {0};
    ck_assert_int_eq(store_embed_run(db, o, &info, &err), code);
    ck_assert_msg(strstr(err.msg, word), "'%s' not in: %s", word, err.msg);
    ck_assert_int_eq(s_q(db, "SELECT count(*) FROM items WHERE embedding IS NULL"), 1);
}

START_TEST(test_run_fold_refused)
{
    store *db = s_fitted_db("refuse.db", 8, 40);
    store_err err = {0};
    store_embed_opts o = store_embed_defaults();
    store_embed_info info;
    s_put_item(db, "late", "rocket orbit galaxy");

    /* Options that need a fit. */
    store_embed_opts f = o;
    f.force_dim = 1;
    s_fold_refused(db, &f, STORE_ERR_INVAL, "--force-dim needs a fit");
    f = o;
    f.hold_out = 0.1;
    s_fold_refused(db, &f, STORE_ERR_INVAL, "hold-out needs a fit");

    /* Each kind of damage to the stored basis, named; a refit repairs it. */
    static const struct { const char *sql, *word; } damage[] = {
        {"DELETE FROM embedder_basis WHERE name = 'projection'", "no 'projection' row"},
        {"UPDATE embedder_basis SET data = substr(data, 1, 8) WHERE name = 'idf'", "'idf'"},
        {"UPDATE embedder_basis SET rows = rows - 1 WHERE name = 'projection'", "'projection'"},
        {"UPDATE embedder_basis SET dtype = 'f32' WHERE name = 'bucket'", "'bucket' is f32"},
        {"UPDATE embedder_basis SET data = CAST(replace(CAST(data AS TEXT), 'tfidf-svd', 'bm25') "
         "AS BLOB) WHERE name = 'config'", "'config'"},
        {"UPDATE embedder_basis SET data = zeroblob(length(data)) WHERE name = 'bucket'",
         "out of range or out of order"},
    };
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        s_exec(db, "SAVEPOINT dmg");
        s_exec(db, damage[i].sql);
        s_exec(db, "RELEASE dmg");
        s_fold_refused(db, &o, STORE_ERR_CORRUPT, damage[i].word);
        store_embed_opts r = o;
        r.refit = 1;
        ck_assert_msg(store_embed_run(db, &r, &info, &err) == STORE_OK, "%s", err.msg);
        ck_assert_int_eq(info.refit, 1);
        s_exec(db, "UPDATE items SET embedding = NULL WHERE ext_id = 'late'");
    }
    /* Vectors imported after the fit: another space. */
    ck_assert_int_eq(store_begin(db, &err), STORE_OK);
    ck_assert_int_eq(store_meta_set(db, "embedder", "{\"method\":\"imported\",\"source\":\"x.npy\"}",
                                    &err), STORE_OK);
    ck_assert_int_eq(store_commit(db, &err), STORE_OK);
    s_fold_refused(db, &o, STORE_ERR_INVAL, "'imported' after the stored basis was fitted");
    /* ... and fine again once fitted. */
    store_embed_opts r = o;
    r.refit = 1;
    ck_assert_int_eq(store_embed_run(db, &r, &info, &err), STORE_OK);
    ck_assert_int_eq(s_q(db, "SELECT count(*) FROM items WHERE embedding IS NULL"), 0);
    store_close(&db);
}
END_TEST

START_TEST(test_run_refit_models)
{
    store *db = s_fitted_db("refit.db", 8, 40);
    store_err err = {0};
    store_embed_opts o = store_embed_defaults();
    store_embed_info info;
    int64_t v = tu_save_random_model(tu_path("refit.db"), 2, 1, 0, 5);
    /* A fold-in leaves the trained model serving. */
    s_put_item(db, "late", "violin piano symphony");
    ck_assert_int_eq(store_embed_run(db, &o, &info, &err), STORE_OK);
    ck_assert_int_eq(info.folded, 1);
    ck_assert_int_eq(s_q(db, "SELECT version FROM models WHERE active = 1"), v);
    /* A refit deactivates it: the identity model serves. */
    o.refit = 1;
    o.seed = 2;
    ck_assert_msg(store_embed_run(db, &o, &info, &err) == STORE_OK, "%s", err.msg);
    ck_assert_int_eq(info.refit, 1);
    ck_assert_uint_eq(info.moved, 41);
    ck_assert_int_eq(info.model_off, v);
    ck_assert_int_eq(info.model_kept, 0);
    ck_assert_int_eq(info.old_models, 1);
    ck_assert_int_eq(s_q(db, "SELECT version FROM models WHERE active = 1"), 0);
    /* With keep_models it stays. */
    ck_assert_int_eq(store_model_activate(db, v, &err), STORE_OK);
    o.keep_models = 1;
    ck_assert_int_eq(store_embed_run(db, &o, &info, &err), STORE_OK);
    ck_assert_int_eq(info.model_kept, v);
    ck_assert_int_eq(info.model_off, 0);
    ck_assert_int_eq(s_q(db, "SELECT version FROM models WHERE active = 1"), v);
    store_close(&db);
}
END_TEST

START_TEST(test_run_hold_out)
{
    /* A generated catalog with events; the newest tenth by first event is
     * held out of the fit, then folded in. */
    const char *path = tu_path("hold.db");
    tu_make_db(path, 200, 30, 8);
    store *db;
    store_err err = {0};
    ck_assert_int_eq(store_open(&db, path, STORE_READWRITE, 2000, &err), STORE_OK);
    int64_t with_events = s_q(db, "SELECT count(DISTINCT item_id) FROM interactions");
    size_t want = (size_t)ceil(0.1 * (double)with_events - 1e-9);
    store_embed_opts o = store_embed_defaults();
    o.hold_out = 0.1;
    store_embed_info info;
    ck_assert_msg(store_embed_run(db, &o, &info, &err) == STORE_OK, "%s", err.msg);
    ck_assert_uint_eq(info.held_out, want);
    ck_assert_uint_eq(info.items, 200 - want);
    ck_assert_int_eq(info.refit, 1);      /* the generator's vectors were replaced */
    ck_assert_int_eq(s_q(db, "SELECT count(*) FROM items WHERE embedding IS NULL"), (int64_t)want);
    /* Every held-out item's first event is at least as new as every other
     * item's with events (ts, then item_id). */
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(store_sqlite(db),
                                        "SELECT i.item_id, i.embedding IS NULL, min(e.ts) FROM items i "
                                        "JOIN interactions e USING(item_id) GROUP BY i.item_id",
                                        -1, &st, NULL), SQLITE_OK);
    int64_t old_max_ts = INT64_MIN, old_max_id = 0, new_min_ts = INT64_MAX, new_min_id = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0), ts = sqlite3_column_int64(st, 2);
        if (sqlite3_column_int(st, 1)) {
            if (ts < new_min_ts || (ts == new_min_ts && id < new_min_id))
                new_min_ts = ts, new_min_id = id;
        } else if (ts > old_max_ts || (ts == old_max_ts && id > old_max_id)) {
            old_max_ts = ts, old_max_id = id;
        }
    }
    sqlite3_finalize(st);
    ck_assert_msg(new_min_ts > old_max_ts || (new_min_ts == old_max_ts && new_min_id > old_max_id),
                  "a held-out item (first event %lld) is older than a fitted one (%lld)",
                  (long long)new_min_ts, (long long)old_max_ts);
    char meta[2048];
    ck_assert_int_eq(store_meta_get(db, "embedder", meta, sizeof meta, &err), STORE_OK);
    char want_fit[64];
    snprintf(want_fit, sizeof want_fit, "\"fit_items\":%zu", 200 - want);
    ck_assert_msg(strstr(meta, want_fit) && strstr(meta, "\"held_out\""), "%s", meta);
    /* The plain embed that follows folds exactly them in. */
    o.hold_out = 0;
    ck_assert_int_eq(store_embed_run(db, &o, &info, &err), STORE_OK);
    ck_assert_int_eq(info.folded, 1);
    ck_assert_uint_eq(info.items, want);
    ck_assert_int_eq(s_q(db, "SELECT count(*) FROM items WHERE embedding IS NULL"), 0);
    /* store_items_newest's bounds. */
    int64_t *ids;
    size_t n;
    ck_assert_int_eq(store_items_newest(db, 0, &ids, &n, &err), STORE_ERR_INVAL);
    ck_assert_int_eq(store_items_newest(db, 1, &ids, &n, &err), STORE_OK);
    ck_assert_int_eq((int64_t)n, with_events);
    for (size_t i = 1; i < n; i++)
        ck_assert_int_lt(ids[i - 1], ids[i]);
    free(ids);
    store_close(&db);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("embed");
    TCase *tc = tcase_create("texts");
    tcase_set_timeout(tc, 20.0 * tu_slowdown());
    tcase_add_test(tc, test_deterministic_unit);
    tcase_add_test(tc, test_similar_closer);
    tcase_add_test(tc, test_empty_text);
    tcase_add_test(tc, test_svd_spectrum);
    tcase_add_test(tc, test_fewer_items_than_dim);
    tcase_add_test(tc, test_fold_reproduces_fit);
    tcase_add_test(tc, test_svd_reference);
    suite_add_tcase(s, tc);
    tc = tcase_create("database");
    tcase_set_timeout(tc, 20.0 * tu_slowdown());
    tcase_add_test(tc, test_run_db);
    tcase_add_test(tc, test_run_dim);
    tcase_add_test(tc, test_run_fold);
    tcase_add_test(tc, test_run_fold_refused);
    tcase_add_test(tc, test_run_refit_models);
    tcase_add_test(tc, test_run_hold_out);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
