/* check_proto.c -- the request parser's two paths agree.
 *
 * srv_request_parse reads requests in util_json_scan's subset in place and
 * hands everything else to srv_request_parse_json (cJSON).  Whatever path
 * a request takes, its outcome must be the one the cJSON path alone gives:
 * the same code, the same message, the same id, the same op and the same
 * fields, to the bit.  Each test runs a corpus through both and compares:
 * requests written here field by field, the fuzz corpus
 * (tests/fuzz/request, tests/fuzz/record), and every one-byte mutation of a
 * few requests.  cJSON's allocations are counted, so that the tests also
 * show the fast path really took the requests it should (a test where
 * everything fell back would compare cJSON with itself).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/arena.h"
#include "daemon/config.h"
#include "daemon/ops.h"
#include "daemon/proto.h"
#include "daemon/rank.h"
#include "daemon/record.h"
#include "tests/testutil.h"

#ifndef ATTN_SRC_DIR
#define ATTN_SRC_DIR "."
#endif

static srv_arena s_fast_arena, s_json_arena;
static long s_cjson_allocs;

static void *s_count_malloc(size_t n)
{
    s_cjson_allocs++;
    return malloc(n);
}

static void s_setup(void)
{
    cJSON_Hooks h = {.malloc_fn = s_count_malloc, .free_fn = free};
    cJSON_InitHooks(&h);
    ck_assert_int_eq(srv_arena_init(&s_fast_arena, 1 << 20), 0);
    ck_assert_int_eq(srv_arena_init(&s_json_arena, 1 << 20), 0);
}

static void s_teardown(void)
{
    srv_arena_free(&s_fast_arena);
    srv_arena_free(&s_json_arena);
}

/* A file's bytes (malloc'd), or NULL. */
static char *s_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    return buf;
}

static void s_same_str(const srv_str *a, const srv_str *b, const char *what)
{
    ck_assert_msg((a->s == NULL) == (b->s == NULL), "%s: one is NULL", what);
    if (!a->s)
        return;
    ck_assert_uint_eq(a->len, b->len);
    ck_assert_msg(!memcmp(a->s, b->s, a->len) && a->s[a->len] == 0 && b->s[b->len] == 0,
                  "%s: '%s' vs '%s'", what, a->s, b->s);
}

static void s_same_strs(const srv_str *a, const srv_str *b, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        s_same_str(&a[i], &b[i], what);
}

static void s_same_rank(const srv_rank_args *a, const srv_rank_args *b)
{
    s_same_str(&a->user, &b->user, "user");
    ck_assert_int_eq(a->n_history, b->n_history);
    s_same_strs(a->history, b->history, a->n_history, "history");
    ck_assert((a->weights == NULL) == (b->weights == NULL));
    if (a->weights)
        ck_assert(!memcmp(a->weights, b->weights, (size_t)a->n_history * sizeof *a->weights));
    ck_assert_int_eq(a->n_cand, b->n_cand);
    s_same_strs(a->cand, b->cand, a->n_cand, "candidates");
    ck_assert_int_eq(a->k, b->k);
    ck_assert_int_eq(a->explain, b->explain);
    ck_assert_int_eq(a->exclude_seen, b->exclude_seen);
    ck_assert_int_eq(a->titles, b->titles);
    ck_assert_int_eq(a->model, b->model);
    s_same_str(&a->session, &b->session, "session");
}

static void s_same_record(const srv_record_args *a, const srv_record_args *b)
{
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        s_same_str(&a->ev[i].user, &b->ev[i].user, "user");
        s_same_str(&a->ev[i].item, &b->ev[i].item, "item");
        s_same_str(&a->ev[i].kind, &b->ev[i].kind, "kind");
        s_same_str(&a->ev[i].event_id, &b->ev[i].event_id, "event_id");
        ck_assert_int_eq(a->ev[i].ts, b->ev[i].ts);
        ck_assert(!memcmp(&a->ev[i].weight, &b->ev[i].weight, sizeof(float)));
    }
}

/* One request through both paths.  Returns the code, and in *fast whether
 * srv_request_parse answered without cJSON. */
static int s_both(const char *buf, size_t len, const srv_config *cfg, int *fast)
{
    srv_request a, b;
    char wa[600] = "", wb[600] = "";
    srv_arena_reset(&s_fast_arena);
    srv_arena_reset(&s_json_arena);
    long before = s_cjson_allocs;
    int ca = srv_request_parse(buf, len, cfg, &s_fast_arena, &a, wa, sizeof wa);
    if (fast)
        *fast = s_cjson_allocs == before;
    int cb = srv_request_parse_json(buf, len, cfg, &s_json_arena, &b, wb, sizeof wb);
    ck_assert_msg(ca == cb, "%.*s: code %d vs %d (%s | %s)", (int)len, buf, ca, cb, wa, wb);
    ck_assert_str_eq(a.id_json, b.id_json);
    ck_assert_ptr_eq(a.op, b.op);
    if (ca != SRV_OK) {
        ck_assert_msg(!strcmp(wa, wb), "%.*s: '%s' vs '%s'", (int)len, buf, wa, wb);
        return ca;
    }
    ck_assert((a.args == NULL) == (b.args == NULL));
    if (a.op->parse == srv_rank_parse)
        s_same_rank(a.args, b.args);
    else if (a.op->parse == srv_record_parse)
        s_same_record(a.args, b.args);
    return ca;
}

