/* utf8.h -- UTF-8 checks for text that crosses the wire.
 *
 *     if (!util_utf8_valid(buf, len)) reject();
 *     size_t n = util_utf8_cut(title, strlen(title), 511);   // never mid-character
 *     printf("%.*s", (int)n, title);
 *
 * Valid means RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequence.
 */
#ifndef UTIL_UTF8_H
#define UTIL_UTF8_H

#include <stddef.h>

/* 1 if s[0..len) is well-formed UTF-8, else 0. */
int util_utf8_valid(const char *s, size_t len);

/* Bytes of the longest prefix of s[0..len) that is at most max bytes and
 * does not end inside a multi-byte character.  s must be valid UTF-8. */
size_t util_utf8_cut(const char *s, size_t len, size_t max);

/* Length of the valid sequence starting at s (1..4), or 0 if the bytes at s
 * do not start one. */
size_t util_utf8_seq(const char *s, size_t len);

#endif
