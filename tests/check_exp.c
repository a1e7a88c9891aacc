/* check_exp.c -- several models at once and sticky experiment arms.
 *
 * The arm assignment is a pure function of (salt, key): checked here for
 * its proportions against binomial bounds on 100,000 synthetic users, for
 * stickiness, and end to end: the daemon's replies name the arm and the
 * model this file computes, before and after a restart.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/experiment.h"
#include "tests/testutil.h"
#include "tests/tu_daemon.h"

START_TEST(parse_errors)
{
    srv_experiment e;
    char why[256];
    ck_assert_int_eq(srv_experiment_parse("", "s", &e, why, sizeof why), 0);
    ck_assert_int_eq(e.n, 0);
    ck_assert_int_eq(srv_experiment_parse("a:1:1, b:active:3", "s", &e, why, sizeof why), 0);
    ck_assert_int_eq(e.n, 2);
    ck_assert_int_eq(e.arm[1].version, SRV_VERSION_ACTIVE);
    ck_assert_double_eq_tol(e.arm[0].upto, 0.25, 1e-12);
    ck_assert_double_eq(e.arm[1].upto, 1.0);
    const struct { const char *arms, *why; } bad[] = {
        {"a:1:1", "one arm"},
        {"a:1:1,b:2", "NAME:VERSION:WEIGHT"},
        {"a:1:1,b:x:1", "version 'x'"},
        {"a:1:1,b:2:0", "weight '0'"},
        {"a:1:1,b:2:-1", "weight"},
        {"a:1:1,a:2:1", "named twice"},
        {"a b:1:1,c:2:1", "arm name"},
        {"a:1:1,b:2:1,c:3:1,d:4:1,e:5:1,f:6:1,g:7:1,h:8:1,i:9:1", "more than 8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(srv_experiment_parse(bad[i].arms, "s", &e, why, sizeof why), -1);
        ck_assert_msg(strstr(why, bad[i].why) && strstr(why, "experiment.arms"), "%s: %s",
                      bad[i].arms, why);
    }
    int64_t v[8];
    int n;
    ck_assert_int_eq(srv_models_parse(" 3, 5 ", v, &n, 7, why, sizeof why), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(v[1], 5);
    ck_assert_int_eq(srv_models_parse("3,active", v, &n, 7, why, sizeof why), -1);
    ck_assert_int_eq(srv_models_parse("1,2,3", v, &n, 2, why, sizeof why), -1);
}
END_TEST

/* Each arm's count over 100,000 users lies within 4.5 standard deviations
 * of n p (a false alarm about once in 150,000 runs), and a user's arm never
 * changes. */
START_TEST(split_proportions)
{
    const char *configs[] = {"control:1:95,treatment:2:5", "a:1:50,b:2:30,c:3:20"};
    for (int c = 0; c < 2; c++) {
        srv_experiment e;
        char why[256];
        ck_assert_int_eq(srv_experiment_parse(configs[c], "salt-1", &e, why, sizeof why), 0);
        long count[SRV_ARMS_MAX] = {0};
        const int n = 100000;
        for (int u = 0; u < n; u++) {
            char key[32];
            int len = snprintf(key, sizeof key, "user-%d", u);
            int arm = srv_experiment_arm(&e, key, (size_t)len);
            ck_assert_int_eq(srv_experiment_arm(&e, key, (size_t)len), arm);
            count[arm]++;
        }
        double before = 0;
        for (int a = 0; a < e.n; a++) {
            double p = e.arm[a].upto - before;
            before = e.arm[a].upto;
            double sd = sqrt(n * p * (1 - p));
            ck_assert_msg(fabs(count[a] - n * p) < 4.5 * sd, "%s arm %s: %ld of %d, expected %.0f "
                          "+- %.0f", configs[c], e.arm[a].name, count[a], n, n * p, 4.5 * sd);
        }
    }
}
END_TEST

/* A new salt reshuffles: the arms under two salts agree about as often as
 * independent draws would (0.95^2 + 0.05^2 = 0.905 for 95/5). */
START_TEST(salt_reshuffles)
{
    srv_experiment a, b;
    char why[256];
    ck_assert_int_eq(srv_experiment_parse("c:1:95,t:2:5", "one", &a, why, sizeof why), 0);
    ck_assert_int_eq(srv_experiment_parse("c:1:95,t:2:5", "two", &b, why, sizeof why), 0);
    int same = 0, n = 20000;
    for (int u = 0; u < n; u++) {
        char key[32];
        int len = snprintf(key, sizeof key, "u%d", u);
        same += srv_experiment_arm(&a, key, (size_t)len) == srv_experiment_arm(&b, key,
                                                                                 (size_t)len);
    }
    double p = 0.905, sd = sqrt(n * p * (1 - p));
    ck_assert_msg(fabs(same - n * p) < 4.5 * sd, "%d of %d agree", same, n);
}
END_TEST

