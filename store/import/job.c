/* job.c -- the transaction, rejects and caches every importer shares.
 *
 * An import is all-or-nothing: store_import_job_start begins one write
 * transaction and store_import_job_finish either commits it or rolls it
 * back, so a bad line (without --skip-bad), a full disk or a kill leaves the
 * database as it was.  "Batched" therefore means cached statements and the
 * ext_id caches here, never partial commits.
 */
#include "store/import/job.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/utf8.h"

/* Entries per ext_id cache before it empties itself (about 100 MB at most):
 * big enough that MovieLens-sized files never miss twice. */
#define CACHE_MAX (1u << 20)

/* Records between progress calls: cheap enough to ignore, frequent enough
 * for a 4 Hz progress line at a million rows a second. */
#define PROGRESS_EVERY 4096

/* Page cache during an import, KiB: bounded, and enough for the indexes of
 * tens of millions of events to stay mostly in memory. */
#define IMPORT_CACHE_KIB (64 * 1024)

static void s_cache_restore(store_import_job *job)
{
    if (!job->cache_was)
        return;
    store_cache_size(job->db, job->cache_was);
    job->cache_was = 0;
}

/* Remove the rejects file left empty -- when it is a regular file: a
 * --rejects naming a link or a device (/dev/null, /dev/stdout) keeps it,
 * and as root unlink would take the device away. */
static void s_rejects_remove(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode))
        unlink(path);
}

/* Do a and b name the same existing file? */
static int s_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Options no row can make right: refused before anything is opened.  With
 * skip_bad, the rejects path (--rejects, else `beside` + ".rejects") is
 * written to stats->rejects_path, and refused if it would not fit whole. */
static int s_check_opts(const store_import_opts *o, const char *beside,
                        store_import_stats *stats, store_err *err)
{
    const char *kind = o->default_kind;
    size_t klen = kind ? strlen(kind) : 0;
    if (kind && (klen == 0 || klen > STORE_IMPORT_KIND_MAX || !util_utf8_valid(kind, klen)))
        return store_fail(err, STORE_ERR_INVAL, "--kind: '%.80s' is not a kind: UTF-8 of 1 "
                          "to %d bytes (it is %zu)", kind, STORE_IMPORT_KIND_MAX, klen);
    if (!o->skip_bad)
        return STORE_OK;
    size_t max = sizeof stats->rejects_path;
    int n = o->rejects_path ? snprintf(stats->rejects_path, max, "%s", o->rejects_path)
                            : snprintf(stats->rejects_path, max, "%s.rejects", beside);
    if (n < 0 || (size_t)n >= max) {
        stats->rejects_path[0] = '\0';
        return store_fail(err, STORE_ERR_INVAL, "the rejects file's path is %d bytes, at "
                          "most %zu: name a shorter one with --rejects", n, max - 1);
    }
    return STORE_OK;
}

int store_import_job_start(store_import_job *job, store *db, const store_import_opts *opts,
                           store_import_stats *stats, const char *rejects_beside,
                           const char *const *inputs, int n_inputs, store_err *err)
{
    memset(job, 0, sizeof *job);
    job->db = db;
    job->o = opts;
    job->st = stats;
    job->err = err;
    job->now = opts->now ? opts->now : (int64_t)time(NULL);
    memset(stats, 0, sizeof *stats);
    int rc = s_check_opts(opts, rejects_beside, stats, err);
    if (rc != STORE_OK)
        return rc;
    job->users = store_import_map_new(CACHE_MAX);
    job->items = store_import_map_new(CACHE_MAX);
    if (!job->users || !job->items) {
        store_import_map_free(&job->users);
        store_import_map_free(&job->items);
        if (err) {
            err->code = STORE_ERR_NOMEM;
            snprintf(err->msg, sizeof err->msg, "%s: import: out of memory", store_path(db));
        }
        return STORE_ERR_NOMEM;
    }
    if (opts->skip_bad) {
        const char *path = stats->rejects_path;
        /* Opening the rejects file truncates it: never an input, never the
         * database. */
        int clash = s_same_file(path, store_path(db));
        for (int i = 0; i < n_inputs && !clash; i++)
            clash = s_same_file(path, inputs[i]);
        if (clash) {
            if (err) {
                err->code = STORE_ERR_INVAL;
                snprintf(err->msg, sizeof err->msg, "%.300s: the rejects file would overwrite "
                         "an input of the import; choose another --rejects", path);
            }
            store_import_map_free(&job->users);
            store_import_map_free(&job->items);
            return STORE_ERR_INVAL;
        }
        /* Truncated now, removed at the end if nothing was rejected: after a
         * run the file exists exactly when that run rejected something. */
        job->rejects = fopen(path, "w");
        if (!job->rejects) {
            if (err) {
                err->code = STORE_ERR_IO;
                snprintf(err->msg, sizeof err->msg, "%.300s: cannot create the rejects file: %s",
                         path, strerror(errno));
            }
            store_import_map_free(&job->users);
            store_import_map_free(&job->items);
            return STORE_ERR_IO;
        }
    }
    /* A bigger page cache for the length of the import: inserts land all
     * over the interactions primary key, and with SQLite's default 2 MB the
     * transaction spills and re-reads pages long before it commits.  The
     * previous size comes back in store_import_job_finish. */
    job->cache_was = store_cache_size(db, -(int64_t)(opts->cache_kib > 0 ? opts->cache_kib
                                                                          : IMPORT_CACHE_KIB));
    rc = store_begin(db, err);
    if (rc != STORE_OK) {
        s_cache_restore(job);
        if (job->rejects) {
            fclose(job->rejects);
            s_rejects_remove(stats->rejects_path);
        }
        store_import_map_free(&job->users);
        store_import_map_free(&job->items);
    }
    return rc;
}

