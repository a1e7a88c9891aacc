/* check_metrics.c -- the metrics registry, /metrics and the HTTP listener,
 * checked with Prometheus's own tools.
 *
 *   registry   bucket histograms, sums over workers, the exposition format,
 *              and the three renderings (Prometheus, `stats`, the log line)
 *              agreeing on one view
 *   promtool   `promtool check rules` and `promtool test rules` on the
 *              shipped alerts; `promtool check metrics` on a live scrape of a
 *              daemon under load
 *   http       counters moving by exactly the requests sent, across a reload;
 *              /readyz during the shutdown drain; the listener's limits
 *
 * promtool comes with Debian's `prometheus` package, which tools/install-deps
 * installs with the build dependencies; without it these tests fail and say
 * so rather than pass.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon/config.h"
#include "daemon/json_out.h"
#include "daemon/metric_defs.h"
#include "daemon/metrics.h"
#include "daemon/ops.h"
#include "daemon/prom.h"
#include "daemon/reply.h"
#include "tests/testutil.h"
#include "tests/tu_daemon.h"
#include "tests/tu_http.h"

#ifndef ATTN_SRC_DIR
#error "ATTN_SRC_DIR must name the source tree"
#endif

/* ---- helpers ---------------------------------------------------------------- */

/* Run promtool with args (stdin from in_file when not NULL); its exit
 * status, and its output in out. */
static int s_promtool(const char *args, const char *in_file, char *out, size_t len)
{
    ck_assert_msg(system("command -v promtool >/dev/null 2>&1") == 0,
                  "promtool not found: `tools/install-deps` installs Debian's prometheus "
                  "package, which provides it");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && promtool %s %s%s 2>&1", ATTN_SRC_DIR, args,
             in_file ? "< " : "", in_file ? in_file : "");
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *s_render(const srv_metrics_view *v)
{
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    ck_assert_int_eq(srv_prom_write(v, f), 0);
    fclose(f);
    return body;
}

static char *s_read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char text[1 << 18];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    return text;
}

/* A view from two workers and the main counters, as the daemon collects it. */
static srv_metrics_view *s_sample_view(void)
{
    static srv_wstats a, b;
    static srv_counters c;
    srv_wstats_init(&a);
    srv_wstats_init(&b);
    memset(&c, 0, sizeof c);
    int rank = srv_op_row(srv_op_find("rank", 4));
    uint64_t st[SRV_STAGE_COUNT] = {7000, 120000, 45000, 9000, 250000};
    srv_obs ok = {.op_row = rank, .code = SRV_OK, .counted = 1, .stage = st, .ranked = 1,
                  .candidates = 100, .history = 50, .unknown_candidates = 2};
    for (int i = 0; i < 30; i++) {
        ok.arm = i < 20 ? 0 : 1;                  /* 20 control, 10 treatment */
        srv_wstats_note(i % 3 ? &a : &b, &ok);
    }
    srv_obs fb = ok;
    fb.fallback = SRV_FB_UNKNOWN_USER;
    fb.history = 0;
    srv_wstats_note(&b, &fb);
    uint64_t parse_only[SRV_STAGE_COUNT] = {3000, SRV_STAGE_SKIPPED, SRV_STAGE_SKIPPED,
                                            SRV_STAGE_SKIPPED, 4000};
    srv_obs bad = {.op_row = SRV_OP_NONE, .code = SRV_E_BAD_JSON, .counted = 1,
                   .stage = parse_only, .arm = -1};
    srv_wstats_note(&a, &bad);
    for (int i = 0; i < 4; i++)
        srv_counters_reply(&c, rank, SRV_E_BUSY);
    atomic_store(&c.received, 36);
    atomic_store(&c.replied, 35);
    atomic_store(&c.dropped, 1);
    atomic_store(&c.queued, 3);
    atomic_store(&c.reloads, 2);
    atomic_store(&c.qps_milli, 12345);
    srv_wstats *ws[2] = {&a, &b};
    /* calloc: the record and security views are main's to fill (state.c) */
    srv_metrics_view *v = calloc(1, sizeof *v);
    srv_metrics_collect(v, ws, 2, &c, SRV_COLLECT_QUANTILES);
    v->model_version = 3;
    v->catalog_version = 9;
    v->items = 600;
    v->workers = 2;
    v->ready = 1;
    v->start_time_s = 1.7e9;
    v->loaded_time_s = 1.7e9 + 60.5;
    v->uptime_s = 61.25;
    static srv_experiment exp;
    char why[256];
    ck_assert_int_eq(srv_experiment_parse("control:active:0.8,treat:active:0.2", "s", &exp, why,
                                          sizeof why), 0);
    v->exp = &exp;
    srv_wstats_destroy(&a);
    srv_wstats_destroy(&b);
    return v;
}

