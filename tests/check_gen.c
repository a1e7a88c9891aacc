/* check_gen.c -- the demo generator: determinism, counts, geometry, realism.
 *
 * Small worlds (500 items, 100 users) keep every test to a fraction of a
 * second; the properties checked are the ones the demo relies on: the same
 * seed gives the same bytes, embeddings are unit vectors that cluster by
 * topic, popularity has a long tail, histories are time-ordered and
 * topic-coherent, titles are readable -- and the command line refuses bad
 * input with the right exit status.
 */
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "store/gen/gen.h"
#include "store/gen/vocab.h"
#include "store/gen/world.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tests/testutil.h"
#include "tools/cmd.h"

#define N_ITEMS 500
#define N_USERS 100
#define DIM 32

/* ---- helpers ----------------------------------------------------------------- */

static store_gen_opts s_opts(uint64_t seed)
{
    store_gen_opts o;
    store_gen_defaults(&o);
    o.n_items = N_ITEMS;
    o.n_users = N_USERS;
    o.dim = DIM;
    o.seed = seed;
    return o;
}

/* Generate into a fresh file named name; returns its path (tu_path slot). */
static const char *s_gen(const char *name, const store_gen_opts *o, store_gen_stats *st)
{
    const char *path = tu_path(name);
    store_err err = {0};
    store_gen_stats tmp;
    int rc = store_gen_create(path, o, st ? st : &tmp, &err);
    ck_assert_msg(rc == STORE_OK, "gen %s: %s", name, err.msg);
    return path;
}

/* Most tests only read: they share one database, made once in the parent
 * process (an unchecked fixture) before Check forks the tests. */
static char s_shared[512];
static store_gen_stats s_shared_st;

static void s_shared_setup(void)
{
    store_gen_opts o = s_opts(1);
    snprintf(s_shared, sizeof s_shared, "%s", tu_path("shared.db"));
    store_err err = {0};
    int rc = store_gen_create(s_shared, &o, &s_shared_st, &err);
    ck_assert_msg(rc == STORE_OK, "gen %s: %s", s_shared, err.msg);
}

static store *s_open(const char *path)
{
    store *db = NULL;
    store_err err = {0};
    int rc = store_open(&db, path, STORE_READONLY, 1000, &err);
    ck_assert_msg(rc == STORE_OK, "open %s: %s", path, err.msg);
    return db;
}

static sqlite3_stmt *s_prep(store *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *h = store_sqlite(db);
    ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(h));
    return st;
}

static int64_t s_int(store *db, const char *sql)
{
    sqlite3_stmt *st = s_prep(db, sql);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* FNV-1a over every column of every row of a query: the content, byte for byte. */
static uint64_t s_digest(store *db, const char *sql)
{
    uint64_t h = 0xCBF29CE484222325ull;
    sqlite3_stmt *st = s_prep(db, sql);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *p = sqlite3_column_blob(st, c);
            int n = sqlite3_column_bytes(st, c);
            for (int i = 0; i < n; i++)
                h = (h ^ p[i]) * 0x100000001B3ull;
            h = (h ^ 0xFF) * 0x100000001B3ull;     /* column separator */
        }
    }
    ck_assert_int_eq(rc, SQLITE_DONE);
    sqlite3_finalize(st);
    return h;
}

static const char s_items_sql[] =
    "SELECT ext_id, title, text, embedding, updated_at FROM items ORDER BY ext_id";
static const char s_events_sql[] =
    "SELECT u.ext_id, i.ext_id, e.ts, e.kind, e.weight FROM interactions e "
    "JOIN users u USING(user_id) JOIN items i USING(item_id) ORDER BY u.ext_id, e.ts, i.ext_id";

/* The primary topic named in an item's text ("... Topics: jazz (bebop)..."). */
static int s_topic_of(const char *text)
{
    const char *p = strstr(text, "Topics: ");
    if (!p)
        ck_abort_msg("no topics in '%s'", text);
    p += 8;
    for (int t = 0; t < store_gen_n_topics; t++) {
        size_t n = strlen(store_gen_topics[t].name);
        if (!strncmp(p, store_gen_topics[t].name, n) && p[n] == ' ')
            return t;
    }
    ck_abort_msg("unknown topic in '%s'", text);
    return -1;
}

