/* bench_metrics.c -- what metrics cost attnd: the per-request record, the
 * time `stats` holds a worker's lock, a whole scrape, and a worker's record
 * latency while another thread collects flat out.
 *
 *     bench_metrics [--seconds S]      # JSON lines on stdout
 *
 * The scrape path is the daemon's own (srv_metrics_collect without the fine
 * histograms, then srv_prom_write); only the snapshot lookup and the HTTP
 * exchange are left out, and bench/run measures those end to end.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "daemon/metrics.h"
#include "daemon/ops.h"
#include "daemon/prom.h"
#include "util/hist.h"

#define S_MAX_WORKERS 8

static srv_wstats s_ws[S_MAX_WORKERS];
static srv_counters s_counters;

/* A worker's steady state: every bucket of every histogram touched. */
static void s_fill(srv_wstats *ws, int n, bench_rng *r)
{
    int rank = srv_op_row(srv_op_find("rank", 4));
    uint64_t st[SRV_STAGE_COUNT];
    srv_obs o = {.op_row = rank, .code = SRV_OK, .counted = 1, .stage = st, .ranked = 1};
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < SRV_STAGE_COUNT; s++)
            st[s] = 1000 + bench_u64(r) % (1u << (10 + bench_below(r, 20)));
        o.candidates = (int)bench_below(r, 5000);
        o.history = (int)bench_below(r, 200);
        srv_wstats_note(ws, &o);
    }
}

static double s_median(double *x, int n)
{
    bench_stats s = bench_summarise(x, (size_t)n, 1.0);
    return s.p50_us;
}

/* How long `stats` and the log line hold a worker's lock: the merge of its
 * fine histograms.  (A scrape takes no lock: it reads the counts with
 * relaxed atomic loads.) */
static void s_lock_hold(void)
{
    enum { N = 2000 };
    static double t[N];
    static util_hist merged[SRV_STAGE_COUNT];
    for (int i = 0; i < N; i++) {
        uint64_t t0 = util_now_ns();
        pthread_mutex_lock(&s_ws[0].lock);
        for (int s = 0; s < SRV_STAGE_COUNT; s++)
            util_hist_merge(&merged[s], &s_ws[0].stage[s]);
        pthread_mutex_unlock(&s_ws[0].lock);
        t[i] = (double)(util_now_ns() - t0) / 1e3;
    }
    printf("{\"what\":\"lock_hold\",\"bytes\":%zu,\"p50_us\":%.3f}\n",
           sizeof s_ws[0].stage, s_median(t, N));
}

/* A scrape's CPU: collect for w workers, render the text. */
static void s_scrape(int workers, srv_metrics_view *v)
{
    enum { N = 300 };
    static double tc[N], tr[N];
    srv_wstats *ws[S_MAX_WORKERS];
    for (int i = 0; i < workers; i++)
        ws[i] = &s_ws[i];
    size_t bytes = 0;
    for (int i = 0; i < N; i++) {
        uint64_t t0 = util_now_ns();
        srv_metrics_collect(v, ws, workers, &s_counters, 0);
        uint64_t t1 = util_now_ns();
        char *body = NULL;
        FILE *f = open_memstream(&body, &bytes);
        srv_prom_write(v, f);
        fclose(f);
        free(body);
        tc[i] = (double)(t1 - t0) / 1e3;
        tr[i] = (double)(util_now_ns() - t1) / 1e3;
    }
    uint64_t t0 = util_now_ns();
    srv_metrics_collect(v, ws, workers, &s_counters, SRV_COLLECT_QUANTILES);
    double full = (double)(util_now_ns() - t0) / 1e3;
    printf("{\"what\":\"scrape\",\"workers\":%d,\"collect_us\":%.3f,\"render_us\":%.2f,"
           "\"bytes\":%zu,\"collect_with_quantiles_us\":%.1f}\n",
           workers, s_median(tc, N), s_median(tr, N), bytes, full);
}

typedef struct s_race {
    atomic_int stop;
    int flags;              /* the collector's: 0 as a scrape, or with quantiles */
    long collects;
    srv_metrics_view *v;
} s_race;

static void *s_collector(void *arg)
{
    s_race *r = arg;
    srv_wstats *ws[2] = {&s_ws[0], &s_ws[1]};
    while (!atomic_load(&r->stop)) {
        srv_metrics_collect(r->v, ws, 2, &s_counters, r->flags);
        r->collects++;
    }
    return NULL;
}

/* A worker's record (srv_wstats_note) timed one by one: alone, while a
 * second thread collects as a scrape does in a loop, and while it collects
 * with quantiles as `stats` does -- thousands of times a second, far beyond
 * Prometheus' one per 15 s, to show the worst a collector does. */
static void s_note_latency(double seconds, srv_metrics_view *v)
{
    static util_hist h;
    uint64_t st[SRV_STAGE_COUNT] = {5000, 40000, 30000, 8000, 120000};
    srv_obs o = {.op_row = 0, .code = SRV_OK, .counted = 1, .stage = st, .ranked = 1,
                 .candidates = 100, .history = 50};
    static const char *names[] = {"none", "scrape", "stats"};
    for (int mode = 0; mode < 3; mode++) {
        s_race r = {.v = v, .flags = mode == 2 ? SRV_COLLECT_QUANTILES : 0};
        pthread_t t;
        if (mode)
            pthread_create(&t, NULL, s_collector, &r);
        util_hist_reset(&h);
        uint64_t end = util_now_ns() + (uint64_t)(seconds * 1e9);
        while (util_now_ns() < end) {
            uint64_t t0 = util_now_ns();
            srv_wstats_note(&s_ws[0], &o);
            util_hist_add(&h, util_now_ns() - t0);
        }
        if (mode) {
            atomic_store(&r.stop, 1);
            pthread_join(t, NULL);
        }
        printf("{\"what\":\"note\",\"collector\":\"%s\",\"collects_per_s\":%.0f,\"n\":%llu,"
               "\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,\"max_ns\":%llu}\n",
               names[mode], (double)r.collects / seconds, (unsigned long long)h.n,
               (unsigned long long)util_hist_quantile(&h, 0.5),
               (unsigned long long)util_hist_quantile(&h, 0.99),
               (unsigned long long)util_hist_quantile(&h, 0.999), (unsigned long long)h.max);
    }
}

int main(int argc, char **argv)
{
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_metrics [--seconds S]\n");
            return 2;
        }
    }
    bench_rng r = {.s = 1};
    for (int i = 0; i < S_MAX_WORKERS; i++) {
        srv_wstats_init(&s_ws[i]);
        s_fill(&s_ws[i], 100000, &r);
    }
    srv_metrics_view *v = malloc(sizeof *v);
    s_lock_hold();
    s_scrape(2, v);
    s_scrape(8, v);
    s_note_latency(seconds, v);
    for (int i = 0; i < S_MAX_WORKERS; i++)
        srv_wstats_destroy(&s_ws[i]);
    free(v);
    return 0;
}
