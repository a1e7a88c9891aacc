/* check_daemon.c -- the daemon's pieces in isolation: configuration table,
 * request parsing, the JSON writer and the parse arena.  The daemon as a
 * whole is exercised over sockets by check_e2e. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/arena.h"
#include "daemon/config.h"
#include "daemon/json_out.h"
#include "daemon/ops.h"
#include "daemon/proto.h"
#include "daemon/rank.h"
#include "daemon/record.h"
#include "daemon/reply.h"
#include "tests/testutil.h"
#include "util/utf8.h"

START_TEST(config_defaults_and_set)
{
    srv_config cfg;
    char why[256];
    cfg_defaults(&cfg);
    ck_assert_str_eq(cfg.bind, "tcp://127.0.0.1:5555");
    ck_assert_int_eq(cfg.max_k, 1000);
    ck_assert_int_eq(cfg.default_k, 10);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), 0);
    ck_assert_int_eq(cfg_set(&cfg, "limits.max_k", "50", why, sizeof why), 0);
    ck_assert_int_eq(cfg.max_k, 50);
    ck_assert_int_eq(cfg_set(&cfg, "limits.max_k", "0", why, sizeof why), -1);
    ck_assert_msg(strstr(why, "limits.max_k") && strstr(why, "1.."), "%s", why);
    ck_assert_int_eq(cfg_set(&cfg, "limits.max_k", "12abc", why, sizeof why), -1);
    ck_assert_int_eq(cfg_set(&cfg, "server.metrics_interval", "nan", why, sizeof why), -1);
    ck_assert_int_eq(cfg_set(&cfg, "model.precompute", "some", why, sizeof why), -1);
    ck_assert_msg(strstr(why, "all, none"), "%s", why);
    ck_assert_int_eq(cfg_set(&cfg, "model.precompute", "none", why, sizeof why), 0);
    ck_assert_int_eq(cfg.precompute, CFG_PRECOMPUTE_NONE);
    ck_assert_int_eq(cfg_set(&cfg, "nope.key", "1", why, sizeof why), -1);
    ck_assert_msg(strstr(why, "nope.key"), "%s", why);
    ck_assert_int_eq(cfg_set(&cfg, "limits.default_k", "60", why, sizeof why), 0);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "default_k"), "%s", why);
    cfg_defaults(&cfg);
    ck_assert_int_eq(cfg_set(&cfg, "server.bind", "http://x", why, sizeof why), 0);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), -1);
}
END_TEST

START_TEST(config_file_errors_name_the_line)
{
    srv_config cfg;
    char why[256];
    cfg_defaults(&cfg);
    const char *good = "; comment\n[server]\nworkers = 3\n[limits]\nmax_k = 20\n";
    tu_write_file(tu_path("good.conf"), good, strlen(good));
    ck_assert_int_eq(cfg_load_file(&cfg, tu_path("good.conf"), why, sizeof why), 0);
    ck_assert_int_eq(cfg.workers, 3);
    ck_assert_int_eq(cfg.max_k, 20);
    const char *bad = "[server]\nworkers = 3\nthis line is wrong\n";
    tu_write_file(tu_path("bad.conf"), bad, strlen(bad));
    ck_assert_int_eq(cfg_load_file(&cfg, tu_path("bad.conf"), why, sizeof why), -1);
    ck_assert_msg(strstr(why, "bad.conf:3"), "%s", why);
    const char *nosec = "workers = 3\n";
    tu_write_file(tu_path("nosec.conf"), nosec, strlen(nosec));
    ck_assert_int_eq(cfg_load_file(&cfg, tu_path("nosec.conf"), why, sizeof why), -1);
    ck_assert_msg(strstr(why, "nosec.conf:1") && strstr(why, "section"), "%s", why);
    ck_assert_int_eq(cfg_load_file(&cfg, tu_path("absent.conf"), why, sizeof why), -1);
    ck_assert_msg(strstr(why, "absent.conf") && strstr(why, "cannot open"), "%s", why);
}
END_TEST

START_TEST(config_table_is_consistent)
{
    /* Each default is within its own bounds: the setter accepts it (a
     * default of 700000 for a key bounded by 600000 fails here), and
     * cfg_set accepts the printed value back. */
    srv_config cfg, copy;
    char why[256];
    ck_assert_msg(cfg_defaults_checked(&cfg, why, sizeof why) == 0, "%s", why);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cfg_print(&cfg, f);
    fclose(f);
    int keys = 0;
    copy = cfg;
    char *save = NULL, section[32] = "";
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '[') {
            snprintf(section, sizeof section, "%.*s", (int)(strlen(line) - 2), line + 1);
            continue;
        }
        /* Comments are wrapped: inih would read the part of a line past
         * 200 bytes as a line of its own, and the printout must load. */
        if (line[0] == ';')
            ck_assert_msg(strlen(line) <= 80, "printed comment of %zu bytes: %s", strlen(line),
                          line);
        char *eq = strstr(line, " = ");
        if (line[0] == ';' || !eq)
            continue;
        char key[128];
        snprintf(key, sizeof key, "%s.%.*s", section, (int)(eq - line), line);
        ck_assert_msg(cfg_set(&copy, key, eq + 3, why, sizeof why) == 0, "%s", why);
        keys++;
    }
    free(buf);
    ck_assert_int_eq(keys, cfg_key_count());
    ck_assert_mem_eq(&copy, &cfg, sizeof cfg);
}
END_TEST

