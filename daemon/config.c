/* config.c -- the configuration table and its parsers (INI via libinih).
 *
 * Defaults live in the table as text and go through the same setter as file
 * lines and flags.  A default outside its own bounds is refused by that
 * setter: cfg_defaults reports it, attnd refuses to start, and a test in
 * check_daemon fails on it.
 */
#include "daemon/config.h"

#include <errno.h>
#include <stdint.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* CFG_STRING needs a value; CFG_OPTSTRING may be empty ("" = off/none).
 * CFG_ENUM stores the index of the value in the entry's names.
 * CFG_HOSTPORT is host:port or [v6 address]:port, or empty for none. */
enum cfg_type {
    CFG_INT, CFG_DOUBLE, CFG_STRING, CFG_OPTSTRING, CFG_BOOL, CFG_ENUM, CFG_LEVEL, CFG_HOSTPORT
};

typedef struct cfg_entry {
    const char *name;      /* section.key */
    int type;              /* enum cfg_type */
    size_t offset;         /* into srv_config */
    size_t size;           /* for strings: buffer size */
    double min, max;       /* for numbers */
    const char *def;       /* default, as text */
    const char *help;
} cfg_entry;

/* The values of each CFG_ENUM key, in the order of its C enum. */
static const struct {
    const char *key;
    const char *const names[8];   /* NULL-terminated */
} s_enums[] = {
    {"model.precompute", {"all", "none", NULL}},   /* enum cfg_precompute */
    {"model.precision", {"f32", "bf16", NULL}},    /* enum cfg_precision */
    {"models.named", {"any", "admin", NULL}},      /* enum cfg_named */
    {"record.synchronous", {"normal", "full", NULL}},   /* enum cfg_sync */
    {"record.priority", {"normal", "idle", NULL}},      /* enum cfg_priority */
    {"security.mode", {"none", "curve", NULL}},    /* enum cfg_security */
    {"history.backend", {"sqlite", "redis", NULL}},     /* enum cfg_hist */
    {"model.kernel", {"auto", "generic", "avx2", "avx512", "avx512bf16", NULL}},   /* cfg_kernel */
};

static const char *const *s_enum_names(const char *key)
{
    for (size_t i = 0; i < sizeof s_enums / sizeof s_enums[0]; i++)
        if (!strcmp(s_enums[i].key, key))
            return s_enums[i].names;
    return NULL;   /* a CFG_ENUM row without values: caught by the defaults test */
}

const char *cfg_enum_name(const char *key, int value)
{
    const char *const *names = s_enum_names(key);
    for (int v = 0; names && names[v]; v++)
        if (v == value)
            return names[v];
    return NULL;
}

int cfg_enum_value(const char *key, const char *name)
{
    const char *const *names = s_enum_names(key);
    for (int v = 0; names && names[v]; v++)
        if (!strcmp(names[v], name))
            return v;
    return -1;
}

#define F(field) offsetof(srv_config, field), sizeof(((srv_config *)0)->field)

