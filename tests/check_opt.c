/* check_opt.c -- the command-line table (util/opt.h): every type with its
 * bounds, the grammar (--flag value, --flag=value, -k, --, -), the errors a
 * user sees, positionals, required and exclusive options, and the --help
 * text made from the rows. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"
#include "util/opt.h"

typedef struct s_job {
    const char *db, *out;   /* positionals */
    int epochs;
    int64_t big;
    uint32_t items;
    uint64_t seed;
    double lr, decay;
    float weight;
    const char *name;
    int quiet, bigrams;
    int mode;
    int k;
    char delim;
    int req;
} s_job;

static const char *const s_modes[] = {"none", "history", "user", "all", NULL};
static const int s_mode_values[] = {10, 20, 30, 20};   /* "all" is a synonym of "history" */

static int s_delim(void *field, const char *value, char *why, size_t why_len)
{
    if (strlen(value) != 1) {
        snprintf(why, why_len, "'%s' is not one character", value);
        return -1;
    }
    *(char *)field = value[0];
    return 0;
}

static const util_opt s_args[] = {
    {"DB", NULL, "the database", UTIL_OPT_STR(s_job, db)},
    {"OUT", NULL, NULL, UTIL_OPT_STR(s_job, out), .flags = UTIL_OPT_OPTIONAL},
};

static const util_opt s_opts[] = {
    {"epochs", "N", "most epochs", UTIL_OPT_INT(s_job, epochs, 1, 1000)},
    {"big", "N", "a large signed number", UTIL_OPT_I64(s_job, big, -5, INT64_MAX)},
    {"items", "N", "items", UTIL_OPT_U32(s_job, items, 1, 4000000000u)},
    {"seed", "S", "any seed", UTIL_OPT_U64(s_job, seed, 0, UINT64_MAX)},
    {"lr", "X", "learning rate", UTIL_OPT_DBL(s_job, lr, 1e-9, 10)},
    {"decay", "X", "per step", UTIL_OPT_DBL(s_job, decay, 0, 1), .flags = UTIL_OPT_MIN_OPEN},
    {"weight", "W", "a float", UTIL_OPT_FLT(s_job, weight, 0, 100)},
    {"name", "TEXT", "first line\nsecond line", UTIL_OPT_STR(s_job, name), .def = "its title"},
    {"quiet", NULL, "no progress", UTIL_OPT_FLAG(s_job, quiet, 1)},
    {"no-bigrams", NULL, "words only", UTIL_OPT_FLAG(s_job, bigrams, 0)},
    {"mode", NULL, "which mask", UTIL_OPT_ENUM(s_job, mode, s_modes, s_mode_values)},
    {"k", "K", "results", UTIL_OPT_INT(s_job, k, 1, 100), .shortc = 'k'},
    {"delim", "C", "separator", UTIL_OPT_CALL(s_job, delim, s_delim), .def = ","},
    {"req", "R", "needed with --strict", UTIL_OPT_INT(s_job, req, 0, 9)},
};

static const util_opt_excl s_excl[] = {{"quiet", "name"}};

static const util_opt_cmd s_cmd = {
    .prog = "tool run",
    .about = "Runs a job.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_args),
    UTIL_OPT_EXCL(s_excl),
    .tail = "Exit status: 0 ok.",
};

static s_job s_defaults(void)
{
    return (s_job){.epochs = 40, .lr = 0.002, .decay = 0.5, .weight = 0.5f, .bigrams = 1,
                   .mode = 20, .k = 10, .delim = ','};
}

static char s_why[512];
static uint64_t s_given;

/* Parse a NULL-terminated list of words (the program name first). */
static int s_parse_cmd(const util_opt_cmd *cmd, s_job *j, const char *a0, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, a0);
    int argc = tu_argv(argv, 32, a0, ap);
    va_end(ap);
    s_given = 0;
    return util_opt_parse(cmd, argc, argv, j, &s_given, s_why, sizeof s_why);
}

#define PARSE(j, ...) s_parse_cmd(&s_cmd, (j), "run", __VA_ARGS__, NULL)

