/* state.c -- see state.h. */
#include "daemon/state.h"

#include <stdio.h>

#include "daemon/auth.h"
#include "daemon/snapshot.h"
#include "util/clock.h"

void srv_state_collect(srv_state *st, srv_metrics_view *v, int flags)
{
    int serving = atomic_load(&st->serving);
    srv_metrics_collect(v, serving ? st->wstats : NULL, st->n_wstats, &st->counters, flags);
    srv_rec_collect(&st->rec, &v->rec, flags);
    v->uptime_s = (double)(util_now_ns() - st->started_ns) / 1e9;
    v->start_time_s = (double)st->started_wall_ns / 1e9;
    v->loaded_time_s = (double)atomic_load(&st->loaded_wall_ns) / 1e9;
    v->workers = st->n_workers;
    v->exp = st->exp.n ? &st->exp : NULL;
    int loaded = atomic_load(&st->loaded);
    v->model_version = loaded ? atomic_load(&st->model_version) : -1;
    v->catalog_version = loaded ? atomic_load(&st->catalog_version) : -1;
    v->items = loaded ? atomic_load(&st->items) : 0;
    v->ready = srv_state_unready(st) == NULL;
    /* auth is set before serving, and freed after the HTTP thread stopped */
    srv_auth_collect(serving ? st->auth : NULL, &v->sec);
}

void srv_state_published(srv_state *st, const srv_snapshot *snap)
{
    if (snap) {
        atomic_store(&st->model_version, snap->model_version);
        atomic_store(&st->catalog_version, snap->catalog_version);
        atomic_store(&st->items, (int64_t)snap->cat->n);
        atomic_store(&st->loaded_wall_ns, util_wall_ns());
    }
    atomic_store(&st->loaded, snap != NULL);
}

const char *srv_state_unready(const srv_state *st)
{
    if (atomic_load(&st->stopping))
        return "shutting down: finishing in-flight requests";
    if (!atomic_load(&st->serving))
        return "starting: loading the first snapshot";
    return atomic_load(&st->loaded) ? NULL : "no snapshot loaded";
}

const char *srv_state_loggable(const srv_state *st, const char *text, size_t len, char *buf,
                               size_t cap)
{
    if (st->mask_ids) {
        char h[UTIL_MASK_HEX];
        util_mask_hex(&st->mask, text, len, h);
        snprintf(buf, cap, "h:%s", h);
    } else {
        snprintf(buf, cap, "%.*s", (int)(len < 64 ? len : 64), text);
    }
    return buf;
}
