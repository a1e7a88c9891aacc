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
#include "daemon/proto.h"
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
    /* Each default is within its own bounds (cfg_set accepts it back). */
    srv_config cfg, copy;
    char why[256];
    cfg_defaults(&cfg);
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

static int s_parse(const char *json, srv_request *rq, char *why)
{
    srv_config cfg;
    cfg_defaults(&cfg);
    cJSON *tree = NULL;
    int code = srv_request_parse(json, strlen(json), &cfg, rq, &tree, why, 256);
    cJSON_Delete(tree);
    return code;
}

START_TEST(request_parsing)
{
    srv_request rq;
    char why[256];
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"id\":\"a\\\"b\",\"user\":\"u\","
                             "\"candidates\":[\"x\",\"y\"],\"k\":5,\"explain\":2}", &rq, why),
                     SRV_OK);
    ck_assert_int_eq(rq.op, SRV_OP_RANK);
    ck_assert_str_eq(rq.id_json, "\"a\\\"b\"");
    ck_assert_int_eq(rq.k, 5);
    ck_assert_int_eq(rq.explain, 2);
    ck_assert_int_eq(rq.n_cand, 2);
    ck_assert_int_eq(s_parse("{\"op\":\"health\",\"id\":42}", &rq, why), SRV_OK);
    ck_assert_str_eq(rq.id_json, "42");
    ck_assert_int_eq(s_parse("{\"op\":\"health\"}", &rq, why), SRV_OK);
    ck_assert_str_eq(rq.id_json, "null");
    /* The id is echoed even when the rest is rejected. */
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"id\":\"keep\"}", &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_str_eq(rq.id_json, "\"keep\"");
    ck_assert_int_eq(s_parse("{\"op\":\"rank\",\"user\":\"u\",\"candidates\":[\"x\"]}", &rq, why),
                     SRV_OK);
    ck_assert_int_eq(rq.k, 10);   /* default_k */
    char long_id[400];
    memset(long_id, 'x', sizeof long_id);
    long_id[sizeof long_id - 1] = 0;
    char req[600];
    snprintf(req, sizeof req, "{\"op\":\"health\",\"id\":\"%s\"}", long_id);
    ck_assert_int_eq(s_parse(req, &rq, why), SRV_E_BAD_REQUEST);
    ck_assert_msg(strstr(why, "id"), "%s", why);
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
    tcase_add_test(tc, arena_backs_cjson);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(daemon_suite());
}
