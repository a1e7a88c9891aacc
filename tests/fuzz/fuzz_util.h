/* fuzz_util.h -- what the libFuzzer harnesses share.
 *
 * A harness is tests/fuzz/fz_<name>.c: it defines LLVMFuzzerTestOneInput
 * (and LLVMFuzzerInitialize when it needs a database or a config first) and
 * states its invariants with FZ_ASSERT.  The same object is linked two ways:
 *
 *   make fuzz        clang, -fsanitize=fuzzer,address,undefined: libFuzzer
 *                    mutates from tests/fuzz/<name>/ (tools/fuzz runs it)
 *   make check       any compiler, with tests/fuzz/replay.c: every file of
 *                    tests/fuzz/<name>/ once -- seeds and regress-* inputs
 *
 *     int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
 *     {
 *         fz_part p[3];
 *         size_t k = fz_split(d, n, p, 3);         // "file one\n%%\nfile two"
 *         fz_write(fz_path("in.csv"), p[0].d, p[0].n);
 *         ...
 *         FZ_ASSERT(rc == STORE_OK || err.msg[0], "an error without a message");
 *         return 0;
 *     }
 *
 * A failed FZ_ASSERT prints the reason and aborts, which both drivers
 * report as a crash with the input that caused it.  Databases come from the
 * suites' tu_make_db (tests/tu_daemon.h), which is linked in.
 */
#ifndef TESTS_FUZZ_FUZZ_UTIL_H
#define TESTS_FUZZ_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points (declared here so harnesses are warning-clean). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_ASSERT(cond, ...) \
    do { if (!(cond)) fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* A private directory (in /dev/shm when it exists: the importers and the
 * store write files on every input), named attn-fuzz-<pid>-XXXXXX and
 * removed at exit.  Borrowed string. */
const char *fz_dir(void);
/* fz_dir()/name in a static rotating buffer (8 slots). */
const char *fz_path(const char *name);

/* Write n bytes to path (truncating); aborts on failure. */
void fz_write(const char *path, const void *data, size_t n);
/* Copy a file; aborts on failure. */
void fz_copy(const char *from, const char *to);

/* Split data on the marker line FZ_MARK into at most max parts; returns
 * their count (at least 1).  The last part holds the rest. */
#define FZ_MARK "\n%%\n"
typedef struct fz_part {
    const uint8_t *d;
    size_t n;
} fz_part;
size_t fz_split(const uint8_t *data, size_t size, fz_part *parts, size_t max);

/* Save a model with random projections (d x 8 per head, self-attention
 * window sa_len, l_max 8) into db_path, not active; returns its version.
 * tu_save_random_model's job without Check, whose asserts need a runner. */
int64_t fz_save_model(const char *db_path, int heads, int sa_len, uint64_t seed);
/* The same with a feed-forward layer of width ffn (a multiple of 16,
 * sa_len > 0; 0: none) on the block, its weights drawn after the rest:
 * everything else is what fz_save_model gives for the same seed. */
int64_t fz_save_model_ffn(const char *db_path, int heads, int sa_len, int ffn, uint64_t seed);

/* 1 if text is one JSON object (cJSON with its default allocator). */
int fz_json_object(const char *text, size_t len);

#endif
