/* replay.c -- run a fuzz harness over its corpus without libFuzzer.
 *
 *   replay-<name>                 every file of tests/fuzz/<name>/ (make check)
 *   replay-<name> FILE|DIR...     those inputs (a crash libFuzzer reported)
 *
 * Built with the ordinary compiler and flavour (release, SANITIZE=...), so
 * `make check` replays every seed and every regress-* input -- each one a
 * crash the fuzzer once found -- on every run, and a fixed bug stays fixed.
 * A harness failure aborts; the name of the input being run is printed
 * first so the failure can be reproduced alone.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"

#ifndef ATTN_SRC_DIR
#define ATTN_SRC_DIR "."
#endif

/* Harnesses without setup do not define it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *s_current = "";

/* Name the input on the way down (abort from FZ_ASSERT, a segfault). */
static void s_on_signal(int sig)
{
    static const char pre[] = "replay: crashed on input ";
    if (write(2, pre, sizeof pre - 1) < 0 || write(2, s_current, strlen(s_current)) < 0 ||
        write(2, "\n", 1) < 0)
        _exit(128 + sig);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s_run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    /* An exact-size heap copy: ASan sees a read one past the input. */
    uint8_t *d = malloc(n > 0 ? (size_t)n : 1);
    if (!d || (n > 0 && fread(d, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "%s: cannot read\n", path);
        fclose(f);
        free(d);
        return -1;
    }
    fclose(f);
    s_current = path;
    LLVMFuzzerTestOneInput(d, (size_t)n);
    free(d);
    return 0;
}

/* Every regular file of dir (sorted, so runs repeat); *regress counts the
 * regress-* ones. */
static int s_run_dir(const char *dir, int *inputs, int *regress)
{
    DIR *dh = opendir(dir);
    if (!dh) {
        perror(dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(dh);
    qsort(names, n, sizeof *names, s_cmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            rc = s_run_file(path);
            ++*inputs;
            *regress += !strncmp(names[i], "regress-", 8);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *name = strncmp(base, "replay-", 7) ? base : base + 7;
    signal(SIGABRT, s_on_signal);
    signal(SIGSEGV, s_on_signal);
    signal(SIGBUS, s_on_signal);
    signal(SIGFPE, s_on_signal);
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    int inputs = 0, regress = 0, rc = 0;
    if (argc < 2) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/tests/fuzz/%s", ATTN_SRC_DIR, name);
        rc = s_run_dir(dir, &inputs, &regress);
    }
    for (int i = 1; i < argc && rc == 0; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            rc = s_run_dir(argv[i], &inputs, &regress);
        } else {
            rc = s_run_file(argv[i]);
            inputs++;
        }
    }
    if (rc != 0 || inputs == 0) {
        fprintf(stderr, "replay %s: %s\n", name, rc ? "an input could not be read" : "no inputs");
        return 1;
    }
    printf("fuzz replay %s: %d inputs (%d regressions) passed\n", name, inputs, regress);
    return 0;
}
