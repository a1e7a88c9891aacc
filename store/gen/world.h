/* world.h -- the demo generator's model of the world (internal to store/gen/).
 *
 *     store_gen_world w;
 *     store_gen_world_build(&w, &opts);          // topics, items, samplers
 *     store_gen_content c = {.emb = emb, .scratch = scratch};
 *     store_gen_item_content(&w, i, 0, &c);      // title, text, embedding of item i
 *     store_gen_history h = {0};
 *     store_gen_user_history(&w, u, &h);         // user u's time-ordered events
 *     store_gen_history_free(&h);
 *     store_gen_world_free(&w);
 *
 * The world is what every user shares: per topic a centroid vector, four
 * theme directions and a popularity; per item its topic(s), theme and a
 * Zipf popularity weight; per topic and per theme a cumulative table for
 * drawing items by popularity.  Item content and user histories are
 * generated from it on demand, one at a time, so memory stays O(items)
 * whatever the number of events.
 */
#ifndef STORE_GEN_WORLD_H
#define STORE_GEN_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "store/gen/gen.h"
#include "store/gen/rng.h"
#include "store/gen/vocab.h"
#include "util/set.h"

#define STORE_GEN_NONE 0xFF        /* no second topic */
#define STORE_GEN_MAX_TOPICS 64

/* 2024-01-01T00:00:00Z: histories span the year after it, items were
 * published in the two years before it.  Fixed, never the clock. */
#define STORE_GEN_EPOCH 1704067200
#define STORE_GEN_YEAR (365 * 86400)

typedef struct store_gen_item {
    double pop;        /* popularity weight, 1/(rank in topic + 1) */
    uint8_t topic;     /* primary topic */
    uint8_t theme;     /* theme within the primary topic */
    uint8_t topic2;    /* second topic of a blend, or STORE_GEN_NONE */
    uint8_t theme2;    /* theme within topic2 */
    float mix;         /* share of topic2 in the embedding; 0 if none */
} store_gen_item;

/* Items to draw from, with cumulative weights: draw x in [0, cum[n-1]) and
 * take the first entry whose cum exceeds x. */
typedef struct store_gen_cdf {
    uint32_t n;        /* entries; 0 = nothing to draw */
    uint32_t *item;    /* item indices, borrowed from the world's pool */
    double *cum;       /* cumulative weights, borrowed likewise */
} store_gen_cdf;

typedef struct store_gen_world {
    store_gen_opts opt;
    int n_topics;                               /* store_gen_n_topics */
    double topic_pop[STORE_GEN_MAX_TOPICS];     /* users' prior over topics */
    store_gen_cdf topic_cdf;                    /* topics with items, by topic_pop */
    uint32_t topic_idx[STORE_GEN_MAX_TOPICS];   /* topic_cdf's entries */
    double topic_cum[STORE_GEN_MAX_TOPICS];
    float *centroid;          /* n_topics x dim, unit rows */
    float *theme_dir;         /* n_topics x STORE_GEN_THEMES x dim, unit rows */
    store_gen_item *item;     /* n_items */
    store_gen_cdf by_topic[STORE_GEN_MAX_TOPICS];            /* incl. blends at half weight */
    store_gen_cdf by_theme[STORE_GEN_MAX_TOPICS][STORE_GEN_THEMES];  /* primary only */
    uint32_t *pool_idx;       /* storage behind every cdf's item */
    double *pool_cum;         /* storage behind every cdf's cum */
} store_gen_world;

/* STORE_OK or STORE_ERR_NOMEM (the world is then empty; free is safe).
 * o must have passed store_gen_check. */
int store_gen_world_build(store_gen_world *w, const store_gen_opts *o);
void store_gen_world_free(store_gen_world *w);     /* safe twice */

/* An entry of c drawn by weight; c->n must be > 0. */
uint32_t store_gen_cdf_draw(const store_gen_cdf *c, store_gen_rng *r);

/* Everything written for one item.  emb holds dim floats (caller-owned). */
typedef struct store_gen_content {
    char title[STORE_GEN_TITLE_MAX];
    char text[STORE_GEN_TITLE_MAX + 128];
    float *emb;              /* dim floats, L2-normalised, filled here */
    double *scratch;         /* 2 x dim doubles, caller-owned */
    int64_t updated_at;
} store_gen_content;

/* Title, text, date and embedding of item i.  The title collision check is
 * the caller's (store/gen/gen.c): attempt 0, 1, ... give different titles. */
void store_gen_item_content(const store_gen_world *w, uint32_t i, int attempt,
                            store_gen_content *c);

/* One event of a history. */
enum store_gen_kind { STORE_GEN_VIEW, STORE_GEN_LIKE, STORE_GEN_PURCHASE };
extern const char *const store_gen_kind_name[3];   /* "view", "like", "purchase" */
extern const float store_gen_kind_weight[3];        /* 1, 2, 3 */

typedef struct store_gen_event {
    int64_t ts;          /* unix seconds, strictly increasing along a history */
    uint32_t item;       /* item index */
    uint8_t kind;        /* enum store_gen_kind */
} store_gen_event;

/* A history and the scratch that makes it; reused from user to user so
 * that a million users cost no more allocations than one. */
typedef struct store_gen_history {
    store_gen_event *ev;     /* n events, oldest first */
    uint32_t n;
    uint32_t cap;            /* capacity of ev and the per-event scratch */
    uint32_t *gap;           /* per event: seconds since the previous (in session) */
    uint8_t *starts;         /* per event: 1 if it opens a session */
    util_set seen;           /* items in the current history (cleared per user in O(1)) */
} store_gen_history;

/* Generate user u's history into h (growing it as needed).
 * STORE_OK or STORE_ERR_NOMEM. */
int store_gen_user_history(const store_gen_world *w, uint32_t u, store_gen_history *h);
void store_gen_history_free(store_gen_history *h);   /* safe twice */

#endif
