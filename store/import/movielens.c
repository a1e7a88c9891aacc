/* movielens.c -- the MovieLens layouts, items and ratings in one
 * transaction: the 100K and CSV layouts here, the ML-1M '::' layouts in
 * mldat.c.
 *
 * 100K layout (ml-100k): u.genre "name|index"; u.item "id|title|release
 * date|video release date|IMDb URL|19 genre flags", Latin-1, '|'-separated
 * without quoting; u.data "user<TAB>item<TAB>rating<TAB>unix time".
 * CSV layout (ml-latest*, ml-25m...): movies.csv "movieId,title,genres" with
 * genres '|'-separated, ratings.csv "userId,movieId,rating,timestamp",
 * optional tags.csv "userId,movieId,tag,timestamp", UTF-8, RFC 4180.
 *
 * Items: ext_id = the movie id, title = the movie title, text = "title.
 * genre, genre. tag, tag" -- everything the text embedder can use.  Events:
 * every rating becomes kind "rating" with weight 1: a rating says the user
 * watched the film, which is what next-item prediction learns from, and the
 * star value mostly says how much they liked it (docs/IMPORT.md).  Users and
 * movies keep their MovieLens ids as ext_ids.
 */
#include "store/import/seq.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_GENRES 64
#define MAX_TAGS 32       /* distinct tags kept per movie */
#define MAX_TAG_LEN 100

/* A growable string for building item texts. */
typedef struct s_buf {
    char *p;
    size_t len, cap;
} s_buf;

static int s_add(s_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int s_adds(s_buf *b, const char *s)
{
    return s_add(b, s, strlen(s));
}

static int s_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int store_import_movielens_layout(const char *dir)
{
    if (s_exists(dir, "u.item") && s_exists(dir, "u.data"))
        return 1;
    if (s_exists(dir, "movies.csv") && s_exists(dir, "ratings.csv"))
        return 2;
    if (s_exists(dir, "movies.dat") && s_exists(dir, "ratings.dat"))
        return 3;
    if (s_exists(dir, "movies.dat") && s_exists(dir, "sequences.txt"))
        return 4;
    return 0;
}

static int s_open(store_import_job *job, store_import_rd **rd, const char *dir,
                  const char *name, char delim, int latin1, int no_header)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    store_import_rd_opts ro = {.format = STORE_IMPORT_CSV, .delim = delim,
                               .quote = no_header ? (char)-1 : 0, .no_header = no_header,
                               .latin1 = latin1};
    return store_import_job_open(job, rd, path, &ro);
}

/* Field col of the record as a trimmed string ("" when empty). */
static int s_field(store_import_job *job, store_import_rd *rd, int col, store_import_val *v,
                   const char **s, size_t *len)
{
    char why[400];
    store_import_rd_get(rd, col, v);
    if (store_import_val_str(v, 1, s, len, why, sizeof why) != STORE_OK)
        return store_import_job_fail(job, rd, why);
    if (!*s)
        *s = "";
    return STORE_OK;
}

static int s_put_item(store_import_job *job, store_import_rd *rd, const char *ext, size_t len,
                      const char *title, const char *text)
{
    if (!*ext)
        return store_import_job_fail(job, rd, "empty movie id");
    int64_t id;
    int rc = store_import_job_item(job, ext, len, &id);
    int exists = rc == STORE_OK;
    if (rc != STORE_OK && rc != STORE_ERR_NOTFOUND)
        return rc;
    rc = store_item_put(job->db, ext, title, text, NULL, job->now, &id, job->err);
    if (rc != STORE_OK) {
        store_import_job_where(job, rd);
        return rc;
    }
    store_import_job_item_written(job, exists);
    return store_import_job_item_seen(job, ext, len, id);
}

/* ---- 100K layout ---------------------------------------------------------- */

typedef struct s_ml100k {
    char *genre[MAX_GENRES];   /* genre name by flag index */
    int n_genres;              /* flags per u.item line */
    s_buf text;                /* scratch for item texts */
} s_ml100k_ctx;

