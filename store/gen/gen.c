/* gen.c -- 'attnctl gen': build the demo world and write it through the store API.
 *
 * The work is in items.c (catalog and embeddings), users.c
 * (histories) and title.c (titles); this file validates options, keeps
 * titles unique and writes everything in one transaction, so a failed run
 * leaves an empty database rather than half a demo.
 *
 * Memory is O(items): item content and user histories are produced one at
 * a time and written at once.
 */
#include "store/gen/gen.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/gen/world.h"

#define S_TITLE_ATTEMPTS 16     /* fresh draws before a title gets "(Vol. n)" */


void store_gen_defaults(store_gen_opts *o)
{
    o->n_items = 20000;
    o->n_users = 5000;
    o->dim = 64;
    o->seed = 1;
    o->events_per_user = 40.0;
}

int store_gen_check(const store_gen_opts *o, store_err *err)
{
    if (o->n_items < 1 || o->n_items > STORE_GEN_MAX_ITEMS)
        return store_fail(err, STORE_ERR_INVAL, "items: %u is out of range 1..%u", o->n_items,
                      STORE_GEN_MAX_ITEMS);
    if (o->n_users < 1 || o->n_users > STORE_GEN_MAX_USERS)
        return store_fail(err, STORE_ERR_INVAL, "users: %u is out of range 1..%u", o->n_users,
                      STORE_GEN_MAX_USERS);
    if (o->dim < STORE_GEN_MIN_DIM || o->dim > STORE_GEN_MAX_DIM)
        return store_fail(err, STORE_ERR_INVAL, "dim: %d is out of range %d..%d", o->dim,
                      STORE_GEN_MIN_DIM, STORE_GEN_MAX_DIM);
    if (!isfinite(o->events_per_user) || o->events_per_user < STORE_GEN_MIN_EPU ||
        o->events_per_user > STORE_GEN_MAX_EPU)
        return store_fail(err, STORE_ERR_INVAL,
                      "events-per-user: %g is out of range %g..%g (every history holds "
                      "at least %g events)",
                      o->events_per_user, STORE_GEN_MIN_EPU, STORE_GEN_MAX_EPU,
                      STORE_GEN_MIN_EPU);
    if ((double)o->n_items * o->dim > STORE_GEN_MAX_FLOATS)
        return store_fail(err, STORE_ERR_INVAL,
                      "items x dim: %u x %d floats is more than the %.0f allowed", o->n_items,
                      o->dim, STORE_GEN_MAX_FLOATS);
    if ((double)o->n_users * o->events_per_user > STORE_GEN_MAX_EVENTS)
        return store_fail(err, STORE_ERR_INVAL,
                      "users x events-per-user: %u x %g events is more than the %.0f allowed",
                      o->n_users, o->events_per_user, STORE_GEN_MAX_EVENTS);
    return STORE_OK;
}

/* ---- unique titles ---------------------------------------------------------
 * A set of 64-bit title hashes (0 marks an empty slot).  A hash collision
 * between two different titles only costs the second one a redraw. */
typedef struct s_titles {
    uint64_t *slot;
    size_t mask;
} s_titles;

static uint64_t s_hash(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h ? h : 1;
}

/* 1 if added, 0 if already present. */
static int s_titles_add(s_titles *t, const char *title)
{
    uint64_t h = s_hash(title);
    size_t i = (size_t)h & t->mask;
    while (t->slot[i]) {
        if (t->slot[i] == h)
            return 0;
        i = (i + 1) & t->mask;
    }
    t->slot[i] = h;
    return 1;
}

/* Item i's content with a title no earlier item has. */
static void s_unique_content(const store_gen_world *w, uint32_t i, s_titles *seen,
                             store_gen_content *c)
{
    for (int a = 0; a < S_TITLE_ATTEMPTS; a++) {
        store_gen_item_content(w, i, a, c);
        if (s_titles_add(seen, c->title))
            return;
    }
    /* A small topic ran out of fresh combinations: number the volumes.
     * text starts with the title, so splice the suffix in there too. */
    char base[STORE_GEN_TITLE_MAX], rest[sizeof c->text];
    snprintf(base, sizeof base, "%s", c->title);
    snprintf(rest, sizeof rest, "%s", c->text + strlen(c->title));
    for (unsigned vol = 2;; vol++) {
        snprintf(c->title, sizeof c->title, "%.*s (Vol. %u)",
                 (int)(sizeof c->title - 24), base, vol);
        if (s_titles_add(seen, c->title))
            break;
    }
    size_t tl = strlen(c->title), rl = strlen(rest);
    if (tl + rl >= sizeof c->text)
        rl = sizeof c->text - 1 - tl;     /* title < TITLE_MAX < sizeof text */
    memcpy(c->text, c->title, tl);
    memcpy(c->text + tl, rest, rl);
    c->text[tl + rl] = '\0';
}

