/* ops.c -- the op table, and the small ops: health, info, stats, reload.
 *
 * Order matters only for metrics (`stats` lists ops in table order); new
 * ops go at the end.  The small ops run on the main thread: they read
 * shared state and never wait behind queued rank requests.  record runs on
 * the writer thread (record.c, writer.c).
 */
#include "daemon/ops.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/allowlist.h"
#include "daemon/rank.h"
#include "daemon/record.h"
#include "daemon/reply.h"
#include "daemon/snapshot.h"

static void s_health(srv_call *c);
static void s_info(srv_call *c);
static void s_stats(srv_call *c);
static void s_reload(srv_call *c);

static const srv_op s_table[] = {
    {"rank", srv_rank_parse, srv_rank_run, SRV_AT_WORKER, SRV_ROLE_QUERY},
    {"health", NULL, s_health, SRV_AT_MAIN, SRV_ROLE_QUERY},
    {"stats", NULL, s_stats, SRV_AT_MAIN, SRV_ROLE_ADMIN},
    /* Clients read info's limits; its paths and file details are for admins. */
    {"info", NULL, s_info, SRV_AT_MAIN, SRV_ROLE_QUERY},
    {"reload", NULL, s_reload, SRV_AT_MAIN, SRV_ROLE_ADMIN},
    {"record", srv_record_parse, srv_record_run, SRV_AT_WRITER, SRV_ROLE_WRITE},
};

#define S_NOPS ((int)(sizeof s_table / sizeof s_table[0]))
_Static_assert(S_NOPS <= SRV_OPS_MAX, "metrics count ops in arrays of SRV_OPS_MAX");

const srv_op *srv_ops(int *n)
{
    *n = S_NOPS;
    return s_table;
}

int srv_op_index(const srv_op *op)
{
    return (int)(op - s_table);
}

int srv_op_row(const srv_op *op)
{
    return op ? srv_op_index(op) : SRV_OP_NONE;
}

const srv_op *srv_op_find(const char *name, size_t len)
{
    for (int i = 0; i < S_NOPS; i++)
        if (strlen(s_table[i].name) == len && !memcmp(s_table[i].name, name, len))
            return &s_table[i];
    return NULL;
}

static char s_names[SRV_OPS_MAX * 16];
static pthread_once_t s_names_once = PTHREAD_ONCE_INIT;

static void s_make_names(void)
{
    size_t at = 0;
    for (int i = 0; i < S_NOPS && at < sizeof s_names; i++)
        at += (size_t)snprintf(s_names + at, sizeof s_names - at, "%s%s", i ? ", " : "",
                               s_table[i].name);
}

const char *srv_op_names(void)
{
    pthread_once(&s_names_once, s_make_names);
    return s_names;
}

void srv_call_error(srv_call *c, int code, const char *why)
{
    srv_reply_error(c->out, c->rq->id_json, code, why);
    c->code = code;
}

int srv_call_allowed(srv_call *c)
{
    if (c->rq->op->role <= c->role)
        return 1;
    char why[200];
    snprintf(why, sizeof why, "op '%s' needs the %s role; this client's key has the %s role",
             c->rq->op->name, srv_role_name(c->rq->op->role), srv_role_name(c->role));
    srv_call_error(c, SRV_E_FORBIDDEN, why);
    return 0;
}

/* ---- the small ops -------------------------------------------------------- */

static void s_health(srv_call *c)
{
    srv_snapshot *snap = srv_snapshot_acquire();
    srv_reply_health(c->out, c->rq->id_json, c->state, snap);
    srv_snapshot_release(&snap);
}

static void s_info(srv_call *c)
{
    srv_snapshot *snap = srv_snapshot_acquire();
    srv_reply_info(c->out, c->rq->id_json, c->state, snap, c->role);
    srv_snapshot_release(&snap);
}

static void s_stats(srv_call *c)
{
    /* A view is ~200 KiB of histograms: too big for the stack, and stats is rare. */
    srv_metrics_view *v = malloc(sizeof *v);
    if (!v) {
        srv_call_error(c, SRV_E_INTERNAL, "out of memory for the metrics view");
        return;
    }
    srv_state_collect(c->state, v, SRV_COLLECT_QUANTILES);
    srv_reply_stats(c->out, c->rq->id_json, v);
    free(v);
}

/* The main thread owns reloads; it answers when the build ends. */
static void s_reload(srv_call *c)
{
    if (atomic_load(&c->state->stopping))
        srv_call_error(c, SRV_E_UNAVAILABLE, "shutting down: no reload");
    else
        c->outcome = SRV_OUT_RELOAD;
}
