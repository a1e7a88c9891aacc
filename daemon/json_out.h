/* json_out.h -- a small JSON writer for replies.
 *
 *     srv_json w;  srv_json_init(&w, 65536);
 *     srv_json_open(&w, '{');
 *     srv_json_key(&w, "ok");  srv_json_bool(&w, 1);
 *     srv_json_key(&w, "items"); srv_json_open(&w, '[');
 *     srv_json_str(&w, "i1", 2);
 *     srv_json_close(&w, ']');
 *     srv_json_close(&w, '}');        // w.buf = {"ok":true,"items":["i1"]}
 *
 * Why not cJSON for output too: building a cJSON tree allocates a node per
 * value and prints doubles with two snprintf passes; replies are flat and
 * regular, so writing them straight into one reused buffer is both simpler
 * and several times cheaper.  cJSON still parses every request.
 * The buffer grows by doubling when a reply is larger than any before it.
 */
#ifndef DAEMON_JSON_OUT_H
#define DAEMON_JSON_OUT_H

#include <stddef.h>
#include <stdint.h>

#define SRV_JSON_DEPTH 16

typedef struct srv_json {
    char *buf;                       /* NUL-terminated output */
    size_t len, cap;
    int depth;
    unsigned char first[SRV_JSON_DEPTH];  /* no value yet at this depth */
    int after_key;                   /* a key was written; no comma before the value */
    int oom;                         /* growth failed: output is truncated */
} srv_json;

int srv_json_init(srv_json *w, size_t cap);   /* 0, or -1 out of memory */
void srv_json_free(srv_json *w);
void srv_json_reset(srv_json *w);

void srv_json_open(srv_json *w, char bracket);   /* '{' or '[' */
void srv_json_close(srv_json *w, char bracket);  /* '}' or ']' */
void srv_json_key(srv_json *w, const char *key);
void srv_json_str(srv_json *w, const char *s, size_t len);   /* escaped */
void srv_json_cstr(srv_json *w, const char *s);
void srv_json_int(srv_json *w, int64_t v);
void srv_json_num(srv_json *w, double v);      /* %.6g; non-finite as null */
/* A float as the fewest digits that read back as it (util/ftoa.h): scores
 * and weights, whose every bit a client may compare; non-finite as null. */
void srv_json_f32(srv_json *w, float v);
void srv_json_bool(srv_json *w, int v);
void srv_json_null(srv_json *w);
void srv_json_raw(srv_json *w, const char *text, size_t len);  /* a value already in JSON */

#endif
