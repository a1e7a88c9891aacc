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
 * notes its size, and once it has grown past the threshold the append wakes
 * a checkpoint thread with a connection of its own, which copies the WAL
 * back into the database (PASSIVE: it waits for no reader) while the
 * writer sends its replies and stages the next batch.  A checkpoint costs
 * the copy and an fsync of the database file -- a third of the writer's
 * time when the writer ran it itself under a steady load -- and none of it
 * belongs in an acknowledgement's latency.
 *
 * Once the WAL holds twice the threshold, an append waits for a running
 * checkpoint before it begins.  That is not caution: SQLite starts the WAL
 * over only when a write transaction begins with every frame copied back,
 * so checkpoints that always run beside commits never finish one and the
 * WAL grows without bound (measured: 700 MB in a minute).  Below that
 * mark commits and checkpoints overlap freely (on a busy machine the
 * checkpoint thread waits for a core, and a writer waiting for it at every
 * batch lost a third of its time); at the mark the writer lets the
 * checkpoint finish, and the WAL starts over at that batch.  A failed
 * checkpoint is kept and reported by store_hist_idle; the next one retries.
 */
#include "store/hist/hist.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/proc.h"

/* The checkpoint thread and what it shares with the writer (under lock). */
typedef struct s_ckpt {
    store *db;              /* its own read-write connection */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* the writer -> the thread: work, or stop */
    pthread_cond_t done;    /* the thread -> the writer: no checkpoint running */
    int want, busy, stop;
    int idle;               /* run at SCHED_IDLE (store_hist_sqlite_opts) */
    int failed;             /* a checkpoint failed since store_hist_idle last looked */
    store_err err;          /* the latest failure */
} s_ckpt;

typedef struct s_sqlite {
    store_hist base;
    store *db;
    int checkpoint_pages;   /* 0: SQLite's automatic checkpoints */
    s_ckpt *ckpt;           /* NULL for readers and with checkpoint_pages 0 */
    int64_t *created;       /* users created by the running append, event not stored */
    int n_created, cap_created;
} s_sqlite;

static int s_read(store_hist *h, const char *user, size_t len, int max, store_event *ev, int *n,
                  store_err *err)
{
    return store_user_history(((s_sqlite *)h)->db, user, len, max, ev, n, err);
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
    if (s->ckpt && store_wal_pages(s->db) >= 2 * s->checkpoint_pages) {
        pthread_mutex_lock(&s->ckpt->lock);
        while (s->ckpt->want || s->ckpt->busy)
            pthread_cond_wait(&s->ckpt->done, &s->ckpt->lock);
        pthread_mutex_unlock(&s->ckpt->lock);
    }
    int rc = store_begin(s->db, err);
    for (int i = 0; rc == STORE_OK && i < n; i++)
        rc = s_put(s, &ev[i], &outcome[i], err);
    for (int i = 0; rc == STORE_OK && i < s->n_created; i++)
        rc = store_user_drop_unused(s->db, s->created[i], NULL, err);
    if (rc == STORE_OK)
        rc = store_commit(s->db, err);
    if (rc != STORE_OK) {
        store_rollback(s->db);
        return rc;
    }
    if (s->ckpt && store_wal_pages(s->db) >= s->checkpoint_pages) {
        pthread_mutex_lock(&s->ckpt->lock);
        s->ckpt->want = 1;
        pthread_cond_signal(&s->ckpt->wake);
        pthread_mutex_unlock(&s->ckpt->lock);
    }
    return STORE_OK;
}

/* ---- the checkpoint thread ------------------------------------------------ */

static void *s_ckpt_main(void *arg)
{
    s_ckpt *c = arg;
    pthread_setname_np(pthread_self(), "checkpoint");
    if (c->idle)
        util_sched_idle();   /* best effort: at worst it keeps its normal share */
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->want && !c->stop)
            pthread_cond_wait(&c->wake, &c->lock);
        if (c->stop)
            break;
        c->want = 0;
        c->busy = 1;
        pthread_mutex_unlock(&c->lock);
        store_err err;
        int rc = store_wal_checkpoint(c->db, NULL, &err);
        pthread_mutex_lock(&c->lock);
        c->busy = 0;
        pthread_cond_broadcast(&c->done);
        if (rc != STORE_OK) {
            c->failed = 1;
            c->err = err;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static void s_ckpt_stop(s_ckpt *c)
{
    pthread_mutex_lock(&c->lock);
    c->stop = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    store_close(&c->db);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->done);
    free(c);
}

static int s_ckpt_start(s_sqlite *s, const store_hist_sqlite_opts *o, store_err *err)
{
    s_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return store_fail(err, STORE_ERR_NOMEM, "%s: out of memory", o->path);
    int rc = store_open(&c->db, o->path, STORE_READWRITE | STORE_NOMIGRATE, o->busy_ms, err);
    if (rc != STORE_OK) {
        free(c);
        return rc;
    }
    c->idle = o->checkpoint_idle;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    pthread_cond_init(&c->done, NULL);
    if (pthread_create(&c->thread, NULL, s_ckpt_main, c) != 0) {
        store_close(&c->db);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->wake);
        pthread_cond_destroy(&c->done);
        free(c);
        return store_fail(err, STORE_ERR_NOMEM, "%s: cannot start the checkpoint thread",
                          o->path);
    }
    s->ckpt = c;
    return STORE_OK;
}

/* The checkpoint thread's latest failure, once. */
static int s_idle(store_hist *h, store_err *err)
{
    s_sqlite *s = (s_sqlite *)h;
    if (!s->ckpt)
        return STORE_OK;
    pthread_mutex_lock(&s->ckpt->lock);
    int failed = s->ckpt->failed;
    if (failed && err)
        *err = s->ckpt->err;
    s->ckpt->failed = 0;
    pthread_mutex_unlock(&s->ckpt->lock);
    return failed ? (err ? err->code : STORE_ERR_IO) : STORE_OK;
}

static void s_close(store_hist *h)
{
    s_sqlite *s = (s_sqlite *)h;
    if (s->ckpt)
        s_ckpt_stop(s->ckpt);
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
    if (rc == STORE_OK && o->writable && o->checkpoint_pages > 0)
        rc = s_ckpt_start(s, o, err);
    if (rc == STORE_OK && o->cache_kib > 0)
        store_cache_size(s->db, -(int64_t)o->cache_kib);
    if (rc != STORE_OK) {
        s_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return STORE_OK;
}
