/* setup.c -- how this process configures SQLite, once, before its first open.
 *
 * - Memory statistics off.  With them on (SQLite's default), every
 *   allocation and free in every connection takes one process-wide mutex.
 *   A rank worker's history read then waits whenever the record writer
 *   holds it, and with record.priority = idle the writer can be descheduled
 *   while holding it: perf showed rank reads blocked 29 times in 2 s for up
 *   to 2.9 ms (docs/PERFORMANCE.md).  Nothing in attnd reads the statistics.
 * - The page cache wrapper of pcache.c.
 * - The VFS of walbuf.c, registered beside the default one: read-write
 *   connections open through it (store_open), so that their WAL frames
 *   leave in a few large writes instead of two system calls a page.
 *
 * sqlite3_config refuses to run once SQLite is initialized (a test or an
 * embedding program may have done it first); then the defaults stay, which
 * changes speed only. */
#include "store/store_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *walbuf_vfs;

static void s_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    store_pcache_wrap();
    walbuf_vfs = store_walbuf_register();
}

const char *store_walbuf_vfs(void)
{
    store_sqlite_setup();
    /* The way back to SQLite's own writes, should an operator need it;
     * read at every open, so that a test can switch it too. */
    const char *gather = getenv("ATTN_WALBUF");
    return gather && strcmp(gather, "off") == 0 ? NULL : walbuf_vfs;
}

void store_sqlite_setup(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, s_setup);
}
