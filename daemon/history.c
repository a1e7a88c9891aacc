/* history.c -- see history.h. */
#include "daemon/history.h"

#include <stdio.h>

int srv_history_open(const srv_config *cfg, int writable, store_hist **out, char *why,
                     size_t why_len)
{
    store_hist_sqlite_opts o = {.path = cfg->db, .busy_ms = cfg->busy_timeout_ms,
                                .writable = writable,
                                .synchronous_full = cfg->record_synchronous == CFG_SYNC_FULL,
                                .checkpoint_pages = cfg->record_checkpoint_pages,
                                .cache_kib = writable ? 65536 : 0};
    store_err err;
    if (store_hist_sqlite_open(out, &o, &err) != STORE_OK) {
        snprintf(why, why_len, "%s", err.msg);
        return -1;
    }
    return 0;
}