/* ---- registry ------------------------------------------------------------------ */

/* A value lands in the first bucket whose bound is >= it: Prometheus' `le`
 * is inclusive. */
START_TEST(phist_bounds_are_inclusive)
{
    srv_phist h;
    memset(&h, 0, sizeof h);
    const srv_layout_def *lat = srv_layout(SRV_LAYOUT_LATENCY);
    ck_assert_int_eq(lat->n, 22);
    ck_assert_uint_eq(lat->le[0], 1000);             /* 1 us */
    ck_assert_uint_eq(lat->le[lat->n - 1], 10000000000ull);   /* 10 s */
    srv_phist_add(&h, SRV_LAYOUT_LATENCY, 0);
    srv_phist_add(&h, SRV_LAYOUT_LATENCY, 1000);
    srv_phist_add(&h, SRV_LAYOUT_LATENCY, 1001);
    srv_phist_add(&h, SRV_LAYOUT_LATENCY, 10000000000ull);
    srv_phist_add(&h, SRV_LAYOUT_LATENCY, 10000000001ull);
    ck_assert_uint_eq(h.bucket[0], 2);
    ck_assert_uint_eq(h.bucket[1], 1);
    ck_assert_uint_eq(h.bucket[lat->n - 1], 1);
    ck_assert_uint_eq(h.bucket[lat->n], 1);           /* +Inf */
    ck_assert_uint_eq(srv_phist_count(&h), 5);
    ck_assert_uint_eq(h.sum, 20000002002ull);
    memset(&h, 0, sizeof h);
    srv_phist_add(&h, SRV_LAYOUT_SIZE, 0);
    srv_phist_add(&h, SRV_LAYOUT_SIZE, 3);
    srv_phist_add(&h, SRV_LAYOUT_SIZE, 5);
    ck_assert_uint_eq(h.bucket[0], 1);                /* le 0 */
    ck_assert_uint_eq(h.bucket[3], 2);                /* le 5 */
    /* Bounds strictly increase: a bucket can never be empty by construction. */
    for (int l = 0; l < SRV_LAYOUT_COUNT; l++)
        for (int i = 1; i < srv_layout(l)->n; i++)
            ck_assert(srv_layout(l)->le[i] > srv_layout(l)->le[i - 1]);
}
END_TEST

/* Workers' counts are summed, main's replies added, derived totals right. */
START_TEST(collect_sums_workers_and_main)
{
    srv_metrics_view *v = s_sample_view();
    int rank = srv_op_row(srv_op_find("rank", 4));
    ck_assert_uint_eq(v->w.requests[rank][SRV_OK], 31);
    ck_assert_uint_eq(v->w.requests[rank][SRV_E_BUSY], 4);
    ck_assert_uint_eq(v->w.requests[SRV_OP_NONE][SRV_E_BAD_JSON], 1);
    ck_assert_uint_eq(v->ops[rank], 35);
    ck_assert_uint_eq(v->errors[SRV_E_BUSY], 4);
    ck_assert_uint_eq(v->busy, 4);
    ck_assert_uint_eq(v->fallbacks_total, 1);
    ck_assert_uint_eq(v->w.unknown_candidates, 62);
    ck_assert_uint_eq(srv_phist_count(&v->w.stage[SRV_STAGE_TOTAL]), 32);
    ck_assert_uint_eq(srv_phist_count(&v->w.stage[SRV_STAGE_SCORE]), 31);   /* parse-only skipped */
    ck_assert_uint_eq(srv_phist_count(&v->w.candidates), 31);
    ck_assert_uint_eq(v->w.history.sum, 30 * 50);
    ck_assert_uint_eq(v->stage[SRV_STAGE_TOTAL].n, 32);    /* the fine histogram too */
    free(v);
}
END_TEST

/* Format rules promtool does not check: HELP and TYPE once per family before
 * its samples, naming conventions, cumulative buckets ending at +Inf equal
 * to _count, exact sums -- and every family documented. */
