/* mask.c -- see mask.h. */
#include "util/mask.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void s_hex(const unsigned char *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = 0;
}

static void s_key_id(util_mask *m)
{
    unsigned char id[8];
    crypto_generichash(id, sizeof id, m->key, sizeof m->key, NULL, 0);
    s_hex(id, sizeof id, m->key_id);
}

int util_mask_random(util_mask *m)
{
    if (sodium_init() < 0)
        return -1;
    randombytes_buf(m->key, sizeof m->key);
    s_key_id(m);
    return 0;
}

static int s_fail(char *why, size_t why_len, const char *path, const char *what)
{
    snprintf(why, why_len, "%s: %s", path, what);
    return -1;
}

int util_mask_load(util_mask *m, const char *path, char *why, size_t why_len)
{
    if (sodium_init() < 0)
        return s_fail(why, why_len, path, "libsodium cannot initialise");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s_fail(why, why_len, path, strerror(errno));
    struct stat st;
    char text[256];
    ssize_t n = fstat(fd, &st) == 0 ? read(fd, text, sizeof text - 1) : -1;
    close(fd);
    if (n < 0)
        return s_fail(why, why_len, path, strerror(errno));
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return s_fail(why, why_len, path, "a secret key file must not be readable by group or "
                                          "others (chmod 600)");
    text[n] = 0;
    char *s = text, *e = text + n;
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    size_t got = 0;
    if (e - s != 2 * UTIL_MASK_KEY_BYTES ||
        sodium_hex2bin(m->key, sizeof m->key, s, (size_t)(e - s), NULL, &got, NULL) != 0 ||
        got != sizeof m->key)
        return s_fail(why, why_len, path, "expected 64 hex digits (a 32-byte key; make one "
                                          "with 'attnctl keygen --mask FILE')");
    s_key_id(m);
    return 0;
}

int util_mask_create(const char *path, char *why, size_t why_len)
{
    if (sodium_init() < 0)
        return s_fail(why, why_len, path, "libsodium cannot initialise");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return s_fail(why, why_len, path, errno == EEXIST ? "exists; a key is never "
                      "overwritten (rotate by writing a new file)" : strerror(errno));
    unsigned char key[UTIL_MASK_KEY_BYTES];
    char text[2 * UTIL_MASK_KEY_BYTES + 2];
    randombytes_buf(key, sizeof key);
    s_hex(key, sizeof key, text);
    sodium_memzero(key, sizeof key);
    strcat(text, "\n");
    ssize_t w = write(fd, text, strlen(text));
    sodium_memzero(text, sizeof text);
    if (close(fd) != 0 || w != (ssize_t)(2 * UTIL_MASK_KEY_BYTES + 1)) {
        unlink(path);
        return s_fail(why, why_len, path, "cannot write the key");
    }
    return 0;
}

void util_mask_hex(const util_mask *m, const void *data, size_t len, char out[UTIL_MASK_HEX])
{
    unsigned char h[16];
    crypto_generichash(h, sizeof h, data, len, m->key, sizeof m->key);
    s_hex(h, sizeof h, out);
}
