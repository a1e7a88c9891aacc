/* record.h -- the record op: parse, stage into the writer's batch, commit,
 * answer (docs/PROTOCOL.md, record).
 *
 *     srv_rec_batch *b = srv_rec_batch_new(&cfg);   // the writer's, once
 *     wres.batch = b;
 *     ... the op table calls srv_record_parse, then srv_record_run, which
 *         stages the request (call.outcome = SRV_OUT_DEFER) ...
 *     srv_rec_batch_report rep;  store_err err;
 *     int rc = srv_rec_batch_commit(b, hist, &rep, &err);   // one durable transaction
 *     for (int k = 0; k < srv_rec_batch_requests(b); k++) {
 *         srv_rec_batch_reply(b, k, rc, &err, &out);         // then send out to request k
 *     }
 *     srv_rec_batch_reset(b);
 *
 * Only the writer thread has a batch: record's row says SRV_AT_WRITER, and
 * srv_record_run refuses to run anywhere else.
 */
#ifndef DAEMON_RECORD_H
#define DAEMON_RECORD_H

#include "daemon/ops.h"
#include "daemon/rec_metrics.h"
#include "store/hist/hist.h"

#define SRV_REC_EXT_MAX 512        /* bytes of a user or item ext_id (as the importer) */
#define SRV_REC_KIND_MAX 64        /* bytes of a kind (as the importer) */
#define SRV_REC_EVENT_ID_MAX 256   /* bytes of an event_id */

/* One event of a request, as parsed.  kind.s and event_id.s are NULL when
 * absent (kind then means "view"). */
typedef struct srv_rec_event {
    srv_str user, item, kind, event_id;
    int64_t ts;
    float weight;
} srv_rec_event;

typedef struct srv_record_args {
    int n;                  /* 1..limits.max_record_events */
    srv_rec_event *ev;
} srv_record_args;

int srv_record_parse(srv_fields *f, void **args);
/* On the writer: resolve the items and stage the events (SRV_OUT_DEFER),
 * or answer an error at once.  Elsewhere: `internal`. */
void srv_record_run(srv_call *c);

typedef struct srv_rec_batch srv_rec_batch;

/* Sized from record.max_batch and limits.max_record_events.  NULL out of
 * memory. */
srv_rec_batch *srv_rec_batch_new(const srv_config *cfg);
void srv_rec_batch_free(srv_rec_batch **b_p);   /* accepts NULL */
int srv_rec_batch_events(const srv_rec_batch *b);     /* events staged */
int srv_rec_batch_requests(const srv_rec_batch *b);   /* requests staged */
int srv_rec_batch_room(const srv_rec_batch *b);       /* events that still fit */
/* When request k reached attnd (CLOCK_MONOTONIC ns). */
uint64_t srv_rec_batch_t_recv(const srv_rec_batch *b, int k);

/* Append every staged event through h in one transaction, durable when it
 * returns STORE_OK; rep gets the counts and the append's latency (its
 * ack_ns is left to the caller).  On failure nothing was stored, rep says
 * so, and err has the reason. */
int srv_rec_batch_commit(srv_rec_batch *b, store_hist *h, srv_rec_batch_report *rep,
                         store_err *err);
/* The reply to staged request k, into out: its events' outcomes when the
 * commit returned rc == STORE_OK, else the error every request of the
 * failed batch gets (`busy` for a database locked by another writer,
 * `unavailable` for a history node that did not answer, `store`
 * otherwise).  A request some of whose events were on a node that failed
 * is `unavailable` too, whatever the rest of the batch did (srv_rec_batch_code
 * says which code request k gets). */
int srv_rec_batch_code(const srv_rec_batch *b, int k, int rc);
void srv_rec_batch_reply(const srv_rec_batch *b, int k, int rc, const store_err *err,
                         srv_json *out);
void srv_rec_batch_reset(srv_rec_batch *b);

#endif
