/* fz_request.c -- a request, as attnd's main thread and a worker see it.
 *
 * The input is one message as a client would send it.  It goes through the
 * main thread's peek (routing, busy replies), the full parse, and a real
 * worker's handle step over a small generated database (the identity model
 * active, a trained one beside it, an experiment over the two, and the
 * trained one again with a feed-forward layer on its block), so every
 * op of the table (daemon/ops.c) runs, rank all the way to the encoded
 * reply.
 *
 * Invariants beyond "no crash, no sanitizer report":
 *   - the peek and the parse never disagree on the op: main routes (and
 *     will check roles) by the peeked op, the worker runs the parsed one;
 *   - every reason and every reply is valid UTF-8, and every reply is one
 *     JSON object with "ok" (or, for reload, the request's id as JSON);
 *   - an error reply carries a code of the protocol's table.
 * Limits are small so that their errors are reachable from short inputs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "daemon/arena.h"
#include "daemon/config.h"
#include "daemon/log.h"
#include "daemon/ops.h"
#include "daemon/proto.h"
#include "daemon/snapshot.h"
#include "daemon/state.h"
#include "daemon/worker.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/tu_daemon.h"
#include "util/clock.h"
#include "util/utf8.h"

static srv_state s_st;
static srv_wstats *s_wstats[1];
static srv_worker *s_worker;
static srv_arena s_args;

static void s_setup_config(srv_config *cfg)
{
    char why[300];
    cfg_defaults(cfg);
    const char *set[][2] = {
        {"server.workers", "1"},           {"server.reload_poll", "0"},
        {"server.log_level", "error"},     {"model.build_threads", "1"},
        {"limits.max_message_bytes", "65536"}, {"limits.max_candidates", "64"},
        {"limits.max_k", "16"},            {"limits.max_explain", "4"},
        {"limits.max_history", "32"},      {"limits.max_seen", "64"},
        {"limits.default_k", "5"},
        /* Versions 1 and 2 (1 with a feed-forward layer) beside the active
         * identity model, and an experiment over the identity and 1, so
         * that "model", "session" and arms are reachable. */
        {"models.serve", "1,2"},             {"experiment.arms", "control:active:1,treat:1:1"},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        if (cfg_set(cfg, set[i][0], set[i][1], why, sizeof why) != 0)
            fz_fail(__FILE__, __LINE__, "cfg_set", "%s", why);
    snprintf(cfg->db, sizeof cfg->db, "%s", fz_path("request.db"));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    srv_config *cfg = &s_st.cfg;
    s_setup_config(cfg);
    srv_log_set_level(cfg->log_level);
    tu_make_db(cfg->db, 120, 12, 8);
    fz_save_model(cfg->db, 2, 3, 5);
    fz_save_model_ffn(cfg->db, 2, 3, 16, 5);
    srv_arena_install_cjson();
    char why[600];
    if (srv_experiment_parse(cfg->exp_arms, cfg->exp_salt, &s_st.exp, why, sizeof why) != 0)
        fz_fail(__FILE__, __LINE__, "experiment", "%s", why);
    srv_snapshot *snap;
    if (srv_snapshot_build(cfg, &s_st.exp, &snap, why, sizeof why) != 0)
        fz_fail(__FILE__, __LINE__, "snapshot", "%s", why);
    srv_snapshot_publish(snap);
    s_st.n_workers = 1;
    s_st.wstats = s_wstats;
    s_st.started_ns = util_now_ns();
    s_worker = srv_worker_start(&s_st, 0, NULL, why, sizeof why);
    if (!s_worker)
        fz_fail(__FILE__, __LINE__, "worker", "%s", why);
    s_wstats[0] = srv_worker_stats(s_worker);
    if (srv_arena_init(&s_args, (size_t)cfg->max_message_bytes * 2 + (1 << 16)) != 0)
        abort();
    return 0;
}

static int s_known_code(const char *code)
{
    for (int c = 1; c < SRV_CODE_COUNT; c++)
        if (!strcmp(code, srv_code_name(c)))
            return 1;
    return 0;
}

/* The reply worker 0 wrote for this request. */
static void s_check_reply(const char *rep, size_t len, int outcome, const char *id_json)
{
    FZ_ASSERT(util_utf8_valid(rep, len), "reply is not UTF-8: %.200s", rep);
    if (outcome == SRV_OUT_RELOAD) {
        FZ_ASSERT(len == strlen(id_json) && !memcmp(rep, id_json, len),
                  "reload hands back '%.*s', the id was %s", (int)len, rep, id_json);
        return;
    }
    cJSON *r = cJSON_ParseWithLength(rep, len);
    FZ_ASSERT(cJSON_IsObject(r), "reply is not a JSON object: %.300s", rep);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
    FZ_ASSERT(cJSON_IsBool(ok), "reply without ok: %.300s", rep);
    FZ_ASSERT(cJSON_GetObjectItemCaseSensitive(r, "id") != NULL, "reply without id: %.300s", rep);
    if (cJSON_IsFalse(ok)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        FZ_ASSERT(cJSON_IsString(code) && s_known_code(code->valuestring),
                  "error reply without a known code: %.300s", rep);
        FZ_ASSERT(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")),
                  "error reply without a message: %.300s", rep);
    }
    cJSON_Delete(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    const srv_op *peek_op;
    char peek_id[SRV_ID_JSON_MAX];
    srv_request_peek(buf, size, &peek_op, peek_id);
    cJSON *pid = cJSON_Parse(peek_id);
    FZ_ASSERT(cJSON_IsString(pid) || cJSON_IsNumber(pid) || cJSON_IsNull(pid),
              "peeked id is not a JSON string, number or null: %s", peek_id);

    srv_request rq;
    char why[600];
    int code = srv_request_parse(buf, size, &s_st.cfg, &s_args, &rq, why, sizeof why);
    srv_arena_reset(&s_args);
    if (code != SRV_OK)
        FZ_ASSERT(util_utf8_valid(why, strlen(why)) && why[0], "bad reason: '%s'", why);
    FZ_ASSERT(!peek_op || !rq.op || peek_op == rq.op,
              "main routes this as '%s' but a worker runs '%s'", peek_op->name, rq.op->name);
    /* A busy reply (peeked id) and a worker's reply (parsed id) echo the same id. */
    if (!cJSON_IsNull(pid) && strcmp(rq.id_json, "null")) {
        cJSON *qid = cJSON_Parse(rq.id_json);
        FZ_ASSERT(cJSON_Compare(pid, qid, 1), "peek reads id %s, the parse %s", peek_id,
                  rq.id_json);
        cJSON_Delete(qid);
    }
    cJSON_Delete(pid);

    int outcome = srv_worker_handle(s_worker, util_now_ns(), SRV_ROLE_ADMIN, buf, size);
    size_t len;
    const char *rep = srv_worker_reply(s_worker, &len);
    if (getenv("FZ_VERBOSE"))   /* for writing seeds: what did this input reach? */
        fprintf(stderr, "reply: %.*s\n", (int)(len < 300 ? len : 300), rep);
    s_check_reply(rep, len, outcome, rq.id_json);
    srv_worker_done(s_worker, util_now_ns());
    return 0;
}
