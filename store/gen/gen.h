/* gen.h -- a synthetic demo database that reads like a real catalog.
 *
 *     store_gen_opts o;
 *     store_gen_defaults(&o);              // 20000 items, 5000 users, dim 64, seed 1
 *     o.n_items = 500;
 *     o.n_users = 100;
 *     store_gen_stats st;
 *     store_err err;
 *     if (store_gen_create("demo.db", &o, &st, &err) != STORE_OK)
 *         die("%s", err.msg);
 *     printf("%llu events\n", (unsigned long long)st.events);
 *
 * What it writes (docs/DATA.md has the full story):
 *   - items "i00001".. with readable titles drawn from 24 topics
 *     ("Slow-Smoked Brisket for Beginners"), text = title + topic names, and
 *     L2-normalised float32 embeddings built from topic, theme and title-word
 *     vectors, so items of a topic are near each other;
 *   - users "u0001".. with 1-4 drifting interests and time-ordered histories
 *     of view/like/purchase events in topic-coherent sessions over 2024;
 *   - item popularity that is Zipf-like within and across topics.
 *
 * The content is a function of the options alone: the same options give
 * byte-identical items, users and events on every run and machine (no
 * clock, no rand(); see rng.h).
 */
#ifndef STORE_GEN_H
#define STORE_GEN_H

#include <stdint.h>
#include "store/store.h"

/* Bounds store_gen_check enforces.  They keep a typo from asking for a
 * terabyte: the largest allowed run is a few GB of database. */
#define STORE_GEN_MAX_ITEMS 5000000u
#define STORE_GEN_MAX_USERS 5000000u
#define STORE_GEN_MIN_DIM 2
#define STORE_GEN_MAX_DIM 4096
#define STORE_GEN_MAX_FLOATS 500000000.0   /* items x dim: 2 GB of embeddings */
#define STORE_GEN_MIN_EPU 5.0              /* every history holds >= 5 events */
#define STORE_GEN_MAX_EPU 10000.0
#define STORE_GEN_MAX_EVENTS 200000000.0   /* users x events_per_user */

typedef struct store_gen_opts {
    uint32_t n_items;          /* catalog size, default 20000 */
    uint32_t n_users;          /* default 5000 */
    int dim;                   /* embedding dimension, default 64 */
    uint64_t seed;             /* any value, default 1 */
    double events_per_user;    /* mean history length, default 40 */
} store_gen_opts;

typedef struct store_gen_stats {
    uint64_t items;            /* rows written to items */
    uint64_t users;            /* rows written to users */
    uint64_t events;           /* rows written to interactions */
    int topics;                /* topics in the vocabulary */
} store_gen_stats;

void store_gen_defaults(store_gen_opts *o);

/* STORE_ERR_INVAL with a message naming the option and its bounds if o is
 * outside them ("items: 0 is out of range 1..5000000"). */
int store_gen_check(const store_gen_opts *o, store_err *err);

/* Create a new database at path (store_init: STORE_ERR_EXISTS if it holds
 * data) and fill it in one transaction, ending with store_catalog_touch.
 * st (may be NULL) receives the counts.  On failure the transaction is
 * rolled back, so path holds at most an empty database; the caller, which
 * decided to create it, decides whether to remove it. */
int store_gen_create(const char *path, const store_gen_opts *o, store_gen_stats *st,
                     store_err *err);

#endif