START_TEST(json_writer)
{
    srv_json w;
    ck_assert_int_eq(srv_json_init(&w, 4), 0);  /* tiny: forces growth */
    srv_json_open(&w, '{');
    srv_json_key(&w, "s");
    srv_json_cstr(&w, "a\"b\\c\n\x01 é");
    srv_json_key(&w, "n");
    srv_json_open(&w, '[');
    srv_json_int(&w, -3);
    srv_json_num(&w, 0.5);
    srv_json_num(&w, NAN);
    srv_json_bool(&w, 1);
    srv_json_null(&w);
    srv_json_open(&w, '{');
    srv_json_close(&w, '}');
    srv_json_close(&w, ']');
    srv_json_key(&w, "raw");
    srv_json_raw(&w, "{\"x\":1}", 7);
    srv_json_close(&w, '}');
    ck_assert_str_eq(w.buf, "{\"s\":\"a\\\"b\\\\c\\n\\u0001 é\",\"n\":[-3,0.5,null,true,null,{}],"
                            "\"raw\":{\"x\":1}}");
    cJSON *back = cJSON_Parse(w.buf);
    ck_assert_ptr_nonnull(back);
    ck_assert_str_eq(cJSON_GetObjectItem(back, "s")->valuestring, "a\"b\\c\n\x01 é");
    cJSON_Delete(back);
    srv_json_free(&w);
}
END_TEST

/* Numbers come out as %.6g would print them (to the last digit), and ints
 * exactly, without printf on the reply path. */
START_TEST(json_numbers_match_printf)
{
    srv_json w;
    ck_assert_int_eq(srv_json_init(&w, 64), 0);
    tu_rng r = {.s = 11};
    const double fixed[] = {0, 1, -1, 0.5, 10, 100000, 999999.5, 1e-6, 9.999995e-6, 0.1,
                            123456789, 1e15, 1e-7, 3.14159265, -0.000123456, 99999.95};
    int n_fixed = (int)(sizeof fixed / sizeof fixed[0]);
    for (int i = 0; i < 20000 + n_fixed; i++) {
        double v = i < n_fixed ? fixed[i]
                               : (tu_uniform(&r) - 0.5) * pow(10.0, (int)(tu_uniform(&r) * 24) - 8);
        srv_json_reset(&w);
        srv_json_num(&w, v);
        char want[64];
        snprintf(want, sizeof want, "%.6g", v);
        double got = strtod(w.buf, NULL), ref = strtod(want, NULL);
        /* Same value to the sixth digit: a half-way case may round the other way. */
        ck_assert_msg(fabs(got - ref) <= 1.01e-5 * fabs(ref), "%.17g: wrote %s, %%.6g gives %s", v,
                      w.buf, want);
        ck_assert_msg(strlen(w.buf) <= strlen(want) + 1, "%.17g: %s vs %s", v, w.buf, want);
    }
    const int64_t ints[] = {0, 7, -7, 1234567890123LL, INT64_MIN, INT64_MAX};
    for (int i = 0; i < 6; i++) {
        srv_json_reset(&w);
        srv_json_int(&w, ints[i]);
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)ints[i]);
        ck_assert_str_eq(w.buf, want);
    }
    srv_json_free(&w);
}
END_TEST

