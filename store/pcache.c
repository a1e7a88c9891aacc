/* pcache.c -- SQLite's own page cache, with one page number kept out of it.
 *
 * When a B-tree page splits, SQLite (balance_nonroot in btree.c) puts the
 * new pages in ascending order by swapping two of them through a temporary
 * page number: three rekeys in a row, A to T, B to A, T to B.  T is the
 * pending-byte page (262,145 with 4 KiB pages), which never holds data.
 *
 * The default page cache remembers the largest page number it has held,
 * and every commit truncates the cache to the database's size.  After a
 * swap through T the gap between the two is larger than the cache's hash
 * table, so the commit walks every slot and every page header in the cache:
 * about a millisecond with the record writer's 64 MiB, on most commits of a
 * recording load, because random users split pages all the time (a fifth
 * of the writer's CPU, docs/PERFORMANCE.md).
 *
 * This wrapper hands every call to the default cache, except that during a
 * swap T is replaced by a stand-in: one above the largest number the cache
 * has held.  No page holds that number (it is above all of them), and
 * between the swap's first and last rekey the cache sees nothing but the
 * swap's own lookups, so the stand-in is never mistaken for a real page
 * (check_pcache tests the outcome row by row).  The commit's
 * truncation then looks at a few slots, not all of them.  On an SQLite
 * that no longer swaps through T, the wrapper changes nothing. */
#include "store/store_int.h"

#include <stdatomic.h>

typedef struct s_cache {
    sqlite3_pcache *base;
    unsigned pending;     /* the pending-byte page's number at this page size */
    unsigned max_key;     /* >= every key the base cache holds */
    unsigned stand_in;    /* the pending number's stand-in mid-swap, or 0 */
} s_cache;

static sqlite3_pcache_methods2 s_base;
static atomic_ulong s_swaps;

static int s_init(void *arg)
{
    return s_base.xInit ? s_base.xInit(arg) : SQLITE_OK;
}

static void s_shutdown(void *arg)
{
    if (s_base.xShutdown)
        s_base.xShutdown(arg);
}

static sqlite3_pcache *s_create(int page_size, int extra, int purgeable)
{
    s_cache *c = sqlite3_malloc(sizeof *c);
    if (!c)
        return NULL;
    c->base = s_base.xCreate(page_size, extra, purgeable);
    if (!c->base) {
        sqlite3_free(c);
        return NULL;
    }
    /* PENDING_BYTE is 1 GiB unless a test build moves it. */
    c->pending = 0x40000000u / (unsigned)page_size + 1;
    c->max_key = 0;
    c->stand_in = 0;
    return (sqlite3_pcache *)c;
}

static void s_cachesize(sqlite3_pcache *p, int pages)
{
    s_base.xCachesize(((s_cache *)p)->base, pages);
}

static int s_pagecount(sqlite3_pcache *p)
{
    return s_base.xPagecount(((s_cache *)p)->base);
}

static sqlite3_pcache_page *s_fetch(sqlite3_pcache *p, unsigned key, int create)
{
    s_cache *c = (s_cache *)p;
    if (key == c->pending && c->stand_in)
        key = c->stand_in;
    sqlite3_pcache_page *pg = s_base.xFetch(c->base, key, create);
    if (pg && key > c->max_key)
        c->max_key = key;
    return pg;
}

static void s_unpin(sqlite3_pcache *p, sqlite3_pcache_page *pg, int discard)
{
    s_base.xUnpin(((s_cache *)p)->base, pg, discard);
}

static void s_rekey(sqlite3_pcache *p, sqlite3_pcache_page *pg, unsigned from, unsigned to)
{
    s_cache *c = (s_cache *)p;
    if (to == c->pending && !c->stand_in) {
        to = c->max_key + 1 == c->pending ? c->max_key + 2 : c->max_key + 1;
        c->stand_in = to;
        atomic_fetch_add_explicit(&s_swaps, 1, memory_order_relaxed);
    } else if (from == c->pending && c->stand_in) {
        from = c->stand_in;
        c->stand_in = 0;
    }
    s_base.xRekey(c->base, pg, from, to);
    if (to > c->max_key)
        c->max_key = to;
}

static void s_truncate(sqlite3_pcache *p, unsigned limit)
{
    s_cache *c = (s_cache *)p;
    if (c->stand_in >= limit)
        c->stand_in = 0;   /* its page goes with the rest */
    s_base.xTruncate(c->base, limit);
    if (limit <= c->max_key)
        c->max_key = limit ? limit - 1 : 0;
}

static void s_destroy(sqlite3_pcache *p)
{
    s_cache *c = (s_cache *)p;
    s_base.xDestroy(c->base);
    sqlite3_free(c);
}

static void s_shrink(sqlite3_pcache *p)
{
    s_base.xShrink(((s_cache *)p)->base);
}

int store_pcache_wrap(void)
{
    if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &s_base) != SQLITE_OK || !s_base.xCreate ||
        !s_base.xRekey || !s_base.xTruncate)
        return 0;
    static sqlite3_pcache_methods2 wrap;
    wrap = s_base;
    wrap.xInit = s_init;
    wrap.xShutdown = s_shutdown;
    wrap.xCreate = s_create;
    wrap.xCachesize = s_cachesize;
    wrap.xPagecount = s_pagecount;
    wrap.xFetch = s_fetch;
    wrap.xUnpin = s_unpin;
    wrap.xRekey = s_rekey;
    wrap.xTruncate = s_truncate;
    wrap.xDestroy = s_destroy;
    wrap.xShrink = s_shrink;
    return sqlite3_config(SQLITE_CONFIG_PCACHE2, &wrap) == SQLITE_OK;
}

unsigned long store_pcache_swaps(void)
{
    return atomic_load_explicit(&s_swaps, memory_order_relaxed);
}
