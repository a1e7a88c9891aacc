/* exp_report.c -- see exp_report.h.  The steps:
 *
 *   1. read every impression since o->since into memory (hash, arm, items);
 *   2. hash every user's ext_id under each key given, sort, so that an
 *      impression's hash finds its user by binary search;
 *   3. per joined impression, the user's events in [ts, ts + window]: the
 *      best rank among the impression's items they touched;
 *   4. per (arm, user) the means of hit and reciprocal rank, then per arm
 *      the mean over users with its interval, and the differences from the
 *      control.
 */
#include "tools/exp_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

#define S_EVENTS_MAX 4096   /* events read per impression window */
#define S_Z95 1.959963984540054

typedef struct s_imp {
    int64_t ts;
    int arm;                 /* index into the report's arms */
    int key;                 /* index into o->keys, -1 unknown, -2 unmasked ("none") */
    char hash[UTIL_MASK_HEX];
    int64_t *items;
    int n_items;
    int64_t user_id;         /* after the join; -1 when none */
} s_imp;

typedef struct s_user_hash {
    char hash[UTIL_MASK_HEX];
    int64_t user_id;
} s_user_hash;

typedef struct s_ctx {
    const exp_report_opts *o;
    exp_report *r;
    s_imp *imp;
    size_t n, cap;
    s_user_hash *users;      /* per key: n_users entries, sorted by hash */
    size_t n_users, cap_users;
    int fail;
} s_ctx;

/* ---- 1. impressions ------------------------------------------------------- */

static int s_arm_index(exp_report *r, const char *name)
{
    const char *n = name ? name : "(none)";
    for (int a = 0; a < r->n_arms; a++)
        if (!strcmp(r->arm[a].name, n))
            return a;
    if (r->n_arms == EXP_ARMS_MAX)
        return -1;
    snprintf(r->arm[r->n_arms].name, sizeof r->arm[0].name, "%s", n);
    return r->n_arms++;
}

static void s_note_key(exp_report *r, const char *key_id)
{
    if (strstr(r->unknown_key_ids, key_id))
        return;
    size_t at = strlen(r->unknown_key_ids);
    snprintf(r->unknown_key_ids + at, sizeof r->unknown_key_ids - at, "%s%s", at ? "," : "",
             key_id);
}

static int s_on_imp(void *ctx, const store_impression *im)
{
    s_ctx *c = ctx;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        s_imp *grown = realloc(c->imp, cap * sizeof *grown);
        if (!grown)
            return c->fail = 1;
        c->imp = grown;
        c->cap = cap;
    }
    s_imp *p = &c->imp[c->n];
    memset(p, 0, sizeof *p);
    p->ts = im->ts;
    p->arm = s_arm_index(c->r, im->arm);
    p->key = !strcmp(im->key_id, "none") ? -2 : -1;
    for (int k = 0; p->key == -1 && k < c->o->n_keys; k++)
        if (!strcmp(c->o->keys[k].key_id, im->key_id))
            p->key = k;
    snprintf(p->hash, sizeof p->hash, "%s", im->user_hash);
    p->items = malloc((size_t)(im->n_items ? im->n_items : 1) * sizeof *p->items);
    if (!p->items || p->arm < 0)
        return c->fail = 1;
    memcpy(p->items, im->items, (size_t)im->n_items * sizeof *p->items);
    p->n_items = im->n_items;
    p->user_id = -1;
    c->n++;
    c->r->impressions++;
    c->r->arm[p->arm].impressions++;
    if (p->key == -1) {
        c->r->unknown_key++;
        s_note_key(c->r, im->key_id);
    }
    return 0;
}

/* ---- 2. users by hash ----------------------------------------------------- */

typedef struct s_hash_ctx {
    s_ctx *c;
    const util_mask *key;    /* NULL: the raw ext_id (impressions logged unmasked) */
} s_hash_ctx;

