/* mldat.c -- the MovieLens '::' layouts (ML-1M, ML-10M).
 *
 *   movies.dat    "MovieID::Title::Genre|Genre"          Latin-1 (ML-1M)
 *   ratings.dat   "UserID::MovieID::Rating::Timestamp"
 *   users.dat     demographics: not read (nothing here learns from them)
 *
 * Two directory layouts use movies.dat: beside ratings.dat (the original
 * files: every movie is an item, every rating an event of kind "rating",
 * weight 1, at its time), or beside a sequence file sequences.txt (the form
 * the sequential-recommendation literature publishes, e.g. the 5-core ML-1M
 * of SASRec and its successors: the sequences name the catalog, movies.dat
 * only titles it, seq.c).  Item text is "Title. Genre, Genre", as
 * the other MovieLens layouts make it.  Fields are split on "::" (titles
 * hold single colons: "Star Wars: Episode IV").  The files are read as
 * Latin-1, the encoding GroupLens ships them in (ML-1M's movies.dat is not
 * valid UTF-8).
 */
#include "store/import/seq.h"

#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

#define EXT_MAX 512

typedef struct s_movies {
    store_import_titles *t;
    char *text;                /* scratch: "Title. Genre, Genre" */
    size_t cap;
} s_movies;

/* The current line; STORE_IMPORT_NOT_DATA (*line NULL) for a line of blanks. */
static int s_line(store_import_job *job, store_import_rd *rd, const char **line, size_t *len)
{
    int rc = store_import_line(job, rd, line, len);
    return rc == STORE_OK && !*line ? STORE_IMPORT_NOT_DATA : rc;
}

static int s_movie_row(store_import_job *job, store_import_rd *rd, void *ctx)
{
    s_movies *m = ctx;
    const char *line, *f[3];
    size_t len, fl[3];
    int rc = s_line(job, rd, &line, &len);
    if (rc != STORE_OK || !line)
        return rc;
    if (store_import_split(line, len, "::", f, fl, 3) != 3)
        return store_import_job_fail(job, rd, "expected MovieID::Title::Genres");
    if (!fl[0] || fl[0] > EXT_MAX)
        return store_import_job_fail(job, rd, "MovieID is empty or longer than 512 bytes");
    /* Worst case: every '|' becomes ", ". */
    if (fl[1] + 2 * fl[2] + 8 > m->cap) {
        size_t cap = 2 * (fl[1] + 2 * fl[2] + 8);
        char *p = realloc(m->text, cap);
        if (!p)
            return store_import_job_nomem(job);
        m->text = p;
        m->cap = cap;
    }
    char title[4096];
    /* A longer title is cut, between characters (the rd transcodes Latin-1,
     * so the field is UTF-8 here). */
    size_t tl = util_utf8_cut(f[1], fl[1], sizeof title - 1);
    memcpy(title, f[1], tl);
    title[tl] = '\0';
    size_t o = 0;
    memcpy(m->text, f[1], fl[1]);
    o = fl[1];
    if (fl[2] && !(fl[2] == 18 && !memcmp(f[2], "(no genres listed)", 18))) {
        memcpy(m->text + o, ". ", 2);
        o += 2;
        for (size_t i = 0; i < fl[2]; i++) {
            if (f[2][i] == '|') {
                memcpy(m->text + o, ", ", 2);
                o += 2;
            } else {
                m->text[o++] = f[2][i];
            }
        }
    }
    m->text[o] = '\0';
    return store_import_titles_put(job, m->t, f[0], fl[0], title, m->text);
}

static int s_rating_row(store_import_job *job, store_import_rd *rd, void *ctx)
{
    (void)ctx;
    char why[400];
    const char *line, *f[4];
    size_t len, fl[4];
    int rc = s_line(job, rd, &line, &len);
    if (rc != STORE_OK || !line)
        return rc;
    int64_t ts;
    if (store_import_split(line, len, "::", f, fl, 4) != 4 || !fl[0] || !fl[1] ||
        store_import_parse_i64(f[3], fl[3], &ts) < 0)
        return store_import_job_fail(job, rd, "expected UserID::MovieID::Rating::Timestamp "
                                              "(unix seconds)");
    if (fl[0] > EXT_MAX || fl[1] > EXT_MAX)
        return store_import_job_fail(job, rd, "an id is longer than 512 bytes");
    int64_t item_id, user_id;
    rc = store_import_job_item(job, f[1], fl[1], &item_id);
    if (rc == STORE_ERR_NOTFOUND) {
        snprintf(why, sizeof why, "unknown movie '%.*s' (not in movies.dat)", (int)fl[1], f[1]);
        return store_import_job_fail(job, rd, why);
    }
    if (rc != STORE_OK)
        return rc;
    char user[EXT_MAX + 1];
    memcpy(user, f[0], fl[0]);
    user[fl[0]] = '\0';
    rc = store_import_job_user(job, user, fl[0], &user_id);
    if (rc == STORE_OK)
        rc = store_event_put(job->db, user_id, item_id, ts,
                             job->o->default_kind ? job->o->default_kind : "rating", 1.0f,
                             job->err);
    if (rc != STORE_OK) {
        store_import_job_where(job, rd);
        return rc;
    }
    job->st->events++;
    return STORE_OK;
}

/* Read dir/name line by line with row(). */
static int s_file(store_import_job *job, const char *dir, const char *name,
                  store_import_row_fn row, void *ctx)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    store_import_rd *rd;
    int rc = store_import_lines_open(job, &rd, path, 1);
    if (rc == STORE_OK)
        rc = store_import_each(job, rd, row, ctx);
    store_import_rd_free(&rd);
    return rc;
}

/* layout: 3 = movies.dat + ratings.dat, 4 = movies.dat + sequences.txt. */
int store_import_mldat(store_import_job *job, const char *dir, int layout)
{
    s_movies m = {.t = store_import_titles_new()};
    if (!m.t)
        return store_import_job_nomem(job);
    int rc = s_file(job, dir, "movies.dat", s_movie_row, &m);
    if (rc == STORE_OK && layout == 3) {
        rc = store_import_titles_write(job, m.t);
        if (rc == STORE_OK)
            rc = s_file(job, dir, "ratings.dat", s_rating_row, NULL);
    } else if (rc == STORE_OK) {
        char path[4200];
        snprintf(path, sizeof path, "%s/sequences.txt", dir);
        rc = store_import_seq_file(job, path, STORE_IMPORT_SEQ_AUTO, m.t);
        job->st->items_skipped = store_import_titles_unused(m.t);
    }
    free(m.text);
    store_import_titles_free(&m.t);
    return rc;
}