START_TEST(exposition_format)
{
    srv_metrics_view *v = s_sample_view();
    char *text = s_render(v);
    ck_assert_double_eq(tu_prom_value(text, "attnd_requests_total{op=\"rank\",code=\"ok\"}"), 31);
    ck_assert_double_eq(tu_prom_value(text, "attnd_requests_total{op=\"none\",code=\"bad_json\"}"),
                        1);
    ck_assert_double_eq(tu_prom_value(text, "attnd_queue_depth"), 3);
    ck_assert_double_eq(tu_prom_value(text, "attnd_build_info{version=\"0.2.0\"}"), 1);
    ck_assert_double_eq(tu_prom_value(text,
                        "attnd_rank_fallbacks_total{reason=\"unknown_user\"}"), 1);
    ck_assert_double_eq(tu_prom_value(text, "attnd_experiment_requests_total{arm=\"control\"}"),
                        20);
    ck_assert_double_eq(tu_prom_value(text, "attnd_experiment_fallbacks_total{arm=\"treat\"}"),
                        1);
    ck_assert_double_eq(tu_prom_value(text, "attnd_experiment_request_duration_seconds_count"
                                            "{arm=\"treat\"}"), 11);
    ck_assert_ptr_null(strstr(text, "arm=\"\""));       /* no unconfigured arm */
    ck_assert_ptr_nonnull(strstr(text, "\nattnd_request_duration_seconds_sum 0.007754\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nattnd_request_duration_seconds_bucket{le=\"0.0005\"} 32\n"));
    ck_assert_ptr_nonnull(strstr(text, "attnd_request_stage_duration_seconds_bucket"
                                       "{stage=\"parse\",le=\"5e-06\"} 1\n"));
    const char *docs = s_read_text(ATTN_SRC_DIR "/docs/OPERATIONS.md");
    int n;
    const srv_metric *defs = srv_metric_defs(&n);
    for (int i = 0; i < n; i++) {
        const char *name = defs[i].name;
        if (!name)
            continue;
        char want[160];
        ck_assert_msg(!strncmp(name, "attnd_", 6), "%s: no attnd_ prefix", name);
        size_t len = strlen(name);
        int total = len > 6 && !strcmp(name + len - 6, "_total");
        ck_assert_msg(total == (defs[i].kind == SRV_MK_COUNTER), "%s: _total iff counter", name);
        snprintf(want, sizeof want, "# HELP %s ", name);
        ck_assert_msg(strstr(text, want), "no HELP for %s", name);
        snprintf(want, sizeof want, "`%s`", name);
        ck_assert_msg(strstr(docs, want), "docs/OPERATIONS.md does not list `%s`", name);
    }
    /* Histograms: cumulative, +Inf == _count. */
    uint64_t prev = 0;
    char series[64] = "";
    for (const char *line = text; (line = strstr(line, "_bucket{")); line++) {
        const char *start = line;
        while (start > text && start[-1] != '\n')
            start--;
        const char *le = strstr(line, "le=\"");
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(le - start), start);
        uint64_t val = strtoull(strchr(le, ' ') + 1, NULL, 10);
        if (strcmp(key, series)) {
            snprintf(series, sizeof series, "%s", key);
            prev = 0;
        }
        ck_assert_msg(val >= prev, "%s: buckets not cumulative", key);
        prev = val;
    }
    free(text);
    free(v);
}
END_TEST

/* One registry: each number with a Prometheus name, a `stats` key or a log
 * key is the same in all three renderings of one view. */
START_TEST(three_renderings_agree)
{
    srv_metrics_view *v = s_sample_view();
    char *text = s_render(v);
    srv_json w;
    ck_assert_int_eq(srv_json_init(&w, 1 << 12), 0);
    srv_reply_stats(&w, "1", v);
    cJSON *stats = cJSON_Parse(w.buf);
    ck_assert_ptr_nonnull(stats);
    char line[8192];
    srv_metrics_logfmt(v, line, sizeof line);
    int n, checked = 0;
    const srv_metric *defs = srv_metric_defs(&n);
    for (int i = 0; i < n; i++) {
        const srv_metric *m = &defs[i];
        if (m->n != 1 || m->labels || m->kind == SRV_MK_HISTOGRAM)
            continue;
        double want = srv_metric_f64(m, v, 0);
        if (m->name)
            ck_assert_msg(tu_prom_value(text, m->name) == want, "%s", m->name);
        if (m->stats) {
            const cJSON *j = cJSON_GetObjectItem(stats, m->stats);
            ck_assert_msg(cJSON_IsNumber(j) && fabs(j->valuedouble - want) < 1e-3,
                          "stats %s", m->stats);
        }
        if (m->log) {
            char key[64];
            snprintf(key, sizeof key, " %s=", m->log);
            const char *at = strstr(line, key);
            ck_assert_msg(at && fabs(strtod(at + strlen(key), NULL) - want) < 0.06, "log %s: %s",
                          m->log, line);
        }
        checked++;
    }
    ck_assert_int_ge(checked, 15);
    /* The families: stats' ops and errors are the row and column sums. */
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "ops"), "rank")->valueint,
                     35);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "errors"), "busy")->valueint,
                     tu_prom_value(text, "attnd_requests_total{op=\"rank\",code=\"busy\"}"));
    ck_assert_ptr_nonnull(strstr(line, " err_bad_json=1"));
    const cJSON *arm = cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "arms"), "control");
    ck_assert_double_eq(cJSON_GetObjectItem(arm, "requests")->valuedouble,
                        tu_prom_value(text, "attnd_experiment_requests_total{arm=\"control\"}"));
    ck_assert_ptr_nonnull(strstr(line, " arm_control_requests=20 "));
    cJSON_Delete(stats);
    srv_json_free(&w);
    free(text);
    free(v);
}
END_TEST

