/* cli_load.c -- attn-load's engine: closed and open loop over one DEALER.
 *
 * Closed loop: keep `clients` requests in flight; each reply sends the next.
 * It measures what C concurrent users see, but a stalled server also stalls
 * the senders, so the requests that would have queued during the stall are
 * never sent and never measured (coordinated omission).
 *
 * Open loop: request i is due at t0 + i/rate whatever happens.  Its latency
 * is measured from that intended time, not from when it actually left, so a
 * stall (in the server, the network or this client) shows up as the queueing
 * it really causes.  Late sends are counted and the worst lag reported: when
 * the client itself cannot keep the rate the report says so.
 *
 * Both loops run one thread on one socket; waits are ppoll on the socket's
 * fd with microsecond deadlines (cli_pipe_wait) and the timer slack is cut to
 * 1 µs so that the kernel does not batch our wake-ups by its default 50 µs.
 */
#include "clients/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <zmq.h>

void cli_load_opts_init(cli_load_opts *o)
{
    memset(o, 0, sizeof *o);
    cli_endpoints_parse(CLI_DEFAULT_ENDPOINT, &o->eps, NULL);
    o->clients = 16;
    o->duration_s = 10;
    o->warmup_s = 1;
    o->timeout_ms = 2000;
    o->max_inflight = 10000;
}

static void s_count(cJSON **map, const char *code)
{
    if (!*map && !(*map = cJSON_CreateObject()))
        return;
    cJSON *n = cJSON_GetObjectItemCaseSensitive(*map, code);
    if (n)
        cJSON_SetNumberValue(n, n->valuedouble + 1);
    else
        cJSON_AddNumberToObject(*map, code, 1);
}

static int s_check_opts(const cli_load_opts *o, cli_err *err)
{
    if ((o->clients > 0) == (o->rate > 0))
        return cli_fail(err, CLI_INVAL, "give exactly one of --clients C and --rate R");
    if (o->clients < 0 || o->clients > 100000)
        return cli_fail(err, CLI_INVAL, "--clients: %d is outside 1..100000", o->clients);
    if (o->rate < 0 || o->rate > 10e6)
        return cli_fail(err, CLI_INVAL, "--rate: %g is outside 0..10000000", o->rate);
    if ((o->duration_s > 0) == (o->requests > 0))
        return cli_fail(err, CLI_INVAL, "give exactly one of --duration S and --requests N");
    if (o->warmup_s < 0 || o->timeout_ms < 1)
        return cli_fail(err, CLI_INVAL, "--warmup must be >= 0 and --timeout >= 1");
    if (o->rate > 0 && (o->max_inflight < 1 || o->max_inflight > 1000000))
        return cli_fail(err, CLI_INVAL, "--max-inflight: %d is outside 1..1000000",
                        o->max_inflight);
    return CLI_OK;
}

/* One run's mutable state. */
typedef struct s_run {
    const cli_load_opts *o;
    cli_load_result *res;
    cli_sampler *src;
    cli_pipe *pipe;
    int64_t t0;             /* start: warm-up begins */
    int64_t measure_from;   /* warm-up ends */
    int64_t send_until;     /* duration mode: no sends due after this */
    double interval_us;     /* open loop: between intended sends */
    uint64_t seq;           /* requests sent (= next key) */
    uint64_t measured_sent; /* sends that count */
    int64_t last_reply;     /* when any reply last arrived */
    int64_t last_measured;  /* when the last counted event happened */
    int64_t stall_us;       /* nothing answering this long: stop */
    int64_t blocked_since;  /* when sends started to find no peer, 0 = not blocked */
    int stalled;            /* a request timed out with nothing answering since */
} s_run;

static int s_sending(const s_run *r, int64_t due)
{
    if (r->o->requests)
        return r->measured_sent < r->o->requests;
    return due < r->send_until;
}

/* Send one request stamped with its intended time.  CLI_OK, CLI_AGAIN
 * (no peer can take it now), or a failure. */