START_TEST(utf8_validation)
{
    ck_assert(util_utf8_valid("plain", 5));
    ck_assert(util_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    ck_assert(!util_utf8_valid("\xc3\x28", 2));          /* bad continuation */
    ck_assert(!util_utf8_valid("\xc0\xaf", 2));          /* overlong */
    ck_assert(!util_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
    ck_assert(!util_utf8_valid("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
    ck_assert(!util_utf8_valid("\xe2\x82", 2));          /* truncated */
    ck_assert(!util_utf8_valid("\xff", 1));
}
END_TEST

static srv_arena s_args;

/* Parse with default limits; rq->args lives in s_args until the next call. */
static int s_parse(const char *json, srv_request *rq, char *why)
{
    srv_config cfg;
    cfg_defaults(&cfg);
    if (!s_args.base)
        ck_assert_int_eq(srv_arena_init(&s_args, 1 << 20), 0);
    srv_arena_reset(&s_args);
    return srv_request_parse(json, strlen(json), &cfg, &s_args, rq, why, 256);
}

static const srv_rank_args *s_rank(const srv_request *rq)
{
    ck_assert_ptr_nonnull(rq->op);
    ck_assert_str_eq(rq->op->name, "rank");
    return rq->args;
}

START_TEST(request_parsing)
{
    srv_request rq;
    char why[256];
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"id\":\"a\\\"b\",\"user\":\"u\","
                             "\"candidates\":[\"x\",\"y\"],\"k\":5,\"explain\":2}", &rq, why),
                     SRV_OK);
    const srv_rank_args *a = s_rank(&rq);
    ck_assert_str_eq(rq.id_json, "\"a\\\"b\"");
    ck_assert_int_eq(a->k, 5);
    ck_assert_int_eq(a->explain, 2);
    ck_assert_int_eq(a->n_cand, 2);
    ck_assert_str_eq(a->cand[1].s, "y");
    ck_assert_uint_eq(a->cand[1].len, 1);
    ck_assert_str_eq(a->user.s, "u");
    ck_assert_int_eq(s_parse("{\"op\":\"health\",\"id\":42}", &rq, why), SRV_OK);
    ck_assert_str_eq(rq.id_json, "42");
    ck_assert_str_eq(rq.op->name, "health");
    ck_assert_int_eq(s_parse("{\"op\":\"health\"}", &rq, why), SRV_OK);
    ck_assert_str_eq(rq.id_json, "null");
    /* The id is echoed even when the rest is rejected. */
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"id\":\"keep\"}", &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_str_eq(rq.id_json, "\"keep\"");
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"user\":\"u\",\"candidates\":[\"x\"]}", &rq,
                             why), SRV_OK);
    ck_assert_int_eq(s_rank(&rq)->k, 10);   /* default_k */
    char long_id[400];
    memset(long_id, 'x', sizeof long_id);
    long_id[sizeof long_id - 1] = 0;
    char req[600];
    snprintf(req, sizeof req, "{\"op\":\"health\",\"id\":\"%s\"}", long_id);
    ck_assert_int_eq(s_parse(req, &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_msg(strstr(why, "id"), "%s", why);
}
END_TEST

/* Anonymous histories keep their order and weights; weights that a float
 * cannot hold (1e-46 underflows to 0) are the client's error, not ours. */
START_TEST(request_history_and_weights)
{
    srv_request rq;
    char why[256];
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"history\":[\"a\",\"b\"],\"weights\":[1,"
                             "0.5],\"candidates\":[\"x\"]}", &rq, why), SRV_OK);
    const srv_rank_args *a = s_rank(&rq);
    ck_assert_ptr_null(a->user.s);
    ck_assert_int_eq(a->n_history, 2);
    ck_assert_str_eq(a->history[0].s, "a");
    ck_assert_float_eq(a->weights[1], 0.5f);
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"history\":[\"a\"],\"weights\":[1e-46],"
                             "\"candidates\":[\"x\"]}", &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_msg(strstr(why, "weights[0]"), "%s", why);
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"history\":[\"a\"],\"weights\":[0],"
                             "\"candidates\":[\"x\"]}", &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"history\":[\"a\"],\"weights\":[1e39],"
                             "\"candidates\":[\"x\"]}", &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"user\":\"u\",\"weights\":[1],"
                             "\"candidates\":[\"x\"]}", &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_msg(strstr(why, "weights"), "%s", why);
}
END_TEST