/* Every item's primary topic and embedding, indexed by item_id - 1
 * (the generator writes item_ids 1..n in order). */
typedef struct s_cat {
    int n;
    int *topic;
    float *emb;
} s_cat;

static s_cat s_load(store *db)
{
    s_cat c;
    c.n = (int)s_int(db, "SELECT count(*) FROM items");
    c.topic = malloc((size_t)c.n * sizeof *c.topic);
    c.emb = malloc((size_t)c.n * DIM * sizeof *c.emb);
    ck_assert(c.topic && c.emb);
    sqlite3_stmt *st = s_prep(db, "SELECT item_id, text, embedding FROM items ORDER BY item_id");
    int k = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 0) != k + 1 || sqlite3_column_bytes(st, 2) != DIM * 4)
            ck_abort_msg("items row %d: item_id %lld, %d embedding bytes", k,
                         (long long)sqlite3_column_int64(st, 0), sqlite3_column_bytes(st, 2));
        c.topic[k] = s_topic_of((const char *)sqlite3_column_text(st, 1));
        memcpy(c.emb + (size_t)k * DIM, sqlite3_column_blob(st, 2), DIM * 4);
        k++;
    }
    sqlite3_finalize(st);
    ck_assert_int_eq(k, c.n);
    return c;
}

static void s_cat_free(s_cat *c)
{
    free(c->topic);
    free(c->emb);
}

static double s_dot(const float *a, const float *b)
{
    double s = 0;
    for (int d = 0; d < DIM; d++)
        s += (double)a[d] * b[d];
    return s;
}

/* ---- options ------------------------------------------------------------------ */

