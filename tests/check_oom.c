/* check_oom.c -- out of memory at every allocation of the paths attnd
 * lives on: opening the store, loading the catalog, building a snapshot,
 * importing, saving and loading a model, starting a worker and answering
 * requests.
 *
 * Each case runs its operation once cleanly, then again with allocation 1
 * failing, then 2, ... until a run meets no failure (tests/oom/alloc.h: our
 * own allocations, SQLite's and cJSON's).  Every run must end in success
 * or in a clean error that says why -- never a crash -- with nothing left
 * allocated, and a write that failed must leave the database exactly as it
 * was (a digest of every row).  Under SANITIZE=address LeakSanitizer checks
 * the same at exit; the live count checks it in every build.
 *
 * The distinct places of ours that met an injected failure are counted
 * across the cases and printed at the end (ATTN_OOM_SITES=FILE keeps the
 * list, as offsets for addr2line -e build/<flavour>/tests/check_oom).
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/model.h"
#include "daemon/arena.h"
#include "daemon/log.h"
#include "daemon/record.h"
#include "daemon/ops.h"
#include "daemon/snapshot.h"
#include "daemon/state.h"
#include "daemon/worker.h"
#include "store/import/import.h"
#include "store/hist/hist.h"
#include "store/store.h"
#include "tests/oom/alloc.h"
#include "tests/testutil.h"
#include "tests/tu_daemon.h"
#include "util/clock.h"

static char s_tmpl[300];   /* the generated database every case starts from */

static void s_setup(void)
{
    snprintf(s_tmpl, sizeof s_tmpl, "%s", tu_path("oom.db"));
    tu_make_db(s_tmpl, 40, 6, 8);
}

/* A private copy of the template, WAL files and all. */
static const char *s_copy(const char *name)
{
    const char *path = tu_path(name);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -f '%s' '%s-wal' '%s-shm' && cp '%s' '%s'", path, path, path,
             s_tmpl, path);
    ck_assert_int_eq(system(cmd), 0);
    return path;
}

/* FNV-1a over every row of every table: equal digests, equal databases. */
static uint64_t s_digest(const char *path)
{
    /* models.created_at is the clock's: a later save differs there alone. */
    static const char *const tables[] = {
        "meta", "items", "users", "interactions", "model_tensors",
        "(SELECT version, heads, d_model, config, metrics, active FROM models)"};
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    uint64_t x = 1469598103934665603ull;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY 1, 2", tables[t]);
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const unsigned char *b = sqlite3_column_blob(st, c);
                int n = sqlite3_column_bytes(st, c);
                x = (x ^ (uint64_t)sqlite3_column_type(st, c)) * 1099511628211ull;
                for (int i = 0; i < n; i++)
                    x = (x ^ b[i]) * 1099511628211ull;
            }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return x;
}

/* ---- the loop ---------------------------------------------------------------- */

typedef struct s_op {
    const char *name;
    void *ctx;
    /* The operation: 0, or an error with its reason in why. */
    int (*run)(void *ctx, char *why, size_t why_len);
    /* Called disarmed after each run: check the state, undo a success. */
    void (*after)(void *ctx, int rc, int injected);
} s_op;

static void s_keep_sites(void)
{
    FILE *f = fopen(tu_path("sites.txt"), "a");
    ck_assert_ptr_nonnull(f);
    tu_alloc_sites_write(f);
    fclose(f);
}

/* Which allocations of the clean run to fail, ascending: every one with
 * ATTN_OOM_ALL set, else at each distinct site the first, the middle and
 * the last of its allocations -- every place of ours that can meet a
 * failure meets one, in a few seconds rather than minutes. */
static uint64_t *s_plan(const tu_alloc_site *c, size_t total, size_t *n)
{
    uint64_t *plan = malloc((total + 1) * sizeof *plan);
    ck_assert_ptr_nonnull(plan);
    *n = 0;
    int all = getenv("ATTN_OOM_ALL") != NULL;
    for (size_t i = 0; i < total; i++) {
        size_t first = i, count = 0, seen = 0, last = i;
        for (size_t j = 0; j < total; j++)
            if (c[j].off == c[i].off && c[j].direct == c[i].direct) {
                first = count++ ? first : j;
                last = j;
                seen += j < i;
            }
        if (all || i == first || i == last || seen == count / 2)
            plan[(*n)++] = i + 1;
    }
    return plan;
}

