/* proto.h -- protocol v1 (docs/PROTOCOL.md): error codes, the request
 * envelope, and the field reader op parsers use.
 *
 *     srv_request rq;  char why[600];
 *     int code = srv_request_parse(buf, len, &cfg, &args_arena, &rq, why, sizeof why);
 *     if (code != SRV_OK)
 *         srv_reply_error(&out, rq.id_json, code, why);  // id echoed when it was read
 *     else
 *         rq.op->run(&call);                            // rq.args: the op's plain C struct
 *
 * The JSON parse tree never leaves this file: the envelope (UTF-8, object,
 * id, op) is checked here, the op's own parser copies its fields into plain
 * C structs in the caller's arena through srv_fields, and the tree is freed
 * before srv_request_parse returns.  So a handler reads arrays and
 * (pointer, length) strings and never walks a parser's lists.
 */
#ifndef DAEMON_PROTO_H
#define DAEMON_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/arena.h"
#include "daemon/config.h"

/* Reply codes; their names are the stable `error.code` strings.  New codes
 * are appended, never renumbered or renamed. */
enum srv_code {
    SRV_OK = 0,
    SRV_E_BAD_JSON,       /* not valid UTF-8 JSON, or not an object */
    SRV_E_BAD_FRAME,      /* extra frames in the message */
    SRV_E_TOO_LARGE,      /* over limits.max_message_bytes, or a reply over max_reply_bytes */
    SRV_E_BAD_REQUEST,    /* a field missing, of the wrong type or out of range */
    SRV_E_UNKNOWN_OP,     /* op is not one we serve */
    SRV_E_BUSY,           /* the queue is full */
    SRV_E_UNAVAILABLE,    /* no snapshot, or shutting down */
    SRV_E_STORE,          /* the database failed this request */
    SRV_E_INTERNAL,       /* a bug or a numerical failure */
    SRV_E_RELOAD_FAILED,  /* the new snapshot could not be built */
    SRV_E_FORBIDDEN,      /* the caller's role does not allow this op (or this model) */
    SRV_E_RATE_LIMITED,   /* the caller is over its request rate; retry after the hint */
    SRV_E_UNKNOWN_MODEL,  /* the request named a model version that is not loaded */
    SRV_CODE_COUNT
};

const char *srv_code_name(int code);

#define SRV_ID_MAX 256                       /* longest id accepted, bytes of its text */
#define SRV_ID_JSON_MAX (SRV_ID_MAX * 6 + 8)  /* its JSON text, every byte escaped */

struct srv_op;

/* A string of the request, copied out of the parse tree: NUL-terminated,
 * len bytes, valid UTF-8 without NUL. */
typedef struct srv_str {
    const char *s;
    uint32_t len;
} srv_str;

typedef struct srv_request {
    const struct srv_op *op;        /* the op's table row; NULL until it was read */
    char id_json[SRV_ID_JSON_MAX];  /* the id as JSON text, "null" when absent */
    void *args;                     /* the op's parsed fields (in the args arena), or NULL */
} srv_request;

/* Parse and validate one request.  Returns SRV_OK, or a code with the reason
 * in why naming the field.  rq->id_json is valid whenever the id could be
 * read, even on error.  The op's fields go into args_arena, which the caller
 * resets when the reply is written. */
int srv_request_parse(const char *buf, size_t len, const srv_config *cfg, srv_arena *args_arena,
                      srv_request *rq, char *why, size_t why_len);

/* The same through the general JSON parser (cJSON) alone: the reference the
 * fast paths are tested against (tests/check_proto.c), and the path for
 * every request they do not take. */
int srv_request_parse_json(const char *buf, size_t len, const srv_config *cfg,
                           srv_arena *args_arena, srv_request *rq, char *why, size_t why_len);

/* Whether srv_request_parse may take an op's fast parser (default on);
 * off sends every request through srv_request_parse_json.  For benchmarks
 * and tests: process-wide. */
void srv_request_set_fast(int on);

/* The op and id of a message without parsing it: a scan of the top-level
 * keys only, for the main thread's routing and its busy replies.  *op is the
 * table row, or NULL when the message has no readable "op" (the full parse
 * then names the problem); id_json gets the id ("null" when absent or not
 * a valid id).  Costs one pass over at most the bytes before both keys. */
void srv_request_peek(const char *buf, size_t len, const struct srv_op **op, char *id_json);

/* ---- the field reader: what op parsers see of a request ------------------- *
 * Each reader returns 0, or -1 with a message naming the field already in
 * the reader's why (the parser just returns -1).  Absent and null fields
 * take the default.  Arrays and strings are copied into the args arena. */
typedef struct srv_fields srv_fields;

const srv_config *srv_fields_config(const srv_fields *f);
void *srv_fields_alloc(srv_fields *f, size_t bytes);   /* zeroed; NULL out of memory */
int srv_fields_fail(srv_fields *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int srv_field_present(const srv_fields *f, const char *name);  /* present and not null */
/* An integral number in [lo, hi]. */
int srv_field_int(srv_fields *f, const char *name, int lo, int hi, int def, int *out);
int srv_field_bool(srv_fields *f, const char *name, int def, int *out);
/* A non-empty string; out->s is NULL when absent and not required. */
int srv_field_str(srv_fields *f, const char *name, int required, srv_str *out);
/* A non-empty array of at most max non-empty strings; limit names the
 * configuration key behind max in the error (NULL: none). */
int srv_field_strs(srv_fields *f, const char *name, int max, const char *limit, srv_str **out,
                   int *n);
/* An integral number in [lo, hi] (and within +-2^53, where doubles hold
 * integers exactly); required: absent is an error, else def. */
int srv_field_i64(srv_fields *f, const char *name, int required, int64_t lo, int64_t hi,
                  int64_t def, int64_t *out);
/* A number in [lo, hi] that a float holds as a normal value (no underflow). */
int srv_field_float(srv_fields *f, const char *name, double lo, double hi, float def, float *out);
/* An array of 1..max objects: fn reads object i of n through its own
 * srv_fields, whose messages name it ("events[3].weight: ..."); its
 * allocations go to the same arena.  fn returns 0, or -1 having failed
 * with a reason. */
int srv_field_each(srv_fields *f, const char *name, int max, const char *limit,
                   int (*fn)(srv_fields *item, int i, int n, void *ctx), void *ctx, int *n);
/* An array of exactly n numbers, each representable as a normal float in
 * [lo, hi] (so neither underflows to 0 nor overflows). */
int srv_field_floats(srv_fields *f, const char *name, int n, double lo, double hi, float **out);

#endif