START_TEST(test_check_bounds)
{
    store_gen_opts o;
    store_err err = {0};
    store_gen_defaults(&o);
    ck_assert_int_eq(o.n_items, 20000);
    ck_assert_int_eq(o.n_users, 5000);
    ck_assert_int_eq(o.dim, 64);
    ck_assert_int_eq(store_gen_check(&o, &err), STORE_OK);

    store_gen_opts bad = o;
    bad.n_items = 0;
    ck_assert_int_eq(store_gen_check(&bad, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "items") != NULL, "%s", err.msg);
    bad = o;
    bad.n_users = STORE_GEN_MAX_USERS + 1;
    ck_assert_int_eq(store_gen_check(&bad, &err), STORE_ERR_INVAL);
    bad = o;
    bad.dim = 1;
    ck_assert_int_eq(store_gen_check(&bad, &err), STORE_ERR_INVAL);
    ck_assert_msg(strstr(err.msg, "dim") != NULL, "%s", err.msg);
    bad = o;
    bad.events_per_user = 4.9;
    ck_assert_int_eq(store_gen_check(&bad, &err), STORE_ERR_INVAL);
    bad.events_per_user = NAN;
    ck_assert_int_eq(store_gen_check(&bad, &err), STORE_ERR_INVAL);
    bad = o;
    bad.n_items = STORE_GEN_MAX_ITEMS;
    bad.dim = STORE_GEN_MAX_DIM;          /* each fine alone, too big together */
    ck_assert_int_eq(store_gen_check(&bad, &err), STORE_ERR_INVAL);

    /* The library refuses them too, without creating anything. */
    bad = o;
    bad.n_items = 0;
    const char *path = tu_path("never.db");
    ck_assert_int_eq(store_gen_create(path, &bad, NULL, &err), STORE_ERR_INVAL);
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* ---- content ------------------------------------------------------------------ */

START_TEST(test_counts_and_ids)
{
    store_gen_stats st = s_shared_st;
    store *db = s_open(s_shared);
    ck_assert_int_eq(st.items, N_ITEMS);
    ck_assert_int_eq(st.users, N_USERS);
    ck_assert_int_ge(st.topics, 20);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), N_ITEMS);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users"), N_USERS);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions"), (int64_t)st.events);
    /* Mean 40 per user, give or take the heavy tail. */
    ck_assert_int_ge(st.events, 25 * N_USERS);
    ck_assert_int_le(st.events, 60 * N_USERS);
    /* Heavy-tailed lengths: the floor of 5, many short histories, some long. */
    const char *per_user = "(SELECT count(*) n FROM interactions GROUP BY user_id)";
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT min(n) FROM %s", per_user);
    ck_assert_int_ge(s_int(db, sql), 5);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE n < 15", per_user);
    ck_assert_int_ge(s_int(db, sql), N_USERS / 10);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE n > 85", per_user);
    ck_assert_int_ge(s_int(db, sql), 1);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items WHERE ext_id = 'i00001'"), 1);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items WHERE ext_id = 'i00500'"), 1);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users WHERE ext_id = 'u0001'"), 1);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users WHERE ext_id = 'u0100'"), 1);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions WHERE kind NOT IN "
                               "('view', 'like', 'purchase')"), 0);
    /* Views dominate; likes and purchases exist and weigh more. */
    ck_assert_int_gt(s_int(db, "SELECT count(*) FROM interactions WHERE kind = 'view'"),
                     (int64_t)st.events * 7 / 10);
    ck_assert_int_gt(s_int(db, "SELECT count(*) FROM interactions WHERE kind = 'like' "
                               "AND weight > 1"), 0);
    ck_assert_int_gt(s_int(db, "SELECT count(*) FROM interactions WHERE kind = 'purchase' "
                               "AND weight > 1"), 0);

    char buf[256];
    store_err err = {0};
    ck_assert_int_eq(store_meta_get(db, "generator", buf, sizeof buf, &err), STORE_OK);
    ck_assert_msg(strstr(buf, "seed=1") != NULL, "%s", buf);
    ck_assert_int_eq(store_meta_get(db, "catalog_version", buf, sizeof buf, &err), STORE_OK);
    ck_assert_int_gt(atoi(buf), 0);          /* store_catalog_touch ran */

    /* The store's own loader accepts every row. */
    store_catalog *cat = NULL;
    ck_assert_msg(store_catalog_load(db, &cat, &err) == STORE_OK, "%s", err.msg);
    ck_assert_uint_eq(cat->n, N_ITEMS);
    ck_assert_int_eq(cat->dim, DIM);
    ck_assert_uint_eq(cat->n_unembedded, 0);
    store_catalog_free(&cat);
    store_close(&db);
}
END_TEST

START_TEST(test_determinism)
{
    store_gen_opts o = s_opts(42);
    store *a = s_open(s_gen("det_a.db", &o, NULL));
    store *b = s_open(s_gen("det_b.db", &o, NULL));
    o.seed = 43;
    store *c = s_open(s_gen("det_c.db", &o, NULL));

    uint64_t ia = s_digest(a, s_items_sql), ib = s_digest(b, s_items_sql);
    uint64_t ic = s_digest(c, s_items_sql);
    uint64_t ea = s_digest(a, s_events_sql), eb = s_digest(b, s_events_sql);
    uint64_t ec = s_digest(c, s_events_sql);
    const char *users = "SELECT user_id, ext_id FROM users ORDER BY user_id";
    ck_assert_msg(ia == ib, "same seed, different items");
    ck_assert_msg(ea == eb, "same seed, different events");
    ck_assert(s_digest(a, users) == s_digest(b, users));
    ck_assert_msg(ia != ic, "different seeds, same items");
    ck_assert_msg(ea != ec, "different seeds, same events");

    /* Not a reshuffle of the same titles: nearly every title changes. */
    sqlite3_stmt *sa = s_prep(a, "SELECT title FROM items ORDER BY item_id");
    sqlite3_stmt *sc = s_prep(c, "SELECT title FROM items ORDER BY item_id");
    int same = 0;
    while (sqlite3_step(sa) == SQLITE_ROW && sqlite3_step(sc) == SQLITE_ROW)
        same += !strcmp((const char *)sqlite3_column_text(sa, 0),
                        (const char *)sqlite3_column_text(sc, 0));
    sqlite3_finalize(sa);
    sqlite3_finalize(sc);
    ck_assert_int_lt(same, N_ITEMS / 20);
    store_close(&a);
    store_close(&b);
    store_close(&c);
}
END_TEST

