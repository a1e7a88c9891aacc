/* alloc.c -- the allocation hooks of check_oom (alloc.h).
 *
 * Linked only into check_oom, with -Wl,--wrap for each function below: the
 * linker sends our libraries' calls to __wrap_X and __real_X is the
 * build's own allocator.  Every hook lives in the section "tu_alloc", so a
 * stack walk can tell the hooks' frames from the code that called them.
 */
#include "tests/oom/alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define S_HOOK __attribute__((section("tu_alloc"), noinline))

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
int __real_posix_memalign(void **out, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);

extern char __executable_start[], etext[];
extern char __start_tu_alloc[], __stop_tu_alloc[];

/* One lock for everything below: the hooks may be called from any thread. */
static pthread_mutex_t s_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;   /* backtrace may allocate */
static uint64_t s_fail_at, s_count;
static int s_failed;
static int s_in_hook;   /* inside backtrace: neither count nor fail */

/* ---- where an allocation comes from ----------------------------------------------- */

static int s_hook(uintptr_t a)
{
    return a >= (uintptr_t)__start_tu_alloc && a < (uintptr_t)__stop_tu_alloc;
}

static int s_ours(uintptr_t a)
{
    return a >= (uintptr_t)__executable_start && a < (uintptr_t)etext && !s_hook(a);
}

/* The first frame of ours above the hooks, as an offset into the
 * executable (0 if none); *direct: our code called the hook itself. */
S_HOOK static uintptr_t s_caller(int *direct)
{
    void *frames[48];
    s_in_hook = 1;
    int n = backtrace(frames, 48), i = 0;
    s_in_hook = 0;
    /* Sanitizers intercept backtrace itself: its frame comes first. */
    while (i < n && !s_hook((uintptr_t)frames[i]))
        i++;
    while (i < n && s_hook((uintptr_t)frames[i]))
        i++;
    *direct = i < n && s_ours((uintptr_t)frames[i]);
    while (i < n && !s_ours((uintptr_t)frames[i]))
        i++;
    /* The return address points after the call: step back into it. */
    return i < n ? (uintptr_t)frames[i] - 1 - (uintptr_t)__executable_start : 0;
}

/* ---- live pointers: open addressing, linear probing, backward-shift delete ---- */

#define S_SLOTS (1u << 20)
typedef struct s_entry {
    uintptr_t p;
    uint64_t seq;     /* allocation number since tu_alloc_init */
    uintptr_t site;   /* with ATTN_OOM_TRACE: who made it (offset; 0 = not traced) */
    int sqlite;       /* SQLite's own memory, else ours or cJSON's */
} s_entry;
static s_entry *s_slot;
static size_t s_live[2];   /* [0] ours and cJSON's, [1] SQLite's */
static uint64_t s_seq;
static int s_trace;

static size_t s_home(uintptr_t p)
{
    return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> 44) & (S_SLOTS - 1);
}

S_HOOK static void s_track(void *p, int sqlite)
{
    if (!p || !s_slot)
        return;
    size_t i = s_home((uintptr_t)p);
    while (s_slot[i].p)
        i = (i + 1) & (S_SLOTS - 1);
    int direct;
    s_slot[i] = (s_entry){(uintptr_t)p, ++s_seq, s_trace ? s_caller(&direct) : 0, sqlite};
    s_live[sqlite]++;
}

S_HOOK static void s_untrack(void *p)
{
    if (!p || !s_slot)
        return;
    size_t i = s_home((uintptr_t)p);
    while (s_slot[i].p && s_slot[i].p != (uintptr_t)p)
        i = (i + 1) & (S_SLOTS - 1);
    if (!s_slot[i].p)
        return;   /* made before the hooks, or by a library: not ours to count */
    s_live[s_slot[i].sqlite]--;
    for (size_t j = (i + 1) & (S_SLOTS - 1); s_slot[j].p; j = (j + 1) & (S_SLOTS - 1)) {
        size_t h = s_home(s_slot[j].p);
        /* Move j back into the hole at i unless its home lies in (i, j]. */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            s_slot[i] = s_slot[j];
            i = j;
        }
    }
    s_slot[i] = (s_entry){0};
}