static int s_meta_embedder(store_import_job *job)
{
    /* The embeddings now in the catalog came from a file, not from our
     * embedder: say so, so that inspect does not show stale parameters. */
    char json[600];
    char src[300];
    size_t o = 0;
    for (const char *p = job->embed_source; *p && o + 3 < sizeof src; p++) {
        if (*p == '"' || *p == '\\')
            src[o++] = '\\';
        src[o++] = (unsigned char)*p < 0x20 ? '?' : *p;
    }
    src[o] = '\0';
    snprintf(json, sizeof json, "{\"method\":\"imported\",\"source\":\"%s\",\"dim\":%d}", src,
             store_dim(job->db));
    return store_meta_set(job->db, "embedder", json, job->err);
}

/* The rejects written out before the commit, so that a rejects file that
 * cannot be written (a full disk) rolls the import back like any other
 * failure instead of failing after the data is committed. */
static int s_rejects_flush(store_import_job *job)
{
    if (!job->rejects)
        return STORE_OK;
    int flushed = fflush(job->rejects) == 0, e = errno;
    if (flushed && !ferror(job->rejects))
        return STORE_OK;
    if (job->err) {
        job->err->code = STORE_ERR_IO;
        snprintf(job->err->msg, sizeof job->err->msg, "%.300s: writing the rejects file "
                 "failed: %s", job->st->rejects_path,
                 flushed ? "an earlier write failed" : strerror(e));
    }
    return STORE_ERR_IO;
}

int store_import_job_finish(store_import_job *job, int rc)
{
    if (rc == STORE_OK)
        rc = s_rejects_flush(job);
    if (rc == STORE_OK && job->embeddings_from)
        rc = s_meta_embedder(job);
    if (rc == STORE_OK && job->items_changed)
        rc = store_catalog_touch(job->db, job->err);
    if (rc == STORE_OK)
        rc = store_commit(job->db, job->err);
    if (rc != STORE_OK)
        store_rollback(job->db);
    s_cache_restore(job);
    if (job->rejects) {
        if (fclose(job->rejects) != 0 && rc == STORE_OK) {
            /* Flushed before the commit, so only close itself failed (a
             * network file system): the data is committed, the reject list
             * may be incomplete.  Say so rather than pretend it is whole. */
            if (job->err) {
                job->err->code = STORE_ERR_IO;
                snprintf(job->err->msg, sizeof job->err->msg,
                         "%.300s: writing the rejects file failed: %s (the import itself "
                         "was committed)", job->st->rejects_path, strerror(errno));
            }
            rc = STORE_ERR_IO;
        }
        job->rejects = NULL;
        if (job->st->rejected == 0) {
            s_rejects_remove(job->st->rejects_path);
            job->st->rejects_path[0] = '\0';
        }
    }
    store_import_map_free(&job->users);
    store_import_map_free(&job->items);
    return rc;
}