static int s_send(s_run *r, int64_t due, int64_t now)
{
    size_t len;
    const char *body = cli_sampler_next(r->src, &len);
    if (!body)
        return CLI_NOMEM;
    int rc = cli_pipe_send(r->pipe, r->seq, body, len, due,
                           due + (int64_t)r->o->timeout_ms * 1000);
    if (rc != CLI_OK)
        return rc;
    r->seq++;
    if (due >= r->measure_from) {
        r->measured_sent++;
        r->res->sent++;
        if (r->res->open_loop) {
            int64_t lag = now - due;
            if (lag > 1000)
                r->res->late_sends++;
            if (lag > r->res->max_send_lag_us)
                r->res->max_send_lag_us = lag;
        }
    }
    return CLI_OK;
}

/* A record reply ("stored") or another op's, for the per-op figures. */
static void s_by_op(cli_load_result *res, const cJSON *reply, uint64_t ns)
{
    const cJSON *stored = cJSON_GetObjectItemCaseSensitive(reply, "stored");
    if (!cJSON_IsNumber(stored)) {
        util_hist_add(&res->lat_other, ns);
        const cJSON *took = cJSON_GetObjectItemCaseSensitive(reply, "took_us");
        if (cJSON_IsNumber(took) && took->valuedouble >= 0)
            util_hist_add(&res->lat_server, (uint64_t)(took->valuedouble * 1000));
        return;
    }
    res->record_ok++;
    res->record_stored += (uint64_t)stored->valuedouble;
    res->record_events +=
        (uint64_t)stored->valuedouble +
        (uint64_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "duplicates")) +
        (uint64_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "rejected"));
    util_hist_add(&res->lat_record, ns);
}

static void s_on_event(s_run *r, cli_pipe_event *ev)
{
    cli_load_result *res = r->res;
    int measured = ev->stamp >= r->measure_from;
    if (ev->kind == CLI_EV_REPLY)
        r->last_reply = ev->at_us;
    else if (r->last_reply < ev->sent_us && ev->at_us - r->last_reply > r->stall_us)
        r->stalled = 1;   /* not one reply since this request went out */
    if (measured)
        r->last_measured = ev->at_us;
    if (!measured) {
        cJSON_Delete(ev->json);
        return;
    }
    if (ev->kind == CLI_EV_TIMEOUT) {
        res->timeouts++;
        return;
    }
    res->replies++;
    const char *code;
    int status = cli_reply_status(ev->json, &code, NULL);
    if (status == 1) {
        res->ok++;
        /* From the intended send time (= the actual one in closed loop). */
        uint64_t ns = (uint64_t)(ev->at_us - ev->stamp) * 1000;
        util_hist_add(&res->lat, ns);
        s_by_op(res, ev->json, ns);
    } else if (status == 0) {
        if (!strcmp(code, "busy"))
            res->busy++;
        s_count(&res->errors, code);
    } else {
        s_count(&res->errors, "bad_reply");
    }
    cJSON_Delete(ev->json);
}

