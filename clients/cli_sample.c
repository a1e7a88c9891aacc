/* cli_sample.c -- where attn-load's requests come from.
 *
 * From a database: every user and every embedded item's ext_id is read once
 * (store_ext_ids_file: read-only, no catalog machinery, no lock the daemon
 * would meet), kept as ready-quoted JSON strings, and each request is
 * assembled by hand into one buffer: at thousands of requests a second
 * cJSON would cost more than the sampling.  Candidates (and anonymous
 * histories) are distinct items drawn by a partial Fisher-Yates shuffle of a
 * persistent permutation: O(N) per request, no rejection loop, uniform
 * whatever the previous draws were.
 *
 * Mixed in, with cli_sampler_set_record: `record` requests of random
 * existing users and random items at the current time, each event with an
 * event_id unique to the run ("<run id>-<n>"), so that every one is new.
 *
 * From a file: JSONL requests, "id" removed (the load generator numbers its
 * own), replayed in order and cycled.
 */
#include "clients/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/store.h"
#include "util/rng.h"

struct cli_sampler {
    char **user;          /* quoted user ext_ids */
    size_t n_user;
    char **item;          /* quoted item ext_ids */
    size_t n_item;
    uint32_t *perm;       /* a permutation of item indices, reshuffled in part per draw */
    int candidates;       /* per request */
    int history;          /* anonymous history length, 0 = "user" requests */
    int k, explain;
    uint64_t rng;         /* xorshift64 state */
    double record_ratio;  /* share of requests that are `record` (0: none) */
    int record_events;    /* events per record request */
    uint64_t run_id;      /* event_ids are "<run_id>-<seq>": unique across runs */
    uint64_t record_seq;  /* events sampled so far */
    char **line;          /* file mode: request bodies without "id" */
    size_t n_line, next;
    cli_buf buf;          /* the request being built */
};

static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void cli_sampler_destroy(cli_sampler **self_p)
{
    if (!self_p || !*self_p)
        return;
    cli_sampler *s = *self_p;
    s_strv_free(s->user, s->n_user);
    s_strv_free(s->item, s->n_item);
    s_strv_free(s->line, s->n_line);
    free(s->perm);
    cli_buf_free(&s->buf);
    free(s);
    *self_p = NULL;
}

/* A growable list of JSON-quoted ids. */
typedef struct s_ids {
    char ***v;
    size_t *n;
    size_t cap;
} s_ids;

static int s_push(s_ids *l, const char *ext, cli_buf *q)
{
    if (*l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        char **grown = realloc(*l->v, l->cap * sizeof *grown);
        if (!grown)
            return -1;
        *l->v = grown;
    }
    cli_buf_reset(q);
    if (cli_buf_json_str(q, ext) || !((*l->v)[*l->n] = strdup(q->data)))
        return -1;
    (*l->n)++;
    return 0;
}

typedef struct s_load {
    s_ids item, user;
    cli_buf q;             /* the id being quoted */
} s_load;

/* store_ext_ids_file's callback: keep each id ready-quoted. */
static int s_on_id(void *ctx, int kind, const char *ext)
{
    s_load *ld = ctx;
    return s_push(kind == STORE_EXT_USER ? &ld->user : &ld->item, ext, &ld->q)
               ? STORE_ERR_NOMEM : STORE_OK;
}

cli_sampler *cli_sampler_db(const char *path, int candidates, int history, int k, int explain,
                            uint64_t seed, cli_err *err)
{
    if (candidates < 1 || history < 0 || k < 1 || explain < 0) {
        cli_fail(err, CLI_INVAL, "cli_sampler_db: bad shape");
        return NULL;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        /* SQLite would say "unable to open database file"; say which and why. */
        cli_fail(err, CLI_IO, "--db %s: %s", path, strerror(errno));
        return NULL;
    }
    cli_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        cli_fail(err, CLI_NOMEM, "out of memory");
        return NULL;
    }
    s->candidates = candidates;
    s->history = history;
    s->k = k;
    s->explain = explain;
    s->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    s_load ld = {{&s->item, &s->n_item, 0}, {&s->user, &s->n_user, 0}, {0}};
    store_err serr;
    int rc = store_ext_ids_file(path, !history, s_on_id, &ld, &serr);
    cli_buf_free(&ld.q);
    if (rc == STORE_ERR_NOMEM) {
        cli_fail(err, CLI_NOMEM, "out of memory reading %s", path);
        goto fail;
    }
    if (rc != STORE_OK) {
        cli_fail(err, CLI_IO, "%s", serr.msg);
        goto fail;
    }
    if (s->n_item == 0) {
        cli_fail(err, CLI_INVAL, "--db %s: no embedded items to sample", path);
        goto fail;
    }
    if ((size_t)candidates > s->n_item || (size_t)history > s->n_item) {
        cli_fail(err, CLI_INVAL, "--db %s has %zu embedded items: fewer than --%s %d", path,
                 s->n_item, (size_t)candidates > s->n_item ? "candidates" : "history",
                 (size_t)candidates > s->n_item ? candidates : history);
        goto fail;
    }
    if (!history && s->n_user == 0) {
        cli_fail(err, CLI_INVAL, "--db %s has no users: use --history L for anonymous requests",
                 path);
        goto fail;
    }
    if (!(s->perm = malloc(s->n_item * sizeof *s->perm))) {
        cli_fail(err, CLI_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < s->n_item; i++)
        s->perm[i] = (uint32_t)i;
    return s;
fail:
    cli_sampler_destroy(&s);
    return NULL;
}

