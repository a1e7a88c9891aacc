/* check_record.c -- the record op end to end: the real attnd, the real
 * clients, the database counted afterwards.
 *
 * What is proved here: the reply's account of every event (stored,
 * duplicate, rejected, bad_request naming the index); idempotence across a
 * restart; `busy` from a full writer queue with every request still
 * answered; a database locked by another writer answered `busy`, then
 * stored on the resend; no acknowledged event lost and none duplicated when attnd is
 * killed with SIGKILL under a recording load from attn-batch; the clients'
 * record modes; the metrics.  (That rank sees recorded events at once, on a
 * trained model, is check_e2e's record_then_rank_on_trained_model: it needs
 * that suite's reference ranking.)
 *
 * Each case starts its own attnd on its own generated database and bounds
 * its own time.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "tests/testutil.h"
#include "tests/tu_daemon.h"
#include "util/clock.h"

/* A fresh copy of the generated database: 600 items, 60 users, d = 24. */
static const char *s_db(const char *name)
{
    static char path[8][300];
    static int at;
    char *p = path[at++ % 8];
    snprintf(p, sizeof path[0], "%s", tu_path(name));
    tu_make_db(p, 600, 60, 24);
    return p;
}

static int s_int(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "no number %s", key);
    return v->valueint;
}

/* attnd on db with the extra flags; the interactions the database holds
 * before any test traffic. */
static int64_t s_start(tu_daemon *d, const char *db, const char *sock, const char *const *extra)
{
    tu_daemon_start(d, db, sock, extra);
    return tu_sql_int(db, "SELECT count(*) FROM interactions");
}

/* Record one event (u0001, i00001 at ts 7): it must be stored. */
static void s_record_one(const char *endpoint)
{
    cJSON *r = tu_call_json(endpoint, "{\"op\":\"record\",\"id\":1,\"events\":[{\"user\":"
                                      "\"u0001\",\"item\":\"i00001\",\"ts\":7}]}");
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    ck_assert_int_eq(s_int(r, "stored"), 1);
    cJSON_Delete(r);
}

/* ---- the reply's account -------------------------------------------------- */

START_TEST(record_accounts_for_every_event)
{
    const char *db = s_db("acct.db");
    tu_daemon d;
    const char *extra[] = {"--set", "server.metrics_interval=0.2", NULL};
    int64_t rows0 = s_start(&d, db, "acct.sock", extra);
    cJSON *r = tu_call_json(d.endpoint,
        "{\"op\":\"record\",\"id\":\"r1\",\"events\":["
        "{\"user\":\"u0001\",\"item\":\"i00002\",\"ts\":4000000000,\"event_id\":\"a1\"},"
        "{\"user\":\"brand-new\",\"item\":\"i00003\",\"ts\":4000000001,\"kind\":\"click\","
        "\"weight\":2},"
        "{\"user\":\"u0001\",\"item\":\"no-such-item\",\"ts\":4000000002},"
        "{\"user\":\"u0001\",\"item\":\"i00002\",\"ts\":4000000000,\"event_id\":\"a1\"}]}");
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    ck_assert_str_eq(cJSON_GetObjectItem(r, "id")->valuestring, "r1");
    ck_assert_int_eq(s_int(r, "stored"), 2);
    const cJSON *dups = cJSON_GetObjectItem(r, "duplicates");
    ck_assert_int_eq(cJSON_GetArraySize(dups), 1);
    ck_assert_int_eq(cJSON_GetArrayItem(dups, 0)->valueint, 3);
    const cJSON *rej = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "rejected"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rejected")), 1);
    ck_assert_int_eq(s_int(rej, "index"), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(rej, "item")->valuestring, "no-such-item");
    ck_assert_str_eq(cJSON_GetObjectItem(rej, "reason")->valuestring, "unknown_item");
    cJSON_Delete(r);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions"), rows0 + 2);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM users WHERE ext_id = 'brand-new'"), 1);
    ck_assert_int_eq(tu_sql_int(db, "SELECT weight FROM interactions WHERE kind = 'click' AND "
                                 "ts = 4000000001"), 2);

    /* A bad field refuses the whole request, naming the event; nothing is stored. */
    r = tu_call_json(d.endpoint, "{\"op\":\"record\",\"id\":\"r2\",\"events\":["
                                 "{\"user\":\"u0002\",\"item\":\"i00004\",\"ts\":5},"
                                 "{\"user\":\"u0002\",\"item\":\"i00005\",\"ts\":6,"
                                 "\"weight\":-1}]}");
    ck_assert_str_eq(tu_code(r), "bad_request");
    ck_assert_msg(strstr(tu_message(r), "events[1].weight"), "%s", tu_message(r));
    cJSON_Delete(r);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions"), rows0 + 2);

    /* A user first seen in record is served its history at once. */
    r = tu_call_json(d.endpoint, "{\"op\":\"rank\",\"user\":\"brand-new\",\"candidates\":"
                                 "[\"i00003\",\"i00010\"],\"exclude_seen\":true,\"explain\":1}");
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "fallback")));
    ck_assert_int_eq(s_int(r, "history"), 1);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "excluded"), 0)->valuestring,
                     "i00003");
    cJSON *top = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "items"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(top, "because"),
                                                            0), "item")->valuestring, "i00003");
    cJSON_Delete(r);

    /* stats and the metrics line account for it too. */
    usleep((useconds_t)(1200000 * tu_slowdown()));   /* a rate sample or more */
    r = tu_call_json(d.endpoint, "{\"op\":\"stats\"}");
    const cJSON *rec = cJSON_GetObjectItem(r, "record");
    ck_assert_int_eq(s_int(rec, "stored"), 2);
    ck_assert_int_eq(s_int(rec, "duplicates"), 1);
    ck_assert_int_eq(s_int(rec, "rejected"), 1);
    ck_assert_int_eq(s_int(rec, "queued"), 0);
    ck_assert_int_ge(s_int(cJSON_GetObjectItem(rec, "commit_us"), "count"), 1);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(rec, "stored_per_s")));
    ck_assert_int_eq(s_int(cJSON_GetObjectItem(r, "ops"), "record"), 2);
    ck_assert_int_eq(s_int(cJSON_GetObjectItem(r, "errors"), "bad_request"), 1);
    cJSON_Delete(r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    const char *line[] = {"msg=metrics", "rec_stored=2", "rec_stored_per_s=", "rec_queue=0",
                          "rec_commit_p99_us=", "rec_batch_p50=", NULL};
    ck_assert_msg(tu_log_has(d.log, line), "no metrics line with the record figures in %s",
                  d.log);
}
END_TEST

