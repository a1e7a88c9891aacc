/* fz_reply.c -- what the clients read: replies from attnd, attn-batch's
 * own output and rejects files (--resume), attn-load's request files.
 *
 * The input is one reply as attn-query and attn-batch receive it, and the
 * same bytes are also read as the files those clients read back.
 *
 * Invariants beyond "no crash":
 *   - a reply is ok, an error (code and message never NULL) or not
 *     protocol v1; never two at once;
 *   - the error reply a client makes up for a line prints as one line of
 *     JSON that parses back (attn-batch's output stays JSONL);
 *   - --resume's scan counts exactly the complete lines and returns the
 *     last one whole; the trimmed rejects file keeps only complete lines;
 *   - every request attn-load takes from a file is a JSON object without
 *     an "id" (it adds its own).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "clients/cli.h"
#include "tests/fuzz/fuzz_util.h"

static FILE *s_null;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    s_null = fopen("/dev/null", "w");
    return s_null ? 0 : -1;
}

static void s_reply(const char *text, size_t len)
{
    cJSON *r = cli_json_object(text, len);
    cJSON *strict = cli_json_object_strict(text, len);
    FZ_ASSERT(!strict || r, "the strict parse accepts what the lenient one refuses");
    cJSON_Delete(strict);
    if (!r)
        return;
    const char *code = NULL, *message = NULL;
    int st = cli_reply_status(r, &code, &message);
    FZ_ASSERT(st == 1 || st == -1 || (st == 0 && code && message), "status %d", st);
    cli_table_print(s_null, r, 0);
    cli_table_print(s_null, r, 1);
    cJSON *e = cli_error_reply(cJSON_GetObjectItemCaseSensitive(r, "id"), st == 0 ? code : "x",
                               st == 0 ? message : "y");
    FZ_ASSERT(e != NULL, "cli_error_reply failed");
    char *line = cJSON_PrintUnformatted(e);
    FZ_ASSERT(line && !strchr(line, '\n'), "an output line with a newline in it");
    FZ_ASSERT(fz_json_object(line, strlen(line)), "an output line that does not parse: %s",
              line);
    free(line);
    cJSON_Delete(e);
    cJSON_Delete(r);
}

/* The bytes as attn-batch's output file on --resume. */
static void s_resume(const uint8_t *data, size_t size)
{
    const char *path = fz_path("out.jsonl");
    fz_write(path, data, size);
    int fd = open(path, O_RDONLY);
    uint64_t lines = 0;
    off_t end = 0;
    char *last = NULL;
    cli_err err;
    FZ_ASSERT(cli_output_scan(fd, path, &lines, &end, &last, &err) == CLI_OK, "%s", err.msg);
    close(fd);
    uint64_t want = 0;
    size_t want_end = 0, prev = 0;
    for (size_t i = 0; i < size; i++)
        if (data[i] == '\n') {
            want++;
            prev = want_end;
            want_end = i + 1;
        }
    FZ_ASSERT(lines == want && (size_t)end == want_end, "scan: %llu lines ending at %lld, "
              "expected %llu at %zu", (unsigned long long)lines, (long long)end,
              (unsigned long long)want, want_end);
    FZ_ASSERT(!want || (last && !memcmp(last, data + prev, want_end - prev - 1)),
              "the last line is not returned whole");
    free(last);
    FZ_ASSERT(cli_rejects_trim(path, 3, &err) == CLI_OK, "%s", err.msg);
    FILE *f = fopen(path, "r");
    int c, prevc = '\n';
    while ((c = fgetc(f)) != EOF)
        prevc = c;
    fclose(f);
    FZ_ASSERT(prevc == '\n', "the trimmed rejects file ends in a torn line");
}

/* The bytes as attn-load's --in file. */
static void s_sampler(const uint8_t *data, size_t size)
{
    const char *path = fz_path("requests.jsonl");
    fz_write(path, data, size);
    cli_err err;
    cli_sampler *s = cli_sampler_file(path, &err);
    if (!s)
        return;
    size_t users, items, lines;
    cli_sampler_counts(s, &users, &items, &lines);
    for (size_t i = 0; i < lines && i < 8; i++) {
        size_t len;
        const char *body = cli_sampler_next(s, &len);
        cJSON *r = cli_json_object(body, len);
        FZ_ASSERT(r && !cJSON_GetObjectItemCaseSensitive(r, "id"),
                  "attn-load would send '%.*s'", (int)len, body);
        cJSON_Delete(r);
    }
    cli_sampler_destroy(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_reply((const char *)data, size);
    s_resume(data, size);
    s_sampler(data, size);
    return 0;
}