START_TEST(config_keys)
{
    srv_config cfg;
    char why[256], host[64];
    int port;
    cfg_defaults(&cfg);
    ck_assert_str_eq(cfg.metrics_bind, "127.0.0.1:9464");
    ck_assert_int_eq(cfg_set(&cfg, "metrics.bind", "", why, sizeof why), 0);
    ck_assert_str_eq(cfg.metrics_bind, "");
    ck_assert_int_eq(cfg_set(&cfg, "metrics.bind", "[::1]:0", why, sizeof why), 0);
    const char *bad[] = {"::1:9464", "localhost", "host:", ":80", "h:65536", "h:-1", "h:9x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(cfg_set(&cfg, "metrics.bind", bad[i], why, sizeof why) == -1, "%s", bad[i]);
        ck_assert_msg(strstr(why, "metrics.bind") && strstr(why, "host:port"), "%s", why);
    }
    ck_assert_int_eq(cfg_hostport_split("[fe80::1]:9464", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "fe80::1");
    ck_assert_int_eq(port, 9464);
    ck_assert_int_eq(cfg_set(&cfg, "metrics.max_connections", "0", why, sizeof why), -1);
    ck_assert_int_eq(cfg_set(&cfg, "metrics.max_request_bytes", "100", why, sizeof why), -1);
}
END_TEST

/* ---- promtool ------------------------------------------------------------------ */

START_TEST(alert_rules_check)
{
    char out[8192];
    int rc = s_promtool("check rules conf/attnd-alerts.yml", NULL, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "SUCCESS"), "promtool check rules: %s", out);
}
END_TEST

/* Each alert fires on its bad series and stays quiet on healthy ones (the
 * test file's own comments say how); and promtool's verdict is real: the
 * same rules fail a test that expects the opposite. */
START_TEST(alert_rules_unit_tests)
{
    char out[16384];
    int rc = s_promtool("test rules tests/attnd-alerts.test.yml", NULL, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "SUCCESS"), "promtool test rules: %s", out);
    const char *rules = s_read_text(ATTN_SRC_DIR "/conf/attnd-alerts.yml");
    static char rules_copy[1 << 16];
    snprintf(rules_copy, sizeof rules_copy, "%s", rules);
    const char *tests = s_read_text(ATTN_SRC_DIR "/tests/attnd-alerts.test.yml");
    int alerts = 0;
    for (const char *p = rules_copy; (p = strstr(p, "- alert: ")); p++) {
        char name[64], quiet[128];
        sscanf(p + 9, "%63s", name);
        /* fired: an expected alert list follows its name; quiet: an empty one */
        snprintf(quiet, sizeof quiet, "alertname: %s\n        exp_alerts: []", name);
        char fired[128];
        snprintf(fired, sizeof fired, "alertname: %s\n        exp_alerts:\n          - ", name);
        ck_assert_msg(strstr(tests, quiet), "no quiet case for %s", name);
        ck_assert_msg(strstr(tests, fired), "no firing case for %s", name);
        alerts++;
    }
    ck_assert_int_eq(alerts, 8);
    const char *wrong = "rule_files: [" ATTN_SRC_DIR "/conf/attnd-alerts.yml]\n"
                        "evaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n"
                        "      - series: 'up{job=\"attnd\",instance=\"ok\"}'\n"
                        "        values: '1x10'\n    alert_rule_test:\n"
                        "      - eval_time: 5m\n        alertname: AttndDown\n"
                        "        exp_alerts:\n          - exp_labels: {instance: ok}\n";
    tu_write_file(tu_path("wrong.test.yml"), wrong, strlen(wrong));
    char args[512];
    snprintf(args, sizeof args, "test rules %s", tu_path("wrong.test.yml"));
    ck_assert_int_ne(s_promtool(args, NULL, out, sizeof out), 0);
}
END_TEST

/* Also synthetic: every family with values in every bucket kind. */
START_TEST(rendering_passes_promtool)
{
    srv_metrics_view *v = s_sample_view();
    char *text = s_render(v);
    tu_write_file(tu_path("sample.prom"), text, strlen(text));
    char out[8192];
    int rc = s_promtool("check metrics", tu_path("sample.prom"), out, sizeof out);
    ck_assert_msg(rc == 0 && out[0] == 0, "promtool check metrics (status %d): %s", rc, out);
    free(text);
    free(v);
}
END_TEST