static int s_genre_row(store_import_job *job, store_import_rd *rd, void *ctx)
{
    s_ml100k_ctx *ml = ctx;
    store_import_val vn, vi;
    const char *name, *idx;
    size_t nl, il;
    int rc = s_field(job, rd, 0, &vn, &name, &nl);
    if (rc == STORE_OK)
        rc = s_field(job, rd, 1, &vi, &idx, &il);
    if (rc != STORE_OK)
        return rc;
    int64_t k;
    if (store_import_parse_i64(idx, il, &k) < 0 || k < 0 || k >= MAX_GENRES)
        return store_import_job_fail(job, rd, "column 2: genre index is not in 0..63");
    free(ml->genre[k]);
    if (!(ml->genre[k] = strdup(name)))
        return store_import_job_nomem(job);
    if (k + 1 > ml->n_genres)
        ml->n_genres = (int)k + 1;
    return STORE_OK;
}

static int s_item100k_row(store_import_job *job, store_import_rd *rd, void *ctx)
{
    s_ml100k_ctx *ml = ctx;
    store_import_val vid, vt, vf;
    const char *ext, *title;
    size_t el, tl;
    int rc = s_field(job, rd, 0, &vid, &ext, &el);
    if (rc == STORE_OK)
        rc = s_field(job, rd, 1, &vt, &title, &tl);
    if (rc != STORE_OK)
        return rc;
    ml->text.len = 0;
    int ok = s_add(&ml->text, title, tl) == 0;
    int n = 0;
    for (int g = 0; g < ml->n_genres && ok; g++) {
        const char *flag;
        size_t fl;
        /* The first record fixed the width; a genre column past it is caught
         * there as a field-count error, so this field exists. */
        store_import_rd_get(rd, 5 + g, &vf);
        if (vf.kind == STORE_IMPORT_V_ABSENT)
            return store_import_job_fail(job, rd, "fewer genre flags than u.genre lists");
        rc = s_field(job, rd, 5 + g, &vf, &flag, &fl);
        if (rc != STORE_OK)
            return rc;
        if (fl != 1 || (flag[0] != '0' && flag[0] != '1')) {
            char why[120];
            snprintf(why, sizeof why, "column %d: genre flag is not 0 or 1", 6 + g);
            return store_import_job_fail(job, rd, why);
        }
        /* "unknown" is MovieLens's absence of a genre, not a genre. */
        if (flag[0] == '1' && ml->genre[g] && strcasecmp(ml->genre[g], "unknown")) {
            ok = s_adds(&ml->text, n++ ? ", " : ". ") == 0 &&
                 s_adds(&ml->text, ml->genre[g]) == 0;
        }
    }
    if (!ok)
        return store_import_job_nomem(job);
    return s_put_item(job, rd, ext, el, title, ml->text.p);
}

/* The columns of u.item and u.data are positions; the reader's column
 * handles are made once per file and are then 0, 1, 2, ... in order. */
static int s_positional(store_import_job *job, store_import_rd *rd, int n)
{
    for (int i = 0; i < n; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i + 1);
        int col;
        int rc = store_import_job_column(job, rd, &col, 1, "positional", num, "(fixed)", NULL);
        if (rc != STORE_OK)
            return rc;
    }
    return STORE_OK;
}

static int s_ml100k(store_import_job *job, const char *dir)
{
    s_ml100k_ctx ml = {0};
    store_import_rd *rd = NULL;
    int rc = STORE_OK;
    if (s_exists(dir, "u.genre")) {
        rc = s_open(job, &rd, dir, "u.genre", '|', 1, 1);
        if (rc == STORE_OK)
            rc = s_positional(job, rd, 2);
        if (rc == STORE_OK)
            rc = store_import_each(job, rd, s_genre_row, &ml);
        store_import_rd_free(&rd);
    }
    if (rc == STORE_OK)
        rc = s_open(job, &rd, dir, "u.item", '|', 1, 1);
    if (rc == STORE_OK)
        rc = s_positional(job, rd, 5 + ml.n_genres);
    if (rc == STORE_OK)
        rc = store_import_each(job, rd, s_item100k_row, &ml);
    store_import_rd_free(&rd);
    for (int g = 0; g < MAX_GENRES; g++)
        free(ml.genre[g]);
    free(ml.text.p);
    if (rc != STORE_OK)
        return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/u.data", dir);
    store_import_rd_opts ro = {.format = STORE_IMPORT_CSV, .delim = '\t', .quote = (char)-1,
                               .no_header = 1};
    static const char *const cols[5] = {"1", "2", "4", NULL, NULL};
    return store_import_events_file(job, path, &ro, cols);
}