static void s_loop(const s_op *op)
{
    char why[600] = "";
    int rc = op->run(op->ctx, why, sizeof why);   /* one-time lazy allocations happen here */
    ck_assert_msg(rc == 0, "%s fails without any injected failure: %s", op->name, why);
    op->after(op->ctx, rc, 0);
    tu_alloc_census(1);
    rc = op->run(op->ctx, why, sizeof why);
    tu_alloc_census(0);
    ck_assert_msg(rc == 0, "%s fails on its second run: %s", op->name, why);
    op->after(op->ctx, rc, 0);
    size_t total, n_plan, errors = 0;
    const tu_alloc_site *census = tu_alloc_census_get(&total);
    uint64_t *plan = s_plan(census, total, &n_plan);
    for (size_t k = 0; k < n_plan; k++) {
        size_t live = tu_alloc_live();
        uint64_t mark = tu_alloc_seq();
        why[0] = 0;
        tu_alloc_fail_at(plan[k]);
        rc = op->run(op->ctx, why, sizeof why);
        int hit = tu_alloc_failed();
        tu_alloc_fail_at(0);
        if (rc != 0) {
            ck_assert_msg(hit, "%s failed with no failure injected: %s", op->name, why);
            ck_assert_msg(why[0], "%s: allocation %llu failed and the error says nothing",
                          op->name, (unsigned long long)plan[k]);
            errors++;
        }
        op->after(op->ctx, rc, hit);
        if (tu_alloc_live() != live)
            tu_alloc_live_write(stderr, mark, 0);
        ck_assert_msg(tu_alloc_live() == live, "%s: %zu allocations leaked when allocation %llu "
                      "failed (%s)", op->name, tu_alloc_live() - live,
                      (unsigned long long)plan[k], rc ? why : "it still succeeded");
    }
    free(plan);
    size_t direct, lib;
    tu_alloc_sites(&direct, &lib);
    printf("oom %-16s %5zu allocations, %5zu failed one at a time: %zu clean errors, %zu "
           "recovered; %zu sites of ours met a failure so far (%zu direct)\n", op->name, total,
           n_plan, errors, n_plan - errors, direct + lib, direct);
    s_keep_sites();
}

/* SQLite's memory is the connections': all of it must be back once the
 * case has closed them (a statement left unfinalized keeps its connection). */
static size_t s_sqlite0;

static void s_sqlite_mark(void)
{
    s_sqlite0 = tu_alloc_live_sqlite();
}

static void s_sqlite_check(void)
{
    ck_assert_msg(tu_alloc_live_sqlite() == s_sqlite0, "%zu SQLite allocations outlive their "
                  "connections", tu_alloc_live_sqlite() - s_sqlite0);
}

/* ---- store: open, catalog ------------------------------------------------------ */

typedef struct s_store_ctx {
    char path[600];
    int flags;
    store *db;
} s_store_ctx;

static int s_open_run(void *ctx, char *why, size_t why_len)
{
    s_store_ctx *c = ctx;
    store *db = NULL;
    store_err err = {0};
    int rc = store_open(&db, c->path, c->flags, 1000, &err);
    if (rc != STORE_OK) {
        snprintf(why, why_len, "%s%s", err.msg, db ? " (and a handle came back)" : "");
        return rc;
    }
    store_close(&db);
    return 0;
}

static void s_nothing(void *ctx, int rc, int injected)
{
    (void)ctx;
    (void)rc;
    (void)injected;
}

START_TEST(open_store)
{
    s_store_ctx c = {.flags = STORE_READONLY};
    snprintf(c.path, sizeof c.path, "%s", s_copy("open.db"));
    s_loop(&(s_op){"open read-only", &c, s_open_run, s_nothing});
    c.flags = STORE_READWRITE;
    s_loop(&(s_op){"open read-write", &c, s_open_run, s_nothing});
}
END_TEST

static int s_catalog_run(void *ctx, char *why, size_t why_len)
{
    s_store_ctx *c = ctx;
    store_catalog *cat = NULL;
    store_titles *titles = NULL;
    float *pop = NULL;
    store_err err = {0};
    int rc = store_catalog_load(c->db, &cat, &err);
    if (rc == STORE_OK && !(pop = malloc(cat->n * sizeof *pop)))
        rc = store_fail(&err, STORE_ERR_NOMEM, "popularity: out of memory");
    if (rc == STORE_OK)
        rc = store_catalog_popularity(c->db, cat, pop, &err);
    if (rc == STORE_OK)
        rc = store_catalog_titles(c->db, cat, 64, &titles, &err);
    if (rc != STORE_OK)
        snprintf(why, why_len, "%s", err.msg);
    store_titles_free(&titles);
    free(pop);
    store_catalog_free(&cat);
    return rc;
}

