/* keyfile.h -- CURVE key files: what `attnctl keygen` writes and what attnd
 * and the clients read.
 *
 *     util_key k;  char why[300];
 *     if (util_key_generate("alice", &k, why, sizeof why) != 0)    // alice.key, alice.key_secret
 *         die("%s", why);
 *     if (util_key_read("alice.key_secret", UTIL_KEY_SECRET, &k, why, sizeof why) != 0)
 *         die("%s", why);      // "alice.key_secret: mode 0644 lets group or others read it ..."
 *     zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k.sec, 40);
 *
 * The format (docs/SECURITY.md) is text, one `name = value` a line, values
 * optionally in double quotes, `#` comments:
 *
 *     # attnd CURVE public key "alice"
 *     public-key = "&rePE08ZqPH.iqEMa4.ixDN:T*7kkn*8GAZdhFsA"
 *
 * and the secret file holds `secret-key = "..."` beside its public key.
 * Keys are Z85 text of 32-byte Curve25519 keys (40 characters).  Bare words
 * on a line of their own and other names are ignored, so a certificate of
 * CZMQ's zcert (sections `metadata` and `curve`) reads as well.  The key
 * pair comes from zmq_curve_keypair (libsodium): nothing here is crypto.
 */
#ifndef UTIL_KEYFILE_H
#define UTIL_KEYFILE_H

#include <stddef.h>

#define UTIL_KEY_Z85 40            /* characters of a key in Z85 */
#define UTIL_KEY_FILE_MAX 65536    /* a key file is small; larger is refused */

typedef struct util_key {
    char pub[UTIL_KEY_Z85 + 1];    /* the public key, Z85, NUL-terminated */
    char sec[UTIL_KEY_Z85 + 1];    /* the secret key, or "" when only the public is known */
} util_key;

/* Flags of util_key_read. */
#define UTIL_KEY_SECRET 1u   /* the file must hold the secret key, and be private:
                                a regular file with no group or other permission bits */

/* Read a key file.  A secret file whose public key line is missing gets it
 * derived; one whose public key does not match its secret is refused.
 * 0, or -1 with why naming the file (and the line). */
int util_key_read(const char *path, unsigned flags, util_key *out, char *why, size_t why_len);

/* 1 when text is exactly UTIL_KEY_Z85 characters of valid Z85. */
int util_key_valid(const char *text, size_t len);

/* A new key pair written to <base>.key (public, mode 0644 less the umask)
 * and <base>.key_secret (mode 0600).  Neither file may exist: nothing is
 * overwritten, and on failure nothing is left behind.  0, or -1 with why. */
int util_key_generate(const char *base, util_key *out, char *why, size_t why_len);

#endif
