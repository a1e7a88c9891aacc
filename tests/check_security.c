/* check_security.c -- access control and fairness (docs/SECURITY.md): key
 * files and attnctl keygen, the allow-list, token buckets, the safe
 * defaults of the configuration, the ZAP handler on real sockets, and
 * attnd end to end with CURVE on: allowed, unknown key, plain text, wrong
 * server key, role denied, revoked after a reload, rate limited.
 *
 * Every daemon binds an ipc:// endpoint in the suite's temporary folder;
 * each case bounds its own time.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "daemon/allowlist.h"
#include "daemon/auth.h"
#include "daemon/config.h"
#include "daemon/handshake.h"
#include "daemon/log.h"
#include "daemon/ops.h"
#include "daemon/proto.h"
#include "daemon/ratelimit.h"
#include "tests/testutil.h"
#include "tests/tu_daemon.h"
#include "tests/tu_http.h"
#include "util/keyfile.h"

/* A fresh key pair <tmp>/<name>.key{,_secret}; out gets its keys. */
static util_key s_keygen(const char *name)
{
    util_key k;
    char why[600];
    char base[300];
    snprintf(base, sizeof base, "%s", tu_path(name));
    char pub[320], sec[320];
    snprintf(pub, sizeof pub, "%s.key", base);
    snprintf(sec, sizeof sec, "%s.key_secret", base);
    unlink(pub);
    unlink(sec);
    ck_assert_msg(util_key_generate(base, &k, why, sizeof why) == 0, "%s", why);
    return k;
}

static int s_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

/* Lines of path holding every one of the needles. */
static int s_count_lines(const char *path, const char *a, const char *b)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, a) && (!b || strstr(line, b));
    fclose(f);
    return n;
}

/* ---- key files ------------------------------------------------------------ */