/* ---- against the daemon --------------------------------------------------------- */

static char s_db[300];      /* 600 items, 60 users, d = 24 */
static char s_big[300];     /* 6000 items: heavy requests for a slow drain */

static void s_setup(void)
{
    snprintf(s_db, sizeof s_db, "%s", tu_path("metrics.db"));
    tu_make_db(s_db, 600, 60, 24);
    snprintf(s_big, sizeof s_big, "%s", tu_path("big.db"));
    tu_make_db(s_big, 6000, 40, 24);
}

static char *s_scrape(int port)
{
    char *body = NULL;
    int status = tu_http_get(port, "/metrics", &body, (int)(5000 * tu_slowdown()));
    ck_assert_msg(status == 200 && body, "GET /metrics: status %d", status);
    return body;
}

typedef struct s_load {
    const char *endpoint;
    atomic_int stop;
    int answered;
} s_load;

/* Pipelined rank requests (8 in flight, a mix of known users, unknown
 * candidates and an unknown user) until told to stop. */
static void *s_load_loop(void *arg)
{
    s_load *l = arg;
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = (int)(5000 * tu_slowdown());
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_connect(s, l->endpoint);
    char req[512], buf[65536];
    int sent = 0;
    while (!atomic_load(&l->stop) || l->answered < sent) {
        while (sent - l->answered < 8 && !atomic_load(&l->stop)) {
            int n = snprintf(req, sizeof req, "{\"op\":\"rank\",\"id\":%d,\"user\":\"%s%04d\","
                             "\"candidates\":[\"i00001\",\"i00002\",\"i00300\",\"nope\"],\"k\":3}",
                             sent, sent % 7 ? "u" : "x", 1 + sent % 60);
            zmq_send(s, "", 0, ZMQ_SNDMORE);
            zmq_send(s, req, (size_t)n, 0);
            sent++;
        }
        if (zmq_recv(s, buf, sizeof buf, 0) < 0 || zmq_recv(s, buf, sizeof buf, 0) < 0)
            break;
        l->answered++;
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return NULL;
}

/* Acceptance 4: a live scrape of a daemon under load passes promtool's
 * format check and its lint (no output at all). */
START_TEST(live_scrape_passes_promtool)
{
    tu_daemon d;
    const char *extra[] = {"--set", "experiment.arms=control:active:0.5,treat:active:0.5", NULL};
    tu_daemon_start(&d, s_db, "live.sock", extra);
    int port = tu_daemon_http_port(&d);
    ck_assert_int_gt(port, 0);
    s_load l = {.endpoint = d.endpoint};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, s_load_loop, &l), 0);
    for (int i = 0; i < 3; i++) {
        usleep(300000);
        char *body = s_scrape(port);
        tu_write_file(tu_path("live.prom"), body, strlen(body));
        char out[8192];
        int rc = s_promtool("check metrics", tu_path("live.prom"), out, sizeof out);
        ck_assert_msg(rc == 0 && out[0] == 0, "promtool check metrics (status %d): %s", rc, out);
        if (i == 2) {
            ck_assert_double_gt(tu_prom_value(body, "attnd_requests_total{op=\"rank\","
                                                    "code=\"ok\"}"), 0);
            ck_assert_double_gt(tu_prom_value(body, "attnd_experiment_requests_total"
                                                    "{arm=\"treat\"}"), 0);
        }
        free(body);
    }
    atomic_store(&l.stop, 1);
    pthread_join(t, NULL);
    ck_assert_int_gt(l.answered, 50);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* A scrape once the daemon is quiet and its accounting has landed: the
 * counters of a reply are updated just after it is handed over (a worker
 * records its timings after sending), so a client can read its reply a few
 * microseconds before they move.  Two scrapes 30 ms apart that agree. */
static char *s_scrape_settled(int port)
{
    static const char *watch[] = {"attnd_replies_sent_total", "attnd_messages_received_total",
                                  "attnd_request_duration_seconds_count", "attnd_reloads_total"};
    double deadline = tu_now() + 3 * tu_slowdown();
    char *prev = s_scrape(port);
    for (;;) {
        usleep(30000);
        char *now = s_scrape(port);
        int same = 1;
        for (size_t i = 0; i < sizeof watch / sizeof watch[0]; i++)
            same &= tu_prom_value(prev, watch[i]) == tu_prom_value(now, watch[i]);
        free(prev);
        if (same || tu_now() > deadline)
            return now;
        prev = now;
    }
}

