/* cli_args.c -- flag values the clients share beyond util/opt's table:
 * numbers inside comma lists, the lists themselves, and the endpoint list
 * as a util_opt CALL row.  Each failure names the flag and what was given.
 */
#include "clients/cli.h"

#include <stdlib.h>
#include <string.h>

#include "util/opt.h"

int cli_parse_double(const char *flag, const char *s, double lo, double hi, double *out,
                     cli_err *err)
{
    double v;
    if (!s || util_opt_read_double(s, &v) || v < lo || v > hi)
        return cli_fail(err, CLI_INVAL, "%s: '%s' is not a number in %g..%g", flag, s ? s : "",
                        lo, hi);
    *out = v;
    return CLI_OK;
}

int cli_opt_endpoints(void *field, const char *value, char *why, size_t why_len)
{
    cli_endpoints *eps = field, parsed;
    cli_err err;
    if (cli_endpoints_parse(value, &parsed, &err) == CLI_OK) {
        parsed.curve = eps->curve;
        *eps = parsed;
        return 0;
    }
    snprintf(why, why_len, "%s", err.msg);
    return -1;
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