/* ---- end to end ------------------------------------------------------------ */

static char s_db[300];
static int64_t s_v1, s_v2;

static void s_setup(void)
{
    snprintf(s_db, sizeof s_db, "%s", tu_path("exp.db"));
    tu_make_db(s_db, 600, 80, 24);
    s_v1 = tu_save_random_model(s_db, 2, 1, 0, 11);   /* active */
    s_v2 = tu_save_random_model(s_db, 4, 0, 0, 12);   /* the treatment, loaded by the arm */
}

static const char *s_arms_cfg = "experiment.arms=control:active:70,treatment:%lld:30";

/* Rank users u0001..u0080: every reply's arm is the one computed here, and
 * its model the arm's.  The arms are returned for the restart check. */
static void s_rank_users(const tu_daemon *d, const srv_experiment *e, int *arm_of, long *count)
{
    for (int u = 1; u <= 80; u++) {
        char req[256], key[16];
        snprintf(key, sizeof key, "u%04d", u);
        snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"%s\",\"candidates\":[\"i00001\","
                 "\"i00002\"]}", key);
        cJSON *r = tu_call_json(d->endpoint, req);
        ck_assert_msg(tu_ok(r), "%s", tu_message(r));
        int want = srv_experiment_arm(e, key, strlen(key));
        const cJSON *arm = cJSON_GetObjectItem(r, "arm");
        ck_assert_msg(cJSON_IsString(arm) && !strcmp(arm->valuestring, e->arm[want].name),
                      "%s: arm %s, expected %s", key, cJSON_IsString(arm) ? arm->valuestring
                      : "null", e->arm[want].name);
        int64_t model = (int64_t)cJSON_GetObjectItem(r, "model")->valuedouble;
        ck_assert_int_eq(model, want == 0 ? s_v1 : s_v2);
        arm_of[u] = want;
        count[want]++;
        cJSON_Delete(r);
    }
}

START_TEST(arms_end_to_end)
{
    char arms[200];
    snprintf(arms, sizeof arms, s_arms_cfg, (long long)s_v2);
    srv_experiment e;
    char why[256];
    ck_assert_int_eq(srv_experiment_parse(arms + strlen("experiment.arms="), "attnd", &e, why,
                                          sizeof why), 0);
    const char *extra[] = {"--set", arms, NULL};
    tu_daemon d;
    tu_daemon_start(&d, s_db, "exp.sock", extra);
    int arm_of[81], again[81];
    long count[SRV_ARMS_MAX] = {0}, count2[SRV_ARMS_MAX] = {0};
    s_rank_users(&d, &e, arm_of, count);
    ck_assert_int_gt(count[0], 0);
    ck_assert_int_gt(count[1], 0);   /* 80 users at 30%: none in treatment has p = 4e-13 */

    /* Anonymous: the session decides, or the control without one. */
    cJSON *r = tu_call_json(d.endpoint, "{\"op\":\"rank\",\"history\":[\"i00003\"],"
                                        "\"candidates\":[\"i00001\"]}");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "arm")->valuestring, "control");
    cJSON_Delete(r);
    r = tu_call_json(d.endpoint, "{\"op\":\"rank\",\"history\":[\"i00003\"],\"session\":\"s9\","
                                 "\"candidates\":[\"i00001\"]}");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "arm")->valuestring,
                     e.arm[srv_experiment_arm(&e, "s9", 2)].name);
    cJSON_Delete(r);

    /* Naming a model overrides the arm; naming one that is not loaded fails. */
    char req[256];
    snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"u0001\",\"model\":%lld,"
             "\"candidates\":[\"i00001\"]}", (long long)s_v2);
    r = tu_call_json(d.endpoint, req);
    ck_assert(tu_ok(r));
    ck_assert_int_eq((int64_t)cJSON_GetObjectItem(r, "model")->valuedouble, s_v2);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "arm")));
    cJSON_Delete(r);
    r = tu_call_json(d.endpoint, "{\"op\":\"rank\",\"user\":\"u0001\",\"model\":999,"
                                 "\"candidates\":[\"i00001\"]}");
    ck_assert_str_eq(tu_code(r), "unknown_model");
    ck_assert_msg(strstr(tu_message(r), "999"), "%s", tu_message(r));
    cJSON_Delete(r);

    /* info lists both models with their memory and arms; stats counts per arm
     * (the anonymous and session requests and the named one aside). */
    r = tu_call_json(d.endpoint, "{\"op\":\"info\"}");
    const cJSON *models = cJSON_GetObjectItem(r, "models");
    ck_assert_int_eq(cJSON_GetArraySize(models), 2);
    for (const cJSON *m = models->child; m; m = m->next) {
        ck_assert_int_gt((int64_t)cJSON_GetObjectItem(m, "bytes")->valuedouble, 0);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(m, "arms")), 1);
    }
    cJSON_Delete(r);
    r = tu_call_json(d.endpoint, "{\"op\":\"stats\"}");
    const cJSON *sa = cJSON_GetObjectItem(r, "arms");
    long got0 = (long)cJSON_GetObjectItem(cJSON_GetObjectItem(sa, "control"), "requests")
                    ->valuedouble;
    long got1 = (long)cJSON_GetObjectItem(cJSON_GetObjectItem(sa, "treatment"), "requests")
                    ->valuedouble;
    int s9 = srv_experiment_arm(&e, "s9", 2);
    ck_assert_int_eq(got0, count[0] + 1 + (s9 == 0));
    ck_assert_int_eq(got1, count[1] + (s9 == 1));
    cJSON_Delete(r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);

    /* Sticky across a restart. */
    tu_daemon_start(&d, s_db, "exp2.sock", extra);
    s_rank_users(&d, &e, again, count2);
    for (int u = 1; u <= 80; u++)
        ck_assert_int_eq(again[u], arm_of[u]);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* An arm naming a version that does not exist stops start-up with the
 * reason, and a reload keeps serving the models it has. */