/* needle occurs in the sample line before its value (at sp). */
static int s_in_name(const char *line, const char *sp, const char *needle)
{
    const char *p = strstr(line, needle);
    return p && p < sp;
}

/* Every counter sample of before (a _total, or a histogram's _bucket,
 * _sum, _count) is present in after and not lower; returns how many. */
static int s_counters_not_lower(const char *before, const char *after)
{
    int n = 0;
    for (const char *line = before; *line; line = strchr(line, '\n') + 1) {
        const char *sp = strchr(line, ' ');
        if (*line != '#' && sp && (s_in_name(line, sp, "_total") ||
                                   s_in_name(line, sp, "_bucket{") ||
                                   s_in_name(line, sp, "_sum") || s_in_name(line, sp, "_count"))) {
            char series[256];
            snprintf(series, sizeof series, "%.*s", (int)(sp - line), line);
            double a = tu_prom_value(after, series), b = strtod(sp + 1, NULL);
            ck_assert_msg(a >= b, "%s went from %g to %g", series, b, a);
            n++;
        }
        if (!strchr(line, '\n'))
            break;
    }
    return n;
}

static double s_delta(const char *before, const char *after, const char *series)
{
    double a = tu_prom_value(after, series), b = tu_prom_value(before, series);
    ck_assert_msg(!isnan(a) && !isnan(b), "%s missing from the scrape", series);
    return a - b;
}

/* Acceptance 5: counters and histogram counts move by exactly the requests
 * sent, and by nothing across a reload (which adds itself only). */
START_TEST(counters_move_by_exactly_the_requests)
{
    tu_daemon d;
    tu_daemon_start(&d, s_db, "count.sock", NULL);
    int port = tu_daemon_http_port(&d);
    char *before = s_scrape_settled(port);
    enum { OK = 20, UNKNOWN_USER = 5, BAD_JSON = 3 };
    for (int i = 0; i < OK + UNKNOWN_USER; i++) {
        char req[256];
        snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"%s%04d\",\"candidates\":"
                 "[\"i00001\",\"i00002\",\"zz%d\"],\"k\":2}", i < OK ? "u" : "nobody", 1 + i, i);
        cJSON *r = tu_call_json(d.endpoint, req);
        ck_assert(tu_ok(r));
        cJSON_Delete(r);
    }
    for (int i = 0; i < BAD_JSON; i++) {
        cJSON *r = tu_call_json(d.endpoint, "{\"op\":");
        ck_assert_str_eq(tu_code(r), "bad_json");
        cJSON_Delete(r);
    }
    const int all = OK + UNKNOWN_USER + BAD_JSON, ranks = OK + UNKNOWN_USER;
    char *after = s_scrape_settled(port);
    ck_assert_double_eq(s_delta(before, after, "attnd_requests_total{op=\"rank\",code=\"ok\"}"),
                        ranks);
    ck_assert_double_eq(s_delta(before, after,
                                "attnd_requests_total{op=\"none\",code=\"bad_json\"}"), BAD_JSON);
    ck_assert_double_eq(s_delta(before, after, "attnd_messages_received_total"), all);
    ck_assert_double_eq(s_delta(before, after, "attnd_replies_sent_total"), all);
    ck_assert_double_eq(s_delta(before, after, "attnd_request_duration_seconds_count"), all);
    ck_assert_double_eq(s_delta(before, after,
                                "attnd_request_duration_seconds_bucket{le=\"+Inf\"}"), all);
    const char *stages[] = {"parse", "history", "score", "encode"};
    for (int s = 0; s < 4; s++) {
        char series[128];
        snprintf(series, sizeof series, "attnd_request_stage_duration_seconds_count{stage=\"%s\"}",
                 stages[s]);
        ck_assert_double_eq(s_delta(before, after, series), s == 0 ? all : ranks);
    }
    ck_assert_double_eq(s_delta(before, after, "attnd_rank_candidates_count"), ranks);
    ck_assert_double_eq(s_delta(before, after, "attnd_rank_candidates_sum"), 3 * ranks);
    ck_assert_double_eq(s_delta(before, after, "attnd_rank_history_length_count"), ranks);
    ck_assert_double_eq(s_delta(before, after, "attnd_rank_unknown_candidates_total"), ranks);
    ck_assert_double_eq(s_delta(before, after,
                                "attnd_rank_fallbacks_total{reason=\"unknown_user\"}"),
                        UNKNOWN_USER);
    /* A reload: counters carry on, the reload counts itself, the time moves. */
    cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"reload\"}");
    ck_assert(tu_ok(r));
    cJSON_Delete(r);
    char *reloaded = s_scrape_settled(port);
    ck_assert_int_gt(s_counters_not_lower(after, reloaded), 200);
    ck_assert_double_eq(s_delta(after, reloaded, "attnd_reloads_total"), 1);
    ck_assert_double_eq(s_delta(after, reloaded,
                                "attnd_requests_total{op=\"reload\",code=\"ok\"}"), 1);
    ck_assert_double_eq(s_delta(after, reloaded, "attnd_requests_total{op=\"rank\",code=\"ok\"}"),
                        0);
    ck_assert_double_eq(s_delta(after, reloaded, "attnd_request_duration_seconds_count"), 1);
    ck_assert_double_gt(s_delta(after, reloaded, "attnd_last_reload_timestamp_seconds"), 0);
    ck_assert_double_eq(tu_prom_value(reloaded, "attnd_ready"), 1);
    /* `stats` reads the same registry. */
    r = tu_call_json(d.endpoint, "{\"op\":\"stats\"}");
    ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "ops"), "rank")->valuedouble,
                        tu_prom_value(reloaded, "attnd_requests_total{op=\"rank\",code=\"ok\"}"));
    ck_assert_double_eq(cJSON_GetObjectItem(r, "unknown_candidates")->valuedouble,
                        tu_prom_value(reloaded, "attnd_rank_unknown_candidates_total"));
    cJSON_Delete(r);
    free(before);
    free(after);
    free(reloaded);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* Acceptance 5: /readyz says 503 with the reason while SIGTERM drains the
 * queue; /healthz stays 200; attnd_ready turns 0. */
