/* cmd_inspect.c -- 'attnctl inspect DB': what a database holds, and what is
 * wrong with it.
 *
 * Read-only: it opens the database like the daemon does, so it can run
 * beside a live attnd or an import.  Each check is one query (or one scan of
 * the embedding blobs); every problem found is printed under "problems" and
 * makes the exit status 1, so scripts can gate a deploy on it.
 */
#include <getopt.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "tools/cmd.h"
#include "util/opt.h"

#define SHOW_MAX 5   /* offending rows named per problem */

typedef struct s_ctx {
    store *db;
    sqlite3 *h;
    int problems;
    int dim;
} s_ctx;

static void s_problem(s_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_problem(s_ctx *c, const char *fmt, ...)
{
    if (!c->problems)
        printf("problems:\n");
    c->problems++;
    printf("  - ");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* One integer from a query; -1 (and a problem) if the query fails. */
static long long s_int(s_ctx *c, const char *sql)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(c->h, sql, -1, &st, NULL) != SQLITE_OK) {
        s_problem(c, "query failed: %s (%s)", sqlite3_errmsg(c->h), sql);
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        s_problem(c, "query failed: %s (%s)", sqlite3_errmsg(c->h), sql);
    sqlite3_finalize(st);
    return v;
}

static void s_meta(s_ctx *c, const char *key, char *buf, size_t len)
{
    if (store_meta_get(c->db, key, buf, len, NULL) != STORE_OK)
        snprintf(buf, len, "-");
}

static int s_cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Events per user: min / median / max over users with any. */
static void s_per_user(s_ctx *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->h, "SELECT count(*) FROM interactions GROUP BY user_id", -1, &st,
                           NULL) != SQLITE_OK)
        return;
    size_t n = 0, cap = 0;
    long long *v = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            long long *p = realloc(v, cap * sizeof *p);
            if (!p)
                break;
            v = p;
        }
        v[n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (n) {
        qsort(v, n, sizeof *v, s_cmp_ll);
        double med = n % 2 ? (double)v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
        printf("per user      min %lld, median %g, max %lld events (%zu users with events)\n",
               v[0], med, v[n - 1], n);
    }
    free(v);
}

static void s_kinds(s_ctx *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->h, "SELECT kind, count(*) FROM interactions GROUP BY kind "
                           "ORDER BY 2 DESC LIMIT 8", -1, &st, NULL) != SQLITE_OK)
        return;
    const char *sep = " (";
    int any = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        printf("%s%s %lld", sep, (const char *)sqlite3_column_text(st, 0),
               (long long)sqlite3_column_int64(st, 1));
        sep = ", ";
        any = 1;
    }
    sqlite3_finalize(st);
    if (any)
        printf(")");
}

static void s_embedder(s_ctx *c)
{
    char buf[2048];
    if (store_meta_get(c->db, "embedder", buf, sizeof buf, NULL) != STORE_OK)
        snprintf(buf, sizeof buf, "(not recorded)");
    printf("embedder      %s\n", buf);
}

static void s_models(s_ctx *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->h, "SELECT version, created_at, heads, d_model, active, metrics, "
                           "CASE WHEN json_valid(config) THEN json_extract(config, '$.sa_len') END "
                           "FROM models ORDER BY version", -1, &st, NULL) != SQLITE_OK) {
        s_problem(c, "cannot read models: %s", sqlite3_errmsg(c->h));
        return;
    }
    int n = 0, active = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        long long ver = sqlite3_column_int64(st, 0);
        time_t created = (time_t)sqlite3_column_int64(st, 1);
        int heads = sqlite3_column_int(st, 2), d = sqlite3_column_int(st, 3);
        int act = sqlite3_column_int(st, 4);
        const char *metrics = (const char *)sqlite3_column_text(st, 5);
        int sa_len = sqlite3_column_int(st, 6);   /* NULL (no key, or bad JSON): 0 */
        char when[32], sa[40] = "";
        if (sa_len > 0)
            snprintf(sa, sizeof sa, ", self-attention window %d", sa_len);
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", gmtime_r(&created, &tm));
        printf("%s version %lld%s: d %d, %d head%s%s, created %s UTC%s%s%s\n",
               n ? "             " : "models       ", ver, ver == 0 ? " (identity)" : "",
               d, heads, heads == 1 ? "" : "s", sa, when, act ? ", ACTIVE" : "",
               metrics ? ", metrics " : "", metrics ? metrics : "");
        if (d != c->dim) {
            if (act)
                s_problem(c, "the active model (version %lld) has d %d but embedding_dim is "
                          "%d: the daemon cannot load it", ver, d, c->dim);
            else
                printf("              (version %lld is unusable with embedding_dim %d)\n", ver,
                       c->dim);
        }
        active += act;
        n++;
    }
    sqlite3_finalize(st);
    if (!n)
        printf("models        none\n");
    if (!active) {
        s_problem(c, "no model is active (activate one with 'attnctl model activate')");
        return;
    }
    /* The daemon loads the active version with every check there is: so do
     * we, so that "integrity ok" means it will serve. */
    attn_model *md = NULL;
    store_err err;
    if (store_model_load(c->db, STORE_MODEL_ACTIVE, &md, &err) != STORE_OK)
        s_problem(c, "the active model cannot be loaded: %s", err.msg);
    attn_model_free(&md);
}

