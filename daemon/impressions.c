/* impressions.c -- see impressions.h. */
#include "daemon/impressions.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"
#include "store/store.h"
#include "util/mask.h"
#include "util/rng.h"

#define S_BATCH 256         /* impressions per transaction at most */

typedef struct s_entry {
    int64_t ts;
    char user_hash[UTIL_MASK_HEX];
    char arm[SRV_ARM_NAME_MAX + 1];   /* "" without an experiment */
    int64_t model;
    int64_t *items;
    int n_items;
} s_entry;

struct srv_imp {
    srv_state *st;
    double ratio;
    char key_id[UTIL_MASK_KEY_ID];
    store *db;                  /* the thread's own read-write connection */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    s_entry *ring;              /* queue_max entries */
    int cap, head, len;
    int stopping;
};

int srv_imp_sampled(const srv_imp *log, uint64_t *rng)
{
    return log && util_rng_unit(util_splitmix64(rng)) < log->ratio;
}

int srv_imp_offer(srv_imp *log, const char *user, size_t user_len, const char *arm,
                  int64_t model, const int64_t *item_ids, int n)
{
    s_entry e = {.ts = (int64_t)time(NULL), .model = model, .n_items = n};
    if (log->st->mask_ids)
        util_mask_hex(&log->st->mask, user, user_len, e.user_hash);
    else
        snprintf(e.user_hash, sizeof e.user_hash, "%.*s", (int)user_len, user);
    snprintf(e.arm, sizeof e.arm, "%s", arm ? arm : "");
    e.items = malloc((size_t)(n ? n : 1) * sizeof *e.items);
    int queued = 0;
    if (e.items) {
        memcpy(e.items, item_ids, (size_t)n * sizeof *e.items);
        pthread_mutex_lock(&log->lock);
        if (log->len < log->cap) {
            log->ring[(log->head + log->len++) % log->cap] = e;
            queued = 1;
            pthread_cond_signal(&log->wake);
        }
        pthread_mutex_unlock(&log->lock);
    }
    if (!queued) {
        free(e.items);
        atomic_fetch_add(&log->st->counters.imp_dropped, 1);
        return -1;
    }
    return 0;
}

/* Write up to S_BATCH taken entries in one transaction. */
static void s_write(srv_imp *log, s_entry *batch, int n)
{
    store_impression rows[S_BATCH];
    for (int i = 0; i < n; i++)
        rows[i] = (store_impression){.ts = batch[i].ts, .user_hash = batch[i].user_hash,
                                     .key_id = log->key_id,
                                     .arm = batch[i].arm[0] ? batch[i].arm : NULL,
                                     .model = batch[i].model, .items = batch[i].items,
                                     .n_items = batch[i].n_items};
    store_err err;
    if (store_impressions_put(log->db, rows, n, &err) == STORE_OK) {
        atomic_fetch_add(&log->st->counters.imp_logged, (uint64_t)n);
    } else {
        atomic_fetch_add(&log->st->counters.imp_dropped, (uint64_t)n);
        srv_log(SRV_WARN, "msg=\"impressions not written\" n=%d reason=\"%s\"", n, err.msg);
    }
    for (int i = 0; i < n; i++)
        free(batch[i].items);
}

static void *s_thread(void *arg)
{
    srv_imp *log = arg;
    s_entry batch[S_BATCH];
    pthread_mutex_lock(&log->lock);
    for (;;) {
        while (!log->stopping && log->len == 0)
            pthread_cond_wait(&log->wake, &log->lock);
        if (log->len == 0)
            break;   /* stopping, and nothing left */
        int n = log->len < S_BATCH ? log->len : S_BATCH;
        for (int i = 0; i < n; i++)
            batch[i] = log->ring[(log->head + i) % log->cap];
        log->head = (log->head + n) % log->cap;
        log->len -= n;
        pthread_mutex_unlock(&log->lock);
        s_write(log, batch, n);
        pthread_mutex_lock(&log->lock);
    }
    pthread_mutex_unlock(&log->lock);
    return NULL;
}

srv_imp *srv_imp_start(srv_state *st, char *why, size_t why_len)
{
    why[0] = 0;
    if (st->cfg.exp_log_impressions <= 0)
        return NULL;
    srv_imp *log = calloc(1, sizeof *log);
    store_err err;
    if (!log || !(log->ring = calloc((size_t)st->cfg.exp_impression_queue, sizeof *log->ring))) {
        snprintf(why, why_len, "out of memory for the impression queue");
        free(log);
        return NULL;
    }
    log->st = st;
    log->ratio = st->cfg.exp_log_impressions;
    log->cap = st->cfg.exp_impression_queue;
    snprintf(log->key_id, sizeof log->key_id, "%s", st->mask_ids ? st->mask.key_id : "none");
    pthread_mutex_init(&log->lock, NULL);
    pthread_cond_init(&log->wake, NULL);
    if (store_open(&log->db, st->cfg.db, STORE_READWRITE | STORE_NOMIGRATE,
                   st->cfg.busy_timeout_ms, &err) != STORE_OK) {
        snprintf(why, why_len, "impressions: %s", err.msg);
    } else if (pthread_create(&log->thread, NULL, s_thread, log) != 0) {
        snprintf(why, why_len, "impressions: cannot start the thread");
    } else {
        return log;
    }
    store_close(&log->db);
    pthread_mutex_destroy(&log->lock);
    pthread_cond_destroy(&log->wake);
    free(log->ring);
    free(log);
    return NULL;
}

void srv_imp_stop(srv_imp **log_p)
{
    srv_imp *log = *log_p;
    if (!log)
        return;
    *log_p = NULL;
    pthread_mutex_lock(&log->lock);
    log->stopping = 1;
    pthread_cond_signal(&log->wake);
    pthread_mutex_unlock(&log->lock);
    pthread_join(log->thread, NULL);
    store_close(&log->db);
    pthread_mutex_destroy(&log->lock);
    pthread_cond_destroy(&log->wake);
    free(log->ring);
    free(log);
}