START_TEST(keys_generate_read_and_refuse)
{
    char why[600];
    util_key k = s_keygen("alice"), r;
    struct stat st;
    ck_assert_int_eq(stat(tu_path("alice.key_secret"), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(stat(tu_path("alice.key"), &st), 0);
    ck_assert(S_ISREG(st.st_mode) && (st.st_mode & S_IRUSR));
    /* Round trip: the public file holds only the public key. */
    ck_assert_int_eq(util_key_read(tu_path("alice.key"), 0, &r, why, sizeof why), 0);
    ck_assert_str_eq(r.pub, k.pub);
    ck_assert_str_eq(r.sec, "");
    ck_assert_int_eq(util_key_read(tu_path("alice.key_secret"), UTIL_KEY_SECRET, &r, why,
                                   sizeof why), 0);
    ck_assert_str_eq(r.pub, k.pub);
    ck_assert_str_eq(r.sec, k.sec);
    /* The public file is not a secret one. */
    ck_assert_int_eq(util_key_read(tu_path("alice.key"), UTIL_KEY_SECRET, &r, why, sizeof why),
                     -1);
    ck_assert_msg(strstr(why, "no secret-key"), "%s", why);
    /* Never overwritten. */
    util_key again;
    ck_assert_int_eq(util_key_generate(tu_path("alice"), &again, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "exists"), "%s", why);
    ck_assert_int_eq(util_key_read(tu_path("alice.key_secret"), UTIL_KEY_SECRET, &r, why,
                                   sizeof why), 0);
    ck_assert_str_eq(r.sec, k.sec);
    /* A secret key group or others can read is refused, naming the fix. */
    ck_assert_int_eq(chmod(tu_path("alice.key_secret"), 0640), 0);
    ck_assert_int_eq(util_key_read(tu_path("alice.key_secret"), UTIL_KEY_SECRET, &r, why,
                                   sizeof why), -1);
    ck_assert_msg(strstr(why, "chmod 600") && strstr(why, "0640"), "%s", why);
    ck_assert_int_eq(chmod(tu_path("alice.key_secret"), 0600), 0);
}
END_TEST

START_TEST(keys_format_errors_and_zcert)
{
    char why[600];
    util_key k = s_keygen("bob"), r;
    /* CZMQ's zcert layout: sections, indentation, quoted values, metadata. */
    char text[600];
    snprintf(text, sizeof text, "#   ZeroMQ CURVE Public Certificate\n\nmetadata\n"
             "    name = \"bob\"\ncurve\n    public-key = \"%s\"\n", k.pub);
    tu_write_file(tu_path("zcert.key"), text, strlen(text));
    ck_assert_int_eq(util_key_read(tu_path("zcert.key"), 0, &r, why, sizeof why), 0);
    ck_assert_str_eq(r.pub, k.pub);
    /* A value that is not Z85 names the file and line. */
    const char *bad = "# x\npublic-key = \"not a key\"\n";
    tu_write_file(tu_path("bad.key"), bad, strlen(bad));
    ck_assert_int_eq(util_key_read(tu_path("bad.key"), 0, &r, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "bad.key:2:") && strstr(why, "Z85"), "%s", why);
    /* 40 characters, one outside the Z85 alphabet (a space is not in it). */
    char key[41];
    memcpy(key, k.pub, 41);
    key[7] = '~';
    ck_assert_int_eq(util_key_valid(key, 40), 0);
    ck_assert_int_eq(util_key_valid(k.pub, 40), 1);
    ck_assert_int_eq(util_key_valid(k.pub, 39), 0);
    /* Text that is no key file at all. */
    const char *junk = "hello world, this is not a key\n";
    tu_write_file(tu_path("junk.key"), junk, strlen(junk));
    ck_assert_int_eq(util_key_read(tu_path("junk.key"), 0, &r, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "junk.key:1:"), "%s", why);
    /* A secret file whose public line belongs to another pair. */
    util_key other = s_keygen("carol");
    snprintf(text, sizeof text, "public-key = \"%s\"\nsecret-key = \"%s\"\n", other.pub, k.sec);
    tu_write_file(tu_path("mixed.key_secret"), text, strlen(text));
    chmod(tu_path("mixed.key_secret"), 0600);
    ck_assert_int_eq(util_key_read(tu_path("mixed.key_secret"), UTIL_KEY_SECRET, &r, why,
                                   sizeof why), -1);
    ck_assert_msg(strstr(why, "does not belong"), "%s", why);
    ck_assert_int_eq(util_key_read(tu_path("missing.key"), 0, &r, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "missing.key: cannot open"), "%s", why);
}
END_TEST

START_TEST(keygen_command)
{
    char out[2048], args[600];
    snprintf(args, sizeof args, "keygen %s", tu_path("cmd"));
    unlink(tu_path("cmd.key"));
    unlink(tu_path("cmd.key_secret"));
    ck_assert_int_eq(tu_run_program("attnctl", args, out, sizeof out), 0);
    util_key r;
    char why[600];
    ck_assert_int_eq(util_key_read(tu_path("cmd.key_secret"), UTIL_KEY_SECRET, &r, why,
                                   sizeof why), 0);
    ck_assert_msg(strstr(out, r.pub), "%s", out);
    ck_assert_int_eq(tu_run_program("attnctl", args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "never overwrites"), "%s", out);
    ck_assert_int_eq(tu_run_program("attnctl", "keygen", out, sizeof out), 2);
}
END_TEST

/* ---- the allow-list ------------------------------------------------------- */

static void s_put_key(const char *dir, const char *file, const util_key *k)
{
    char path[1024], text[200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    snprintf(text, sizeof text, "public-key = \"%s\"\n", k->pub);
    tu_write_file(path, text, strlen(text));
}

START_TEST(allowlist_folders_and_file)
{
    char why[600];
    util_key a = s_keygen("al_a"), b = s_keygen("al_b"), c = s_keygen("al_c");
    char dir[300], sub[340];
    snprintf(dir, sizeof dir, "%s", tu_path("clients_ok"));
    mkdir(dir, 0755);
    const char *roles[] = {"query", "write", "admin"};
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, roles[i]);
        mkdir(sub, 0755);
    }
    snprintf(sub, sizeof sub, "%s/query", dir);
    s_put_key(sub, "a.key", &a);
    tu_write_file(tu_path("clients_ok/query/README"), "notes\n", 6);
    snprintf(sub, sizeof sub, "%s/admin", dir);
    s_put_key(sub, "c.key", &c);
    srv_allow *al = srv_allow_load(dir, why, sizeof why);
    ck_assert_msg(al != NULL, "%s", why);
    ck_assert_int_eq(srv_allow_count(al), 2);
    const char *name;
    ck_assert_int_eq(srv_allow_role(al, a.pub, &name), SRV_ROLE_QUERY);
    ck_assert_str_eq(name, "a");
    ck_assert_int_eq(srv_allow_role(al, c.pub, NULL), SRV_ROLE_ADMIN);
    ck_assert_int_eq(srv_allow_role(al, b.pub, &name), -1);
    ck_assert_ptr_null(name);
    srv_allow_free(&al);
    srv_allow_free(&al);   /* NULL is fine */

    /* The file form; keys may start with '#', comments may follow. */
    char text[600];
    snprintf(text, sizeof text, "# who may rank\nquery %s web-frontend\n\nwrite %s  # ingest\n"
             "admin %s\n", a.pub, b.pub, c.pub);
    tu_write_file(tu_path("clients.txt"), text, strlen(text));
    al = srv_allow_load(tu_path("clients.txt"), why, sizeof why);
    ck_assert_msg(al != NULL, "%s", why);
    ck_assert_int_eq(srv_allow_role(al, a.pub, &name), SRV_ROLE_QUERY);
    ck_assert_str_eq(name, "web-frontend");
    ck_assert_int_eq(srv_allow_role(al, b.pub, &name), SRV_ROLE_WRITE);
    ck_assert_str_eq(name, "line4");   /* a comment is no name */
    ck_assert_int_eq(srv_allow_role(al, c.pub, &name), SRV_ROLE_ADMIN);
    ck_assert_str_eq(name, "line5");
    srv_allow_free(&al);
}
END_TEST

/* Each broken list is refused whole, naming the file and the problem. */
START_TEST(allowlist_errors)
{
    char why[600];
    util_key a = s_keygen("er_a");
    static const struct {
        const char *text, *expect;
    } files[] = {
        {"reader %s\n", "ROLE one of query, write, admin"},
        {"query\n", "expected ROLE KEY"},
        {"query abc\n", "Z85 public key"},
        {"query %s one\nadmin %s two\n", "listed twice (one and two)"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char text[300];
        snprintf(text, sizeof text, files[i].text, a.pub, a.pub);
        tu_write_file(tu_path("bad_list.txt"), text, strlen(text));
        srv_allow *al = srv_allow_load(tu_path("bad_list.txt"), why, sizeof why);
        ck_assert_ptr_null(al);
        ck_assert_msg(strstr(why, files[i].expect) && strstr(why, "bad_list.txt"),
                      "case %zu: %s", i, why);
    }
    /* Folder form: a key outside a role folder, an unknown role, a secret. */
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s", tu_path("clients_bad"));
    mkdir(dir, 0755);
    s_put_key(dir, "loose.key", &a);
    ck_assert_ptr_null(srv_allow_load(dir, why, sizeof why));
    ck_assert_msg(strstr(why, "loose.key") && strstr(why, "the folder is the role"), "%s", why);
    snprintf(path, sizeof path, "%s/loose.key", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/readers", dir);
    mkdir(path, 0755);
    ck_assert_ptr_null(srv_allow_load(dir, why, sizeof why));
    ck_assert_msg(strstr(why, "readers"), "%s", why);
    rmdir(path);
    snprintf(path, sizeof path, "%s/admin", dir);
    mkdir(path, 0755);
    char src[1024];
    snprintf(src, sizeof src, "%s/er_a.key_secret", path);
    char text[200];
    snprintf(text, sizeof text, "secret-key = \"%s\"\n", a.sec);
    tu_write_file(src, text, strlen(text));
    ck_assert_ptr_null(srv_allow_load(dir, why, sizeof why));
    ck_assert_msg(strstr(why, "secret key does not belong"), "%s", why);
    unlink(src);
    /* A secret key renamed to NAME.key. */
    snprintf(src, sizeof src, "%s/sneaky.key", path);
    tu_write_file(src, text, strlen(text));
    ck_assert_ptr_null(srv_allow_load(dir, why, sizeof why));
    ck_assert_msg(strstr(why, "holds a secret key"), "%s", why);
    unlink(src);
    ck_assert_ptr_null(srv_allow_load(tu_path("no_such_list"), why, sizeof why));
    ck_assert_msg(strstr(why, "no_such_list"), "%s", why);
    /* An empty folder is a valid (empty) list. */
    srv_allow *al = srv_allow_load(dir, why, sizeof why);
    ck_assert_msg(al != NULL, "%s", why);
    ck_assert_int_eq(srv_allow_count(al), 0);
    srv_allow_free(&al);
    ck_assert_int_eq(srv_role_parse("admin", 5), SRV_ROLE_ADMIN);
    ck_assert_int_eq(srv_role_parse("adm", 3), -1);
    ck_assert_str_eq(srv_role_name(SRV_ROLE_WRITE), "write");
}
END_TEST

/* ---- token buckets -------------------------------------------------------- */

START_TEST(ratelimit_buckets)
{
    /* 10/s, burst 3: three at once, then one per 100 ms; callers apart. */
    srv_ratelimit *rl = srv_ratelimit_new(10.0, 3, 4);
    ck_assert_ptr_nonnull(rl);
    uint64_t t = 1000000000ull, retry;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(srv_ratelimit_take(rl, "a", 1, t, &retry), 1);
    ck_assert_int_eq(srv_ratelimit_take(rl, "a", 1, t, &retry), 0);
    ck_assert_msg(retry > 99000000 && retry <= 100000001, "retry %llu", (unsigned long long)retry);
    ck_assert_int_eq(srv_ratelimit_take(rl, "b", 1, t, &retry), 1);   /* b has its own */
    ck_assert_int_eq(srv_ratelimit_take(rl, "a", 1, t + 50000000, &retry), 0);
    ck_assert_msg(retry > 49000000 && retry <= 50000001, "retry %llu", (unsigned long long)retry);
    ck_assert_int_eq(srv_ratelimit_take(rl, "a", 1, t + 100000000, &retry), 1);
    ck_assert_int_eq(srv_ratelimit_take(rl, "a", 1, t + 100000000, &retry), 0);
    /* Refills to the burst, never beyond it. */
    uint64_t later = t + 10000000000ull;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(srv_ratelimit_take(rl, "a", 1, later, &retry), 1);
    ck_assert_int_eq(srv_ratelimit_take(rl, "a", 1, later, &retry), 0);
    /* Keys differ by their bytes, whatever their length. */
    ck_assert_int_eq(srv_ratelimit_take(rl, "ab", 2, later, &retry), 1);
    /* The sweep forgets full buckets and keeps busy ones. */
    ck_assert_int_eq(srv_ratelimit_sweep(rl, later), 2);   /* a (empty) and ab */
    ck_assert_int_eq(srv_ratelimit_sweep(rl, later + 10000000000ull), 0);
    srv_ratelimit_free(&rl);
    srv_ratelimit_free(&rl);

    /* Past max callers, newcomers share one bucket: memory stays bounded. */
    rl = srv_ratelimit_new(1.0, 1, 2);
    ck_assert_int_eq(srv_ratelimit_take(rl, "x", 1, t, &retry), 1);
    ck_assert_int_eq(srv_ratelimit_take(rl, "y", 1, t, &retry), 1);
    ck_assert_int_eq(srv_ratelimit_take(rl, "z", 1, t, &retry), 1);   /* the overflow's token */
    ck_assert_int_eq(srv_ratelimit_take(rl, "w", 1, t, &retry), 0);   /* shared and spent */
    srv_ratelimit_free(&rl);

    /* Many callers: the table grows and every one keeps its own bucket. */
    rl = srv_ratelimit_new(1.0, 1, 100000);
    char key[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(srv_ratelimit_take(rl, key, strlen(key), t, &retry), 1);
    }
    for (int i = 0; i < 5000; i += 97) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(srv_ratelimit_take(rl, key, strlen(key), t, &retry), 0);
    }
    srv_ratelimit_free(&rl);
}
END_TEST

/* ---- safe defaults in the configuration ----------------------------------- */

START_TEST(config_safe_defaults)
{
    srv_config cfg;
    char why[600];
    cfg_defaults(&cfg);
    ck_assert_int_eq(cfg.security, CFG_SECURITY_NONE);
    ck_assert(cfg_bind_is_local(cfg.bind));
    static const char *local[] = {"tcp://127.0.0.1:5555", "tcp://127.1.2.3:1", "tcp://localhost:9",
                                  "tcp://[::1]:5555", "tcp://lo:7", "ipc:///tmp/a.sock",
                                  "inproc://x"};
    static const char *remote[] = {"tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://10.0.0.1:1",
                                   "tcp://eth0:5555", "tcp://128.0.0.1:1", "tcp://127.0.0.1.5:1",
                                   "tcp://[::]:5555", "tcp://example.com:80",
                                   "tcp://127.0.0.1:1;10.0.0.1:2"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        ck_assert_msg(cfg_bind_is_local(local[i]), "%s", local[i]);
    for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++)
        ck_assert_msg(!cfg_bind_is_local(remote[i]), "%s", remote[i]);
    /* Plain text on a routable address needs the operator's say-so. */
    ck_assert_int_eq(cfg_set(&cfg, "server.bind", "tcp://*:5555", why, sizeof why), 0);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "security.allow_plaintext") && strstr(why, "tcp://*:5555"), "%s",
                  why);
    ck_assert_int_eq(cfg_set(&cfg, "security.allow_plaintext", "on", why, sizeof why), 0);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), 0);
    /* CURVE needs its key and its list, and then may bind anywhere. */
    cfg_defaults(&cfg);
    ck_assert_int_eq(cfg_set(&cfg, "server.bind", "tcp://*:5555", why, sizeof why), 0);
    ck_assert_int_eq(cfg_set(&cfg, "security.mode", "curve", why, sizeof why), 0);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), -1);
    ck_assert_msg(strstr(why, "security.server_key"), "%s", why);
    ck_assert_int_eq(cfg_set(&cfg, "security.server_key", "s.key_secret", why, sizeof why), 0);
    ck_assert_int_eq(cfg_set(&cfg, "security.clients", "clients", why, sizeof why), 0);
    ck_assert_int_eq(cfg_validate(&cfg, why, sizeof why), 0);
    ck_assert_int_eq(cfg_set(&cfg, "security.mode", "tls", why, sizeof why), -1);
    ck_assert_msg(strstr(why, "none, curve"), "%s", why);
    ck_assert_int_eq(cfg_set(&cfg, "security.rate_per_key", "-1", why, sizeof why), -1);
    ck_assert_int_eq(cfg_set(&cfg, "security.burst", "0", why, sizeof why), -1);
    ck_assert_str_eq(srv_code_name(SRV_E_FORBIDDEN), "forbidden");
    ck_assert_str_eq(srv_code_name(SRV_E_RATE_LIMITED), "rate_limited");
}
END_TEST