START_TEST(readyz_flips_during_drain)
{
    tu_daemon d;
    const char *extra[] = {"--workers", "1", "--set", "server.queue_max=100000", NULL};
    tu_daemon_start(&d, s_big, "drain.sock", extra);
    int port = tu_daemon_http_port(&d);
    char *body = NULL;
    ck_assert_int_eq(tu_http_get(port, "/readyz", &body, 2000), 200);
    ck_assert_str_eq(body, "ready\n");
    free(body);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, hwm = 0, tmo = (int)(30000 * tu_slowdown());
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_connect(s, d.endpoint);
    enum { N = 150 };
    static char req[64 * 1024];
    for (int i = 0; i < N; i++) {
        size_t at = (size_t)snprintf(req, sizeof req, "{\"op\":\"rank\",\"id\":%d,\"user\":"
                                     "\"u%04d\",\"k\":1000,\"explain\":10,\"candidates\":[", i,
                                     1 + i % 40);
        for (int c = 0; c < 3000; c++)
            at += (size_t)snprintf(req + at, sizeof req - at, "%s\"i%05d\"", c ? "," : "", 1 + c);
        at += (size_t)snprintf(req + at, sizeof req - at, "]}");
        zmq_send(s, "", 0, ZMQ_SNDMORE);
        zmq_send(s, req, at, 0);
    }
    usleep(200000);
    kill(d.pid, SIGTERM);
    int saw_503 = 0, health = 0;
    double deadline = tu_now() + 2 * tu_slowdown();
    while (!saw_503 && tu_now() < deadline) {
        int status = tu_http_get(port, "/readyz", &body, 1000);
        if (status == 503) {
            saw_503 = 1;
            ck_assert_msg(strstr(body, "not ready: shutting down"), "%s", body);
            health = tu_http_get(port, "/healthz", NULL, 1000);
            char *m = s_scrape(port);
            ck_assert_double_eq(tu_prom_value(m, "attnd_ready"), 0);
            free(m);
        }
        free(body);
    }
    static char buf[1 << 22];
    int got = 0;
    while (got < N && zmq_recv(s, buf, sizeof buf, 0) >= 0 && zmq_recv(s, buf, sizeof buf, 0) >= 0)
        got++;
    zmq_close(s);
    zmq_ctx_term(ctx);
    ck_assert_msg(saw_503, "/readyz never said 503 during the drain");
    ck_assert_int_eq(health, 200);
    ck_assert_int_eq(got, N);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* 1 when the server has closed fd (whatever it said first). */
static int s_closed(int fd)
{
    char buf[512];
    for (int i = 0; i < 100; i++) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return 1;
        if (n < 0)
            return 0;   /* still open: nothing to read */
    }
    return 0;
}

/* Acceptance 1: paths, methods and limits.  Clients that connect and send
 * half a request fill the connection limit: rank requests are answered
 * meanwhile, a further HTTP client waits until the idle ones are cut at
 * the timeout, then is answered. */
