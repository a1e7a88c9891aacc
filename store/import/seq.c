/* seq.c -- sequence files: the layouts sequential-recommendation
 * datasets ship in.
 *
 *   pairs   "user item" a line, one event each (SASRec's data files,
 *           RecBole's atomic .inter files)
 *   lists   "user item1 item2 ..." a line, a user's whole sequence (S3-Rec)
 *
 * Fields are separated by blanks (spaces or tabs); blank lines (and lines
 * of blanks) are skipped.  The layout is detected from the first lines (any
 * line of three or more fields makes it lists) unless the caller names it.
 * A first line whose every field is "name:type", user_id and item_id among
 * them, is a RecBole header: the columns are then found by name (user_id,
 * item_id, and timestamp if present) and the layout is pairs.
 *
 * Time.  Order in the file is time order; without a timestamp column the
 * k-th event read gets ts = k (1, 2, 3, ...), which keeps each user's order
 * (and the file's order across users), makes a re-import of the same file
 * idempotent, and places every such event before any event stamped with
 * real unix time.
 *
 * The sequences name the catalog: an item is created the first time a
 * sequence names it (seq.h).  Each line is checked whole before
 * anything of it is written, so a rejected line leaves no trace.
 */
#include "store/import/seq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EXT_MAX 512
#define DETECT_LINES 1000   /* lines looked at to tell pairs from lists */

int store_import_split(const char *s, size_t len, const char *sep, const char **f,
                       size_t *flen, int max)
{
    int n = 0;
    size_t i = 0, sl = sep ? strlen(sep) : 0;
    if (!s)
        s = "";   /* an absent field is an empty one (and NULL + 0 is undefined) */
    while (n < max) {
        if (!sep)
            while (i < len && (s[i] == ' ' || s[i] == '\t'))
                i++;
        if (!sep && i >= len)
            break;
        size_t j = i;
        if (n == max - 1)
            j = len;
        else if (sep)
            while (j < len && !(j + sl <= len && !memcmp(s + j, sep, sl)))
                j++;
        else
            while (j < len && s[j] != ' ' && s[j] != '\t')
                j++;
        const char *p = s + i;
        size_t pl = j - i;
        store_import_trim(&p, &pl);
        f[n] = p;
        flen[n++] = pl;
        if (sep && j >= len)
            break;
        i = sep ? j + sl : j;
    }
    return n;
}

int store_import_seq_item(store_import_job *job, store_import_rd *rd,
                          store_import_titles *titles, const char *ext, size_t len,
                          int64_t *id)
{
    const char *title, *text;
    int rc = store_import_job_item(job, ext, len, id);
    if (rc == STORE_OK && titles)
        /* It keeps what it has, but a sequence names it: its title is not
         * one of those skipped as no sequence's. */
        store_import_titles_take(titles, ext, len, &title, &text);
    if (rc != STORE_ERR_NOTFOUND)
        return rc;
    int titled = store_import_titles_take(titles, ext, len, &title, &text);
    float *zero = NULL;
    if (!titled || (!title && !text)) {
        /* No text: a zero vector puts the item in the catalog, and the
         * trainer gives it a learned vector of its own. */
        zero = calloc((size_t)store_dim(job->db), sizeof *zero);
        if (!zero)
            return store_import_job_nomem(job);
        job->st->items_untitled++;
    }
    char key[EXT_MAX + 1];
    memcpy(key, ext, len);
    key[len] = '\0';
    rc = store_item_put(job->db, key, title, text, zero, job->now, id, job->err);
    free(zero);
    if (rc != STORE_OK) {
        store_import_job_where(job, rd);
        return rc;
    }
    store_import_job_item_written(job, 0);
    return store_import_job_item_seen(job, key, len, *id);
}

/* ---- one line ------------------------------------------------------------ */

typedef struct s_seq {
    store_import_titles *titles;
    int layout;             /* PAIRS or LISTS */
    int c_user, c_item;     /* field of user and item (pairs) */
    int c_ts;               /* field of a timestamp, -1 for none */
    int width;              /* fields a pairs line must have */
    int header;             /* the first line is a header: skip it */
    int named;              /* the columns were named by a header */
    int64_t next_ts;        /* ordinal of the next event */
    const char **f;         /* fields of the line */
    size_t *fl;
    int cap;
} s_seq;

/* Fields of the current line into q->f; their count (0: a line of blanks). */
static int s_fields(store_import_job *job, store_import_rd *rd, s_seq *q, int *n)
{
    const char *s;
    size_t len;
    *n = 0;
    int rc = store_import_line(job, rd, &s, &len);
    if (rc != STORE_OK || !s)
        return rc;
    int need = (int)(len / 2 + 2);
    if (need > q->cap) {
        const char **f = realloc(q->f, (size_t)need * sizeof *f);
        if (f)
            q->f = f;
        size_t *fl = realloc(q->fl, (size_t)need * sizeof *fl);
        if (fl)
            q->fl = fl;
        if (!f || !fl)
            return store_import_job_nomem(job);
        q->cap = need;
    }
    *n = store_import_split(s, len, NULL, q->f, q->fl, q->cap);
    return STORE_OK;
}

