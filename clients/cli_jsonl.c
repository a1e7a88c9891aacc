/* cli_jsonl.c -- attn-batch's files: append-only JSONL that survives a crash.
 *
 * The output is written whole lines at a time, in order, and never
 * rewritten, so whatever stops the writer the file is a prefix of the
 * complete output, at worst ending in a torn line.  These helpers are the
 * other half of that promise: find where the complete lines end (--resume
 * cuts there), count input lines for the progress bar, and drop rejects
 * about lines the output does not hold yet.
 */
#include "clients/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

uint64_t cli_count_lines(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    char buf[65536];
    uint64_t n = 0;
    char last = '\n';
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + r - p))); p++)
            n++;
        last = buf[r - 1];
    }
    close(fd);
    return n + (last != '\n');
}

int cli_output_scan(int fd, const char *path, uint64_t *lines, off_t *end, char **last,
                    cli_err *err)
{
    char buf[65536];
    uint64_t n = 0;
    off_t pos = 0, line_end = 0, prev_end = 0;
    ssize_t r;
    *last = NULL;
    while ((r = pread(fd, buf, sizeof buf, pos)) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] == '\n') {
                n++;
                prev_end = line_end;
                line_end = pos + i + 1;
            }
        }
        pos += r;
    }
    if (r < 0)
        return cli_fail(err, CLI_IO, "cannot read %s: %s", path, strerror(errno));
    *lines = n;
    *end = line_end;
    if (n) {
        size_t len = (size_t)(line_end - prev_end - 1);
        *last = malloc(len + 1);
        if (!*last)
            return cli_fail(err, CLI_NOMEM, "out of memory");
        if (pread(fd, *last, len, prev_end) != (ssize_t)len) {
            free(*last);
            *last = NULL;
            return cli_fail(err, CLI_IO, "cannot read %s: %s", path, strerror(errno));
        }
        (*last)[len] = '\0';
    }
    return CLI_OK;
}

int cli_rejects_trim(const char *path, uint64_t done, cli_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return CLI_OK;
        return cli_fail(err, CLI_IO, "cannot open --rejects %s: %s", path, strerror(errno));
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *t = fopen(tmp, "w");
    if (!t) {
        fclose(f);
        return cli_fail(err, CLI_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int bad = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n')
            break;
        cJSON *r = cli_json_object(line, (size_t)n);
        const cJSON *ln = cJSON_GetObjectItemCaseSensitive(r, "line");
        if (cJSON_IsNumber(ln) && ln->valuedouble >= 1 && ln->valuedouble <= (double)done)
            bad |= fwrite(line, 1, (size_t)n, t) != (size_t)n;
        cJSON_Delete(r);
    }
    free(line);
    fclose(f);
    if (fclose(t) != 0 || bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return cli_fail(err, CLI_IO, "cannot rewrite --rejects %s: %s", path, strerror(errno));
    }
    return CLI_OK;
}
