/* proto.h -- protocol v1 (docs/PROTOCOL.md): ops, error codes, request parsing.
 *
 *     srv_request rq;  cJSON *tree;  char why[256];
 *     int code = srv_request_parse(buf, len, &cfg, &rq, &tree, why, sizeof why);
 *     if (code != SRV_OK)
 *         srv_reply_error(&out, rq.id_json, code, why);   // id echoed when it was read
 *     ...
 *     cJSON_Delete(tree);   // rq borrows from tree until then
 */
#ifndef DAEMON_PROTO_H
#define DAEMON_PROTO_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "daemon/config.h"
#include "daemon/json_out.h"

enum srv_op {
    SRV_OP_RANK, SRV_OP_HEALTH, SRV_OP_STATS, SRV_OP_INFO, SRV_OP_RELOAD,
    SRV_OP_COUNT
};

/* Reply codes; their names are the stable `error.code` strings. */
enum srv_code {
    SRV_OK = 0,
    SRV_E_BAD_JSON,       /* not valid UTF-8 JSON, or not an object */
    SRV_E_BAD_FRAME,      /* extra frames in the message */
    SRV_E_TOO_LARGE,      /* over limits.max_message_bytes */
    SRV_E_BAD_REQUEST,    /* a field missing, of the wrong type or out of range */
    SRV_E_UNKNOWN_OP,     /* op is not one we serve */
    SRV_E_BUSY,           /* the queue is full */
    SRV_E_UNAVAILABLE,    /* no snapshot, or shutting down */
    SRV_E_STORE,          /* the database failed this request */
    SRV_E_INTERNAL,       /* a bug or a numerical failure */
    SRV_E_RELOAD_FAILED,  /* the new snapshot could not be built */
    SRV_CODE_COUNT
};

const char *srv_op_name(int op);
const char *srv_code_name(int code);

#define SRV_ID_MAX 256   /* longest id accepted, in bytes of its JSON text */

typedef struct srv_request {
    int op;                       /* enum srv_op */
    char id_json[SRV_ID_MAX * 6 + 8];  /* the id as JSON text, "null" when absent */
    /* rank; pointers borrow from the parsed tree */
    const char *user;             /* or NULL */
    const cJSON *history;         /* array of strings, oldest first, or NULL */
    const cJSON *weights;         /* array of numbers, or NULL */
    const cJSON *candidates;      /* array of strings */
    int n_history, n_cand;
    int k, explain, exclude_seen, titles;
} srv_request;

/* Parse and validate one request.  Returns SRV_OK, or a code with the reason
 * in why naming the field.  rq->id_json is valid whenever the id could be
 * read, even on error.  On SRV_OK the caller owns *tree (cJSON_Delete);
 * on error *tree is NULL. */
int srv_request_parse(const char *buf, size_t len, const srv_config *cfg, srv_request *rq,
                      cJSON **tree, char *why, size_t why_len);

/* {"id":…,"ok":false,"error":{"code":…,"message":…}} into w (reset first). */
void srv_reply_error(srv_json *w, const char *id_json, int code, const char *message);

/* Start a success reply: {"id":…,"ok":true   (caller adds keys and closes). */
void srv_reply_begin(srv_json *w, const char *id_json);

#endif