START_TEST(test_embeddings_unit)
{
    store *db = s_open(s_shared);
    s_cat c = s_load(db);
    for (int i = 0; i < c.n; i++) {
        const float *e = c.emb + (size_t)i * DIM;
        double ss = 0;
        for (int d = 0; d < DIM; d++) {
            if (!isfinite(e[d]))
                ck_abort_msg("item %d component %d is %g", i + 1, d, e[d]);
            ss += (double)e[d] * e[d];
        }
        if (!(fabs(sqrt(ss) - 1.0) < 1e-5))
            ck_abort_msg("item %d has norm %.9g", i + 1, sqrt(ss));
    }
    s_cat_free(&c);
    store_close(&db);
}
END_TEST

START_TEST(test_topic_geometry)
{
    store *db = s_open(s_shared);
    s_cat c = s_load(db);
    double same = 0, cross = 0;
    long n_same = 0, n_cross = 0;
    for (int i = 0; i < c.n; i++)
        for (int j = i + 1; j < c.n; j++) {
            double d = s_dot(c.emb + (size_t)i * DIM, c.emb + (size_t)j * DIM);
            if (c.topic[i] == c.topic[j]) {
                same += d;
                n_same++;
            } else {
                cross += d;
                n_cross++;
            }
        }
    ck_assert(n_same > 0 && n_cross > 0);
    same /= (double)n_same;
    cross /= (double)n_cross;
    ck_assert_msg(same > cross + 0.25, "same-topic cosine %.3f vs cross-topic %.3f", same,
                  cross);
    ck_assert_msg(fabs(cross) < 0.15, "cross-topic cosine %.3f", cross);

    /* Nearest neighbour shares the topic for most items. */
    int agree = 0;
    for (int i = 0; i < c.n; i++) {
        int best = -1;
        double bd = -2;
        for (int j = 0; j < c.n; j++) {
            if (j == i)
                continue;
            double d = s_dot(c.emb + (size_t)i * DIM, c.emb + (size_t)j * DIM);
            if (d > bd) {
                bd = d;
                best = j;
            }
        }
        agree += c.topic[best] == c.topic[i];
    }
    ck_assert_msg(agree > c.n * 8 / 10, "nearest neighbour shares the topic for %d of %d",
                  agree, c.n);
    s_cat_free(&c);
    store_close(&db);
}
END_TEST

static int s_cmp_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Share of all events held by the top 10% of items. */
static double s_top_decile(uint32_t *count, uint32_t n)
{
    uint64_t total = 0, top = 0;
    qsort(count, n, sizeof *count, s_cmp_desc);
    for (uint32_t i = 0; i < n; i++) {
        total += count[i];
        if (i < n / 10)
            top += count[i];
    }
    return total ? (double)top / (double)total : 0.0;
}

