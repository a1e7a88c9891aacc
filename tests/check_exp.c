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
#include <time.h>

#include "daemon/config.h"
#include "daemon/experiment.h"
#include "store/store.h"
#include "tests/testutil.h"
#include "tests/tu_daemon.h"
#include "tests/tu_http.h"
#include "tools/exp_report.h"
#include "util/mask.h"

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

    srv_precisions p;
    ck_assert_int_eq(srv_precisions_parse("", &p, why, sizeof why), 0);
    ck_assert_int_eq(p.n, 0);
    ck_assert_int_eq(srv_precisions_parse(" 5:bf16 , 3:f32", &p, why, sizeof why), 0);
    ck_assert_int_eq(p.n, 2);
    ck_assert_int_eq(srv_precision_of(&p, 5, CFG_PRECISION_F32), CFG_PRECISION_BF16);
    ck_assert_int_eq(srv_precision_of(&p, 3, CFG_PRECISION_BF16), CFG_PRECISION_F32);
    ck_assert_int_eq(srv_precision_of(&p, 4, CFG_PRECISION_BF16), CFG_PRECISION_BF16);
    const struct { const char *spec, *why; } badp[] = {
        {"5", "'5' is not VERSION:f32"},
        {"active:bf16", "'active:bf16' is not"},
        {"x:f32", "'x:f32'"},
        {"5:f16", "precision 'f16'"},
        {"5:bf16,5:f32", "version 5 is named twice"},
        {"1:f32,2:f32,3:f32,4:f32,5:f32,6:f32,7:f32,8:f32,9:f32,10:f32,11:f32,12:f32,"
         "13:f32,14:f32,15:f32,16:f32,17:f32", "more than 16"},
    };
    for (size_t i = 0; i < sizeof badp / sizeof badp[0]; i++) {
        ck_assert_int_eq(srv_precisions_parse(badp[i].spec, &p, why, sizeof why), -1);
        ck_assert_msg(strstr(why, badp[i].why) && strstr(why, "models.precision"), "%s: %s",
                      badp[i].spec, why);
    }
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
    snprintf(args, sizeof args, "--db %s --bind ipc://%s --set metrics.bind= "
             "--set experiment.arms=a:active:1,"
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

/* 1 when two rank replies hold the same items with the same scores, bit
 * for bit. */
static int s_same_scores(const cJSON *ra, const cJSON *rb)
{
    const cJSON *i = cJSON_GetObjectItem(ra, "items")->child;
    const cJSON *j = cJSON_GetObjectItem(rb, "items")->child;
    for (; i && j; i = i->next, j = j->next)
        if (strcmp(cJSON_GetObjectItem(i, "item")->valuestring,
                   cJSON_GetObjectItem(j, "item")->valuestring) ||
            cJSON_GetObjectItem(i, "score")->valuedouble !=
                cJSON_GetObjectItem(j, "score")->valuedouble)
            return 0;
    return !i && !j;
}

/* models.precision gives each model its own tables: with the active model
 * at f32 and v2 at bf16, each serves exactly what a daemon with every model
 * in that precision serves -- and v2's two precisions do differ, so the
 * test would see a model built in the wrong one. */
START_TEST(precision_per_model)
{
    char serve[64], mixed[64], req[512];
    snprintf(serve, sizeof serve, "models.serve=%lld", (long long)s_v2);
    snprintf(mixed, sizeof mixed, "models.precision=%lld:bf16", (long long)s_v2);
    const char *f32[] = {"--set", serve, NULL};
    const char *bf16[] = {"--set", serve, "--set", "model.precision=bf16", NULL};
    const char *mix[] = {"--set", serve, "--set", mixed, NULL};
    tu_daemon a, b, c;
    tu_daemon_start(&a, s_db, "pa.sock", f32);
    tu_daemon_start(&b, s_db, "pb.sock", bf16);
    tu_daemon_start(&c, s_db, "pc.sock", mix);

    cJSON *info = tu_call_json(c.endpoint, "{\"op\":\"info\"}");
    const cJSON *models = cJSON_GetObjectItem(info, "models");
    ck_assert_int_eq(cJSON_GetArraySize(models), 2);
    for (const cJSON *m = models->child; m; m = m->next) {
        int64_t v = (int64_t)cJSON_GetObjectItem(m, "version")->valuedouble;
        ck_assert_str_eq(cJSON_GetObjectItem(m, "precision")->valuestring,
                         v == s_v2 ? "bf16" : "f32");
    }
    cJSON_Delete(info);

    int v2_differs = 0;
    for (int u = 1; u <= 20; u++)
        for (int named = 0; named < 2; named++) {
            char model[32] = "";
            if (named)
                snprintf(model, sizeof model, "\"model\":%lld,", (long long)s_v2);
            snprintf(req, sizeof req, "{\"op\":\"rank\",\"user\":\"u%04d\",%s\"k\":8,"
                     "\"candidates\":[\"i00001\",\"i00002\",\"i00003\",\"i00004\","
                     "\"i00005\",\"i00006\",\"i00007\",\"i00008\"]}", u, model);
            cJSON *ra = tu_call_json(a.endpoint, req), *rb = tu_call_json(b.endpoint, req),
                  *rc = tu_call_json(c.endpoint, req);
            ck_assert(tu_ok(ra) && tu_ok(rb) && tu_ok(rc));
            ck_assert_msg(s_same_scores(rc, named ? rb : ra), "u%04d, %s model", u,
                          named ? "the named" : "the active");
            v2_differs += named && !s_same_scores(ra, rb);
            cJSON_Delete(ra);
            cJSON_Delete(rb);
            cJSON_Delete(rc);
        }
    ck_assert_int_gt(v2_differs, 0);
    ck_assert_int_eq(tu_daemon_stop(&a), 0);
    ck_assert_int_eq(tu_daemon_stop(&b), 0);
    ck_assert_int_eq(tu_daemon_stop(&c), 0);

    char out[4096], args[600];
    snprintf(args, sizeof args, "--db %s --bind ipc://%s --set metrics.bind= "
             "--set models.precision=%lld:f16", s_db, tu_path("badp.sock"), (long long)s_v2);
    ck_assert_int_eq(tu_run_program("attnd", args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "models.precision") && strstr(out, "'f16'"), "%s", out);
}
END_TEST

/* ---- the report ------------------------------------------------------------ */

#define S_T0 4000000000LL   /* after every generated event */

/* A synthetic experiment over the users of db: user u is in arm u % 2
 * (control, treatment), sees `per` impressions of 10 items, and after each,
 * with probability p[arm], touches the item at a rank drawn from 1..3.
 * Impressions are hashed under key (or logged raw when key is NULL). */
static void s_experiment(const char *db, const util_mask *key, const double p[2], int per,
                         uint64_t seed)
{
    store *h;
    store_err err;
    ck_assert_msg(store_open(&h, db, STORE_READWRITE, 5000, &err) == STORE_OK, "%s", err.msg);
    store_catalog *cat;
    ck_assert_int_eq(store_catalog_load(h, &cat, &err), STORE_OK);
    tu_rng rng = {.s = seed};
    ck_assert_int_eq(store_begin(h, &err), STORE_OK);
    for (int u = 1; u <= 80; u++) {
        char ext[16], hash[UTIL_MASK_HEX];
        snprintf(ext, sizeof ext, "u%04d", u);
        int64_t uid;
        ck_assert_int_eq(store_user_id(h, ext, strlen(ext), &uid, &err), STORE_OK);
        if (key)
            util_mask_hex(key, ext, strlen(ext), hash);
        for (int i = 0; i < per; i++) {
            int64_t items[10], ts = S_T0 + (int64_t)(u * per + i) * 100000;
            for (int r = 0; r < 10; r++)
                items[r] = cat->item_id[(tu_next(&rng) % cat->n)];
            store_impression im = {.ts = ts, .user_hash = key ? hash : ext,
                                   .key_id = key ? key->key_id : "none",
                                   .arm = u % 2 ? "treatment" : "control", .model = 1,
                                   .items = items, .n_items = 10};
            ck_assert_int_eq(store_impressions_put(h, &im, 1, &err), STORE_OK);
            if (tu_uniform(&rng) < p[u % 2])
                ck_assert_int_eq(store_event_put(h, uid, items[tu_next(&rng) % 3], ts + 60,
                                                 "click", 1, &err), STORE_OK);
        }
    }
    ck_assert_int_eq(store_commit(h, &err), STORE_OK);
    store_catalog_free(&cat);
    store_close(&h);
}

static util_mask s_key(unsigned char fill)
{
    util_mask m;
    memset(m.key, fill, sizeof m.key);
    snprintf(m.key_id, sizeof m.key_id, "k%02x", fill);
    return m;
}

static exp_report *s_report(const char *db, const util_mask *keys, int n_keys)
{
    exp_report_opts o = {.db = db, .keys = keys, .n_keys = n_keys, .k = 10, .window = 3600};
    exp_report *r;
    char why[600];
    ck_assert_msg(exp_report_run(&o, &r, why, sizeof why) == 0, "%s", why);
    ck_assert_int_eq(r->n_arms, 2);
    ck_assert_str_eq(r->arm[r->control].name, "control");
    return r;
}

/* A treatment that really is better: the report says so, with an interval
 * that excludes 0, and the rates near those the simulation used. */
START_TEST(report_finds_the_better_arm)
{
    const char *db = tu_path("better.db");
    tu_make_db(db, 300, 80, 16);
    util_mask key = s_key(7);
    s_experiment(db, &key, (const double[]){0.2, 0.6}, 10, 5);
    exp_report *r = s_report(db, &key, 1);
    const exp_arm_result *t = &r->arm[1 - r->control], *c = &r->arm[r->control];
    ck_assert_int_eq(r->joined, 800);
    ck_assert_int_eq(t->hit.n, 40);
    ck_assert_msg(fabs(c->hit.mean - 0.2) < 0.08 && fabs(t->hit.mean - 0.6) < 0.08,
                  "control %.3f, treatment %.3f", c->hit.mean, t->hit.mean);
    ck_assert_msg(t->hit_diff.lo > 0, "difference %.3f [%.3f, %.3f] should exclude 0",
                  t->hit_diff.mean, t->hit_diff.lo, t->hit_diff.hi);
    ck_assert(t->rr_diff.lo > 0);
    exp_report_free(&r);
}
END_TEST

/* Identical arms: the difference's interval covers 0. */
START_TEST(report_identical_arms_cover_zero)
{
    const char *db = tu_path("same.db");
    tu_make_db(db, 300, 80, 16);
    util_mask key = s_key(9);
    s_experiment(db, &key, (const double[]){0.4, 0.4}, 10, 6);
    exp_report *r = s_report(db, &key, 1);
    const exp_arm_result *t = &r->arm[1 - r->control];
    ck_assert_msg(t->hit_diff.lo <= 0 && t->hit_diff.hi >= 0, "difference %.3f [%.3f, %.3f]",
                  t->hit_diff.mean, t->hit_diff.lo, t->hit_diff.hi);
    ck_assert_msg(t->rr_diff.lo <= 0 && t->rr_diff.hi >= 0, "rr difference [%.3f, %.3f]",
                  t->rr_diff.lo, t->rr_diff.hi);
    exp_report_free(&r);
}
END_TEST

/* After a key rotation the old impressions are not guessed at: they are
 * counted under their key id until the old key is given. */
START_TEST(report_after_key_rotation)
{
    const char *db = tu_path("rotate.db");
    tu_make_db(db, 300, 80, 16);
    util_mask old = s_key(1), now = s_key(2);
    s_experiment(db, &old, (const double[]){0.3, 0.3}, 2, 7);
    s_experiment(db, &now, (const double[]){0.3, 0.3}, 2, 8);
    exp_report *r = s_report(db, &now, 1);
    ck_assert_int_eq(r->impressions, 320);
    ck_assert_int_eq(r->joined, 160);
    ck_assert_int_eq(r->unknown_key, 160);
    ck_assert_str_eq(r->unknown_key_ids, old.key_id);
    exp_report_free(&r);
    util_mask both[2] = {now, old};
    r = s_report(db, both, 2);
    ck_assert_int_eq(r->joined, 320);
    ck_assert_int_eq(r->unknown_key, 0);
    exp_report_free(&r);
}
END_TEST

/* Count occurrences in text of any of the users' raw ids (u0001..u0080). */
static int s_raw_ids_in(const char *text)
{
    int found = 0;
    for (int u = 1; u <= 80 && text; u++) {
        char ext[16];
        snprintf(ext, sizeof ext, "u%04d", u);
        found += strstr(text, ext) != NULL;
    }
    return found;
}

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* The whole loop through attnd: sampled rank replies become impressions
 * (users as keyed hashes only), record adds the events that follow, and
 * the report joins them.  Issue 21.2: no raw user id appears in the log,
 * the scrape, stats, info or the impressions table -- only in the rank
 * replies, which answer the caller about their own user. */
START_TEST(impressions_end_to_end)
{
    const char *db = tu_path("imp.db");
    tu_make_db(db, 300, 80, 16);
    int64_t v2 = tu_save_random_model(db, 2, 0, 0, 21);
    const char *keyfile = tu_path("imp.key");
    char why[256];
    ck_assert_msg(util_mask_create(keyfile, why, sizeof why) == 0, "%s", why);
    util_mask key;
    ck_assert_int_eq(util_mask_load(&key, keyfile, why, sizeof why), 0);
    char arms[160], mk[600];
    snprintf(arms, sizeof arms, "experiment.arms=control:active:50,treatment:%lld:50",
             (long long)v2);
    snprintf(mk, sizeof mk, "security.mask_key=%s", keyfile);
    const char *extra[] = {"--set", arms, "--set", "experiment.log_impressions=1", "--set", mk,
                           NULL};
    tu_daemon d;
    tu_daemon_start(&d, db, "imp.sock", extra);
    char req[512];
    for (int u = 1; u <= 80; u++) {
        snprintf(req, sizeof req, "{\"op\":\"rank\",\"id\":%d,\"user\":\"u%04d\",\"k\":5,"
                 "\"candidates\":[\"i00001\",\"i00002\",\"i00003\",\"i00004\",\"i00005\"]}",
                 u, u);
        cJSON *r = tu_call_json(d.endpoint, req);
        ck_assert(tu_ok(r));
        if (u % 4 == 0) {   /* a quarter of the users then touch what they were shown */
            const char *top = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "items")->child,
                                                  "item")->valuestring;
            snprintf(req, sizeof req, "{\"op\":\"record\",\"id\":\"r%d\",\"events\":[{\"user\":"
                     "\"u%04d\",\"item\":\"%s\",\"ts\":%lld}]}", u, u, top,
                     (long long)time(NULL) + 5);
            cJSON *rec = tu_call_json(d.endpoint, req);
            ck_assert_msg(tu_ok(rec), "%s", tu_message(rec));
            cJSON_Delete(rec);
        }
        cJSON_Delete(r);
    }
    char *scrape = NULL;
    ck_assert_int_eq(tu_http_get(tu_daemon_http_port(&d), "/metrics", &scrape,
                                 (int)(5000 * tu_slowdown())), 200);
    ck_assert_int_eq(s_raw_ids_in(scrape), 0);
    free(scrape);
    const char *admin[] = {"{\"op\":\"stats\"}", "{\"op\":\"info\"}", "{\"op\":\"health\"}"};
    for (int i = 0; i < 3; i++) {
        char *text = tu_call(d.endpoint, admin[i], (int)(5000 * tu_slowdown()));
        ck_assert_int_eq(s_raw_ids_in(text), 0);
        free(text);
    }
    ck_assert_int_eq(tu_daemon_stop(&d), 0);   /* the log thread writes what is queued */
    ck_assert_int_eq(s_raw_ids_in(s_slurp(d.log)), 0);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM impressions"), 80);
    ck_assert_int_eq(tu_sql_int(db, "SELECT count(*) FROM impressions WHERE user_hash LIKE "
                                    "'u0%' OR length(user_hash) != 32"), 0);
    exp_report_opts o = {.db = db, .keys = &key, .n_keys = 1, .k = 5, .window = 3600};
    exp_report *r;
    ck_assert_msg(exp_report_run(&o, &r, why, sizeof why) == 0, "%s", why);
    ck_assert_int_eq(r->joined, 80);
    double hits = 0;
    for (int a = 0; a < r->n_arms; a++)
        hits += r->arm[a].hit.mean * r->arm[a].hit.n;
    ck_assert_msg(fabs(hits - 20) < 1e-9, "%.3f users hit, 20 recorded", hits);
    exp_report_free(&r);
}
END_TEST

/* Logging impressions with a key that dies with the process would make
 * them unjoinable: refused at start-up, saying why. */
START_TEST(impressions_need_a_key)
{
    char out[4096], args[600];
    snprintf(args, sizeof args, "--db %s --bind ipc://%s --set metrics.bind= "
             "--set experiment.log_impressions=0.5",
             s_db, tu_path("nokey.sock"));
    ck_assert_int_ne(tu_run_program("attnd", args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "security.mask_key"), "%s", out);
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
    tcase_add_test(tc, precision_per_model);
    tcase_add_test(tc, impressions_end_to_end);
    tcase_add_test(tc, impressions_need_a_key);
    suite_add_tcase(s, tc);
    tc = tcase_create("report");
    tcase_set_timeout(tc, 60 * tu_slowdown());
    tcase_add_test(tc, report_finds_the_better_arm);
    tcase_add_test(tc, report_identical_arms_cover_zero);
    tcase_add_test(tc, report_after_key_rotation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(exp_suite());
}