START_TEST(test_every_type)
{
    s_job j = s_defaults();
    ck_assert_int_eq(PARSE(&j, "my.db", "--epochs", "7", "--big=-5", "--items", "4000000000",
                           "--seed", "18446744073709551615", "--lr=1e-3", "--decay", "1",
                           "--weight", "2.5", "--name", "x y", "--no-bigrams", "--mode",
                           "user", "-k", "3", "--delim=;", "out.txt"),
                     UTIL_OPT_OK);
    ck_assert_str_eq(j.db, "my.db");
    ck_assert_str_eq(j.out, "out.txt");
    ck_assert_int_eq(j.epochs, 7);
    ck_assert_int_eq(j.big, -5);
    ck_assert_uint_eq(j.items, 4000000000u);
    ck_assert_uint_eq(j.seed, UINT64_MAX);
    ck_assert_double_eq(j.lr, 1e-3);
    ck_assert_double_eq(j.decay, 1.0);
    ck_assert_float_eq(j.weight, 2.5f);
    ck_assert_str_eq(j.name, "x y");
    ck_assert_int_eq(j.quiet, 0);        /* not given: untouched */
    ck_assert_int_eq(j.bigrams, 0);      /* a flag stores its value, here 0 */
    ck_assert_int_eq(j.mode, 30);
    ck_assert_int_eq(j.k, 3);
    ck_assert_int_eq(j.delim, ';');
    ck_assert_int_eq(j.req, 0);
    ck_assert(util_opt_given(&s_cmd, s_given, "epochs"));
    ck_assert(util_opt_given(&s_cmd, s_given, "k"));
    ck_assert(util_opt_given(&s_cmd, s_given, "OUT"));
    ck_assert(!util_opt_given(&s_cmd, s_given, "quiet"));
    ck_assert(!util_opt_given(&s_cmd, s_given, "req"));

    /* Short forms, an enum synonym, the last value winning, a flag. */
    j = s_defaults();
    ck_assert_int_eq(PARSE(&j, "-k7", "--mode", "all", "--epochs", "1", "--epochs", "1000",
                           "--quiet", "db"), UTIL_OPT_OK);
    ck_assert_int_eq(j.k, 7);
    ck_assert_int_eq(j.mode, 20);
    ck_assert_int_eq(j.epochs, 1000);
    ck_assert_int_eq(j.quiet, 1);
    ck_assert_ptr_null(j.out);
    ck_assert(!util_opt_given(&s_cmd, s_given, "OUT"));
    ck_assert(util_opt_given(&s_cmd, s_given, "DB"));
}
END_TEST

