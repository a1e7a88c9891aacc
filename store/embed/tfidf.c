/* tfidf.c -- item texts to a sparse TF-IDF matrix.
 *
 * Features are hashed (no strings to keep): a word, a word bigram or a
 * character n-gram becomes a bucket in one of two blocks, words and bigrams
 * in [0, 2^bits), character n-grams in [2^bits, 2^(bits+1)).  The
 * vocabulary of a fit is the list of kept buckets with their idf
 * (store_embed_vocab: one pass counting in how many items each bucket
 * occurs, df >= min_df, the max_features most frequent); the weighted rows
 * are a second pass over a vocabulary (store_embed_tfidf), the fit's own or
 * one read back from the database, so a text folded in later is weighed
 * exactly as it was in the fit.  Memory: a 2^(bits+1) array and the matrix.
 *
 * Tokens: runs of ASCII letters and digits and of non-ASCII bytes (so UTF-8
 * letters of any script stay inside words), ASCII lower-cased, an apostrophe
 * inside a word dropped ("children's" -> "childrens").  Bigrams join words
 * separated only by blanks or hyphens: "Star Wars (1977). Action" gives
 * "star wars" but not "wars 1977" nor "1977 action", which span fields.
 */
#include "store/embed/embed.h"
#include "util/hash.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORD_MAX 64      /* bytes of a word kept; longer ones are cut */

typedef struct s_feats {
    uint32_t *b;         /* buckets of one text, with repeats */
    size_t n, cap;
} s_feats;

static int s_push(s_feats *f, uint32_t b)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        uint32_t *p = realloc(f->b, cap * sizeof *p);
        if (!p)
            return -1;
        f->b = p;
        f->cap = cap;
    }
    f->b[f->n++] = b;
    return 0;
}


/* A mixed hash of a feature of type salt, cut to bits. */
static uint32_t s_bucket(uint64_t h, int bits)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (uint32_t)(h >> (64 - bits));
}

#define FNV0 UTIL_FNV_OFFSET

static int s_word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

typedef struct s_tok {
    const store_embed_opts *o;
    s_feats *f;
    char prev[WORD_MAX];   /* the previous word of the phrase */
    size_t prev_len;       /* 0: no bigram with the next word */
} s_tok;

static int s_emit_word(s_tok *t, const char *w, size_t n)
{
    const store_embed_opts *o = t->o;
    int bits = o->hash_bits;
    uint32_t char_base = 1u << bits;
    if (s_push(t->f, s_bucket(util_fnv1a(FNV0 ^ 1, w, n), bits)))
        return -1;
    if (o->bigrams && t->prev_len) {
        uint64_t h = util_fnv1a(FNV0 ^ 2, t->prev, t->prev_len);
        h = util_fnv1a(h, " ", 1);
        if (s_push(t->f, s_bucket(util_fnv1a(h, w, n), bits)))
            return -1;
    }
    memcpy(t->prev, w, n);
    t->prev_len = n;
    if (o->char_min <= 0)
        return 0;
    /* Character n-grams of " word ", counted in code points so that a
     * multi-byte letter is never split. */
    char pad[WORD_MAX + 2];
    size_t bd[WORD_MAX + 3];     /* byte offset of each code point, and the end */
    size_t pn = 0, nb = 0;
    pad[pn++] = ' ';
    memcpy(pad + pn, w, n);
    pn += n;
    pad[pn++] = ' ';
    for (size_t i = 0; i < pn; i++)
        if (((unsigned char)pad[i] & 0xC0) != 0x80)
            bd[nb++] = i;
    bd[nb] = pn;
    for (int g = o->char_min; g <= o->char_max; g++)
        for (size_t i = 0; i + (size_t)g <= nb; i++) {
            uint64_t h = util_fnv1a(FNV0 ^ (uint64_t)(16 + g), pad + bd[i],
                                    bd[i + (size_t)g] - bd[i]);
            if (s_push(t->f, char_base + s_bucket(h, bits)))
                return -1;
        }
    return 0;
}