START_TEST(load_catalog)
{
    s_store_ctx c = {0};
    snprintf(c.path, sizeof c.path, "%s", s_copy("catalog.db"));
    store_err err;
    ck_assert_int_eq(store_open(&c.db, c.path, STORE_READONLY, 1000, &err), STORE_OK);
    s_loop(&(s_op){"catalog", &c, s_catalog_run, s_nothing});
    store_close(&c.db);
}
END_TEST

/* ---- daemon: snapshot, worker, requests --------------------------------------------- */

static void s_config(srv_config *cfg, const char *db)
{
    char why[300];
    ck_assert_int_eq(cfg_defaults_checked(cfg, why, sizeof why), 0);
    ck_assert_int_eq(cfg_set(cfg, "model.build_threads", "1", why, sizeof why), 0);
    ck_assert_int_eq(cfg_set(cfg, "limits.max_candidates", "50", why, sizeof why), 0);
    snprintf(cfg->db, sizeof cfg->db, "%s", db);
}

static int s_snapshot_run(void *ctx, char *why, size_t why_len)
{
    srv_snapshot *snap = NULL;
    srv_experiment none = {0};
    int rc = srv_snapshot_build(ctx, &none, &snap, why, why_len);
    if (rc != 0 && snap)
        snprintf(why, why_len, "failed, and returned a snapshot");
    srv_snapshot_release(&snap);
    return rc;
}

START_TEST(build_snapshot)
{
    srv_config cfg;
    s_config(&cfg, s_copy("snap.db"));
    s_loop(&(s_op){"snapshot", &cfg, s_snapshot_run, s_nothing});
}
END_TEST

typedef struct s_serve {
    srv_state st;
    srv_wstats *wstats[2];
    srv_worker *w;
    const char *req;
    int outcome;
} s_serve;

static int s_worker_run(void *ctx, char *why, size_t why_len)
{
    s_serve *s = ctx;
    srv_worker *w = srv_worker_start(&s->st, 1, NULL, why, why_len);
    if (!w)
        return -1;
    srv_worker_join(&w);
    return 0;
}

/* One request through worker 0's handle step, as main runs it. */
static int s_request_run(void *ctx, char *why, size_t why_len)
{
    s_serve *s = ctx;
    srv_arena_bind(NULL);
    s->outcome = srv_worker_handle(s->w, util_now_ns(), SRV_ROLE_ADMIN, s->req, strlen(s->req));
    size_t len;
    const char *rep = srv_worker_reply(s->w, &len);
    srv_worker_done(s->w, util_now_ns());
    /* Parsed after the run (disarmed); here only a quick look for the verdict. */
    if (s->outcome == 0 && !strstr(rep, "\"ok\":true")) {
        snprintf(why, why_len, "%.*s", (int)(len < 500 ? len : 500), rep);
        return -1;
    }
    return 0;
}

/* Whatever happened, the client got one JSON object: ok, or an error whose
 * code says the daemon, not the request, failed. */
static void s_request_after(void *ctx, int rc, int injected)
{
    s_serve *s = ctx;
    (void)injected;
    if (s->outcome != 0)
        return;   /* reload: main answers it */
    size_t len;
    const char *rep = srv_worker_reply(s->w, &len);
    cJSON *r = cJSON_ParseWithLength(rep, len);
    ck_assert_msg(cJSON_IsObject(r), "not a JSON reply: %.300s", rep);
    if (rc != 0) {
        const char *code = tu_code(r);
        ck_assert_msg(!strcmp(code, "internal") || !strcmp(code, "store"),
                      "out of memory answered as '%s': %.300s", code, rep);
    }
    cJSON_Delete(r);
}

static void s_serve_start(s_serve *s, const char *db)
{
    memset(s, 0, sizeof *s);
    s_config(&s->st.cfg, db);
    char why[600];
    srv_snapshot *snap;
    ck_assert_msg(srv_snapshot_build(&s->st.cfg, &s->st.exp, &snap, why, sizeof why) == 0, "%s",
                  why);
    srv_snapshot_publish(snap);
    srv_arena_install_cjson();
    s->st.n_workers = 1;
    s->st.wstats = s->wstats;
    s->st.started_ns = util_now_ns();
    s->w = srv_worker_start(&s->st, 0, NULL, why, sizeof why);
    ck_assert_msg(s->w != NULL, "%s", why);
    s->wstats[0] = srv_worker_stats(s->w);
}

