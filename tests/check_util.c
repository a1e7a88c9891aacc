/* check_util.c -- the shared utilities: rng, set, hist, json, utf8, clock.
 *
 * Each utility is checked against something independent of it: the
 * generators against published test vectors and outputs computed by a
 * separate (Python) implementation, the set against a plain bitmap, the
 * histogram against sorted raw values, escaping against cJSON's parser, and
 * UTF-8 validation against a decoder that computes code points (a different
 * algorithm from util/utf8.c's table of second bytes), exhaustively for
 * every sequence of up to three bytes.
 */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/testutil.h"
#include "util/clock.h"
#include "util/ftoa.h"
#include "util/hash.h"
#include "util/hist.h"
#include "util/json.h"
#include "util/mask.h"
#include "util/proc.h"
#include "util/rng.h"
#include "util/set.h"
#include "util/utf8.h"

/* ---- rng ------------------------------------------------------------------ */

/* splitmix64 from seed 0 starts 0xe220a8397b1dcdaf (the value in Vigna's
 * reference splitmix64.c); the rest were computed in Python. */
START_TEST(test_splitmix)
{
    uint64_t s = 0;
    ck_assert_uint_eq(util_splitmix64(&s), 0xe220a8397b1dcdafull);
    ck_assert_uint_eq(util_splitmix64(&s), 0x6e789e6aa1b965f4ull);
    ck_assert_uint_eq(util_splitmix64(&s), 0x06c45d188009454full);
    ck_assert_uint_eq(s, 3 * UTIL_SPLITMIX_GAMMA);
    s = 1234567;
    ck_assert_uint_eq(util_splitmix64(&s), 0x599ed017fb08fc85ull);
    ck_assert_uint_eq(util_splitmix64(&s), 0x2c73f08458540fa5ull);
    ck_assert_uint_eq(util_splitmix64(&s), 0x883ebce5a3f27c77ull);

    /* Lemire scaling: (x * n) >> 64. */
    s = 99;
    const uint32_t want[] = {261, 31, 834, 102, 170};
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(util_rng_scale(util_splitmix64(&s), 1000), want[i]);
    ck_assert_uint_eq(util_rng_scale(UINT64_MAX, 7), 6);
    ck_assert_uint_eq(util_rng_scale(0, 7), 0);

    /* Unit intervals: [0, 1) and (0, 1], 53 bits. */
    ck_assert(util_rng_unit(0) == 0.0);
    ck_assert(util_rng_unit(UINT64_MAX) == 1.0 - 0x1.0p-53);
    ck_assert(util_rng_open_unit(0) == 0x1.0p-54);
    ck_assert(util_rng_open_unit(UINT64_MAX) == 1.0);   /* 1 - 2^-54 rounds to 1 */
    ck_assert(util_rng_unit(1ull << 63) == 0.5);
}
END_TEST

/* xoshiro256** from the state {1, 2, 3, 4}: 11520, 0, 1509978240,
 * 1215971899390074240 (the published reference outputs). */
START_TEST(test_xoshiro)
{
    util_xoshiro r = {{1, 2, 3, 4}};
    ck_assert_uint_eq(util_xoshiro_next(&r), 11520u);
    ck_assert_uint_eq(util_xoshiro_next(&r), 0u);
    ck_assert_uint_eq(util_xoshiro_next(&r), 1509978240u);
    ck_assert_uint_eq(util_xoshiro_next(&r), 1215971899390074240ull);

    /* Seeding: four splitmix64 outputs of the seed (Python). */
    util_xoshiro_seed(&r, 42);
    ck_assert_uint_eq(util_xoshiro_next(&r), 0x15780b2e0c2ec716ull);
    ck_assert_uint_eq(util_xoshiro_next(&r), 0x6104d9866d113a7eull);
    ck_assert_uint_eq(util_xoshiro_next(&r), 0xae17533239e499a1ull);
    uint64_t x = 42;
    util_xoshiro_seed(&r, 42);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(r.s[i], util_splitmix64(&x));

    /* below: rejection then modulo (Python, same stream). */
    util_xoshiro_seed(&r, 42);
    const uint32_t want[] = {2, 2, 9, 3, 6, 4, 4, 7};
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(util_xoshiro_below(&r, 10), want[i]);
    ck_assert_uint_eq(util_xoshiro_below(&r, 1), 0);

    /* Uniformity: 3 x 30000 draws, each residue within 3% of a third. */
    unsigned count[3] = {0};
    for (int i = 0; i < 90000; i++)
        count[util_xoshiro_below(&r, 3)]++;
    for (int k = 0; k < 3; k++)
        ck_assert_msg(abs((int)count[k] - 30000) < 900, "residue %d: %u", k, count[k]);
    /* A huge n (near 2^32) stays in range. */
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_lt(util_xoshiro_below(&r, 4000000001u), 4000000001u);
}
END_TEST

START_TEST(test_xorshift)
{
    uint64_t x = 1;
    ck_assert_uint_eq(util_xorshift64(&x), 0x40822041ull);
    ck_assert_uint_eq(util_xorshift64(&x), 0x100041060c011441ull);
    ck_assert_uint_eq(util_xorshift64(&x), 0x9b1e842f6e862629ull);
    ck_assert_uint_eq(x, 0x9b1e842f6e862629ull);   /* returns the new state */
}
END_TEST

/* Box-Muller: the first pairs against Python's math module, then the
 * moments of many draws. */
