/* config.h -- attnd's configuration: one declarative table.
 *
 *     srv_config cfg;
 *     char why[256];
 *     cfg_defaults(&cfg);
 *     if (cfg_load_file(&cfg, "conf/attnd.conf", why, sizeof why) != 0 ||
 *         cfg_set(&cfg, "server.workers", "4", why, sizeof why) != 0)
 *         die("%s", why);       // "conf/attnd.conf:12: server.workers: 'x' is not an integer"
 *
 * Every key has a name, a type, bounds, a default and a one-line help; the
 * same table applies defaults, file lines and command-line overrides, and
 * prints the effective configuration (attnd --print-config).
 */
#ifndef DAEMON_CONFIG_H
#define DAEMON_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum cfg_precompute { CFG_PRECOMPUTE_ALL = 0, CFG_PRECOMPUTE_NONE = 1 };
enum cfg_precision { CFG_PRECISION_F32 = 0, CFG_PRECISION_BF16 = 1 };
enum cfg_named { CFG_NAMED_ANY = 0, CFG_NAMED_ADMIN = 1 };
enum cfg_sync { CFG_SYNC_NORMAL = 0, CFG_SYNC_FULL = 1 };
enum cfg_priority { CFG_PRIORITY_NORMAL = 0, CFG_PRIORITY_IDLE = 1 };
enum cfg_security { CFG_SECURITY_NONE = 0, CFG_SECURITY_CURVE = 1 };
enum cfg_hist { CFG_HIST_SQLITE = 0, CFG_HIST_REDIS = 1 };
/* The names are attn_kernel_select()'s (attn/score.h). */
enum cfg_kernel {
    CFG_KERNEL_AUTO = 0, CFG_KERNEL_GENERIC, CFG_KERNEL_AVX2, CFG_KERNEL_AVX512,
    CFG_KERNEL_AVX512BF16
};

typedef struct srv_config {
    /* [server] */
    char bind[256];            /* ROUTER endpoint */
    int workers;               /* scoring threads; 0 = one per core */
    int queue_max;             /* requests waiting for a worker before `busy` */
    double metrics_interval;   /* seconds between metrics lines; 0 = off */
    char log_level[16];        /* debug | info | warn | error */
    double reload_poll;        /* seconds between checks for a new model/catalog; 0 = off */
    double shutdown_grace;     /* seconds to finish in-flight work on SIGTERM */
    int titles;                /* load item titles into snapshots */
    int peer_buffer_bytes;     /* what one client may have queued (sizes the HWMs) */
    /* [store] */
    char db[1024];             /* database path */
    int busy_timeout_ms;       /* SQLite busy timeout */
    /* [model] */
    int precompute;            /* enum cfg_precompute */
    int precision;             /* enum cfg_precision: what the tables are stored in */
    int build_threads;         /* threads building the tables; 0 = one per core */
    int kernel;                /* enum cfg_kernel: the scoring kernels' instruction set */
    /* [models] */
    char models_serve[256];    /* versions loaded beside the active one: "3,5" or "" */
    char models_precision[256];/* per-version precision over `precision`: "5:bf16" or "" */
    int models_named;          /* enum cfg_named */
    /* [experiment] */
    char exp_arms[512];        /* NAME:VERSION:WEIGHT,... or "" */
    char exp_salt[128];
    double exp_log_impressions;  /* share of user rank replies logged */
    int exp_impression_queue;
    /* [security] */
    int mask_ids;              /* hash user ids wherever they would be written */
    char mask_key[1024];       /* the key file, or "" for a random key */
    /* [limits] */
    int max_message_bytes;
    int max_reply_bytes;
    int max_candidates;
    int max_k;
    int max_explain;
    int max_history;
    int max_seen;
    int default_k;
    int max_record_events;     /* events per record request */
    /* [metrics] */
    char metrics_bind[256];    /* host:port of the HTTP listener; "" = none */
    int metrics_max_connections;
    int metrics_timeout;       /* seconds a connection may stay idle */
    int metrics_max_request_bytes;
    /* [record] */
    int record_enabled;        /* the writer thread runs; off: record is `unavailable` */
    int record_synchronous;    /* enum cfg_sync */
    int record_priority;       /* enum cfg_priority: the writer's scheduling */
    int record_max_batch;      /* events per transaction */
    int record_max_delay_ms;   /* longest a batch stays open while requests keep coming */
    int record_linger_ms;      /* how long a batch waits for more once it has one */
    int record_queue_max;      /* record requests at the writer before `busy` */
    int record_checkpoint_pages;  /* WAL pages before the writer checkpoints; 0 = SQLite's */
    /* [security]: access control (docs/SECURITY.md); masking is above */
    int security;              /* enum cfg_security */
    char server_key[1024];     /* the server's NAME.key_secret; "" = none */
    char clients[1024];        /* the allow-list: a folder of role folders, or a file */
    int allow_plaintext;       /* mode none may bind a non-loopback address */
    double rate_per_key;       /* requests/s per key (per peer in mode none); 0 = no limit */
    int burst;                 /* requests a caller may send at once above its rate */
    /* [history] */
    int hist_backend;          /* enum cfg_hist */
    char hist_redis[1024];     /* redis://host:port[/db],... */
    char hist_prefix[64];      /* before every Redis key */
    int hist_connect_ms;       /* connecting to a Redis node, at most */
    int hist_timeout_ms;       /* one Redis command, at most */
    int hist_retry_ms;         /* a failed node's users fail at once for this long */
    int hist_trim;             /* events kept per user in Redis */
    int hist_ttl;              /* seconds a user's Redis history outlives their last event;
                                  0 = forever */
} srv_config;

/* The built-in defaults.  The checked form returns -1 with the key when a
 * default lies outside its own bounds (a build bug). */
void cfg_defaults(srv_config *cfg);
int cfg_defaults_checked(srv_config *cfg, char *why, size_t why_len);

/* Set "section.key" to the text value.  Returns 0, or -1 with the reason in
 * why ("server.workers: 'x' is not an integer in 0..256"). */
int cfg_set(srv_config *cfg, const char *key, const char *value, char *why, size_t why_len);

/* A CFG_ENUM key's value by name and back ("model.precision": "bf16" is
 * CFG_PRECISION_BF16): -1 or NULL for a name or value the key lacks. */
int cfg_enum_value(const char *key, const char *name);
const char *cfg_enum_name(const char *key, int value);

/* Apply an INI file over cfg.  Returns 0, or -1 with "file:line: reason". */
int cfg_load_file(srv_config *cfg, const char *path, char *why, size_t why_len);

/* Cross-key checks (e.g. default_k <= max_k).  0 or -1 with the reason. */
int cfg_validate(const srv_config *cfg, char *why, size_t why_len);

/* Write the effective configuration as an INI file. */
void cfg_print(const srv_config *cfg, FILE *out);

/* Number of configuration keys, for tests that check conf/attnd.conf
 * documents every key. */
int cfg_key_count(void);

/* Split "host:port" or "[v6 address]:port" into host (brackets removed)
 * and port.  0, or -1 when text has neither form or the port is not in
 * 0..65535. */
int cfg_hostport_split(const char *text, char *host, size_t host_len, int *port);
/* 1 when an endpoint can be reached only from this host: ipc://, inproc://,
 * or tcp:// on 127.0.0.0/8, ::1, localhost or the interface lo. */
int cfg_bind_is_local(const char *endpoint);

/* Cores online, at least 1. */
int cfg_cores(void);

#endif