/* Everything store_user/item_put would refuse about an id, refused before
 * the line writes anything (an empty id is a field of blanks, trimmed). */
static int s_check_id(store_import_job *job, store_import_rd *rd, const char *what, size_t len)
{
    if (len > 0 && len <= EXT_MAX)
        return STORE_OK;
    char why[120];
    if (len == 0)
        snprintf(why, sizeof why, "an empty %s id", what);
    else
        snprintf(why, sizeof why, "%s id is %zu bytes, at most %d", what, len, EXT_MAX);
    return store_import_job_fail(job, rd, why);
}

/* The line's timestamp field (pairs with a timestamp column). */
static int s_ts(store_import_job *job, store_import_rd *rd, const s_seq *q, int64_t *ts)
{
    double x;
    const char *s = q->f[q->c_ts];
    size_t n = q->fl[q->c_ts];
    if (store_import_parse_double(s, n, &x) < 0 || !isfinite(x) || fabs(x) > 9e15) {
        char why[200];
        snprintf(why, sizeof why, "timestamp '%.*s' is not a number of seconds",
                 (int)(n > 60 ? 60 : n), s);
        return store_import_job_fail(job, rd, why);
    }
    *ts = (int64_t)floor(x);
    return STORE_OK;
}

static int s_event(store_import_job *job, store_import_rd *rd, s_seq *q, int64_t user_id,
                   const char *item, size_t len, int64_t ts)
{
    int64_t item_id;
    int rc = store_import_seq_item(job, rd, q->titles, item, len, &item_id);
    const char *kind = job->o->default_kind ? job->o->default_kind : "view";
    if (rc != STORE_OK)
        return rc;
    rc = store_event_put(job->db, user_id, item_id, ts, kind, 1.0f, job->err);
    if (rc != STORE_OK) {
        store_import_job_where(job, rd);
        return rc;
    }
    job->st->events++;
    return STORE_OK;
}

static int s_line(store_import_job *job, store_import_rd *rd, void *ctx)
{
    s_seq *q = ctx;
    int n, rc = s_fields(job, rd, q, &n);
    if (rc != STORE_OK)
        return rc;
    if (n == 0 || q->header) {
        /* A line of blanks, or the header (the first line with fields). */
        q->header = n == 0 && q->header;
        return STORE_IMPORT_NOT_DATA;
    }
    char why[300];
    if (q->layout == STORE_IMPORT_SEQ_PAIRS && n != q->width) {
        /* Without a header, a longer line suggests the other layout. */
        snprintf(why, sizeof why, "expected %d fields (%s), found %d%s", q->width,
                 q->named ? "as the header names" : "user item", n,
                 !q->named && n > q->width ? "; a 'user item1 item2 ...' file? (--layout "
                                             "lists)" : "");
        return store_import_job_fail(job, rd, why);
    }
    if (q->layout == STORE_IMPORT_SEQ_LISTS && n < 2)
        return store_import_job_fail(job, rd, "expected 'user item1 item2 ...', found a "
                                              "user without items");
    /* Everything is checked before anything is written. */
    int first = q->layout == STORE_IMPORT_SEQ_PAIRS ? q->c_item : 1;
    int last = q->layout == STORE_IMPORT_SEQ_PAIRS ? q->c_item : n - 1;
    const int c_user = q->layout == STORE_IMPORT_SEQ_PAIRS ? q->c_user : 0;
    if ((rc = s_check_id(job, rd, "user", q->fl[c_user])) != STORE_OK)
        return rc;
    for (int i = first; i <= last; i++)
        if ((rc = s_check_id(job, rd, "item", q->fl[i])) != STORE_OK)
            return rc;
    int64_t ts = 0;
    if (q->c_ts >= 0 && (rc = s_ts(job, rd, q, &ts)) != STORE_OK)
        return rc;
    char user[EXT_MAX + 1];
    memcpy(user, q->f[c_user], q->fl[c_user]);
    user[q->fl[c_user]] = '\0';
    int64_t user_id;
    if ((rc = store_import_job_user(job, user, q->fl[c_user], &user_id)) != STORE_OK) {
        store_import_job_where(job, rd);
        return rc;
    }
    for (int i = first; i <= last && rc == STORE_OK; i++)
        rc = s_event(job, rd, q, user_id, q->f[i], q->fl[i], q->c_ts >= 0 ? ts : q->next_ts++);
    return rc;
}

/* ---- layout ---------------------------------------------------------------- */

