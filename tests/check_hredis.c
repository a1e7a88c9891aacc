/* check_hredis.c -- the Redis history backend (store/hist/redis.c) against
 * real redis-servers started here: the element codec, the ring that places
 * users, the same append and read contract as the sqlite backend (outcomes,
 * newest-first order with the same ties, dedupe that outlives the handle,
 * trimming), and failure: a lost node fails only its own users, with
 * `unavailable` naming it, and they recover when it returns; a node that
 * hangs costs a request its timeout, never a hang.
 */
#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/hist/hist.h"
#include "store/hist/push.h"
#include "store/hist/redis_int.h"
#include "tests/testutil.h"
#include "tests/tu_daemon.h"
#include "tests/tu_redis.h"

static store_hist *s_open(const char *urls, int writable, int trim)
{
    store_hist_redis_opts o = {.urls = urls, .prefix = "t:", .connect_ms = 300,
                               .timeout_ms = 300, .retry_ms = 100, .trim = trim,
                               .writable = writable};
    store_hist *h = NULL;
    store_err err = {0};
    ck_assert_msg(store_hist_redis_open(&h, &o, &err) == STORE_OK, "%s", err.msg);
    ck_assert_str_eq(store_hist_name(h), "redis");
    return h;
}

/* ---- codec and ring (no server) ------------------------------------------- */

START_TEST(codec_roundtrip)
{
    tu_rng rng = {5};
    const char *kinds[] = {NULL, "view", "click", "a-rather-long-kind-of-event"};
    for (int i = 0; i < 5000; i++) {
        int64_t ts = (int64_t)(tu_next(&rng) % 4000000000u) - 1000000000;
        int64_t item = (int64_t)(tu_next(&rng) % 10000000u);
        if (i % 97 == 0)
            ts = i % 2 ? (int64_t)1 << 53 : -((int64_t)1 << 53);
        float w = i % 3 ? 1.0f : (float)(0.01 + tu_uniform(&rng) * 100);
        const char *kind = kinds[i % 4];
        uint8_t buf[RDS_ELEM_FIXED + 64];
        size_t n = rds_encode(buf, ts, item, w, kind);
        store_event ev;
        const char *k;
        size_t klen;
        ck_assert_int_eq(rds_decode(buf, n, &ev, &k, &klen), 0);
        ck_assert(ev.ts == ts && ev.item_id == item && ev.weight == w);
        const char *want = kind ? kind : "view";
        ck_assert(klen == strlen(want) && !memcmp(k, want, klen));
        /* A bad byte string never decodes as an event past its end. */
        for (size_t cut = 1; cut < n; cut++) {
            store_event e2;
            int rc = rds_decode(buf, cut, &e2, NULL, NULL);
            ck_assert(rc == -1 || (rc == 0 && cut >= 2));
        }
    }
    /* An ordinary event today: 5 bytes of ts, 3 of item. */
    uint8_t buf[RDS_ELEM_FIXED];
    ck_assert_uint_le(rds_encode(buf, 1700000000, 123456, 1.0f, "view"), 9);
}
END_TEST

START_TEST(ring_spreads_and_ignores_order)
{
    rds_ring a, b, c;
    store_err err;
    ck_assert_int_eq(rds_ring_init(&a, "redis://h1:1,redis://h2:2, redis://h3:3", &err),
                     STORE_OK);
    ck_assert_int_eq(rds_ring_init(&b, "redis://h3:3,redis://h1:1,redis://h2:2", &err),
                     STORE_OK);
    ck_assert_int_eq(rds_ring_init(&c, "redis://h1:1,redis://h2:2,redis://h3:3,redis://h4:4",
                                   &err), STORE_OK);
    enum { USERS = 30000 };
    int per[3] = {0}, moved = 0;
    for (int i = 0; i < USERS; i++) {
        char u[16];
        int len = snprintf(u, sizeof u, "u%d", i);
        int na = rds_ring_node(&a, u, (size_t)len), nb = rds_ring_node(&b, u, (size_t)len);
        int nc = rds_ring_node(&c, u, (size_t)len);
        per[na]++;
        /* the same node whatever the order of the list */
        ck_assert_str_eq(a.node[na].url + 8, b.node[nb].url + 8);
        /* a fourth node takes users only for itself */
        if (strcmp(a.node[na].url, c.node[nc].url)) {
            ck_assert_str_eq(c.node[nc].url, "redis://h4:4");
            moved++;
        }
    }
    for (int k = 0; k < 3; k++)
        ck_assert_msg(per[k] > USERS / 3 * 0.8 && per[k] < USERS / 3 * 1.2, "node %d: %d users",
                      k, per[k]);
    ck_assert_msg(moved > USERS / 4 * 0.7 && moved < USERS / 4 * 1.3, "moved %d", moved);
    rds_ring_free(&a);
    rds_ring_free(&b);
    rds_ring_free(&c);
    const char *bad[] = {"", "http://h:1", "redis://h", "redis://h:0", "redis://h:70000",
                         "redis://:5", "redis://h:5/x", "redis://h:5,redis://h:5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(rds_ring_init(&a, bad[i], &err), STORE_ERR_INVAL);
        ck_assert_msg(strstr(err.msg, "history.redis"), "%s", err.msg);
    }
}
END_TEST