static const cfg_entry s_table[] = {
    {"server.bind", CFG_STRING, F(bind), 0, 0, "tcp://127.0.0.1:5555",
     "ROUTER endpoint clients connect to (tcp://host:port or ipc://path)"},
    {"server.workers", CFG_INT, F(workers), 0, 256, "0",
     "scoring threads, each with its own SQLite connection and scratch; 0 = one per core"},
    {"server.queue_max", CFG_INT, F(queue_max), 1, 1000000, "256",
     "requests waiting for a worker (the main thread's next one included); beyond that `busy`"},
    {"server.metrics_interval", CFG_DOUBLE, F(metrics_interval), 0, 86400, "10",
     "seconds between metrics log lines; 0 = off"},
    {"server.log_level", CFG_LEVEL, F(log_level), 0, 0, "info", "debug | info | warn | error"},
    {"server.reload_poll", CFG_DOUBLE, F(reload_poll), 0, 86400, "5",
     "seconds between checks for a new active model or catalog version; 0 = off"},
    {"server.shutdown_grace", CFG_DOUBLE, F(shutdown_grace), 0, 3600, "10",
     "on SIGTERM, seconds to finish in-flight requests before exiting anyway"},
    {"server.titles", CFG_BOOL, F(titles), 0, 0, "on",
     "load every item title into the snapshot so replies can carry them (`titles`); off saves "
     "the memory (docs/OPERATIONS.md measures it)"},
    {"server.peer_buffer_bytes", CFG_INT, F(peer_buffer_bytes), 1 << 20, 1 << 30, "67108864",
     "replies (and requests) one client may have queued in attnd before replies to it are "
     "dropped (requests: the client is slowed); bounds what a client that never reads can "
     "cost"},
    {"store.db", CFG_STRING, F(db), 0, 0, "attnd.db", "the SQLite database (read-only for serving; the record writer opens it read-write)"},
    {"store.busy_timeout_ms", CFG_INT, F(busy_timeout_ms), 0, 600000, "2000",
     "how long a read waits for a lock before the request fails with `store`"},
    {"model.precompute", CFG_ENUM, F(precompute), 0, 0, "all",
     "all = per-item projections at load (fast, 4 x m floats per item); none = project per request"},
    {"model.precision", CFG_ENUM, F(precision), 0, 0, "f32",
     "f32 = float tables; bf16 = bfloat16 tables and catalog: half the memory, scores within ~1%"},
    {"model.build_threads", CFG_INT, F(build_threads), 0, 256, "0",
     "threads that build a snapshot's tables; 0 = one per core"},
    {"model.kernel", CFG_ENUM, F(kernel), 0, 0, "auto",
     "the scoring kernels' instruction set: auto = the best this CPU runs; avx512 keeps bf16 "
     "tables widened to float where avx512bf16 computes on their pairs"},
    {"models.serve", CFG_OPTSTRING, F(models_serve), 0, 0, "",
     "model versions kept loaded beside the active one, e.g. 3,5 (a request may name one "
     "with \"model\"; experiment arms load theirs too)"},
    {"models.precision", CFG_OPTSTRING, F(models_precision), 0, 0, "",
     "VERSION:f32|bf16,... sets those versions' precision wherever they load (active, "
     "served or an arm's), over model.precision; e.g. 5:bf16"},
    {"models.named", CFG_ENUM, F(models_named), 0, 0, "any",
     "who may name a model version in a request: any caller, or admin callers only (others "
     "get `forbidden`)"},
    {"experiment.arms", CFG_OPTSTRING, F(exp_arms), 0, 0, "",
     "NAME:VERSION:WEIGHT,... assigns each user to an arm by a hash of (user, salt); VERSION "
     "may be `active`; the first arm is the control; empty = no experiment"},
    {"experiment.salt", CFG_STRING, F(exp_salt), 0, 0, "attnd",
     "mixed into the arm hash: a new salt reshuffles users between arms"},
    {"experiment.log_impressions", CFG_DOUBLE, F(exp_log_impressions), 0, 1, "0",
     "share of rank replies to users written to the impressions table (keyed user hash, arm, "
     "model, items) for `attnctl experiment report`; 0 = none"},
    {"experiment.impression_queue", CFG_INT, F(exp_impression_queue), 1, 1000000, "10000",
     "impressions waiting for their writer; beyond that they are dropped and counted"},
    {"security.mask_ids", CFG_BOOL, F(mask_ids), 0, 0, "on",
     "user ids never reach logs, metrics or the impressions table: a keyed hash does "
     "(turning it off is logged at start-up)"},
    {"security.mask_key", CFG_OPTSTRING, F(mask_key), 0, 0, "",
     "file with the 32-byte hex key user ids are hashed with (attnctl keygen --mask FILE); "
     "empty = a random key per start (hashes cannot be joined across restarts)"},
    {"security.mode", CFG_ENUM, F(security), 0, 0, "none",
     "none = plain text, every caller holds every role; curve = CURVE encryption, callers "
     "authenticated by key against security.clients, with roles"},
    {"security.server_key", CFG_OPTSTRING, F(server_key), 0, 0, "",
     "the server's secret key file (attnctl keygen NAME: NAME.key_secret, mode 0600)"},
    {"security.clients", CFG_OPTSTRING, F(clients), 0, 0, "",
     "the allow-list: a folder with query/, write/, admin/ folders of NAME.key files, or a "
     "file of `ROLE KEY [NAME]` lines; re-read on SIGHUP and reload"},
    {"security.allow_plaintext", CFG_BOOL, F(allow_plaintext), 0, 0, "off",
     "with mode none, allow binding an address other hosts can reach"},
    {"security.rate_per_key", CFG_DOUBLE, F(rate_per_key), 0, 1e9, "0",
     "requests per second per key (per peer address in mode none); over it `rate_limited`; "
     "0 = no limit"},
    {"security.burst", CFG_INT, F(burst), 1, 1000000, "100",
     "requests a caller may send at once before security.rate_per_key applies"},
    {"limits.max_message_bytes", CFG_INT, F(max_message_bytes), 256, 1 << 30, "1048576",
     "largest request accepted; larger ones get `too_large`"},
    {"limits.max_reply_bytes", CFG_INT, F(max_reply_bytes), 4096, 1 << 30, "4194304",
     "largest reply sent; a request whose answer would be larger gets `too_large`"},
    {"limits.max_candidates", CFG_INT, F(max_candidates), 1, 1000000, "10000",
     "candidates per rank request"},
    {"limits.max_k", CFG_INT, F(max_k), 1, 1000000, "1000", "results per rank request"},
    {"limits.max_explain", CFG_INT, F(max_explain), 0, 1000, "10",
     "explaining history items per result"},
    {"limits.max_history", CFG_INT, F(max_history), 1, 100000, "200",
     "history items used per request (also capped by the model's l_max)"},
    {"limits.max_seen", CFG_INT, F(max_seen), 1, 10000000, "1000",
     "newest events checked by exclude_seen"},
    {"limits.default_k", CFG_INT, F(default_k), 1, 1000000, "10", "k when a request gives none"},
    {"limits.max_record_events", CFG_INT, F(max_record_events), 1, 100000, "1000",
     "events per record request (at most record.max_batch)"},
    {"metrics.bind", CFG_HOSTPORT, F(metrics_bind), 0, 0, "127.0.0.1:9464",
     "HTTP listener for /metrics, /healthz and /readyz (host:port, [v6]:port; port 0 picks a "
     "free one); empty = none"},
    {"metrics.max_connections", CFG_INT, F(metrics_max_connections), 1, 1024, "16",
     "HTTP connections open at once; more are refused"},
    {"metrics.timeout", CFG_INT, F(metrics_timeout), 1, 3600, "10",
     "seconds an HTTP connection may stay idle (a slow client included) before it is closed"},
    {"metrics.max_request_bytes", CFG_INT, F(metrics_max_request_bytes), 4096, 1 << 20, "16384",
     "memory one HTTP connection may use for its request line and headers; larger requests "
     "are refused"},
    {"record.enabled", CFG_BOOL, F(record_enabled), 0, 0, "on",
     "run the writer thread, which opens the database read-write; off: record answers "
     "`unavailable` and attnd never writes"},
    {"record.synchronous", CFG_ENUM, F(record_synchronous), 0, 0, "normal",
     "normal = durable across a crash of attnd or the OS (WAL), a power cut may lose the last "
     "commits; full = an fsync per commit, durable across a power cut too"},
    {"record.priority", CFG_ENUM, F(record_priority), 0, 0, "normal",
     "normal = the writer and its checkpoint share the cores with ranking; idle = spare CPU "
     "only (SCHED_IDLE): rank tails first, recording waits while the cores are busy"},
    {"record.max_batch", CFG_INT, F(record_max_batch), 1, 1000000, "8192",
     "events the writer commits in one transaction, at most"},
    {"record.max_delay_ms", CFG_INT, F(record_max_delay_ms), 0, 10000, "5",
     "longest a batch stays open while requests keep arriving; the writer never waits for "
     "company when nothing is queued (unless record.linger_ms)"},
    {"record.linger_ms", CFG_INT, F(record_linger_ms), 0, 10000, "0",
     "how long a batch waits for company once it holds a request, then takes what queued "
     "(max_delay_ms from there): fewer, larger commits, acks up to this much later"},
    {"record.queue_max", CFG_INT, F(record_queue_max), 1, 1000000, "1024",
     "record requests received and not yet answered by the writer; beyond that `busy`"},
    {"record.checkpoint_pages", CFG_INT, F(record_checkpoint_pages), 0, 10000000, "4000",
     "WAL pages after which a checkpoint thread copies the WAL back beside the writer (at "
     "twice this the writer waits for it); 0 = SQLite's automatic checkpoints inside commits"},
    {"history.backend", CFG_ENUM, F(hist_backend), 0, 0, "sqlite",
     "where users' histories live: sqlite = the database itself; redis = Redis nodes shared "
     "by every replica (history.redis), the database then only serves the catalog and models"},
    {"history.redis", CFG_OPTSTRING, F(hist_redis), 0, 0, "",
     "redis://host:port[/db] of every Redis primary, comma-separated; users are spread over "
     "them by a consistent hash of their id (every replica must list the same nodes)"},
    {"history.prefix", CFG_OPTSTRING, F(hist_prefix), 0, 0, "attn:",
     "put before every Redis key, so that several deployments can share the nodes"},
    {"history.connect_timeout_ms", CFG_INT, F(hist_connect_ms), 1, 60000, "200",
     "connecting to a Redis node, at most"},
    {"history.timeout_ms", CFG_INT, F(hist_timeout_ms), 1, 60000, "200",
     "one Redis command, at most: past it the request fails `unavailable` naming the node"},
    {"history.retry_ms", CFG_INT, F(hist_retry_ms), 0, 600000, "500",
     "after a Redis node failed, its users' requests fail at once for this long, then the "
     "next one reconnects"},
    {"history.trim", CFG_INT, F(hist_trim), 1, 1000000, "1000",
     "newest events kept per user in Redis; at least limits.max_history and limits.max_seen "
     "(a model's self-attention context reads past max_history: keep room for it)"},
    {"history.ttl", CFG_INT, F(hist_ttl), 0, 2000000000, "0",
     "seconds a user's Redis history is kept after their last recorded event; 0 = forever"},
};