START_TEST(test_gauss)
{
    uint64_t s = 7;
    double g[2];
    const double want[4] = {1.3649922974572284, 0.14452122126941497, -0.39652397525381783,
                            -0.22759631143286652};
    for (int i = 0; i < 2; i++) {
        util_splitmix_gauss2(&s, g);
        ck_assert_double_eq_tol(g[0], want[2 * i], 1e-12);
        ck_assert_double_eq_tol(g[1], want[2 * i + 1], 1e-12);
    }
    ck_assert_uint_eq(s, 7 + 4 * UTIL_SPLITMIX_GAMMA);   /* two draws per pair */
    double sum = 0, sq = 0;
    enum { N = 200000 };
    for (int i = 0; i < N / 2; i++) {
        util_splitmix_gauss2(&s, g);
        ck_assert(isfinite(g[0]) && isfinite(g[1]));
        sum += g[0] + g[1];
        sq += g[0] * g[0] + g[1] * g[1];
    }
    double mean = sum / N, var = sq / N - mean * mean;
    ck_assert_msg(fabs(mean) < 0.01, "mean %g", mean);
    ck_assert_msg(fabs(var - 1.0) < 0.02, "variance %g", var);
}
END_TEST

/* ---- set ------------------------------------------------------------------ */

START_TEST(test_set_basic)
{
    ck_assert_uint_eq(util_set_slots(0), 16);
    ck_assert_uint_eq(util_set_slots(8), 16);
    ck_assert_uint_eq(util_set_slots(9), 32);
    ck_assert_uint_eq(util_set_slots(100), 256);
    util_set s;
    ck_assert_int_eq(util_set_init(&s, 100, 0), 0);
    ck_assert_ptr_null(s.val);
    ck_assert_int_eq(util_set_has(&s, 7), 0);
    ck_assert_int_eq(util_set_add(&s, 7), 1);
    ck_assert_int_eq(util_set_add(&s, 7), 0);
    ck_assert_int_eq(util_set_has(&s, 7), 1);
    ck_assert_int_eq(util_set_add(&s, 0), 1);            /* 0 is a key like any other */
    ck_assert_int_eq(util_set_add(&s, UINT32_MAX), 1);
    ck_assert_int_eq(util_set_has(&s, 0), 1);
    ck_assert_int_eq(util_set_has(&s, UINT32_MAX), 1);
    ck_assert_uint_eq(s.n, 3);
    util_set_clear(&s);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_int_eq(util_set_has(&s, 7), 0);
    ck_assert_int_eq(util_set_has(&s, 0), 0);
    ck_assert_int_eq(util_set_add(&s, 7), 1);
    util_set_free(&s);
    ck_assert_ptr_null(s.key);
    util_set_free(&s);                                    /* twice is fine */
}
END_TEST

/* Against a bitmap: random keys from a small range (many repeats), and
 * keys that all hash to one slot (multiples of the table size), filled to
 * capacity, over many clears. */
START_TEST(test_set_oracle)
{
    enum { CAP = 200, RANGE = 1000 };
    util_set s;
    ck_assert_int_eq(util_set_init(&s, CAP, 1), 0);
    ck_assert_ptr_nonnull(s.val);
    const uint32_t slots = (uint32_t)util_set_slots(CAP);
    static unsigned char in[RANGE];
    static uint32_t first[RANGE];
    tu_rng r = {77};
    for (int round = 0; round < 300; round++) {
        util_set_clear(&s);
        memset(in, 0, sizeof in);
        uint32_t n = 0;
        for (int i = 0; n < CAP && i < 4 * CAP; i++) {
            uint32_t k = (uint32_t)(tu_next(&r) % RANGE);
            uint32_t key = round % 2 ? k * slots : k;     /* odd rounds: all collide */
            uint32_t old = 12345;
            int fresh = util_set_put(&s, key, (uint32_t)i, &old);
            ck_assert_int_eq(fresh, !in[k]);
            if (fresh) {
                in[k] = 1;
                first[k] = (uint32_t)i;
                n++;
            } else {
                ck_assert_uint_eq(old, first[k]);         /* the first put's value */
            }
        }
        ck_assert_uint_eq(s.n, n);
        for (uint32_t k = 0; k < RANGE; k++)
            ck_assert_int_eq(util_set_has(&s, round % 2 ? k * slots : k), in[k]);
    }
    util_set_free(&s);
}
END_TEST

/* The 32-bit generation wraps: stale stamps must not come back. */
START_TEST(test_set_wrap)
{
    util_set s;
    ck_assert_int_eq(util_set_init(&s, 4, 0), 0);
    ck_assert_int_eq(util_set_add(&s, 5), 1);             /* stamped with generation 1 */
    util_set_clear(&s);
    s.cur = UINT32_MAX - 1;                               /* as if 2^32 - 3 clears went by */
    util_set_clear(&s);
    ck_assert_uint_eq(s.cur, UINT32_MAX);
    ck_assert_int_eq(util_set_has(&s, 5), 0);
    ck_assert_int_eq(util_set_add(&s, 9), 1);
    util_set_clear(&s);                                   /* wraps: the stamps are zeroed */
    ck_assert_uint_eq(s.cur, 1);
    ck_assert_int_eq(util_set_has(&s, 5), 0);             /* its stamp 1 would match again */
    ck_assert_int_eq(util_set_has(&s, 9), 0);
    ck_assert_int_eq(util_set_add(&s, 5), 1);
    util_set_free(&s);
}
END_TEST

