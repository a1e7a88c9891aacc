/* ops.h -- the operations attnd serves: one table row each.
 *
 * A row names the op, the parser that turns its fields into a plain C
 * struct, the handler that answers it, the thread it runs on and the role a
 * caller needs.  Adding an op is a row here, a handler file and a section in
 * docs/PROTOCOL.md: routing, `unknown_op`'s list, metrics by op and role
 * checks all read the table.
 *
 *     const srv_op *op = srv_op_find("rank", 4);
 *     srv_call call = {.state = st, .res = &worker_res, .out = &out, .rq = &rq, ...};
 *     op->run(&call);                 // call.code: SRV_OK or the error sent
 */
#ifndef DAEMON_OPS_H
#define DAEMON_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "attn/score.h"
#include "daemon/experiment.h"
#include "daemon/json_out.h"
#include "daemon/metrics.h"
#include "daemon/proto.h"
#include "daemon/state.h"
#include "store/store.h"

/* Where an op runs. */
enum srv_op_at {
    SRV_AT_WORKER = 0,  /* queued and handed to a scoring worker */
    SRV_AT_MAIN = 1,    /* answered by the main thread as it arrives: never waits behind
                           queued work, so an overloaded daemon still answers health */
    SRV_AT_WRITER = 2,  /* handed to the writer thread (writer.h), which owns the only
                           read-write connection and answers after its batch commits */
};

/* The role a caller needs (docs/PROTOCOL.md).  With access control off
 * every caller holds every role. */
enum srv_role { SRV_ROLE_QUERY = 0, SRV_ROLE_WRITE = 1, SRV_ROLE_ADMIN = 2 };

/* What the caller does with a handled request. */
enum srv_outcome {
    SRV_OUT_REPLY = 0,   /* send call->out */
    SRV_OUT_RELOAD = 1,  /* start or join a reload; the reply comes when it ends */
    SRV_OUT_DEFER = 2,   /* staged in the writer's batch; the reply comes after the commit */
};

struct srv_rank_buf;
struct srv_rec_batch;
struct store_hist;

/* What a worker thread (or the writer) owns and lends its handlers. */
typedef struct srv_wres {
    int index;                  /* worker index, for logs; -1 for the writer */
    struct store_hist *hist;    /* this thread's history handle (store/hist/hist.h) */
    store *db;                  /* the writer's read-only connection (item lookups); NULL
                                   on scoring workers */
    struct srv_rec_batch *batch;  /* the writer's batch (record.h); NULL on workers */
    attn_scratch *scratch[SRV_MODELS_MAX];  /* per model slot, sized for its shape */
    attn_limits lim;            /* the limits the scratch is sized for */
    struct srv_rank_buf *rank;  /* rank's per-request buffers */
    uint64_t rng;               /* this worker's sampling stream (impressions) */
} srv_wres;

/* One request being answered. */
typedef struct srv_call {
    srv_state *state;           /* shared, read-only for handlers */
    srv_wres *res;              /* the worker's resources; NULL on the main thread */
    srv_json *out;              /* the reply */
    const srv_request *rq;
    uint64_t t_recv;            /* CLOCK_MONOTONIC when main read the request */
    uint64_t *stage;            /* SRV_STAGE_COUNT timings for the handler to fill */
    int outcome;                /* enum srv_outcome */
    int code;                   /* SRV_OK, or the error code of the reply written */
    int role;                   /* the caller's role (enum srv_role); admin without access
                                   control */
    int arm;                    /* the experiment arm that served it, or -1 */
    /* what rank saw, for the metrics (ranked: it answered with results) */
    int ranked;
    int fallback;               /* enum srv_fallback: why the popularity prior ranked */
    int n_candidates, n_history, n_unknown;
} srv_call;

typedef struct srv_op {
    const char *name;
    /* Fields into a struct allocated with srv_fields_alloc, *args; NULL
     * when the op has no fields.  0, or -1 with srv_fields_fail's reason. */
    int (*parse)(srv_fields *f, void **args);
    void (*run)(srv_call *call);
    int at;                     /* enum srv_op_at */
    int role;                   /* enum srv_role */
} srv_op;

/* The table, in the order metrics list ops.  *n gets its length. */
const srv_op *srv_ops(int *n);
int srv_op_index(const srv_op *op);            /* its row number */
/* The metrics row of a request: its op's row, SRV_OP_NONE for NULL. */
int srv_op_row(const srv_op *op);
const srv_op *srv_op_find(const char *name, size_t len);   /* NULL if unknown */
/* "rank, health, ..." for unknown_op's message. */
const char *srv_op_names(void);

/* Write an error reply into call->out and note its code. */
void srv_call_error(srv_call *call, int code, const char *why);

/* 1 when call->role may run call->rq->op; else 0 with `forbidden` written.
 * Called where the op is known for sure: after the full parse, on a worker
 * and on the writer. */
int srv_call_allowed(srv_call *call);

#endif