START_TEST(test_popularity_long_tail)
{
    /* In the database: a 500-item catalog is only ~20 items per topic, so
     * the tail is short, but the head is still far above uniform (~0.16
     * with Poisson noise at 8 events per item). */
    store *db = s_open(s_shared);
    sqlite3_stmt *st = s_prep(db, "SELECT count(e.item_id) FROM items i LEFT JOIN "
                                  "interactions e USING(item_id) GROUP BY i.item_id");
    uint32_t count[N_ITEMS], n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < N_ITEMS)
        count[n++] = (uint32_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    ck_assert_uint_eq(n, N_ITEMS);
    double share = s_top_decile(count, n);
    ck_assert_msg(share > 0.25, "top 10%% of items hold %.3f of events", share);
    store_close(&db);

    /* A bigger world, in memory (no database, so fast under sanitizers):
     * Zipf within topics and across them gives a long tail. */
    store_gen_opts o = s_opts(9);
    o.n_items = 5000;
    o.n_users = 1000;
    o.dim = 4;
    store_gen_world w;
    ck_assert_int_eq(store_gen_world_build(&w, &o), STORE_OK);
    store_gen_history h;
    memset(&h, 0, sizeof h);
    uint32_t *big = calloc(o.n_items, sizeof *big);
    ck_assert_ptr_nonnull(big);
    for (uint32_t u = 0; u < o.n_users; u++) {
        ck_assert_int_eq(store_gen_user_history(&w, u, &h), STORE_OK);
        for (uint32_t e = 0; e < h.n; e++)
            big[h.ev[e].item]++;
    }
    uint32_t never = 0;
    for (uint32_t i = 0; i < o.n_items; i++)
        never += big[i] == 0;
    share = s_top_decile(big, o.n_items);
    ck_assert_msg(share > 0.38, "top 10%% of items hold %.3f of events", share);
    ck_assert_msg(never > o.n_items / 50, "only %u items never seen", never);
    free(big);
    store_gen_history_free(&h);
    store_gen_world_free(&w);
}
END_TEST

START_TEST(test_histories_time_ordered)
{
    /* The generator's own sequence: strictly increasing timestamps inside
     * 2024, at least 5 events, valid kinds and items. */
    store_gen_opts o = s_opts(11);
    store_gen_world w;
    ck_assert_int_eq(store_gen_world_build(&w, &o), STORE_OK);
    store_gen_history h;
    memset(&h, 0, sizeof h);
    for (uint32_t u = 0; u < N_USERS; u++) {
        ck_assert_int_eq(store_gen_user_history(&w, u, &h), STORE_OK);
        ck_assert_uint_ge(h.n, 5);
        for (uint32_t e = 0; e < h.n; e++) {
            const store_gen_event *ev = &h.ev[e];
            if (ev->item >= N_ITEMS || ev->kind > STORE_GEN_PURCHASE ||
                ev->ts < STORE_GEN_EPOCH ||
                ev->ts >= STORE_GEN_EPOCH + STORE_GEN_YEAR + 30 * 86400 ||
                (e && ev->ts <= ev[-1].ts))
                ck_abort_msg("user %u event %u: item %u kind %d ts %lld (previous %lld)", u, e,
                             ev->item, ev->kind, (long long)ev->ts,
                             e ? (long long)ev[-1].ts : 0LL);
        }
    }
    /* Asking again (after other users) gives the same history. */
    ck_assert_int_eq(store_gen_user_history(&w, 7, &h), STORE_OK);
    uint32_t n7 = h.n;
    int64_t last7 = h.ev[n7 - 1].ts;
    ck_assert_int_eq(store_gen_user_history(&w, 3, &h), STORE_OK);
    ck_assert_int_eq(store_gen_user_history(&w, 7, &h), STORE_OK);
    ck_assert_uint_eq(h.n, n7);
    ck_assert_int_eq(h.ev[n7 - 1].ts, last7);
    store_gen_history_free(&h);
    store_gen_world_free(&w);

    /* In the database, through the store's reader (newest first). */
    store *db = s_open(s_shared);
    store_err err = {0};
    store_event ev[1000];
    for (int u = 1; u <= N_USERS; u++) {
        char ext[16];
        int64_t uid;
        int n;
        snprintf(ext, sizeof ext, "u%04d", u);
        ck_assert_int_eq(store_user_id(db, ext, strlen(ext), &uid, &err), STORE_OK);
        ck_assert_int_eq(store_history(db, uid, 1000, ev, &n, &err), STORE_OK);
        ck_assert_int_ge(n, 5);
        for (int e = 1; e < n; e++)
            if (ev[e].ts > ev[e - 1].ts)
                ck_abort_msg("%s: history not newest first at %d", ext, e);
    }
    store_close(&db);
}
END_TEST