START_TEST(test_bounds_and_messages)
{
    static const struct {
        const char *flag, *value, *msg;
    } bad[] = {
        {"--epochs", "0", "--epochs: '0' is not an integer in 1..1000"},
        {"--epochs", "1001", "--epochs: '1001' is not an integer in 1..1000"},
        {"--epochs", "12abc", "--epochs: '12abc' is not an integer in 1..1000"},
        {"--epochs", " 5", "--epochs: ' 5' is not an integer in 1..1000"},
        {"--epochs", "+5", "--epochs: '+5' is not an integer in 1..1000"},
        {"--epochs", "1e3", "--epochs: '1e3' is not an integer in 1..1000"},
        {"--epochs", "", "--epochs: '' is not an integer in 1..1000"},
        {"--epochs", "99999999999999999999999", NULL},
        {"--big", "-6", "--big: '-6' is not an integer >= -5"},
        {"--big", "9223372036854775808", "--big: '9223372036854775808' is not an integer >= -5"},
        {"--items", "0", "--items: '0' is not a whole number in 1..4000000000"},
        {"--items", "-1", "--items: '-1' is not a whole number in 1..4000000000"},
        {"--items", "4000000001", NULL},
        {"--seed", "18446744073709551616", "--seed: '18446744073709551616' is not a whole number"},
        {"--seed", "x1", NULL},
        {"--lr", "0", "--lr: '0' is not a number in 1e-09..10"},
        {"--lr", "nan", NULL},
        {"--lr", "inf", NULL},
        {"--lr", "1x", NULL},
        {"--decay", "0", "--decay: '0' is not a number in (0, 1]"},
        {"--decay", "1.0001", NULL},
        {"--weight", "-0.1", "--weight: '-0.1' is not a number in 0..100"},
        {"--mode", "some", "--mode: 'some' is not one of none, history, user, all"},
        {"--delim", "ab", "--delim: 'ab' is not one character"},
        {"-k", "0", "--k: '0' is not an integer in 1..100"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_job j = s_defaults();
        ck_assert_msg(PARSE(&j, "db", bad[i].flag, bad[i].value) == UTIL_OPT_BAD, "%s %s",
                      bad[i].flag, bad[i].value);
        if (bad[i].msg)
            ck_assert_str_eq(s_why, bad[i].msg);
        else
            ck_assert_msg(strstr(s_why, bad[i].flag) &&
                          strstr(s_why, bad[i].value), "%s", s_why);
    }
    /* The bounds themselves are in. */
    s_job j = s_defaults();
    ck_assert_int_eq(PARSE(&j, "db", "--epochs", "1", "--lr", "1e-9", "--weight", "100",
                           "--big", "9223372036854775807", "--items", "1"), UTIL_OPT_OK);
    ck_assert_int_eq(j.big, INT64_MAX);
    /* A negative number is a value, not an option, after a flag that wants one. */
    ck_assert_int_eq(PARSE(&j, "db", "--big", "-3"), UTIL_OPT_OK);
    ck_assert_int_eq(j.big, -3);
}
END_TEST

START_TEST(test_grammar_errors)
{
    s_job j = s_defaults();
    ck_assert_int_eq(PARSE(&j, "db", "--bogus"), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "unknown option '--bogus'");
    ck_assert_int_eq(PARSE(&j, "db", "-x"), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "unknown option '-x'");
    ck_assert_int_eq(PARSE(&j, "db", "--epoch", "3"), UTIL_OPT_BAD);   /* no prefixes */
    ck_assert_str_eq(s_why, "unknown option '--epoch'");
    ck_assert_int_eq(PARSE(&j, "db", "--epochs"), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "--epochs needs a value (N)");
    ck_assert_int_eq(PARSE(&j, "db", "-k"), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "--k needs a value (K)");
    ck_assert_int_eq(PARSE(&j, "db", "--quiet=1"), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "--quiet takes no value");
    ck_assert_int_eq(PARSE(&j, "a", "b", "c"), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "unexpected argument 'c'");
    ck_assert_int_eq(s_parse_cmd(&s_cmd, &j, "run", "--quiet", NULL), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "missing DB");
    ck_assert_int_eq(PARSE(&j, "db", "--quiet", "--name", "n"), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "--quiet and --name exclude each other");

    /* "-" is a positional (stdin); after "--" everything is. */
    j = s_defaults();
    ck_assert_int_eq(PARSE(&j, "-", "--", "--quiet"), UTIL_OPT_OK);
    ck_assert_str_eq(j.db, "-");
    ck_assert_str_eq(j.out, "--quiet");
    ck_assert_int_eq(j.quiet, 0);
    /* An empty value is a value. */
    ck_assert_int_eq(PARSE(&j, "db", "--name="), UTIL_OPT_OK);
    ck_assert_str_eq(j.name, "");
}
END_TEST

/* A required option, and a command without positionals. */
static const util_opt s_req_opts[] = {
    {"in", "FILE", "input", UTIL_OPT_STR(s_job, name), .flags = UTIL_OPT_REQUIRED},
    {"epochs", "N", "most epochs", UTIL_OPT_INT(s_job, epochs, 1, 1000)},
};
static const util_opt_cmd s_req_cmd = {.prog = "tool", UTIL_OPT_ROWS(s_req_opts)};

START_TEST(test_required_and_no_positionals)
{
    s_job j = s_defaults();
    ck_assert_int_eq(s_parse_cmd(&s_req_cmd, &j, "tool", "--epochs", "3", NULL), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "--in FILE is required");
    ck_assert_int_eq(s_parse_cmd(&s_req_cmd, &j, "tool", "--in", "f", "x", NULL), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "unexpected argument 'x'");
    ck_assert_int_eq(s_parse_cmd(&s_req_cmd, &j, "tool", "--in", "f", NULL), UTIL_OPT_OK);
    ck_assert_str_eq(j.name, "f");
    /* The first error wins, in the order of the words. */
    ck_assert_int_eq(s_parse_cmd(&s_req_cmd, &j, "tool", "--epochs", "0", "--nope", NULL),
                     UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "--epochs: '0' is not an integer in 1..1000");
}
END_TEST

/* Typed positionals: a subcommand word and an optional number. */
static const char *const s_subs[] = {"list", "activate", NULL};
static const util_opt s_sub_args[] = {
    {"SUB", NULL, NULL, UTIL_OPT_ENUM(s_job, mode, s_subs, NULL)},
    {"N", NULL, NULL, UTIL_OPT_I64(s_job, big, 0, INT64_MAX), .flags = UTIL_OPT_OPTIONAL},
};
static const util_opt_cmd s_sub_cmd = {.prog = "tool", UTIL_OPT_ARGS(s_sub_args)};

START_TEST(test_typed_positionals)
{
    s_job j = s_defaults();
    ck_assert_int_eq(s_parse_cmd(&s_sub_cmd, &j, "tool", "activate", "12", NULL), UTIL_OPT_OK);
    ck_assert_int_eq(j.mode, 1);
    ck_assert_int_eq(j.big, 12);
    ck_assert(util_opt_given(&s_sub_cmd, s_given, "N"));
    ck_assert_int_eq(s_parse_cmd(&s_sub_cmd, &j, "tool", "nope", NULL), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "SUB: 'nope' is not one of list, activate");
    ck_assert_int_eq(s_parse_cmd(&s_sub_cmd, &j, "tool", "list", "x", NULL), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "N: 'x' is not an integer >= 0");
    /* A word that looks like an option is one, even where a number goes. */
    ck_assert_int_eq(s_parse_cmd(&s_sub_cmd, &j, "tool", "list", "-1", NULL), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "unknown option '-1'");
    ck_assert_int_eq(s_parse_cmd(&s_sub_cmd, &j, "tool", "list", "--", "-1", NULL),
                     UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "N: '-1' is not an integer >= 0");
    ck_assert_int_eq(s_parse_cmd(&s_sub_cmd, &j, "tool", "--x", NULL), UTIL_OPT_BAD);
    ck_assert_str_eq(s_why, "unknown option '--x'");
}
END_TEST

START_TEST(test_help_stores_nothing)
{
    s_job j = s_defaults();
    /* Wherever --help stands and whatever else is wrong, help wins and the
     * target keeps its defaults (help prints them). */
    ck_assert_int_eq(PARSE(&j, "--epochs", "5", "--bogus", "--help"), UTIL_OPT_HELP);
    ck_assert_int_eq(j.epochs, 40);
    ck_assert_int_eq(PARSE(&j, "-h"), UTIL_OPT_HELP);
    ck_assert_int_eq(s_parse_cmd(&s_cmd, &j, "run", "--help", NULL), UTIL_OPT_HELP);
    /* As a value it is a value. */
    ck_assert_int_eq(PARSE(&j, "db", "--name", "--help"), UTIL_OPT_OK);
    ck_assert_str_eq(j.name, "--help");
    ck_assert_int_eq(PARSE(&j, "db", "--", "--help"), UTIL_OPT_OK);
    ck_assert_str_eq(j.out, "--help");
}
END_TEST

static char *s_help_text(const util_opt_cmd *cmd, const void *target)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    util_opt_help(cmd, target, f);
    fclose(f);
    return buf;
}