static void s_serve_stop(s_serve *s)
{
    srv_worker_join(&s->w);
    srv_snapshot_publish(NULL);
}

START_TEST(serve_requests)
{
    static const char *const reqs[][2] = {
        {"rank user", "{\"op\":\"rank\",\"id\":1,\"user\":\"u0002\",\"candidates\":[\"i00001\","
                      "\"i00002\",\"i00003\",\"i00031\",\"zz\"],\"k\":3,\"explain\":2,"
                      "\"exclude_seen\":true,\"titles\":true}"},
        {"rank history", "{\"op\":\"rank\",\"id\":\"h\",\"history\":[\"i00004\",\"i00005\"],"
                         "\"weights\":[1,2],\"candidates\":[\"i00001\",\"i00009\"]}"},
        {"rank cold", "{\"op\":\"rank\",\"user\":\"nobody\",\"candidates\":[\"i00001\"]}"},
        {"stats", "{\"op\":\"stats\"}"},
        {"info", "{\"op\":\"info\",\"id\":2}"},
        {"health", "{\"op\":\"health\"}"},
    };
    s_serve s;
    s_serve_start(&s, s_copy("serve.db"));
    s_loop(&(s_op){"worker start", &s, s_worker_run, s_nothing});
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        s.req = reqs[i][1];
        s_loop(&(s_op){reqs[i][0], &s, s_request_run, s_request_after});
    }
    s_serve_stop(&s);
}
END_TEST

/* ---- writes: imports and model versions ------------------------------------------- */

typedef struct s_write {
    const char *name;          /* the working copy's file name */
    char path[600];
    store *db;
    uint64_t before;           /* digest of the template */
    uint64_t clean;            /* digest after the clean run's success */
    const char *file;          /* import: the input */
    int events;                /* import: events, else items */
    attn_model *model;         /* model save */
} s_write;

static void s_write_open(s_write *w)
{
    store_err err;
    snprintf(w->path, sizeof w->path, "%s", s_copy(w->name));
    ck_assert_msg(store_open(&w->db, w->path, STORE_READWRITE, 1000, &err) == STORE_OK, "%s",
                  err.msg);
}

/* A failed write left every row as it was; a success (clean, or one that
 * recovered from the failure) wrote what the clean run wrote, and is then
 * undone by going back to the template. */
static void s_write_after(void *ctx, int rc, int injected)
{
    s_write *w = ctx;
    (void)injected;
    uint64_t d = s_digest(w->path);
    if (rc != 0) {
        ck_assert_msg(d == w->before, "a failed %s changed the database", w->name);
        return;
    }
    if (!w->clean)
        w->clean = d;
    ck_assert_msg(d == w->clean, "%s: a success after a failed allocation wrote something else",
                  w->name);
    store_close(&w->db);
    s_write_open(w);
}

static int s_import_run(void *ctx, char *why, size_t why_len)
{
    s_write *w = ctx;
    store_import_opts o = store_import_defaults();
    o.now = 1700000000;
    o.cache_kib = 256;
    store_import_stats st;
    store_err err = {0};
    int rc = w->events ? store_import_events(w->db, w->file, &o, &st, &err)
                       : store_import_items(w->db, w->file, &o, &st, &err);
    if (rc != STORE_OK)
        snprintf(why, why_len, "%s", err.msg);
    return rc;
}

START_TEST(import_items_and_events)
{
    char csv[8192] = "id,title,text,embedding\n";
    for (int i = 1; i <= 30; i++)
        snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "%s%05d,Title %d,text %d,\"%d 1 "
                 "0 0 0 0 0 %d\"\n", i % 3 ? "n" : "i", i, i, i, i, i % 5);
    char items[600], events[600];   /* tu_path's buffers rotate */
    snprintf(items, sizeof items, "%s", tu_path("items.csv"));
    tu_write_file(items, csv, strlen(csv));
    s_write w = {.name = "import.db", .file = items};
    s_write_open(&w);
    w.before = s_digest(w.path);
    s_loop(&(s_op){"import items", &w, s_import_run, s_write_after});
    store_close(&w.db);

    snprintf(csv, sizeof csv, "user,item,ts,kind,weight\n");
    for (int i = 1; i <= 40; i++)
        snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "u%04d,i%05d,%d,%s,%d\n",
                 1 + i % 9, 1 + i % 37, 1700000000 + i, i % 2 ? "view" : "like", 1 + i % 3);
    snprintf(events, sizeof events, "%s", tu_path("events.csv"));
    tu_write_file(events, csv, strlen(csv));
    s_write e = {.name = "events.db", .file = events, .events = 1};
    s_write_open(&e);
    e.before = s_digest(e.path);
    s_loop(&(s_op){"import events", &e, s_import_run, s_write_after});
    store_close(&e.db);
}
END_TEST