/* ---- the ZAP handler on real sockets, in this process --------------------- */

typedef struct s_zap_env {
    void *ctx, *router;
    srv_auth *auth;
    char ep[300];
    util_key server, alice, bob;      /* alice: query, bob: admin */
    tu_curve as_alice, as_bob;
} s_zap_env;

static void s_curve_of(tu_curve *c, const util_key *server, const util_key *client)
{
    memcpy(c->server, server->pub, 41);
    memcpy(c->pub, client->pub, 41);
    memcpy(c->sec, client->sec, 41);
}

static void s_zap_start(s_zap_env *e, const char *list_text, double rate, int burst)
{
    char why[600];
    srv_log_set_level("error");   /* the refusals are expected: keep the test output clean */
    e->server = s_keygen("zap_server");
    tu_write_file(tu_path("zap_clients.txt"), list_text, strlen(list_text));
    srv_config cfg;
    cfg_defaults(&cfg);
    cfg.security = CFG_SECURITY_CURVE;
    snprintf(cfg.server_key, sizeof cfg.server_key, "%s", tu_path("zap_server.key_secret"));
    snprintf(cfg.clients, sizeof cfg.clients, "%s", tu_path("zap_clients.txt"));
    cfg.rate_per_key = rate;
    cfg.burst = burst;
    e->ctx = zmq_ctx_new();
    e->auth = srv_auth_new(e->ctx, &cfg, why, sizeof why);
    ck_assert_msg(e->auth != NULL, "%s", why);
    e->router = zmq_socket(e->ctx, ZMQ_ROUTER);
    ck_assert_int_eq(srv_auth_frontend(e->auth, e->router, why, sizeof why), 0);
    snprintf(e->ep, sizeof e->ep, "ipc://%s", tu_path("zap.sock"));
    ck_assert_int_eq(zmq_bind(e->router, e->ep), 0);
}

static void s_zap_stop(s_zap_env *e)
{
    int zero = 0;
    srv_auth_unwatch(e->auth, e->router);
    zmq_setsockopt(e->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(e->router);
    zmq_ctx_term(e->ctx);
    srv_auth_free(&e->auth);
    ck_assert_ptr_null(e->auth);
}

static void *s_client(void *ctx, const char *ep, const tu_curve *k)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    tu_curve_apply(s, k);
    ck_assert_int_eq(zmq_connect(s, ep), 0);
    return s;
}

/* One [route][payload] off the router within ms, or 0. */
static int s_router_recv(void *router, zmq_msg_t *route, zmq_msg_t *payload, int ms)
{
    zmq_pollitem_t it = {.socket = router, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, ms) <= 0)
        return 0;
    ck_assert_int_ge(zmq_msg_recv(route, router, 0), 0);
    ck_assert_int_ge(zmq_msg_recv(payload, router, 0), 0);
    return 1;
}