/* The realism the demo depends on: consecutive events tend to share a
 * topic, and an identity-model explanation (the history item most similar
 * to the next item) is usually from the next item's topic. */
START_TEST(test_recent_topics_predict_next)
{
    store *db = s_open(s_shared);
    s_cat c = s_load(db);
    sqlite3_stmt *st = s_prep(db, "SELECT user_id, item_id FROM interactions "
                                  "ORDER BY user_id, ts, item_id");
    int64_t prev_user = -1;
    int hist[1000], n = 0;
    long pairs = 0, same_pairs = 0, explained = 0, explained_same = 0;
    int rc;
    for (;;) {
        rc = sqlite3_step(st);
        int64_t user = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -2;
        if (user != prev_user && n >= 2) {
            /* Last event = target; explanation = argmax similarity over
             * the 50 events before it (what attention with W = I favours). */
            int target = hist[n - 1], best = -1;
            double bd = -2;
            for (int j = (n - 1 > 50 ? n - 51 : 0); j < n - 1; j++) {
                if (hist[j] == target)
                    continue;          /* a re-view explains itself trivially */
                double d = s_dot(c.emb + (size_t)target * DIM, c.emb + (size_t)hist[j] * DIM);
                if (d > bd) {
                    bd = d;
                    best = hist[j];
                }
            }
            int topic_in_hist = 0;
            for (int j = 0; j < n - 1; j++)
                topic_in_hist |= c.topic[hist[j]] == c.topic[target];
            if (best >= 0 && topic_in_hist) {
                explained++;
                explained_same += c.topic[best] == c.topic[target];
            }
        }
        if (rc != SQLITE_ROW)
            break;
        if (user != prev_user) {
            prev_user = user;
            n = 0;
        }
        int item = (int)sqlite3_column_int64(st, 1) - 1;
        if (n > 0) {
            pairs++;
            same_pairs += c.topic[hist[n - 1]] == c.topic[item];
        }
        if (n < 1000)
            hist[n++] = item;
    }
    ck_assert_int_eq(rc, SQLITE_DONE);
    sqlite3_finalize(st);
    /* 24 topics: chance would be well under 0.2. */
    ck_assert_msg(same_pairs * 100 > pairs * 55, "consecutive same-topic %ld of %ld",
                  same_pairs, pairs);
    ck_assert_int_gt(explained, N_USERS / 2);
    ck_assert_msg(explained_same * 100 > explained * 85, "same-topic explanation %ld of %ld",
                  explained_same, explained);
    s_cat_free(&c);
    store_close(&db);
}
END_TEST

/* What is wrong with a title, or NULL.  (Called for thousands of titles:
 * Check's assertions each cost a message to the parent, so the loops test
 * plainly and only fail through Check.) */
static const char *s_title_problem(const char *t)
{
    size_t n = strlen(t);
    if (n < 3)
        return "too short";
    if (n >= STORE_GEN_TITLE_MAX - 1)
        return "may be truncated";
    for (size_t i = 0; i < n; i++)
        if (t[i] < 0x20 || t[i] >= 0x7F)
            return "not printable ASCII";
    if (strchr(t, '{') || strchr(t, '}'))
        return "unfilled template slot";
    if (strstr(t, "  ") || t[0] == ' ' || t[n - 1] == ' ')
        return "stray space";
    for (size_t i = 0; i + 2 < n; i++)      /* "A Apple": the article rule in gen_title.c */
        if (t[i] == 'A' && t[i + 1] == ' ' && (i == 0 || t[i - 1] == ' ') &&
            strchr("AEIOU", t[i + 2]))
            return "'A' before a vowel";
    return NULL;
}