static attn_model *s_model(void)
{
    attn_model *md = attn_model_new(8, 8, 2, 12, 4, 1);
    ck_assert_ptr_nonnull(md);
    tu_rng r = {42};
    tu_fill_normal(&r, md->wq, 64, 0.3f);
    tu_fill_normal(&r, md->wk, 64, 0.3f);
    tu_fill_normal(&r, md->wv, 64, 0.3f);
    tu_fill_normal(&r, md->wo, 64, 0.3f);
    tu_fill_normal(&r, md->pos_bias, 12, 0.1f);
    tu_fill_normal(&r, md->residual, 32, 0.1f);
    for (int i = 0; i < 4; i++)
        md->item_ids[i] = 1 + 3 * i;
    return md;
}

static int s_save_run(void *ctx, char *why, size_t why_len)
{
    s_write *w = ctx;
    store_err err = {0};
    int64_t v;
    int rc = store_model_save(w->db, w->model, "{\"lr\":0.01}", "{\"hr10\":0.5}", 1, &v, &err);
    if (rc != STORE_OK)
        snprintf(why, why_len, "%s", err.msg);
    return rc;
}

typedef struct s_load {
    store *db;
    int64_t version;
} s_load;

static int s_load_run(void *ctx, char *why, size_t why_len)
{
    s_load *l = ctx;
    attn_model *md = NULL;
    store_err err = {0};
    int rc = store_model_load(l->db, l->version, &md, &err);
    if (rc != STORE_OK)
        snprintf(why, why_len, "%s%s", err.msg, md ? " (and a model came back)" : "");
    attn_model_free(&md);
    return rc;
}

START_TEST(save_and_load_model)
{
    s_write w = {.name = "model.db", .model = s_model()};
    s_write_open(&w);
    w.before = s_digest(w.path);
    s_loop(&(s_op){"model save", &w, s_save_run, s_write_after});
    /* The working copy is the template again: save once more to load it. */
    char why[600];
    ck_assert_int_eq(s_save_run(&w, why, sizeof why), 0);
    s_load l = {.db = w.db, .version = STORE_MODEL_ACTIVE};
    s_loop(&(s_op){"model load", &l, s_load_run, s_nothing});
    store_close(&w.db);
    attn_model_free(&w.model);
}
END_TEST

/* ---- the record op: stage, commit, answer (the writer's path) ---------------------- */

typedef struct s_rec {
    s_write w;                 /* the database, its digests */
    srv_state st;
    srv_wres res;              /* the writer's: history handle, item lookups, batch */
    srv_arena args;
    srv_json out;
} s_rec;

static void s_rec_open(s_rec *r)
{
    store_err err;
    store_hist_sqlite_opts o = {.path = r->w.path, .busy_ms = 1000, .writable = 1};
    ck_assert_msg(store_hist_sqlite_open(&r->res.hist, &o, &err) == STORE_OK, "%s", err.msg);
    ck_assert_msg(store_open(&r->res.db, r->w.path, STORE_READONLY, 1000, &err) == STORE_OK,
                  "%s", err.msg);
}

static void s_rec_close(s_rec *r)
{
    store_hist_close(&r->res.hist);
    store_close(&r->res.db);
}

/* One record request as the writer thread runs it. */
static int s_record_run(void *ctx, char *why, size_t why_len)
{
    s_rec *r = ctx;
    static const char req[] = "{\"op\":\"record\",\"id\":\"w\",\"events\":[{\"user\":\"u0003\","
        "\"item\":\"i00004\",\"ts\":1767225600,\"kind\":\"click\",\"event_id\":\"e1\"},"
        "{\"user\":\"new-user\",\"item\":\"i00005\",\"ts\":1767225601,\"weight\":2},"
        "{\"user\":\"u0003\",\"item\":\"nope\",\"ts\":1767225602}]}";
    srv_request rq;
    int code = srv_request_parse(req, sizeof req - 1, &r->st.cfg, &r->args, &rq, why, why_len);
    uint64_t stage[SRV_STAGE_COUNT] = {0};
    srv_call c = {.state = &r->st, .res = &r->res, .out = &r->out, .rq = &rq,
                  .t_recv = util_now_ns(), .stage = stage, .outcome = SRV_OUT_REPLY,
                  .role = SRV_ROLE_ADMIN, .arm = -1};
    if (code != SRV_OK)
        srv_call_error(&c, code, why);
    else
        rq.op->run(&c);
    srv_arena_reset(&r->args);
    if (c.outcome == SRV_OUT_DEFER) {
        srv_rec_batch_report rep;
        store_err err = {0};
        int rc = srv_rec_batch_commit(r->res.batch, r->res.hist, &rep, &err);
        srv_rec_batch_reply(r->res.batch, 0, rc, &err, &r->out);
        srv_rec_batch_reset(r->res.batch);
    }
    if (!strstr(r->out.buf, "\"ok\":true")) {
        snprintf(why, why_len, "%.500s", r->out.buf);
        return -1;
    }
    return 0;
}

