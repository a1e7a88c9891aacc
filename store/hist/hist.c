/* hist.c -- the history interface: dispatch to the backend, and the checks
 * every backend would otherwise repeat. */
#include "store/hist/hist.h"

#include <math.h>

int store_hist_read(store_hist *h, const char *user, size_t len, int max, store_event *ev,
                    int *n, store_err *err)
{
    if (!h || !user || !n || len == 0 || max < 0 || (max > 0 && !ev))
        return store_fail(err, STORE_ERR_INVAL, "store_hist_read: bad arguments");
    *n = 0;
    return h->ops->read(h, user, len, max, ev, n, err);
}

/* The field rules of store_hist_event: refused before anything is written,
 * so a bad event never costs the rest of its batch half a transaction. */
static int s_check(const store_hist_event *ev, int n, store_err *err)
{
    for (int i = 0; i < n; i++) {
        const store_hist_event *e = &ev[i];
        if (!e->user || !*e->user)
            return store_fail(err, STORE_ERR_INVAL, "history append: event %d: no user", i);
        if (!(e->weight > 0) || !isfinite(e->weight))
            return store_fail(err, STORE_ERR_INVAL,
                              "history append: event %d: weight %g, expected a finite value > 0",
                              i, (double)e->weight);
    }
    return STORE_OK;
}

int store_hist_append(store_hist *h, const store_hist_event *ev, int n, uint8_t *outcome,
                      store_err *err)
{
    if (!h || !ev || !outcome || n < 1)
        return store_fail(err, STORE_ERR_INVAL, "store_hist_append: bad arguments");
    if (!h->ops->append)
        return store_fail(err, STORE_ERR_INVAL, "%s history: opened read-only", h->ops->name);
    int rc = s_check(ev, n, err);
    return rc == STORE_OK ? h->ops->append(h, ev, n, outcome, err) : rc;
}

int store_hist_idle(store_hist *h, store_err *err)
{
    return h && h->ops->idle ? h->ops->idle(h, err) : STORE_OK;
}

const char *store_hist_name(const store_hist *h)
{
    return h ? h->ops->name : "none";
}

void store_hist_close(store_hist **h_p)
{
    if (!h_p || !*h_p)
        return;
    store_hist *h = *h_p;
    *h_p = NULL;
    h->ops->close(h);
}
