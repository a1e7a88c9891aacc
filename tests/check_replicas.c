/* check_replicas.c -- attnd beyond one process: replicas serving one
 * snapshot file with histories shared in Redis, all started here on
 * loopback ports and ipc paths chosen at run time.
 *
 *   three_replicas_one_job   one redis-server and three replicas; a record
 *                            on A is seen by rank on B at once; attn-batch
 *                            spreads a mixed rank+record job over them
 *                            (--endpoint @FILE); one replica is killed -9
 *                            mid-job and a fourth is added to the file:
 *                            every line answered once, in order, every
 *                            recorded event stored exactly once, and the
 *                            new replica served part of the job
 *   lost_node_fails_only_its_users   two Redis nodes behind one replica:
 *                            killing one fails only its users' requests
 *                            (`unavailable`, naming the node), and they
 *                            recover when it returns
 *
 * Everything started dies with the test even when it fails (the helpers
 * set PR_SET_PDEATHSIG) and is stopped by pid when it passes.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/hist/hist.h"
#include "store/hist/redis_int.h"
#include "tests/testutil.h"
#include "tests/tu_daemon.h"
#include "tests/tu_redis.h"

#ifndef ATTN_BIN_DIR
#error "ATTN_BIN_DIR must name the directory of the programs under test"
#endif

#define S_USERS 60
#define S_ITEMS 600
#define S_TS0 2000000000LL   /* recorded events: after every generated one */

/* A generated database, its histories pushed to urls, and a snapshot of
 * it at snap; the snapshot's checksum into sum. */
static void s_prepare(const char *db, const char *snap, const char *urls, char *sum,
                      size_t sum_len)
{
    char args[1200], out[4096];
    tu_make_db(db, S_ITEMS, S_USERS, 16);
    snprintf(args, sizeof args, "push %s %s --quiet", db, urls);
    ck_assert_msg(tu_run_program("attnctl history", args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "%s %s", db, snap);
    ck_assert_msg(tu_run_program("attnctl snapshot", args, out, sizeof out) == 0, "%s", out);
    const char *at = strstr(out, "blake2b-256 ");
    ck_assert_msg(at != NULL, "%s", out);
    snprintf(sum, sum_len, "%.64s", at + 12);
}

/* A replica over snap with histories at urls. */
static void s_replica(tu_daemon *d, const char *snap, const char *name, const char *urls)
{
    static char set_url[600];
    snprintf(set_url, sizeof set_url, "history.redis=%s", urls);
    const char *extra[] = {"--workers", "1", "--set", "history.backend=redis", "--set", set_url,
                           "--set", "history.retry_ms=100", NULL};
    tu_daemon_start(d, snap, name, extra);
}

static long long s_stat_ops(const tu_daemon *d, const char *op)
{
    cJSON *r = tu_call_json(d->endpoint, "{\"op\":\"stats\"}");
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "ops"), op);
    long long n = v ? (long long)v->valuedouble : 0;
    cJSON_Delete(r);
    return n;
}

/* ---- a record on one replica, seen by another ------------------------------ */

static void s_record_seen_elsewhere(const tu_daemon *a, const tu_daemon *b)
{
    cJSON *r = tu_call_json(a->endpoint, "{\"op\":\"record\",\"events\":[{\"user\":\"u0007\","
                                         "\"item\":\"i00599\",\"ts\":1999999999}]}");
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    cJSON_Delete(r);
    r = tu_call_json(b->endpoint, "{\"op\":\"rank\",\"user\":\"u0007\",\"candidates\":"
                                  "[\"i00599\",\"i00598\"],\"exclude_seen\":true}");
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    const cJSON *ex = cJSON_GetObjectItem(r, "excluded");
    ck_assert_int_eq(cJSON_GetArraySize(ex), 1);
    ck_assert_str_eq(ex->child->valuestring, "i00599");
    cJSON_Delete(r);
}

/* ---- the job ---------------------------------------------------------------- */

/* attn-batch reading its lines from a pipe we write, so that the test
 * decides when the job is where (the fd to write is *in). */