int store_import_job_open(store_import_job *job, store_import_rd **rd, const char *path,
                          store_import_rd_opts *ro)
{
    const store_import_opts *o = job->o;
    if (!ro->format)
        ro->format = o->format ? o->format : store_import_format_of(path);
    if (!ro->format) {
        if (job->err) {
            job->err->code = STORE_ERR_INVAL;
            snprintf(job->err->msg, sizeof job->err->msg,
                     "%s: unknown format (extension not .csv/.tsv/.jsonl/.ndjson); "
                     "say --format csv or --format jsonl", path);
        }
        return STORE_ERR_INVAL;
    }
    if (!ro->delim) {
        size_t n = strlen(path);
        ro->delim = o->delim ? o->delim
                    : n >= 4 && !strcasecmp(path + n - 4, ".tsv") ? '\t' : ',';
    }
    if (!ro->no_header)
        ro->no_header = o->no_header;
    if (!ro->latin1)
        ro->latin1 = o->latin1;
    return store_import_rd_open(rd, path, ro, job->err);
}

static void s_write_reject(store_import_job *job, const char *raw, size_t len)
{
    fwrite(raw, 1, len, job->rejects);
    if (len == 0 || raw[len - 1] != '\n')
        fputc('\n', job->rejects);
}

int store_import_lines_open(store_import_job *job, store_import_rd **rd, const char *path,
                            int latin1)
{
    /* CSV with neither quoting nor a separator: one field. */
    store_import_rd_opts ro = {.format = STORE_IMPORT_CSV, .delim = (char)-1, .quote = (char)-1,
                               .no_header = 1, .latin1 = latin1};
    int rc = store_import_rd_open(rd, path, &ro, job->err);
    if (rc == STORE_OK && store_import_rd_column(*rd, "1", NULL) != 0) {
        store_import_rd_free(rd);
        rc = store_import_job_nomem(job);    /* the first handle is 0 */
    }
    return rc;
}

int store_import_line(store_import_job *job, store_import_rd *rd, const char **s, size_t *len)
{
    char why[400];
    store_import_val v;
    store_import_rd_get(rd, 0, &v);
    if (store_import_val_str(&v, 1, s, len, why, sizeof why) != STORE_OK)
        return store_import_job_fail(job, rd, why);
    return STORE_OK;
}

int store_import_job_bad_raw(store_import_job *job, const char *raw, size_t len, int rc)
{
    int data_error = rc == STORE_ERR_INVAL || rc == STORE_ERR_NOTFOUND || rc == STORE_ERR_DIM;
    if (!job->rejects || !data_error)
        return rc;
    /* A comment line with the reason, then the record as read: delete the
     * '#' lines and the file is importable again once the data is fixed. */
    fprintf(job->rejects, "# %s\n", job->err ? job->err->msg : "rejected");
    s_write_reject(job, raw, len);
    job->st->rejected++;
    return STORE_OK;
}

int store_import_job_bad(store_import_job *job, store_import_rd *rd, int rc)
{
    if (!job->rejects)
        return rc;
    if (job->hdr_written != rd) {
        size_t hl;
        const char *h = store_import_rd_header_raw(rd, &hl);
        if (h) {
            s_write_reject(job, h, hl);
        }
        job->hdr_written = rd;
    }
    size_t len;
    const char *raw = store_import_rd_raw(rd, &len);
    return store_import_job_bad_raw(job, raw, len, rc);
}

int store_import_job_fail(store_import_job *job, store_import_rd *rd, const char *why)
{
    if (job->err) {
        job->err->code = STORE_ERR_INVAL;
        snprintf(job->err->msg, sizeof job->err->msg, "%s:%ld: %s",
                 store_import_rd_label(rd), store_import_rd_line(rd), why);
    }
    return STORE_ERR_INVAL;
}

void store_import_job_where(store_import_job *job, store_import_rd *rd)
{
    if (!job->err)
        return;
    char msg[sizeof job->err->msg + 300];
    snprintf(msg, sizeof msg, "%.200s:%ld: %s", store_import_rd_label(rd),
             store_import_rd_line(rd), job->err->msg);
    /* Truncation is fine: the start names the place and the reason. */
    size_t n = strlen(msg);
    if (n >= sizeof job->err->msg)
        n = sizeof job->err->msg - 1;
    memcpy(job->err->msg, msg, n);
    job->err->msg[n] = '\0';
}

void store_import_job_progress(store_import_job *job, store_import_rd *rd, uint64_t rows,
                               int done)
{
    if (!job->o->progress || (!done && rows % PROGRESS_EVERY))
        return;
    store_import_progress p = {
        .file = store_import_rd_label(rd),
        .rows = rows,
        .rejected = job->st->rejected,
        .bytes_done = store_import_rd_bytes(rd),
        .bytes_total = store_import_rd_size(rd),
        .done = done,
    };
    job->o->progress(job->o->progress_ctx, &p);
}