static uint64_t s_refused(srv_auth *a, int reason)
{
    srv_sec_view v;
    srv_auth_collect(a, &v);
    return v.refused[reason];
}

/* Wait (bounded) until the ZAP thread counted refusals of these kinds
 * (other: a second kind that counts too, or -1). */
static int s_wait_refused(srv_auth *a, int reason, int other, uint64_t at_least)
{
    double end = tu_now() + 5 * tu_slowdown();
    while (tu_now() < end) {
        if (s_refused(a, reason) + (other >= 0 ? s_refused(a, other) : 0) >= at_least)
            return 1;
        usleep(10000);
    }
    return 0;
}

START_TEST(zap_roles_refusals_and_reload)
{
    s_zap_env e;
    char why[300], list[400];
    memset(&e, 0, sizeof e);
    e.alice = s_keygen("zap_alice");
    e.bob = s_keygen("zap_bob");
    util_key eve = s_keygen("zap_eve");
    snprintf(list, sizeof list, "query %s alice\nadmin %s bob\n", e.alice.pub, e.bob.pub);
    s_zap_start(&e, list, 0, 100);
    s_curve_of(&e.as_alice, &e.server, &e.alice);
    s_curve_of(&e.as_bob, &e.server, &e.bob);

    /* Allowed keys: the role rides on the message through User-Id. */
    void *ca = s_client(e.ctx, e.ep, &e.as_alice), *cb = s_client(e.ctx, e.ep, &e.as_bob);
    ck_assert_int_eq(zmq_send(ca, "a", 1, 0), 1);
    ck_assert_int_eq(zmq_send(cb, "b", 1, 0), 1);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        zmq_msg_t route, payload;
        zmq_msg_init(&route);
        zmq_msg_init(&payload);
        ck_assert(s_router_recv(e.router, &route, &payload, (int)(5000 * tu_slowdown())));
        int role;
        uint64_t retry;
        ck_assert_int_eq(srv_auth_admit(e.auth, &route, &payload, 1, &role, &retry, why,
                                        sizeof why), SRV_OK);
        const char *uid = zmq_msg_gets(&payload, "User-Id");
        ck_assert_ptr_nonnull(uid);
        if (*(char *)zmq_msg_data(&payload) == 'a') {
            ck_assert_str_eq(uid, e.alice.pub);
            ck_assert_int_eq(role, SRV_ROLE_QUERY);
            seen |= 1;
        } else {
            ck_assert_str_eq(uid, e.bob.pub);
            ck_assert_int_eq(role, SRV_ROLE_ADMIN);
            seen |= 2;
        }
        zmq_msg_close(&route);
        zmq_msg_close(&payload);
    }
    ck_assert_int_eq(seen, 3);

    /* An unknown key and a plain-text client never get a message through. */
    tu_curve as_eve;
    s_curve_of(&as_eve, &e.server, &eve);
    void *ce = s_client(e.ctx, e.ep, &as_eve), *cp = s_client(e.ctx, e.ep, NULL);
    zmq_send(ce, "e", 1, ZMQ_DONTWAIT);
    zmq_send(cp, "p", 1, ZMQ_DONTWAIT);
    ck_assert(s_wait_refused(e.auth, SRV_REFUSED_KEY, -1, 1));
    /* plaintext when attnd saw the mismatch first, else an abandoned handshake */
    ck_assert(s_wait_refused(e.auth, SRV_REFUSED_PLAINTEXT, SRV_REFUSED_HANDSHAKE, 1));
    zmq_msg_t route, payload;
    zmq_msg_init(&route);
    zmq_msg_init(&payload);
    ck_assert_int_eq(s_router_recv(e.router, &route, &payload, 300), 0);

    /* A reload that drops alice: her open connection is refused from then on. */
    snprintf(list, sizeof list, "admin %s bob\n", e.bob.pub);
    tu_write_file(tu_path("zap_clients.txt"), list, strlen(list));
    ck_assert_int_eq(srv_auth_reload(e.auth), 0);
    ck_assert_int_eq(zmq_send(ca, "a", 1, 0), 1);
    ck_assert(s_router_recv(e.router, &route, &payload, (int)(5000 * tu_slowdown())));
    int role;
    uint64_t retry;
    ck_assert_int_eq(srv_auth_admit(e.auth, &route, &payload, 1, &role, &retry, why, sizeof why),
                     SRV_E_FORBIDDEN);
    ck_assert_msg(strstr(why, "revoked"), "%s", why);
    ck_assert_uint_eq(s_refused(e.auth, SRV_REFUSED_REVOKED), 1);
    /* A broken list on reload keeps the current one. */
    tu_write_file(tu_path("zap_clients.txt"), "admin nope\n", 11);
    ck_assert_int_eq(srv_auth_reload(e.auth), -1);
    srv_sec_view v;
    srv_auth_collect(e.auth, &v);
    ck_assert_uint_eq(v.keys, 1);
    ck_assert_uint_eq(v.allow_reloads, 1);
    ck_assert_uint_eq(v.allow_reload_failures, 1);
    ck_assert_uint_ge(v.accepted, 2);
    zmq_msg_close(&route);
    zmq_msg_close(&payload);
    zmq_close(ca);
    zmq_close(cb);
    zmq_close(ce);
    zmq_close(cp);
    s_zap_stop(&e);
}
END_TEST

START_TEST(zap_wrong_server_key_and_rate)
{
    s_zap_env e;
    char why[300], list[200];
    memset(&e, 0, sizeof e);
    e.alice = s_keygen("zr_alice");
    snprintf(list, sizeof list, "query %s\n", e.alice.pub);
    s_zap_start(&e, list, 2.0, 2);   /* 2 requests/s, burst 2 */
    /* The right client key against the wrong server key: no handshake. */
    util_key other = s_keygen("zr_other");
    tu_curve wrong;
    s_curve_of(&wrong, &other, &e.alice);
    void *cw = s_client(e.ctx, e.ep, &wrong);
    zmq_send(cw, "w", 1, ZMQ_DONTWAIT);
    ck_assert(s_wait_refused(e.auth, SRV_REFUSED_HANDSHAKE, -1, 1));
    zmq_msg_t route, payload;
    zmq_msg_init(&route);
    zmq_msg_init(&payload);
    ck_assert_int_eq(s_router_recv(e.router, &route, &payload, 300), 0);
    zmq_close(cw);

    /* Rate: two at once, the third waits about half a second. */
    s_curve_of(&e.as_alice, &e.server, &e.alice);
    void *ca = s_client(e.ctx, e.ep, &e.as_alice);
    int codes[3];
    uint64_t retry = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(zmq_send(ca, "a", 1, 0), 1);
        ck_assert(s_router_recv(e.router, &route, &payload, (int)(5000 * tu_slowdown())));
        int role;
        codes[i] = srv_auth_admit(e.auth, &route, &payload, 5000000000ull, &role, &retry, why,
                                  sizeof why);
    }
    ck_assert_int_eq(codes[0], SRV_OK);
    ck_assert_int_eq(codes[1], SRV_OK);
    ck_assert_int_eq(codes[2], SRV_E_RATE_LIMITED);
    ck_assert_msg(retry > 400000000 && retry <= 500000000, "%llu", (unsigned long long)retry);
    ck_assert_msg(strstr(why, "retry after 500 ms"), "%s", why);
    /* A malformed ZAP request gets 500, and the handler goes on answering. */
    void *z = zmq_socket(e.ctx, ZMQ_REQ);
    int tmo = (int)(5000 * tu_slowdown()), zero = 0;
    zmq_setsockopt(z, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(z, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_connect(z, SRV_ZAP_ENDPOINT), 0);
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(zmq_send(z, "1.0", 3, 0), 3);
        char f[6][64];
        int n = 0, more = 1;
        while (more && n < 6) {
            ck_assert_int_ge(zmq_recv(z, f[n], sizeof f[n], 0), 0);
            size_t ml = sizeof more;
            zmq_getsockopt(z, ZMQ_RCVMORE, &more, &ml);
            n++;
        }
        ck_assert_int_eq(n, 6);
        ck_assert(!memcmp(f[2], "500", 3));
    }
    zmq_close(z);
    zmq_send(ca, "a", 1, 0);   /* and the real clients are still served */
    ck_assert(s_router_recv(e.router, &route, &payload, (int)(5000 * tu_slowdown())));
    zmq_msg_close(&route);
    zmq_msg_close(&payload);
    zmq_close(ca);
    s_zap_stop(&e);
}
END_TEST