START_TEST(test_help_text)
{
    s_job j = s_defaults();
    char *h = s_help_text(&s_cmd, &j);
    /* Usage made from the rows, then about, rows, -h and the tail. */
    ck_assert_msg(!strncmp(h, "usage: tool run [options] DB [OUT]\nRuns a job.\n\n", 48), "%s",
                  h);
    ck_assert_msg(strstr(h, "\n  DB                    the database\n"), "%s", h);
    ck_assert_msg(!strstr(h, "  OUT"), "%s", h);   /* no help text: not listed */
    ck_assert_msg(strstr(h, "\n  --epochs N            most epochs (default 40; 1..1000)\n"),
                  "%s", h);
    ck_assert_msg(strstr(h, "  --big N               a large signed number (default 0; >= -5)"),
                  "%s", h);
    ck_assert_msg(strstr(h, "  --seed S              any seed (default 0)\n"), "%s", h);
    ck_assert_msg(strstr(h, "  --decay X             per step (default 0.5; (0, 1])\n"), "%s",
                  h);
    ck_assert_msg(strstr(h, "  --name TEXT           first line\n"
                            "                        second line (default its title)\n"), "%s",
                  h);
    ck_assert_msg(strstr(h, "  --quiet               no progress\n"), "%s", h);
    ck_assert_msg(strstr(h, "  --mode none|history|user|all\n"
                            "                        which mask (default history)\n"), "%s", h);
    ck_assert_msg(strstr(h, "  -k, --k K             results (default 10; 1..100)\n"), "%s", h);
    ck_assert_msg(strstr(h, "  --delim C             separator (default ,)\n"), "%s", h);
    ck_assert_msg(strstr(h, "  -h, --help            this text\n\nExit status: 0 ok.\n"), "%s",
                  h);
    free(h);
    /* Defaults come from the target as it is. */
    j.epochs = 7;
    h = s_help_text(&s_cmd, &j);
    ck_assert_msg(strstr(h, "most epochs (default 7; 1..1000)"), "%s", h);
    free(h);
    /* Without a target only the rows' own texts. */
    h = s_help_text(&s_cmd, NULL);
    ck_assert_msg(strstr(h, "most epochs (1..1000)"), "%s", h);
    ck_assert_msg(strstr(h, "(default its title)"), "%s", h);
    free(h);
    h = s_help_text(&s_req_cmd, NULL);
    ck_assert_msg(!strncmp(h, "usage: tool [options]\n\n", 23), "%s", h);
    ck_assert_msg(strstr(h, "  --in FILE             input (required)\n"), "%s", h);
    free(h);
    /* Usage forms given by the command, one a line. */
    util_opt_cmd forms = s_req_cmd;
    forms.usage = "items DB FILE\n           [--long]\nevents DB FILE";
    h = s_help_text(&forms, NULL);
    const char *want = "usage: tool items DB FILE\n           [--long]\n"
                       "       tool events DB FILE\n\n";
    ck_assert_msg(!strncmp(h, want, strlen(want)), "%s", h);
    free(h);
}
END_TEST

