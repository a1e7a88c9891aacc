/* opt.h -- a program's command line from one declarative table.
 *
 * Each flag and each positional argument is a row: its name, the metavar
 * and help shown by --help, and where its value goes (a field of the
 * caller's struct, by offset) with the field's type and bounds.  The same
 * rows drive parsing, the error messages (which name the flag, the value
 * and the bounds) and the --help text, so the three cannot disagree --
 * the way daemon/config.c's table drives the config file.
 *
 *     typedef struct job {
 *         const char *db;                     // positional
 *         int epochs;
 *         double lr;
 *         int quiet;
 *     } job;
 *
 *     static const util_opt s_args[] = {
 *         {"DB", NULL, "the database file", UTIL_OPT_STR(job, db)},
 *     };
 *     static const util_opt s_opts[] = {
 *         {"epochs", "N", "most epochs", UTIL_OPT_INT(job, epochs, 1, 1000)},
 *         {"lr", "X", "learning rate", UTIL_OPT_DBL(job, lr, 1e-9, 10)},
 *         {"quiet", NULL, "no progress line", UTIL_OPT_FLAG(job, quiet, 1)},
 *     };
 *     static const util_opt_cmd s_cmd = {
 *         .prog = "attnctl train", .about = "Learn a model.",
 *         UTIL_OPT_ROWS(s_opts), UTIL_OPT_ARGS(s_args),
 *     };
 *
 *     job j = {.epochs = 40, .lr = 0.002};   // the defaults --help shows
 *     uint64_t given;
 *     int rc = util_opt_main(&s_cmd, argc, argv, &j, &given);
 *     if (rc >= 0)
 *         return rc;        // 0 after --help, 2 after a bad command line
 *     if (util_opt_given(&s_cmd, given, "lr")) ...
 *
 * With "attnctl train db --epochs 0" the program prints
 *     attnctl train: --epochs: '0' is not an integer in 1..1000
 *     Try 'attnctl train --help'.
 * and exits 2.
 *
 * Grammar: "--name value", "--name=value", "-c value", "-cvalue" (a row
 * with a short name), flags take no value, "--" ends the options, "-"
 * alone is a positional (stdin).  Options and positionals mix in any
 * order; a repeated option's last value wins.  -h and --help are always
 * there.  Numbers are strict: an optional '-' (signed types only) and
 * digits, or a whole strtod number for DBL/FLT; no spaces, no suffixes,
 * nothing half-read ("12abc", " 5", "1e3" for an integer, "nan").
 *
 * Nothing here allocates.  util_opt_parse and util_opt_help print nothing
 * unless told where (help writes to the FILE given); util_opt_main is the
 * program-level wrapper that prints to stdout and stderr.
 */
#ifndef UTIL_OPT_H
#define UTIL_OPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum util_opt_type {
    UTIL_OPT_T_INT = 1,   /* int, bounds lo..hi */
    UTIL_OPT_T_I64,       /* int64_t, bounds lo..hi */
    UTIL_OPT_T_U32,       /* uint32_t, bounds ulo..uhi */
    UTIL_OPT_T_U64,       /* uint64_t, bounds ulo..uhi */
    UTIL_OPT_T_DBL,       /* double, finite, bounds min..max */
    UTIL_OPT_T_FLT,       /* float, read as a double, bounds min..max */
    UTIL_OPT_T_STR,       /* const char *, borrowed from argv */
    UTIL_OPT_T_FLAG,      /* int, takes no value: set to `set` */
    UTIL_OPT_T_ENUM,      /* int: values[i] (or i) for the value names[i] */
    UTIL_OPT_T_CALL,      /* fn parses the value into the field */
};

/* Row flags. */
#define UTIL_OPT_REQUIRED 1u   /* an option that must be given ("--in FILE is required") */
#define UTIL_OPT_OPTIONAL 2u   /* a positional that may be left out (only trailing ones) */
#define UTIL_OPT_MIN_OPEN 4u   /* DBL/FLT: the value must be > min, not >= min */

/* A CALL row's parser: read value into field (the target plus the row's
 * offset); 0, or -1 with one line in why (the flag's name is prefixed). */
typedef int (*util_opt_fn)(void *field, const char *value, char *why, size_t why_len);

typedef struct util_opt {
    const char *name;     /* long flag without "--", or a positional's name ("DB") */
    const char *meta;     /* the value's placeholder in help ("N", "FILE"); NULL for flags */
    const char *help;     /* one line, or several separated by '\n' */
    /* -- what the value is and where it goes: set with a UTIL_OPT_<TYPE> macro -- */
    int type;             /* enum util_opt_type */
    size_t offset;        /* of the field in the caller's target struct */
    int64_t lo, hi;       /* INT, I64: inclusive bounds */
    uint64_t ulo, uhi;    /* U32, U64: inclusive bounds */
    double min, max;      /* DBL, FLT: inclusive bounds (min exclusive with MIN_OPEN) */
    int set;              /* FLAG: the value stored */
    const char *const *names;  /* ENUM: the accepted words, NULL-terminated */
    const int *values;    /* ENUM: the value stored per word; NULL = its index */
    util_opt_fn fn;       /* CALL */
    /* -- optional, by designator after the macro -- */
    const char *def;      /* default shown by --help; NULL = the field's value before
                             parsing, "" = none */
    char shortc;          /* 'k' makes -k a synonym of --k */
    unsigned flags;       /* UTIL_OPT_REQUIRED | UTIL_OPT_OPTIONAL | UTIL_OPT_MIN_OPEN */
} util_opt;

/* The type part of a row.  The field's C type is checked at compile time:
 * UTIL_OPT_INT on a double field does not build. */
#define UTIL_OPT_FIELD_(T, f, ctype) \
    (offsetof(T, f) + 0 * sizeof(char[_Generic(((T *)0)->f, ctype: 1, default: -1)]))
