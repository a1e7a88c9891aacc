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

/* ---- the strict scanner ------------------------------------------------------ *
 * A fast path for request parsers: it reads a subset of JSON in place and
 * builds nothing, so that a full parser (cJSON) is needed only for text
 * outside it.  The subset is RFC 8259 JSON whose strings hold no backslash
 * escape and no control byte (below 0x20), whose numbers are at most
 * UTIL_JSON_NUMBER_MAX bytes, and whose containers nest at most `depth`
 * deep, with only space, tab, CR and LF around the object.  Every text in
 * it is JSON that a full parser reads the same way, so the caller may
 * answer from the scan alone; outside it, the caller asks the full parser,
 * which also names the problem.
 *
 *     util_json_field f[32];  int high;
 *     int n = util_json_scan(buf, len, f, 32, 16, &high);   // -1: use cJSON
 *     if (n >= 0 && high && !util_utf8_valid(buf, len)) ...   // bytes >= 0x80 seen
 *     const char *at = f[i].val + 1;  util_json_field e;      // an array's elements:
 *     while (util_json_elem(&at, f[i].val + f[i].val_len, &e)) ...
 */
enum util_json_kind {
    UTIL_JSON_STRING = 1, UTIL_JSON_NUMBER, UTIL_JSON_TRUE, UTIL_JSON_FALSE, UTIL_JSON_NULL,
    UTIL_JSON_ARRAY, UTIL_JSON_OBJECT
};

/* Longer numbers are outside the subset: cJSON reads at most 63 bytes of one. */
#define UTIL_JSON_NUMBER_MAX 40

/* A member of the scanned object, or an element of one of its arrays. */
typedef struct util_json_field {
    const char *key;      /* a member's key, between its quotes; NULL for an element */
    size_t key_len;
    const char *val;      /* a string's contents (between the quotes); else the value's text */
    size_t val_len;
    int kind;             /* enum util_json_kind */
    size_t count;         /* an array's elements, an object's members */
} util_json_field;

/* Scan the object in buf[0..len) into fields[0..max), in order.  Returns
 * the number of members, or -1 when the text is outside the subset or has
 * more than max members.  *high is 1 when a string holds a byte >= 0x80:
 * the caller checks UTF-8 then (the scan does not). */
int util_json_scan(const char *buf, size_t len, util_json_field *fields, int max, int depth,
                   int *high);

/* The next element of an array util_json_scan accepted: *at starts just
 * past the array's '[' and end is the array's end (val + val_len).  Fills
 * e and returns 1, or 0 after the last one. */
int util_json_elem(const char **at, const char *end, util_json_field *e);

#endif