/* Is every field "name:type" (a RecBole header)?  Then find the columns. */
static int s_header(s_seq *q, int n)
{
    int user = -1, item = -1, ts = -1;
    for (int i = 0; i < n; i++) {
        const char *colon = memchr(q->f[i], ':', q->fl[i]);
        if (!colon || colon == q->f[i] || colon + 1 == q->f[i] + q->fl[i])
            return 0;
        size_t nl = (size_t)(colon - q->f[i]);
        if (nl == 7 && !memcmp(q->f[i], "user_id", 7))
            user = i;
        else if (nl == 7 && !memcmp(q->f[i], "item_id", 7))
            item = i;
        else if (nl == 9 && !memcmp(q->f[i], "timestamp", 9))
            ts = i;
    }
    if (user < 0 || item < 0)
        return 0;
    q->header = q->named = 1;
    q->c_user = user;
    q->c_item = item;
    q->c_ts = ts;
    q->width = n;
    q->layout = STORE_IMPORT_SEQ_PAIRS;
    return 1;
}

/* Look at the first lines: a header (the first line with fields), or the
 * most fields on a line.  A bad line is passed over: the import proper
 * rejects it (skip_bad) or stops there, naming it, as for any later line. */
static int s_detect(store_import_job *job, const char *path, s_seq *q)
{
    store_import_rd *rd;
    int rc = store_import_lines_open(job, &rd, path, job->o->latin1);
    int most = 0;
    for (int line = 0; rc == STORE_OK && line < DETECT_LINES; line++) {
        int got = 0, n = 0;
        rc = store_import_rd_next(rd, &got, job->err);
        if (!got)
            break;               /* end of file, or a failure outside any record */
        if (rc == STORE_OK)
            rc = s_fields(job, rd, q, &n);
        if (rc == STORE_ERR_INVAL) {
            rc = STORE_OK;
            continue;
        }
        if (rc != STORE_OK)
            break;
        if (most == 0 && n > 0 && s_header(q, n))
            break;
        most = n > most ? n : most;
    }
    store_import_rd_free(&rd);
    if (rc != STORE_OK || q->header)
        return rc;
    if (q->layout == STORE_IMPORT_SEQ_AUTO)
        q->layout = most >= 3 ? STORE_IMPORT_SEQ_LISTS : STORE_IMPORT_SEQ_PAIRS;
    return STORE_OK;
}

/* meta embedder for a catalog whose items came without text, unless an
 * embedder (or an import of vectors) has already said what the vectors are. */
static int s_meta_no_text(store_import_job *job)
{
    char buf[16];
    store_err e;
    int rc = store_meta_get(job->db, "embedder", buf, sizeof buf, &e);
    if (rc == STORE_OK)
        return STORE_OK;
    if (rc != STORE_ERR_NOTFOUND) {
        if (job->err)
            *job->err = e;
        return rc;
    }
    return store_meta_set(job->db, "embedder",
                          "{\"method\":\"none\",\"note\":\"items without text have a zero "
                          "vector: the trainer learns their vectors alone\"}", job->err);
}

int store_import_seq_file(store_import_job *job, const char *path, int layout,
                          store_import_titles *titles)
{
    if (layout < STORE_IMPORT_SEQ_AUTO || layout > STORE_IMPORT_SEQ_LISTS) {
        if (job->err) {
            job->err->code = STORE_ERR_INVAL;
            snprintf(job->err->msg, sizeof job->err->msg, "%s: unknown sequence layout %d",
                     path, layout);
        }
        return STORE_ERR_INVAL;
    }
    s_seq q = {.titles = titles, .layout = layout, .c_user = 0, .c_item = 1, .c_ts = -1,
               .width = 2, .next_ts = 1};
    int rc = s_detect(job, path, &q);
    store_import_rd *rd = NULL;
    if (rc == STORE_OK)
        rc = store_import_lines_open(job, &rd, path, job->o->latin1);
    if (rc == STORE_OK)
        rc = store_import_each(job, rd, s_line, &q);
    if (rc == STORE_OK && job->st->items_untitled)
        rc = s_meta_no_text(job);
    store_import_rd_free(&rd);
    free(q.f);
    free(q.fl);
    return rc;
}

int store_import_sequences(store *db, const char *path, const store_import_opts *opts,
                           store_import_stats *stats, store_err *err)
{
    store_import_job job;
    const char *inputs[] = {path, opts->titles_path};
    int rc = store_import_job_start(&job, db, opts, stats, path, inputs, 2, err);
    if (rc != STORE_OK)
        return rc;
    store_import_titles *t = NULL;
    if (opts->titles_path) {
        t = store_import_titles_new();
        rc = t ? store_import_titles_file(&job, t, opts->titles_path)
               : store_import_job_nomem(&job);
    }
    if (rc == STORE_OK)
        rc = store_import_seq_file(&job, path, opts->seq_layout, t);
    stats->items_skipped = store_import_titles_unused(t);
    store_import_titles_free(&t);
    return store_import_job_finish(&job, rc);
}
