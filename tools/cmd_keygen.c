/* cmd_keygen.c -- 'attnctl keygen': keys for attnd and its clients.
 *
 *     attnctl keygen NAME          a CURVE pair: NAME.key (public), NAME.key_secret (0600)
 *     attnctl keygen --mask FILE   a key for hashing user ids (util/mask.h), mode 0600
 *
 * The CURVE pair comes from libzmq (zmq_curve_keypair, libsodium
 * underneath); the file format is util/keyfile.h's and docs/SECURITY.md's.
 * Existing files are never replaced: a key already handed out must not
 * change under its owner.
 */
#include <stdio.h>

#include "tools/cmd.h"
#include "util/keyfile.h"
#include "util/mask.h"
#include "util/opt.h"

typedef struct s_args {
    const char *name;
    const char *mask;
} s_args;

static const util_opt s_pos[] = {
    {"NAME", NULL, "path and name of the pair: writes NAME.key and NAME.key_secret",
     UTIL_OPT_STR(s_args, name), .flags = UTIL_OPT_OPTIONAL},
};

static const util_opt s_opts[] = {
    {"mask", "FILE", "instead: a new key for masking user ids (64 hex digits)",
     UTIL_OPT_STR(s_args, mask), .def = ""},
};

static const util_opt_cmd s_cmd = {
    .prog = "attnctl keygen",
    .usage = "NAME\n--mask FILE",
    .about =
        "Write a new CURVE key pair: NAME.key holds the public key (give it to the\n"
        "other side), NAME.key_secret the secret key (mode 0600, keep it where it is).\n"
        "Refuses to overwrite either file.  docs/SECURITY.md: where each file goes.",
    UTIL_OPT_ROWS(s_opts),
    UTIL_OPT_ARGS(s_pos),
    .tail = "Exit status: 0 written; 1 a file exists or cannot be written; 2 bad usage.",
};

int cmd_keygen(int argc, char **argv)
{
    s_args a = {0};
    int rc = util_opt_main(&s_cmd, argc, argv, &a, NULL);
    if (rc >= 0)
        return rc;
    if (!a.name == !a.mask)
        return util_opt_fail(&s_cmd, "give exactly one of NAME and --mask FILE");
    char why[600];
    if (a.mask) {
        if (util_mask_create(a.mask, why, sizeof why) != 0) {
            fprintf(stderr, "attnctl keygen: %s\n", why);
            return 1;
        }
        printf("%s  mask key (mode 0600)\n", a.mask);
        return 0;
    }
    util_key k;
    if (util_key_generate(a.name, &k, why, sizeof why) != 0) {
        fprintf(stderr, "attnctl keygen: %s\n", why);
        return 1;
    }
    printf("%s.key         public key %s\n%s.key_secret  secret key (mode 0600)\n", a.name,
           k.pub, a.name);
    return 0;
}
