/* json.h -- JSON string escaping, the one implementation the daemon's
 * reply writer and the clients' request builder share.
 *
 *     char out[UTIL_JSON_QUOTED_MAX(4)];
 *     size_t n = util_json_quote(out, "a\"b\n", 4);   // out: "a\"b\n" (quoted), n = 8
 *     fwrite(out, 1, n, stdout);
 *
 * Escapes exactly what RFC 8259 requires: '"', '\\' and the control
 * characters below 0x20 (as \n, \r, \t, or \u00XX).  Every other byte,
 * including UTF-8 sequences and DEL, is copied as it is: the caller
 * guarantees valid UTF-8 (requests are validated on arrival, database text
 * can be repaired with util_utf8_repair first), so one byte loop serves all.
 */
#ifndef UTIL_JSON_H
#define UTIL_JSON_H

#include <stddef.h>

/* Most bytes util_json_quote writes for len input bytes: six per byte
 * (\u00XX) and the two quotes. */
#define UTIL_JSON_QUOTED_MAX(len) ((len) * 6 + 2)

/* Write s[0..len) as a quoted, escaped JSON string into out, which holds
 * at least UTIL_JSON_QUOTED_MAX(len) bytes; s may contain NUL bytes (as
 * \u0000).  Returns the bytes written; no NUL terminator is added. */
size_t util_json_quote(char *out, const char *s, size_t len);

#endif
