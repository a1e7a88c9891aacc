/* auth.c -- see auth.h.
 *
 * Why our own ZAP handler rather than CZMQ's zauth: ZAP is a six-frame
 * request/reply (RFC 27) and answering it is a lookup in our allow-list;
 * the parts that are ours anyway -- roles, the per-request check of the
 * current list, refusal logs with their limit, the counters `stats`
 * shows, an atomic swap on reload -- would sit beside zauth's actor and
 * certificate store rather than replace them, and libczmq would be one more
 * library in every build.  libzmq and libsodium do all the cryptography.
 *
 * The thread owns two sockets, created here before it starts (a full
 * memory barrier, as libzmq asks for a socket changing threads):
 *   zap  REP bound to inproc://zeromq.zap.01: one request per handshake;
 *   mon  PAIR connected to the client ROUTER's monitor: handshakes that
 *        failed before ZAP (plain text, wrong server key, not ZMTP).
 * handshake.h turns the monitor's events into one verdict per connection
 * that never completed a handshake, with its address where it can.
 */
#include "daemon/auth.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/allowlist.h"
#include "daemon/handshake.h"
#include "daemon/log.h"
#include "daemon/ops.h"
#include "daemon/ratelimit.h"
#include "daemon/wire.h"
#include "util/clock.h"
#include "util/hash.h"
#include "util/keyfile.h"

#define S_MONITOR "inproc://attnd-auth-monitor"
#define S_LOGGED 1024                        /* (reason, peer, key) triples remembered */
#define S_LOG_AGAIN_NS 3600000000000ull      /* the same triple is logged again after 1 h */
#define S_LOG_RATE 10.0                      /* refusal lines per second at most ... */
#define S_LOG_BURST 20                       /* ... after a first burst of this many */
#define S_SUMMARY_NS 10000000000ull          /* "held back" summary at most every 10 s */
#define S_ADDR_MAX 64

typedef struct s_logged {
    uint64_t hash;    /* of reason, peer and key; 0 = empty */
    uint64_t at;      /* when it was logged */
} s_logged;

struct srv_auth {
    int mode;                      /* enum cfg_security */
    char clients[1024];            /* security.clients */
    double rate_per_key;           /* for messages */
    int burst;
    util_key server;               /* curve: the server's pair (the secret wiped once the
                                      socket has it) */
    srv_ratelimit *rate;           /* per caller, main thread; NULL = no limit */
    pthread_mutex_t lock;          /* guards allow (for the ZAP thread), log_rate, logged */
    srv_allow *allow;              /* current list: main swaps it, under lock */
    srv_ratelimit *log_rate;       /* refusal lines */
    s_logged logged[S_LOGGED];
    srv_sec_counters c;
    atomic_uint_fast64_t allow_reloads, allow_reload_failures;
    atomic_uint_fast64_t keys;     /* in the current list, for collectors on any thread */
    uint64_t summarised, next_summary;   /* main thread: log_suppressed already reported */
    void *zap, *mon;               /* the thread's sockets */
    pthread_t thread;
    int running;
    srv_hs hs;                     /* the thread's: connections mid-handshake */
};

static const char *const s_refusals[SRV_REFUSED_COUNT] = {"unknown_key", "plaintext",
                                                          "handshake", "revoked"};

const char *srv_refusal_name(int reason)
{
    return reason >= 0 && reason < SRV_REFUSED_COUNT ? s_refusals[reason] : "unknown";
}

/* ---- refusals: counted always, logged once per (reason, peer, key) -------- */

/* Count the refusal, and log it unless this (reason, host, key) was
 * logged within the hour or the log limit is spent: a client retrying from
 * new ports is one peer.  port is 0 when unknown.  Any thread. */