START_TEST(test_titles_readable)
{
    store *db = s_open(s_shared);
    sqlite3_stmt *st = s_prep(db, "SELECT title, text FROM items");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *title = (const char *)sqlite3_column_text(st, 0);
        const char *text = (const char *)sqlite3_column_text(st, 1);
        const char *why = s_title_problem(title);
        if (why)
            ck_abort_msg("title '%s': %s", title, why);
        /* text = title + the topic names, for a text embedder */
        if (strncmp(text, title, strlen(title)) || !strstr(text, "Topics: "))
            ck_abort_msg("text '%s' for title '%s'", text, title);
    }
    sqlite3_finalize(st);
    ck_assert_int_eq(s_int(db, "SELECT count(DISTINCT title) FROM items"), N_ITEMS);
    store_close(&db);
}
END_TEST

/* Every template of every topic, with every theme, as a plain and a blend
 * title: the vocabulary tables are data, and this is their type check. */
START_TEST(test_vocabulary_complete)
{
    ck_assert_int_ge(store_gen_n_topics, 20);
    ck_assert_int_le(store_gen_n_topics, STORE_GEN_MAX_TOPICS);
    store_gen_rng r;
    store_gen_rng_seed(&r, 99, STORE_GEN_STREAM_WORLD, 0);
    for (int t = 0; t < store_gen_n_topics; t++) {
        const store_gen_topic *tp = &store_gen_topics[t];
        int nw = 0;
        for (int j = 0; tp->adj[j]; j++)
            nw++;
        ck_assert_msg(nw == 12, "%s: %d adjectives", tp->name, nw);
        for (int j = 0; j < STORE_GEN_THEMES; j++) {
            ck_assert_ptr_nonnull(tp->theme[j].name);
            for (int k = 0; k < STORE_GEN_NOUNS; k++)
                if (!tp->theme[j].noun[k] || !*tp->theme[j].noun[k])
                    ck_abort_msg("%s/%s noun %d", tp->name, tp->theme[j].name, k);
        }
        for (int k = 0; k < STORE_GEN_THEMES; k++)
            for (int rep = 0; rep < 200; rep++) {
                char title[STORE_GEN_TITLE_MAX];
                const char *words[STORE_GEN_WORDS_MAX];
                int n;
                const store_gen_topic *tp2 = rep % 2 ? &store_gen_topics[(t + 1 + rep % 7) %
                                                                         store_gen_n_topics]
                                                     : NULL;
                store_gen_title(title, tp, k, tp2, rep % STORE_GEN_THEMES, &r, words, &n);
                const char *why = s_title_problem(title);
                if (why || n < 1)
                    ck_abort_msg("%s: title '%s': %s", tp->name, title, why ? why : "no words");
            }
    }
}
END_TEST

/* ---- the command line ------------------------------------------------------------ */

/* Run 'attnctl gen' in-process with its stdout and stderr captured into
 * s_out, so the suite's output stays readable and messages can be checked. */
static char s_out[8192];

typedef struct s_call {
    int argc;
    char *argv[16];
} s_call;

static int s_call_gen(void *ctx)
{
    s_call *c = ctx;
    return cmd_gen(c->argc, c->argv);
}

static int s_cmd(const char *a0, ...)
{
    s_call c;
    va_list ap;
    va_start(ap, a0);
    c.argc = tu_argv(c.argv, 16, a0, ap);
    va_end(ap);
    return tu_capture(s_call_gen, &c, s_out, sizeof s_out);
}