/* Caller memory (an arena) and growth. */
START_TEST(test_set_memory)
{
    uint32_t key[16], val[16], stamp[16] = {0};
    util_set s;
    util_set_init_at(&s, 8, key, val, stamp);
    ck_assert_int_eq(s.owned, 0);
    uint32_t old;
    for (uint32_t i = 0; i < 8; i++)
        ck_assert_int_eq(util_set_put(&s, 100 + i, i, &old), 1);
    ck_assert_int_eq(util_set_put(&s, 103, 99, &old), 0);
    ck_assert_uint_eq(old, 3);
    util_set_free(&s);                                    /* forgets, frees nothing */
    ck_assert_ptr_null(s.key);

    util_set g = {0};
    ck_assert_int_eq(util_set_reserve(&g, 10), 0);        /* from nothing */
    ck_assert_ptr_null(g.val);
    ck_assert_int_eq(util_set_add(&g, 3), 1);
    uint32_t *was = g.key;
    ck_assert_int_eq(util_set_reserve(&g, 10), 0);        /* big enough: kept as it is */
    ck_assert_ptr_eq(g.key, was);
    ck_assert_int_eq(util_set_has(&g, 3), 1);
    ck_assert_int_eq(util_set_reserve(&g, 5000), 0);      /* grown: empty */
    ck_assert_uint_eq(g.cap, 5000);
    ck_assert_int_eq(util_set_has(&g, 3), 0);
    for (uint32_t i = 0; i < 5000; i++)
        ck_assert_int_eq(util_set_add(&g, i * 7919u), 1);
    util_set_free(&g);
    ck_assert_int_eq(util_set_init(&g, (1u << 30) + 1, 0), -1);   /* beyond the limit */
    util_set_free(&g);
}
END_TEST

/* ---- hist ----------------------------------------------------------------- */

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(test_hist)
{
    static util_hist h, h2, hm;
    enum { N = 20000 };
    static uint64_t v[N];
    tu_rng r = {1212};
    const double qs[] = {0.0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0};
    for (int dist = 0; dist < 4; dist++) {
        util_hist_reset(&h);
        util_hist_reset(&h2);
        uint64_t sum = 0;
        for (int i = 0; i < N; i++) {
            double u = tu_uniform(&r);
            v[i] = dist == 0 ? (uint64_t)(1 + u * 1e9)               /* uniform */
                 : dist == 1 ? (uint64_t)(-log(1 - u) * 250000.0)     /* exponential */
                 : dist == 2 ? (uint64_t)exp(5 + 25 * u)              /* log-uniform */
                             : (uint64_t)(u * 300);                   /* small, exact */
            util_hist_add(i % 2 ? &h : &h2, v[i]);
            sum += v[i];
        }
        hm = h;
        util_hist_merge(&hm, &h2);
        qsort(v, N, sizeof v[0], s_cmp_u64);
        ck_assert_uint_eq(hm.n, N);
        ck_assert_uint_eq(hm.sum, sum);
        ck_assert_uint_eq(hm.min, v[0]);
        ck_assert_uint_eq(hm.max, v[N - 1]);
        for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
            size_t rank = (size_t)ceil(qs[i] * N);
            uint64_t truth = v[rank ? rank - 1 : 0];
            uint64_t got = util_hist_quantile(&hm, qs[i]);
            double rel = truth ? fabs((double)got - (double)truth) / (double)truth
                               : (double)got;
            ck_assert_msg(rel < 0.01, "dist %d q %g: got %llu true %llu", dist, qs[i],
                          (unsigned long long)got, (unsigned long long)truth);
            if (truth < 256)
                ck_assert_uint_eq(got, truth);             /* buckets of width 1 */
        }
    }
    util_hist_reset(&h);
    ck_assert_uint_eq(util_hist_quantile(&h, 0.5), 0);
    ck_assert_uint_eq(h.min, UINT64_MAX);
    util_hist_add(&h, UINT64_MAX);                         /* beyond the range */
    util_hist_add(&h, 5);
    ck_assert_uint_eq(util_hist_quantile(&h, 1.0), UINT64_MAX);
    ck_assert_uint_eq(util_hist_quantile(&h, 0.0), 5);
    ck_assert_uint_eq(util_hist_quantile(&h, 0.5), 5);
    ck_assert_uint_le(util_hist_quantile(&h, 0.75), UINT64_MAX);
}
END_TEST

/* The error bound, value by value: with one value below and one far above,
 * the median is v's bucket midpoint, which must lie within 1/256 of v
 * (half a sub-bucket of width 2^(p-7) against v >= 2^p). */
START_TEST(test_hist_bound)
{
    static util_hist h;
    tu_rng r = {31};
    double worst = 0;
    for (int p = 7; p < UTIL_HIST_POW2 + 7; p++) {
        for (int i = 0; i < 200; i++) {
            uint64_t base = (uint64_t)1 << p;
            uint64_t v = base + tu_next(&r) % base;       /* in [2^p, 2^(p+1)) */
            util_hist_reset(&h);
            util_hist_add(&h, 1);
            util_hist_add(&h, v);
            util_hist_add(&h, UINT64_MAX);
            uint64_t got = util_hist_quantile(&h, 0.5);
            double rel = fabs((double)got - (double)v) / (double)v;
            ck_assert_msg(rel <= 1.0 / 256, "v %llu: got %llu (%g)", (unsigned long long)v,
                          (unsigned long long)got, rel);
            if (rel > worst)
                worst = rel;
        }
    }
    ck_assert(worst > 1.0 / 1024);   /* the sweep did reach inexact buckets */
    for (uint64_t v = 0; v < UTIL_HIST_SUB; v++) {   /* exact below SUB */
        util_hist_reset(&h);
        util_hist_add(&h, 0);
        util_hist_add(&h, v);
        util_hist_add(&h, 1000000);
        ck_assert_uint_eq(util_hist_quantile(&h, 0.5), v);
    }
}
END_TEST

/* ---- json ----------------------------------------------------------------- */

static void s_quote_eq(const char *in, size_t len, const char *want)
{
    char out[UTIL_JSON_QUOTED_MAX(64)];
    ck_assert_uint_le(len, 64);
    size_t n = util_json_quote(out, in, len);
    ck_assert_uint_le(n, UTIL_JSON_QUOTED_MAX(len));
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_msg(memcmp(out, want, n) == 0, "got %.*s want %s", (int)n, out, want);
}

