/* arena.c -- see arena.h. */
#include "daemon/arena.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static _Thread_local srv_arena *s_bound;

int srv_arena_init(srv_arena *a, size_t cap)
{
    a->base = malloc(cap);
    a->cap = a->base ? cap : 0;
    a->used = 0;
    a->spilled = 0;
    a->spill = NULL;
    return a->base ? 0 : -1;
}

typedef struct s_spill {
    struct s_spill *next;
    max_align_t pad[];   /* keeps the payload aligned */
} s_spill;

void srv_arena_free(srv_arena *a)
{
    srv_arena_reset(a);
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

void srv_arena_reset(srv_arena *a)
{
    for (s_spill *b = a->spill, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->spill = NULL;
    a->used = 0;
    a->spilled = 0;
}

size_t srv_arena_mark(const srv_arena *a)
{
    return a->used;
}

void srv_arena_rewind(srv_arena *a, size_t mark)
{
    if (mark <= a->used)
        a->used = mark;
}

void *srv_arena_alloc(srv_arena *a, size_t n)
{
    size_t at = (a->used + 15) & ~(size_t)15;
    if (n <= a->cap && at <= a->cap - n) {
        a->used = at + n;
        return a->base + at;
    }
    s_spill *b = malloc(sizeof *b + (n ? n : 1));
    if (!b)
        return NULL;
    b->next = a->spill;
    a->spill = b;
    a->spilled++;
    return b->pad;
}

void srv_arena_bind(srv_arena *a)
{
    s_bound = a;
}

static void *s_alloc(size_t n)
{
    srv_arena *a = s_bound;
    if (a) {
        size_t at = (a->used + 15) & ~(size_t)15;
        if (at + n <= a->cap) {
            a->used = at + n;
            return a->base + at;
        }
        a->spilled++;
    }
    return malloc(n);
}

static void s_release(void *p)
{
    srv_arena *a = s_bound;
    /* Arena memory is released all at once by srv_arena_reset. */
    if (a && (uintptr_t)p >= (uintptr_t)a->base && (uintptr_t)p < (uintptr_t)a->base + a->cap)
        return;
    free(p);
}

void srv_arena_install_cjson(void)
{
    cJSON_Hooks hooks = {.malloc_fn = s_alloc, .free_fn = s_release};
    cJSON_InitHooks(&hooks);
}