static void s_refuse(srv_auth *a, int reason, const char *peer, unsigned port, const char *key)
{
    atomic_fetch_add(&a->c.refused[reason], 1);
    peer = peer && *peer ? peer : "unknown";
    key = key && *key ? key : "-";
    unsigned char r = (unsigned char)reason;
    uint64_t h = util_fnv1a(UTIL_FNV_OFFSET, &r, 1);
    h = util_fnv1a(util_fnv1a(h, peer, strlen(peer) + 1), key, strlen(key));
    h = h ? h : 1;
    uint64_t now = util_now_ns(), retry;
    s_logged *slot = &a->logged[h % S_LOGGED];
    int log = 0;
    pthread_mutex_lock(&a->lock);
    if (slot->hash != h || now - slot->at > S_LOG_AGAIN_NS) {
        log = srv_ratelimit_take(a->log_rate, "", 0, now, &retry);
        if (log) {
            slot->hash = h;
            slot->at = now;
        } else {
            atomic_fetch_add(&a->c.log_suppressed, 1);
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (log)
        srv_log(SRV_WARN, "msg=\"client refused\" reason=%s peer=\"%s\" port=%u key=\"%s\"",
                s_refusals[reason], peer, port, key);
}

/* ---- the ZAP handler ------------------------------------------------------ */

static void s_zap_reply(void *zap, zmq_msg_t *request_id, const char *status,
                        const char *text, const char *user_id)
{
    srv_wire_send(zap, "1.0", 3, ZMQ_SNDMORE);
    srv_wire_send_msg(zap, request_id, ZMQ_SNDMORE);
    srv_wire_send(zap, status, strlen(status), ZMQ_SNDMORE);
    srv_wire_send(zap, text, strlen(text), ZMQ_SNDMORE);
    srv_wire_send(zap, user_id, strlen(user_id), ZMQ_SNDMORE);
    srv_wire_send(zap, "", 0, 0);   /* no metadata */
}

/* One ZAP request: [version, request id, domain, address, routing id,
 * mechanism, credentials...].  -1 when the context is gone. */
static int s_zap_one(srv_auth *a)
{
    enum { N = 8 };
    zmq_msg_t f[N];
    int n = 0, more = 1, rc = 0;
    for (int i = 0; i < N; i++)
        zmq_msg_init(&f[i]);
    while (more && n < N) {
        if (srv_wire_recv(a->zap, &f[n], 0) < 0) {
            rc = -1;
            break;
        }
        more = zmq_msg_more(&f[n++]);
    }
    if (more && rc == 0)
        srv_wire_discard_more(a->zap);
    if (rc == 0) {
        /* Always answered (a REP that skips a reply is stuck); f[1], the
         * request id, is an empty frame when the request was too short. */
        char addr[S_ADDR_MAX] = "", key[UTIL_KEY_Z85 + 1] = "";
        if (n > 3)
            snprintf(addr, sizeof addr, "%.*s", (int)zmq_msg_size(&f[3]),
                     (const char *)zmq_msg_data(&f[3]));
        int curve = n == 7 && zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5)
                    && zmq_msg_size(&f[6]) == 32 && zmq_msg_size(&f[0]) == 3 &&
                    !memcmp(zmq_msg_data(&f[0]), "1.0", 3);
        if (curve)
            zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
        pthread_mutex_lock(&a->lock);
        int role = curve ? srv_allow_role(a->allow, key, NULL) : -1;
        pthread_mutex_unlock(&a->lock);
        if (role >= 0) {
            atomic_fetch_add(&a->c.accepted, 1);
            s_zap_reply(a->zap, &f[1], "200", "OK", key);
        } else if (curve) {
            s_refuse(a, SRV_REFUSED_KEY, addr, 0, key);
            s_zap_reply(a->zap, &f[1], "400", "key not allowed", "");
        } else {
            /* Only libzmq talks to this endpoint: a bug, not a client. */
            srv_log(SRV_ERROR, "msg=\"malformed ZAP request\" frames=%d", n);
            s_zap_reply(a->zap, &f[1], "500", "malformed request", "");
        }
    }
    for (int i = 0; i < N; i++)
        zmq_msg_close(&f[i]);
    return rc;
}

/* ---- the monitor ---------------------------------------------------------- */

static void s_on_refused(void *ctx, int reason, const char *addr, unsigned port)
{
    s_refuse(ctx, reason, addr, port, NULL);
}

/* One monitor event: [event u16, value u32][endpoint].  -1 when the
 * context is gone. */
static int s_monitor_one(srv_auth *a)
{
    zmq_msg_t ev, ep;
    zmq_msg_init(&ev);
    zmq_msg_init(&ep);
    int rc = srv_wire_recv(a->mon, &ev, 0);
    if (rc >= 0 && zmq_msg_more(&ev))
        rc = srv_wire_recv(a->mon, &ep, 0);
    if (rc >= 0 && zmq_msg_size(&ev) == 6) {
        uint16_t event;
        uint32_t value;
        memcpy(&event, zmq_msg_data(&ev), 2);
        memcpy(&value, (const char *)zmq_msg_data(&ev) + 2, 4);
        srv_log(SRV_DEBUG, "msg=monitor event=0x%x value=0x%x", event, value);
        srv_hs_event(&a->hs, event, value, s_on_refused, a);
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&ep);
    return rc < 0 && zmq_errno() == ETERM ? -1 : 0;
}

static void *s_thread(void *arg)
{
    srv_auth *a = arg;
    for (;;) {
        zmq_pollitem_t it[2] = {{.socket = a->zap, .events = ZMQ_POLLIN},
                                {.socket = a->mon, .events = ZMQ_POLLIN}};
        if (srv_wire_poll(it, 2, -1) < 0)
            break;   /* ETERM: attnd is stopping */
        if ((it[0].revents & ZMQ_POLLIN) && s_zap_one(a) < 0)
            break;
        if ((it[1].revents & ZMQ_POLLIN) && s_monitor_one(a) < 0)
            break;
    }
    zmq_close(a->zap);
    zmq_close(a->mon);
    return NULL;
}

/* ---- life cycle ----------------------------------------------------------- */

static void s_close_sockets(srv_auth *a)
{
    int zero = 0;
    if (a->zap) {
        zmq_setsockopt(a->zap, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(a->zap);
    }
    if (a->mon) {
        zmq_setsockopt(a->mon, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(a->mon);
    }
    a->zap = a->mon = NULL;
}

/* Mode curve: the server key, the list, the two sockets and the thread. */
static int s_start_curve(srv_auth *a, void *zctx, const srv_config *cfg, char *why,
                         size_t why_len)
{
    char reason[600];
    if (!zmq_has("curve")) {
        snprintf(why, why_len, "security.mode = curve, but this libzmq has no CURVE "
                 "(it needs libsodium)");
        return -1;
    }
    if (util_key_read(cfg->server_key, UTIL_KEY_SECRET, &a->server, reason, sizeof reason)) {
        snprintf(why, why_len, "security.server_key: %s", reason);
        return -1;
    }
    a->allow = srv_allow_load(cfg->clients, reason, sizeof reason);
    if (!a->allow) {
        snprintf(why, why_len, "security.clients: %s", reason);
        return -1;
    }
    atomic_store(&a->keys, srv_allow_count(a->allow));
    int zero = 0;
    a->zap = zmq_socket(zctx, ZMQ_REP);
    a->mon = zmq_socket(zctx, ZMQ_PAIR);
    if (!a->zap || !a->mon || zmq_setsockopt(a->zap, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_bind(a->zap, SRV_ZAP_ENDPOINT) || zmq_connect(a->mon, S_MONITOR)) {
        snprintf(why, why_len, "cannot open the ZAP handler's sockets: %s",
                 zmq_strerror(zmq_errno()));
        s_close_sockets(a);
        return -1;
    }
    if (pthread_create(&a->thread, NULL, s_thread, a) != 0) {
        snprintf(why, why_len, "cannot start the ZAP handler's thread");
        s_close_sockets(a);
        return -1;
    }
    a->running = 1;
    srv_log(SRV_INFO, "msg=\"access control on\" mode=curve server_key=%s clients=%s keys=%zu",
            a->server.pub, cfg->clients, srv_allow_count(a->allow));
    if (srv_allow_count(a->allow) == 0)
        srv_log(SRV_WARN, "msg=\"the allow-list is empty: every client will be refused\" "
                "clients=%s", cfg->clients);
    return 0;
}

srv_auth *srv_auth_new(void *zctx, const srv_config *cfg, char *why, size_t why_len)
{
    srv_auth *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    srv_hs_init(&a->hs);
    a->mode = cfg->security;
    a->rate_per_key = cfg->rate_per_key;
    a->burst = cfg->burst;
    snprintf(a->clients, sizeof a->clients, "%s", cfg->clients);
    a->log_rate = srv_ratelimit_new(S_LOG_RATE, S_LOG_BURST, 1);
    if (cfg->rate_per_key > 0)
        a->rate = srv_ratelimit_new(cfg->rate_per_key, cfg->burst, 65536);
    if (!a->log_rate || (cfg->rate_per_key > 0 && !a->rate)) {
        snprintf(why, why_len, "out of memory");
        srv_auth_free(&a);
        return NULL;
    }
    if (a->mode == CFG_SECURITY_CURVE && s_start_curve(a, zctx, cfg, why, why_len)) {
        srv_auth_free(&a);
        return NULL;
    }
    if (a->mode == CFG_SECURITY_NONE && (cfg->server_key[0] || cfg->clients[0]))
        srv_log(SRV_WARN, "msg=\"security.server_key and security.clients are ignored: "
                "security.mode = none\"");
    return a;
}

int srv_auth_frontend(srv_auth *a, void *router, char *why, size_t why_len)
{
    if (a->mode != CFG_SECURITY_CURVE)
        return 0;
    int one = 1;
    int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    /* Z85 text with its NUL: 41 bytes. */
    if (zmq_setsockopt(router, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, a->server.sec, sizeof a->server.sec) ||
        zmq_setsockopt(router, ZMQ_ZAP_DOMAIN, "attnd", 5) ||
        zmq_socket_monitor(router, S_MONITOR, events)) {
        snprintf(why, why_len, "cannot make the client socket a CURVE server: %s",
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    sodium_memzero(a->server.sec, sizeof a->server.sec);   /* the socket has its copy */
    return 0;
}

void srv_auth_unwatch(srv_auth *a, void *router)
{
    if (a && a->mode == CFG_SECURITY_CURVE && router)
        zmq_socket_monitor(router, NULL, 0);
}

void srv_auth_free(srv_auth **a_p)
{
    srv_auth *a = *a_p;
    if (!a)
        return;
    *a_p = NULL;
    if (a->running)
        pthread_join(a->thread, NULL);   /* it closed its sockets at ETERM */
    else
        s_close_sockets(a);
    srv_allow_free(&a->allow);
    srv_ratelimit_free(&a->rate);
    srv_ratelimit_free(&a->log_rate);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* ---- per request, reload, cron, metrics: the main thread ------------------ */

/* The caller's name for its bucket in mode none: the peer's address when
 * libzmq knows it, else the connection. */
static const char *s_peer_name(zmq_msg_t *route, zmq_msg_t *payload, size_t *len)
{
    const char *addr = zmq_msg_gets(payload, "Peer-Address");
    if (addr && *addr) {
        *len = strlen(addr);
        return addr;
    }
    *len = zmq_msg_size(route);
    return zmq_msg_data(route);
}

int srv_auth_admit(srv_auth *a, zmq_msg_t *route, zmq_msg_t *payload, uint64_t now,
                   int *role, uint64_t *retry_ns, char *why, size_t why_len)
{
    *role = SRV_ROLE_ADMIN;
    *retry_ns = 0;
    const char *who = NULL;
    size_t who_len = 0;
    if (a->mode == CFG_SECURITY_CURVE) {
        /* The key ZAP accepted, looked up in the list as it is now. */
        const char *uid = zmq_msg_gets(payload, "User-Id");
        int r = uid && strlen(uid) == UTIL_KEY_Z85 ? srv_allow_role(a->allow, uid, NULL) : -1;
        if (r < 0) {
            s_refuse(a, SRV_REFUSED_REVOKED, zmq_msg_gets(payload, "Peer-Address"), 0, uid);
            snprintf(why, why_len, "this client's key is no longer in security.clients "
                     "(revoked by a reload)");
            return SRV_E_FORBIDDEN;
        }
        *role = r;
        who = uid;
        who_len = UTIL_KEY_Z85;
    }
    if (!a->rate)
        return SRV_OK;
    if (!who)
        who = s_peer_name(route, payload, &who_len);
    if (srv_ratelimit_take(a->rate, who, who_len, now, retry_ns))
        return SRV_OK;
    snprintf(why, why_len, "over security.rate_per_key (%g requests/s, burst %d): retry after "
             "%llu ms", a->rate_per_key, a->burst,
             (unsigned long long)((*retry_ns + 999999) / 1000000));
    return SRV_E_RATE_LIMITED;
}

int srv_auth_reload(srv_auth *a)
{
    if (a->mode != CFG_SECURITY_CURVE)
        return 0;
    char why[600];
    srv_allow *fresh = srv_allow_load(a->clients, why, sizeof why);
    if (!fresh) {
        atomic_fetch_add(&a->allow_reload_failures, 1);
        srv_log(SRV_ERROR, "msg=\"allow-list not reloaded, the previous one stays\" "
                "reason=\"%s\"", why);
        return -1;
    }
    pthread_mutex_lock(&a->lock);
    srv_allow *old = a->allow;
    a->allow = fresh;
    pthread_mutex_unlock(&a->lock);
    atomic_store(&a->keys, srv_allow_count(fresh));
    srv_log(SRV_INFO, "msg=\"allow-list reloaded\" clients=%s keys=%zu was=%zu", a->clients,
            srv_allow_count(fresh), srv_allow_count(old));
    srv_allow_free(&old);
    atomic_fetch_add(&a->allow_reloads, 1);
    return 0;
}

void srv_auth_cron(srv_auth *a, uint64_t now)
{
    if (a->rate)
        srv_ratelimit_sweep(a->rate, now);
    uint64_t held = atomic_load(&a->c.log_suppressed);
    if (held != a->summarised && now >= a->next_summary) {
        srv_log(SRV_WARN, "msg=\"refusals not logged: over the log limit\" count=%llu "
                "limit_per_s=%g", (unsigned long long)(held - a->summarised), S_LOG_RATE);
        a->summarised = held;
        a->next_summary = now + S_SUMMARY_NS;
    }
}

void srv_auth_collect(srv_auth *a, srv_sec_view *v)
{
    memset(v, 0, sizeof *v);
    if (!a)
        return;
    v->mode = a->mode;
    for (int r = 0; r < SRV_REFUSED_COUNT; r++)
        v->refused[r] = atomic_load(&a->c.refused[r]);
    v->accepted = atomic_load(&a->c.accepted);
    v->log_suppressed = atomic_load(&a->c.log_suppressed);
    v->allow_reloads = atomic_load(&a->allow_reloads);
    v->allow_reload_failures = atomic_load(&a->allow_reload_failures);
    v->keys = atomic_load(&a->keys);
}