/* ---- idempotence across a restart ------------------------------------------ */

START_TEST(resend_after_restart_is_stored_once)
{
    const char *db = s_db("again.db");
    const char *req = "{\"op\":\"record\",\"events\":["
                      "{\"user\":\"u0003\",\"item\":\"i00007\",\"ts\":4000000000,"
                      "\"event_id\":\"once-1\"},"
                      "{\"user\":\"u0003\",\"item\":\"i00008\",\"ts\":4000000001}]}";
    tu_daemon d;
    tu_daemon_start(&d, db, "again.sock", NULL);
    cJSON *r = tu_call_json(d.endpoint, req);
    ck_assert_int_eq(s_int(r, "stored"), 2);
    cJSON_Delete(r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    tu_daemon_start(&d, db, "again.sock", NULL);
    r = tu_call_json(d.endpoint, req);
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    ck_assert_int_eq(s_int(r, "stored"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "duplicates")), 2);
    cJSON_Delete(r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions WHERE ts >= 4000000000"), 2);
}
END_TEST

/* ---- overload -------------------------------------------------------------- */

/* A record request of *ctx events with fresh event_ids. */
static size_t s_make_record(char *req, size_t cap, int i, void *ctx)
{
    int events = *(const int *)ctx;
    size_t at = (size_t)snprintf(req, cap, "{\"op\":\"record\",\"id\":%d,\"events\":[", i);
    for (int e = 0; e < events; e++)
        at += (size_t)snprintf(req + at, cap - at, "%s{\"user\":\"u%04d\",\"item\":\"i%05d\","
                               "\"ts\":%d,\"event_id\":\"f%d-%d\"}", e ? "," : "", 1 + e % 60,
                               1 + (i + e) % 600, 4000 + e, i, e);
    at += (size_t)snprintf(req + at, cap - at, "]}");
    return at;
}

/* A full writer queue answers `busy` at once; every request is answered,
 * and what was acknowledged is exactly what is stored. */
START_TEST(busy_when_writer_queue_full)
{
    const char *db = s_db("busy.db");
    tu_daemon d;
    const char *extra[] = {"--set", "record.queue_max=2", "--set", "record.synchronous=full",
                           NULL};
    int64_t rows0 = s_start(&d, db, "busy.sock", extra);
    int events = 20;
    tu_counts c;
    ck_assert_int_eq(tu_dealer_flood(d.endpoint, 400, 20 * 120 + 64, s_make_record, &events, NULL,
                                     NULL, &c), 400);
    int ok = c.ok, busy = c.busy;
    ck_assert_int_eq(ok + busy, 400);
    ck_assert_msg(busy > 0 && ok > 0, "ok %d busy %d", ok, busy);
    cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"stats\"}");
    ck_assert_int_eq(s_int(r, "busy"), busy);
    ck_assert_int_eq(s_int(cJSON_GetObjectItem(r, "record"), "stored"), ok * 20);
    cJSON_Delete(r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions"), rows0 + ok * 20);
}
END_TEST

/* Send request i of reqs on one DEALER (REQ framing) gap_ms after the one
 * before, then read n replies: each must be ok. */
static void s_send_spaced(const char *endpoint, const char *const *reqs, int n, int gap_ms)
{
    void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, timeout = (int)(10000 * tu_slowdown());
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    ck_assert_int_eq(zmq_connect(sock, endpoint), 0);
    for (int i = 0; i < n; i++) {
        if (i)
            usleep((useconds_t)gap_ms * 1000);
        ck_assert_int_eq(zmq_send(sock, "", 0, ZMQ_SNDMORE), 0);
        ck_assert_int_eq(zmq_send(sock, reqs[i], strlen(reqs[i]), 0), (int)strlen(reqs[i]));
    }
    for (int i = 0; i < n; i++) {
        char buf[4096];
        ck_assert_msg(zmq_recv(sock, buf, sizeof buf, 0) == 0, "reply %d: no delimiter", i);
        int len = zmq_recv(sock, buf, sizeof buf - 1, 0);
        ck_assert_msg(len > 0, "reply %d: %s", i, zmq_strerror(zmq_errno()));
        buf[len] = 0;
        cJSON *r = cJSON_Parse(buf);
        ck_assert_msg(r && tu_ok(r), "reply %d: %s", i, buf);
        cJSON_Delete(r);
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
}

/* One figure of `stats`' record section (batches, stored, ...). */
static int s_record_stat(const char *endpoint, const char *key)
{
    cJSON *r = tu_call_json(endpoint, "{\"op\":\"stats\"}");
    int n = s_int(cJSON_GetObjectItem(r, "record"), key);
    cJSON_Delete(r);
    return n;
}

/* record.linger_ms: a batch waits that long for company, then takes all
 * that queued, however short max_delay_ms (5 here).  A lone request's ack
 * comes no sooner than the linger; requests that arrive during a linger,
 * spaced out or all at once, are committed in the same transaction, every
 * one answered and stored. */
START_TEST(linger_gathers_requests_into_one_batch)
{
    const char *db = s_db("linger.db");
    tu_daemon d;
    const char *extra[] = {"--set", "record.linger_ms=1000", NULL};
    int64_t rows0 = s_start(&d, db, "linger.sock", extra);
    uint64_t t0 = util_now_ns();
    s_record_one(d.endpoint);
    double waited_s = (double)(util_now_ns() - t0) / 1e9;
    ck_assert_msg(waited_s >= 1.0, "acknowledged after %.3f s, before the 1 s linger", waited_s);
    ck_assert_int_eq(s_record_stat(d.endpoint, "batches"), 1);
    /* Three requests 250 ms apart, all inside the first one's linger: one
     * batch.  (A batch that closed when its linger ended, taking only what
     * it held, would make it two.) */
    const char *spaced[] = {
        "{\"op\":\"record\",\"events\":[{\"user\":\"u0002\",\"item\":\"i00002\",\"ts\":8}]}",
        "{\"op\":\"record\",\"events\":[{\"user\":\"u0003\",\"item\":\"i00003\",\"ts\":9}]}",
        "{\"op\":\"record\",\"events\":[{\"user\":\"u0004\",\"item\":\"i00004\",\"ts\":10}]}"};
    s_send_spaced(d.endpoint, spaced, 3, 250);
    ck_assert_int_eq(s_record_stat(d.endpoint, "batches"), 2);
    /* Thirty sent at once: one batch, or a few where a slow client (under
     * valgrind) spreads them over more than a linger; never one each. */
    int events = 5;
    tu_counts c;
    ck_assert_int_eq(tu_dealer_flood(d.endpoint, 30, 5 * 120 + 64, s_make_record, &events, NULL,
                                     NULL, &c), 30);
    ck_assert_int_eq(c.ok, 30);
    int flood_batches = s_record_stat(d.endpoint, "batches") - 2;
    ck_assert_msg(flood_batches >= 1 && flood_batches <= 3, "%d batches", flood_batches);
    ck_assert_int_eq(s_record_stat(d.endpoint, "stored"), 1 + 3 + 30 * 5);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions"), rows0 + 1 + 3 + 30 * 5);
}
END_TEST

/* Another writer holding the database (an import) past the busy timeout:
 * the batch is answered `busy`, nothing stored, and a resend once the lock
 * is gone stores it. */
START_TEST(locked_database_is_busy_then_stored)
{
    const char *db = s_db("locked.db");
    tu_daemon d;
    const char *extra[] = {"--set", "store.busy_timeout_ms=200", NULL};
    tu_daemon_start(&d, db, "locked.sock", extra);
    const char *req = "{\"op\":\"record\",\"id\":\"L\",\"events\":[{\"user\":\"u0004\","
                      "\"item\":\"i00004\",\"ts\":4000000000,\"event_id\":\"lock-1\"}]}";
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    cJSON *r = tu_call_json(d.endpoint, req);
    ck_assert_str_eq(tu_code(r), "busy");
    ck_assert_msg(strstr(tu_message(r), "locked by another writer"), "%s", tu_message(r));
    ck_assert_str_eq(cJSON_GetObjectItem(r, "id")->valuestring, "L");
    cJSON_Delete(r);
    ck_assert_int_eq(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions WHERE event_id = "
                                    "'lock-1'"), 0);
    r = tu_call_json(d.endpoint, req);
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    ck_assert_int_eq(s_int(r, "stored"), 1);
    cJSON_Delete(r);
    ck_assert_int_eq(s_record_stat(d.endpoint, "failed_batches"), 1);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

START_TEST(recording_off_is_unavailable)
{
    const char *db = s_db("off.db");
    tu_daemon d;
    const char *extra[] = {"--set", "record.enabled=off", NULL};
    tu_daemon_start(&d, db, "off.sock", extra);
    cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"record\",\"id\":1,\"events\":[{\"user\":"
                                        "\"u0001\",\"item\":\"i00001\",\"ts\":1}]}");
    ck_assert_str_eq(tu_code(r), "unavailable");
    ck_assert_msg(strstr(tu_message(r), "record.enabled"), "%s", tu_message(r));
    ck_assert_int_eq(cJSON_GetObjectItem(r, "id")->valueint, 1);
    cJSON_Delete(r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* ---- record.priority = idle ------------------------------------------------- */

/* The threads of pid: how many, how many are SCHED_IDLE, and the policy
 * (field 41 of its stat) of the one named comm, -1 when there is none. */
typedef struct s_sched {
    int threads, idle, named;
} s_sched;

static int s_stat_policy(const char *path)
{
    char stat[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;   /* the thread has just exited */
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = 0;
    char *p = strrchr(stat, ')');   /* the name may hold spaces: fields follow it */
    for (int field = 2; p && field < 41; field++)
        p = strchr(p + 1, ' ');
    ck_assert_msg(p, "%s has no field 41: %s", path, stat);
    return atoi(p + 1);
}

static s_sched s_threads(pid_t pid, const char *comm)
{
    s_sched sc = {.named = -1};
    char path[384];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    ck_assert_msg(dir, "%s: %s", path, strerror(errno));
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        char name[64] = "";
        snprintf(path, sizeof path, "/proc/%d/task/%s/comm", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(name, sizeof name, f))
            name[0] = 0;
        fclose(f);
        name[strcspn(name, "\n")] = 0;
        snprintf(path, sizeof path, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
        int policy = s_stat_policy(path);
        if (policy < 0)
            continue;
        sc.threads++;
        sc.idle += policy == SCHED_IDLE;
        if (!strcmp(name, comm) && sc.named < 0)
            sc.named = policy;
    }
    closedir(dir);
    return sc;
}

/* The writer and its checkpoint thread drop to SCHED_IDLE, and no other
 * thread does (main, the workers, ZeroMQ's); recording works as before (on
 * an idle core). */
START_TEST(idle_priority_writer_records)
{
    const char *db = s_db("idle.db");
    tu_daemon d;
    const char *extra[] = {"--set", "record.priority=idle", NULL};
    int64_t rows0 = s_start(&d, db, "idle.sock", extra);
    s_record_one(d.endpoint);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions"), rows0 + 1);
    ck_assert_int_eq(s_threads(d.pid, "attnd-writer").named, SCHED_IDLE);
    s_sched sc = s_threads(d.pid, "checkpoint");
    ck_assert_int_eq(sc.named, SCHED_IDLE);
    ck_assert_int_eq(sc.idle, 2);
    ck_assert_int_gt(sc.threads, 4);   /* main, two workers at least, ZeroMQ's */
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* ---- crash safety ------------------------------------------------------------ */

/* attn-batch records LINES x EVENTS events with unique ids; attnd is killed
 * with SIGKILL in the middle and started again.  The job finishes, every
 * line is acknowledged, and the database holds every event exactly once:
 * no acknowledged event was lost, no resend stored one twice. */
START_TEST(kill9_under_load_loses_and_duplicates_nothing)
{
    const char *db = s_db("kill.db");
    char in[300], out[300], log[300];
    snprintf(in, sizeof in, "%s", tu_path("kill.in"));
    snprintf(out, sizeof out, "%s", tu_path("kill.out"));
    snprintf(log, sizeof log, "%s", tu_path("kill.log"));
    enum { LINES = 3000, EVENTS = 20 };
    FILE *f = fopen(in, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < LINES; i++) {
        fprintf(f, "{\"op\":\"record\",\"id\":\"L%d\",\"events\":[", i);
        for (int e = 0; e < EVENTS; e++)
            fprintf(f, "%s{\"user\":\"u%04d\",\"item\":\"i%05d\",\"ts\":%d,\"event_id\":"
                    "\"K%d.%d\"}", e ? "," : "", 1 + (i * 7 + e) % 60, 1 + (i + e * 13) % 600,
                    1000000 + i, i, e);
        fprintf(f, "]}\n");
    }
    fclose(f);
    int64_t rows0 = tu_sql_int(db, "SELECT count(*) FROM interactions");
    tu_daemon d;
    tu_daemon_start(&d, db, "kill.sock", NULL);
    pid_t job = tu_spawn(log, "attn-batch", "--endpoint", d.endpoint, "--in", in, "--out", out,
                         "--window", "32", "--timeout", "1500", "--retries", "20",
                         "--no-progress", NULL);
    /* Kill once a fifth of the lines are acknowledged. */
    long size = tu_wait_size(out, 20000, 30);
    ck_assert_msg(size > 0, "attn-batch wrote nothing");
    ck_assert_msg(waitpid(job, NULL, WNOHANG) == 0, "attn-batch finished before the kill");
    kill(d.pid, SIGKILL);
    waitpid(d.pid, NULL, 0);
    tu_daemon_start(&d, db, "kill.sock", NULL);
    int status = tu_wait_exit(job, 60, "attn-batch");
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "attn-batch status %d (see %s)",
                  status, log);
    /* Every line acknowledged: stored + duplicates account for all its events. */
    f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    static char line[1 << 16];
    int n = 0, stored = 0, dups = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *r = cJSON_Parse(line);
        ck_assert_msg(r && tu_ok(r), "line %d: %.200s", n + 1, line);
        int s = s_int(r, "stored"), k = cJSON_GetArraySize(cJSON_GetObjectItem(r, "duplicates"));
        ck_assert_int_eq(s + k, EVENTS);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rejected")), 0);
        stored += s;
        dups += k;
        cJSON_Delete(r);
        n++;
    }
    fclose(f);
    ck_assert_int_eq(n, LINES);
    /* Each event exactly once; the stored counts never exceed it (a resend
     * of a line committed before the kill reports duplicates). */
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions WHERE event_id LIKE 'K%'"),
                     LINES * EVENTS);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(DISTINCT event_id) FROM interactions "
                                 "WHERE event_id LIKE 'K%'"), LINES * EVENTS);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions"), rows0 + LINES * EVENTS);
    ck_assert_int_eq(stored + dups, LINES * EVENTS);
    ck_assert_int_le(stored, LINES * EVENTS);
    char report[4096], args[600];
    snprintf(args, sizeof args, "inspect %s", db);
    ck_assert_int_eq(tu_run_program("attnctl", args, report, sizeof report), 0);
    ck_assert_msg(strstr(report, "integrity     ok"), "%s", report);
}
END_TEST