/* A NUL escape would cut an id short ("u1\u0000x" served as "u1"): it is
 * refused; an escaped backslash before "u0000" is just text. */
START_TEST(request_nul_refused)
{
    srv_request rq;
    char why[256];
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"user\":\"u1\\u0000zzz\","
                             "\"candidates\":[\"x\"]}", &rq, why), SRV_E_BAD_JSON);
    ck_assert_msg(strstr(why, "NUL"), "%s", why);
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"user\":\"u1\\\\u0000zzz\","
                             "\"candidates\":[\"x\"]}", &rq, why), SRV_OK);
    ck_assert_str_eq(s_rank(&rq)->user.s, "u1\\u0000zzz");
    /* A raw zero byte too: it is not JSON, and cJSON would cut at it, so
     * that a key "id<NUL>" read as "id" (found by tests/fuzz/request). */
    static const char raw[] = "{\"op\":\"rank\",\"user\":\"u1\0zzz\",\"candidates\":[\"x\"]}";
    srv_config cfg;
    cfg_defaults(&cfg);
    ck_assert_int_eq(srv_request_parse(raw, sizeof raw - 1, &cfg, &s_args, &rq, why, 256),
                     SRV_E_BAD_JSON);
    ck_assert_msg(strstr(why, "NUL"), "%s", why);
}
END_TEST

/* unknown_op lists the table, and cuts a long op on a character boundary. */
START_TEST(request_unknown_op_message)
{
    srv_request rq;
    char why[256], req[400], op[200] = "";
    for (int i = 0; i < 30; i++)
        strcat(op, "\xc3\xa9");   /* 60 bytes of two-byte characters */
    strcat(op, "\xe2\x82\xac\xe2\x82\xac");   /* the 64th byte is inside a euro sign */
    snprintf(req, sizeof req, "{\"op\":\"%s\"}", op);
    ck_assert_int_eq(s_parse(req, &rq, why), SRV_E_UNKNOWN_OP);
    ck_assert_msg(util_utf8_valid(why, strlen(why)), "not UTF-8: %s", why);
    ck_assert_msg(strstr(why, "rank, health, stats, info, reload"), "%s", why);
}
END_TEST

/* The main thread's peek finds op and id without a parse, and gives up
 * (op NULL) on what it cannot read rather than guessing. */
START_TEST(request_peek)
{
    const srv_op *op;
    char id[SRV_ID_JSON_MAX];
    const char *m1 = "{\"candidates\":[\"a\",{\"op\":\"x\"}],\"id\":7,\"op\":\"health\"}";
    srv_request_peek(m1, strlen(m1), &op, id);
    ck_assert_ptr_nonnull(op);
    ck_assert_str_eq(op->name, "health");
    ck_assert_str_eq(id, "7");
    const char *m2 = "{\"op\":\"rank\",\"id\":\"r\\\"1\"}";
    srv_request_peek(m2, strlen(m2), &op, id);
    ck_assert_str_eq(op->name, "rank");
    ck_assert_str_eq(id, "\"r\\\"1\"");
    const char *bad[] = {"", "[", "{\"op\"", "{\"op\":\"rank", "{\"op\":\"nope\"}",
                         "{\"x\":[1,2}", "{\"op\":\"he\\u0061lth\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_request_peek(bad[i], strlen(bad[i]), &op, id);
        ck_assert_msg(op == NULL, "peek read an op from %s", bad[i]);
    }
    const char *m3 = "{\"id\":\"\xff\",\"op\":\"rank\"}";   /* not UTF-8: not echoed */
    srv_request_peek(m3, strlen(m3), &op, id);
    ck_assert_str_eq(id, "null");
}
END_TEST

/* Every op in the table resolves by name; unknown names do not. */
START_TEST(op_table)
{
    int n;
    const srv_op *ops = srv_ops(&n);
    ck_assert_int_ge(n, 5);
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_eq(srv_op_find(ops[i].name, strlen(ops[i].name)), &ops[i]);
        ck_assert_int_eq(srv_op_index(&ops[i]), i);
        ck_assert_ptr_nonnull(strstr(srv_op_names(), ops[i].name));
    }
    ck_assert_ptr_null(srv_op_find("ran", 3));
    ck_assert_ptr_null(srv_op_find("rankx", 5));
}
END_TEST

