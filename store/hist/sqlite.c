/* sqlite.c -- the default history backend: the attnd database itself.
 *
 * Reads are the store core's user lookup and history walk (both answered
 * from an index, statements prepared once per handle).  Each read runs in
 * its own implicit transaction, ended when its statement is reset, so a
 * reader in WAL mode sees every commit made before the read began: there is
 * no long-lived read snapshot to go stale.
 *
 * An append is one write transaction (BEGIN IMMEDIATE ... COMMIT) at the
 * handle's synchronous level, so the whole batch is durable, or nothing of
 * it is, when the call returns.  Dedupe is the schema's: the primary key
 * (user, ts, item, kind) and the unique index on event_id, both checked by
 * the insert itself (store_event_record) -- nothing is remembered here, so
 * it holds across restarts.  A user created for events that were then not
 * stored (all duplicates or vanished items) is dropped again before the
 * commit: `attnctl inspect` counts users without events as a problem.
 *
 * With checkpoint_pages > 0, commits never checkpoint: the WAL hook only
 * notes its size, and store_hist_idle (run by the writer once its replies
 * are out) checkpoints when it has grown past the threshold.  So the fsync
 * of the database file a checkpoint costs is never inside an
 * acknowledgement's latency.
 */
#include "store/hist/hist.h"

#include <stdlib.h>
#include <string.h>

typedef struct s_sqlite {
    store_hist base;
    store *db;
    int checkpoint_pages;   /* 0: SQLite's automatic checkpoints */
    int64_t *created;       /* users created by the running append, event not stored */
    int n_created, cap_created;
} s_sqlite;

static int s_read(store_hist *h, const char *user, size_t len, int max, store_event *ev, int *n,
                  store_err *err)
{
    s_sqlite *s = (s_sqlite *)h;
    int64_t uid;
    int rc = store_user_id(s->db, user, len, &uid, err);
    return rc == STORE_OK ? store_history(s->db, uid, max, ev, n, err) : rc;
}

/* The user's id, created if new; *created says so. */
static int s_user(s_sqlite *s, const char *user, int64_t *uid, int *created, store_err *err)
{
    *created = 0;
    store_err e;
    int rc = store_user_id(s->db, user, strlen(user), uid, &e);
    if (rc == STORE_ERR_NOTFOUND) {
        *created = 1;
        return store_user_put(s->db, user, uid, err);
    }
    if (rc != STORE_OK && err)
        *err = e;
    return rc;
}

static int s_note_created(s_sqlite *s, int64_t uid, store_err *err)
{
    if (s->n_created == s->cap_created) {
        int cap = s->cap_created ? 2 * s->cap_created : 64;
        int64_t *grown = realloc(s->created, (size_t)cap * sizeof *grown);
        if (!grown)
            return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", store_path(s->db));
        s->created = grown;
        s->cap_created = cap;
    }
    s->created[s->n_created++] = uid;
    return STORE_OK;
}

/* One event inside the open transaction. */
static int s_put(s_sqlite *s, const store_hist_event *e, uint8_t *outcome, store_err *err)
{
    int64_t uid;
    int created, stored = 0;
    int rc = s_user(s, e->user, &uid, &created, err);
    if (rc != STORE_OK)
        return rc;
    store_err e2;
    rc = store_event_record(s->db, uid, e->item_id, e->ts, e->kind, e->weight, e->event_id,
                            &stored, &e2);
    if (rc == STORE_ERR_NOTFOUND) {
        *outcome = STORE_HIST_NO_ITEM;   /* the user exists: it is the item */
    } else if (rc != STORE_OK) {
        if (err)
            *err = e2;
        return rc;
    } else {
        *outcome = stored ? STORE_HIST_STORED : STORE_HIST_DUPLICATE;
    }
    return created && !stored ? s_note_created(s, uid, err) : STORE_OK;
}

static int s_append(store_hist *h, const store_hist_event *ev, int n, uint8_t *outcome,
                    store_err *err)
{
    s_sqlite *s = (s_sqlite *)h;
    s->n_created = 0;
    int rc = store_begin(s->db, err);
    for (int i = 0; rc == STORE_OK && i < n; i++)
        rc = s_put(s, &ev[i], &outcome[i], err);
    for (int i = 0; rc == STORE_OK && i < s->n_created; i++)
        rc = store_user_drop_unused(s->db, s->created[i], NULL, err);
    if (rc == STORE_OK)
        rc = store_commit(s->db, err);
    if (rc != STORE_OK)
        store_rollback(s->db);
    return rc;
}

static int s_idle(store_hist *h, store_err *err)
{
    s_sqlite *s = (s_sqlite *)h;
    if (s->checkpoint_pages <= 0 || store_wal_pages(s->db) < s->checkpoint_pages)
        return STORE_OK;
    return store_wal_checkpoint(s->db, NULL, err);
}

static void s_close(store_hist *h)
{
    s_sqlite *s = (s_sqlite *)h;
    store_close(&s->db);
    free(s->created);
    free(s);
}

static const store_hist_ops s_reader = {"sqlite", s_read, NULL, NULL, s_close};
static const store_hist_ops s_writer = {"sqlite", s_read, s_append, s_idle, s_close};

int store_hist_sqlite_open(store_hist **out, const store_hist_sqlite_opts *o, store_err *err)
{
    *out = NULL;
    s_sqlite *s = calloc(1, sizeof *s);
    if (!s)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", o->path);
    s->base.ops = o->writable ? &s_writer : &s_reader;
    s->checkpoint_pages = o->checkpoint_pages;
    int flags = o->writable ? STORE_READWRITE | STORE_NOMIGRATE : STORE_READONLY;
    int rc = store_open(&s->db, o->path, flags, o->busy_ms, err);
    if (rc == STORE_OK && o->writable)
        rc = store_synchronous(s->db, o->synchronous_full, err);
    if (rc == STORE_OK && o->writable && o->checkpoint_pages > 0)
        rc = store_wal_autocheckpoint(s->db, 0, err);
    if (rc != STORE_OK) {
        s_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return STORE_OK;
}
