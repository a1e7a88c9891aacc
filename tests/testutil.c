/* testutil.c -- see testutil.h. */
#include "tests/testutil.h"
#include "util/rng.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_tmpdir[256];
static pid_t s_owner;

static int s_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void s_cleanup(void)
{
    /* Forked test children inherit the atexit hook; only the parent cleans. */
    if (s_tmpdir[0] && getpid() == s_owner)
        nftw(s_tmpdir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_tmpdir(void)
{
    if (!s_tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(s_tmpdir, sizeof s_tmpdir, "%s/attn-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(s_tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
        s_owner = getpid();
        atexit(s_cleanup);
    }
    return s_tmpdir;
}

const char *tu_path(const char *name)
{
    static char buf[8][512];
    static int slot;
    char *p = buf[slot++ & 7];
    snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
    return p;
}

void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

void tu_sql(sqlite3 *h, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
    char why[300];
    snprintf(why, sizeof why, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, why);
}

uint64_t tu_next(tu_rng *r)
{
    return util_splitmix64(&r->s);
}

double tu_uniform(tu_rng *r)
{
    return util_rng_unit(tu_next(r));
}

double tu_normal(tu_rng *r)
{
    double u = tu_uniform(r), v = tu_uniform(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v);
}

void tu_fill_normal(tu_rng *r, float *x, size_t n, float sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(tu_normal(r) * sd);
}

double tu_slowdown(void)
{
    if (getenv("ATTN_UNDER_VALGRIND") || getenv("ATTN_DAEMON_VALGRIND"))
        return 30.0;
#if defined(__SANITIZE_ADDRESS__)
    return 4.0;
#else
    return 1.0;
#endif
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int tu_run_program(const char *program, const char *args, char *out, size_t len)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/%s %s 2>&1", ATTN_BIN_DIR, program, args);
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "popen %s: %s", program, strerror(errno));
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    /* Read the rest and drop it: a program whose output outgrew the
     * caller's buffer must not die of SIGPIPE at pclose. */
    char rest[4096];
    while (fread(rest, 1, sizeof rest, p) > 0)
        ;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int tu_argv(char **argv, int cap, const char *a0, va_list ap)
{
    int argc = 0;
    for (const char *a = a0; a && argc < cap - 1; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    argv[argc] = NULL;
    return argc;
}

int tu_capture(int (*fn)(void *ctx), void *ctx, char *out, size_t len)
{
    const char *cap = tu_path("capture.out");
    fflush(stdout);
    fflush(stderr);
    int save1 = dup(1), save2 = dup(2);
    int fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert(save1 >= 0 && save2 >= 0 && fd >= 0);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    int rc = fn(ctx);
    fflush(stdout);
    fflush(stderr);
    dup2(save1, 1);
    dup2(save2, 2);
    close(save1);
    close(save2);
    FILE *f = fopen(cap, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

int64_t tu_sql_int(const char *path, const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    ck_assert_msg(sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(h));
    ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "%s: no row", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}