/* ---- the contract --------------------------------------------------------- */

START_TEST(append_outcomes_and_order)
{
    tu_redis r;
    tu_redis_start(&r, "outcomes");
    store_hist *w = s_open(r.url, 1, 1000);
    store_hist_event ev[] = {
        {.user = "u1", .item_id = 1, .ts = 100, .weight = 1, .event_id = "e1"},
        {.user = "u1", .item_id = 1, .ts = 100, .weight = 1, .event_id = "e1"},  /* resent */
        /* another id, the same (user, ts, item, kind): one interaction */
        {.user = "u1", .item_id = 1, .ts = 100, .weight = 9, .event_id = "e2"},
        /* a known id on another event: the id wins */
        {.user = "u1", .item_id = 2, .ts = 101, .weight = 1, .event_id = "e1"},
        {.user = "new", .item_id = 2, .ts = 50, .weight = 1},
        {.user = "new", .item_id = 2, .ts = 50, .weight = 3},                     /* same key */
        {.user = "u1", .item_id = 3, .ts = 102, .kind = "click", .weight = 2.5f},
        {.user = "u1", .item_id = 3, .ts = 102, .kind = "buy", .weight = 1},      /* new kind */
        {.user = "u1", .item_id = 7, .ts = 102, .weight = 1},        /* a tie, larger item */
        {.user = "u1", .item_id = 5, .ts = 99, .weight = 4},         /* older than the rest */
        {.user = "u1", .item_id = 6, .ts = 101, .weight = 1},        /* in the middle */
    };
    enum { N = sizeof ev / sizeof ev[0] };
    static const uint8_t want[N] = {STORE_HIST_STORED, STORE_HIST_DUPLICATE,
                                    STORE_HIST_DUPLICATE, STORE_HIST_DUPLICATE,
                                    STORE_HIST_STORED, STORE_HIST_DUPLICATE, STORE_HIST_STORED,
                                    STORE_HIST_STORED, STORE_HIST_STORED, STORE_HIST_STORED,
                                    STORE_HIST_STORED};
    uint8_t out[N];
    store_err err = {0};
    ck_assert_msg(store_hist_append(w, ev, N, out, &err) == STORE_OK, "%s", err.msg);
    for (int i = 0; i < N; i++)
        ck_assert_msg(out[i] == want[i], "event %d: outcome %d, want %d", i, out[i], want[i]);
    /* newest first; equal ts by item_id, then kind, descending */
    static const struct { int64_t ts, item; float w; } order[] = {
        {102, 7, 1}, {102, 3, 2.5f}, {102, 3, 1}, {101, 6, 1}, {100, 1, 1}, {99, 5, 4}};
    store_event h[16];
    int n;
    ck_assert_int_eq(store_hist_read(w, "u1", 2, 16, h, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 6);
    for (int i = 0; i < n; i++)
        ck_assert_msg(h[i].ts == order[i].ts && h[i].item_id == order[i].item &&
                      h[i].weight == order[i].w, "position %d: ts %lld item %lld w %g", i,
                      (long long)h[i].ts, (long long)h[i].item_id, (double)h[i].weight);
    ck_assert_int_eq(store_hist_read(w, "u1", 2, 2, h, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(store_hist_read(w, "ghost", 5, 8, h, &n, &err), STORE_ERR_NOTFOUND);
    store_hist_close(&w);

    /* Dedupe lives in Redis: a new handle (another replica) agrees. */
    w = s_open(r.url, 1, 1000);
    ck_assert_int_eq(store_hist_append(w, ev, 1, out, &err), STORE_OK);
    ck_assert_int_eq(out[0], STORE_HIST_DUPLICATE);
    ck_assert_int_eq(store_hist_append(w, &ev[9], 1, out, &err), STORE_OK);
    ck_assert_int_eq(out[0], STORE_HIST_DUPLICATE);
    /* A reader refuses to append. */
    store_hist *rd = s_open(r.url, 0, 1000);
    ck_assert_int_eq(store_hist_append(rd, ev, 1, out, &err), STORE_ERR_INVAL);
    store_hist_close(&rd);
    store_hist_close(&w);
    ck_assert_int_eq(tu_redis_int(&r, "LLEN t:h:u1"), 6);
    ck_assert_int_eq(tu_redis_int(&r, "ZCARD t:e:u1"), 1);
    tu_redis_stop(&r);
}
END_TEST

/* Trimming keeps the newest `trim` events and their ids; an event older
 * than all of a full list is accepted but not kept. */
START_TEST(trim_keeps_the_newest)
{
    tu_redis r;
    tu_redis_start(&r, "trim");
    store_hist *w = s_open(r.url, 1, 5);
    store_err err = {0};
    for (int i = 0; i < 12; i++) {
        char id[16];
        snprintf(id, sizeof id, "e%d", i);
        /* arrive out of order: 0, 11, 1, 10, ... */
        int t = i % 2 ? 11 - i / 2 : i / 2;
        store_hist_event e = {.user = "u", .item_id = t, .ts = 1000 + t, .weight = 1,
                              .event_id = id};
        uint8_t out;
        ck_assert_int_eq(store_hist_append(w, &e, 1, &out, &err), STORE_OK);
        ck_assert_int_eq(out, STORE_HIST_STORED);
    }
    store_event h[16];
    int n;
    ck_assert_int_eq(store_hist_read(w, "u", 1, 16, h, &n, &err), STORE_OK);
    ck_assert_int_eq(n, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(h[i].ts, 1011 - i);
    ck_assert_int_le(tu_redis_int(&r, "ZCARD t:e:u"), 5);
    store_hist_close(&w);
    tu_redis_stop(&r);
}
END_TEST

START_TEST(reader_sees_append_at_once)
{
    tu_redis r;
    tu_redis_start(&r, "fresh");
    store_hist *w = s_open(r.url, 1, 100), *rd = s_open(r.url, 0, 100);
    store_event h[4];
    int n;
    store_err err = {0};
    ck_assert_int_eq(store_hist_read(rd, "u2", 2, 4, h, &n, &err), STORE_ERR_NOTFOUND);
    for (int i = 0; i < 3; i++) {
        store_hist_event e = {.user = "u2", .item_id = 10 + i, .ts = 1000 + i, .weight = 1};
        uint8_t out;
        ck_assert_int_eq(store_hist_append(w, &e, 1, &out, &err), STORE_OK);
        ck_assert_int_eq(store_hist_read(rd, "u2", 2, 4, h, &n, &err), STORE_OK);
        ck_assert_int_eq(n, i + 1);
        ck_assert_int_eq(h[0].item_id, 10 + i);
    }
    store_hist_close(&w);
    store_hist_close(&rd);
    tu_redis_stop(&r);
}
END_TEST

/* ---- failure -------------------------------------------------------------- */

/* Users of each node, found through the ring as attnd would place them. */
static void s_users_of(const char *urls, const char *url, char users[][16], int want)
{
    rds_ring ring;
    store_err err;
    ck_assert_int_eq(rds_ring_init(&ring, urls, &err), STORE_OK);
    int got = 0;
    for (int i = 0; got < want; i++) {
        char u[16];
        int len = snprintf(u, sizeof u, "u%d", i);
        if (!strcmp(ring.node[rds_ring_node(&ring, u, (size_t)len)].url, url))
            memcpy(users[got++], u, (size_t)len + 1);
    }
    rds_ring_free(&ring);
}

START_TEST(lost_node_fails_only_its_users)
{
    tu_redis a, b;
    tu_redis_start(&a, "node-a");
    tu_redis_start_opts(&b, "node-b", 1);   /* b keeps its data across the restart */
    char urls[200], ua[4][16], ub[4][16];
    snprintf(urls, sizeof urls, "%s,%s", a.url, b.url);
    s_users_of(urls, a.url, ua, 4);
    s_users_of(urls, b.url, ub, 4);
    store_hist *w = s_open(urls, 1, 100), *rd = s_open(urls, 0, 100);
    store_err err = {0};
    ck_assert_int_eq(store_hist_redis_ping(rd, &err), STORE_OK);
    store_hist_event ev[8];
    uint8_t out[8];
    for (int i = 0; i < 8; i++)
        ev[i] = (store_hist_event){.user = i % 2 ? ub[i / 2] : ua[i / 2], .item_id = 1,
                                   .ts = 10, .weight = 1};
    ck_assert_int_eq(store_hist_append(w, ev, 8, out, &err), STORE_OK);
    ck_assert_int_eq(tu_redis_int(&a, "DBSIZE"), 4);
    ck_assert_int_eq(tu_redis_int(&b, "DBSIZE"), 4);

    tu_redis_kill(&b);
    store_event h[4];
    int n;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(store_hist_read(rd, ua[i], strlen(ua[i]), 4, h, &n, &err), STORE_OK);
        int rc = store_hist_read(rd, ub[i], strlen(ub[i]), 4, h, &n, &err);
        ck_assert_int_eq(rc, STORE_ERR_UNAVAILABLE);
        ck_assert_msg(strstr(err.msg, "history backend redis") && strstr(err.msg, b.url),
                      "%s", err.msg);
    }
    ck_assert_int_eq(store_hist_redis_ping(rd, &err), STORE_ERR_UNAVAILABLE);
    ck_assert_msg(strstr(err.msg, b.url) && !strstr(err.msg, a.url), "%s", err.msg);
    /* A batch over both nodes stores a's events; b's are unavailable. */
    for (int i = 0; i < 8; i++)
        ev[i].ts = 20;
    ck_assert_int_eq(store_hist_append(w, ev, 8, out, &err), STORE_OK);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(out[i], i % 2 ? STORE_HIST_UNAVAILABLE : STORE_HIST_STORED);
    ck_assert_msg(strstr(err.msg, b.url), "%s", err.msg);
    /* Only b's users: the whole call fails. */
    ck_assert_int_eq(store_hist_append(w, &ev[1], 1, out, &err), STORE_ERR_UNAVAILABLE);

    tu_redis_restart(&b);
    usleep(150000);   /* past retry_ms */
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(store_hist_read(rd, ub[i], strlen(ub[i]), 4, h, &n, &err) == STORE_OK,
                      "%s", err.msg);
        ck_assert_int_eq(n, 1);   /* its data survived (AOF) */
    }
    /* The resend: a's events are duplicates now, b's are stored. */
    ck_assert_int_eq(store_hist_append(w, ev, 8, out, &err), STORE_OK);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(out[i], i % 2 ? STORE_HIST_STORED : STORE_HIST_DUPLICATE);
    store_hist_close(&w);
    store_hist_close(&rd);
    tu_redis_stop(&a);
    tu_redis_stop(&b);
}
END_TEST

/* A node that accepts connections but never answers (stopped): the read
 * fails after the command timeout, and works again once it answers. */
START_TEST(hung_node_times_out)
{
    tu_redis r;
    tu_redis_start(&r, "hung");
    store_hist *rd = s_open(r.url, 0, 100);
    store_event h[4];
    int n;
    store_err err = {0};
    ck_assert_int_eq(store_hist_read(rd, "x", 1, 4, h, &n, &err), STORE_ERR_NOTFOUND);
    kill(r.pid, SIGSTOP);
    double t0 = tu_now();
    int rc = store_hist_read(rd, "x", 1, 4, h, &n, &err);
    double took = tu_now() - t0;
    kill(r.pid, SIGCONT);
    ck_assert_int_eq(rc, STORE_ERR_UNAVAILABLE);
    ck_assert_msg(strstr(err.msg, "timed out"), "%s", err.msg);
    ck_assert_msg(took > 0.25 && took < 2.0, "took %.3f s", took);
    usleep(150000);
    ck_assert_int_eq(store_hist_read(rd, "x", 1, 4, h, &n, &err), STORE_ERR_NOTFOUND);
    store_hist_close(&rd);
    tu_redis_stop(&r);
}
END_TEST

/* ---- the bulk copy ---------------------------------------------------------- */

static int s_rounds;
static void s_count_round(void *ctx, const store_hist_push_stats *st)
{
    (void)ctx;
    (void)st;
    s_rounds++;
}

/* push copies every user (checked against the database), resumes below
 * the progress an interrupted run left, does not repeat a finished run,
 * and check sees a history that differs. */
START_TEST(push_resumes_and_checks)
{
    tu_redis r;
    tu_redis_start(&r, "push");
    char db[300], real[PATH_MAX];
    snprintf(db, sizeof db, "%s", tu_path("push.db"));
    tu_make_db(db, 300, 120, 8);
    ck_assert_ptr_nonnull(realpath(db, real));
    store_hist_push_opts o = {.db = db, .urls = r.url, .prefix = "p:", .trim = 20,
                              .connect_ms = 1000, .timeout_ms = 5000, .batch_users = 10,
                              .progress = s_count_round};
    store_hist_push_stats st;
    store_err err = {0};
    ck_assert_msg(store_hist_push(&o, &st, &err) == STORE_OK, "%s", err.msg);
    ck_assert(st.done && !st.already);
    ck_assert_int_eq(st.users, 120);
    ck_assert_int_eq(st.events, tu_sql_int(db, "SELECT sum(min(n, 20)) FROM (SELECT count(*) "
                                               "n FROM interactions GROUP BY user_id)"));
    ck_assert_int_ge(s_rounds, 12);
    store_hist_redis_opts ro = {.urls = r.url, .prefix = "p:", .connect_ms = 1000,
                                .timeout_ms = 2000, .trim = 20};
    store_hist_check_stats ck;
    ck_assert_int_eq(store_hist_check(db, &ro, 1000, 3, &ck, &err), STORE_OK);
    ck_assert_int_eq(ck.users, 120);
    ck_assert_msg(ck.differ == 0, "%s", ck.first);

    /* Finished: not repeated. */
    ck_assert_int_eq(store_hist_push(&o, &st, &err), STORE_OK);
    ck_assert(st.already && st.users == 0);

    /* Interrupted after the users above id 61: they stay, the rest go. */
    ck_assert_int_eq(tu_redis_int(&r, "HSET p:push %s 61", real), 0);
    for (int u = 1; u <= 60; u++) {
        char user[16];
        snprintf(user, sizeof user, "u%04d", u);
        ck_assert_int_eq(tu_redis_int(&r, "DEL p:h:%s", user), 1);
    }
    ck_assert_int_eq(tu_redis_int(&r, "DBSIZE"), 60 + 1);
    ck_assert_int_eq(store_hist_check(db, &ro, 1000, 3, &ck, &err), STORE_OK);
    ck_assert_int_eq(ck.differ, 60);
    ck_assert_msg(strstr(ck.first, "0 in Redis"), "%s", ck.first);
    ck_assert_int_eq(store_hist_push(&o, &st, &err), STORE_OK);
    ck_assert(st.done && !st.already);
    ck_assert_int_eq(st.resumed, 60);
    ck_assert_int_eq(st.users, 60);
    ck_assert_int_eq(store_hist_check(db, &ro, 1000, 3, &ck, &err), STORE_OK);
    ck_assert_msg(ck.differ == 0, "%s", ck.first);

    /* A Redis history that differs from the database's is found. */
    ck_assert_int_eq(tu_redis_int(&r, "LPOP p:h:u0042") >= -1, 1);
    ck_assert_int_eq(store_hist_check(db, &ro, 1000, 3, &ck, &err), STORE_OK);
    ck_assert_int_eq(ck.differ, 1);
    ck_assert_msg(strstr(ck.first, "u0042"), "%s", ck.first);
    /* No server: a clear failure, nothing half-done is claimed. */
    tu_redis_stop(&r);
    o.restart = 1;
    ck_assert_int_eq(store_hist_push(&o, &st, &err), STORE_ERR_UNAVAILABLE);
    ck_assert_msg(strstr(err.msg, r.url), "%s", err.msg);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("hredis");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, codec_roundtrip);
    tcase_add_test(tc, ring_spreads_and_ignores_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("server");
    tcase_set_timeout(tc, 20 * tu_slowdown());
    tcase_add_test(tc, append_outcomes_and_order);
    tcase_add_test(tc, trim_keeps_the_newest);
    tcase_add_test(tc, reader_sees_append_at_once);
    tcase_add_test(tc, lost_node_fails_only_its_users);
    tcase_add_test(tc, hung_node_times_out);
    tcase_add_test(tc, push_resumes_and_checks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
