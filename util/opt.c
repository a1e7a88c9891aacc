/* opt.c -- the command-line table (see opt.h).
 *
 * Parsing is two passes over argv with one scanner (s_next), which turns
 * the words into items: an option with its value, a positional, --help, or
 * a malformed word.
 *   1. The first pass stores nothing and looks only for --help, so that
 *      help is printed from the untouched defaults wherever it stands and
 *      whatever else is wrong on the line.
 *   2. The second stores each item through its row (s_store), stopping at
 *      the first error, then checks what only the whole line can tell:
 *      missing positionals, required options, pairs that exclude each other.
 * Help is made from the same rows: the bounds text in a range error and in
 * --help comes from one function (s_bounds).
 */
#include "util/opt.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { S_END, S_OPT, S_POS, S_HELP, S_BAD };

typedef struct s_scan {
    const util_opt_cmd *cmd;
    int argc;
    char **argv;
    int i;            /* next word */
    int positional;   /* "--" seen: every further word is a positional */
} s_scan;

/* ---- number readers ------------------------------------------------------ */

/* One or more decimal digits and nothing else: strtoll alone would take
 * spaces, a sign and a half-read tail. */
static int s_digits(const char *s)
{
    return *s && s[strspn(s, "0123456789")] == '\0';
}

int util_opt_read_i64(const char *s, int64_t *out)
{
    if (!s_digits(s[0] == '-' ? s + 1 : s))
        return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno)
        return -1;
    *out = v;
    return 0;
}

int util_opt_read_u64(const char *s, uint64_t *out)
{
    if (!s_digits(s))
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno)
        return -1;
    *out = v;
    return 0;
}

