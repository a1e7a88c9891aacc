/* vocab.h -- the demo generator's topics, their words and title templates.
 *
 *     const store_gen_topic *t = &store_gen_topics[2];          // "jazz"
 *     char title[STORE_GEN_TITLE_MAX];
 *     const char *words[STORE_GEN_WORDS_MAX]; int nw;
 *     store_gen_title(title, t, 1, NULL, 0, &rng, words, &nw);
 *     // "Cool Ballads at the Blue Note"; words = {"Cool", "Ballads", "the Blue Note"}
 *
 * Each topic has title templates, topic-wide adjectives and proper names,
 * and four themes (its sub-topics), each with a name and six nouns.  An item
 * belongs to one theme, so its title is drawn from that theme's nouns: items
 * of a theme read alike and (items.c) embed alike.
 *
 * Template slots:  {A} adjective  {N} noun of the theme  {M} another noun of
 * the theme  {P} proper name  {K} a small number.  Everything is ASCII.
 */
#ifndef STORE_GEN_VOCAB_H
#define STORE_GEN_VOCAB_H

#include <stddef.h>
#include "store/gen/rng.h"

#define STORE_GEN_THEMES 4        /* themes (sub-topics) per topic */
#define STORE_GEN_NOUNS 6         /* nouns per theme */
#define STORE_GEN_TITLE_MAX 160   /* longest title + NUL, with room to spare */
#define STORE_GEN_WORDS_MAX 8     /* vocabulary words one title can use */

typedef struct store_gen_theme {
    const char *name;                    /* lower case, for item text: "barbecue" */
    const char *noun[STORE_GEN_NOUNS];   /* Title Case, singular or plural as fits */
} store_gen_theme;

typedef struct store_gen_topic {
    const char *name;                    /* lower case: "space opera" */
    const char *tmpl[10];                /* title templates, NULL-terminated */
    const char *adj[13];                 /* NULL-terminated */
    const char *proper[11];              /* NULL-terminated */
    store_gen_theme theme[STORE_GEN_THEMES];
} store_gen_topic;

extern const store_gen_topic store_gen_topics[];
extern const int store_gen_n_topics;

/* Compose a title for an item of topic tp, theme k, into out (which holds
 * STORE_GEN_TITLE_MAX bytes).  A blend item passes its second topic tp2 and
 * theme k2 (tp2 NULL otherwise): the title gets a phrase in that topic's
 * words.  words/nw receive the vocabulary words used (borrowed pointers into
 * the static tables), so the caller can give the item their vectors.
 * Draws only from r, so a title is a function of the item's stream. */
void store_gen_title(char *out, const store_gen_topic *tp, int k,
                     const store_gen_topic *tp2, int k2, store_gen_rng *r,
                     const char **words, int *nw);

#endif
