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

/* The offset of the first NUL in the JSON text buf[0..len): a raw NUL byte
 * or a "\u0000" escape (one not itself escaped: "\\u0000" is a backslash
 * and text), or len if there is none.  C strings from a JSON parser end at
 * such a NUL, so an id "u1\u0000x" would silently become "u1", and a key
 * "id<NUL>" would read as "id": callers refuse it instead. */
size_t util_json_nul_escape(const char *buf, size_t len);

/* One member of a top-level JSON object, as raw text of the buffer. */
typedef struct util_json_member {
    const char *key;      /* between the quotes, escapes left as written */
    size_t key_len;
    int key_escaped;      /* the key holds a backslash escape */
    const char *val;      /* the value's text: "..." with its quotes, a number, {...}, ... */
    size_t val_len;
    int val_string;       /* the value is a string */
    int val_escaped;      /* ... holding a backslash escape */
    size_t start, end;    /* the member's bytes in the buffer: key through value */
} util_json_member;

/* Visit the members of the object in buf[0..len) in order, without
 * building anything, until fn returns nonzero.  Returns 0 when every member
 * was visited and the object closed, 1 when fn stopped it, -1 when the text
 * is not an object this scanner can read (it checks the structure, not
 * every token: a full parser still validates what it accepts). */
int util_json_members(const char *buf, size_t len,
                      int (*fn)(void *ctx, const util_json_member *m), void *ctx);

#endif
