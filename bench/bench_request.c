/* bench_request.c -- attnd's request path in-process: a worker's handle
 * step (parse, ids to rows, scoring, encoding, its statistics) on one
 * thread, without ZeroMQ, over the daemon's own snapshot of a database.
 *
 *     bench_request --db P1.db [--seconds S | --requests N] [--rounds R] [--warmup N]
 *                   [--parse fast|json]
 *                   [--history 50] [--candidates 100] [--k 10] [--explain 0]
 *
 * Requests are attn-load's (clients/cli_sample.c: the same sampler, the same
 * "id" in front), a pool of 1,024 drawn from the database, sent in random
 * order so that catalog rows are as cold as a server would find them.  One
 * JSON line per round: requests/s, the handle step's time per request and
 * each stage's (mean and p50, from the worker's own stage histograms, the
 * ones `stats` reports), and the time outside attn_score -- what the issue
 * calls request handling.  `--parse json` forces the general cJSON parser
 * (srv_request_parse_json) for the before/after comparison.
 *
 * For instruction counts, a fixed number of requests under callgrind:
 *     valgrind --tool=callgrind --toggle-collect=srv_worker_handle \
 *         bench_request --db P1.db --requests 3000 --rounds 1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "clients/cli.h"
#include "daemon/arena.h"
#include "daemon/config.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/ops.h"
#include "daemon/proto.h"
#include "daemon/snapshot.h"
#include "daemon/state.h"
#include "daemon/worker.h"

#define S_POOL 1024

typedef struct s_args {
    const char *db;
    double seconds;
    long requests;
    int rounds, warmup, history, candidates, k, explain;
    const char *parse;
} s_args;

static void s_usage(void)
{
    fprintf(stderr, "usage: bench_request --db PATH [--seconds S | --requests N] [--rounds R]\n"
                    "                     [--warmup N] [--parse fast|json] [--history L] [--candidates N]\n"
                    "                     [--k K] [--explain E]\n");
    exit(2);
}

static void s_parse_args(int argc, char **argv, s_args *a)
{
    *a = (s_args){.seconds = 1.0, .rounds = 3, .warmup = 2000, .history = 50, .candidates = 100, .k = 10,
                  .parse = "fast"};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            s_usage();
        if (!strcmp(argv[i], "--db"))
            a->db = v;
        else if (!strcmp(argv[i], "--seconds"))
            a->seconds = atof(v);
        else if (!strcmp(argv[i], "--requests"))
            a->requests = atol(v);
        else if (!strcmp(argv[i], "--rounds"))
            a->rounds = atoi(v);
        else if (!strcmp(argv[i], "--warmup"))
            a->warmup = atoi(v);
        else if (!strcmp(argv[i], "--history"))
            a->history = atoi(v);
        else if (!strcmp(argv[i], "--candidates"))
            a->candidates = atoi(v);
        else if (!strcmp(argv[i], "--k"))
            a->k = atoi(v);
        else if (!strcmp(argv[i], "--explain"))
            a->explain = atoi(v);
        else if (!strcmp(argv[i], "--parse"))
            a->parse = v;
        else
            s_usage();
        i++;
    }
    if (!a->db || a->rounds < 1 || (strcmp(a->parse, "fast") && strcmp(a->parse, "json")))
        s_usage();
}

/* attn-load's requests, with the "id" its pipe puts in front. */
static char **s_pool(const s_args *a, size_t *lens)
{
    cli_err err;
    cli_sampler *smp = cli_sampler_db(a->db, a->candidates, a->history, a->k, a->explain, 1,
                                      &err);
    if (!smp) {
        fprintf(stderr, "bench_request: %s\n", err.msg);
        exit(1);
    }
    char **pool = calloc(S_POOL, sizeof *pool);
    for (int i = 0; pool && i < S_POOL; i++) {
        size_t len;
        const char *body = cli_sampler_next(smp, &len);
        pool[i] = malloc(len + 32);
        if (!body || !pool[i])
            break;
        int n = snprintf(pool[i], 32, "{\"id\":\"l%d\",", 1000000 + i);
        memcpy(pool[i] + n, body + 1, len - 1);
        lens[i] = (size_t)n + len - 1;
        pool[i][lens[i]] = 0;
    }
    cli_sampler_destroy(&smp);
    if (!pool || !pool[S_POOL - 1]) {
        fprintf(stderr, "bench_request: out of memory for the request pool\n");
        exit(1);
    }
    return pool;
}