/* Every blob: right length, all finite.  Names the first few offenders. */
static void s_blobs(s_ctx *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->h, "SELECT item_id, ext_id, embedding FROM items "
                           "WHERE embedding IS NOT NULL", -1, &st, NULL) != SQLITE_OK)
        return;
    long long bad_len = 0, bad_val = 0;
    size_t want = (size_t)c->dim * 4;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *b = sqlite3_column_blob(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        const char *ext = (const char *)sqlite3_column_text(st, 1);
        long long id = sqlite3_column_int64(st, 0);
        if (len != want) {
            if (bad_len++ < SHOW_MAX)
                s_problem(c, "item %lld ('%s'): embedding is %zu bytes, embedding_dim %d "
                          "needs %zu", id, ext ? ext : "?", len, c->dim, want);
            continue;
        }
        for (size_t i = 0; i < len; i += 4) {
            /* Little-endian float32: the exponent is all ones for inf/NaN. */
            uint32_t u = (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 |
                         (uint32_t)b[i + 3] << 24;
            if ((u & 0x7f800000u) == 0x7f800000u) {
                if (bad_val++ < SHOW_MAX)
                    s_problem(c, "item %lld ('%s'): embedding component %zu is not finite",
                              id, ext ? ext : "?", i / 4);
                break;
            }
        }
    }
    sqlite3_finalize(st);
    if (bad_len > SHOW_MAX)
        s_problem(c, "... %lld items in all have embeddings of the wrong length", bad_len);
    if (bad_val > SHOW_MAX)
        s_problem(c, "... %lld items in all have non-finite embedding values", bad_val);
}

static void s_integrity(s_ctx *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->h, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK) {
        s_problem(c, "quick_check: %s", sqlite3_errmsg(c->h));
        return;
    }
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r && strcmp(r, "ok") && n++ < SHOW_MAX)
            s_problem(c, "quick_check: %s", r);
    }
    sqlite3_finalize(st);
    s_blobs(c);
    long long v = s_int(c, "SELECT count(*) FROM interactions i "
                           "WHERE NOT EXISTS (SELECT 1 FROM items t WHERE t.item_id = i.item_id)");
    if (v > 0)
        s_problem(c, "%lld events point to missing items", v);
    v = s_int(c, "SELECT count(*) FROM interactions i "
                 "WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = i.user_id)");
    if (v > 0)
        s_problem(c, "%lld events point to missing users", v);
    v = s_int(c, "SELECT count(*) FROM users u "
                 "WHERE NOT EXISTS (SELECT 1 FROM interactions i WHERE i.user_id = u.user_id)");
    if (v > 0)
        s_problem(c, "%lld users have no events", v);
    v = s_int(c, "SELECT count(*) FROM interactions WHERE NOT (weight > 0)");
    if (v > 0)
        s_problem(c, "%lld events have a weight that is not > 0", v);
}

typedef struct s_args {
    const char *db;
} s_args;

static const util_opt s_pos[] = {
    {"DB", NULL, NULL, UTIL_OPT_STR(s_args, db)},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl inspect",
    .about =
        "Counts, embedding dimension and embedder, models, events per user,\n"
        "catalog_version, and integrity checks (PRAGMA quick_check, embedding blobs,\n"
        "dangling events, users without events).  Exit status 1 if any problem.",
    UTIL_OPT_ARGS(s_pos),
};

int cmd_inspect(int argc, char **argv)
{
    s_args a = {0};
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    store_err err;
    s_ctx c = {0};
    if (store_open(&c.db, a.db, STORE_READONLY, 5000, &err) != STORE_OK) {
        fprintf(stderr, "attnctl inspect: %s\n", err.msg);
        return 1;
    }
    c.h = store_sqlite(c.db);
    c.dim = store_dim(c.db);
    /* One read transaction: every number below describes the same snapshot,
     * even while an import commits beside us. */
    sqlite3_exec(c.h, "BEGIN", NULL, NULL, NULL);
    char catv[32];
    s_meta(&c, "catalog_version", catv, sizeof catv);
    long long items = s_int(&c, "SELECT count(*) FROM items");
    long long emb = s_int(&c, "SELECT count(*) FROM items WHERE embedding IS NOT NULL");
    long long users = s_int(&c, "SELECT count(*) FROM users");
    long long events = s_int(&c, "SELECT count(*) FROM interactions");
    long long schema = s_int(&c, "PRAGMA user_version");
    printf("database      %s (schema version %lld)\n", a.db, schema);
    printf("items         %lld (%lld embedded, %lld not embedded)\n", items, emb, items - emb);
    printf("users         %lld\n", users);
    printf("events        %lld", events);
    s_kinds(&c);
    printf("\n");
    s_per_user(&c);
    printf("embedding_dim %d\n", c.dim);
    s_embedder(&c);
    printf("catalog       version %s\n", catv);
    s_models(&c);
    s_integrity(&c);
    sqlite3_exec(c.h, "COMMIT", NULL, NULL, NULL);
    store_close(&c.db);
    if (c.problems) {
        printf("%d problem%s found\n", c.problems, c.problems == 1 ? "" : "s");
        return 1;
    }
    printf("integrity     ok\n");
    return 0;
}
