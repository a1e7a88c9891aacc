/* attn.h -- status codes shared by the attn/ math library.
 *
 * attn/ is pure computation: no I/O, no logging, no exit().  Every function
 * that can fail returns one of these codes; callers decide what to report.
 */
#ifndef ATTN_ATTN_H
#define ATTN_ATTN_H

enum attn_status {
    ATTN_OK = 0,
    ATTN_EINVAL = -1,   /* shapes or arguments outside the documented contract */
    ATTN_ENOMEM = -2,   /* an allocation failed; nothing was changed */
    ATTN_ERANGE = -3,   /* a result is not finite (overflow in the inputs) */
    ATTN_ELIMIT = -4,   /* a request exceeds the limits its scratch was sized for */
};

/* A short stable name for a status ("einval"...), never NULL. */
const char *attn_strerror(int status);

#endif
