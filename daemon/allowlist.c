/* allowlist.c -- see allowlist.h.
 *
 * The list is a sorted array searched by binary search: it is read on
 * every CURVE handshake (the ZAP thread) and on every request (the main
 * thread, for the caller's current role), holds hundreds of keys at most,
 * and sorting also puts a key listed twice next to its twin.
 */
#include "daemon/allowlist.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/ops.h"
#include "util/keyfile.h"

typedef struct s_entry {
    char key[UTIL_KEY_Z85 + 1];
    int role;                       /* enum srv_role */
    char name[SRV_ALLOW_NAME_MAX];
} s_entry;

struct srv_allow {
    s_entry *e;
    size_t n, cap;
};

static const char *const s_roles[] = {"query", "write", "admin"};

const char *srv_role_name(int role)
{
    return role >= 0 && role < 3 ? s_roles[role] : "none";
}

int srv_role_parse(const char *s, size_t len)
{
    for (int r = 0; r < 3; r++)
        if (strlen(s_roles[r]) == len && !memcmp(s_roles[r], s, len))
            return r;
    return -1;
}

void srv_allow_free(srv_allow **a_p)
{
    if (!*a_p)
        return;
    free((*a_p)->e);
    free(*a_p);
    *a_p = NULL;
}

static int s_add(srv_allow *a, const char *key, int role, const char *name, size_t name_len,
                 char *why, size_t why_len)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        s_entry *e = realloc(a->e, cap * sizeof *e);
        if (!e) {
            snprintf(why, why_len, "out of memory for the allow-list");
            return -1;
        }
        a->e = e;
        a->cap = cap;
    }
    s_entry *e = &a->e[a->n++];
    memcpy(e->key, key, UTIL_KEY_Z85);
    e->key[UTIL_KEY_Z85] = 0;
    e->role = role;
    snprintf(e->name, sizeof e->name, "%.*s", (int)name_len, name);
    return 0;
}

/* dir/name into buf; -1 with why when it does not fit. */
static int s_join(char *buf, size_t cap, const char *dir, const char *name, char *why,
                  size_t why_len)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) < cap)
        return 0;
    snprintf(why, why_len, "%.100s/%.100s...: path too long", dir, name);
    return -1;
}

static int s_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

/* ---- the directory form --------------------------------------------------- */

/* Every NAME.key in one role folder. */
static int s_role_dir(srv_allow *a, const char *dir, int role, char *why, size_t why_len)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, why_len, "%s: cannot open: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (struct dirent *de; rc == 0 && (de = readdir(d));) {
        char path[4096];
        util_key k;
        if (de->d_name[0] == '.')
            continue;
        if (s_join(path, sizeof path, dir, de->d_name, why, why_len))
            rc = -1;
        else if (s_has_suffix(de->d_name, ".key_secret")) {
            snprintf(why, why_len, "%s: a secret key does not belong in the allow-list; "
                     "put the public NAME.key here and delete this copy", path);
            rc = -1;
        } else if (!s_has_suffix(de->d_name, ".key")) {
            continue;   /* notes, READMEs: not keys */
        } else if (util_key_read(path, 0, &k, why, why_len) != 0) {
            rc = -1;
        } else if (k.sec[0]) {
            snprintf(why, why_len, "%s: holds a secret key; the allow-list takes public keys "
                     "only (delete this copy: the secret has leaked to this folder)", path);
            rc = -1;
        } else {
            rc = s_add(a, k.pub, role, de->d_name, strlen(de->d_name) - 4, why, why_len);
        }
    }
    closedir(d);
    return rc;
}