/* ---- writing ---------------------------------------------------------------- */
typedef struct s_run {
    store *db;
    store_gen_world w;
    int64_t *item_id;          /* store id of each item index */
    store_gen_stats st;
} s_run;

static int s_write_items(s_run *run, store_err *err)
{
    const store_gen_world *w = &run->w;
    uint32_t n = w->opt.n_items;
    int dim = w->opt.dim;
    size_t cap = 64;
    while (cap < 2 * (size_t)n)
        cap *= 2;
    s_titles seen = {calloc(cap, sizeof(uint64_t)), cap - 1};
    float *emb = malloc((size_t)dim * sizeof *emb);
    double *scratch = malloc(2 * (size_t)dim * sizeof *scratch);
    store_gen_content *c = malloc(sizeof *c);
    int rc = STORE_OK;
    if (!seen.slot || !emb || !scratch || !c) {
        rc = store_fail(err, STORE_ERR_NOMEM, "gen: out of memory for %u items", n);
        goto out;
    }
    c->emb = emb;
    c->scratch = scratch;
    for (uint32_t i = 0; i < n; i++) {
        char ext[16];
        snprintf(ext, sizeof ext, "i%05u", i + 1);
        s_unique_content(w, i, &seen, c);
        rc = store_item_put(run->db, ext, c->title, c->text, c->emb, c->updated_at,
                            &run->item_id[i], err);
        if (rc != STORE_OK)
            goto out;
        run->st.items++;
    }
out:
    free(seen.slot);
    free(emb);
    free(scratch);
    free(c);
    return rc;
}

static int s_write_users(s_run *run, store_err *err)
{
    const store_gen_world *w = &run->w;
    store_gen_history h;
    memset(&h, 0, sizeof h);
    int rc = STORE_OK;
    for (uint32_t u = 0; u < w->opt.n_users; u++) {
        char ext[16];
        int64_t uid;
        snprintf(ext, sizeof ext, "u%04u", u + 1);
        rc = store_user_put(run->db, ext, &uid, err);
        if (rc != STORE_OK)
            break;
        run->st.users++;
        if (store_gen_user_history(w, u, &h) != STORE_OK) {
            rc = store_fail(err, STORE_ERR_NOMEM, "gen: out of memory for the history of %s", ext);
            break;
        }
        for (uint32_t e = 0; e < h.n && rc == STORE_OK; e++) {
            const store_gen_event *ev = &h.ev[e];
            rc = store_event_put(run->db, uid, run->item_id[ev->item], ev->ts,
                                 store_gen_kind_name[ev->kind],
                                 store_gen_kind_weight[ev->kind], err);
        }
        if (rc != STORE_OK)
            break;
        run->st.events += h.n;
    }
    store_gen_history_free(&h);
    return rc;
}

static int s_fill(s_run *run, store_err *err)
{
    const store_gen_opts *o = &run->w.opt;
    char desc[256];
    snprintf(desc, sizeof desc, "attnctl gen items=%u users=%u dim=%d seed=%llu "
             "events-per-user=%g", o->n_items, o->n_users, o->dim,
             (unsigned long long)o->seed, o->events_per_user);
    int rc = store_begin(run->db, err);
    if (rc != STORE_OK)
        return rc;
    rc = store_meta_set(run->db, "generator", desc, err);
    if (rc == STORE_OK)
        rc = s_write_items(run, err);
    if (rc == STORE_OK)
        rc = s_write_users(run, err);
    if (rc == STORE_OK)
        rc = store_catalog_touch(run->db, err);
    if (rc == STORE_OK)
        rc = store_commit(run->db, err);
    if (rc != STORE_OK)
        store_rollback(run->db);
    return rc;
}

int store_gen_create(const char *path, const store_gen_opts *o, store_gen_stats *st,
                     store_err *err)
{
    int rc = store_gen_check(o, err);
    if (rc != STORE_OK)
        return rc;
    s_run run;
    memset(&run, 0, sizeof run);
    run.st.topics = store_gen_n_topics;

    rc = store_init(path, o->dim, err);
    if (rc != STORE_OK)
        return rc;
    rc = store_open(&run.db, path, STORE_READWRITE, 5000, err);
    if (rc != STORE_OK)
        return rc;
    run.item_id = malloc((size_t)o->n_items * sizeof *run.item_id);
    if (!run.item_id || store_gen_world_build(&run.w, o) != STORE_OK)
        rc = store_fail(err, STORE_ERR_NOMEM, "gen: out of memory for %u items", o->n_items);
    else
        rc = s_fill(&run, err);

    store_gen_world_free(&run.w);
    free(run.item_id);
    store_close(&run.db);
    if (st)
        *st = run.st;
    return rc;
}
