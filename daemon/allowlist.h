/* allowlist.h -- the CURVE keys attnd lets in, and the role of each.
 *
 *     char why[600];
 *     srv_allow *a = srv_allow_load("/etc/attnd/clients", why, sizeof why);
 *     if (!a) die("%s", why);   // "/etc/attnd/clients/admin/x.key:3: public-key is not ..."
 *     const char *name;
 *     int role = srv_allow_role(a, z85_key, &name);   // enum srv_role, or -1: not allowed
 *     srv_allow_free(&a);
 *
 * security.clients names either
 *   - a directory whose sub-directories query/, write/ and admin/ hold the
 *     public key files (NAME.key, as attnctl keygen writes them) of the
 *     clients with that role -- the role is where the operator put the file,
 *     never something the key's owner wrote into it; or
 *   - a file of lines `ROLE KEY [NAME]`: a role, a 40-character Z85 public
 *     key and an optional name for the logs; `#` starts a comment.
 * Roles are ordered: query < write < admin, each including the ones before
 * it.  A key listed twice, a secret key file, a key file outside a role
 * folder or an unknown role folder is an error naming the file: a list
 * that does not say what the operator meant is not half-applied.
 *
 * A loaded list never changes: a reload loads a new one and swaps.
 */
#ifndef DAEMON_ALLOWLIST_H
#define DAEMON_ALLOWLIST_H

#include <stddef.h>

#define SRV_ALLOW_NAME_MAX 64   /* names kept for the logs, cut beyond */

typedef struct srv_allow srv_allow;

/* Load a directory or a file.  NULL with why on any error (or out of memory). */
srv_allow *srv_allow_load(const char *path, char *why, size_t why_len);
void srv_allow_free(srv_allow **a_p);   /* accepts NULL */

/* The role of the Z85 public key (40 characters, NUL-terminated or not),
 * or -1 when it is not in the list.  *name (if not NULL) gets its name. */
int srv_allow_role(const srv_allow *a, const char *z85, const char **name);
size_t srv_allow_count(const srv_allow *a);

/* "query", "write", "admin" (enum srv_role of ops.h); "none" otherwise. */
const char *srv_role_name(int role);
/* The role named s[0..len), or -1. */
int srv_role_parse(const char *s, size_t len);

#endif
