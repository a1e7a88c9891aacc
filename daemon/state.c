/* state.c -- see state.h. */
#include "daemon/state.h"

#include "daemon/snapshot.h"
#include "util/clock.h"

void srv_state_collect(srv_state *st, srv_metrics_view *v)
{
    srv_metrics_collect(v, st->wstats, st->n_workers, &st->counters);
    v->uptime_s = (double)(util_now_ns() - st->started_ns) / 1e9;
    srv_snapshot *snap = srv_snapshot_acquire();
    v->model_version = snap ? snap->model_version : -1;
    v->catalog_version = snap ? snap->catalog_version : -1;
    v->items = snap ? snap->cat->n : 0;
    srv_snapshot_release(&snap);
}