cli_sampler *cli_sampler_file(const char *path, cli_err *err)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        cli_fail(err, CLI_IO, "--in %s: %s", path, strerror(errno));
        return NULL;
    }
    cli_sampler *s = calloc(1, sizeof *s);
    char *line = NULL;
    size_t cap = 0, lcap = 0, no = 0;
    ssize_t n;
    if (!s)
        goto nomem;
    while ((n = getline(&line, &cap, f)) >= 0) {
        no++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        if (n == 0)
            continue;   /* blank lines carry no request */
        cJSON *req = cli_json_object(line, (size_t)n), *id;
        if (!req) {
            cli_fail(err, CLI_INVAL, "--in %s: line %zu is not a JSON object", path, no);
            goto fail;
        }
        while ((id = cJSON_DetachItemFromObjectCaseSensitive(req, "id")))
            cJSON_Delete(id);
        char *body = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        if (s->n_line == lcap) {
            lcap = lcap ? 2 * lcap : 256;
            char **grown = realloc(s->line, lcap * sizeof *grown);
            if (!grown) {
                free(body);
                goto nomem;
            }
            s->line = grown;
        }
        if (!body)
            goto nomem;
        s->line[s->n_line++] = body;
    }
    if (ferror(f)) {
        cli_fail(err, CLI_IO, "--in %s: %s", path, strerror(errno));
        goto fail;
    }
    if (s->n_line == 0) {
        cli_fail(err, CLI_INVAL, "--in %s: no requests in it", path);
        goto fail;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return s;
nomem:
    cli_fail(err, CLI_NOMEM, "out of memory reading %s", path);
fail:
    free(line);
    if (f != stdin)
        fclose(f);
    cli_sampler_destroy(&s);
    return NULL;
}

/* Uniform in [0, n) (the modulo bias is below 2^-40 for any catalog). */
static size_t s_below(cli_sampler *s, size_t n)
{
    return (size_t)(util_xorshift64(&s->rng) % n);
}

/* Append m distinct random items as a JSON array. */
static int s_items(cli_sampler *s, int m)
{
    if (cli_buf_put(&s->buf, "[", 1))
        return -1;
    for (int i = 0; i < m; i++) {
        size_t j = (size_t)i + s_below(s, s->n_item - (size_t)i);
        uint32_t t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
        if ((i && cli_buf_put(&s->buf, ",", 1)) || cli_buf_puts(&s->buf, s->item[s->perm[i]]))
            return -1;
    }
    return cli_buf_put(&s->buf, "]", 1);
}

int cli_sampler_set_record(cli_sampler *s, double ratio, int events, cli_err *err)
{
    if (!(ratio >= 0 && ratio <= 1) || events < 1)
        return cli_fail(err, CLI_INVAL, "--record-ratio must be in 0..1 and --record-events >= 1");
    if (ratio > 0 && s->line)
        return cli_fail(err, CLI_INVAL, "--record-ratio samples from --db; with --in the "
                                        "file's requests are sent as they are");
    if (ratio > 0 && s->n_user == 0)
        return cli_fail(err, CLI_INVAL, "--record-ratio records events of existing users, "
                                        "and --history sampling reads none");
    s->record_ratio = ratio;
    s->record_events = events;
    /* Distinct per run, so a second run's events are new, not duplicates. */
    s->run_id = s->rng ^ (uint64_t)cli_now_us();
    util_splitmix64(&s->run_id);
    return CLI_OK;
}

/* {"op":"record","events":[...]}: random users and items, now, unique ids. */
static int s_record(cli_sampler *s)
{
    int64_t ts = (int64_t)time(NULL);
    int bad = cli_buf_puts(&s->buf, "{\"op\":\"record\",\"events\":[");
    for (int i = 0; !bad && i < s->record_events; i++)
        bad = cli_buf_printf(&s->buf, "%s{\"user\":%s,\"item\":%s,\"ts\":%lld,"
                             "\"event_id\":\"%016llx-%llu\"}", i ? "," : "",
                             s->user[s_below(s, s->n_user)], s->item[s_below(s, s->n_item)],
                             (long long)ts, (unsigned long long)s->run_id,
                             (unsigned long long)s->record_seq++);
    return bad || cli_buf_puts(&s->buf, "]}");
}

const char *cli_sampler_next(cli_sampler *s, size_t *len)
{
    if (s->line) {
        const char *b = s->line[s->next];
        s->next = (s->next + 1) % s->n_line;
        *len = strlen(b);
        return b;
    }
    cli_buf_reset(&s->buf);
    /* 53 random bits against the ratio: exact enough for any share. */
    if (s->record_ratio > 0 &&
        (double)(util_xorshift64(&s->rng) >> 11) * 0x1p-53 < s->record_ratio) {
        if (s_record(s))
            return NULL;
        *len = s->buf.len;
        return s->buf.data;
    }
    int bad = cli_buf_puts(&s->buf, "{\"op\":\"rank\",");
    if (s->history) {
        bad = bad || cli_buf_puts(&s->buf, "\"history\":") || s_items(s, s->history);
    } else {
        bad = bad || cli_buf_puts(&s->buf, "\"user\":") ||
              cli_buf_puts(&s->buf, s->user[s_below(s, s->n_user)]);
    }
    bad = bad || cli_buf_puts(&s->buf, ",\"candidates\":") || s_items(s, s->candidates) ||
          cli_buf_printf(&s->buf, ",\"k\":%d", s->k) ||
          (s->explain && cli_buf_printf(&s->buf, ",\"explain\":%d", s->explain)) ||
          cli_buf_put(&s->buf, "}", 1);
    if (bad)
        return NULL;
    *len = s->buf.len;
    return s->buf.data;
}

void cli_sampler_counts(const cli_sampler *s, size_t *users, size_t *items, size_t *lines)
{
    if (users)
        *users = s->n_user;
    if (items)
        *items = s->n_item;
    if (lines)
        *lines = s->n_line;
}