static int s_loop(s_run *r, cli_err *err)
{
    const cli_load_opts *o = r->o;
    int open = r->res->open_loop;
    for (;;) {
        if (o->stop && *o->stop)
            return cli_fail(err, CLI_STOPPED, "interrupted");
        int64_t now = cli_now_us();
        int blocked = 0, more = 0, sent_now = 0;
        int64_t next_due = INT64_MAX;
        if (open) {
            for (;;) {
                int64_t due = r->t0 + (int64_t)llround((double)r->seq * r->interval_us);
                if (!s_sending(r, due))
                    break;
                more = 1;
                if (due > now) {
                    next_due = due;
                    break;
                }
                if ((int)cli_pipe_inflight(r->pipe) >= o->max_inflight) {
                    break;   /* late: the lag counts in its latency */
                }
                int rc = s_send(r, due, now);
                if (rc == CLI_AGAIN) {
                    blocked = 1;
                    break;
                }
                if (rc != CLI_OK)
                    return cli_fail(err, rc, "send failed: %s", cli_strerror(rc));
                now = cli_now_us();
                if (++sent_now == 64) {   /* behind schedule: let replies in */
                    next_due = now;
                    break;
                }
            }
        } else {
            while ((more = s_sending(r, now)) && (int)cli_pipe_inflight(r->pipe) < o->clients) {
                int rc = s_send(r, now, now);
                if (rc == CLI_AGAIN) {
                    blocked = 1;
                    break;
                }
                if (rc != CLI_OK)
                    return cli_fail(err, rc, "send failed: %s", cli_strerror(rc));
                now = cli_now_us();
            }
            if (more && o->duration_s > 0 && r->send_until < next_due)
                next_due = r->send_until;
        }
        if (!more && cli_pipe_inflight(r->pipe) == 0)
            return CLI_OK;
        if (!blocked)
            r->blocked_since = 0;
        else if (!r->blocked_since)
            r->blocked_since = now;
        if (r->stalled || (r->blocked_since && now - r->blocked_since > r->stall_us)) {
            char eps[1024];
            r->res->stalled = 1;
            return cli_fail(err, CLI_STOPPED, "no reply from %s within %lld ms; stopping",
                            cli_endpoints_str(&o->eps, eps, sizeof eps),
                            (long long)(r->stall_us / 1000));
        }
        /* Wake for the next due send, or in 100 ms to look at the flags. */
        int64_t until = now + 100000;
        if (next_due < until)
            until = next_due;
        cli_pipe_event ev;
        int rc = cli_pipe_wait(r->pipe, until, blocked, &ev);
        if (rc == CLI_ZMQ)
            return cli_fail(err, CLI_ZMQ, "receive failed: %s", zmq_strerror(errno));
        /* Then whatever else is already here, without waiting: replies
         * must not queue behind a burst of sends. */
        for (int n = 0; rc == CLI_OK;) {
            s_on_event(r, &ev);
            if (++n == 64)
                break;
            rc = cli_pipe_wait(r->pipe, 0, 0, &ev);
        }
        if (rc == CLI_ZMQ)
            return cli_fail(err, CLI_ZMQ, "receive failed: %s", zmq_strerror(errno));
    }
}