START_TEST(test_json_quote)
{
    s_quote_eq("", 0, "\"\"");
    s_quote_eq("plain", 5, "\"plain\"");
    s_quote_eq("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    s_quote_eq("\n\r\t", 3, "\"\\n\\r\\t\"");
    s_quote_eq("\x01\x08\x0c\x1f", 4, "\"\\u0001\\u0008\\u000c\\u001f\"");
    s_quote_eq("x\0y", 3, "\"x\\u0000y\"");                       /* NUL inside */
    s_quote_eq("\x7f/", 2, "\"\x7f/\"");                         /* DEL and / pass */
    s_quote_eq("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
               "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");    /* UTF-8 passes */

    /* Every byte 1..255 (as valid UTF-8: bytes >= 0x80 as U+0080..U+00FF),
     * quoted, must parse back to itself with cJSON. */
    char in[512], out[UTIL_JSON_QUOTED_MAX(512) + 1];
    size_t len = 0;
    for (int c = 1; c < 256; c++) {
        if (c < 0x80) {
            in[len++] = (char)c;
        } else {
            in[len++] = (char)(0xC0 | (c >> 6));
            in[len++] = (char)(0x80 | (c & 0x3F));
        }
    }
    size_t n = util_json_quote(out, in, len);
    out[n] = '\0';
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(cJSON_IsString(j), "%s", out);
    ck_assert_uint_eq(strlen(j->valuestring), len);
    ck_assert(memcmp(j->valuestring, in, len) == 0);
    cJSON_Delete(j);
}
END_TEST


/* ---- ftoa ----------------------------------------------------------------- */

/* Significant digits of a number's text: first to last non-zero digit
 * before any exponent ("100" has one, "0.0105" three). */
static int s_sig_digits(const char *t)
{
    int n = 0, last = 0;
    for (; *t && *t != 'e'; t++) {
        if (*t < '0' || *t > '9' || (n == 0 && *t == '0'))
            continue;
        n++;
        if (*t != '0')
            last = n;
    }
    return last;
}

/* Whether d * 10^e (d > 0) reads back as x. */
static int s_reads_as(long long d, int e, float x)
{
    char t[64];
    snprintf(t, sizeof t, "%llde%d", d, e);
    float y = strtof(t, NULL);
    return memcmp(&y, &x, sizeof y) == 0;
}

/* One float against the oracle (glibc's printf and strtof, both exact):
 * the text reads back bit for bit; no text with one digit fewer does
 * (the nearest such decimal and its two neighbours); and when printf's
 * nearest decimal with as many digits reads back, ours is the same
 * number, or as near (a tie). */
static void s_check_f32(float x)
{
    char out[UTIL_F32_MAX];
    size_t n = util_f32_shortest(out, x);
    ck_assert_uint_eq(n, strlen(out));
    ck_assert_uint_lt(n, UTIL_F32_MAX);
    float back = strtof(out, NULL);
    ck_assert_msg(memcmp(&back, &x, sizeof x) == 0, "%.9g: wrote %s, reads %.9g", x, out, back);
    /* JSON's number grammar: no '+', no leading zeros, digits after '.'. */
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(cJSON_IsNumber(j), "%s", out);
    cJSON_Delete(j);
    ck_assert_msg(!strchr(out, '+') && !(out[0] == '0' && out[1] >= '0' && out[1] <= '9'), "%s",
                  out);
    int p = s_sig_digits(out);
    if (x == 0 || p <= 1)
        return;
    char ref[64];
    snprintf(ref, sizeof ref, "%.*e", p - 2, fabs((double)x));   /* p - 1 digits */
    char *e = strchr(ref, 'e');
    int ex = atoi(e + 1) - (p - 2);
    long long d = 0;
    for (char *c = ref; c < e; c++)
        if (*c >= '0' && *c <= '9')
            d = d * 10 + (*c - '0');
    float ax = fabsf(x);
    for (long long k = d - 1; k <= d + 1; k++)
        ck_assert_msg(k <= 0 || !s_reads_as(k, ex, ax),
                      "%.9g: wrote %s (%d digits) but %llde%d reads back too", x, out, p, k, ex);
    snprintf(ref, sizeof ref, "%.*e", p - 1, fabs((double)x));
    float r = strtof(ref, NULL);
    if (r == ax) {
        long double want = strtold(ref, NULL), got = fabsl(strtold(out, NULL));
        long double dw = fabsl(want - (long double)ax), dg = fabsl(got - (long double)ax);
        ck_assert_msg(got == want || fabsl(dg - dw) <= 1e-6L * dw, "%.9g: wrote %s, nearest %s", x,
                      out, ref);
    }
}

START_TEST(test_f32_edges)
{
    const float fixed[] = {0.0f, -0.0f, 1.0f, -1.0f, 1.82f, 0.1f, 0.3f, 2.5f, 100.0f, 1e9f,
                           999999999.0f, 123456789.0f, 1e-5f, 9.99999975e-6f, 1e-6f, 16777216.0f,
                           16777217.0f, FLT_MAX, -FLT_MAX, FLT_MIN, FLT_TRUE_MIN, 3e-45f,
                           1.17549421e-38f /* largest subnormal */, 3.14159265f, 1e38f, 1e-38f};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        s_check_f32(fixed[i]);
    char out[UTIL_F32_MAX];
    util_f32_shortest(out, 1.82f);
    ck_assert_str_eq(out, "1.82");
    util_f32_shortest(out, -0.5f);
    ck_assert_str_eq(out, "-0.5");
    util_f32_shortest(out, 100.0f);
    ck_assert_str_eq(out, "100");
    util_f32_shortest(out, 1e9f);
    ck_assert_str_eq(out, "1e9");
    util_f32_shortest(out, 1.5e-7f);
    ck_assert_str_eq(out, "1.5e-7");
    util_f32_shortest(out, 0.00012f);
    ck_assert_str_eq(out, "0.00012");
    util_f32_shortest(out, FLT_TRUE_MIN);
    ck_assert_str_eq(out, "1e-45");
    util_f32_shortest(out, FLT_MAX);
    ck_assert_str_eq(out, "3.4028235e38");
    util_f32_shortest(out, -0.0f);
    ck_assert_str_eq(out, "-0");
    /* Every power of two and both its neighbours: the interval below a
     * power of two is half the one above. */
    for (int e = -149; e <= 127; e++) {
        float x = ldexpf(1.0f, e);
        s_check_f32(x);
        s_check_f32(nextafterf(x, 0));
        s_check_f32(nextafterf(x, INFINITY));
    }
}
END_TEST