START_TEST(test_cli)
{
    /* Own copies: tu_path's buffers rotate, and s_cmd uses one too. */
    char path[512], p2[512];
    snprintf(path, sizeof path, "%s", tu_path("cli.db"));
    snprintf(p2, sizeof p2, "%s", tu_path("cli_bad.db"));
    ck_assert_int_eq(s_cmd("gen", path, "--items", "300", "--users=40", "--dim", "16",
                           "--seed", "5", "--events-per-user", "12.5", NULL), 0);
    /* One summary line: counts and seconds. */
    ck_assert_msg(strstr(s_out, "300 items, 40 users, ") && strstr(s_out, " events ") &&
                  strstr(s_out, " s\n") && !strchr(s_out, '\n')[1], "summary: %s", s_out);
    store *db = s_open(path);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 300);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM users"), 40);
    ck_assert_int_eq(store_dim(db), 16);
    uint64_t before = s_digest(db, s_items_sql);
    store_close(&db);

    /* Never clobbers without --force; --force replaces. */
    ck_assert_int_eq(s_cmd("gen", path, "--items", "300", NULL), 1);
    ck_assert_msg(strstr(s_out, "already exists") && strstr(s_out, "--force"), "%s", s_out);
    ck_assert_int_eq(s_cmd("gen", path, "--items", "200", "--users", "10", "--dim", "16",
                           "--force", NULL), 0);
    db = s_open(path);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM items"), 200);
    ck_assert(s_digest(db, s_items_sql) != before);
    store_close(&db);

    /* Bad flags: usage errors (2), and nothing created. */
    ck_assert_int_eq(s_cmd("gen", p2, "--items", "abc", NULL), 2);
    ck_assert_msg(strstr(s_out, "--items") && strstr(s_out, "'abc'"), "%s", s_out);
    ck_assert_int_eq(s_cmd("gen", p2, "--items", "0", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--items", "-5", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--items", "99999999999999999999999", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--users", "10k", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--dim", "1", NULL), 2);
    ck_assert_msg(strstr(s_out, "--dim: '1' is not an integer in 2..4096"), "%s", s_out);
    ck_assert_int_eq(s_cmd("gen", p2, "--dim", "", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--seed", "x1", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--events-per-user", "2", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--events-per-user", "nan", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--items", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--bogus", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "other.db", NULL), 2);
    ck_assert_int_eq(s_cmd("gen", p2, "--items", "5000000", "--dim", "4096", NULL), 2);
    ck_assert_msg(strstr(s_out, "items x dim"), "%s", s_out);
    ck_assert_int_eq(s_cmd("gen", "--help", NULL), 0);
    ck_assert_msg(strstr(s_out, "--events-per-user"), "%s", s_out);
    ck_assert_int_ne(access(p2, F_OK), 0);
    /* A directory is refused even with --force. */
    ck_assert_int_eq(s_cmd("gen", tu_tmpdir(), "--force", NULL), 1);
}
END_TEST

/* Worlds at the edges: a catalog smaller than the topic list, the smallest
 * dimension, the shortest histories. */
START_TEST(test_tiny_worlds)
{
    store_gen_opts o = s_opts(21);
    o.n_items = 3;
    o.n_users = 4;
    o.dim = 2;
    o.events_per_user = 5;
    store_gen_stats st;
    store *db = s_open(s_gen("tiny.db", &o, &st));
    ck_assert_int_eq(st.items, 3);
    ck_assert_int_eq(st.events, 4 * 5);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions"), 20);
    store_close(&db);

    o.n_items = 1;
    o.n_users = 1;
    o.events_per_user = 30;
    db = s_open(s_gen("one.db", &o, &st));
    ck_assert_int_eq(s_int(db, "SELECT count(DISTINCT item_id) FROM interactions"), 1);
    ck_assert_int_eq(s_int(db, "SELECT count(*) FROM interactions"), (int64_t)st.events);
    store_close(&db);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("gen");
    TCase *tc = tcase_create("gen");
    tcase_set_timeout(tc, 30 * tu_slowdown());
    tcase_add_unchecked_fixture(tc, s_shared_setup, NULL);
    tcase_add_test(tc, test_check_bounds);
    tcase_add_test(tc, test_counts_and_ids);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_embeddings_unit);
    tcase_add_test(tc, test_topic_geometry);
    tcase_add_test(tc, test_popularity_long_tail);
    tcase_add_test(tc, test_histories_time_ordered);
    tcase_add_test(tc, test_recent_topics_predict_next);
    tcase_add_test(tc, test_titles_readable);
    tcase_add_test(tc, test_vocabulary_complete);
    tcase_add_test(tc, test_cli);
    tcase_add_test(tc, test_tiny_worlds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