/* record: every field of every event checked, the message naming the event
 * by index; absent optional fields take their defaults. */
START_TEST(request_record)
{
    srv_request rq;
    char why[256];
    ck_assert_int_eq(s_parse("{\"op\":\"record\",\"id\":7,\"events\":[{\"user\":\"u\","
                             "\"item\":\"i\",\"ts\":1700000000},{\"user\":\"v\",\"item\":\"j\","
                             "\"ts\":-5,\"kind\":\"click\",\"weight\":2.5,\"event_id\":\"e\"}]}",
                             &rq, why), SRV_OK);
    ck_assert_str_eq(rq.op->name, "record");
    const srv_record_args *a = rq.args;
    ck_assert_int_eq(a->n, 2);
    ck_assert_str_eq(a->ev[0].user.s, "u");
    ck_assert_int_eq(a->ev[0].ts, 1700000000);
    ck_assert_ptr_null(a->ev[0].kind.s);
    ck_assert_ptr_null(a->ev[0].event_id.s);
    ck_assert_float_eq(a->ev[0].weight, 1.0f);
    ck_assert_int_eq(a->ev[1].ts, -5);
    ck_assert_str_eq(a->ev[1].kind.s, "click");
    ck_assert_float_eq(a->ev[1].weight, 2.5f);
    ck_assert_str_eq(a->ev[1].event_id.s, "e");
    static const struct { const char *events, *field; } bad[] = {
        {"[]", "events: empty array"},
        {"{}", "events: expected an array"},
        {"[1]", "events[0]: expected an object"},
        {"[{\"item\":\"i\",\"ts\":1}]", "events[0].user: missing"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":1},{\"user\":\"u\",\"item\":\"i\"}]",
         "events[1].ts: missing"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":1.5}]", "events[0].ts: expected an integer"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":\"2024\"}]", "events[0].ts"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":1e300}]", "events[0].ts"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":1,\"weight\":0}]", "events[0].weight"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":1,\"weight\":-1}]", "events[0].weight"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":1,\"weight\":1e-46}]", "events[0].weight"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":1,\"weight\":\"1\"}]", "events[0].weight"},
        {"[{\"user\":\"\",\"item\":\"i\",\"ts\":1}]", "events[0].user: expected a non-empty"},
        {"[{\"user\":\"u\",\"item\":7,\"ts\":1}]", "events[0].item"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":1,\"kind\":\"\"}]", "events[0].kind"},
        {"[{\"user\":\"u\",\"item\":\"i\",\"ts\":1,\"event_id\":3}]", "events[0].event_id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char req[512];
        snprintf(req, sizeof req, "{\"op\":\"record\",\"id\":\"x\",\"events\":%s}",
                 bad[i].events);
        ck_assert_int_eq(s_parse(req, &rq, why), SRV_E_BAD_REQUEST);
        ck_assert_msg(!strncmp(why, bad[i].field, strlen(bad[i].field)), "%s: got '%s'",
                      bad[i].events, why);
        ck_assert_str_eq(rq.id_json, "\"x\"");
    }
    /* Byte limits, and the event count against limits.max_record_events. */
    char *big = malloc(1 << 20);
    snprintf(big, 1 << 20, "{\"op\":\"record\",\"events\":[{\"user\":\"%0*d\",\"item\":\"i\","
             "\"ts\":1}]}", SRV_REC_EXT_MAX + 1, 0);
    ck_assert_int_eq(s_parse(big, &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_msg(strstr(why, "events[0].user") && strstr(why, "at most 512"), "%s", why);
    size_t at = (size_t)sprintf(big, "{\"op\":\"record\",\"events\":[");
    for (int i = 0; i < 1001; i++)
        at += (size_t)sprintf(big + at, "%s{\"user\":\"u\",\"item\":\"i\",\"ts\":%d}",
                              i ? "," : "", i);
    sprintf(big + at, "]}");
    ck_assert_int_eq(s_parse(big, &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_msg(strstr(why, "1001") && strstr(why, "limits.max_record_events"), "%s", why);
    free(big);
}
END_TEST

/* The record reply's shape (docs/PROTOCOL.md), rejected items cut to 64
 * bytes on a character boundary. */
START_TEST(reply_recorded)
{
    srv_json w;
    ck_assert_int_eq(srv_json_init(&w, 256), 0);
    char item[200];
    memset(item, 'x', sizeof item);
    memcpy(item + 63, "\xc3\xa9", 2);   /* a 2-byte character across the 64-byte cut */
    int dups[] = {1, 4};
    srv_rec_reject rej[] = {{.index = 2, .item = item, .len = sizeof item,
                             .reason = "unknown_item"}};
    srv_recorded r = {.stored = 3, .duplicates = dups, .n_duplicates = 2, .rejected = rej,
                      .n_rejected = 1, .t_recv = 0};
    srv_reply_recorded(&w, "\"r\"", &r);
    cJSON *j = cJSON_Parse(w.buf);
    ck_assert_ptr_nonnull(j);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    ck_assert_int_eq(cJSON_GetObjectItem(j, "stored")->valueint, 3);
    ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "duplicates"), 1)->valueint, 4);
    const cJSON *x = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "rejected"), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(x, "index")->valueint, 2);
    ck_assert_str_eq(cJSON_GetObjectItem(x, "reason")->valuestring, "unknown_item");
    ck_assert_uint_eq(strlen(cJSON_GetObjectItem(x, "item")->valuestring), 63);
    cJSON_Delete(j);
    srv_json_free(&w);
}
END_TEST

