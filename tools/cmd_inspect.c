/* cmd_inspect.c -- 'attnctl inspect DB': what a database holds, and what is
 * wrong with it.
 *
 * Read-only: it opens the database like the daemon does, so it can run
 * beside a live attnd or an import.  The counts and checks are the store's
 * (store_summary_read, store_check); every problem found is printed under
 * "problems" and makes the exit status 1, so scripts can gate a deploy on it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "tools/cmd.h"
#include "util/opt.h"

typedef struct s_ctx {
    store *db;
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

static void s_on_problem(void *ctx, const char *msg)
{
    s_problem(ctx, "%s", msg);
}

static void s_meta(s_ctx *c, const char *key, char *buf, size_t len)
{
    if (store_meta_get(c->db, key, buf, len, NULL) != STORE_OK)
        snprintf(buf, len, "-");
}

static void s_summary(s_ctx *c, const char *path)
{
    store_summary sum;
    store_err err;
    if (store_summary_read(c->db, &sum, &err) != STORE_OK) {
        s_problem(c, "query failed: %s", err.msg);
        return;
    }
    printf("database      %s (schema version %lld)\n", path, (long long)sum.schema_version);
    printf("items         %lld (%lld embedded, %lld not embedded)\n", (long long)sum.items,
           (long long)sum.items_embedded, (long long)(sum.items - sum.items_embedded));
    printf("users         %lld\n", (long long)sum.users);
    printf("events        %lld", (long long)sum.events);
    for (int i = 0; i < sum.n_kinds; i++)
        printf("%s%s %lld", i ? ", " : " (", sum.kind[i].name, (long long)sum.kind[i].events);
    printf("%s\n", sum.n_kinds ? ")" : "");
    if (sum.users_with_events)
        printf("per user      min %lld, median %g, max %lld events (%lld users with events)\n",
               (long long)sum.per_user_min, sum.per_user_median, (long long)sum.per_user_max,
               (long long)sum.users_with_events);
}

static void s_embedder(s_ctx *c)
{
    char buf[2048];
    if (store_meta_get(c->db, "embedder", buf, sizeof buf, NULL) != STORE_OK)
        snprintf(buf, sizeof buf, "(not recorded)");
    printf("embedder      %s\n", buf);
}

static void s_model_line(s_ctx *c, const store_model_info *mi, int first)
{
    char when[32], sa[64] = "";
    if (mi->sa_len > 0)
        snprintf(sa, sizeof sa, ", self-attention window %d", mi->sa_len);
    if (mi->ffn > 0)
        snprintf(sa + strlen(sa), sizeof sa - strlen(sa), ", feed-forward %d", mi->ffn);
    time_t created = (time_t)mi->created_at;
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", gmtime_r(&created, &tm));
    printf("%s version %lld%s: d %d, %d head%s%s, created %s UTC%s%s%s\n",
           first ? "models       " : "             ", (long long)mi->version,
           mi->version == 0 ? " (identity)" : "", mi->d_model, mi->heads,
           mi->heads == 1 ? "" : "s", sa, when, mi->active ? ", ACTIVE" : "",
           mi->metrics ? ", metrics " : "", mi->metrics ? mi->metrics : "");
    if (mi->d_model != c->dim) {
        if (mi->active)
            s_problem(c, "the active model (version %lld) has d %d but embedding_dim is "
                      "%d: the daemon cannot load it", (long long)mi->version, mi->d_model,
                      c->dim);
        else
            printf("              (version %lld is unusable with embedding_dim %d)\n",
                   (long long)mi->version, c->dim);
    }
}

static void s_models(s_ctx *c)
{
    store_model_info *list = NULL;
    size_t n = 0;
    store_err err;
    if (store_model_list(c->db, &list, &n, &err) != STORE_OK) {
        s_problem(c, "cannot read models: %s", err.msg);
        return;
    }
    int active = 0;
    for (size_t i = 0; i < n; i++) {
        s_model_line(c, &list[i], i == 0);
        active += list[i].active;
    }
    store_model_list_free(&list, n);
    if (!n)
        printf("models        none\n");
    if (!active) {
        s_problem(c, "no model is active (activate one with 'attnctl model activate')");
        return;
    }
    /* The daemon loads the active version with every check there is: so do
     * we, so that "integrity ok" means it will serve. */
    attn_model *md = NULL;
    if (store_model_load(c->db, STORE_MODEL_ACTIVE, &md, &err) != STORE_OK)
        s_problem(c, "the active model cannot be loaded: %s", err.msg);
    attn_model_free(&md);
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
    c.dim = store_dim(c.db);
    /* One read transaction: every number below describes the same snapshot,
     * even while an import commits beside us. */
    if (store_read_begin(c.db, &err) != STORE_OK)
        s_problem(&c, "%s", err.msg);
    char catv[32];
    s_meta(&c, "catalog_version", catv, sizeof catv);
    s_summary(&c, a.db);
    printf("embedding_dim %d\n", c.dim);
    s_embedder(&c);
    printf("catalog       version %s\n", catv);
    s_models(&c);
    store_check(c.db, s_on_problem, &c);
    store_read_end(c.db);
    store_close(&c.db);
    if (c.problems) {
        printf("%d problem%s found\n", c.problems, c.problems == 1 ? "" : "s");
        return 1;
    }
    printf("integrity     ok\n");
    return 0;
}
