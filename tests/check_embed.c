/* check_embed.c -- the built-in text embedder: determinism, unit norms,
 * similar texts closer than dissimilar ones, the empty-text rule, the
 * truncated SVD against a known spectrum, and a whole database embedded in
 * one transaction (including --force-dim).
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
    ck_assert_msg(store_embed_texts((const char *const *)texts, (const char *const *)keys, n,
                                    &o, out, info, &err) == STORE_OK, "%s", err.msg);
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
    ck_assert_int_eq(store_embed_texts((const char *const *)titles, NULL, n, &o, v, &info, &err),
                     STORE_OK);
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
    store_embed_csr x = {.rows = n, .cols = v};
    x.rowptr = malloc((n + 1) * sizeof *x.rowptr);
    x.col = malloc(n * v * sizeof *x.col);
    x.val = malloc(n * v * sizeof *x.val);
    for (int i = 0; i <= n; i++)
        x.rowptr[i] = (size_t)i * v;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < v; j++) {
            x.col[i * v + j] = (uint32_t)j;
            x.val[i * v + j] = dense[i][j];
        }
    store_embed_opts o = store_embed_defaults();
    float out[n * 8];
    int rank;
    store_err err = {0};
    ck_assert_int_eq(store_embed_svd(&x, 8, &o, out, &rank, &err), STORE_OK);
    ck_assert_int_eq(rank, r);
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
    ck_assert_int_eq(store_embed_svd(&x, 8, &o, other, &rank, &err), STORE_OK);
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
    const char *path = s_db_with_texts("dim.db", 8, 40);
    store *db;
    store_err err = {0};
    ck_assert_int_eq(store_open(&db, path, STORE_READWRITE, 2000, &err), STORE_OK);
    store_embed_opts o = store_embed_defaults();
    store_embed_info info;
    ck_assert_int_eq(store_embed_run(db, &o, &info, &err), STORE_OK);
    int64_t emb8 = s_q(db, "SELECT count(*) FROM items WHERE length(embedding) = 32");

    /* Another dimension without --force-dim: refused, nothing written. */
    o.dim = 6;
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
    suite_add_tcase(s, tc);
    tc = tcase_create("database");
    tcase_set_timeout(tc, 20.0 * tu_slowdown());
    tcase_add_test(tc, test_run_db);
    tcase_add_test(tc, test_run_dim);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