/* ---- the clients --------------------------------------------------------------- */

START_TEST(clients_record)
{
    const char *db = s_db("cli.db");
    tu_daemon d;
    tu_daemon_start(&d, db, "cli.sock", NULL);
    char out[8192], args[1200];
    /* attn-query: one event; a resend is a duplicate (still a success); an
     * unknown item is a failure. */
    snprintf(args, sizeof args, "--endpoint %s --record u0009:i00011:click --event-id q-1 --json",
             d.endpoint);
    ck_assert_int_eq(tu_run_program("attn-query", args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"stored\":1"), "%s", out);
    ck_assert_int_eq(tu_run_program("attn-query", args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"duplicates\":[0]"), "%s", out);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions WHERE event_id = 'q-1' "
                                 "AND kind = 'click'"), 1);
    snprintf(args, sizeof args, "--endpoint %s --record u0009:nothing", d.endpoint);
    ck_assert_int_eq(tu_run_program("attn-query", args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "not stored") && strstr(out, "unknown_item"), "%s", out);
    ck_assert_int_eq(tu_run_program("attn-query", "--record u0009", out, sizeof out), 2);

    /* attn-load: a mix; what it says was stored is what the database gained. */
    int64_t rows0 = tu_sql_int(db, "SELECT count(*) FROM interactions");
    snprintf(args, sizeof args, "--endpoint %s --db %s --record-ratio 0.5 --record-events 4 "
             "--requests 300 --warmup 0 --clients 8 --candidates 20 --seed 5 --json",
             d.endpoint, db);
    ck_assert_int_eq(tu_run_program("attn-load", args, out, sizeof out), 0);
    cJSON *j = cJSON_Parse(strchr(out, '{'));
    ck_assert_msg(j != NULL, "%s", out);
    const cJSON *rec = cJSON_GetObjectItem(j, "record");
    ck_assert_ptr_nonnull(rec);
    int rec_ok = s_int(rec, "ok"), other_ok = s_int(cJSON_GetObjectItem(j, "other"), "ok");
    ck_assert_msg(rec_ok > 90 && other_ok > 90, "record %d, rank %d of 300", rec_ok, other_ok);
    ck_assert_int_eq(rec_ok + other_ok, 300);
    ck_assert_int_eq(s_int(rec, "events"), 4 * rec_ok);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM interactions"),
                     rows0 + s_int(rec, "stored"));
    ck_assert(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "latency_us"), "p99")->valuedouble > 0);
    cJSON_Delete(j);
    snprintf(args, sizeof args, "--endpoint %s --db %s --record-ratio 0.5 --history 3",
             d.endpoint, db);
    ck_assert_int_eq(tu_run_program("attn-load", args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "--record-ratio"), "%s", out);

    /* attn-batch: a mixed file, each line answered by its own kind. */
    const char *in = tu_path("mixed.jsonl");
    const char *text =
        "{\"op\":\"record\",\"id\":\"a\",\"events\":[{\"user\":\"u0012\",\"item\":\"i00100\","
        "\"ts\":4100000000,\"event_id\":\"mix-1\"}]}\n"
        "{\"op\":\"rank\",\"id\":\"b\",\"user\":\"u0012\",\"candidates\":[\"i00001\"]}\n"
        "{\"op\":\"record\",\"id\":\"c\",\"events\":[{\"user\":\"u0012\",\"item\":\"i00100\","
        "\"ts\":4100000000,\"event_id\":\"mix-1\"}]}\n";
    tu_write_file(in, text, strlen(text));
    snprintf(args, sizeof args, "--endpoint %s --in %s --out - --window 1 --no-progress",
             d.endpoint, in);
    ck_assert_int_eq(tu_run_program("attn-batch", args, out, sizeof out), 0);
    char *l2 = strchr(out, '\n'), *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
    ck_assert_msg(l3 && strstr(out, "\"id\":\"a\"") && strstr(out, "\"stored\":1") &&
                  strstr(l2, "\"id\":\"b\"") && strstr(l2, "\"items\"") &&
                  strstr(l3, "\"id\":\"c\"") && strstr(l3, "\"duplicates\":[0]"), "%s", out);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("e2e");
    tcase_set_timeout(tc, 90 * tu_slowdown());
    tcase_add_test(tc, record_accounts_for_every_event);
    tcase_add_test(tc, resend_after_restart_is_stored_once);
    tcase_add_test(tc, busy_when_writer_queue_full);
    tcase_add_test(tc, linger_gathers_requests_into_one_batch);
    tcase_add_test(tc, locked_database_is_busy_then_stored);
    tcase_add_test(tc, recording_off_is_unavailable);
    tcase_add_test(tc, idle_priority_writer_records);
    tcase_add_test(tc, kill9_under_load_loses_and_duplicates_nothing);
    tcase_add_test(tc, clients_record);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