#define UTIL_OPT_INT(T, f, lo_, hi_) \
    .type = UTIL_OPT_T_INT, .offset = UTIL_OPT_FIELD_(T, f, int), .lo = (lo_), .hi = (hi_)
#define UTIL_OPT_I64(T, f, lo_, hi_) \
    .type = UTIL_OPT_T_I64, .offset = UTIL_OPT_FIELD_(T, f, int64_t), .lo = (lo_), .hi = (hi_)
#define UTIL_OPT_U32(T, f, lo_, hi_) \
    .type = UTIL_OPT_T_U32, .offset = UTIL_OPT_FIELD_(T, f, uint32_t), .ulo = (lo_), .uhi = (hi_)
#define UTIL_OPT_U64(T, f, lo_, hi_) \
    .type = UTIL_OPT_T_U64, .offset = UTIL_OPT_FIELD_(T, f, uint64_t), .ulo = (lo_), .uhi = (hi_)
#define UTIL_OPT_DBL(T, f, min_, max_) \
    .type = UTIL_OPT_T_DBL, .offset = UTIL_OPT_FIELD_(T, f, double), .min = (min_), .max = (max_)
#define UTIL_OPT_FLT(T, f, min_, max_) \
    .type = UTIL_OPT_T_FLT, .offset = UTIL_OPT_FIELD_(T, f, float), .min = (min_), .max = (max_)
#define UTIL_OPT_STR(T, f) \
    .type = UTIL_OPT_T_STR, .offset = UTIL_OPT_FIELD_(T, f, const char *)
#define UTIL_OPT_FLAG(T, f, value) \
    .type = UTIL_OPT_T_FLAG, .offset = UTIL_OPT_FIELD_(T, f, int), .set = (value)
#define UTIL_OPT_ENUM(T, f, names_, values_) \
    .type = UTIL_OPT_T_ENUM, .offset = UTIL_OPT_FIELD_(T, f, int), .names = (names_), \
    .values = (values_)
#define UTIL_OPT_CALL(T, f, fn_) .type = UTIL_OPT_T_CALL, .offset = offsetof(T, f), .fn = (fn_)

/* Two options that cannot be given together, by long name. */
typedef const char *const util_opt_excl[2];

typedef struct util_opt_cmd {
    const char *prog;         /* "attnctl train": starts every message and the usage */
    const char *usage;        /* the forms after prog, one a line ("DB [options]"; a
                                 line starting with a space continues the form above
                                 and is printed as it is); NULL = made from the
                                 rows: "[options] DB [FILE]" */
    const char *about;        /* what the command does, printed under the usage */
    const util_opt *opts;     /* the options */
    int n_opts;
    const util_opt *args;     /* the positionals, in order (optional ones last) */
    int n_args;
    const util_opt_excl *excl;   /* pairs of options that exclude each other */
    int n_excl;
    const char *tail;         /* printed after the options (exit status, see also) */
} util_opt_cmd;

#define UTIL_OPT_LEN_(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define UTIL_OPT_ROWS(a) .opts = (a), .n_opts = UTIL_OPT_LEN_(a)
#define UTIL_OPT_ARGS(a) .args = (a), .n_args = UTIL_OPT_LEN_(a)
#define UTIL_OPT_EXCL(a) .excl = (a), .n_excl = UTIL_OPT_LEN_(a)

enum util_opt_status {
    UTIL_OPT_OK = 0,      /* parsed; the target holds the values */
    UTIL_OPT_HELP = 1,    /* -h or --help was given: nothing was stored */
    UTIL_OPT_BAD = 2,     /* a bad command line: why says what (no prog prefix) */
};

/* The most rows (options + positionals) one command may have. */
#define UTIL_OPT_MAX_ROWS 64

/* Parse argv[1..argc-1] into target (argv[0] is the program or command
 * name).  The target should hold the defaults first: only what is given is
 * written.  On UTIL_OPT_BAD why holds one line ("--epochs: '0' is not an
 * integer in 1..1000") and the target may be half written.  If given is not
 * NULL, bit i is set for each row given: options first (bit i = opts[i]),
 * then positionals (bit n_opts + j = args[j]); util_opt_given reads it. */
int util_opt_parse(const util_opt_cmd *cmd, int argc, char **argv, void *target,
                   uint64_t *given, char *why, size_t why_len);

/* 1 if the option or positional called name was on the command line.
 * name must be one of cmd's rows (an assert traps a typo). */
int util_opt_given(const util_opt_cmd *cmd, uint64_t given, const char *name);

/* The --help text: usage forms, about, the positionals and options with
 * their bounds and defaults (read from target, which should hold the
 * defaults; NULL shows only the rows' def texts), then -h/--help and tail. */
void util_opt_help(const util_opt_cmd *cmd, const void *target, FILE *out);

/* What a program's main does with its command line: parse; on --help print
 * util_opt_help to stdout and return 0; on a bad command line print
 * "<prog>: <why>" and "Try '<prog> --help'." to stderr and return 2.
 * Returns -1 when the program should go on. */
int util_opt_main(const util_opt_cmd *cmd, int argc, char **argv, void *target,
                  uint64_t *given);

/* A usage error found after parsing (two flags that do not fit together):
 * "<prog>: <message>" and the --help hint on stderr.  Returns 2. */
int util_opt_fail(const util_opt_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Strict number readers, shared with other parsers of user text: 0 when
 * all of s is one number of that kind, -1 otherwise (see the grammar
 * above; out of the type's range is -1). */
int util_opt_read_i64(const char *s, int64_t *out);
int util_opt_read_u64(const char *s, uint64_t *out);
int util_opt_read_double(const char *s, double *out);

#endif