static pid_t s_batch(const char *eps_file, const char *out, const char *log, int *in)
{
    int fds[2];   /* close-on-exec: a replica started later must not hold our end */
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    char bin[512], ep[600];
    snprintf(bin, sizeof bin, "%s/attn-batch", ATTN_BIN_DIR);
    snprintf(ep, sizeof ep, "@%s", eps_file);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execl(bin, bin, "--endpoint", ep, "--in", "-", "--out", out, "--window", "16",
              "--timeout", "1000", "--retries", "30", "--backoff", "50", "--no-progress",
              (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    *in = fds[1];
    return pid;
}

/* Line n: every fourth a record of one event (a unique ts and id), the
 * rest ranks. */
static void s_write_lines(FILE *in, int from, int to)
{
    for (int n = from; n < to; n++) {
        int user = 1 + n % S_USERS;
        if (n % 4 == 3) {
            fprintf(in, "{\"op\":\"record\",\"id\":\"L%d\",\"events\":[{\"user\":\"u%04d\","
                    "\"item\":\"i%05d\",\"ts\":%lld,\"event_id\":\"ev-%d\"}]}\n", n, user,
                    1 + n % S_ITEMS, S_TS0 + n, n);
        } else {
            fprintf(in, "{\"op\":\"rank\",\"id\":\"L%d\",\"user\":\"u%04d\",\"candidates\":[",
                    n, user);
            for (int c = 0; c < 40; c++)
                fprintf(in, "%s\"i%05d\"", c ? "," : "", 1 + (n + c * 13) % S_ITEMS);
            fprintf(in, "],\"k\":5}\n");
        }
    }
    fflush(in);
}

static int s_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Wait until the job has answered `lines` lines (or seconds passed). */
static void s_wait_lines(const char *out, int lines, double seconds)
{
    double deadline = tu_now() + seconds * tu_slowdown();
    while (s_lines(out) < lines && tu_now() < deadline)
        usleep(20000);
}

/* Every recorded event of the job is in Redis exactly once. */
static void s_check_recorded(const char *url, int lines)
{
    store_hist_redis_opts o = {.urls = url, .prefix = "attn:", .connect_ms = 1000,
                               .timeout_ms = 2000, .trim = 1000};
    store_hist *h;
    store_err err;
    ck_assert_int_eq(store_hist_redis_open(&h, &o, &err), STORE_OK);
    static int seen[20000];
    memset(seen, 0, sizeof seen);
    static store_event ev[1000];
    for (int u = 1; u <= S_USERS; u++) {
        char user[16];
        int len = snprintf(user, sizeof user, "u%04d", u), n;
        ck_assert_int_eq(store_hist_read(h, user, (size_t)len, 1000, ev, &n, &err), STORE_OK);
        for (int i = 0; i < n; i++)
            if (ev[i].ts >= S_TS0 && ev[i].ts < S_TS0 + lines)
                seen[ev[i].ts - S_TS0]++;
    }
    store_hist_close(&h);
    for (int n = 3; n < lines; n += 4)
        ck_assert_msg(seen[n] == 1, "line %d's event stored %d times", n, seen[n]);
}

START_TEST(three_replicas_one_job)
{
    tu_redis r;
    tu_redis_start(&r, "replicas-redis");
    char sum[80], db[300], snap[300], eps[300], out[300], log[300];
    snprintf(db, sizeof db, "%s", tu_path("rep.db"));
    snprintf(snap, sizeof snap, "%s", tu_path("rep-snapshot.db"));
    snprintf(eps, sizeof eps, "%s", tu_path("replicas.txt"));
    snprintf(out, sizeof out, "%s", tu_path("rep.out"));
    snprintf(log, sizeof log, "%s", tu_path("rep-batch.log"));
    s_prepare(db, snap, r.url, sum, sizeof sum);
    tu_daemon a, b, c, d;
    s_replica(&a, snap, "rep-a.sock", r.url);
    s_replica(&b, snap, "rep-b.sock", r.url);
    s_replica(&c, snap, "rep-c.sock", r.url);
    const tu_daemon *all[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {   /* every replica serves the same snapshot */
        cJSON *info = tu_call_json(all[i]->endpoint, "{\"op\":\"info\"}");
        ck_assert_str_eq(cJSON_GetObjectItem(info, "snapshot_checksum")->valuestring, sum);
        cJSON_Delete(info);
    }
    s_record_seen_elsewhere(&a, &b);

    char text[1200];
    snprintf(text, sizeof text, "%s\n%s\n%s\n", a.endpoint, b.endpoint, c.endpoint);
    tu_write_file(eps, text, strlen(text));
    int fd;
    pid_t job = s_batch(eps, out, log, &fd);
    FILE *in = fdopen(fd, "w");
    ck_assert_ptr_nonnull(in);
    /* A replica lost while requests are in flight to it: every replica has
     * served the job's start; then B stops, the job goes on (a third of
     * what it sends now waits in B), and B is killed -- on a loaded machine
     * a kill at a moment chosen by watching the output could find the job
     * between two requests to B, so B holds some for certain. */
    enum { START = 300, PHASE = 6000 };
    s_write_lines(in, 0, START);
    s_wait_lines(out, START, 20);
    kill(b.pid, SIGSTOP);
    s_write_lines(in, START, PHASE);
    usleep((useconds_t)(500000 * tu_slowdown()));
    kill(b.pid, SIGKILL);
    waitpid(b.pid, NULL, 0);
    /* ... and one added, by the endpoint file alone. */
    s_replica(&d, snap, "rep-d.sock", r.url);
    snprintf(text, sizeof text, "%s\n%s\n%s\n", a.endpoint, c.endpoint, d.endpoint);
    tu_write_file(eps, text, strlen(text));
    /* Keep the job going until the new replica has served part of it. */
    int lines = PHASE;
    double deadline = tu_now() + 15 * tu_slowdown();
    while (s_stat_ops(&d, "rank") + s_stat_ops(&d, "record") == 0 && tu_now() < deadline) {
        s_write_lines(in, lines, lines + 100);
        lines += 100;
        s_wait_lines(out, lines - 200, 5);
    }
    s_write_lines(in, lines, lines + 400);
    lines += 400;
    fclose(in);
    int status = tu_wait_exit(job, 60, "attn-batch");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "attn-batch status %d: %s",
                  status, tu_file_tail(log));
    long long served_d = s_stat_ops(&d, "rank") + s_stat_ops(&d, "record");
    ck_assert_msg(served_d > 0, "the added replica served nothing: %s", tu_file_tail(log));
    /* The kill really cost requests in flight: the job re-sent them. */
    const char *summary[] = {"attn-batch:", " retries", NULL}, *none[] = {" 0 retries", NULL};
    ck_assert_msg(tu_log_has(log, summary) && !tu_log_has(log, none), "no retries: %s",
                  tu_file_tail(log));
    tu_assert_batch_out(out, "L", lines);
    s_check_recorded(r.url, lines);
    ck_assert_int_eq(tu_daemon_stop(&a), 0);
    ck_assert_int_eq(tu_daemon_stop(&c), 0);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    tu_redis_stop(&r);
}
END_TEST

/* ---- a Redis node lost ------------------------------------------------------- */

/* The first user (u0001...) the ring places on node url. */
static void s_user_on(const char *urls, const char *url, char *user, size_t len)
{
    rds_ring ring;
    store_err err;
    ck_assert_int_eq(rds_ring_init(&ring, urls, &err), STORE_OK);
    for (int u = 1; u <= S_USERS; u++) {
        int n = snprintf(user, len, "u%04d", u);
        if (!strcmp(ring.node[rds_ring_node(&ring, user, (size_t)n)].url, url))
            break;
    }
    rds_ring_free(&ring);
}

static cJSON *s_rank(const tu_daemon *d, const char *user)
{
    char req[300];
    snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"%s\",\"candidates\":[\"i00001\","
             "\"i00002\"]}", user);
    return tu_call_json(d->endpoint, req);
}

static cJSON *s_record(const tu_daemon *d, const char *user, int ts)
{
    char req[300];
    snprintf(req, sizeof req, "{\"op\":\"record\",\"events\":[{\"user\":\"%s\",\"item\":"
             "\"i00003\",\"ts\":%d,\"event_id\":\"x%d\"}]}", user, ts, ts);
    return tu_call_json(d->endpoint, req);
}

START_TEST(lost_node_fails_only_its_users)
{
    tu_redis n1, n2;
    tu_redis_start(&n1, "lost-1");
    tu_redis_start_opts(&n2, "lost-2", 1);   /* keeps its data over the restart */
    char urls[200], sum[80], on1[16], on2[16], db[300], snap[300];
    snprintf(urls, sizeof urls, "%s,%s", n1.url, n2.url);
    snprintf(db, sizeof db, "%s", tu_path("lost.db"));
    snprintf(snap, sizeof snap, "%s", tu_path("lost-snap.db"));
    s_prepare(db, snap, urls, sum, sizeof sum);
    s_user_on(urls, n1.url, on1, sizeof on1);
    s_user_on(urls, n2.url, on2, sizeof on2);
    tu_daemon d;
    s_replica(&d, snap, "lost.sock", urls);
    cJSON *r = s_rank(&d, on2);
    ck_assert_msg(tu_ok(r) && cJSON_IsNull(cJSON_GetObjectItem(r, "fallback")), "%s",
                  tu_message(r));
    cJSON_Delete(r);

    tu_redis_kill(&n2);
    for (int i = 0; i < 3; i++) {   /* fail fast, and again after retry_ms */
        r = s_rank(&d, on2);
        ck_assert_str_eq(tu_code(r), "unavailable");
        ck_assert_msg(strstr(tu_message(r), "history backend redis") &&
                      strstr(tu_message(r), n2.url), "%s", tu_message(r));
        cJSON_Delete(r);
        r = s_rank(&d, on1);
        ck_assert_msg(tu_ok(r), "%s", tu_message(r));
        cJSON_Delete(r);
        usleep(60000);
    }
    r = s_record(&d, on2, 1);
    ck_assert_str_eq(tu_code(r), "unavailable");
    ck_assert_msg(strstr(tu_message(r), n2.url), "%s", tu_message(r));
    cJSON_Delete(r);
    r = s_record(&d, on1, 1);
    ck_assert_msg(tu_ok(r) && cJSON_GetObjectItem(r, "stored")->valueint == 1, "%s",
                  tu_message(r));
    cJSON_Delete(r);

    tu_redis_restart(&n2);
    double deadline = tu_now() + 5 * tu_slowdown();
    for (;;) {   /* back within retry_ms */
        r = s_rank(&d, on2);
        int ok = tu_ok(r) && cJSON_IsNull(cJSON_GetObjectItem(r, "fallback"));
        cJSON_Delete(r);
        if (ok)
            break;
        ck_assert_msg(tu_now() < deadline, "the users of the restarted node did not recover");
        usleep(50000);
    }
    for (;;) {   /* the resend, once the writer's own retry_ms has passed too */
        r = s_record(&d, on2, 1);
        if (!tu_ok(r) && !strcmp(tu_code(r), "unavailable") && tu_now() < deadline) {
            cJSON_Delete(r);
            usleep(50000);
            continue;
        }
        ck_assert_msg(tu_ok(r) && cJSON_GetObjectItem(r, "stored")->valueint == 1, "%s",
                      tu_message(r));
        cJSON_Delete(r);
        break;
    }
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    tu_redis_stop(&n1);
    tu_redis_stop(&n2);
}
END_TEST

/* ---- snapshots ---------------------------------------------------------------- */

static void s_info(const tu_daemon *d, char *sum, size_t len, int *model)
{
    cJSON *r = tu_call_json(d->endpoint, "{\"op\":\"info\"}");
    const cJSON *c = cJSON_GetObjectItem(r, "snapshot_checksum");
    snprintf(sum, len, "%s", cJSON_IsString(c) ? c->valuestring : "");
    *model = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "model"), "version")->valueint;
    cJSON_Delete(r);
}