/* ---- CSV layout ----------------------------------------------------------- */

typedef struct s_tags {
    s_buf *list;               /* per movie: tags separated by '\n' */
    int *count;                /* per movie: tags kept */
    size_t n, cap;             /* movies with tags */
    store_import_map *index;   /* movieId -> slot in list */
    int c_movie, c_tag;        /* column handles in tags.csv */
} s_tags;

/* Is tag (case-insensitively) one of the '\n'-separated entries of b? */
static int s_has_tag(const s_buf *b, const char *tag, size_t len)
{
    if (!b->p)
        return 0;   /* no tags yet (and NULL + 0 is undefined) */
    const char *p = b->p, *end = b->p + b->len;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n == len && !strncasecmp(p, tag, len))
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

static int s_tag_row(store_import_job *job, store_import_rd *rd, void *ctx)
{
    s_tags *t = ctx;
    store_import_val vm, vt;
    const char *movie, *tag;
    size_t ml, tl;
    int rc = s_field(job, rd, t->c_movie, &vm, &movie, &ml);
    if (rc == STORE_OK)
        rc = s_field(job, rd, t->c_tag, &vt, &tag, &tl);
    if (rc != STORE_OK)
        return rc;
    if (!tl || tl > MAX_TAG_LEN || memchr(tag, '\n', tl))
        return STORE_OK;       /* a tag no text would be better for */
    int64_t slot;
    if (!store_import_map_get(t->index, movie, ml, &slot)) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 1024;
            s_buf *l = realloc(t->list, cap * sizeof *l);
            if (!l)
                return store_import_job_nomem(job);
            t->list = l;
            int *c = realloc(t->count, cap * sizeof *c);
            if (!c)
                return store_import_job_nomem(job);
            t->count = c;
            t->cap = cap;
        }
        slot = (int64_t)t->n;
        memset(&t->list[slot], 0, sizeof t->list[slot]);
        t->count[slot] = 0;
        if (store_import_map_put(t->index, movie, ml, slot) != STORE_OK)
            return store_import_job_nomem(job);
        t->n++;
    }
    s_buf *b = &t->list[slot];
    if (t->count[slot] >= MAX_TAGS || s_has_tag(b, tag, tl))
        return STORE_OK;
    if ((b->len && s_add(b, "\n", 1)) || s_add(b, tag, tl))
        return store_import_job_nomem(job);
    t->count[slot]++;
    return STORE_OK;
}

typedef struct s_movies {
    s_tags *tags;
    s_buf text;
    int c_id, c_title, c_genres;
} s_movies;

static int s_movie_row(store_import_job *job, store_import_rd *rd, void *ctx)
{
    s_movies *m = ctx;
    store_import_val vid, vt, vg;
    const char *ext, *title, *genres;
    size_t el, tl, gl;
    int rc = s_field(job, rd, m->c_id, &vid, &ext, &el);
    if (rc == STORE_OK)
        rc = s_field(job, rd, m->c_title, &vt, &title, &tl);
    if (rc == STORE_OK)
        rc = s_field(job, rd, m->c_genres, &vg, &genres, &gl);
    if (rc != STORE_OK)
        return rc;
    m->text.len = 0;
    int ok = s_add(&m->text, title, tl) == 0;
    if (gl && strcmp(genres, "(no genres listed)")) {
        ok = ok && s_adds(&m->text, ". ") == 0;
        for (size_t i = 0; i < gl && ok; i++)
            ok = genres[i] == '|' ? s_adds(&m->text, ", ") == 0
                                  : s_add(&m->text, genres + i, 1) == 0;
    }
    int64_t slot;
    if (ok && m->tags->index && store_import_map_get(m->tags->index, ext, el, &slot)) {
        const s_buf *b = &m->tags->list[slot];
        ok = s_adds(&m->text, ". ") == 0;
        for (size_t i = 0; i < b->len && ok; i++)
            ok = b->p[i] == '\n' ? s_adds(&m->text, ", ") == 0 : s_add(&m->text, b->p + i, 1) == 0;
    }
    if (!ok)
        return store_import_job_nomem(job);
    return s_put_item(job, rd, ext, el, title, m->text.p);
}

