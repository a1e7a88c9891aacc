/* keyfile.c -- see keyfile.h.
 *
 * A secret file is opened first and checked on its descriptor (fstat), so
 * that the file whose mode was checked is the file that is read.  New
 * files are created with O_EXCL: keygen never replaces a key somebody may
 * already have handed out.
 */
#include "util/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

int util_key_valid(const char *text, size_t len)
{
    if (len != UTIL_KEY_Z85)
        return 0;
    char z[UTIL_KEY_Z85 + 1];
    uint8_t raw[32];
    memcpy(z, text, len);
    z[len] = 0;
    return zmq_z85_decode(raw, z) != NULL;
}

/* The whole file into buf (NUL-terminated), and its mode, read on the
 * same descriptor: the file checked is the file read. */
static int s_slurp(const char *path, char *buf, size_t cap, unsigned *mode, char *why,
                   size_t why_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0)
        snprintf(why, why_len, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, why_len, "%s: not a regular file", path);
    else if ((size_t)st.st_size >= cap)
        snprintf(why, why_len, "%s: %lld bytes, too large for a key file", path,
                 (long long)st.st_size);
    else
        rc = 0;
    *mode = (unsigned)(st.st_mode & 07777);
    size_t got = 0;
    while (rc == 0 && got < cap - 1) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, why_len, "%s: cannot read: %s", path, strerror(errno));
            rc = -1;
        }
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = 0;
    close(fd);
    return rc;
}

static const char *s_trim(const char *s, size_t *len)
{
    while (*len && (*s == ' ' || *s == '\t'))
        s++, (*len)--;
    while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t' || s[*len - 1] == '\r'))
        (*len)--;
    return s;
}

/* One line: a comment, a bare word (a zcert section), or name = value.
 * Copies a public-key or secret-key value into out. */
static int s_line(const char *line, size_t len, util_key *out, const char *path, int no, char *why,
                  size_t why_len)
{
    const char *t = s_trim(line, &len);
    if (len == 0 || t[0] == '#')
        return 0;
    const char *eq = memchr(t, '=', len);
    if (!eq) {
        if (strspn(t, "abcdefghijklmnopqrstuvwxyz-_") >= len)
            return 0;
        snprintf(why, why_len, "%s:%d: expected name = value", path, no);
        return -1;
    }
    size_t nlen = (size_t)(eq - t), vlen = len - nlen - 1;
    const char *name = s_trim(t, &nlen);
    const char *val = s_trim(eq + 1, &vlen);
    if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"')
        val++, vlen -= 2;
    char *dst = nlen == 10 && !memcmp(name, "public-key", 10)   ? out->pub
                : nlen == 10 && !memcmp(name, "secret-key", 10) ? out->sec
                                                                : NULL;
    if (!dst)
        return 0;
    if (!util_key_valid(val, vlen)) {
        snprintf(why, why_len, "%s:%d: %.*s is not a %d-character Z85 key", path, no,
                 (int)nlen, name, UTIL_KEY_Z85);
        return -1;
    }
    memcpy(dst, val, vlen);
    dst[vlen] = 0;
    return 0;
}

int util_key_read(const char *path, unsigned flags, util_key *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    char *buf = malloc(UTIL_KEY_FILE_MAX);
    if (!buf) {
        snprintf(why, why_len, "%s: out of memory", path);
        return -1;
    }
    unsigned mode = 0;
    int rc = s_slurp(path, buf, UTIL_KEY_FILE_MAX, &mode, why, why_len);
    char *line = buf;
    for (int no = 1; rc == 0 && line; no++) {
        char *end = strchr(line, '\n');
        rc = s_line(line, end ? (size_t)(end - line) : strlen(line), out, path, no, why,
                    why_len);
        line = end ? end + 1 : NULL;
    }
    free(buf);
    if (rc)
        return -1;
    if ((flags & UTIL_KEY_SECRET) && !out->sec[0]) {
        snprintf(why, why_len, "%s: no secret-key line (is this the public file? "
                 "secret keys are in NAME.key_secret)", path);
        return -1;
    }
    if ((flags & UTIL_KEY_SECRET) && (mode & 077)) {
        snprintf(why, why_len, "%s: mode %04o lets group or others at a secret key; "
                 "run chmod 600 %s", path, mode, path);
        return -1;
    }
    if (out->sec[0]) {
        char derived[UTIL_KEY_Z85 + 1];
        if (zmq_curve_public(derived, out->sec) != 0) {
            snprintf(why, why_len, "%s: cannot derive the public key: %s", path,
                     zmq_strerror(zmq_errno()));
            return -1;
        }
        if (out->pub[0] && strcmp(derived, out->pub)) {
            snprintf(why, why_len, "%s: public-key does not belong to secret-key", path);
            return -1;
        }
        memcpy(out->pub, derived, sizeof derived);
    }
    if (!out->pub[0]) {
        snprintf(why, why_len, "%s: no public-key line", path);
        return -1;
    }
    return 0;
}

/* ---- writing -------------------------------------------------------------- */

static int s_write_new(const char *path, mode_t mode, const char *text, char *why,
                       size_t why_len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(why, why_len, "%s: %s", path,
                 errno == EEXIST ? "exists; keygen never overwrites a key" : strerror(errno));
        return -1;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    int rc = done == len && fsync(fd) == 0 ? 0 : -1;
    if (close(fd) != 0)
        rc = -1;
    if (rc) {
        snprintf(why, why_len, "%s: cannot write: %s", path, strerror(errno));
        unlink(path);
    }
    return rc;
}

int util_key_generate(const char *base, util_key *out, char *why, size_t why_len)
{
    char pub_path[4096], sec_path[4096];
    if ((size_t)snprintf(pub_path, sizeof pub_path, "%s.key", base) >= sizeof pub_path ||
        (size_t)snprintf(sec_path, sizeof sec_path, "%s.key_secret", base) >= sizeof sec_path) {
        snprintf(why, why_len, "%.80s...: name too long", base);
        return -1;
    }
    if (zmq_curve_keypair(out->pub, out->sec) != 0) {
        snprintf(why, why_len, "cannot make a CURVE key pair: %s (is libzmq built with "
                 "libsodium?)", zmq_strerror(zmq_errno()));
        return -1;
    }
    char stamp[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *name = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
    char text[1024];
    snprintf(text, sizeof text,
             "# attnd CURVE secret key \"%s\" (attnctl keygen, %s)\n"
             "# Keep it private (mode 0600); never copy it off the machine that uses it.\n"
             "public-key = \"%s\"\nsecret-key = \"%s\"\n", name, stamp, out->pub, out->sec);
    /* The secret first: a crash between the two leaves no public key that
     * an operator could allow without its owner having the secret. */
    if (s_write_new(sec_path, 0600, text, why, why_len))
        return -1;
    snprintf(text, sizeof text,
             "# attnd CURVE public key \"%s\" (attnctl keygen, %s)\n"
             "# Give this file to the other side; docs/SECURITY.md says where it goes.\n"
             "public-key = \"%s\"\n", name, stamp, out->pub);
    if (s_write_new(pub_path, 0644, text, why, why_len)) {
        unlink(sec_path);
        return -1;
    }
    return 0;
}