/* A snapshot carries no interactions, yet the popularity prior is the
 * database's; a new snapshot written over the served path is picked up by
 * the reload poll, and `reload` takes no file from the request. */
START_TEST(snapshot_swapped_by_rename)
{
    tu_redis r;
    tu_redis_start(&r, "snap-redis");
    char db[300], snap[300], sum[80], sum2[80], now[80], req[800];
    snprintf(db, sizeof db, "%s", tu_path("snap-src.db"));
    snprintf(snap, sizeof snap, "%s", tu_path("served.db"));
    s_prepare(db, snap, r.url, sum, sizeof sum);
    ck_assert_int_eq(tu_sql_int(snap, "SELECT count(*) FROM interactions"), 0);
    ck_assert_int_eq(tu_sql_int(snap, "SELECT count(*) FROM users"), 0);
    static char set_url[300];
    snprintf(set_url, sizeof set_url, "history.redis=%s", r.url);
    const char *extra[] = {"--workers", "1", "--set", "history.backend=redis", "--set", set_url,
                           "--set", "server.reload_poll=0.2", NULL};
    tu_daemon d;
    tu_daemon_start(&d, snap, "served.sock", extra);
    int model;
    s_info(&d, now, sizeof now, &model);
    ck_assert_str_eq(now, sum);
    ck_assert_int_eq(model, 0);
    /* The popularity prior: interaction counts of the database. */
    cJSON *rep = tu_call_json(d.endpoint, "{\"op\":\"rank\",\"user\":\"nobody\","
                                          "\"candidates\":[\"i00001\",\"i00002\",\"i00003\"]}");
    ck_assert_msg(tu_ok(rep), "%s", tu_message(rep));
    for (const cJSON *it = cJSON_GetObjectItem(rep, "items")->child; it; it = it->next) {
        snprintf(req, sizeof req, "SELECT count(*) FROM interactions i JOIN items t USING "
                 "(item_id) WHERE t.ext_id = '%s'", cJSON_GetObjectItem(it, "item")->valuestring);
        ck_assert_int_eq((int64_t)cJSON_GetObjectItem(it, "score")->valuedouble,
                         tu_sql_int(db, req));
    }
    cJSON_Delete(rep);

    /* A new model, a new snapshot over the same path. */
    int64_t v = tu_save_random_model(db, 2, 1, 0, 11);
    char args[700], out[4096];
    snprintf(args, sizeof args, "%s %s", db, snap);
    ck_assert_msg(tu_run_program("attnctl snapshot", args, out, sizeof out) == 0, "%s", out);
    snprintf(sum2, sizeof sum2, "%.64s", strstr(out, "blake2b-256 ") + 12);
    ck_assert_str_ne(sum, sum2);
    double deadline = tu_now() + 10 * tu_slowdown();
    do {
        usleep(50000);
        s_info(&d, now, sizeof now, &model);
    } while (strcmp(now, sum2) && tu_now() < deadline);
    ck_assert_str_eq(now, sum2);
    ck_assert_int_eq(model, v);
    /* reload reads the configured path only, whatever the request says. */
    snprintf(req, sizeof req, "{\"op\":\"reload\",\"db\":\"%s\",\"path\":\"%s\"}", db, db);
    rep = tu_call_json(d.endpoint, req);
    ck_assert_msg(tu_ok(rep), "%s", tu_message(rep));
    cJSON_Delete(rep);
    s_info(&d, now, sizeof now, &model);
    ck_assert_str_eq(now, sum2);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    /* The sqlite backend refuses a snapshot: it holds no histories. */
    snprintf(args, sizeof args, "--db %s --bind ipc://%s --set metrics.bind=", snap,
             tu_path("refuse.sock"));
    ck_assert_int_eq(tu_run_program("attnd", args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "is a snapshot") && strstr(out, "history.backend = redis"), "%s",
                  out);
    tu_redis_stop(&r);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("replicas");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 90 * tu_slowdown());
    tcase_add_test(tc, three_replicas_one_job);
    tcase_add_test(tc, lost_node_fails_only_its_users);
    tcase_add_test(tc, snapshot_swapped_by_rename);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