START_TEST(arm_version_missing)
{
    char out[4096], args[600];
    snprintf(args, sizeof args, "--db %s --bind ipc://%s --set experiment.arms=a:active:1,"
             "b:777:1", s_db, tu_path("bad.sock"));
    ck_assert_int_ne(tu_run_program("attnd", args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "777"), "%s", out);
}
END_TEST

/* model.precision = bf16 serves the same rankings as f32 up to bfloat16's
 * rounding (2^-8 relative per stored value, docs/MODEL.md 5.2.1): every
 * score within 2% of the largest |score|, and info says which is serving. */
START_TEST(precision_bf16)
{
    const char *f32[] = {"--set", "model.precision=f32", NULL};
    const char *bf16[] = {"--set", "model.precision=bf16", NULL};
    tu_daemon a, b;
    tu_daemon_start(&a, s_db, "f32.sock", f32);
    tu_daemon_start(&b, s_db, "bf16.sock", bf16);
    cJSON *info = tu_call_json(b.endpoint, "{\"op\":\"info\"}");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(info, "model"), "precision")
                         ->valuestring, "bf16");
    cJSON_Delete(info);
    for (int u = 1; u <= 20; u++) {
        char req[512];
        snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"u%04d\",\"k\":8,\"candidates\":"
                 "[\"i00001\",\"i00002\",\"i00003\",\"i00004\",\"i00005\",\"i00006\","
                 "\"i00007\",\"i00008\"]}", u);
        cJSON *ra = tu_call_json(a.endpoint, req), *rb = tu_call_json(b.endpoint, req);
        ck_assert(tu_ok(ra) && tu_ok(rb));
        double big = 0;
        for (const cJSON *i = cJSON_GetObjectItem(ra, "items")->child; i; i = i->next)
            big = fmax(big, fabs(cJSON_GetObjectItem(i, "score")->valuedouble));
        for (const cJSON *i = cJSON_GetObjectItem(ra, "items")->child; i; i = i->next) {
            const char *item = cJSON_GetObjectItem(i, "item")->valuestring;
            const cJSON *j = cJSON_GetObjectItem(rb, "items")->child;
            while (j && strcmp(cJSON_GetObjectItem(j, "item")->valuestring, item))
                j = j->next;
            ck_assert_ptr_nonnull(j);
            double sa = cJSON_GetObjectItem(i, "score")->valuedouble;
            double sb = cJSON_GetObjectItem(j, "score")->valuedouble;
            ck_assert_msg(fabs(sa - sb) <= 0.02 * big, "u%04d %s: f32 %g, bf16 %g", u, item, sa,
                          sb);
        }
        cJSON_Delete(ra);
        cJSON_Delete(rb);
    }
    ck_assert_int_eq(tu_daemon_stop(&a), 0);
    ck_assert_int_eq(tu_daemon_stop(&b), 0);
}
END_TEST

Suite *exp_suite(void)
{
    Suite *s = suite_create("exp");
    TCase *tc = tcase_create("arms");
    tcase_add_test(tc, parse_errors);
    tcase_add_test(tc, split_proportions);
    tcase_add_test(tc, salt_reshuffles);
    suite_add_tcase(s, tc);
    tc = tcase_create("daemon");
    tcase_add_unchecked_fixture(tc, s_setup, NULL);
    tcase_set_timeout(tc, 60 * tu_slowdown());
    tcase_add_test(tc, arms_end_to_end);
    tcase_add_test(tc, arm_version_missing);
    tcase_add_test(tc, precision_bf16);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(exp_suite());
}