/* ---- the census and the sites that met a failure ------------------------------------ */

static tu_alloc_site *s_census;
static size_t s_ncensus, s_census_cap;
static int s_census_on;

#define S_SITES 8192
static tu_alloc_site s_sites[S_SITES];
static size_t s_nsites;

S_HOOK static void s_census_add(void)
{
    if (s_ncensus == s_census_cap) {
        size_t cap = s_census_cap ? 2 * s_census_cap : 4096;
        tu_alloc_site *c = __real_realloc(s_census, cap * sizeof *c);
        if (!c)
            abort();
        s_census = c;
        s_census_cap = cap;
    }
    tu_alloc_site *e = &s_census[s_ncensus++];
    e->off = s_caller(&e->direct);
}

S_HOOK static void s_record_site(void)
{
    tu_alloc_site s;
    s.off = s_caller(&s.direct);
    if (!s.off)
        return;
    for (size_t k = 0; k < s_nsites; k++)
        if (s_sites[k].off == s.off && s_sites[k].direct == s.direct)
            return;
    if (s_nsites < S_SITES)
        s_sites[s_nsites++] = s;
}

/* ---- the decision ---------------------------------------------------------------------- */

/* 1 if this allocation is the one to fail.  Called with s_lock held. */
S_HOOK static int s_fail_now(void)
{
    if (s_in_hook)
        return 0;
    s_count++;
    if (s_census_on)
        s_census_add();
    if (!s_fail_at || s_count != s_fail_at)
        return 0;
    s_failed = 1;
    s_record_site();
    return 1;
}

S_HOOK void *__wrap_malloc(size_t n)
{
    pthread_mutex_lock(&s_lock);
    void *p = s_fail_now() ? NULL : __real_malloc(n);
    s_track(p, 0);
    pthread_mutex_unlock(&s_lock);
    return p;
}

S_HOOK void *__wrap_calloc(size_t n, size_t size)
{
    pthread_mutex_lock(&s_lock);
    void *p = s_fail_now() ? NULL : __real_calloc(n, size);
    s_track(p, 0);
    pthread_mutex_unlock(&s_lock);
    return p;
}

S_HOOK void *__wrap_realloc(void *p, size_t n)
{
    pthread_mutex_lock(&s_lock);
    void *q = NULL;
    if (p && n == 0) {          /* glibc: frees p */
        s_untrack(p);
        __real_free(p);
    } else if (!s_fail_now()) {
        q = __real_realloc(p, n);
        if (q) {
            s_untrack(p);
            s_track(q, 0);
        }
    }
    pthread_mutex_unlock(&s_lock);
    return q;
}

S_HOOK void __wrap_free(void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&s_lock);
    s_untrack(p);
    pthread_mutex_unlock(&s_lock);
    __real_free(p);
}

S_HOOK char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = __wrap_malloc(n);
    return p ? memcpy(p, s, n) : NULL;
}

S_HOOK char *__wrap_strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *p = __wrap_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

S_HOOK int __wrap_posix_memalign(void **out, size_t align, size_t n)
{
    pthread_mutex_lock(&s_lock);
    int rc = s_fail_now() ? ENOMEM : __real_posix_memalign(out, align, n);
    if (rc == 0)
        s_track(*out, 0);
    pthread_mutex_unlock(&s_lock);
    return rc;
}

S_HOOK void *__wrap_aligned_alloc(size_t align, size_t n)
{
    pthread_mutex_lock(&s_lock);
    void *p = s_fail_now() ? NULL : __real_aligned_alloc(align, n);
    s_track(p, 0);
    pthread_mutex_unlock(&s_lock);
    return p;
}

