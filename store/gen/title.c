/* title.c -- compose an item title from its topic's vocabulary.
 *
 * A title is one template of the item's topic with its slots filled: the
 * adjective and proper name from the topic, the nouns from the item's theme.
 * Blend items (two topics) get a short phrase in the second topic's words
 * appended, so a reader sees both halves ("...: The Bebop Edition").
 *
 * Every slot value is drawn up front in a fixed order, whichever template
 * wins, so the number of draws per title is constant; callers can rely on
 * the stream advancing the same way for every title (titles are redrawn
 * when they collide with an earlier one).
 */
#include "store/gen/vocab.h"

#include <string.h>

/* Appended to a blend item's title; {A} {N} {T} come from the second topic
 * ({T} is its name in Title Case).  The first one is replaced by the second
 * when the title already has a colon: two colons read badly. */
static const char *const s_blend[] = {
    ": The {N} Edition",
    " ({T} Edition)",
    ", with {A} {N}",
    " and the {A} {N}",
};

static const char *const s_numbers[] = {"3", "5", "7", "10", "12", "20", "30", "50"};

/* The values of the slots of one template. */
typedef struct s_slots {
    const char *a, *n, *m, *p, *k, *t;
} s_slots;

/* An output buffer that never overflows: appends past the end are dropped
 * (titles are far shorter than STORE_GEN_TITLE_MAX; this is only a guard). */
typedef struct s_buf {
    char *p;
    size_t len, cap;
} s_buf;

static int s_count(const char *const *list, int max)
{
    int n = 0;
    while (n < max && list[n])
        n++;
    return n;
}

static void s_put(s_buf *b, const char *s, size_t n)
{
    if (b->len + n >= b->cap)
        n = b->len + 1 < b->cap ? b->cap - 1 - b->len : 0;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void s_word(const char *w, const char **words, int *nw)
{
    for (int i = 0; i < *nw; i++)
        if (words[i] == w)
            return;
    if (*nw < STORE_GEN_WORDS_MAX)
        words[(*nw)++] = w;
}

/* Expand tmpl into b; every vocabulary word used goes into words. */
static void s_expand(s_buf *b, const char *tmpl, const s_slots *v, const char **words,
                     int *nw)
{
    const char *p = tmpl;
    while (*p) {
        const char *open = strchr(p, '{');
        if (!open) {
            s_put(b, p, strlen(p));
            break;
        }
        s_put(b, p, (size_t)(open - p));
        const char *val = NULL;
        int is_word = 1;
        switch (open[1]) {
        case 'A': val = v->a; break;
        case 'N': val = v->n; break;
        case 'M': val = v->m; break;
        case 'P': val = v->p; break;
        case 'K': val = v->k; is_word = 0; break;
        case 'T': val = v->t; is_word = 0; break;
        }
        if (!val || open[2] != '}') {
            /* Defensive: a template typo.  check_gen.c tries every template,
             * so this is caught there; here it degrades to literal text. */
            s_put(b, open, 1);
            p = open + 1;
            continue;
        }
        s_put(b, val, strlen(val));
        if (is_word)
            s_word(val, words, nw);
        p = open + 3;
    }
}

/* "A Ethiopian ..." -> "An Ethiopian ...": templates say "A {P}", and the
 * filler decides the article.  In place; out has room (see s_put). */
static void s_fix_articles(char *out, size_t cap)
{
    size_t len = strlen(out);
    for (size_t i = 0; i + 2 < len; i++) {
        if (out[i] != 'A' || out[i + 1] != ' ' || (i > 0 && out[i - 1] != ' '))
            continue;
        if (!strchr("AEIOU", out[i + 2]))
            continue;
        if (len + 1 >= cap)
            return;
        memmove(out + i + 2, out + i + 1, len - i);   /* moves the NUL too */
        out[i + 1] = 'n';
        len++;
    }
}

/* "space opera" -> "Space Opera". */
static void s_title_case(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) {
        char c = src[i];
        if ((i == 0 || src[i - 1] == ' ') && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        dst[i] = c;
    }
    dst[i] = '\0';
}

void store_gen_title(char *out, const store_gen_topic *tp, int k,
                     const store_gen_topic *tp2, int k2, store_gen_rng *r,
                     const char **words, int *nw)
{
    s_buf b = {out, 0, STORE_GEN_TITLE_MAX};
    out[0] = '\0';
    *nw = 0;

    const store_gen_theme *th = &tp->theme[k];
    int nt = s_count(tp->tmpl, 10);
    int na = s_count(tp->adj, 13);
    int np = s_count(tp->proper, 11);
    uint32_t n1 = store_gen_below(r, STORE_GEN_NOUNS);
    /* M differs from N: draw from the other five nouns. */
    uint32_t n2 = (n1 + 1 + store_gen_below(r, STORE_GEN_NOUNS - 1)) % STORE_GEN_NOUNS;
    s_slots v = {
        .a = tp->adj[store_gen_below(r, (uint32_t)na)],
        .n = th->noun[n1],
        .m = th->noun[n2],
        .p = tp->proper[store_gen_below(r, (uint32_t)np)],
        .k = s_numbers[store_gen_below(r, sizeof s_numbers / sizeof s_numbers[0])],
        .t = NULL,
    };
    const char *tmpl = tp->tmpl[store_gen_below(r, (uint32_t)nt)];

    /* The blend phrase's draws happen for every title, used or not, to keep
     * the draw count constant (see the top of the file). */
    uint32_t bi = store_gen_below(r, sizeof s_blend / sizeof s_blend[0]);
    double ba = store_gen_uniform(r);      /* scaled below: tp2's list length varies */
    uint32_t bn = store_gen_below(r, STORE_GEN_NOUNS);

    s_expand(&b, tmpl, &v, words, nw);
    if (tp2) {
        char tname[64];
        s_title_case(tname, sizeof tname, tp2->name);
        int na2 = s_count(tp2->adj, 13);
        s_slots v2 = {
            .a = tp2->adj[(int)(ba * na2)],
            .n = tp2->theme[k2].noun[bn],
            .t = tname,
        };
        if (bi == 0 && strchr(out, ':'))
            bi = 1;
        s_expand(&b, s_blend[bi], &v2, words, nw);
    }
    s_fix_articles(out, STORE_GEN_TITLE_MAX);
}
