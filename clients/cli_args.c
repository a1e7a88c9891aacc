/* cli_args.c -- flag values: numbers with bounds and comma lists, each
 * failure a message that names the flag, the range and what was given.
 * strtol alone accepts "12abc" and " 12"; users deserve better.
 */
#include "clients/cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_long(const char *flag, const char *s, long lo, long hi, long *out, cli_err *err)
{
    char *end;
    errno = 0;
    long v = s && *s && *s != ' ' ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *s == ' ' || errno || *end || v < lo || v > hi)
        return cli_fail(err, CLI_INVAL, "%s: expected an integer in %ld..%ld, got '%s'", flag,
                        lo, hi, s ? s : "");
    *out = v;
    return CLI_OK;
}

int cli_parse_double(const char *flag, const char *s, double lo, double hi, double *out,
                     cli_err *err)
{
    char *end;
    errno = 0;
    double v = s && *s && *s != ' ' ? strtod(s, &end) : 0;
    if (!s || !*s || *s == ' ' || errno || *end || !isfinite(v) || v < lo || v > hi)
        return cli_fail(err, CLI_INVAL, "%s: expected a number in %g..%g, got '%s'", flag, lo,
                        hi, s ? s : "");
    *out = v;
    return CLI_OK;
}

int cli_parse_list(const char *flag, const char *s, cJSON **out, cli_err *err)
{
    *out = NULL;
    if (!s || !*s)
        return cli_fail(err, CLI_INVAL, "%s: empty list", flag);
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return cli_fail(err, CLI_NOMEM, "out of memory");
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0) {
            cJSON_Delete(arr);
            return cli_fail(err, CLI_INVAL, "%s: empty entry in '%s'", flag, s);
        }
        char *item = strndup(p, n);
        cJSON *str = item ? cJSON_CreateString(item) : NULL;
        free(item);
        if (!str || !cJSON_AddItemToArray(arr, str)) {
            cJSON_Delete(str);
            cJSON_Delete(arr);
            return cli_fail(err, CLI_NOMEM, "out of memory");
        }
        if (!end)
            break;
        p = end + 1;
    }
    *out = arr;
    return CLI_OK;
}
