/* dataset.h -- every user's time-ordered history, for training and evaluation.
 *
 *     store_catalog *cat;  store_catalog_load(db, &cat, &err);
 *     store_dataset *ds;
 *     if (store_dataset_load(db, cat, &ds, &err) != STORE_OK)
 *         die("%s", err.msg);
 *     attn_eval_run(&ds->seqs, ...);            // rows index cat->emb
 *     store_dataset_free(&ds);
 *
 * One scan of interactions in chronological order -- ORDER BY user_id, ts,
 * item_id: events in the same second are ordered by item id, the rule the
 * daemon's history query (newest first: ts DESC, item_id DESC) follows too,
 * so a model is trained and measured on exactly the order it is served.
 * Events of one (user, ts, item) with different kinds stay separate events
 * (kind orders them, so the load is deterministic).
 *
 * Items are named by catalog row (store_catalog_row): events of items the
 * catalog does not hold (not embedded yet) are left out and counted, since
 * nothing can score them.
 */
#ifndef STORE_DATASET_H
#define STORE_DATASET_H

#include <stdint.h>
#include "attn/eval.h"
#include "store/store.h"

typedef struct store_dataset {
    attn_seqs seqs;             /* the view attn/ works on; arrays below */
    int64_t *user_id;           /* n_users: users.user_id of each sequence */
    uint64_t *off;              /* n_users + 1 */
    uint32_t *row;              /* n_events catalog rows, chronological per user */
    float *weight;              /* n_events */
    uint64_t n_events;          /* events kept */
    uint64_t n_unembedded;      /* events skipped: item not in the catalog */
    uint32_t n_single;          /* users with exactly one event */
} store_dataset;

/* Load every user with at least one event of a catalog item.  weight must
 * be finite and > 0 (else STORE_ERR_CORRUPT naming the row).  On failure
 * *out is NULL and nothing is left allocated. */
int store_dataset_load(store *db, const store_catalog *cat, store_dataset **out,
                       store_err *err);

/* Accepts NULL; sets *ds_p = NULL. */
void store_dataset_free(store_dataset **ds_p);

#endif
