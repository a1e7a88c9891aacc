/* cli_keys.c -- CURVE on the client side: the --server-key and --client-key
 * flags, and the socket options they turn into.
 *
 * The keys travel inside cli_endpoints, so every socket the library opens
 * to those endpoints -- Lazy Pirate REQ, the DEALER pipeline, the start-up
 * probe -- speaks CURVE without another argument anywhere.
 */
#include "clients/cli.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "util/keyfile.h"

int cli_opt_server_key(void *field, const char *value, char *why, size_t why_len)
{
    cli_curve *c = field;
    util_key k;
    if (util_key_read(value, 0, &k, why, why_len) != 0)
        return -1;
    memcpy(c->server, k.pub, sizeof c->server);
    return 0;
}

int cli_opt_client_key(void *field, const char *value, char *why, size_t why_len)
{
    cli_curve *c = field;
    util_key k;
    if (util_key_read(value, UTIL_KEY_SECRET, &k, why, why_len) != 0)
        return -1;
    memcpy(c->pub, k.pub, sizeof c->pub);
    memcpy(c->sec, k.sec, sizeof c->sec);
    return 0;
}

int cli_curve_apply(void *sock, const cli_curve *c, cli_err *err)
{
    if (!c->server[0] && !c->sec[0])
        return CLI_OK;
    if (!c->server[0] || !c->sec[0] || !c->pub[0])
        return cli_fail(err, CLI_INVAL, "%s", c->server[0]
                        ? "--server-key needs --client-key FILE (this client's NAME.key_secret)"
                        : "--client-key needs --server-key FILE (the server's NAME.key)");
    /* Z85 text with its NUL: libzmq takes 41 bytes as text, 32 as binary. */
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server, sizeof c->server) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->pub, sizeof c->pub) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->sec, sizeof c->sec) != 0)
        return cli_fail(err, CLI_ZMQ, "CURVE keys: %s (is libzmq built with CURVE?)",
                        zmq_strerror(errno));
    return CLI_OK;
}
