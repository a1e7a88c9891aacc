/* text.c -- the text helpers and number parsers the importers share.
 *
 * Every parser here works on a (pointer, length) slice and rejects trailing
 * garbage, because a CSV field is not NUL-terminated where the importers see
 * it and "12abc" must be an error, not 12.
 */
#include "store/import/read.h"
#include "util/hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int s_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void store_import_trim(const char **s, size_t *len)
{
    const char *p = *s;
    size_t n = *len;
    while (n && s_blank(p[0])) {
        p++;
        n--;
    }
    while (n && s_blank(p[n - 1]))
        n--;
    *s = p;
    *len = n;
}

int store_import_parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i == len)
        return -1;
    /* Accumulate negatively so that INT64_MIN parses without overflow. */
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        int d = s[i] - '0';
        if (v < (INT64_MIN + d) / 10)
            return -1;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN)
            return -1;
        v = -v;
    }
    *out = v;
    return 0;
}

int store_import_parse_double(const char *s, size_t len, double *out)
{
    char tmp[64];
    /* strtod needs a terminator; numbers longer than this are not numbers
     * anyone writes on purpose. */
    if (len == 0 || len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    /* strtod skips leading blanks; a field of " 1" was meant to be trimmed
     * by the caller, so anything it did not trim is an error. */
    if (s_blank(tmp[0]))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + len)
        return -1;
    /* ERANGE on overflow gives +-HUGE_VAL (inf), which the caller reports as
     * non-finite; underflow to a denormal or zero is harmless. */
    *out = v;
    return 0;
}

static int s_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int store_import_parse_isotime(const char *s, size_t len, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (len < 10 || s[4] != '-' || s[7] != '-' || s_digits(s, 4, &y) ||
        s_digits(s + 5, 2, &mo) || s_digits(s + 8, 2, &d))
        return -1;
    size_t i = 10;
    if (i < len && (s[i] == 'T' || s[i] == ' ')) {
        if (len < i + 9 || s[i + 3] != ':' || s[i + 6] != ':' ||
            s_digits(s + i + 1, 2, &h) || s_digits(s + i + 4, 2, &mi) ||
            s_digits(s + i + 7, 2, &sec))
            return -1;
        i += 9;
    }
    if (i < len && s[i] == 'Z')
        i++;
    else if (len - i == 6 && !memcmp(s + i, "+00:00", 6))
        i += 6;
    if (i != len)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    /* timegm normalises 2023-02-31 into March; a date that moved is invalid. */
    if (tm.tm_mday != d || tm.tm_mon != mo - 1)
        return -1;
    *out = (int64_t)t;
    return 0;
}

uint64_t store_import_hash(const void *data, size_t len, uint64_t seed)
{
    /* FNV's low bits are weak for power-of-two tables: finish with a mix. */
    return util_hash_mix(util_fnv1a(UTIL_FNV_OFFSET ^ (seed * 0x9E3779B97F4A7C15ull), data, len));
}