/* Cross-key rules of the [record] section. */
START_TEST(config_record_rules)
{
    srv_config cfg;
    char why[300];
    cfg_defaults(&cfg);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), 0);
    ck_assert_int_eq(cfg_set(&cfg, "record.synchronous", "full", why, sizeof why), 0);
    ck_assert_int_eq(cfg.record_synchronous, CFG_SYNC_FULL);
    ck_assert_int_eq(cfg_set(&cfg, "record.synchronous", "off", why, sizeof why), -1);
    ck_assert_msg(strstr(why, "record.synchronous") && strstr(why, "normal, full"), "%s", why);
    ck_assert_int_eq(cfg_set(&cfg, "record.max_batch", "500", why, sizeof why), 0);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "limits.max_record_events") && strstr(why, "record.max_batch"),
                  "%s", why);
    cfg_defaults(&cfg);
    ck_assert_int_eq(cfg_set(&cfg, "limits.max_reply_bytes", "65536", why, sizeof why), 0);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "limits.max_reply_bytes"), "%s", why);
    ck_assert_int_eq(cfg_set(&cfg, "record.enabled", "off", why, sizeof why), 0);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), 0);
}
END_TEST

START_TEST(arena_backs_cjson)
{
    srv_arena a;
    ck_assert_int_eq(srv_arena_init(&a, 1 << 16), 0);
    srv_arena_install_cjson();
    srv_arena_bind(&a);
    cJSON *t = cJSON_Parse("{\"a\":[1,2,3],\"b\":\"text\"}");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_gt(a.used, 0);
    ck_assert_uint_eq(a.spilled, 0);
    cJSON_Delete(t);
    srv_arena_reset(&a);
    ck_assert_uint_eq(a.used, 0);
    /* Larger than the arena: falls back to malloc and still works. */
    char *big = malloc(200000);
    size_t at = (size_t)sprintf(big, "[");
    for (int i = 0; i < 20000; i++)
        at += (size_t)sprintf(big + at, "%s%d", i ? "," : "", i);
    sprintf(big + at, "]");
    t = cJSON_Parse(big);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(cJSON_GetArraySize(t), 20000);
    ck_assert_uint_gt(a.spilled, 0);
    cJSON_Delete(t);
    free(big);
    srv_arena_bind(NULL);
    srv_arena_free(&a);
}
END_TEST

Suite *daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("units");
    tcase_add_test(tc, config_defaults_and_set);
    tcase_add_test(tc, config_file_errors_name_the_line);
    tcase_add_test(tc, config_table_is_consistent);
    tcase_add_test(tc, json_writer);
    tcase_add_test(tc, json_numbers_match_printf);
    tcase_add_test(tc, utf8_validation);
    tcase_add_test(tc, request_parsing);
    tcase_add_test(tc, request_history_and_weights);
    tcase_add_test(tc, request_nul_refused);
    tcase_add_test(tc, request_unknown_op_message);
    tcase_add_test(tc, request_peek);
    tcase_add_test(tc, op_table);
    tcase_add_test(tc, request_record);
    tcase_add_test(tc, reply_recorded);
    tcase_add_test(tc, config_record_rules);
    tcase_add_test(tc, arena_backs_cjson);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(daemon_suite());
}
