/* arena.h -- per-worker bump allocators: cJSON parses into one, a
 * request's parsed fields live in another.
 *
 * cJSON allocates a node per JSON value.  Its hooks are process-wide, so the
 * hooks installed here look at a thread-local arena: a worker binds its own
 * arena, parses, uses the tree, and resets the arena -- no malloc and no
 * free per request.  A thread with no arena bound (main thread, tools), or a
 * request bigger than the arena, falls back to malloc/free transparently.
 *
 *     srv_arena a;  srv_arena_init(&a, 4 << 20);
 *     srv_arena_install_cjson();            // once per process
 *     srv_arena_bind(&a);                   // once per thread
 *     cJSON *req = cJSON_ParseWithLength(buf, len);   // from the arena
 *     ... cJSON_Delete(req);  srv_arena_reset(&a);
 */
#ifndef DAEMON_ARENA_H
#define DAEMON_ARENA_H

#include <stddef.h>

typedef struct srv_arena {
    char *base;      /* cap bytes */
    size_t cap;
    size_t used;     /* bump offset */
    size_t spilled;  /* allocations that fell back to malloc since the last reset */
    void *spill;     /* srv_arena_alloc's fallback blocks, freed by reset */
} srv_arena;

int srv_arena_init(srv_arena *a, size_t cap);   /* 0, or -1 out of memory */
void srv_arena_free(srv_arena *a);
void srv_arena_reset(srv_arena *a);   /* also frees srv_arena_alloc's spilled blocks */

/* n bytes, 16-byte aligned, valid until the next reset; past the arena's
 * capacity from malloc (still released by reset).  NULL out of memory. */
void *srv_arena_alloc(srv_arena *a, size_t n);

/* Give back what was allocated since a mark (an attempt that failed):
 * the arena's bytes only; blocks that spilled to malloc wait for reset. */
size_t srv_arena_mark(const srv_arena *a);
void srv_arena_rewind(srv_arena *a, size_t mark);

/* Make cJSON allocate through the thread's bound arena.  Call once, before
 * any thread parses. */
void srv_arena_install_cjson(void);
/* Bind (or with NULL unbind) this thread's arena. */
void srv_arena_bind(srv_arena *a);

#endif
