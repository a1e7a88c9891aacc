/* fz_config.c -- attnd's configuration file and its --set values.
 *
 * The input is an INI file.  It is loaded over the defaults (cfg_load_file,
 * inih), and each of its "key = value" lines is also given to cfg_set as it
 * stands, untrimmed -- the path --set takes.
 *
 * Invariants beyond "no crash":
 *   - a refusal says why, naming the file and line;
 *   - a configuration that loads and validates prints (--print-config) as a
 *     file that loads again to the same printed text: what attnd reports
 *     as its configuration is a configuration it would accept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "tests/fuzz/fuzz_util.h"

/* cfg printed into a malloc'd string. */
static char *s_print(const srv_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        abort();
    cfg_print(cfg, f);
    fclose(f);
    return text;
}

/* Each line with '=' straight to cfg_set, as `attnd --set key=value` would. */
static void s_set_lines(const uint8_t *data, size_t size)
{
    srv_config cfg;
    cfg_defaults(&cfg);
    char line[1024], why[300];
    size_t at = 0;
    while (at < size) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t n = nl ? (size_t)(nl - (data + at)) : size - at;
        if (n < sizeof line && memchr(data + at, '=', n) && !memchr(data + at, 0, n)) {
            memcpy(line, data + at, n);
            line[n] = 0;
            char *eq = strchr(line, '=');
            *eq = 0;
            why[0] = 0;
            if (cfg_set(&cfg, line, eq + 1, why, sizeof why) != 0)
                FZ_ASSERT(why[0], "cfg_set refused '%s' without a reason", line);
        }
        at += n + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_set_lines(data, size);
    const char *path = fz_path("attnd.conf");
    fz_write(path, data, size);
    srv_config cfg;
    cfg_defaults(&cfg);
    char why[600] = "";
    if (cfg_load_file(&cfg, path, why, sizeof why) != 0) {
        FZ_ASSERT(!strncmp(why, path, strlen(path)), "refusal does not name the file: %s", why);
        return 0;
    }
    if (cfg_validate(&cfg, why, sizeof why) != 0) {
        FZ_ASSERT(why[0], "validation failed without a reason");
        return 0;
    }
    char *printed = s_print(&cfg);
    const char *again = fz_path("printed.conf");
    fz_write(again, printed, strlen(printed));
    srv_config cfg2;
    cfg_defaults(&cfg2);
    FZ_ASSERT(cfg_load_file(&cfg2, again, why, sizeof why) == 0,
              "--print-config output does not load: %s", why);
    char *printed2 = s_print(&cfg2);
    FZ_ASSERT(!strcmp(printed, printed2), "printed config changes when reloaded:\n%s\n---\n%s",
              printed, printed2);
    free(printed);
    free(printed2);
    return 0;
}