/* Random bit patterns cover every exponent, subnormals included; random
 * scores cover the values replies carry. */
START_TEST(test_f32_random)
{
    tu_rng r = {.s = 2718};
    for (int i = 0; i < 300000; i++) {
        uint32_t bits = (uint32_t)tu_next(&r);
        float x;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x))
            continue;
        s_check_f32(x);
    }
    for (int i = 0; i < 100000; i++)
        s_check_f32((float)((tu_uniform(&r) - 0.5) * 40.0));
}
END_TEST

/* ---- json scan ------------------------------------------------------------- */

/* The scanner takes a subset of JSON: every text it accepts, cJSON accepts
 * with the same members (keys, kinds, strings, numbers, element counts);
 * what it refuses it may refuse for any reason (escapes, control bytes,
 * depth), but never valid text of its subset. */
static void s_scan_vs_cjson(const char *text, size_t len, int expect)
{
    util_json_field f[16];
    int high;
    int n = util_json_scan(text, len, f, 16, 8, &high);
    if (expect >= 0)
        ck_assert_msg((n >= 0) == expect, "%.*s: scan %d", (int)len, text, n);
    if (n < 0)
        return;
    cJSON *root = cJSON_ParseWithLength(text, len);
    ck_assert_msg(cJSON_IsObject(root), "%.*s: scanned, cJSON refuses", (int)len, text);
    ck_assert_int_eq(n, cJSON_GetArraySize(root));
    const cJSON *c = root->child;
    for (int i = 0; i < n; i++, c = c->next) {
        ck_assert(strlen(c->string) == f[i].key_len && !memcmp(c->string, f[i].key, f[i].key_len));
        switch (f[i].kind) {
        case UTIL_JSON_STRING:
            ck_assert(cJSON_IsString(c) && strlen(c->valuestring) == f[i].val_len &&
                      !memcmp(c->valuestring, f[i].val, f[i].val_len));
            break;
        case UTIL_JSON_NUMBER: {
            char num[64];
            memcpy(num, f[i].val, f[i].val_len);
            num[f[i].val_len] = 0;
            ck_assert(cJSON_IsNumber(c));
            double a = strtod(num, NULL);
            ck_assert(a == c->valuedouble || (isnan(a) && isnan(c->valuedouble)));
            break;
        }
        case UTIL_JSON_TRUE: ck_assert(cJSON_IsTrue(c)); break;
        case UTIL_JSON_FALSE: ck_assert(cJSON_IsFalse(c)); break;
        case UTIL_JSON_NULL: ck_assert(cJSON_IsNull(c)); break;
        case UTIL_JSON_ARRAY:
            ck_assert(cJSON_IsArray(c));
            ck_assert_int_eq((int)f[i].count, cJSON_GetArraySize(c));
            break;
        default:
            ck_assert(cJSON_IsObject(c));
            ck_assert_int_eq((int)f[i].count, cJSON_GetArraySize(c));
        }
    }
    cJSON_Delete(root);
}