int util_opt_read_double(const char *s, double *out)
{
    char *end;
    if (!*s || *s == ' ' || *s == '\t' || *s == '\n')
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* ---- rows ------------------------------------------------------------------ */

static const util_opt *s_find_long(const util_opt_cmd *cmd, const char *name, size_t len)
{
    for (int i = 0; i < cmd->n_opts; i++)
        if (strlen(cmd->opts[i].name) == len && !strncmp(cmd->opts[i].name, name, len))
            return &cmd->opts[i];
    return NULL;
}

static const util_opt *s_find_short(const util_opt_cmd *cmd, char c)
{
    for (int i = 0; i < cmd->n_opts; i++)
        if (cmd->opts[i].shortc == c)
            return &cmd->opts[i];
    return NULL;
}

/* How a row is named in messages: "--epochs", or "DB" for a positional. */
static const char *s_label(const util_opt *r, int positional, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", positional ? "" : "--", r->name);
    return buf;
}

/* The accepted values of a number row: "1..1000", ">= 0", "(0, 1]"; ""
 * when any value of the type is. */
static const char *s_bounds(const util_opt *r, char *buf, size_t len)
{
    buf[0] = '\0';
    switch (r->type) {
    case UTIL_OPT_T_INT:
    case UTIL_OPT_T_I64:
        if (r->hi == (r->type == UTIL_OPT_T_INT ? INT_MAX : INT64_MAX))
            snprintf(buf, len, ">= %lld", (long long)r->lo);
        else
            snprintf(buf, len, "%lld..%lld", (long long)r->lo, (long long)r->hi);
        break;
    case UTIL_OPT_T_U32:
    case UTIL_OPT_T_U64:
        if (r->uhi != (r->type == UTIL_OPT_T_U32 ? UINT32_MAX : UINT64_MAX))
            snprintf(buf, len, "%llu..%llu", (unsigned long long)r->ulo,
                     (unsigned long long)r->uhi);
        else if (r->ulo)
            snprintf(buf, len, ">= %llu", (unsigned long long)r->ulo);
        break;
    case UTIL_OPT_T_DBL:
    case UTIL_OPT_T_FLT:
        if (r->flags & UTIL_OPT_MIN_OPEN)
            snprintf(buf, len, "(%g, %g]", r->min, r->max);
        else
            snprintf(buf, len, "%g..%g", r->min, r->max);
        break;
    }
    return buf;
}

static void s_names(const util_opt *r, const char *sep, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; r->names[i] && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? sep : "", r->names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* "--epochs: '0' is not an integer in 1..1000". */
static int s_range_error(const util_opt *r, const char *label, const char *value,
                         const char *what, char *why, size_t why_len)
{
    char bb[96];
    const char *b = s_bounds(r, bb, sizeof bb);
    snprintf(why, why_len, "%s: '%s' is not %s%s%s", label, value, what,
             *b ? (*b == '>' ? " " : " in ") : "", b);
    return -1;
}

static int s_store_int(const util_opt *r, const char *label, char *field, const char *value,
                       char *why, size_t why_len)
{
    if (r->type == UTIL_OPT_T_INT || r->type == UTIL_OPT_T_I64) {
        int64_t v;
        if (util_opt_read_i64(value, &v) || v < r->lo || v > r->hi)
            return s_range_error(r, label, value, "an integer", why, why_len);
        if (r->type == UTIL_OPT_T_INT)
            *(int *)field = (int)v;
        else
            *(int64_t *)field = v;
        return 0;
    }
    uint64_t v;
    if (util_opt_read_u64(value, &v) || v < r->ulo || v > r->uhi)
        return s_range_error(r, label, value, "a whole number", why, why_len);
    if (r->type == UTIL_OPT_T_U32)
        *(uint32_t *)field = (uint32_t)v;
    else
        *(uint64_t *)field = v;
    return 0;
}

static int s_store_enum(const util_opt *r, const char *label, char *field, const char *value,
                        char *why, size_t why_len)
{
    for (int i = 0; r->names[i]; i++)
        if (!strcmp(value, r->names[i])) {
            *(int *)field = r->values ? r->values[i] : i;
            return 0;
        }
    char nb[256];
    s_names(r, ", ", nb, sizeof nb);
    snprintf(why, why_len, "%s: '%s' is not one of %s", label, value, nb);
    return -1;
}

/* Store one value (NULL for a flag) through its row; label names the row
 * in messages. */
static int s_store(const util_opt *r, const char *label, void *target, const char *value,
                   char *why, size_t why_len)
{
    char *field = (char *)target + r->offset;
    switch (r->type) {
    case UTIL_OPT_T_INT:
    case UTIL_OPT_T_I64:
    case UTIL_OPT_T_U32:
    case UTIL_OPT_T_U64:
        return s_store_int(r, label, field, value, why, why_len);
    case UTIL_OPT_T_DBL:
    case UTIL_OPT_T_FLT: {
        double v;
        if (util_opt_read_double(value, &v) || v > r->max ||
            ((r->flags & UTIL_OPT_MIN_OPEN) ? v <= r->min : v < r->min))
            return s_range_error(r, label, value, "a number", why, why_len);
        if (r->type == UTIL_OPT_T_DBL)
            *(double *)field = v;
        else
            *(float *)field = (float)v;
        return 0;
    }
    case UTIL_OPT_T_STR:
        *(const char **)field = value;
        return 0;
    case UTIL_OPT_T_FLAG:
        *(int *)field = r->set;
        return 0;
    case UTIL_OPT_T_ENUM:
        return s_store_enum(r, label, field, value, why, why_len);
    case UTIL_OPT_T_CALL: {
        char inner[256] = "";
        if (r->fn(field, value, inner, sizeof inner) == 0)
            return 0;
        snprintf(why, why_len, "%s: %s", label, inner);
        return -1;
    }
    }
    assert(!"a row without a type");
    return -1;
}

/* ---- the scanner ------------------------------------------------------------ */

/* An option word: "--name", "--name=value", "-c", "-cvalue". */
static int s_option(s_scan *s, const char *a, const util_opt **row, const char **value,
                    char *why, size_t why_len)
{
    const char *inline_value = NULL;
    const util_opt *r;
    if (a[1] == '-') {
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 4 && !strncmp(name, "help", 4))
            return S_HELP;
        r = s_find_long(s->cmd, name, len);
        inline_value = eq ? eq + 1 : NULL;
    } else {
        if (a[1] == 'h' && !a[2])
            return S_HELP;
        r = s_find_short(s->cmd, a[1]);
        inline_value = a[2] ? a + 2 : NULL;
    }
    if (!r) {
        snprintf(why, why_len, "unknown option '%s'", a);
        return S_BAD;
    }
    *row = r;
    *value = NULL;
    if (r->type == UTIL_OPT_T_FLAG) {
        if (inline_value) {
            snprintf(why, why_len, "--%s takes no value", r->name);
            return S_BAD;
        }
    } else if (inline_value) {
        *value = inline_value;
    } else if (s->i < s->argc) {
        *value = s->argv[s->i++];
    } else {
        snprintf(why, why_len, "--%s needs a value (%s)", r->name, r->meta ? r->meta : "?");
        return S_BAD;
    }
    return S_OPT;
}

/* The next item of the command line. */
static int s_next(s_scan *s, const util_opt **row, const char **value, char *why,
                  size_t why_len)
{
    while (s->i < s->argc) {
        const char *a = s->argv[s->i++];
        if (s->positional || a[0] != '-' || !a[1]) {
            *value = a;
            return S_POS;
        }
        if (!strcmp(a, "--")) {
            s->positional = 1;
            continue;
        }
        return s_option(s, a, row, value, why, why_len);
    }
    return S_END;
}

/* ---- parsing ---------------------------------------------------------------- */

static int s_row_index(const util_opt_cmd *cmd, const char *name)
{
    for (int i = 0; i < cmd->n_opts; i++)
        if (!strcmp(cmd->opts[i].name, name))
            return i;
    for (int j = 0; j < cmd->n_args; j++)
        if (!strcmp(cmd->args[j].name, name))
            return cmd->n_opts + j;
    return -1;
}

int util_opt_given(const util_opt_cmd *cmd, uint64_t given, const char *name)
{
    int i = s_row_index(cmd, name);
    assert(i >= 0 && "util_opt_given: no such row");
    return i >= 0 && (given >> i & 1);
}

/* What the whole line must satisfy, once every word is stored. */
static int s_check_line(const util_opt_cmd *cmd, uint64_t given, int n_pos, char *why,
                        size_t why_len)
{
    if (n_pos < cmd->n_args && !(cmd->args[n_pos].flags & UTIL_OPT_OPTIONAL)) {
        snprintf(why, why_len, "missing %s", cmd->args[n_pos].name);
        return UTIL_OPT_BAD;
    }
    for (int i = 0; i < cmd->n_opts; i++)
        if ((cmd->opts[i].flags & UTIL_OPT_REQUIRED) && !(given >> i & 1)) {
            snprintf(why, why_len, "--%s %s is required", cmd->opts[i].name,
                     cmd->opts[i].meta ? cmd->opts[i].meta : "");
            return UTIL_OPT_BAD;
        }
    for (int k = 0; k < cmd->n_excl; k++)
        if (util_opt_given(cmd, given, cmd->excl[k][0]) &&
            util_opt_given(cmd, given, cmd->excl[k][1])) {
            snprintf(why, why_len, "--%s and --%s exclude each other", cmd->excl[k][0],
                     cmd->excl[k][1]);
            return UTIL_OPT_BAD;
        }
    return UTIL_OPT_OK;
}

/* Misuse of the table by our own code: -h and --help are taken, and a
 * given mask has 64 bits. */
static int s_table_ok(const util_opt_cmd *cmd)
{
    for (int i = 0; i < cmd->n_opts; i++)
        if (cmd->opts[i].shortc == 'h' || !strcmp(cmd->opts[i].name, "help"))
            return 0;
    return cmd->n_opts + cmd->n_args <= UTIL_OPT_MAX_ROWS;
}

int util_opt_parse(const util_opt_cmd *cmd, int argc, char **argv, void *target,
                   uint64_t *given, char *why, size_t why_len)
{
    assert(s_table_ok(cmd));
    const util_opt *row;
    const char *value;
    char ignored[8];
    s_scan s = {.cmd = cmd, .argc = argc, .argv = argv, .i = 1};
    int k;
    while ((k = s_next(&s, &row, &value, ignored, sizeof ignored)) != S_END)
        if (k == S_HELP)
            return UTIL_OPT_HELP;

    uint64_t seen = 0;
    int n_pos = 0;
    s = (s_scan){.cmd = cmd, .argc = argc, .argv = argv, .i = 1};
    why[0] = '\0';
    while ((k = s_next(&s, &row, &value, why, why_len)) != S_END) {
        if (k == S_BAD)
            return UTIL_OPT_BAD;
        int bit;
        if (k == S_POS) {
            if (n_pos == cmd->n_args) {
                snprintf(why, why_len, "unexpected argument '%s'", value);
                return UTIL_OPT_BAD;
            }
            bit = cmd->n_opts + n_pos;
            row = &cmd->args[n_pos++];
        } else {
            bit = (int)(row - cmd->opts);
        }
        char label[96];
        if (s_store(row, s_label(row, k == S_POS, label, sizeof label), target, value, why,
                    why_len))
            return UTIL_OPT_BAD;
        seen |= (uint64_t)1 << bit;
    }
    if (given)
        *given = seen;
    return s_check_line(cmd, seen, n_pos, why, why_len);
}

/* ---- help ------------------------------------------------------------------- */

#define S_COL 24   /* where help text starts */

/* The default as text from the field (or the row's def), "" for none. */
static const char *s_default(const util_opt *r, const void *target, char *buf, size_t len)
{
    buf[0] = '\0';
    if (r->def || !target)
        return r->def ? r->def : "";
    const char *field = (const char *)target + r->offset;
    switch (r->type) {
    case UTIL_OPT_T_INT: snprintf(buf, len, "%d", *(const int *)field); break;
    case UTIL_OPT_T_I64: snprintf(buf, len, "%lld", (long long)*(const int64_t *)field); break;
    case UTIL_OPT_T_U32: snprintf(buf, len, "%u", (unsigned)*(const uint32_t *)field); break;
    case UTIL_OPT_T_U64:
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case UTIL_OPT_T_DBL: snprintf(buf, len, "%g", *(const double *)field); break;
    case UTIL_OPT_T_FLT: snprintf(buf, len, "%g", (double)*(const float *)field); break;
    case UTIL_OPT_T_STR:
        if (*(const char *const *)field)
            snprintf(buf, len, "%s", *(const char *const *)field);
        break;
    case UTIL_OPT_T_ENUM:
        for (int i = 0; r->names[i]; i++)
            if ((r->values ? r->values[i] : i) == *(const int *)field) {
                snprintf(buf, len, "%s", r->names[i]);
                break;
            }
        break;
    }
    return buf;
}

/* One entry: left part, then help lines from column S_COL, the last one
 * followed by note ("(default 40; 1..1000)") when there is one. */
static void s_entry(FILE *out, const char *left, const char *help, const char *note)
{
    int w = fprintf(out, "  %s", left);
    if (w >= S_COL - 1) {
        fputc('\n', out);
        w = 0;
    }
    const char *line = help ? help : "";
    for (;;) {
        const char *nl = strchr(line, '\n');
        int n = nl ? (int)(nl - line) : (int)strlen(line);
        fprintf(out, "%*s%.*s", S_COL - w, "", n, line);
        w = S_COL + n;
        if (!nl)
            break;
        fputc('\n', out);
        w = 0;
        line = nl + 1;
    }
    if (*note) {
        if (w + 1 + (int)strlen(note) > 79)
            fprintf(out, "\n%*s", S_COL, "");
        else if (w > S_COL)
            fputc(' ', out);
        fputs(note, out);
    }
    fputc('\n', out);
}

/* "-k, --k K", "--mask none|history|user", "DB". */
static void s_left(const util_opt *r, int positional, char *buf, size_t len)
{
    char names[200] = "";
    const char *meta = r->meta;
    if (positional) {
        snprintf(buf, len, "%s", r->name);
        return;
    }
    if (r->type == UTIL_OPT_T_ENUM && !meta) {
        s_names(r, "|", names, sizeof names);
        meta = names;
    }
    char shortc[8] = "";
    if (r->shortc)
        snprintf(shortc, sizeof shortc, "-%c, ", r->shortc);
    snprintf(buf, len, "%s--%s%s%s", shortc, r->name, meta ? " " : "", meta ? meta : "");
}

static void s_help_row(FILE *out, const util_opt *r, const void *target, int positional)
{
    char left[256], dbuf[128], bbuf[96], note[320] = "";
    s_left(r, positional, left, sizeof left);
    const char *d = s_default(r, target, dbuf, sizeof dbuf);
    const char *b = s_bounds(r, bbuf, sizeof bbuf);
    if (r->flags & UTIL_OPT_REQUIRED)
        snprintf(note, sizeof note, "(required%s%s)", *b ? "; " : "", b);
    else if (*d && *b)
        snprintf(note, sizeof note, "(default %s; %s)", d, b);
    else if (*d || *b)
        snprintf(note, sizeof note, "(%s%s)", *d ? "default " : "", *d ? d : b);
    s_entry(out, left, r->help, note);
}

static void s_usage_lines(const util_opt_cmd *cmd, FILE *out)
{
    if (!cmd->usage) {
        fprintf(out, "usage: %s%s", cmd->prog, cmd->n_opts ? " [options]" : "");
        for (int j = 0; j < cmd->n_args; j++)
            fprintf(out, (cmd->args[j].flags & UTIL_OPT_OPTIONAL) ? " [%s]" : " %s",
                    cmd->args[j].name);
        fputc('\n', out);
        return;
    }
    const char *line = cmd->usage;
    for (int first = 1;; first = 0) {
        const char *nl = strchr(line, '\n');
        int n = nl ? (int)(nl - line) : (int)strlen(line);
        if (line[0] == ' ')    /* a form continued from the line above: as it is */
            fprintf(out, "%.*s\n", n, line);
        else
            fprintf(out, "%s %s %.*s\n", first ? "usage:" : "      ", cmd->prog, n, line);
        if (!nl || !nl[1])
            break;
        line = nl + 1;
    }
}

void util_opt_help(const util_opt_cmd *cmd, const void *target, FILE *out)
{
    s_usage_lines(cmd, out);
    if (cmd->about)
        fprintf(out, "%s\n", cmd->about);
    fputc('\n', out);
    for (int j = 0; j < cmd->n_args; j++)
        if (cmd->args[j].help)
            s_help_row(out, &cmd->args[j], target, 1);
    for (int i = 0; i < cmd->n_opts; i++)
        s_help_row(out, &cmd->opts[i], target, 0);
    s_entry(out, "-h, --help", "this text", "");
    if (cmd->tail)
        fprintf(out, "\n%s\n", cmd->tail);
}

/* ---- the program's side ------------------------------------------------------ */

static void s_hint(const util_opt_cmd *cmd, const char *why)
{
    fprintf(stderr, "%s: %s\nTry '%s --help'.\n", cmd->prog, why, cmd->prog);
}

int util_opt_main(const util_opt_cmd *cmd, int argc, char **argv, void *target,
                  uint64_t *given)
{
    char why[512];
    switch (util_opt_parse(cmd, argc, argv, target, given, why, sizeof why)) {
    case UTIL_OPT_OK:
        return -1;
    case UTIL_OPT_HELP:
        util_opt_help(cmd, target, stdout);
        return 0;
    default:
        s_hint(cmd, why);
        return 2;
    }
}

int util_opt_fail(const util_opt_cmd *cmd, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    s_hint(cmd, why);
    return 2;
}