static void s_config(srv_config *cfg, int small)
{
    char why[300];
    cfg_defaults(cfg);
    if (!small)
        return;
    const char *set[][2] = {{"limits.max_candidates", "4"}, {"limits.max_k", "3"},
                            {"limits.max_explain", "2"},   {"limits.default_k", "2"},
                            {"limits.max_message_bytes", "300"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        ck_assert_msg(cfg_set(cfg, set[i][0], set[i][1], why, sizeof why) == 0, "%s", why);
}

/* Every rank field with good and bad values, alone and together: each
 * message of docs/PROTOCOL.md a rank parse can give, from both paths. */
START_TEST(rank_fields_agree)
{
    static const char *const fields[] = {
        "\"user\":\"u1\"", "\"user\":\"\"", "\"user\":7", "\"user\":null", "\"user\":[\"u\"]",
        "\"history\":[\"a\",\"b\"]", "\"history\":[]", "\"history\":[\"a\",1]",
        "\"history\":[\"a\",\"\"]", "\"history\":\"a\"", "\"history\":[\"a\",null]",
        "\"history\":[\"a\",[\"b\"]]", "\"history\":[\"caf\xc3\xa9\"]",
        "\"history\":[\"a\\\"b\"]", "\"weights\":[1,0.5]", "\"weights\":[1]",
        "\"weights\":[1,0]", "\"weights\":[1,1e-46]", "\"weights\":[1,1e39]",
        "\"weights\":[1,\"2\"]", "\"weights\":[1,-0.0]", "\"weights\":[1,1.0000000001]",
        "\"candidates\":[\"x\",\"y\"]", "\"candidates\":[\"x\",\"y\",\"z\",\"w\",\"v\"]",
        "\"candidates\":[]", "\"candidates\":[\"x\",5]", "\"candidates\":{}",
        "\"candidates\":[\"x\",\"x\"]", "\"k\":3", "\"k\":0", "\"k\":1.5", "\"k\":1e1",
        "\"k\":\"3\"", "\"k\":-0", "\"k\":100000000000000000000", "\"explain\":2",
        "\"explain\":-1", "\"explain\":true", "\"exclude_seen\":true", "\"exclude_seen\":1",
        "\"titles\":false", "\"titles\":true", "\"model\":3", "\"model\":-2",
        "\"model\":2.0", "\"session\":\"s\"", "\"session\":\"\"", "\"session\":5",
        "\"id\":\"r1\"", "\"id\":12", "\"id\":1.5", "\"id\":-0", "\"id\":1e3", "\"id\":[1]",
        "\"id\":\"\\u00e9\"", "\"id\":null", "\"op\":\"health\"", "\"op\":5", "\"op\":\"nope\"",
    };
    int n = (int)(sizeof fields / sizeof fields[0]);
    srv_config cfg[2];
    s_config(&cfg[0], 0);
    s_config(&cfg[1], 1);
    tu_rng r = {.s = 99};
    int fast_ok = 0, ok = 0;
    char req[2048];
    for (int t = 0; t < 6000; t++) {
        /* A base that is valid, then one to four fields (later keys are
         * duplicates: the first one counts, in both paths). */
        int at = snprintf(req, sizeof req, "{\"op\":\"rank\"");
        int extra = 1 + (int)(tu_uniform(&r) * 4);
        for (int e = 0; e < extra; e++)
            at += snprintf(req + at, sizeof req - (size_t)at, ",%s",
                           fields[(int)(tu_uniform(&r) * n)]);
        if (tu_uniform(&r) < 0.7)
            at += snprintf(req + at, sizeof req - (size_t)at, ",\"history\":[\"a\",\"b\"]");
        if (tu_uniform(&r) < 0.8)
            at += snprintf(req + at, sizeof req - (size_t)at, ",\"candidates\":[\"x\",\"y\"]");
        snprintf(req + at, sizeof req - (size_t)at, "}");
        int fast;
        if (s_both(req, strlen(req), &cfg[t & 1], &fast) == SRV_OK && !strchr(req, '\\')) {
            ok++;
            fast_ok += fast;
            /* A valid request without escapes is the fast path's. */
            ck_assert_msg(fast, "%s: went to cJSON", req);
        }
    }
    ck_assert_int_gt(ok, 500);
    ck_assert_int_eq(fast_ok, ok);
}
END_TEST

/* The fuzz corpus: every file, both configurations. */
START_TEST(fuzz_corpus_agrees)
{
    static const char *const dirs[] = {ATTN_SRC_DIR "/tests/fuzz/request",
                                       ATTN_SRC_DIR "/tests/fuzz/record"};
    srv_config cfg[2];
    s_config(&cfg[0], 0);
    s_config(&cfg[1], 1);
    int files = 0;
    for (size_t d = 0; d < 2; d++) {
        DIR *dir = opendir(dirs[d]);
        ck_assert_msg(dir != NULL, "%s", dirs[d]);
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            size_t len;
            char *buf = s_read_file(path, &len);
            ck_assert_msg(buf != NULL, "%s", path);
            s_both(buf, len, &cfg[0], NULL);
            s_both(buf, len, &cfg[1], NULL);
            free(buf);
            files++;
        }
        closedir(dir);
    }
    ck_assert_int_ge(files, 10);
}
END_TEST

/* Every byte of a few requests deleted, and replaced by each byte that
 * means something to JSON, UTF-8 or the envelope; and every prefix. */
START_TEST(mutations_agree)
{
    static const char *const seeds[] = {
        "{\"id\":\"l1000001\",\"op\":\"rank\",\"history\":[\"i12\",\"i7\",\"i12\"],"
        "\"candidates\":[\"i3\",\"i4\",\"i99\"],\"k\":2}",
        "{\"op\":\"rank\",\"id\":5,\"user\":\"u1\",\"candidates\":[\"a\"],\"explain\":1,"
        "\"exclude_seen\":true,\"model\":1,\"session\":\"s\"}",
        "{\"op\":\"rank\",\"history\":[\"a\",\"b\"],\"weights\":[1.5,2e-3],"
        "\"candidates\":[\"c\",\"d\"],\"titles\":false}",
        "{\"op\":\"record\",\"id\":\"w\",\"events\":[{\"user\":\"u\",\"item\":\"i\",\"ts\":1}]}",
        "{\"op\":\"health\",\"id\":\"h\"}",
    };
    static const char repl[] = {'"', '\\', ',', ':', '[', ']', '{', '}', ' ', '\n', '0', '9',
                                '-', '.', 'e', 'n', 't', 'x', (char)0x80, (char)0xc3,
                                (char)0xff, 0, 1, 0x7f};
    srv_config cfg;
    s_config(&cfg, 0);
    char buf[512];
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        size_t len = strlen(seeds[s]);
        for (size_t i = 0; i < len; i++) {
            memcpy(buf, seeds[s], i);
            memcpy(buf + i, seeds[s] + i + 1, len - i - 1);
            s_both(buf, len - 1, &cfg, NULL);
            s_both(seeds[s], i, &cfg, NULL);
            for (size_t k = 0; k < sizeof repl; k++) {
                memcpy(buf, seeds[s], len);
                buf[i] = repl[k];
                s_both(buf, len, &cfg, NULL);
            }
        }
    }
}
END_TEST

