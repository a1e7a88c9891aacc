/* fz_record.c -- the record op as attnd's writer thread runs it: parse,
 * stage into the batch, commit, answer (daemon/record.c, daemon/writer.c).
 *
 * The input is one message.  Everything but a record request is left to
 * the request harness; a record request is staged with the writer's
 * resources (a read-write history handle, a read-only connection for item
 * lookups, the batch) over a generated database, committed, and answered.
 *
 * Invariants beyond "no crash":
 *   - the reply is one JSON object, valid UTF-8, with `ok`, or an error of
 *     the protocol's table;
 *   - an acknowledged write is durable and exact: after an `ok` reply a
 *     second connection sees exactly `stored` more events, and stored +
 *     duplicates + rejected is the request's event count; after an error
 *     reply it sees none.
 * A database that took events is copied back from its template before the
 * next input.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "daemon/arena.h"
#include "daemon/config.h"
#include "daemon/log.h"
#include "daemon/ops.h"
#include "daemon/proto.h"
#include "daemon/record.h"
#include "daemon/snapshot.h"
#include "daemon/state.h"
#include "store/hist/hist.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/tu_daemon.h"
#include "util/clock.h"
#include "util/utf8.h"

static srv_state s_st;
static srv_wres s_res = {.index = -1};
static srv_arena s_args;
static srv_json s_out;
static char s_tmpl[600], s_db[700];
static sqlite3 *s_watch;   /* a second connection: sees only what was committed */

static void s_open(void)
{
    store_err err;
    store_hist_sqlite_opts o = {.path = s_db, .busy_ms = 1000, .writable = 1};
    if (store_hist_sqlite_open(&s_res.hist, &o, &err) != STORE_OK ||
        store_open(&s_res.db, s_db, STORE_READONLY, 1000, &err) != STORE_OK)
        fz_fail(__FILE__, __LINE__, "open", "%s", err.msg);
    if (sqlite3_open_v2(s_db, &s_watch, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fz_fail(__FILE__, __LINE__, "sqlite3_open_v2", "%s", s_db);
}

static void s_reset(void)
{
    store_hist_close(&s_res.hist);
    store_close(&s_res.db);
    sqlite3_close(s_watch);
    char side[800];
    snprintf(side, sizeof side, "%s-wal", s_db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", s_db);
    unlink(side);
    fz_copy(s_tmpl, s_db);
    s_open();
}

static int64_t s_events(void)
{
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_prepare_v2(s_watch, "SELECT count(*) FROM interactions", -1, &st, NULL) ==
            SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    FZ_ASSERT(n >= 0, "counting events: %s", sqlite3_errmsg(s_watch));
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    srv_config *cfg = &s_st.cfg;
    char why[600];
    cfg_defaults(cfg);
    if (cfg_set(cfg, "limits.max_record_events", "16", why, sizeof why) != 0 ||
        cfg_set(cfg, "server.log_level", "error", why, sizeof why) != 0)
        fz_fail(__FILE__, __LINE__, "cfg_set", "%s", why);
    srv_log_set_level(cfg->log_level);
    snprintf(s_tmpl, sizeof s_tmpl, "%s", fz_path("record.db"));
    snprintf(s_db, sizeof s_db, "%s.work", s_tmpl);
    snprintf(cfg->db, sizeof cfg->db, "%s", s_db);
    tu_make_db(s_tmpl, 60, 8, 8);
    fz_copy(s_tmpl, s_db);
    srv_arena_install_cjson();
    srv_snapshot *snap;
    if (srv_snapshot_build(cfg, &s_st.exp, &snap, why, sizeof why) != 0)
        fz_fail(__FILE__, __LINE__, "snapshot", "%s", why);
    srv_snapshot_publish(snap);
    s_open();
    s_res.batch = srv_rec_batch_new(cfg);
    if (!s_res.batch || srv_arena_init(&s_args, 1 << 20) != 0 || srv_json_init(&s_out, 1 << 16))
        abort();
    return 0;
}

/* The reply to a record request of n events, and what a second connection
 * sees: before, the event count before the request. */
static void s_check(const char *rep, size_t len, int n, int64_t before)
{
    FZ_ASSERT(util_utf8_valid(rep, len), "reply is not UTF-8: %.200s", rep);
    cJSON *r = cJSON_ParseWithLength(rep, len);
    FZ_ASSERT(cJSON_IsObject(r), "reply is not a JSON object: %.300s", rep);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
    FZ_ASSERT(cJSON_IsBool(ok), "reply without ok: %.300s", rep);
    int64_t after = s_events();
    if (cJSON_IsTrue(ok)) {
        const cJSON *stored = cJSON_GetObjectItemCaseSensitive(r, "stored");
        int dups = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "duplicates"));
        int rej = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "rejected"));
        FZ_ASSERT(cJSON_IsNumber(stored) && stored->valueint + dups + rej == n,
                  "%d events, but the reply accounts for others: %.300s", n, rep);
        FZ_ASSERT(after - before == stored->valueint, "acknowledged %d events, %lld are "
                  "stored", stored->valueint, (long long)(after - before));
    } else {
        FZ_ASSERT(after == before, "an error reply, but %lld events were stored: %.300s",
                  (long long)(after - before), rep);
    }
    cJSON_Delete(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srv_request rq;
    char why[600];
    int code = srv_request_parse((const char *)data, size, &s_st.cfg, &s_args, &rq, why,
                                 sizeof why);
    if (code != SRV_OK || rq.op->run != srv_record_run) {
        srv_arena_reset(&s_args);
        return 0;
    }
    int n = ((const srv_record_args *)rq.args)->n;
    int64_t before = s_events();
    uint64_t stage[SRV_STAGE_COUNT] = {0};
    srv_call c = {.state = &s_st, .res = &s_res, .out = &s_out, .rq = &rq,
                  .t_recv = util_now_ns(), .stage = stage, .outcome = SRV_OUT_REPLY,
                  .role = SRV_ROLE_ADMIN, .arm = -1};
    rq.op->run(&c);
    srv_arena_reset(&s_args);
    if (c.outcome == SRV_OUT_DEFER) {
        srv_rec_batch_report rep;
        store_err err = {0};
        int rc = srv_rec_batch_commit(s_res.batch, s_res.hist, &rep, &err);
        srv_rec_batch_reply(s_res.batch, 0, rc, &err, &s_out);
        srv_rec_batch_reset(s_res.batch);
    }
    if (getenv("FZ_VERBOSE"))   /* for writing seeds: what did this input reach? */
        fprintf(stderr, "reply: %.*s\n", (int)(s_out.len < 300 ? s_out.len : 300), s_out.buf);
    s_check(s_out.buf, s_out.len, n, before);
    if (s_events() != before)
        s_reset();
    return 0;
}