static int s_named(store_import_job *job, store_import_rd *rd, int *col, const char *name)
{
    return store_import_job_column(job, rd, col, 1, name, name, "(fixed)", NULL);
}

static int s_mlcsv(store_import_job *job, const char *dir)
{
    s_tags tags = {0};
    s_movies mv = {.tags = &tags};
    store_import_rd *rd = NULL;
    int rc = STORE_OK;
    int latin1 = job->o->latin1;
    if (s_exists(dir, "tags.csv")) {
        if (!(tags.index = store_import_map_new(SIZE_MAX)))
            return store_import_job_nomem(job);
        rc = s_open(job, &rd, dir, "tags.csv", ',', latin1, 0);
        if (rc == STORE_OK)
            rc = s_named(job, rd, &tags.c_movie, "movieId");
        if (rc == STORE_OK)
            rc = s_named(job, rd, &tags.c_tag, "tag");
        if (rc == STORE_OK)
            rc = store_import_each(job, rd, s_tag_row, &tags);
        store_import_rd_free(&rd);
    }
    if (rc == STORE_OK)
        rc = s_open(job, &rd, dir, "movies.csv", ',', latin1, 0);
    if (rc == STORE_OK)
        rc = s_named(job, rd, &mv.c_id, "movieId");
    if (rc == STORE_OK)
        rc = s_named(job, rd, &mv.c_title, "title");
    if (rc == STORE_OK)
        rc = s_named(job, rd, &mv.c_genres, "genres");
    if (rc == STORE_OK)
        rc = store_import_each(job, rd, s_movie_row, &mv);
    store_import_rd_free(&rd);
    for (size_t i = 0; i < tags.n; i++)
        free(tags.list[i].p);
    free(tags.list);
    free(tags.count);
    store_import_map_free(&tags.index);
    free(mv.text.p);
    if (rc != STORE_OK)
        return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/ratings.csv", dir);
    store_import_rd_opts ro = {.format = STORE_IMPORT_CSV, .latin1 = latin1};
    static const char *const cols[5] = {"userId", "movieId", "timestamp", NULL, NULL};
    return store_import_events_file(job, path, &ro, cols);
}

int store_import_movielens(store *db, const char *dir, const store_import_opts *opts,
                           store_import_stats *stats, store_err *err)
{
    int layout = store_import_movielens_layout(dir);
    if (!layout) {
        memset(stats, 0, sizeof *stats);
        if (err) {
            err->code = STORE_ERR_IO;
            snprintf(err->msg, sizeof err->msg,
                     "%s: not a MovieLens directory (expected u.item + u.data for "
                     "ml-100k, movies.csv + ratings.csv, movies.dat + ratings.dat, or "
                     "movies.dat + sequences.txt)", dir);
        }
        return STORE_ERR_IO;
    }
    store_import_opts o = *opts;
    if (!o.default_kind)
        o.default_kind = "rating";
    /* The fixed layouts name their own columns and separators. */
    o.format = STORE_IMPORT_CSV;
    o.delim = 0;
    o.no_header = 0;
    store_import_job job;
    static const char *const names[] = {"u.genre", "u.item", "u.data", "movies.csv",
                                        "ratings.csv", "tags.csv", "movies.dat",
                                        "ratings.dat", "sequences.txt"};
    char paths[9][4200];
    const char *inputs[9];
    for (int i = 0; i < 9; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]);
        inputs[i] = paths[i];
    }
    int rc = store_import_job_start(&job, db, &o, stats, store_path(db), inputs, 9, err);
    if (rc != STORE_OK)
        return rc;
    rc = layout == 1 ? s_ml100k(&job, dir) : layout == 2 ? s_mlcsv(&job, dir)
                                                         : store_import_mldat(&job, dir, layout);
    return store_import_job_finish(&job, rc);
}