START_TEST(listener_paths_and_limits)
{
    tu_daemon d;
    const char *extra[] = {"--set", "metrics.max_connections=4", "--set", "metrics.timeout=1",
                           "--set", "metrics.max_request_bytes=4096", NULL};
    tu_daemon_start(&d, s_db, "limits.sock", extra);
    int port = tu_daemon_http_port(&d);
    char *body = NULL;
    ck_assert_int_eq(tu_http_get(port, "/healthz", &body, 2000), 200);
    ck_assert_str_eq(body, "ok\n");
    free(body);
    ck_assert_int_eq(tu_http_get(port, "/nope", NULL, 2000), 404);
    ck_assert_int_eq(tu_http_get(port, "/metrics/x", NULL, 2000), 404);
    ck_assert_int_eq(tu_http(port, "POST", "/metrics", NULL, 2000), 405);
    ck_assert_int_eq(tu_http(port, "HEAD", "/metrics", &body, 2000), 200);
    ck_assert_str_eq(body, "");
    free(body);
    static char big[16384];
    int n = snprintf(big, sizeof big, "GET /metrics HTTP/1.0\r\nX-Pad: ");
    memset(big + n, 'a', 8000);
    n += 8000;
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n\r\n");
    for (int i = 0; i < 5; i++) {
        int status = tu_http_raw(port, big, (size_t)n, NULL, 2000);
        ck_assert_msg(status == 431, "8 KB of headers: %d", status);
    }
    int idle[4];
    for (int i = 0; i < 4; i++) {
        idle[i] = tu_http_connect(port);
        ck_assert_int_ge(idle[i], 0);
        send(idle[i], "GET /metr", 9, MSG_NOSIGNAL);
    }
    for (int i = 0; i < 20; i++) {
        double t = tu_now();
        cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"rank\",\"user\":\"u0001\","
                                "\"candidates\":[\"i00001\",\"i00002\"]}");
        ck_assert(tu_ok(r));
        cJSON_Delete(r);
        ck_assert_msg(tu_now() - t < 0.5 * tu_slowdown(), "rank waited on the HTTP clients");
    }
    /* A fifth client waits in the listen backlog until the idle ones are
     * cut at metrics.timeout (1 s), then is answered. */
    double t0 = tu_now();
    ck_assert_int_eq(tu_http_get(port, "/metrics", NULL, (int)(4000 * tu_slowdown())), 200);
    ck_assert_msg(tu_now() - t0 > 0.5, "served in %.3f s past a full connection limit",
                  tu_now() - t0);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(s_closed(idle[i]), "idle connection %d not closed", i);
        close(idle[i]);
    }
    body = s_scrape(port);
    free(body);
    /* A second attnd asking for the same address stops at start-up, saying so. */
    char args[1024], out[4096];
    snprintf(args, sizeof args, "--db %s --bind ipc://%s --metrics 127.0.0.1:%d", s_db,
             tu_path("second.sock"), port);
    ck_assert_int_eq(tu_run_program("attnd", args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "metrics.bind") && strstr(out, "in use"), "%s", out);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    /* Five refused requests in a row made one log line, not five. */
    FILE *log = fopen(d.log, "r");
    ck_assert_ptr_nonnull(log);
    char line[1024];
    int http_lines = 0;
    while (fgets(line, sizeof line, log))
        http_lines += strstr(line, "msg=\"http: ") != NULL;
    fclose(log);
    ck_assert_int_eq(http_lines, 1);
    /* metrics.bind empty: no listener, and `info` says so. */
    const char *off[] = {"--set", "metrics.bind=", NULL};
    tu_daemon_start(&d, s_db, "nohttp.sock", off);
    ck_assert_int_eq(tu_daemon_http_port(&d), -1);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *reg = tcase_create("registry");
    tcase_add_test(reg, phist_bounds_are_inclusive);
    tcase_add_test(reg, collect_sums_workers_and_main);
    tcase_add_test(reg, exposition_format);
    tcase_add_test(reg, three_renderings_agree);
    tcase_add_test(reg, config_keys);
    suite_add_tcase(s, reg);
    TCase *tool = tcase_create("promtool");
    tcase_set_timeout(tool, 30 * tu_slowdown());
    tcase_add_test(tool, alert_rules_check);
    tcase_add_test(tool, alert_rules_unit_tests);
    tcase_add_test(tool, rendering_passes_promtool);
    suite_add_tcase(s, tool);
    TCase *http = tcase_create("http");
    tcase_add_unchecked_fixture(http, s_setup, NULL);
    tcase_set_timeout(http, 30 * tu_slowdown());
    tcase_add_test(http, live_scrape_passes_promtool);
    tcase_add_test(http, counters_move_by_exactly_the_requests);
    tcase_add_test(http, readyz_flips_during_drain);
    tcase_add_test(http, listener_paths_and_limits);
    suite_add_tcase(s, http);
    return s;
}

int main(void)
{
    return tu_run(metrics_suite());
}
