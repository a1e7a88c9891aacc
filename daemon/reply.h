/* reply.h -- every reply attnd writes, in one place.
 *
 *     srv_reply_error(&out, rq.id_json, SRV_E_BAD_REQUEST, "k: expected ...");
 *     srv_reply_rank(&out, rq.id_json, &ranked);   // from rank.c's results
 *
 * Handlers decide what to say; this file decides how it is spelled on the
 * wire (docs/PROTOCOL.md), so a field is renamed in one place.
 */
#ifndef DAEMON_REPLY_H
#define DAEMON_REPLY_H

#include <stdint.h>

#include "daemon/json_out.h"
#include "daemon/metrics.h"
#include "daemon/proto.h"
#include "daemon/snapshot.h"
#include "daemon/state.h"

/* {"id":…,"ok":false,"error":{"code":…,"message":…}} into w (reset first). */
void srv_reply_error(srv_json *w, const char *id_json, int code, const char *message);

/* A rank answer, as rank.c computed it.  Arrays are borrowed. */
typedef struct srv_ranked {
    const srv_snapshot *snap;     /* rows below index its catalog and titles */
    int64_t model;                /* the model version that scored */
    const char *arm;              /* the experiment arm, or NULL */
    int n;                        /* results, best first */
    const uint32_t *rows;         /* n catalog rows */
    const float *score;           /* n scores */
    int n_because;                /* explanations per result; 0 for none */
    const uint32_t *because_rows; /* n x n_because catalog rows */
    const float *because_weight;  /* n x n_because weights */
    const srv_str *unknown;       /* ids not in the catalog */
    int n_unknown;
    int exclude_seen;             /* list `excluded` */
    const uint32_t *excluded;     /* rows dropped by exclude_seen */
    int n_excluded;
    const char *fallback;         /* NULL, or why the popularity prior ranked */
    int history;                  /* history items used */
    int titles;                   /* add titles */
    uint64_t t_recv;              /* for took_us */
} srv_ranked;

void srv_reply_rank(srv_json *w, const char *id_json, const srv_ranked *r);

/* A record answer (record.c): events by index into the request's list. */
typedef struct srv_rec_reject {
    int index;
    const char *item;             /* as sent; the reply cuts it to 64 bytes */
    uint32_t len;
    const char *reason;           /* "unknown_item" */
} srv_rec_reject;

typedef struct srv_recorded {
    int stored;                   /* events stored by this request */
    const int *duplicates;        /* indexes of events already stored */
    int n_duplicates;
    const srv_rec_reject *rejected;
    int n_rejected;
    uint64_t t_recv;              /* for took_us */
} srv_recorded;

void srv_reply_recorded(srv_json *w, const char *id_json, const srv_recorded *r);

/* health: liveness and readiness (snap may be NULL). */
void srv_reply_health(srv_json *w, const char *id_json, const srv_state *st,
                      const srv_snapshot *snap);
/* rate_limited: an error with "retry_after_ms" beside code and message. */
void srv_reply_error_retry(srv_json *w, const char *id_json, int code, const char *message,
                           uint64_t retry_after_ms);

/* info: static facts about the build, the snapshot and the limits; the
 * database path, endpoint and key files only for a caller with the admin
 * role (enum srv_role). */
void srv_reply_info(srv_json *w, const char *id_json, const srv_state *st,
                    const srv_snapshot *snap, int role);
/* stats: the metrics view (the same numbers as the log line). */
void srv_reply_stats(srv_json *w, const char *id_json, const srv_metrics_view *v);
/* reload: what the new snapshot holds. */
void srv_reply_reloaded(srv_json *w, const char *id_json, const srv_snapshot *snap);

#endif