static int s_on_user(void *ctx, int64_t user_id, const char *ext)
{
    s_hash_ctx *h = ctx;
    s_ctx *c = h->c;
    if (c->n_users == c->cap_users) {
        size_t cap = c->cap_users ? c->cap_users * 2 : 4096;
        s_user_hash *grown = realloc(c->users, cap * sizeof *grown);
        if (!grown)
            return c->fail = 1;
        c->users = grown;
        c->cap_users = cap;
    }
    s_user_hash *u = &c->users[c->n_users++];
    if (h->key)
        util_mask_hex(h->key, ext, strlen(ext), u->hash);
    else
        snprintf(u->hash, sizeof u->hash, "%s", ext);
    u->user_id = user_id;
    return 0;
}

static int s_cmp_hash(const void *a, const void *b)
{
    return strcmp(((const s_user_hash *)a)->hash, ((const s_user_hash *)b)->hash);
}

/* Join the impressions hashed under key (index k; -2: unmasked). */
static int s_join_key(s_ctx *c, store *db, int k, store_err *err)
{
    c->n_users = 0;
    s_hash_ctx h = {.c = c, .key = k >= 0 ? &c->o->keys[k] : NULL};
    if (store_users_scan(db, s_on_user, &h, err) != STORE_OK || c->fail)
        return -1;
    qsort(c->users, c->n_users, sizeof *c->users, s_cmp_hash);
    for (size_t i = 0; i < c->n; i++) {
        s_imp *p = &c->imp[i];
        if (p->key != k)
            continue;
        s_user_hash want;
        snprintf(want.hash, sizeof want.hash, "%s", p->hash);
        const s_user_hash *u = bsearch(&want, c->users, c->n_users, sizeof *c->users,
                                       s_cmp_hash);
        if (u) {
            p->user_id = u->user_id;
            c->r->joined++;
        } else {
            c->r->unknown_user++;
        }
    }
    return 0;
}

/* ---- 3. outcomes ---------------------------------------------------------- */

/* Best (lowest) 1-based rank among the impression's items the user touched
 * in the window; 0 for none. */
static int s_best_rank(store *db, const s_imp *p, int64_t window, store_event *ev,
                       store_err *err, int *failed)
{
    int n = 0;
    if (store_events_between(db, p->user_id, p->ts, p->ts + window, S_EVENTS_MAX, ev, &n,
                             err) != STORE_OK) {
        *failed = 1;
        return 0;
    }
    int best = 0;
    for (int e = 0; e < n; e++)
        for (int r = 0; r < p->n_items && (!best || r + 1 < best); r++)
            if (p->items[r] == ev[e].item_id)
                best = r + 1;
    return best;
}

/* ---- 4. per arm ----------------------------------------------------------- */

typedef struct s_cell {      /* one (arm, user) */
    int arm;
    int64_t user_id;
    double hit, rr;
    int n;
} s_cell;

static int s_cmp_cell(const void *a, const void *b)
{
    const s_cell *x = a, *y = b;
    if (x->arm != y->arm)
        return x->arm < y->arm ? -1 : 1;
    return x->user_id < y->user_id ? -1 : x->user_id > y->user_id;
}

/* Per-user means, then per arm the mean over users and its interval. */
static int s_summarise(exp_report *r, s_cell *cell, size_t n_cell)
{
    qsort(cell, n_cell, sizeof *cell, s_cmp_cell);
    double *hit = malloc((n_cell ? n_cell : 1) * sizeof *hit);
    double *rr = malloc((n_cell ? n_cell : 1) * sizeof *rr);
    if (!hit || !rr) {
        free(hit);
        free(rr);
        return -1;
    }
    for (int a = 0; a < r->n_arms; a++) {
        int m = 0;
        for (size_t i = 0; i < n_cell;) {
            size_t j = i;
            double h = 0, q = 0;
            int cnt = 0;
            for (; j < n_cell && cell[j].arm == cell[i].arm && cell[j].user_id == cell[i].user_id;
                 j++) {
                h += cell[j].hit;
                q += cell[j].rr;
                cnt += cell[j].n;
            }
            if (cell[i].arm == a) {
                hit[m] = h / cnt;
                rr[m++] = q / cnt;
            }
            i = j;
        }
        r->arm[a].hit = attn_ab_mean(hit, m, S_Z95);
        r->arm[a].rr = attn_ab_mean(rr, m, S_Z95);
    }
    free(hit);
    free(rr);
    return 0;
}