int store_import_job_item(store_import_job *job, const char *ext, size_t len, int64_t *id)
{
    if (store_import_map_get(job->items, ext, len, id))
        return STORE_OK;
    store_err e;
    int rc = store_item_id(job->db, ext, len, id, &e);
    if (rc == STORE_ERR_NOTFOUND)
        return rc;
    if (rc != STORE_OK) {
        if (job->err)
            *job->err = e;
        return rc;
    }
    return store_import_map_put(job->items, ext, len, *id);
}

void store_import_job_item_written(store_import_job *job, int existed)
{
    job->items_changed = 1;
    if (existed)
        job->st->items_updated++;
    else
        job->st->items_created++;
}

int store_import_job_item_seen(store_import_job *job, const char *ext, size_t len, int64_t id)
{
    return store_import_map_put(job->items, ext, len, id);
}

int store_import_job_user(store_import_job *job, const char *ext, size_t len, int64_t *id)
{
    if (store_import_map_get(job->users, ext, len, id))
        return STORE_OK;
    store_err e;
    int rc = store_user_id(job->db, ext, len, id, &e);
    if (rc == STORE_ERR_NOTFOUND) {
        /* ext is NUL-terminated by the decoders (store_import_val_str). */
        rc = store_user_put(job->db, ext, id, job->err);
        if (rc != STORE_OK)
            return rc;
        job->st->users_created++;
    } else if (rc != STORE_OK) {
        if (job->err)
            *job->err = e;
        return rc;
    }
    return store_import_map_put(job->users, ext, len, *id);
}

store_import_opts store_import_defaults(void)
{
    store_import_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

int store_import_format_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/'))
        return STORE_IMPORT_AUTO;
    if (!strcasecmp(dot, ".csv") || !strcasecmp(dot, ".tsv") || !strcasecmp(dot, ".txt"))
        return STORE_IMPORT_CSV;
    if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson") || !strcasecmp(dot, ".json"))
        return STORE_IMPORT_JSONL;
    return STORE_IMPORT_AUTO;
}

int store_import_job_column(store_import_job *job, store_import_rd *rd, int *col,
                            int required, const char *what, const char *spec,
                            const char *flag, const char *const *defaults)
{
    *col = store_import_rd_column(rd, spec, defaults);
    if (*col == -2)
        return store_import_job_nomem(job);
    if (*col >= 0 || (!spec && !required))
        return STORE_OK;
    if (!job->err)
        return STORE_ERR_INVAL;
    size_t hl = 0;
    const char *h = store_import_rd_header_raw(rd, &hl);
    while (hl && (h[hl - 1] == '\n' || h[hl - 1] == '\r'))
        hl--;
    char looked[200] = "";
    if (spec)
        snprintf(looked, sizeof looked, "'%s'", spec);
    else
        for (size_t i = 0, o = 0; defaults && defaults[i] && o < sizeof looked; i++)
            o += (size_t)snprintf(looked + o, sizeof looked - o, "%s%s", i ? ", " : "",
                                  defaults[i]);
    job->err->code = STORE_ERR_INVAL;
    snprintf(job->err->msg, sizeof job->err->msg,
             "%s: no %s column (looked for %s; the header is '%.*s'); name it with %s",
             store_import_rd_label(rd), what, looked, (int)(hl > 200 ? 200 : hl),
             h ? h : "", flag);
    return STORE_ERR_INVAL;
}

int store_import_job_nomem(store_import_job *job)
{
    if (job->err) {
        job->err->code = STORE_ERR_NOMEM;
        snprintf(job->err->msg, sizeof job->err->msg, "%s: import: out of memory",
                 store_path(job->db));
    }
    return STORE_ERR_NOMEM;
}

int store_import_each(store_import_job *job, store_import_rd *rd, store_import_row_fn row,
                      void *ctx)
{
    int rc = STORE_OK;
    uint64_t rows = 0;
    while (rc == STORE_OK) {
        int got = 0;
        rc = store_import_rd_next(rd, &got, job->err);
        if (!got)
            break;               /* end of file, or a failure outside any record */
        rows++;
        if (rc == STORE_OK)
            rc = row(job, rd, ctx);
        if (rc == STORE_IMPORT_NOT_DATA)
            rc = STORE_OK;
        else
            job->st->rows++;
        if (rc != STORE_OK)
            rc = store_import_job_bad(job, rd, rc);
        store_import_job_progress(job, rd, rows, 0);
    }
    if (rc == STORE_OK)
        store_import_job_progress(job, rd, rows, 1);
    return rc;
}
