/* fz_model.c -- store_model_load on a model version whose row and tensors
 * are fuzzed, then the daemon's use of what loaded: tables over the
 * catalog and one scored request.
 *
 * Input, parts separated by FZ_MARK lines:
 *   part 0   "HEADS D_MODEL\n" then the models.config text
 *   part 1.. "NAME ROWS COLS DTYPE\n" then the tensor's blob
 * Rows the schema refuses (a CHECK, a repeated name) are left out, as a
 * writer could never have stored them.
 *
 * Invariants beyond "no crash":
 *   - a refusal carries a message naming the database;
 *   - a model that loads passes attn_model_check and has the catalog's d:
 *     the loader is the gate, so anything past it must be servable --
 *     tables build or fail with a status, scoring runs or fails with one.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/score.h"
#include "store/store.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/tu_daemon.h"

#define S_VERSION 9

static sqlite3 *s_writer;
static store *s_db;
static store_catalog *s_cat;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = fz_path("model.db");
    tu_make_db(path, 20, 5, 4);
    store_err err;
    if (store_open(&s_db, path, STORE_READONLY, 1000, &err) != STORE_OK ||
        store_catalog_load(s_db, &s_cat, &err) != STORE_OK)
        fz_fail(__FILE__, __LINE__, "open", "%s", err.msg);
    if (sqlite3_open(path, &s_writer) != SQLITE_OK ||
        sqlite3_exec(s_writer, "PRAGMA synchronous = OFF", NULL, NULL, NULL) != SQLITE_OK)
        fz_fail(__FILE__, __LINE__, "sqlite3_open", "%s", path);
    return 0;
}

static void s_exec(const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s_writer, sql, NULL, NULL, &msg) != SQLITE_OK)
        fz_fail(__FILE__, __LINE__, "sqlite3_exec", "%s: %s", sql, msg);
}

/* The header line of a part: its length, or the part's length without one. */
static size_t s_header(const fz_part *p, char *line, size_t cap)
{
    const uint8_t *nl = memchr(p->d, '\n', p->n);
    size_t n = nl ? (size_t)(nl - p->d) : p->n;
    size_t c = n < cap ? n : cap - 1;
    memcpy(line, p->d, c);
    line[c] = 0;
    return nl ? n + 1 : n;
}

static void s_insert_tensor(const fz_part *p)
{
    char line[128], name[64] = "", dtype[16] = "";
    long long rows = 0, cols = 0;
    size_t skip = s_header(p, line, sizeof line);
    if (sscanf(line, "%63s %lld %lld %15s", name, &rows, &cols, dtype) != 4)
        return;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s_writer, "INSERT INTO model_tensors(version, name, rows, cols, dtype, "
                       "data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1, &st, NULL);
    sqlite3_bind_int(st, 1, S_VERSION);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, rows);
    sqlite3_bind_int64(st, 4, cols);
    sqlite3_bind_text(st, 5, dtype, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 6, p->d + skip, (int)(p->n - skip), SQLITE_TRANSIENT);
    sqlite3_step(st);   /* a CHECK or a repeated name: the row is left out */
    sqlite3_finalize(st);
}

/* Replace version S_VERSION with the input's; 0, or -1 when the models row
 * itself is one the schema refuses. */
static int s_store(const uint8_t *data, size_t size)
{
    fz_part p[16];
    size_t n = fz_split(data, size, p, 16);
    char line[128];
    size_t skip = s_header(&p[0], line, sizeof line);
    long long heads = 1, d_model = 4;
    sscanf(line, "%lld %lld", &heads, &d_model);
    s_exec("BEGIN; DELETE FROM model_tensors WHERE version = 9; "
           "DELETE FROM models WHERE version = 9");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s_writer, "INSERT INTO models(version, created_at, heads, d_model, "
                       "config) VALUES (?1, 0, ?2, ?3, ?4)", -1, &st, NULL);
    sqlite3_bind_int(st, 1, S_VERSION);
    sqlite3_bind_int64(st, 2, heads);
    sqlite3_bind_int64(st, 3, d_model);
    sqlite3_bind_text(st, 4, (const char *)p[0].d + skip, (int)(p[0].n - skip),
                      SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s_exec("ROLLBACK");
        return -1;
    }
    for (size_t i = 1; i < n; i++)
        s_insert_tensor(&p[i]);
    s_exec("COMMIT");
    return 0;
}

/* What the daemon does with a model that loaded (daemon/snapshot.c, rank.c). */
static void s_serve(const attn_model *model, attn_precompute mode)
{
    size_t n = s_cat->n;
    int64_t *pidx = malloc(n * sizeof *pidx);
    for (size_t r = 0; r < n; r++)
        pidx[r] = attn_model_item_index(model, s_cat->item_id[r]);
    attn_tables *t = NULL;
    int rc = attn_tables_build(&t, model, s_cat->emb, n, (size_t)s_cat->dim, pidx, mode, 1);
    if (rc == ATTN_OK) {
        attn_limits lim = {.max_cand = 8, .max_hist = 8, .max_k = 4, .max_explain = 2};
        attn_scratch *s = attn_scratch_new(t, &lim);
        FZ_ASSERT(s != NULL, "no scratch for a model that built its tables");
        uint32_t hist[8 + ATTN_SA_MAX], cand[8];
        for (int i = 0; i < 8 + ATTN_SA_MAX; i++)
            hist[i] = (uint32_t)((i * 7) % n);
        for (int i = 0; i < 8; i++)
            cand[i] = (uint32_t)i;
        int nh = model->l_max < 5 ? model->l_max : 5;
        attn_request rq = {.hist = hist, .n_hist = nh, .n_ctx = model->sa_len > 0 ?
                           model->sa_len - 1 : 0, .cand = cand, .n_cand = 8, .k = 4,
                           .explain = 2};
        attn_result res;
        rc = attn_score(t, &rq, s, &res);
        FZ_ASSERT(rc == ATTN_OK || rc == ATTN_ERANGE, "attn_score: %s on a model that loaded",
                  attn_strerror(rc));
        attn_scratch_free(&s);
    }
    attn_tables_free(&t);
    free(pidx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (s_store(data, size) != 0)
        return 0;
    attn_model *model = NULL;
    store_err err = {0};
    int rc = store_model_load(s_db, S_VERSION, &model, &err);
    if (getenv("FZ_VERBOSE"))
        fprintf(stderr, "model: %s %s\n", store_strerror(rc), err.msg);
    if (rc != STORE_OK) {
        FZ_ASSERT(model == NULL, "a failed load returned a model");
        FZ_ASSERT(strstr(err.msg, "model.db"), "refusal does not name the database: %s",
                  err.msg);
        return 0;
    }
    char why[300];
    FZ_ASSERT(attn_model_check(model, why, sizeof why) == ATTN_OK,
              "a loaded model fails attn_model_check: %s", why);
    FZ_ASSERT(model->d == s_cat->dim, "loaded d=%d over a catalog of dim %d", model->d,
              s_cat->dim);
    s_serve(model, size & 1 ? ATTN_PRECOMPUTE_NONE : ATTN_PRECOMPUTE_ALL);
    attn_model_free(&model);
    return 0;
}