static void s_compare(exp_report *r, const char *control)
{
    r->control = 0;
    int found = 0;
    for (int a = 0; a < r->n_arms && !found; a++)
        if (!strcmp(r->arm[a].name, control ? control : "control")) {
            r->control = a;
            found = 1;
        }
    for (int a = 0; !found && a < r->n_arms; a++)
        if (strcmp(r->arm[a].name, r->arm[r->control].name) < 0)
            r->control = a;
    const exp_arm_result *c = &r->arm[r->control];
    for (int a = 0; a < r->n_arms; a++) {
        r->arm[a].hit_diff = attn_ab_diff(&r->arm[a].hit, &c->hit, S_Z95);
        r->arm[a].rr_diff = attn_ab_diff(&r->arm[a].rr, &c->rr, S_Z95);
    }
}

static int s_outcomes(s_ctx *c, store *db, char *why, size_t why_len)
{
    store_err err = {0};
    store_event *ev = malloc(S_EVENTS_MAX * sizeof *ev);
    s_cell *cell = malloc((c->n ? c->n : 1) * sizeof *cell);
    size_t n_cell = 0;
    int failed = !ev || !cell;
    for (size_t i = 0; !failed && i < c->n; i++) {
        const s_imp *p = &c->imp[i];
        if (p->user_id < 0)
            continue;
        int best = s_best_rank(db, p, c->o->window, ev, &err, &failed);
        cell[n_cell++] = (s_cell){p->arm, p->user_id, best && best <= c->o->k,
                                  best ? 1.0 / best : 0.0, 1};
    }
    if (!failed)
        failed = s_summarise(c->r, cell, n_cell);
    free(ev);
    free(cell);
    if (failed)
        snprintf(why, why_len, "%s", err.msg[0] ? err.msg : "out of memory");
    return failed ? -1 : 0;
}

/* ---- the run -------------------------------------------------------------- */

static int s_join(s_ctx *c, store *db, char *why, size_t why_len)
{
    store_err err = {0};
    for (int k = -2; k < c->o->n_keys; k++) {
        if (k == -1)
            continue;
        int any = 0;
        for (size_t i = 0; i < c->n && !any; i++)
            any = c->imp[i].key == k;
        if (any && s_join_key(c, db, k, &err)) {
            snprintf(why, why_len, "%s", err.msg[0] ? err.msg : "out of memory");
            return -1;
        }
    }
    return 0;
}

static void s_free_ctx(s_ctx *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->imp[i].items);
    free(c->imp);
    free(c->users);
}

int exp_report_run(const exp_report_opts *o, exp_report **out, char *why, size_t why_len)
{
    *out = NULL;
    store *db = NULL;
    store_err err = {0};
    s_ctx c = {.o = o, .r = calloc(1, sizeof *c.r)};
    int rc = -1;
    if (!c.r)
        snprintf(why, why_len, "out of memory");
    else if (store_open(&db, o->db, STORE_READONLY, 5000, &err) != STORE_OK ||
             store_impressions_scan(db, o->since, s_on_imp, &c, &err) != STORE_OK)
        snprintf(why, why_len, "%s", c.fail ? "out of memory (or more than 16 arms)" : err.msg);
    else if (c.n == 0)
        snprintf(why, why_len, "%s: no impressions since %lld (attnd logs them with "
                 "experiment.log_impressions > 0)", o->db, (long long)o->since);
    else if (s_join(&c, db, why, why_len) == 0 && s_outcomes(&c, db, why, why_len) == 0)
        rc = 0;
    store_close(&db);
    s_free_ctx(&c);
    if (rc == 0) {
        s_compare(c.r, o->control);
        *out = c.r;
    } else {
        free(c.r);
    }
    return rc;
}

void exp_report_free(exp_report **r_p)
{
    free(*r_p);
    *r_p = NULL;
}