START_TEST(auth_refuses_bad_start)
{
    char why[600];
    srv_log_set_level("error");
    srv_config cfg;
    cfg_defaults(&cfg);
    cfg.security = CFG_SECURITY_CURVE;
    s_keygen("bad_server");
    snprintf(cfg.server_key, sizeof cfg.server_key, "%s", tu_path("bad_server.key_secret"));
    snprintf(cfg.clients, sizeof cfg.clients, "%s", tu_path("no_such_clients"));
    void *ctx = zmq_ctx_new();
    ck_assert_ptr_null(srv_auth_new(ctx, &cfg, why, sizeof why));
    ck_assert_msg(strstr(why, "security.clients") && strstr(why, "no_such_clients"), "%s", why);
    tu_write_file(tu_path("empty_clients.txt"), "", 0);
    snprintf(cfg.clients, sizeof cfg.clients, "%s", tu_path("empty_clients.txt"));
    chmod(tu_path("bad_server.key_secret"), 0604);
    ck_assert_ptr_null(srv_auth_new(ctx, &cfg, why, sizeof why));
    ck_assert_msg(strstr(why, "security.server_key") && strstr(why, "chmod 600"), "%s", why);
    snprintf(cfg.server_key, sizeof cfg.server_key, "%s", tu_path("bad_server.key"));
    ck_assert_ptr_null(srv_auth_new(ctx, &cfg, why, sizeof why));
    ck_assert_msg(strstr(why, "no secret-key"), "%s", why);
    /* Mode none: no thread, everyone admin, no limit. */
    cfg_defaults(&cfg);
    srv_auth *a = srv_auth_new(ctx, &cfg, why, sizeof why);
    ck_assert_ptr_nonnull(a);
    zmq_msg_t route, payload;
    zmq_msg_init_size(&route, 5);
    memcpy(zmq_msg_data(&route), "peer1", 5);
    zmq_msg_init(&payload);
    int role;
    uint64_t retry;
    ck_assert_int_eq(srv_auth_admit(a, &route, &payload, 1, &role, &retry, why, sizeof why),
                     SRV_OK);
    ck_assert_int_eq(role, SRV_ROLE_ADMIN);
    zmq_msg_close(&route);
    zmq_msg_close(&payload);
    srv_auth_free(&a);
    zmq_ctx_term(ctx);
}
END_TEST

/* ---- the handshake verdicts, from monitor events alone -------------------- */

typedef struct s_refusals {
    int n, reason[16];
} s_refusals;

static void s_note(void *ctx, int reason, const char *addr, unsigned port)
{
    s_refusals *r = ctx;
    (void)port;
    ck_assert_ptr_nonnull(addr);
    if (r->n < 16)
        r->reason[r->n] = reason;
    r->n++;
}

START_TEST(handshake_verdicts)
{
    srv_hs h;
    s_refusals r = {0};
    srv_hs_init(&h);
    /* Pinned: one connection mid-handshake at a time. */
    srv_hs_event(&h, ZMQ_EVENT_ACCEPTED, 900, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL,
                 ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, s_note, &r);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.reason[0], SRV_REFUSED_PLAINTEXT);
    srv_hs_event(&h, ZMQ_EVENT_DISCONNECTED, 900, s_note, &r);
    ck_assert_int_eq(r.n, 1);   /* settled already */
    srv_hs_event(&h, ZMQ_EVENT_ACCEPTED, 901, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_DISCONNECTED, 901, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_ACCEPTED, 902, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 400, s_note, &r);   /* ZAP counted it */
    srv_hs_event(&h, ZMQ_EVENT_DISCONNECTED, 902, s_note, &r);
    ck_assert_int_eq(r.n, 1);
    /* Abandoned: closed with no verdict. */
    srv_hs_event(&h, ZMQ_EVENT_ACCEPTED, 903, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_DISCONNECTED, 903, s_note, &r);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.reason[1], SRV_REFUSED_HANDSHAKE);
    /* Overlapping: a held failure goes to the first to close, then the
     * success is pinned to the one left. */
    srv_hs_event(&h, ZMQ_EVENT_ACCEPTED, 904, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_ACCEPTED, 905, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL,
                 ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC, s_note, &r);
    ck_assert_int_eq(r.n, 2);
    srv_hs_event(&h, ZMQ_EVENT_DISCONNECTED, 905, s_note, &r);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.reason[2], SRV_REFUSED_HANDSHAKE);
    srv_hs_event(&h, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_DISCONNECTED, 904, s_note, &r);
    ck_assert_int_eq(r.n, 3);
    /* A held success and an abandoned connection: the total stays right
     * (one refusal), whichever of the two closes first. */
    srv_hs_event(&h, ZMQ_EVENT_ACCEPTED, 906, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_ACCEPTED, 907, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 0, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_DISCONNECTED, 907, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_DISCONNECTED, 906, s_note, &r);
    ck_assert_int_eq(r.n, 4);
    /* Connections it never saw accepted, and other events, are no refusals. */
    srv_hs_event(&h, ZMQ_EVENT_DISCONNECTED, 999, s_note, &r);
    srv_hs_event(&h, ZMQ_EVENT_LISTENING, 3, s_note, &r);
    ck_assert_int_eq(r.n, 4);
}
END_TEST

/* ---- attnd end to end with CURVE ------------------------------------------ */

static char s_db[300];
static char s_clients[300];
static util_key s_server, s_alice, s_bob, s_carol, s_eve;   /* alice, carol: query; bob: admin */
static tu_curve s_as_alice, s_as_bob, s_as_carol, s_as_eve;

static void s_e2e_setup(void)
{
    snprintf(s_db, sizeof s_db, "%s", tu_path("sec.db"));
    tu_make_db(s_db, 300, 30, 16);
    s_server = s_keygen("server");
    s_alice = s_keygen("e_alice");
    s_bob = s_keygen("e_bob");
    s_carol = s_keygen("e_carol");
    s_eve = s_keygen("e_eve");
    s_curve_of(&s_as_alice, &s_server, &s_alice);
    s_curve_of(&s_as_bob, &s_server, &s_bob);
    s_curve_of(&s_as_carol, &s_server, &s_carol);
    s_curve_of(&s_as_eve, &s_server, &s_eve);
}