/* Sizes and counts at and around the limits, where the two paths count
 * differently (elements in the scan, a tree in cJSON). */
START_TEST(limits_agree)
{
    srv_config cfg;
    s_config(&cfg, 0);
    size_t cap = (size_t)cfg.max_message_bytes + 2 > (1 << 20) ? (size_t)cfg.max_message_bytes + 2
                                                                : (size_t)1 << 20;
    char *req = malloc(cap);
    ck_assert_ptr_nonnull(req);
    for (int n = cfg.max_candidates - 1; n <= cfg.max_candidates + 1; n++) {
        size_t at = (size_t)sprintf(req, "{\"op\":\"rank\",\"user\":\"u\",\"candidates\":[");
        for (int i = 0; i < n; i++)
            at += (size_t)sprintf(req + at, "%s\"c%d\"", i ? "," : "", i);
        strcpy(req + at, "]}");
        int fast;
        int code = s_both(req, strlen(req), &cfg, &fast);
        ck_assert_int_eq(code, n <= cfg.max_candidates ? SRV_OK : SRV_E_BAD_REQUEST);
        if (code == SRV_OK)
            ck_assert(fast);
    }
    /* Deep nesting: the scan gives up, cJSON decides. */
    size_t at = (size_t)sprintf(req, "{\"op\":\"rank\",\"x\":");
    for (int i = 0; i < 200; i++)
        req[at++] = '[';
    for (int i = 0; i < 200; i++)
        req[at++] = ']';
    strcpy(req + at, ",\"user\":\"u\",\"candidates\":[\"a\"]}");
    ck_assert_int_eq(s_both(req, strlen(req), &cfg, NULL), SRV_OK);
    /* Over max_message_bytes by one. */
    memset(req, ' ', (size_t)cfg.max_message_bytes + 1);
    memcpy(req, "{\"op\":\"health\"}", 15);
    ck_assert_int_eq(s_both(req, (size_t)cfg.max_message_bytes + 1, &cfg, NULL),
                     SRV_E_TOO_LARGE);
    ck_assert_int_eq(s_both(req, (size_t)cfg.max_message_bytes, &cfg, NULL), SRV_OK);
    free(req);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("fast_vs_json");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 120 * tu_slowdown());
    tcase_add_test(tc, rank_fields_agree);
    tcase_add_test(tc, fuzz_corpus_agrees);
    tcase_add_test(tc, mutations_agree);
    tcase_add_test(tc, limits_agree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
