/* attn.c -- status names. */
#include "attn/attn.h"

const char *attn_strerror(int status)
{
    switch (status) {
    case ATTN_OK: return "ok";
    case ATTN_EINVAL: return "einval";
    case ATTN_ENOMEM: return "enomem";
    case ATTN_ERANGE: return "erange";
    case ATTN_ELIMIT: return "elimit";
    }
    return "unknown";
}
