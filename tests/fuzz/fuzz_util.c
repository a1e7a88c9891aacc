/* fuzz_util.c -- temporary files, input splitting and the generated
 * database the harnesses share (fuzz_util.h). */
#include "tests/fuzz/fuzz_util.h"

#include "attn/model.h"
#include "store/store.h"
#include "util/rng.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: invariant broken: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static char s_dir[256];

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void s_cleanup(void)
{
    if (s_dir[0])
        nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_dir(void)
{
    if (s_dir[0])
        return s_dir;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
                       access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(s_dir, sizeof s_dir, "%s/attn-fuzz-%ld-XXXXXX", base, (long)getpid());
    if (!mkdtemp(s_dir)) {
        perror(s_dir);
        abort();
    }
    atexit(s_cleanup);
    return s_dir;
}

const char *fz_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", fz_dir(), name);
    return p;
}

void fz_write(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const char *p = data;
    while (fd >= 0 && n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    if (fd < 0 || n > 0 || close(fd) != 0) {
        perror(path);
        abort();
    }
}

void fz_copy(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    if (!f) {
        perror(from);
        abort();
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    char chunk[65536];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + got > cap) {
            cap = (len + got) * 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        memcpy(buf + len, chunk, got);
        len += got;
    }
    fclose(f);
    fz_write(to, buf, len);
    free(buf);
}

size_t fz_split(const uint8_t *data, size_t size, fz_part *parts, size_t max)
{
    size_t n = 0, mlen = strlen(FZ_MARK);
    const uint8_t *at = data, *end = data + size;
    while (n + 1 < max) {
        const uint8_t *m = memmem(at, (size_t)(end - at), FZ_MARK, mlen);
        if (!m)
            break;
        parts[n++] = (fz_part){at, (size_t)(m - at)};
        at = m + mlen;
    }
    parts[n++] = (fz_part){at, (size_t)(end - at)};
    return n;
}

int64_t fz_save_model(const char *db_path, int heads, int sa_len, uint64_t seed)
{
    return fz_save_model_ffn(db_path, heads, sa_len, 0, seed);
}

/* Uniform in [-0.5, 0.5): n values of w, drawn from *seed. */
static void s_fill(float *w, size_t n, uint64_t *seed)
{
    for (size_t j = 0; w && j < n; j++)
        w[j] = (float)(util_rng_unit(util_splitmix64(seed)) - 0.5);
}

int64_t fz_save_model_ffn(const char *db_path, int heads, int sa_len, int ffn, uint64_t seed)
{
    store *db;
    store_err err;
    if (store_open(&db, db_path, STORE_READWRITE, 5000, &err) != STORE_OK)
        fz_fail(__FILE__, __LINE__, "store_open", "%s", err.msg);
    int d = store_dim(db), m = 8 * heads;
    attn_model *md = attn_model_new(d, m, heads, 8, 0, 0);
    if (!md || (sa_len > 0 && attn_model_add_sa(md, sa_len) != 0) ||
        (ffn > 0 && attn_model_add_ffn(md, ffn) != 0))
        abort();
    float *w[] = {md->wq, md->wk, md->wv, md->wo, md->sa_q, md->sa_k, md->sa_uk, md->sa_uv};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        s_fill(w[i], (size_t)d * m, &seed);
    /* The layer's draws come last (none without one: its arrays are NULL),
     * so the rest is what seed gives without it. */
    const size_t w2m = 2 * (size_t)m, f = (size_t)md->ffn;
    s_fill(md->ffn_w1, w2m * f, &seed);
    s_fill(md->ffn_b1, f, &seed);
    s_fill(md->ffn_w2, f * w2m, &seed);
    s_fill(md->ffn_b2, w2m, &seed);
    md->scale = 0.5f;
    int64_t version;
    if (store_model_save(db, md, NULL, NULL, 0, &version, &err) != STORE_OK)
        fz_fail(__FILE__, __LINE__, "store_model_save", "%s", err.msg);
    attn_model_free(&md);
    store_close(&db);
    return version;
}

int fz_json_object(const char *text, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    int ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}
