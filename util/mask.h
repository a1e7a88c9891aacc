/* mask.h -- personal identifiers as keyed hashes.
 *
 *     util_mask m;
 *     if (util_mask_load(&m, "/etc/attnd/mask.key", why, sizeof why))   // or util_mask_random
 *         die(why);
 *     char h[UTIL_MASK_HEX];
 *     util_mask_hex(&m, "u42", 3, h);      // 32 hex digits; the same for u42 under this key
 *     printf("user=%s key=%s\n", h, m.key_id);
 *
 * A user id that must be joined later (impressions with events) or told
 * apart in a log is stored as BLAKE2b-128 keyed with a secret (libsodium's
 * crypto_generichash, the same primitive libzmq's CURVE links): without the
 * key nobody can test a guessed id against it, unlike a plain hash of the
 * small space of user ids.  key_id names the key (a hash of it, not the key)
 * so that data hashed under an old key can be recognised after a rotation.
 */
#ifndef UTIL_MASK_H
#define UTIL_MASK_H

#include <stddef.h>

#define UTIL_MASK_KEY_BYTES 32
#define UTIL_MASK_HEX 33        /* 16 bytes as hex, and the NUL */
#define UTIL_MASK_KEY_ID 17     /* 8 bytes as hex, and the NUL */

typedef struct util_mask {
    unsigned char key[UTIL_MASK_KEY_BYTES];
    char key_id[UTIL_MASK_KEY_ID];
} util_mask;

/* A fresh random key (hashes comparable within this process only).  0, or
 * -1 when libsodium cannot initialise. */
int util_mask_random(util_mask *m);

/* The key in path: 64 hex digits (whitespace around them ignored).  The
 * file must not be readable by group or others.  0, or -1 with why naming
 * the file and the problem. */
int util_mask_load(util_mask *m, const char *path, char *why, size_t why_len);

/* Write a new random key to path (mode 0600, refusing to overwrite).  0, or
 * -1 with why. */
int util_mask_create(const char *path, char *why, size_t why_len);

/* The keyed hash of data[0..len) as 32 lowercase hex digits. */
void util_mask_hex(const util_mask *m, const void *data, size_t len, char out[UTIL_MASK_HEX]);

#endif