#define S_NKEYS ((int)(sizeof s_table / sizeof s_table[0]))

int cfg_key_count(void) { return S_NKEYS; }

int cfg_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

/* "a, b, c" for an enum's message. */
static const char *s_names(const cfg_entry *e)
{
    static _Thread_local char buf[256];
    const char *const *names = s_enum_names(e->name);
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; names && names[i] && at < sizeof buf; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? ", " : "", names[i]);
    return buf;
}

int cfg_hostport_split(const char *text, char *host, size_t host_len, int *port)
{
    const char *colon, *h = text;
    size_t hlen;
    if (*text == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -1;
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || memchr(text, ':', (size_t)(colon - text)))
            return -1;   /* none, or an IPv6 address without brackets */
        hlen = (size_t)(colon - text);
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (hlen == 0 || hlen >= host_len || errno || end == colon + 1 || *end || p < 0 ||
        p > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    *port = (int)p;
    return 0;
}

static int s_apply(srv_config *cfg, const cfg_entry *e, const char *value, char *why,
                   size_t why_len)
{
    char *field = (char *)cfg + e->offset;
    char *end;
    switch (e->type) {
    case CFG_INT: {
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < e->min || v > e->max) {
            snprintf(why, why_len, "%s: '%s' is not an integer in %.0f..%.0f", e->name, value,
                     e->min, e->max);
            return -1;
        }
        *(int *)field = (int)v;
        return 0;
    }
    case CFG_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v) || v < e->min || v > e->max) {
            snprintf(why, why_len, "%s: '%s' is not a number in %g..%g", e->name, value, e->min,
                     e->max);
            return -1;
        }
        *(double *)field = v;
        return 0;
    }
    case CFG_BOOL:
        if (!strcmp(value, "on") || !strcmp(value, "true") || !strcmp(value, "yes") ||
            !strcmp(value, "1"))
            *(int *)field = 1;
        else if (!strcmp(value, "off") || !strcmp(value, "false") || !strcmp(value, "no") ||
                 !strcmp(value, "0"))
            *(int *)field = 0;
        else {
            snprintf(why, why_len, "%s: '%s' is not one of on, off", e->name, value);
            return -1;
        }
        return 0;
    case CFG_OPTSTRING:
        if (strlen(value) >= e->size) {
            snprintf(why, why_len, "%s: value must be at most %zu characters", e->name,
                     e->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case CFG_STRING:
        if (!*value || strlen(value) >= e->size) {
            snprintf(why, why_len, "%s: value must be 1..%zu characters", e->name, e->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case CFG_HOSTPORT: {
        char host[256];
        int port;
        if (strlen(value) >= e->size ||
            (*value && cfg_hostport_split(value, host, sizeof host, &port) != 0)) {
            snprintf(why, why_len, "%s: '%s' is not host:port (or [v6 address]:port, port "
                     "0..65535), or empty for none", e->name, value);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    case CFG_LEVEL:
        if (strcmp(value, "debug") && strcmp(value, "info") && strcmp(value, "warn") &&
            strcmp(value, "error")) {
            snprintf(why, why_len, "%s: '%s' is not one of debug, info, warn, error", e->name,
                     value);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case CFG_ENUM: {
        int v = cfg_enum_value(e->name, value);
        if (v >= 0) {
            *(int *)field = v;
            return 0;
        }
        snprintf(why, why_len, "%s: '%s' is not one of %s", e->name, value, s_names(e));
        return -1;
    }
    }
    return -1;
}

int cfg_defaults_checked(srv_config *cfg, char *why, size_t why_len)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = 0;
    for (int i = 0; i < S_NKEYS; i++) {
        char reason[256];
        if (s_apply(cfg, &s_table[i], s_table[i].def, reason, sizeof reason) != 0 && rc == 0) {
            snprintf(why, why_len, "built-in default out of its bounds: %s", reason);
            rc = -1;
        }
    }
    return rc;
}

void cfg_defaults(srv_config *cfg)
{
    char why[300];
    /* A bad default is a build bug: attnd and the tests call the checked form. */
    (void)cfg_defaults_checked(cfg, why, sizeof why);
}

int cfg_set(srv_config *cfg, const char *key, const char *value, char *why, size_t why_len)
{
    for (int i = 0; i < S_NKEYS; i++)
        if (!strcmp(s_table[i].name, key))
            return s_apply(cfg, &s_table[i], value, why, why_len);
    snprintf(why, why_len, "unknown key '%s'", key);
    return -1;
}

typedef struct s_file_ctx {
    srv_config *cfg;
    char why[256];
    int failed;
} s_file_ctx;

/* inih calls this per key; returning 0 makes ini_parse report the line. */
static int s_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    s_file_ctx *ctx = user;
    if (ctx->failed)
        return 1;  /* keep the first error: ini_parse reports its line */
    char key[128];
    if (!*section) {
        snprintf(ctx->why, sizeof ctx->why, "'%s' is outside any [section]", name);
        ctx->failed = 1;
        return 0;
    }
    snprintf(key, sizeof key, "%s.%s", section, name);
    if (cfg_set(ctx->cfg, key, value, ctx->why, sizeof ctx->why) != 0) {
        ctx->failed = 1;
        return 0;
    }
    return 1;
}

int cfg_load_file(srv_config *cfg, const char *path, char *why, size_t why_len)
{
    s_file_ctx ctx = {.cfg = cfg};
    int line = ini_parse(path, s_ini_handler, &ctx);
    if (line == -1) {
        snprintf(why, why_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (line != 0) {
        if (ctx.failed)
            snprintf(why, why_len, "%s:%d: %s", path, line, ctx.why);
        else
            snprintf(why, why_len, "%s:%d: syntax error (expected [section] or key = value)",
                     path, line);
        return -1;
    }
    return 0;
}

/* The safe defaults of docs/SECURITY.md: CURVE needs its key and list;
 * plain text stays on this host unless the operator says otherwise. */
static int s_validate_security(const srv_config *cfg, char *why, size_t why_len)
{
    if (cfg->security == CFG_SECURITY_CURVE && (!cfg->server_key[0] || !cfg->clients[0])) {
        snprintf(why, why_len, "security.mode = curve needs security.server_key (the server's "
                 "NAME.key_secret) and security.clients (the allow-list)");
        return -1;
    }
    if (cfg->security == CFG_SECURITY_NONE && !cfg->allow_plaintext &&
        !cfg_bind_is_local(cfg->bind)) {
        snprintf(why, why_len, "server.bind: '%s' is reachable from other hosts, and "
                 "security.mode = none would serve it in plain text to anyone; set "
                 "security.mode = curve (docs/SECURITY.md), or security.allow_plaintext = on "
                 "if a network you trust is the protection", cfg->bind);
        return -1;
    }
    return 0;
}

int cfg_validate(const srv_config *cfg, char *why, size_t why_len)
{
    if (cfg->default_k > cfg->max_k) {
        snprintf(why, why_len, "limits.default_k (%d) is larger than limits.max_k (%d)",
                 cfg->default_k, cfg->max_k);
        return -1;
    }
    if (cfg->max_reply_bytes > cfg->peer_buffer_bytes) {
        snprintf(why, why_len, "limits.max_reply_bytes (%d) is larger than "
                 "server.peer_buffer_bytes (%d): no reply could be queued", cfg->max_reply_bytes,
                 cfg->peer_buffer_bytes);
        return -1;
    }
    if (cfg->max_record_events > cfg->record_max_batch) {
        snprintf(why, why_len, "limits.max_record_events (%d) is larger than record.max_batch "
                 "(%d): a request must fit one transaction", cfg->max_record_events,
                 cfg->record_max_batch);
        return -1;
    }
    /* A record reply names each rejected event in at most 450 bytes (its
     * item cut to 64, every byte escaped): a request whose every event is
     * rejected must still get its answer, whatever was stored. */
    int64_t reply_need = (int64_t)cfg->max_record_events * 450 + 1024;
    if (cfg->record_enabled && reply_need > cfg->max_reply_bytes) {
        snprintf(why, why_len, "limits.max_record_events (%d) needs limits.max_reply_bytes of "
                 "at least %lld to answer a request whose every event is rejected (or "
                 "record.enabled = off)", cfg->max_record_events, (long long)reply_need);
        return -1;
    }
    if (cfg->hist_backend == CFG_HIST_REDIS) {
        if (!cfg->hist_redis[0]) {
            snprintf(why, why_len, "history.backend = redis needs history.redis "
                     "(redis://host:port, comma-separated)");
            return -1;
        }
        int need = cfg->max_history > cfg->max_seen ? cfg->max_history : cfg->max_seen;
        if (cfg->hist_trim < need) {
            snprintf(why, why_len, "history.trim (%d) is smaller than limits.%s (%d): Redis "
                     "would not keep the events a request reads", cfg->hist_trim,
                     cfg->max_history > cfg->max_seen ? "max_history" : "max_seen", need);
            return -1;
        }
    }
    if (strncmp(cfg->bind, "tcp://", 6) && strncmp(cfg->bind, "ipc://", 6) &&
        strncmp(cfg->bind, "inproc://", 9)) {
        snprintf(why, why_len, "server.bind: '%s' is not a tcp://, ipc:// or inproc:// endpoint",
                 cfg->bind);
        return -1;
    }
    return s_validate_security(cfg, why, why_len);
}

int cfg_bind_is_local(const char *ep)
{
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9))
        return 1;
    if (strncmp(ep, "tcp://", 6))
        return 0;
    const char *host = ep + 6, *semi = strchr(host, ';');
    if (semi)
        return 0;   /* "source;destination" forms: not a plain bind */
    const char *colon = strrchr(host, ':');
    size_t len = colon ? (size_t)(colon - host) : strlen(host);
    static const char *const local[] = {"localhost", "[::1]", "::1", "lo"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (strlen(local[i]) == len && !memcmp(local[i], host, len))
            return 1;
    /* 127.0.0.0/8: four dotted numbers, the first 127. */
    unsigned a, b, c, d;
    char tail;
    char ip[64];
    if (len >= sizeof ip)
        return 0;
    memcpy(ip, host, len);
    ip[len] = 0;
    return sscanf(ip, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

/* "; " comment lines of at most about 78 columns, broken at spaces: the
 * printed file must load again, and inih reads at most INI_MAX_LINE (200)
 * bytes of a line, the rest as a line of its own. */
static void s_print_comment(FILE *out, const char *help, const char *def)
{
    char text[1024];
    snprintf(text, sizeof text, "%s (default %s)", help, def);
    const char *p = text;
    while (*p) {
        size_t n = strlen(p);
        if (n > 76) {
            n = 76;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)   /* one word longer than a line: keep it whole */
                n = strcspn(p, " ");
        }
        fprintf(out, "; %.*s\n", (int)n, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

void cfg_print(const srv_config *cfg, FILE *out)
{
    const char *section = "";
    for (int i = 0; i < S_NKEYS; i++) {
        const cfg_entry *e = &s_table[i];
        const char *dot = strchr(e->name, '.');
        size_t slen = (size_t)(dot - e->name);
        if (strncmp(section, e->name, slen) || section[slen]) {
            static char sec[32];
            snprintf(sec, sizeof sec, "%.*s", (int)slen, e->name);
            section = sec;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
        }
        const char *field = (const char *)cfg + e->offset;
        s_print_comment(out, e->help, e->def[0] ? e->def : "empty");
        fprintf(out, "%s = ", dot + 1);
        switch (e->type) {
        case CFG_INT: fprintf(out, "%d\n", *(const int *)field); break;
        case CFG_DOUBLE: fprintf(out, "%g\n", *(const double *)field); break;
        case CFG_BOOL: fprintf(out, "%s\n", *(const int *)field ? "on" : "off"); break;
        case CFG_ENUM: fprintf(out, "%s\n", cfg_enum_name(e->name, *(const int *)field)); break;
        default: fprintf(out, "%s\n", field); break;
        }
    }
}