/* util_opt_main, and util_opt_fail, as a program calls them. */
typedef struct s_call {
    int argc;
    char *argv[16];
    s_job *j;
} s_call;

static int s_call_main(void *ctx)
{
    s_call *c = ctx;
    return util_opt_main(&s_cmd, c->argc, c->argv, c->j, NULL);
}

static int s_call_fail(void *ctx)
{
    (void)ctx;
    return util_opt_fail(&s_cmd, "--%s goes with --%s", "weights", "history");
}

static int s_main(char *out, size_t len, s_job *j, const char *a0, ...)
{
    s_call c = {.j = j};
    va_list ap;
    va_start(ap, a0);
    c.argc = tu_argv(c.argv, 16, a0, ap);
    va_end(ap);
    return tu_capture(s_call_main, &c, out, len);
}

START_TEST(test_main_and_fail)
{
    char out[4096];
    s_job j = s_defaults();
    ck_assert_int_eq(s_main(out, sizeof out, &j, "run", "db", "--epochs", "0", NULL), 2);
    ck_assert_str_eq(out, "tool run: --epochs: '0' is not an integer in 1..1000\n"
                          "Try 'tool run --help'.\n");
    ck_assert_int_eq(s_main(out, sizeof out, &j, "run", "--help", NULL), 0);
    ck_assert_msg(!strncmp(out, "usage: tool run", 15), "%s", out);
    ck_assert_int_eq(s_main(out, sizeof out, &j, "run", "db", "--epochs", "9", NULL), -1);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(j.epochs, 9);

    ck_assert_int_eq(tu_capture(s_call_fail, NULL, out, sizeof out), 2);
    ck_assert_str_eq(out, "tool run: --weights goes with --history\nTry 'tool run --help'.\n");
}
END_TEST

START_TEST(test_readers)
{
    int64_t i;
    uint64_t u;
    double d;
    ck_assert_int_eq(util_opt_read_i64("-9223372036854775808", &i), 0);
    ck_assert_int_eq(i, INT64_MIN);
    ck_assert_int_eq(util_opt_read_i64("9223372036854775808", &i), -1);
    ck_assert_int_eq(util_opt_read_i64("-", &i), -1);
    ck_assert_int_eq(util_opt_read_i64("0x10", &i), -1);
    ck_assert_int_eq(util_opt_read_u64("18446744073709551615", &u), 0);
    ck_assert_uint_eq(u, UINT64_MAX);
    ck_assert_int_eq(util_opt_read_u64("-1", &u), -1);
    ck_assert_int_eq(util_opt_read_double("2.5e3", &d), 0);
    ck_assert_double_eq(d, 2500);
    ck_assert_int_eq(util_opt_read_double("-0.5", &d), 0);
    ck_assert_double_eq(d, -0.5);
    ck_assert_int_eq(util_opt_read_double("1e999", &d), -1);
    ck_assert_int_eq(util_opt_read_double(" 1", &d), -1);
    ck_assert_int_eq(util_opt_read_double("1 ", &d), -1);
    ck_assert_int_eq(util_opt_read_double("", &d), -1);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("opt");
    TCase *tc = tcase_create("opt");
    tcase_add_test(tc, test_every_type);
    tcase_add_test(tc, test_bounds_and_messages);
    tcase_add_test(tc, test_grammar_errors);
    tcase_add_test(tc, test_required_and_no_positionals);
    tcase_add_test(tc, test_typed_positionals);
    tcase_add_test(tc, test_help_stores_nothing);
    tcase_add_test(tc, test_help_text);
    tcase_add_test(tc, test_main_and_fail);
    tcase_add_test(tc, test_readers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