/* The write's checks (s_write_after), with the writer's handles reopened
 * on the template after a success. */
static void s_record_after(void *ctx, int rc, int injected)
{
    s_rec *r = ctx;
    if (rc == 0)
        s_rec_close(r);
    s_write_after(&r->w, rc, injected);
    if (rc == 0) {
        store_close(&r->w.db);
        s_rec_open(r);
    }
}

START_TEST(record_events)
{
    static s_rec r;
    memset(&r, 0, sizeof r);
    r.w.name = "record.db";
    s_write_open(&r.w);
    store_close(&r.w.db);
    r.w.before = s_digest(r.w.path);
    s_config(&r.st.cfg, r.w.path);
    char why[600];
    srv_snapshot *snap;
    ck_assert_msg(srv_snapshot_build(&r.st.cfg, &r.st.exp, &snap, why, sizeof why) == 0, "%s",
                  why);
    srv_snapshot_publish(snap);
    srv_arena_install_cjson();
    r.res.index = -1;
    r.res.batch = srv_rec_batch_new(&r.st.cfg);
    ck_assert_ptr_nonnull(r.res.batch);
    ck_assert_int_eq(srv_arena_init(&r.args, 1 << 20), 0);
    ck_assert_int_eq(srv_json_init(&r.out, 1 << 16), 0);
    s_rec_open(&r);
    s_loop(&(s_op){"record", &r, s_record_run, s_record_after});
    s_rec_close(&r);
    srv_rec_batch_free(&r.res.batch);
    srv_arena_free(&r.args);
    srv_json_free(&r.out);
    srv_snapshot_publish(NULL);
}
END_TEST

/* Every test appended its sites; count the distinct ones across them all. */
START_TEST(sites_summary)
{
    FILE *f = fopen(tu_path("sites.txt"), "r");
    ck_assert_ptr_nonnull(f);
    static char line[128], seen[4096][128];
    size_t n = 0, direct = 0;
    while (fgets(line, sizeof line, f) && n < 4096) {
        line[strcspn(line, "\n")] = 0;
        size_t k = 0;
        while (k < n && strcmp(seen[k], line))
            k++;
        if (k < n)
            continue;
        snprintf(seen[n++], sizeof seen[0], "%s", line);
        direct += !strncmp(line, "direct", 6);
    }
    fclose(f);
    printf("oom: %zu distinct sites of ours met an injected allocation failure: %zu calling "
           "malloc and friends, %zu calling SQLite or cJSON\n", n, direct, n - direct);
    const char *keep = getenv("ATTN_OOM_SITES");
    FILE *out = keep ? fopen(keep, "w") : NULL;
    for (size_t k = 0; out && k < n; k++)
        fprintf(out, "%s\n", seen[k]);
    if (out)
        fclose(out);
    ck_assert_uint_gt(n, 0);
}
END_TEST

Suite *oom_suite(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("every allocation fails once");
    tcase_add_unchecked_fixture(tc, s_setup, NULL);
    tcase_add_checked_fixture(tc, s_sqlite_mark, s_sqlite_check);
    tcase_set_timeout(tc, 120 * tu_slowdown());
    tcase_add_test(tc, open_store);
    tcase_add_test(tc, load_catalog);
    tcase_add_test(tc, build_snapshot);
    tcase_add_test(tc, serve_requests);
    tcase_add_test(tc, import_items_and_events);
    tcase_add_test(tc, save_and_load_model);
    tcase_add_test(tc, record_events);
    tcase_add_test(tc, sites_summary);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tu_alloc_init();
    srv_log_set_level("error");
    return tu_run(oom_suite());
}