/* Every feature bucket of text into f (f->n reset first). */
static int s_features(const char *text, const store_embed_opts *o, s_feats *f)
{
    s_tok t = {.o = o, .f = f};
    f->n = 0;
    char w[WORD_MAX];
    size_t wl = 0;
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    for (;; p++) {
        unsigned char c = *p;
        if (c && s_word_char(c)) {
            if (wl < WORD_MAX)
                w[wl++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            continue;
        }
        if (c == '\'' && wl && s_word_char(p[1]))
            continue;                  /* "children's": one word */
        if (wl && s_emit_word(&t, w, wl))
            return -1;
        wl = 0;
        if (!c)
            break;
        /* Only blanks and hyphens keep a phrase going for bigrams. */
        if (c != ' ' && c != '\t' && c != '-')
            t.prev_len = 0;
    }
    return 0;
}

/* Sort a text's buckets.  A text has tens to hundreds of them and this runs
 * twice per item: an inlined quicksort with an insertion-sort finish is
 * several times faster than qsort's comparison callback here. */
static void s_sort_u32(uint32_t *a, size_t n)
{
    while (n > 24) {
        uint32_t x = a[0], y = a[n / 2], z = a[n - 1];
        uint32_t p = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
        size_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < p)
                i++;
            while (a[j] > p)
                j--;
            if (i >= j)
                break;
            uint32_t t = a[i];
            a[i++] = a[j];
            a[j--] = t;
        }
        /* Recurse into the smaller part, loop on the larger: O(log n) stack. */
        size_t left = j + 1;
        if (left < n - left) {
            s_sort_u32(a, left);
            a += left;
            n -= left;
        } else {
            s_sort_u32(a + left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        uint32_t v = a[i];
        size_t j = i;
        while (j && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

typedef struct s_cand {
    uint32_t bucket;
    uint32_t df;
} s_cand;

/* Most frequent first; ties by bucket, so the choice is deterministic. */
static int s_cmp_cand(const void *a, const void *b)
{
    const s_cand *x = a, *y = b;
    if (x->df != y->df)
        return x->df > y->df ? -1 : 1;
    return (x->bucket > y->bucket) - (x->bucket < y->bucket);
}

static int s_check(const store_embed_opts *o, store_err *err)
{
    const char *bad = NULL;
    if (o->hash_bits < 8 || o->hash_bits > 24)
        bad = "hash_bits must be in 8..24";
    else if (o->min_df < 1)
        bad = "min_df must be >= 1";
    else if (o->max_features < 1)
        bad = "max_features must be >= 1";
    else if (o->char_min < 0 || o->char_min > 8 || (o->char_min && o->char_max < o->char_min) ||
             o->char_max > 8)
        bad = "character n-grams must be 0 (none) or a range within 1..8";
    else if (!(o->char_weight >= 0) || !isfinite(o->char_weight))
        bad = "char_weight must be a finite value >= 0";
    if (!bad)
        return STORE_OK;
    if (err) {
        err->code = STORE_ERR_INVAL;
        snprintf(err->msg, sizeof err->msg, "embed: %s", bad);
    }
    return STORE_ERR_INVAL;
}

static int s_nomem(store_err *err)
{
    if (err) {
        err->code = STORE_ERR_NOMEM;
        snprintf(err->msg, sizeof err->msg, "embed: out of memory building TF-IDF features");
    }
    return STORE_ERR_NOMEM;
}

void store_embed_csr_free(store_embed_csr *m)
{
    if (!m)
        return;
    free(m->rowptr);
    free(m->col);
    free(m->val);
    memset(m, 0, sizeof *m);
}

/* The kept buckets (ascending) and their idf, from the document
 * frequencies of the fit's n_docs texts. */
static int s_choose(const uint32_t *df, size_t nb, size_t n_docs, const store_embed_opts *o,
                    store_embed_basis *b)
{
    size_t nc = 0;
    for (size_t i = 0; i < nb; i++)
        nc += df[i] >= (uint32_t)o->min_df;
    s_cand *c = malloc((nc ? nc : 1) * sizeof *c);
    if (!c)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < nb; i++)
        if (df[i] >= (uint32_t)o->min_df)
            c[k++] = (s_cand){(uint32_t)i, df[i]};
    if (nc > (size_t)o->max_features) {
        qsort(c, nc, sizeof *c, s_cmp_cand);
        nc = (size_t)o->max_features;
    }
    /* Columns in bucket order: rows come out sorted by column for free. */
    b->bucket = malloc((nc ? nc : 1) * sizeof *b->bucket);
    b->idf = malloc((nc ? nc : 1) * sizeof *b->idf);
    if (!b->bucket || !b->idf) {
        free(c);
        return -1;
    }
    for (size_t i = 0; i < nc; i++)
        b->bucket[i] = c[i].bucket;
    if (nc > 1 && nc == (size_t)o->max_features)
        s_sort_u32(b->bucket, nc);
    /* df of each kept bucket, looked up after the sort. */
    for (size_t i = 0; i < nc; i++)
        b->idf[i] = (float)(log((1.0 + (double)n_docs) / (1.0 + df[b->bucket[i]])) + 1.0);
    free(c);
    b->cols = nc;
    return 0;
}

int store_embed_vocab(const char *const *texts, size_t n, const store_embed_opts *o,
                      store_embed_basis *b, store_err *err)
{
    memset(b, 0, sizeof *b);
    int rc = s_check(o, err);
    if (rc != STORE_OK)
        return rc;
    b->o = *o;
    b->o.progress = NULL;
    b->o.progress_ctx = NULL;
    b->n_fit = n;
    size_t nb = (size_t)2 << o->hash_bits;        /* both blocks */
    uint32_t *df = calloc(nb, sizeof *df);
    s_feats f = {0};
    if (!df)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        if (s_features(texts[i], o, &f))
            goto nomem;
        s_sort_u32(f.b, f.n);
        for (size_t k = 0; k < f.n; k++)
            if (k == 0 || f.b[k] != f.b[k - 1])
                df[f.b[k]]++;
        if (o->progress && (i % 4096 == 0))
            o->progress(o->progress_ctx, "features", i, 2 * n);
    }
    if (s_choose(df, nb, n, o, b))
        goto nomem;
    free(df);
    free(f.b);
    return STORE_OK;
nomem:
    free(df);
    free(f.b);
    store_embed_basis_free(b);
    return s_nomem(err);
}

/* Grow the matrix's entry arrays to hold need entries. */
static int s_reserve(store_embed_csr *m, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    uint32_t *col = realloc(m->col, nc * sizeof *col);
    if (!col)
        return -1;
    m->col = col;
    float *val = realloc(m->val, nc * sizeof *val);
    if (!val)
        return -1;
    m->val = val;
    *cap = nc;
    return 0;
}

/* Row i of the matrix from a text's sorted buckets: sublinear tf times
 * idf, then each block to unit norm (characters to char_weight), so that
 * neither the many character n-grams nor a long text's word count decides
 * the balance between the two views of the text. */
static void s_row(store_embed_csr *m, size_t i, const s_feats *f, const int32_t *col_of,
                  const store_embed_basis *b)
{
    uint32_t char_base = 1u << b->o.hash_bits;
    size_t start = m->rowptr[i], e = start, first_char = SIZE_MAX;
    double norm[2] = {0, 0};
    for (size_t k = 0; k < f->n;) {
        size_t r = k;
        while (r < f->n && f->b[r] == f->b[k])
            r++;
        int32_t c = col_of[f->b[k]];
        if (c >= 0) {
            int blk = f->b[k] >= char_base;
            if (blk && first_char == SIZE_MAX)
                first_char = e;
            float w = (float)(1.0 + log((double)(r - k))) * b->idf[c];
            m->col[e] = (uint32_t)c;
            m->val[e++] = w;
            norm[blk] += (double)w * w;
        }
        k = r;
    }
    double s0 = norm[0] > 0 ? 1.0 / sqrt(norm[0]) : 0;
    double s1 = norm[1] > 0 ? b->o.char_weight / sqrt(norm[1]) : 0;
    for (size_t k = start; k < e; k++)
        m->val[k] = (float)(m->val[k] * (first_char != SIZE_MAX && k >= first_char ? s1 : s0));
    m->rowptr[i + 1] = e;
}

int store_embed_tfidf(const char *const *texts, size_t n, const store_embed_basis *b,
                      store_embed_csr *out, store_err *err)
{
    memset(out, 0, sizeof *out);
    const store_embed_opts *o = &b->o;
    int rc = s_check(o, err);
    if (rc != STORE_OK)
        return rc;
    size_t nb = (size_t)2 << o->hash_bits;
    int32_t *col_of = malloc(nb * sizeof *col_of);
    s_feats f = {0};
    size_t cap = 0;
    if (!col_of || !(out->rowptr = calloc(n + 1, sizeof *out->rowptr)))
        goto nomem;
    for (size_t i = 0; i < nb; i++)
        col_of[i] = -1;
    for (size_t j = 0; j < b->cols; j++) {
        /* A loaded basis was checked (ascending, in range); trap misuse. */
        assert(b->bucket[j] < nb);
        col_of[b->bucket[j]] = (int32_t)j;
    }
    out->rows = n;
    out->cols = b->cols;
    for (size_t i = 0; i < n; i++) {
        if (s_features(texts[i], o, &f) || s_reserve(out, &cap, out->rowptr[i] + f.n))
            goto nomem;
        s_sort_u32(f.b, f.n);
        s_row(out, i, &f, col_of, b);
        if (o->progress && (i % 4096 == 0))
            o->progress(o->progress_ctx, "features", n + i, 2 * n);
    }
    free(col_of);
    free(f.b);
    return STORE_OK;
nomem:
    free(col_of);
    free(f.b);
    store_embed_csr_free(out);
    return s_nomem(err);
}
