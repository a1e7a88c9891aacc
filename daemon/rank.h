/* rank.h -- the rank op: parse, map candidates, history, score, encode.
 *
 *     srv_rank_buf *b = srv_rank_buf_new(&cfg);   // once per worker, sized from limits
 *     wres.rank = b;
 *     ... the op table calls srv_rank_parse and srv_rank_run ...
 *     srv_rank_buf_free(&b);
 */
#ifndef DAEMON_RANK_H
#define DAEMON_RANK_H

#include "daemon/ops.h"

/* A rank request's fields (docs/PROTOCOL.md, rank). */
typedef struct srv_rank_args {
    srv_str user;               /* .s NULL for an anonymous history */
    srv_str *history;           /* anonymous history, oldest first */
    float *weights;             /* one per history item, or NULL (all 1) */
    int n_history;
    srv_str *cand;              /* candidates in request order */
    int n_cand;
    int k, explain, exclude_seen, titles;
    int model;                  /* a model version the caller names, or -1 */
    srv_str session;            /* an anonymous session's key for experiment arms, or .s NULL */
} srv_rank_args;

typedef struct srv_rank_buf srv_rank_buf;

/* Every buffer a rank request needs, sized from cfg's limits.  NULL out of
 * memory. */
srv_rank_buf *srv_rank_buf_new(const srv_config *cfg);
void srv_rank_buf_free(srv_rank_buf **buf_p);   /* accepts NULL */

int srv_rank_parse(srv_fields *f, void **args);
void srv_rank_run(srv_call *call);

#endif