/* A fresh allow-list folder: alice and carol query, bob admin. */
static void s_fresh_clients(const char *name)
{
    char sub[400];
    snprintf(s_clients, sizeof s_clients, "%s", tu_path(name));
    mkdir(s_clients, 0755);
    snprintf(sub, sizeof sub, "%s/query", s_clients);
    mkdir(sub, 0755);
    s_put_key(sub, "alice.key", &s_alice);
    s_put_key(sub, "carol.key", &s_carol);
    snprintf(sub, sizeof sub, "%s/admin", s_clients);
    mkdir(sub, 0755);
    s_put_key(sub, "bob.key", &s_bob);
}

static void s_start(tu_daemon *d, const char *name, const char *const *more)
{
    static char key_arg[400], clients_arg[400];
    snprintf(key_arg, sizeof key_arg, "security.server_key=%s", tu_path("server.key_secret"));
    snprintf(clients_arg, sizeof clients_arg, "security.clients=%s", s_clients);
    const char *extra[24] = {"--set", "security.mode=curve", "--set", key_arg, "--set",
                             clients_arg};
    int n = 6;
    for (int i = 0; more && more[i] && n < 22; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    tu_daemon_start_curve(d, s_db, name, extra, &s_as_bob);
}

static cJSON *s_call(const tu_daemon *d, const char *json, const tu_curve *k)
{
    char *text = tu_call_curve(d->endpoint, json, (int)(10000 * tu_slowdown()), k);
    ck_assert_msg(text != NULL, "no reply to %s", json);
    cJSON *r = cJSON_Parse(text);
    ck_assert_msg(r != NULL, "not JSON: %s", text);
    free(text);
    return r;
}

/* stats.security.<path>, asked as bob. */
static long s_sec_stat(const tu_daemon *d, const char *group, const char *key)
{
    cJSON *r = s_call(d, "{\"op\":\"stats\"}", &s_as_bob);
    ck_assert(tu_ok(r));
    const cJSON *sec = cJSON_GetObjectItem(r, "security");
    const cJSON *g = group ? cJSON_GetObjectItem(sec, group) : sec;
    const cJSON *v = cJSON_GetObjectItem(g, key);
    ck_assert_msg(cJSON_IsNumber(v), "stats.security has no %s", key);
    long out = (long)v->valuedouble;
    cJSON_Delete(r);
    return out;
}

static long s_wait_sec_stat(const tu_daemon *d, const char *group, const char *key, long want)
{
    double end = tu_now() + 5 * tu_slowdown();
    long v;
    while ((v = s_sec_stat(d, group, key)) < want && tu_now() < end)
        usleep(20000);
    return v;
}

static const char *s_rank_req = "{\"op\":\"rank\",\"id\":\"r\",\"user\":\"u0001\","
                                "\"candidates\":[\"i00001\",\"i00002\",\"i00003\"],\"k\":2}";

START_TEST(e2e_allowed_denied_and_refused)
{
    s_fresh_clients("clients_e2e");
    tu_daemon d;
    s_start(&d, "sec1.sock", NULL);
    /* Allowed: a query key ranks, and reads info without the paths. */
    cJSON *r = s_call(&d, s_rank_req, &s_as_alice);
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    cJSON_Delete(r);
    r = s_call(&d, "{\"op\":\"info\"}", &s_as_alice);
    ck_assert(tu_ok(r));
    ck_assert_str_eq(cJSON_GetObjectItem(r, "role")->valuestring, "query");
    ck_assert_ptr_null(cJSON_GetObjectItem(r, "db"));
    ck_assert_ptr_null(cJSON_GetObjectItem(r, "endpoint"));
    ck_assert_ptr_null(cJSON_GetObjectItem(r, "security"));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(r, "limits"));
    cJSON_Delete(r);
    r = s_call(&d, "{\"op\":\"info\"}", &s_as_bob);
    ck_assert_str_eq(cJSON_GetObjectItem(r, "role")->valuestring, "admin");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "db")->valuestring, s_db);
    cJSON_Delete(r);
    /* Role denied: record needs write (bob's admin role includes it); the
     * check is on the writer thread, where record runs. */
    const char *rec = "{\"op\":\"record\",\"id\":\"w1\",\"events\":[{\"user\":\"u0001\","
                      "\"item\":\"i00001\",\"ts\":1767225600,\"event_id\":\"sec-1\"}]}";
    r = s_call(&d, rec, &s_as_alice);
    ck_assert_str_eq(tu_code(r), "forbidden");
    ck_assert_msg(strstr(tu_message(r), "needs the write role"), "%s", tu_message(r));
    cJSON_Delete(r);
    r = s_call(&d, rec, &s_as_bob);
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    cJSON_Delete(r);
    /* Role denied: stats and reload need admin. */
    static const char *admin_ops[] = {"{\"op\":\"stats\",\"id\":7}", "{\"op\":\"reload\"}"};
    for (int i = 0; i < 2; i++) {
        r = s_call(&d, admin_ops[i], &s_as_alice);
        ck_assert_str_eq(tu_code(r), "forbidden");
        ck_assert_msg(strstr(tu_message(r), "needs the admin role"), "%s", tu_message(r));
        cJSON_Delete(r);
    }
    /* Unknown key (twice), plain text, wrong server key, one after the
     * other: no message gets through, and each is counted.  A plain-text
     * client is `plaintext` when attnd sees the mechanism mismatch first,
     * `handshake` when the client saw it first and hung up. */
    void *ctx = zmq_ctx_new();
    tu_curve wrong;
    s_curve_of(&wrong, &s_alice, &s_alice);   /* alice's key posing as the server's */
    void *bad[4] = {s_client(ctx, d.endpoint, &s_as_eve), s_client(ctx, d.endpoint, &s_as_eve),
                    NULL, NULL};
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            bad[2] = s_client(ctx, d.endpoint, NULL);
        if (i == 3)
            bad[3] = s_client(ctx, d.endpoint, &wrong);
        zmq_send(bad[i], "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(bad[i], "{\"op\":\"health\"}", 15, ZMQ_DONTWAIT);
        if (i == 1)
            ck_assert_int_ge(s_wait_sec_stat(&d, "refused", "unknown_key", 2), 2);
        if (i == 2) {
            double end = tu_now() + 5 * tu_slowdown();
            while (s_sec_stat(&d, "refused", "plaintext") + s_sec_stat(&d, "refused", "handshake")
                   < 1 && tu_now() < end)
                usleep(20000);
        }
    }
    ck_assert_int_ge(s_sec_stat(&d, "refused", "plaintext") +
                     s_sec_stat(&d, "refused", "handshake"), 1);
    long before = s_sec_stat(&d, "refused", "handshake");
    ck_assert_int_gt(s_wait_sec_stat(&d, "refused", "handshake", before + 1), before);
    zmq_pollitem_t none[4];
    for (int i = 0; i < 4; i++)
        none[i] = (zmq_pollitem_t){.socket = bad[i], .events = ZMQ_POLLIN};
    ck_assert_int_eq(zmq_poll(none, 4, 200), 0);
    for (int i = 0; i < 4; i++)
        zmq_close(bad[i]);
    zmq_ctx_term(ctx);
    r = s_call(&d, "{\"op\":\"stats\"}", &s_as_bob);
    ck_assert_int_ge(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "errors"), "forbidden")
                         ->valuedouble, 2);
    cJSON_Delete(r);
    /* ... in /metrics too (its address is in info, for admins) ... */
    r = s_call(&d, "{\"op\":\"info\"}", &s_as_bob);
    const cJSON *m = cJSON_GetObjectItem(r, "metrics");
    const char *colon = cJSON_IsString(m) ? strrchr(m->valuestring, ':') : NULL;
    ck_assert_ptr_nonnull(colon);
    int port = atoi(colon + 1);
    cJSON_Delete(r);
    char *body = NULL;
    ck_assert_int_eq(tu_http_get(port, "/metrics", &body, (int)(5000 * tu_slowdown())), 200);
    ck_assert_double_ge(
        tu_prom_value(body, "attnd_security_refusals_total{reason=\"unknown_key\"}"), 2);
    ck_assert_double_eq(tu_prom_value(body, "attnd_security_allowed_keys"), 3);
    const char *denied = "attnd_requests_total{op=\"stats\",code=\"forbidden\"}";
    ck_assert_double_ge(tu_prom_value(body, denied), 1);
    free(body);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    /* ... and logged once per peer and key, with both. */
    ck_assert_int_eq(s_count_lines(d.log, "reason=unknown_key", s_eve.pub), 1);
    ck_assert_int_ge(s_count_lines(d.log, "msg=\"client refused\"", "peer="), 2);
    ck_assert_int_ge(s_count_lines(d.log, "reason=handshake", "peer="), 1);
    ck_assert(s_contains(d.log, "msg=\"access control on\" mode=curve"));
}
END_TEST