static int s_load_dir(srv_allow *a, const char *path, char *why, size_t why_len)
{
    DIR *d = opendir(path);
    if (!d) {
        snprintf(why, why_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (struct dirent *de; rc == 0 && (de = readdir(d));) {
        char sub[4096];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        if (s_join(sub, sizeof sub, path, de->d_name, why, why_len)) {
            rc = -1;
            break;
        }
        if (stat(sub, &st) != 0)
            continue;   /* gone while we read: the next reload sees what is there */
        int role = srv_role_parse(de->d_name, strlen(de->d_name));
        if (S_ISDIR(st.st_mode) && role >= 0)
            rc = s_role_dir(a, sub, role, why, why_len);
        else if (S_ISDIR(st.st_mode) || s_has_suffix(de->d_name, ".key") ||
                 s_has_suffix(de->d_name, ".key_secret")) {
            snprintf(why, why_len, "%s: keys go in %s/query/, %s/write/ or %s/admin/ (the folder "
                     "is the role)", sub, path, path, path);
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

/* ---- the file form -------------------------------------------------------- */

/* One line `ROLE KEY [NAME]`; blank lines and # comments are skipped. */
static int s_file_line(srv_allow *a, const char *line, size_t len, const char *path, int no,
                       char *why, size_t why_len)
{
    const char *p = line, *end = line + len;
    const char *tok[3];
    size_t tlen[3];
    int n = 0;
    while (n < 3) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        /* A word starting with '#' opens a comment: a Z85 key never starts
         * with one (it would encode a number over 2^32). */
        if (p == end || *p == '#')
            break;
        tok[n] = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        tlen[n] = (size_t)(p - tok[n]);
        n++;
    }
    if (n == 0)
        return 0;
    int role = srv_role_parse(tok[0], tlen[0]);
    if (role < 0 || n < 2) {
        snprintf(why, why_len, "%s:%d: expected ROLE KEY [NAME] with ROLE one of query, write, "
                 "admin", path, no);
        return -1;
    }
    if (!util_key_valid(tok[1], tlen[1])) {
        snprintf(why, why_len, "%s:%d: not a %d-character Z85 public key", path, no,
                 UTIL_KEY_Z85);
        return -1;
    }
    char fallback[32];
    snprintf(fallback, sizeof fallback, "line%d", no);
    return s_add(a, tok[1], role, n == 3 ? tok[2] : fallback, n == 3 ? tlen[2] : strlen(fallback),
                 why, why_len);
}

static int s_load_file(srv_allow *a, const char *path, char *why, size_t why_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, why_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0, no = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        no++;
        while (len > 0 && line[len - 1] == '\n')
            len--;
        rc = s_file_line(a, line, (size_t)len, path, no, why, why_len);
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---- load and look up ----------------------------------------------------- */

static int s_cmp(const void *x, const void *y)
{
    return memcmp(((const s_entry *)x)->key, ((const s_entry *)y)->key, UTIL_KEY_Z85);
}

srv_allow *srv_allow_load(const char *path, char *why, size_t why_len)
{
    srv_allow *a = calloc(1, sizeof *a);
    struct stat st;
    int rc;
    if (!a) {
        snprintf(why, why_len, "out of memory for the allow-list");
        return NULL;
    }
    if (stat(path, &st) != 0) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        rc = -1;
    } else {
        rc = S_ISDIR(st.st_mode) ? s_load_dir(a, path, why, why_len)
                                 : s_load_file(a, path, why, why_len);
    }
    if (rc == 0 && a->n > 1) {
        qsort(a->e, a->n, sizeof *a->e, s_cmp);
        for (size_t i = 1; i < a->n && rc == 0; i++)
            if (!s_cmp(&a->e[i - 1], &a->e[i])) {
                snprintf(why, why_len, "%s: the key %s is listed twice (%s and %s): remove one",
                         path, a->e[i].key, a->e[i - 1].name, a->e[i].name);
                rc = -1;
            }
    }
    if (rc)
        srv_allow_free(&a);
    return a;
}

int srv_allow_role(const srv_allow *a, const char *z85, const char **name)
{
    s_entry probe;
    memcpy(probe.key, z85, UTIL_KEY_Z85);
    const s_entry *e = a && a->n ? bsearch(&probe, a->e, a->n, sizeof *a->e, s_cmp) : NULL;
    if (name)
        *name = e ? e->name : NULL;
    return e ? e->role : -1;
}

size_t srv_allow_count(const srv_allow *a)
{
    return a ? a->n : 0;
}