int cli_load_run(void *zmq_ctx, const cli_load_opts *o, cli_sampler *src,
                 cli_load_result *res, cli_err *err)
{
    memset(res, 0, sizeof *res);
    util_hist_reset(&res->lat);
    util_hist_reset(&res->lat_record);
    util_hist_reset(&res->lat_other);
    util_hist_reset(&res->lat_server);
    int rc = s_check_opts(o, err);
    if (rc != CLI_OK)
        return rc;
    res->open_loop = o->rate > 0;
    if ((rc = cli_probe(zmq_ctx, &o->eps, o->timeout_ms, 1, NULL, err)) != CLI_OK)
        return rc;
    size_t cap = res->open_loop ? (size_t)o->max_inflight : (size_t)o->clients;
    s_run r = {.o = o, .res = res, .src = src};
    if (!(r.pipe = cli_pipe_new(zmq_ctx, &o->eps, "l", cap, err)))
        return err ? err->code : CLI_ZMQ;
    /* Our wake-ups are the schedule; don't let the kernel round them. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    r.t0 = cli_now_us();
    r.measure_from = r.t0 + (int64_t)(o->warmup_s * 1e6);
    r.send_until = o->duration_s > 0 ? r.measure_from + (int64_t)(o->duration_s * 1e6)
                                     : INT64_MAX;
    r.interval_us = res->open_loop ? 1e6 / o->rate : 0;
    r.last_reply = r.t0;
    r.stall_us = 2LL * o->timeout_ms * 1000 > 1000000 ? 2LL * o->timeout_ms * 1000 : 1000000;
    r.last_measured = r.measure_from;
    rc = s_loop(&r, err);
    res->stale = cli_pipe_stale(r.pipe);
    int64_t end = r.last_measured;
    if (o->duration_s > 0 && rc == CLI_OK && end < r.send_until)
        end = r.send_until;
    res->seconds = end > r.measure_from ? (double)(end - r.measure_from) / 1e6 : 0;
    cli_pipe_destroy(&r.pipe);
    return rc;
}

/* ---- report ----------------------------------------------------------------- */

static double s_q_ms(const util_hist *h, double q)
{
    return (double)util_hist_quantile(h, q) / 1e6;
}

static void s_print_lat(FILE *out, const char *label, const util_hist *h)
{
    if (h->n)
        fprintf(out, "%-12s %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", label, s_q_ms(h, 0.5),
                s_q_ms(h, 0.9), s_q_ms(h, 0.99), s_q_ms(h, 0.999), (double)h->max / 1e6,
                (double)h->sum / (double)h->n / 1e6);
}

void cli_load_print(FILE *out, const cli_load_opts *o, const cli_load_result *res)
{
    char eps[1024];
    double s = res->seconds > 0 ? res->seconds : 1e-9;
    uint64_t errors = res->replies - res->ok;
    if (res->open_loop)
        fprintf(out, "mode         open loop, %.0f req/s intended (latency from intended send time)\n",
                o->rate);
    else
        fprintf(out, "mode         closed loop, %d in flight\n", o->clients);
    fprintf(out, "endpoint     %s\n", cli_endpoints_str(&o->eps, eps, sizeof eps));
    fprintf(out, "measured     %.2f s after %.1f s warm-up%s\n", res->seconds, o->warmup_s,
            res->stalled ? " (stopped: no replies)" : "");
    fprintf(out, "requests     %llu sent, %llu answered, %llu ok, %llu errors, %llu timeouts\n",
            (unsigned long long)res->sent, (unsigned long long)res->replies,
            (unsigned long long)res->ok, (unsigned long long)errors,
            (unsigned long long)res->timeouts);
    fprintf(out, "throughput   %.0f req/s answered, %.0f req/s ok\n", (double)res->replies / s,
            (double)res->ok / s);
    if (res->lat.n) {
        fprintf(out, "latency ms   %9s %9s %9s %9s %9s %9s\n", "p50", "p90", "p99", "p99.9",
                "max", "mean");
        s_print_lat(out, "  (ok only)", &res->lat);
        if (res->lat_server.n)
            s_print_lat(out, "  in attnd", &res->lat_server);
    } else {
        fprintf(out, "latency      no ok replies\n");
    }
    if (res->record_ok) {
        fprintf(out, "record       %llu ok replies acknowledged %llu events (%llu stored): "
                "%.0f events/s\n", (unsigned long long)res->record_ok,
                (unsigned long long)res->record_events, (unsigned long long)res->record_stored,
                (double)res->record_events / s);
        s_print_lat(out, "  record ms", &res->lat_record);
        s_print_lat(out, "  other ms", &res->lat_other);
    }
    if (res->errors) {
        fprintf(out, "errors      ");
        const cJSON *e;
        cJSON_ArrayForEach(e, res->errors)
            fprintf(out, " %s %.0f%s", e->string, e->valuedouble, e->next ? "," : "");
        fprintf(out, "\n");
    }
    if (res->busy)
        fprintf(out, "busy         %llu replies (%.2f%% of answered): the daemon shed load\n",
                (unsigned long long)res->busy,
                100.0 * (double)res->busy / (double)(res->replies ? res->replies : 1));
    if (res->open_loop) {
        fprintf(out, "send lag     %llu sends more than 1 ms late, worst %.3f ms\n",
                (unsigned long long)res->late_sends, (double)res->max_send_lag_us / 1e3);
        double achieved = (double)res->sent / s;
        if (res->sent && achieved < 0.95 * o->rate)
            fprintf(out, "WARNING      sent %.0f req/s of %.0f intended: the client could not "
                    "keep the rate (see --max-inflight, or run more clients)\n",
                    achieved, o->rate);
    }
    if (res->stale)
        fprintf(out, "late         %llu replies arrived after their timeout\n",
                (unsigned long long)res->stale);
}

/* {p50, p90, p99, p999, max, mean, n} in microseconds, to 10 ns. */
static void s_lat_json(cJSON *parent, const char *key, const util_hist *h)
{
    cJSON *lat = cJSON_AddObjectToObject(parent, key);
    static const struct { const char *k; double q; } qs[] = {
        {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p999", 0.999}};
    for (size_t i = 0; lat && i < sizeof qs / sizeof qs[0]; i++)
        cJSON_AddNumberToObject(lat, qs[i].k,
                                round((double)util_hist_quantile(h, qs[i].q) / 10) / 100);
    if (lat) {
        cJSON_AddNumberToObject(lat, "max", round((double)h->max / 10) / 100);
        cJSON_AddNumberToObject(lat, "mean",
                                h->n ? round((double)h->sum / (double)h->n / 10) / 100 : 0);
        cJSON_AddNumberToObject(lat, "n", (double)h->n);
    }
}

cJSON *cli_load_json(const cli_load_opts *o, const cli_load_result *res)
{
    cJSON *j = cJSON_CreateObject(), *eps = cJSON_AddArrayToObject(j, "endpoints");
    for (int i = 0; eps && i < o->eps.n; i++)
        cJSON_AddItemToArray(eps, cJSON_CreateString(o->eps.v[i]));
    double s = res->seconds > 0 ? res->seconds : 1e-9;
    cJSON_AddStringToObject(j, "mode", res->open_loop ? "open" : "closed");
    if (res->open_loop) {
        cJSON_AddNumberToObject(j, "rate", o->rate);
        cJSON_AddNullToObject(j, "clients");
    } else {
        cJSON_AddNullToObject(j, "rate");
        cJSON_AddNumberToObject(j, "clients", o->clients);
    }
    cJSON_AddNumberToObject(j, "warmup_s", o->warmup_s);
    cJSON_AddNumberToObject(j, "seconds", res->seconds);
    cJSON_AddNumberToObject(j, "sent", (double)res->sent);
    cJSON_AddNumberToObject(j, "answered", (double)res->replies);
    cJSON_AddNumberToObject(j, "ok", (double)res->ok);
    cJSON_AddNumberToObject(j, "timeouts", (double)res->timeouts);
    cJSON_AddNumberToObject(j, "busy", (double)res->busy);
    cJSON_AddItemToObject(j, "errors",
                          res->errors ? cJSON_Duplicate(res->errors, 1) : cJSON_CreateObject());
    cJSON_AddNumberToObject(j, "throughput_rps", (double)res->replies / s);
    cJSON_AddNumberToObject(j, "ok_rps", (double)res->ok / s);
    s_lat_json(j, "latency_us", &res->lat);
    if (res->lat_server.n)
        s_lat_json(j, "server_us", &res->lat_server);
    if (res->record_ok) {
        cJSON *rec = cJSON_AddObjectToObject(j, "record");
        cJSON_AddNumberToObject(rec, "ok", (double)res->record_ok);
        cJSON_AddNumberToObject(rec, "events", (double)res->record_events);
        cJSON_AddNumberToObject(rec, "stored", (double)res->record_stored);
        cJSON_AddNumberToObject(rec, "events_per_s", (double)res->record_events / s);
        s_lat_json(rec, "latency_us", &res->lat_record);
        cJSON *other = cJSON_AddObjectToObject(j, "other");
        cJSON_AddNumberToObject(other, "ok", (double)(res->ok - res->record_ok));
        s_lat_json(other, "latency_us", &res->lat_other);
    }
    if (res->open_loop) {
        cJSON_AddNumberToObject(j, "late_sends", (double)res->late_sends);
        cJSON_AddNumberToObject(j, "max_send_lag_us", (double)res->max_send_lag_us);
    }
    cJSON_AddNumberToObject(j, "late_replies", (double)res->stale);
    cJSON_AddBoolToObject(j, "stalled", res->stalled);
    return j;
}