/* ---- SQLite ------------------------------------------------------------------------------ */

static sqlite3_mem_methods s_sqlite_orig;

S_HOOK static void *s_sqlite_malloc(int n)
{
    pthread_mutex_lock(&s_lock);
    void *p = s_fail_now() ? NULL : s_sqlite_orig.xMalloc(n);
    s_track(p, 1);
    pthread_mutex_unlock(&s_lock);
    return p;
}

S_HOOK static void s_sqlite_free(void *p)
{
    pthread_mutex_lock(&s_lock);
    s_untrack(p);
    pthread_mutex_unlock(&s_lock);
    s_sqlite_orig.xFree(p);
}

S_HOOK static void *s_sqlite_realloc(void *p, int n)
{
    pthread_mutex_lock(&s_lock);
    void *q = s_fail_now() ? NULL : s_sqlite_orig.xRealloc(p, n);
    if (q) {
        s_untrack(p);
        s_track(q, 1);
    }
    pthread_mutex_unlock(&s_lock);
    return q;
}

/* ---- the API ------------------------------------------------------------------------------- */

void tu_alloc_init(void)
{
    s_slot = __real_calloc(S_SLOTS, sizeof *s_slot);
    if (!s_slot)
        abort();
    s_trace = getenv("ATTN_OOM_TRACE") != NULL;
    void *warm[4];
    backtrace(warm, 4);   /* loads the unwinder now, not inside a hook */
    sqlite3_shutdown();
    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &s_sqlite_orig);
    sqlite3_mem_methods m = s_sqlite_orig;
    m.xMalloc = s_sqlite_malloc;
    m.xFree = s_sqlite_free;
    m.xRealloc = s_sqlite_realloc;
    sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
    /* Lookaside would serve small allocations without asking us. */
    sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0);
    sqlite3_initialize();
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = __wrap_malloc, .free_fn = __wrap_free});
}

void tu_alloc_fail_at(uint64_t n)
{
    pthread_mutex_lock(&s_lock);
    s_fail_at = n;
    s_count = 0;
    s_failed = 0;
    pthread_mutex_unlock(&s_lock);
}

uint64_t tu_alloc_count(void)
{
    return s_count;
}

int tu_alloc_failed(void)
{
    return s_failed;
}

size_t tu_alloc_live(void)
{
    return s_live[0];
}

size_t tu_alloc_live_sqlite(void)
{
    return s_live[1];
}

uint64_t tu_alloc_seq(void)
{
    return s_seq;
}

void tu_alloc_live_write(FILE *out, uint64_t mark, int sqlite)
{
    for (size_t i = 0; i < S_SLOTS; i++)
        if (s_slot[i].p && s_slot[i].seq > mark && s_slot[i].sqlite == sqlite)
            fprintf(out, "  live: allocation %llu made at 0x%lx%s\n",
                    (unsigned long long)s_slot[i].seq, (unsigned long)s_slot[i].site,
                    s_trace ? "" : " (set ATTN_OOM_TRACE to know where)");
}

void tu_alloc_census(int on)
{
    pthread_mutex_lock(&s_lock);
    s_census_on = on;
    if (on)
        s_ncensus = 0;
    pthread_mutex_unlock(&s_lock);
}

const tu_alloc_site *tu_alloc_census_get(size_t *n)
{
    *n = s_ncensus;
    return s_census;
}

void tu_alloc_sites(size_t *direct, size_t *via_library)
{
    *direct = *via_library = 0;
    for (size_t i = 0; i < s_nsites; i++)
        ++*(s_sites[i].direct ? direct : via_library);
}

void tu_alloc_sites_write(FILE *out)
{
    for (size_t i = 0; i < s_nsites; i++)
        fprintf(out, "%s 0x%lx\n", s_sites[i].direct ? "direct" : "library",
                (unsigned long)s_sites[i].off);
}