static srv_worker *s_worker(srv_state *st, srv_wstats **ws, const s_args *a)
{
    char why[600];
    srv_config *cfg = &st->cfg;
    cfg_defaults(cfg);
    if (cfg_set(cfg, "server.log_level", "error", why, sizeof why) ||
        cfg_set(cfg, "server.reload_poll", "0", why, sizeof why)) {
        fprintf(stderr, "bench_request: %s\n", why);
        exit(1);
    }
    snprintf(cfg->db, sizeof cfg->db, "%s", a->db);
    srv_log_set_level(cfg->log_level);
    srv_arena_install_cjson();
    srv_snapshot *snap;
    if (srv_experiment_parse(cfg->exp_arms, cfg->exp_salt, &st->exp, why, sizeof why) ||
        srv_snapshot_build(cfg, &st->exp, &snap, why, sizeof why)) {
        fprintf(stderr, "bench_request: %s\n", why);
        exit(1);
    }
    srv_snapshot_publish(snap);
    st->n_workers = st->n_wstats = 1;
    st->wstats = ws;
    st->started_ns = util_now_ns();
    srv_worker *w = srv_worker_start(st, 0, NULL, why, sizeof why);
    if (!w) {
        fprintf(stderr, "bench_request: %s\n", why);
        exit(1);
    }
    ws[0] = srv_worker_stats(w);
    return w;
}

/* One request through the worker, as main runs it: handle, then done. */
static void s_one(srv_worker *w, const char *buf, size_t len)
{
    uint64_t t = util_now_ns();
    srv_worker_handle(w, t, SRV_ROLE_ADMIN, buf, len);
    srv_worker_done(w, t);
}

static void s_check_reply(srv_worker *w)
{
    size_t len;
    const char *rep = srv_worker_reply(w, &len);
    if (len < 20 || !strstr(rep, "\"ok\":true") || !strstr(rep, "\"fallback\":null")) {
        fprintf(stderr, "bench_request: the request was not ranked: %.300s\n", rep);
        exit(1);
    }
}

static util_hist s_before[SRV_STAGE_COUNT], s_during[SRV_STAGE_COUNT];

static void s_round(srv_worker *w, char **pool, const size_t *lens, const s_args *a, int round,
                    bench_rng *r)
{
    srv_wstats *ws = srv_worker_stats(w);
    memcpy(s_before, ws->stage, sizeof s_before);
    size_t cap = a->requests > 0 ? (size_t)a->requests : 4000000;
    double *us = bench_alloc(cap * sizeof *us);
    size_t n = 0;
    uint64_t t_end = util_now_ns() + (uint64_t)(a->seconds * 1e9), t0 = util_now_ns();
    while (n < cap && (a->requests > 0 || util_now_ns() < t_end)) {
        uint32_t i = bench_below(r, S_POOL);
        uint64_t t = util_now_ns();
        s_one(w, pool[i], lens[i]);
        us[n++] = (double)(util_now_ns() - t) / 1e3;
    }
    double wall = (double)(util_now_ns() - t0) / 1e9;
    s_check_reply(w);
    memcpy(s_during, ws->stage, sizeof s_during);
    bench_stats st = bench_summarise(us, n, wall);
    printf("{\"what\":\"request\",\"parse\":\"%s\",\"round\":%d,\"requests\":%zu,"
           "\"rps\":%.0f,\"rps_wall\":%.0f,\"cut\":%zu,\"handle_p50_us\":%.3f,"
           "\"handle_mean_us\":%.3f", a->parse, round, n, st.rps, st.rps_wall, st.cut,
           st.p50_us, st.mean_us);
    double score_mean = 0, score_p50 = 0;
    for (int s = 0; s < SRV_STAGE_TOTAL; s++) {
        util_hist_sub(&s_during[s], &s_before[s]);
        double mean = s_during[s].n ? (double)s_during[s].sum / (double)s_during[s].n / 1e3 : 0;
        double p50 = (double)util_hist_quantile(&s_during[s], 0.5) / 1e3;
        printf(",\"%s_mean_us\":%.3f,\"%s_p50_us\":%.3f", srv_stage_name(s), mean,
               srv_stage_name(s), p50);
        if (s == SRV_STAGE_SCORE) {
            score_mean = mean;
            score_p50 = p50;
        }
    }
    printf(",\"outside_score_mean_us\":%.3f,\"outside_score_p50_us\":%.3f}\n",
           st.mean_us - score_mean, st.p50_us - score_p50);
    fflush(stdout);
    free(us);
}

int main(int argc, char **argv)
{
    s_args a;
    s_parse_args(argc, argv, &a);
    static srv_state st;
    srv_wstats *ws[1];
    srv_worker *w = s_worker(&st, ws, &a);
    srv_request_set_fast(!strcmp(a.parse, "fast"));
    size_t lens[S_POOL];
    char **pool = s_pool(&a, lens);
    bench_rng r = {.s = 7};
    for (int i = 0; i < a.warmup; i++) {   /* warm-up: caches, the scratch, the branch predictors */
        uint32_t j = bench_below(&r, S_POOL);
        s_one(w, pool[j], lens[j]);
    }
    s_check_reply(w);
    for (int round = 0; round < a.rounds; round++)
        s_round(w, pool, lens, &a, round, &r);
    srv_worker_join(&w);
    srv_snapshot_publish(NULL);
    for (int i = 0; i < S_POOL; i++)
        free(pool[i]);
    free(pool);
    return 0;
}
