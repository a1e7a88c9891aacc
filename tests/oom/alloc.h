/* alloc.h -- allocation-failure injection for tests/check_oom.c, the way
 * SQLite tests itself: fail the Nth allocation, for N = 1, 2, ... until an
 * operation runs through without meeting the failure, and check each time
 * that it failed cleanly.
 *
 *     tu_alloc_init();                      // before anything allocates
 *     for (uint64_t n = 1;; n++) {
 *         size_t live = tu_alloc_live();
 *         tu_alloc_fail_at(n);
 *         int rc = op();                    // must fail cleanly, or succeed
 *         int hit = tu_alloc_failed();
 *         tu_alloc_fail_at(0);
 *         ... free what a success made; ck_assert(tu_alloc_live() == live);
 *         if (!hit) break;                  // op made fewer than n allocations
 *     }
 *
 * How it reaches the code under test without changing it: check_oom alone
 * is linked with `-Wl,--wrap=malloc,...` (the Makefile), so every call our
 * libraries make to malloc, calloc, realloc, free, strdup, strndup,
 * posix_memalign and aligned_alloc lands in this file's __wrap_ functions;
 * release programs, the other suites and the sanitizers' allocators are
 * untouched (__real_malloc is whatever malloc the build links: jemalloc,
 * glibc, or ASan's).  SQLite's allocations come through
 * sqlite3_config(SQLITE_CONFIG_MALLOC) and cJSON's through cJSON_InitHooks,
 * so a failure can also land inside the libraries our code calls, which is
 * where most of our out-of-memory handling is (a failed prepare or step).
 *
 * Leaks: every pointer the hooks hand out is recorded until it is freed, so
 * tu_alloc_live() counts what is outstanding in any build, not only under
 * LeakSanitizer.  Sites: each injected failure is charged to the first
 * frame of its stack that lies in our code, so tu_alloc_sites() counts the
 * distinct places of ours that met an out-of-memory result.
 */
#ifndef TESTS_OOM_ALLOC_H
#define TESTS_OOM_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Install the SQLite and cJSON hooks (sqlite3_shutdown first: call it
 * before any connection is open). */
void tu_alloc_init(void);

/* Fail the nth allocation from now (1-based) and no other; 0 disarms.
 * Resets the count and the failed flag. */
void tu_alloc_fail_at(uint64_t n);
/* Allocations attempted since the last tu_alloc_fail_at. */
uint64_t tu_alloc_count(void);
/* 1 if the armed failure was injected. */
int tu_alloc_failed(void);

/* Allocations made through the hooks and not freed yet: ours and cJSON's
 * (which an operation must give back before it returns), and SQLite's
 * (which a connection keeps as caches until it is closed, and the unix VFS
 * keeps per file while any connection to it is open). */
size_t tu_alloc_live(void);
size_t tu_alloc_live_sqlite(void);
/* Allocations made since tu_alloc_init (a mark for tu_alloc_live_write). */
uint64_t tu_alloc_seq(void);
/* The allocations made after mark that are still live (SQLite's or the
 * others), with the offset of the code that made them when ATTN_OOM_TRACE
 * is set (it walks the stack at every allocation: slow, for finding a leak). */
void tu_alloc_live_write(FILE *out, uint64_t mark, int sqlite);

/* A call site: an offset into the executable, for addr2line. */
typedef struct tu_alloc_site {
    uintptr_t off;   /* in our code: the call to malloc, or into SQLite or cJSON */
    int direct;      /* 1: our code allocated; 0: a library it called did */
} tu_alloc_site;

/* While on, every allocation's site is recorded (a stack walk each): the
 * plan of which allocations of an operation to fail. */
void tu_alloc_census(int on);
/* The sites of the allocations since the census was turned on, in order:
 * entry i is allocation i + 1.  Borrowed until the next census. */
const tu_alloc_site *tu_alloc_census_get(size_t *n);

/* Distinct call sites in our code charged with an injected failure:
 * direct (our malloc calls) and through a library (SQLite, cJSON). */
void tu_alloc_sites(size_t *direct, size_t *via_library);
/* Each as "direct|library <offset>", one a line, for addr2line -e <binary>. */
void tu_alloc_sites_write(FILE *out);

#endif