START_TEST(test_json_scan)
{
    const struct { const char *t; int ok; } cases[] = {
        {"{}", 1}, {" {\"a\":1} \n", 1}, {"{\"a\":[1,2,[3]],\"b\":{\"c\":null}}", 1},
        {"{\"a\":-0.5e+3,\"b\":true,\"c\":false,\"d\":\"x y\"}", 1},
        {"{\"a\":\"\xc3\xa9\"}", 1}, {"{\"a\":[]}", 1}, {"{\"a\":\"\"}", 1},
        {"{\"a\":01}", 0}, {"{\"a\":1.}", 0}, {"{\"a\":.5}", 0}, {"{\"a\":+1}", 0},
        {"{\"a\":\"x\\ny\"}", 0}, {"{\"a\":\"x\ty\"}", 0}, {"{\"a\":1,}", 0}, {"{,}", 0},
        {"[1]", 0}, {"{\"a\":1}x", 0}, {"{\"a\" 1}", 0}, {"{\"a\":tru}", 0},
        {"{\"a\":[[[[[[[[[1]]]]]]]]]}", 0},   /* deeper than 8 */
        {"{\"a\":1234567890123456789012345678901234567890123}", 0},   /* > 40 bytes */
        {"\f{\"a\":1}", 0}, {"{\"a\":1", 0}, {"{\"a\":\"x", 0}, {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_scan_vs_cjson(cases[i].t, strlen(cases[i].t), cases[i].ok);
    /* high: set only for bytes >= 0x80 inside strings. */
    util_json_field f[4];
    int high;
    ck_assert_int_eq(util_json_scan("{\"a\":\"plain\"}", 13, f, 4, 8, &high), 1);
    ck_assert_int_eq(high, 0);
    ck_assert_int_eq(util_json_scan("{\"a\":\"\xc3\xa9\"}", 10, f, 4, 8, &high), 1);
    ck_assert_int_eq(high, 1);
    /* Elements one by one. */
    const char *arr = "{\"a\":[\"x\", 2 ,null,[1]]}";
    ck_assert_int_eq(util_json_scan(arr, strlen(arr), f, 4, 8, &high), 1);
    const char *at = f[0].val + 1;
    util_json_field e;
    int kinds[8], k = 0;
    while (k < 8 && util_json_elem(&at, f[0].val + f[0].val_len, &e))
        kinds[k++] = e.kind;
    ck_assert_int_eq(k, 4);
    ck_assert_int_eq(kinds[0], UTIL_JSON_STRING);
    ck_assert_int_eq(kinds[1], UTIL_JSON_NUMBER);
    ck_assert_int_eq(kinds[2], UTIL_JSON_NULL);
    ck_assert_int_eq(kinds[3], UTIL_JSON_ARRAY);
    /* Mutations of a request: every byte deleted, and replaced by each of
     * a few bytes that matter to JSON; whatever is scanned agrees with
     * cJSON. */
    const char *req = "{\"id\":\"l1\",\"op\":\"rank\",\"history\":[\"i1\",\"i22\"],"
                      "\"weights\":[1,0.5e-1],\"candidates\":[\"i3\"],\"k\":10,\"x\":{\"y\":true}}";
    size_t len = strlen(req);
    char buf[256];
    const char repl[] = {'"', '\\', ',', ':', '[', ']', '{', '}', ' ', '0', '-', 'e', '.',
                         'n', (char)0x80, (char)0xc3, 0, '\t', 'x'};
    for (size_t i = 0; i < len; i++) {
        memcpy(buf, req, i);
        memcpy(buf + i, req + i + 1, len - i - 1);
        s_scan_vs_cjson(buf, len - 1, -1);
        for (size_t r = 0; r < sizeof repl; r++) {
            memcpy(buf, req, len);
            buf[i] = repl[r];
            s_scan_vs_cjson(buf, len, -1);
        }
    }
}
END_TEST

/* ---- utf8 ----------------------------------------------------------------- */

/* The oracle: decode the code point and check it, the way RFC 3629 states
 * the rules (a different algorithm from utf8.c's second-byte table).
 * Returns the sequence length at s, or 0 if it is not valid. */
static size_t s_ref_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >> 5 == 0x6) { n = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >> 4 == 0xE) { n = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >> 3 == 0x1E) { n = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (avail < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int s_ref_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = s_ref_seq(s + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

/* The NUL escape finder agrees with cJSON: a string it passes parses to a
 * C string as long as its JSON says, and one it flags would be cut. */
START_TEST(test_json_nul_escape)
{
    const struct { const char *json; size_t at; } cases[] = {
        {"{\"a\":\"x\\u0000y\"}", 7},        /* x\u0000y: the escape's backslash */
        {"{\"a\":\"x\\\\u0000y\"}", 17},   /* x\\u0000y: a backslash, then text */
        {"{\"a\":\"x\\\\\\u0000\"}", 9},   /* three backslashes: the third escapes */
        {"{\"a\":\"\\u00001\"}", 6},
        {"{\"a\":\"\\u0001\"}", 14},          /* not NUL */
        {"\\u000", 5},                           /* too short to be one */
        {"", 0},
    };
    /* A raw NUL byte: the key "id<NUL>" reads as "id" (found by fuzz/request). */
    const char raw[] = "{\"id\0\":\"x\",\"b\":\"\\u0000\"}";
    ck_assert_uint_eq(util_json_nul_escape(raw, sizeof raw - 1), 4);
    ck_assert_uint_eq(util_json_nul_escape("a\\u0000", 7), 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].json);
        size_t at = util_json_nul_escape(cases[i].json, len);
        ck_assert_msg(at == cases[i].at, "%s: %zu, want %zu", cases[i].json, at, cases[i].at);
        if (at == len && len && cases[i].json[0] == '{') {
            cJSON *t = cJSON_Parse(cases[i].json);
            ck_assert_ptr_nonnull(t);
            const char *v = cJSON_GetObjectItem(t, "a")->valuestring;
            ck_assert_msg(!strstr(cases[i].json, "u0000") || strstr(v, "u0000"), "%s", v);
            cJSON_Delete(t);
        }
    }
}
END_TEST

START_TEST(test_utf8_edges)
{
    static const struct { const char *s; size_t len, prefix; } cases[] = {
        {"plain", 5, 5},
        {"\x7f", 1, 1},                        /* U+007F */
        {"\xc2\x80", 2, 2},                    /* U+0080 */
        {"\xdf\xbf", 2, 2},                    /* U+07FF */
        {"\xe0\xa0\x80", 3, 3},                /* U+0800 */
        {"\xed\x9f\xbf", 3, 3},                /* U+D7FF */
        {"\xee\x80\x80", 3, 3},                /* U+E000 */
        {"\xef\xbf\xbf", 3, 3},                /* U+FFFF */
        {"\xf0\x90\x80\x80", 4, 4},            /* U+10000 */
        {"\xf4\x8f\xbf\xbf", 4, 4},            /* U+10FFFF */
        {"a\0b", 3, 3},                        /* NUL is U+0000 */
        {"\xc0\x80", 2, 0},                    /* overlong NUL */
        {"\xc1\xbf", 2, 0},                    /* overlong */
        {"\xe0\x80\x80", 3, 0},                /* overlong */
        {"\xe0\x9f\xbf", 3, 0},                /* overlong */
        {"\xf0\x8f\xbf\xbf", 4, 0},            /* overlong */
        {"ab\xed\xa0\x80", 5, 2},              /* surrogate D800 */
        {"\xed\xbf\xbf", 3, 0},                /* surrogate DFFF */
        {"\xf4\x90\x80\x80", 4, 0},            /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xff", 1, 0},
        {"\xfe", 1, 0},
        {"x\x80", 2, 1},                       /* stray continuation */
        {"abc\xc3", 4, 3},                     /* truncated */
        {"\xe2\x82", 2, 0},                    /* truncated */
        {"\xf0\x9f\x98", 3, 0},                /* truncated */
        {"\xc3\x28", 2, 0},                    /* bad continuation */
        {"\xf0\x9f\x98\x80\xc3\xa9", 6, 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(util_utf8_prefix(cases[i].s, cases[i].len) == cases[i].prefix,
                      "case %zu: prefix %zu", i, util_utf8_prefix(cases[i].s, cases[i].len));
        ck_assert_int_eq(util_utf8_valid(cases[i].s, cases[i].len),
                         cases[i].prefix == cases[i].len);
    }
    ck_assert(util_utf8_valid("", 0));
}
END_TEST

/* Every sequence of one, two and three bytes against the oracle, and a
 * million random four-byte ones (biased towards lead bytes F0..F4). */
START_TEST(test_utf8_exhaustive)
{
    unsigned char b[4];
    for (uint32_t x = 0; x < (1u << 24); x++) {
        b[0] = (unsigned char)(x >> 16), b[1] = (unsigned char)(x >> 8), b[2] = (unsigned char)x;
        for (size_t len = 1; len <= 3; len++) {
            if (len < 3 && (x & ((1u << (8 * (3 - len))) - 1)))
                continue;   /* shorter lengths once per prefix */
            int want = s_ref_valid(b, len);
            if (util_utf8_valid((const char *)b, len) != want)
                ck_abort_msg("%02x %02x %02x len %zu: want %d", b[0], b[1], b[2], len, want);
        }
    }
    tu_rng r = {4};
    for (int i = 0; i < 1000000; i++) {
        uint64_t v = tu_next(&r);
        memcpy(b, &v, 4);
        if (i % 2)
            b[0] = (unsigned char)(0xF0 + (b[0] % 5));
        if (i % 4 == 1)
            b[1] = (unsigned char)(0x80 + (b[1] % 0x40));
        ck_assert_int_eq(util_utf8_valid((const char *)b, 4), s_ref_valid(b, 4));
    }
}
END_TEST

/* Cut at every max: the result is the largest character boundary <= max. */
START_TEST(test_utf8_cut)
{
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";   /* a é € 😀 z */
    const size_t len = strlen(s);
    const size_t boundary[] = {0, 1, 3, 6, 10, 11};
    for (size_t max = 0; max <= len + 2; max++) {
        size_t want = len;
        if (max < len)
            for (size_t i = 0; i < sizeof boundary / sizeof boundary[0]; i++)
                if (boundary[i] <= max)
                    want = boundary[i];
        size_t got = util_utf8_cut(s, len, max);
        ck_assert_msg(got == want, "max %zu: got %zu want %zu", max, got, want);
        ck_assert(util_utf8_valid(s, got));
    }
    /* Invalid input: never more than max, never back more than three. */
    const char cont[] = "\x80\x80\x80\x80\x80\x80\x80\x80";
    ck_assert_uint_eq(util_utf8_cut(cont, 8, 6), 3);
    ck_assert_uint_eq(util_utf8_cut(cont, 8, 2), 0);
    ck_assert_uint_eq(util_utf8_cut("abc", 3, 0), 0);
}
END_TEST

static void s_repair_eq(const char *in, size_t len, const char *want)
{
    char out[UTIL_UTF8_REPAIR_MAX(64)];
    ck_assert_uint_le(len, 64);
    memset(out, 'X', sizeof out);
    size_t n = util_utf8_repair(out, in, len);
    ck_assert_uint_eq(util_utf8_repair(NULL, in, len), n);    /* measuring agrees */
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_msg(memcmp(out, want, n + 1) == 0, "got %s want %s", out, want);
    ck_assert(util_utf8_valid(out, n));
}

#define FFFD "\xef\xbf\xbd"

START_TEST(test_utf8_repair)
{
    s_repair_eq("", 0, "");
    s_repair_eq("caf\xc3\xa9", 5, "caf\xc3\xa9");                  /* valid: unchanged */
    s_repair_eq("a\xff" "b", 3, "a" FFFD "b");
    s_repair_eq("ab\xe2\x82", 4, "ab" FFFD);                       /* cut short: one */
    s_repair_eq("\xc0\xaf", 2, FFFD FFFD);                         /* C0 is never a lead */
    s_repair_eq("\xed\xa0\x80", 3, FFFD FFFD FFFD);                /* surrogate */
    s_repair_eq("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD);       /* above U+10FFFF */
    /* Unicode 15, table 3-8: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64. */
    s_repair_eq("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64", 13,
                "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d");
    /* Random bytes: always valid output, within the bound. */
    tu_rng r = {9};
    char in[64], out[UTIL_UTF8_REPAIR_MAX(64)];
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(tu_next(&r) % 64);
        for (size_t k = 0; k < len; k++)
            in[k] = (char)(tu_next(&r) % 4 ? 0x80 + tu_next(&r) % 0x80 : tu_next(&r) % 0x80);
        size_t n = util_utf8_repair(out, in, len);
        ck_assert_uint_lt(n, UTIL_UTF8_REPAIR_MAX(len));
        ck_assert(util_utf8_valid(out, n));
        if (util_utf8_valid(in, len))
            ck_assert(n == len && memcmp(in, out, len) == 0);
    }
}
END_TEST

/* ---- clock ---------------------------------------------------------------- */

START_TEST(test_clock)
{
    uint64_t a = util_now_ns();
    double s0 = util_now_s();
    uint64_t b = util_now_ns();
    ck_assert_uint_ge(b, a);                                  /* never backwards */
    ck_assert(fabs(s0 - (double)a / 1e9) < 1.0);              /* the same clock */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    uint64_t c = util_now_ns();
    ck_assert_uint_ge(c - b, 20u * 1000 * 1000);              /* it measures real time */
    /* The wall clock is Unix time, as time(2) tells it. */
    double wall = (double)util_wall_ns() / 1e9;
    ck_assert(fabs(wall - (double)time(NULL)) < 2.0);
}
END_TEST

/* RSS grows with memory the process touches, and a process that does not
 * exist reads as 0. */
START_TEST(test_rss)
{
    uint64_t before = util_rss_bytes(0);
    ck_assert_uint_gt(before, 0);
    ck_assert_uint_eq(util_rss_bytes(getpid()) > 0, 1);
    size_t n = 64u << 20;
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    memset(p, 1, n);
    uint64_t after = util_rss_bytes(0);
    ck_assert_int_eq(p[n - 1] + p[n / 2], 2);   /* read back: the stores are not dead */
    ck_assert_msg(after >= before + n / 2, "rss %llu -> %llu after touching 64 MiB",
                  (unsigned long long)before, (unsigned long long)after);
    free(p);
    ck_assert_uint_eq(util_rss_bytes(0x7ffffff0), 0);
}
END_TEST

/* FNV-1a 64's published test vectors, continuation, and the finaliser's
 * avalanche: one flipped input bit changes about half the output bits. */
START_TEST(test_hash)
{
    ck_assert_uint_eq(util_fnv1a(UTIL_FNV_OFFSET, "", 0), 0xcbf29ce484222325ull);
    ck_assert_uint_eq(util_fnv1a(UTIL_FNV_OFFSET, "a", 1), 0xaf63dc4c8601ec8cull);
    ck_assert_uint_eq(util_fnv1a(UTIL_FNV_OFFSET, "foobar", 6), 0x85944171f73967e8ull);
    ck_assert_uint_eq(util_fnv1a(util_fnv1a(UTIL_FNV_OFFSET, "foo", 3), "bar", 3),
                      0x85944171f73967e8ull);
    double flips = 0;
    for (uint64_t x = 1; x <= 1000; x++)
        flips += __builtin_popcountll(util_hash_mix(x) ^ util_hash_mix(x ^ 1));
    ck_assert_msg(flips / 1000 > 28 && flips / 1000 < 36, "mean %.1f bits flipped", flips / 1000);
}
END_TEST

/* Keyed BLAKE2b-128 against Python's hashlib.blake2b(data, key=k,
 * digest_size=16) for the key 00 01 .. 1f; key files: format, mode, no
 * overwrite. */
START_TEST(test_mask)
{
    util_mask m;
    for (int i = 0; i < UTIL_MASK_KEY_BYTES; i++)
        m.key[i] = (unsigned char)i;
    char h[UTIL_MASK_HEX], why[256];
    util_mask_hex(&m, "u42", 3, h);
    ck_assert_str_eq(h, "677b25a3b42dda30832281ce6ef11dd9");
    util_mask_hex(&m, "", 0, h);
    ck_assert_str_eq(h, "3daf97bce7888fd59773c66bf647459c");
    const char *path = tu_path("mask.key");
    char text[80] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    tu_write_file(path, text, strlen(text));
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(util_mask_load(&m, path, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "group or others"), "%s", why);
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_msg(util_mask_load(&m, path, why, sizeof why) == 0, "%s", why);
    ck_assert_str_eq(m.key_id, "40f68f4ad24e575b");
    util_mask_hex(&m, "u42", 3, h);
    ck_assert_str_eq(h, "677b25a3b42dda30832281ce6ef11dd9");
    tu_write_file(path, "abc\n", 4);
    ck_assert_int_eq(util_mask_load(&m, path, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "64 hex digits"), "%s", why);
    const char *made = tu_path("made.key");
    ck_assert_msg(util_mask_create(made, why, sizeof why) == 0, "%s", why);
    ck_assert_int_eq(util_mask_create(made, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "never overwritten"), "%s", why);
    struct stat st;
    ck_assert_int_eq(stat(made, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    util_mask a, b;
    ck_assert_int_eq(util_mask_load(&a, made, why, sizeof why), 0);
    ck_assert_int_eq(util_mask_random(&b), 0);
    char ha[UTIL_MASK_HEX], hb[UTIL_MASK_HEX];
    util_mask_hex(&a, "u42", 3, ha);
    util_mask_hex(&b, "u42", 3, hb);
    ck_assert_str_ne(ha, hb);
    ck_assert_str_ne(a.key_id, b.key_id);
}
END_TEST

static Suite *s_suite(void)
{
    /* One TCase per utility, so that a failure names the module. */
    const struct {
        const char *name;
        const TTest *test[4];
    } group[] = {
        {"rng", {test_splitmix, test_xoshiro, test_xorshift, test_gauss}},
        {"set", {test_set_basic, test_set_oracle, test_set_wrap, test_set_memory}},
        {"hist", {test_hist, test_hist_bound}},
        {"json", {test_json_quote, test_json_nul_escape, test_json_scan}},
        {"ftoa", {test_f32_edges, test_f32_random}},
        {"utf8", {test_utf8_edges, test_utf8_exhaustive, test_utf8_cut, test_utf8_repair}},
        {"clock", {test_clock}},
        {"proc", {test_rss}},
        {"hash", {test_hash}},
        {"mask", {test_mask}},
    };
    Suite *s = suite_create("util");
    for (size_t g = 0; g < sizeof group / sizeof group[0]; g++) {
        TCase *tc = tcase_create(group[g].name);
        tcase_set_timeout(tc, 60 * tu_slowdown());
        for (int i = 0; i < 4 && group[g].test[i]; i++)
            tcase_add_test(tc, group[g].test[i]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