START_TEST(e2e_revoked_after_reload)
{
    s_fresh_clients("clients_rev");
    tu_daemon d;
    s_start(&d, "sec2.sock", NULL);
    void *ctx = zmq_ctx_new();
    void *carol = s_client(ctx, d.endpoint, &s_as_carol);
    int tmo = (int)(10000 * tu_slowdown());
    zmq_setsockopt(carol, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    char buf[4096];
    ck_assert_int_eq(zmq_send(carol, "", 0, ZMQ_SNDMORE), 0);
    ck_assert_int_gt(zmq_send(carol, "{\"op\":\"health\"}", 15, 0), 0);
    ck_assert_int_ge(zmq_recv(carol, buf, sizeof buf, 0), 0);   /* delimiter */
    int n = zmq_recv(carol, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = 0;
    ck_assert_msg(strstr(buf, "\"ok\":true"), "%s", buf);
    /* Revoke carol: remove her file, SIGHUP. */
    char path[400];
    snprintf(path, sizeof path, "%s/query/carol.key", s_clients);
    ck_assert_int_eq(unlink(path), 0);
    kill(d.pid, SIGHUP);
    ck_assert_int_ge(s_wait_sec_stat(&d, NULL, "allow_reloads", 1), 1);
    ck_assert_int_eq(s_sec_stat(&d, NULL, "keys"), 2);
    /* Her open connection is refused from now on ... */
    ck_assert_int_eq(zmq_send(carol, "", 0, ZMQ_SNDMORE), 0);
    ck_assert_int_gt(zmq_send(carol, "{\"op\":\"health\"}", 15, 0), 0);
    ck_assert_int_ge(zmq_recv(carol, buf, sizeof buf, 0), 0);
    n = zmq_recv(carol, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = 0;
    ck_assert_msg(strstr(buf, "\"forbidden\"") && strstr(buf, "revoked"), "%s", buf);
    /* ... and a new one does not get through. */
    ck_assert_ptr_null(tu_call_curve(d.endpoint, "{\"op\":\"health\"}", 300, &s_as_carol));
    ck_assert_int_ge(s_wait_sec_stat(&d, "refused", "unknown_key", 1), 1);
    ck_assert_int_eq(s_sec_stat(&d, "refused", "revoked"), 1);
    /* The reload op re-reads the list too; alice is untouched. */
    cJSON *r = s_call(&d, "{\"op\":\"reload\"}", &s_as_bob);
    ck_assert(tu_ok(r));
    cJSON_Delete(r);
    ck_assert_int_eq(s_sec_stat(&d, NULL, "allow_reloads"), 2);
    r = s_call(&d, s_rank_req, &s_as_alice);
    ck_assert(tu_ok(r));
    cJSON_Delete(r);
    zmq_close(carol);
    zmq_ctx_term(ctx);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_int_eq(s_count_lines(d.log, "reason=revoked", s_carol.pub), 1);
    ck_assert(s_contains(d.log, "msg=\"allow-list reloaded\""));
}
END_TEST

/* Alice floods; carol, at a quarter of the rate, gets every answer. */
START_TEST(e2e_rate_limited_others_unharmed)
{
    s_fresh_clients("clients_rate");
    tu_daemon d;
    const char *more[] = {"--set", "security.rate_per_key=40", "--set", "security.burst=10", NULL};
    s_start(&d, "sec3.sock", more);
    void *ctx = zmq_ctx_new();
    void *alice = s_client(ctx, d.endpoint, &s_as_alice);
    void *carol = s_client(ctx, d.endpoint, &s_as_carol);
    int tmo = (int)(5000 * tu_slowdown());
    zmq_setsockopt(carol, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    char buf[8192];
    int carol_ok = 0, sent = 0;
    double worst = 0;
    for (int round = 0; round < 20; round++) {   /* 20 x 100 ms: carol at 10/s */
        for (int i = 0; i < 30; i++, sent++)     /* alice at ~300/s */
            if (zmq_send(alice, "", 0, ZMQ_SNDMORE) < 0 ||
                zmq_send(alice, "{\"op\":\"health\"}", 15, 0) < 0)
                ck_abort_msg("alice cannot send");
        double t0 = tu_now();
        zmq_send(carol, "", 0, ZMQ_SNDMORE);
        zmq_send(carol, s_rank_req, strlen(s_rank_req), 0);
        ck_assert_int_ge(zmq_recv(carol, buf, sizeof buf, 0), 0);
        int n = zmq_recv(carol, buf, sizeof buf - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = 0;
        carol_ok += strstr(buf, "\"ok\":true") != NULL;
        worst = tu_now() - t0 > worst ? tu_now() - t0 : worst;
        usleep(100000);
    }
    ck_assert_int_eq(carol_ok, 20);
    ck_assert_msg(worst < 1.0 * tu_slowdown(), "carol waited %.3f s", worst);
    /* Alice's answers: some ok (her rate), the rest rate_limited with a hint. */
    int ok = 0, limited = 0, hint = 0;
    zmq_setsockopt(alice, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    for (int i = 0; i < sent; i++) {
        if (zmq_recv(alice, buf, sizeof buf, 0) < 0)
            break;
        int n = zmq_recv(alice, buf, sizeof buf - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = 0;
        cJSON *r = cJSON_Parse(buf);
        ok += tu_ok(r);
        if (!strcmp(tu_code(r), "rate_limited")) {
            limited++;
            const cJSON *ra = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"),
                                                  "retry_after_ms");
            hint += cJSON_IsNumber(ra) && ra->valuedouble >= 1 && ra->valuedouble <= 100;
        }
        cJSON_Delete(r);
    }
    ck_assert_int_eq(ok + limited, sent);
    ck_assert_int_eq(hint, limited);
    /* About 10 + 40/s x 2 s = 90 let through; allow for slow machines. */
    ck_assert_msg(limited > sent / 2 && ok >= 10 && ok < 200, "ok %d limited %d of %d", ok,
                  limited, sent);
    zmq_close(alice);
    zmq_close(carol);
    zmq_ctx_term(ctx);
    cJSON *r = s_call(&d, "{\"op\":\"stats\"}", &s_as_bob);
    ck_assert_int_eq((int)cJSON_GetObjectItem(cJSON_GetObjectItem(r, "errors"), "rate_limited")
                         ->valuedouble, limited);
    cJSON_Delete(r);
    /* attn-batch waits out rate_limited (retry_after_ms) and finishes every line. */
    char lines[60 * 40] = "", args[2400], out[8192], server[300];
    for (int i = 0; i < 40; i++)
        strcat(lines, "{\"op\":\"health\"}\n");
    tu_write_file(tu_path("rate.jsonl"), lines, strlen(lines));
    snprintf(server, sizeof server, "%s", tu_path("server.key"));
    snprintf(args, sizeof args, "--endpoint %s --server-key %s --client-key %s.key_secret "
             "--in %s --out %s --force --no-progress --window 40", d.endpoint,
             server, tu_path("e_carol"), tu_path("rate.jsonl"), tu_path("rate.out"));
    ck_assert_msg(tu_run_program("attn-batch", args, out, sizeof out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "40 ok") && !strstr(out, "; 0 retries"), "%s", out);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* The programs: keys by flag, and attnd's start-up refusals. */
START_TEST(e2e_clients_and_start_refusals)
{
    s_fresh_clients("clients_prog");
    tu_daemon d;
    s_start(&d, "sec4.sock", NULL);
    char args[2400], out[8192], keys[300];
    snprintf(keys, sizeof keys, "%s", tu_path("e_alice"));
    snprintf(args, sizeof args, "--endpoint %s --server-key %s --client-key %s.key_secret "
             "--user u0001 --candidates i00001,i00002 --json", d.endpoint,
             tu_path("server.key"), keys);
    ck_assert_int_eq(tu_run_program("attn-query", args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "\"ok\":true"), "%s", out);
    snprintf(args, sizeof args, "--endpoint %s --server-key %s --client-key %s.key_secret "
             "--op stats", d.endpoint, tu_path("server.key"), keys);
    ck_assert_int_eq(tu_run_program("attn-query", args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "forbidden"), "%s", out);
    snprintf(args, sizeof args, "--endpoint %s --server-key %s --op health", d.endpoint,
             tu_path("server.key"));
    ck_assert_int_eq(tu_run_program("attn-query", args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "needs --client-key"), "%s", out);
    snprintf(args, sizeof args, "--endpoint %s --server-key %s --client-key %s.key_secret "
             "--op health --timeout 300 --retries 0", d.endpoint, tu_path("server.key"),
             tu_path("e_eve"));
    ck_assert_int_eq(tu_run_program("attn-query", args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "attnd logs every refusal"), "%s", out);
    /* attn-batch and attn-load through the same flags. */
    const char *lines = "{\"op\":\"rank\",\"user\":\"u0002\",\"candidates\":[\"i00001\"]}\n"
                        "{\"op\":\"health\"}\n";
    tu_write_file(tu_path("batch.jsonl"), lines, strlen(lines));
    snprintf(args, sizeof args, "--endpoint %s --server-key %s --client-key %s.key_secret "
             "--in %s --out %s --force --no-progress", d.endpoint, tu_path("server.key"), keys,
             tu_path("batch.jsonl"), tu_path("batch.out"));
    ck_assert_msg(tu_run_program("attn-batch", args, out, sizeof out) == 0, "%s", out);
    snprintf(args, sizeof args, "--endpoint %s --server-key %s --client-key %s.key_secret "
             "--db %s --clients 2 --requests 40 --warmup 0 --json", d.endpoint,
             tu_path("server.key"), keys, s_db);
    ck_assert_msg(tu_run_program("attn-load", args, out, sizeof out) == 0, "%s", out);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);

    /* Start-up refusals: a secret key others can read; plain text on a
     * routable address.  Neither gets as far as binding. */
    ck_assert_int_eq(chmod(tu_path("server.key_secret"), 0644), 0);
    snprintf(args, sizeof args, "--db %s --bind ipc://%s --set metrics.bind= "
             "--set security.mode=curve --set security.server_key=%s --set security.clients=%s",
             s_db,
             tu_path("never.sock"), tu_path("server.key_secret"), s_clients);
    ck_assert_int_eq(tu_run_program("attnd", args, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "chmod 600"), "%s", out);
    ck_assert_int_eq(chmod(tu_path("server.key_secret"), 0600), 0);
    snprintf(args, sizeof args, "--db %s --bind tcp://0.0.0.0:0 --set metrics.bind=", s_db);
    ck_assert_int_eq(tu_run_program("attnd", args, out, sizeof out), 2);
    ck_assert_msg(strstr(out, "security.allow_plaintext"), "%s", out);
}
END_TEST

/* Issue 19.1: with models.named = admin, a query key that names a model
 * gets `forbidden`; an admin key is served by the model it named. */
START_TEST(e2e_named_models_admin_only)
{
    s_fresh_clients("clients_named");
    tu_daemon d;
    const char *more[] = {"--set", "models.named=admin", NULL};
    s_start(&d, "named.sock", more);
    const char *req = "{\"op\":\"rank\",\"user\":\"u0001\",\"model\":0,"
                      "\"candidates\":[\"i00001\",\"i00002\"]}";
    cJSON *r = s_call(&d, req, &s_as_alice);
    ck_assert_str_eq(tu_code(r), "forbidden");
    ck_assert_msg(strstr(tu_message(r), "models.named"), "%s", tu_message(r));
    cJSON_Delete(r);
    r = s_call(&d, req, &s_as_bob);
    ck_assert_msg(tu_ok(r), "%s", tu_message(r));
    ck_assert_int_eq(cJSON_GetObjectItem(r, "model")->valueint, 0);
    cJSON_Delete(r);
    r = s_call(&d, s_rank_req, &s_as_alice);   /* not naming one is fine */
    ck_assert(tu_ok(r));
    cJSON_Delete(r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("security");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, keys_generate_read_and_refuse);
    tcase_add_test(tc, keys_format_errors_and_zcert);
    tcase_add_test(tc, keygen_command);
    suite_add_tcase(s, tc);
    tc = tcase_create("allowlist");
    tcase_add_test(tc, allowlist_folders_and_file);
    tcase_add_test(tc, allowlist_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("ratelimit");
    tcase_add_test(tc, ratelimit_buckets);
    tcase_add_test(tc, config_safe_defaults);
    suite_add_tcase(s, tc);
    tc = tcase_create("zap");
    tcase_set_timeout(tc, 15);
    tcase_add_test(tc, zap_roles_refusals_and_reload);
    tcase_add_test(tc, zap_wrong_server_key_and_rate);
    tcase_add_test(tc, auth_refuses_bad_start);
    tcase_add_test(tc, handshake_verdicts);
    suite_add_tcase(s, tc);
    tc = tcase_create("e2e");
    tcase_add_unchecked_fixture(tc, s_e2e_setup, NULL);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, e2e_allowed_denied_and_refused);
    tcase_add_test(tc, e2e_revoked_after_reload);
    tcase_add_test(tc, e2e_rate_limited_others_unharmed);
    tcase_add_test(tc, e2e_clients_and_start_refusals);
    tcase_add_test(tc, e2e_named_models_admin_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(s_suite());
}
