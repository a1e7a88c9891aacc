/* utf8.h -- UTF-8 checks, cutting on character boundaries, and repair.
 *
 *     if (!util_utf8_valid(buf, len))                  // protocol bytes, file fields
 *         return error("invalid UTF-8 at byte %zu", util_utf8_prefix(buf, len));
 *     size_t n = util_utf8_cut(title, strlen(title), 80);   // <= 80 bytes, whole characters
 *     printf("%.*s\n", (int)n, title);
 *
 *     size_t need = util_utf8_repair(NULL, text, len); // text from the database:
 *     char *out = malloc(need + 1);                    // measure, then copy with
 *     util_utf8_repair(out, text, len);                // bad bytes as U+FFFD
 *
 * Valid means well-formed UTF-8 as RFC 3629 and Unicode 15 section 3.9
 * define it: no overlong forms (C0, C1, E0 80..9F, F0 80..8F), no UTF-16
 * surrogates (ED A0..BF), nothing above U+10FFFF (F4 90.., F5..FF), no
 * stray continuation bytes, no sequence cut short.  NUL bytes are valid
 * (they are U+0000); callers that cannot carry them check separately.
 */
#ifndef UTIL_UTF8_H
#define UTIL_UTF8_H

#include <stddef.h>

/* Length of the longest valid prefix of s[0..len): len if it is all valid,
 * else the offset of the first byte of the first bad sequence. */
size_t util_utf8_prefix(const char *s, size_t len);

/* 1 if s[0..len) is valid UTF-8, else 0. */
int util_utf8_valid(const char *s, size_t len);

/* The longest prefix length <= max that ends on a character boundary: len
 * when len <= max, else max moved back over at most three continuation
 * bytes (10xxxxxx), so a multi-byte character is never cut in two.  On
 * invalid input that has more continuation bytes in a row it returns max
 * minus three; it never returns more than max or reads past s[max]. */
size_t util_utf8_cut(const char *s, size_t len, size_t max);

/* Most bytes util_utf8_repair writes for len input bytes (each bad byte
 * can become the 3-byte U+FFFD), plus the terminating NUL. */
#define UTIL_UTF8_REPAIR_MAX(len) ((len) * 3 + 1)

/* Copy s[0..len) to out with each maximal ill-formed subsequence replaced
 * by one U+FFFD (EF BF BD), the practice Unicode recommends (section 3.9,
 * "U+FFFD Substitution of Maximal Subparts"), and NUL-terminate it.  Valid
 * input is copied unchanged.  Returns the length of the result without the
 * NUL.  out holds that length + 1 bytes (UTIL_UTF8_REPAIR_MAX(len) always
 * suffices), or is NULL: then nothing is written and only the length is
 * returned, for callers that size an arena first. */
size_t util_utf8_repair(char *out, const char *s, size_t len);

#endif
