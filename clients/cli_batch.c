/* cli_batch.c -- attn-batch's engine: JSONL requests in, JSONL replies out,
 * in input order, one output line per input line, many requests in flight.
 *
 * Layout.  Lines live in a ring of `window` slots indexed by line number:
 * a line is read only when it is less than `window` lines ahead of the
 * oldest line not yet written, so every line read has a slot and the
 * reorder buffer can never grow past the window.  Each line moves
 *
 *     READY -> IN FLIGHT -> DONE            (reply: ok or final error)
 *                  |  ^
 *                  v  |   timeout, busy, unavailable, rate_limited
 *               WAIT RETRY (exponential backoff with jitter; at least the
 *                           daemon's retry_after_ms when it gave one)
 *
 * and DONE lines are written as soon as every earlier line is written.
 *
 * Ids.  The wire id of line N is "bN" (cli_pipe); the user's own id is
 * taken out of the request and put back into the reply, so output lines
 * carry the ids the user wrote and replies still match their lines.
 *
 * Crash safety.  The output is only ever appended, whole lines in one
 * write(2), in input order; so whatever happens the file is a prefix of the
 * final output, at worst ending in a truncated line.  --resume counts the
 * complete lines, cuts the partial one, and skips that many input lines.
 * A reject is written before its output line, and --resume drops rejects
 * beyond the output, so the two files always agree.
 *
 * Giving up.  A line that still times out after its retries is rejected
 * only if some daemon answered something since it was first sent;
 * otherwise nothing is answering at all, and rejecting every remaining line
 * would be wrong: the job stops with a message and --resume continues it.
 */
#include "clients/cli.h"
#include "util/json.h"
#include "util/rng.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

enum { S_EMPTY, S_READY, S_INFLIGHT, S_WAIT_RETRY, S_DONE };

typedef struct s_line {
    int state;
    uint64_t line;          /* 1-based input line number */
    char *orig;             /* the input line as read (for rejects) */
    int orig_is_json;       /* orig parsed as a JSON object */
    char *body;             /* request without "id", sent as is; NULL for local failures */
    size_t len;
    cJSON *id;              /* the user's id, NULL when absent */
    int attempts;           /* sends so far */
    int64_t first_sent;     /* when the first attempt went out */
    int64_t retry_at;       /* WAIT_RETRY: when to send again */
    char *out;              /* DONE: the output line, no newline */
    int ok;                 /* DONE: an ok reply */
    char code[32];          /* DONE, !ok: error code */
    char *reason;           /* DONE, !ok: why, for the rejects file */
} s_line;

typedef struct s_job {
    const cli_batch_opts *o;
    cli_batch_stats *st;
    FILE *in;               /* input stream */
    int out_fd;             /* output, appended */
    int rej_fd;             /* rejects, appended, or -1 */
    cli_pipe *pipe;
    s_line *ring;           /* window slots */
    uint32_t window;
    uint64_t next_read;     /* next line number to read */
    uint64_t next_write;    /* next line number to write */
    int eof;
    uint64_t *ready;        /* FIFO of line numbers to send */
    uint32_t ready_head, ready_n;
    uint32_t n_wait;        /* lines in WAIT_RETRY */
    int64_t next_retry;     /* earliest retry_at among them */
    int64_t last_reply;     /* when any reply last arrived */
    long max_bytes;         /* the daemon's limits.max_message_bytes, 0 = unknown */
    uint64_t rng;           /* backoff jitter */
    cli_buf wbuf;           /* a line being written */
    char *lbuf;             /* getline buffer */
    size_t lcap;
    cli_progress *bar;
    uint64_t total;         /* input lines, 0 when unknown */
} s_job;

void cli_batch_opts_init(cli_batch_opts *o)
{
    memset(o, 0, sizeof *o);
    cli_endpoints_parse(CLI_DEFAULT_ENDPOINT, &o->eps, NULL);
    o->window = 64;
    o->timeout_ms = 5000;
    o->retries = 5;
    o->backoff_ms = 100;
}

static s_line *s_slot(s_job *j, uint64_t line)
{
    return &j->ring[(line - 1) % j->window];
}

static void s_line_clear(s_line *l)
{
    free(l->orig);
    free(l->body);
    cJSON_Delete(l->id);
    free(l->out);
    free(l->reason);
    memset(l, 0, sizeof *l);
}

/* ---- files ------------------------------------------------------------------ */

/* A request line taken apart as text, so that what goes to the daemon and
 * what comes back keep the user's bytes: parsing and printing again would
 * turn an id of 9007199254740993 into 9.00719925474099e+15. */
typedef struct s_split {
    const char *text;
    const util_json_member *first_id;   /* the user's id (the first "id"), or NULL */
    util_json_member first;             /* its storage */
    char *body;                         /* every member but the ids, or NULL */
    size_t at;                          /* bytes written to body */
} s_split;

static int s_is_id(const util_json_member *m)
{
    return !m->key_escaped && m->key_len == 2 && !memcmp(m->key, "id", 2);
}

static int s_split_member(void *ctx, const util_json_member *m)
{
    s_split *sp = ctx;
    if (s_is_id(m)) {
        if (!sp->first_id) {
            sp->first = *m;
            sp->first_id = &sp->first;
        }
        return 0;   /* every "id" goes: the wire id is ours */
    }
    if (sp->body) {
        if (sp->at > 1)
            sp->body[sp->at++] = ',';
        memcpy(sp->body + sp->at, sp->text + m->start, m->end - m->start);
        sp->at += m->end - m->start;
    }
    return 0;
}

/* The user's id as a raw cJSON item (printed back verbatim), null when the
 * line has none. */
static cJSON *s_raw_id(const s_split *sp)
{
    if (!sp->first_id)
        return cJSON_CreateNull();
    char *text = strndup(sp->first_id->val, sp->first_id->val_len);
    cJSON *id = text ? cJSON_CreateRaw(text) : NULL;
    free(text);
    return id;
}

/* The id of a JSON object line (null when absent or when the line is not an
 * object: that is what its output line carries). */
static cJSON *s_line_id(const char *text)
{
    s_split sp = {.text = text};
    if (util_json_members(text, strlen(text), s_split_member, &sp) != 0)
        return cJSON_CreateNull();
    return s_raw_id(&sp);
}

/* Read one input line into j->lbuf without its line ending; -1 at EOF. */
static ssize_t s_getline(s_job *j)
{
    ssize_t n = getline(&j->lbuf, &j->lcap, j->in);
    if (n < 0)
        return -1;
    while (n > 0 && (j->lbuf[n - 1] == '\n' || j->lbuf[n - 1] == '\r'))
        j->lbuf[--n] = '\0';
    return n;
}

/* Open the files, checking --resume against what is already written.
 * Nothing is truncated before every check passed. */
static int s_open_files(s_job *j, cli_err *err)
{
    const cli_batch_opts *o = j->o;
    j->out_fd = j->rej_fd = -1;
    if (strcmp(o->in, "-") == 0) {
        j->in = stdin;
    } else if (!(j->in = fopen(o->in, "r"))) {
        return cli_fail(err, CLI_IO, "cannot open --in %s: %s", o->in, strerror(errno));
    }
    if (o->progress && strcmp(o->in, "-") != 0)
        j->total = cli_count_lines(o->in);

    if (strcmp(o->out, "-") == 0) {
        if (o->resume)
            return cli_fail(err, CLI_INVAL, "--resume needs --out FILE, not stdout");
        j->out_fd = STDOUT_FILENO;
    } else if (o->resume) {
        j->out_fd = open(o->out, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (j->out_fd < 0)
            return cli_fail(err, CLI_IO, "cannot open --out %s: %s", o->out, strerror(errno));
        uint64_t done;
        off_t end;
        char *last;
        int rc = cli_output_scan(j->out_fd, o->out, &done, &end, &last, err);
        if (rc != CLI_OK)
            return rc;
        /* Skip the lines already answered, checking that the output really
         * belongs to this input by comparing the ids of the last line. */
        for (uint64_t i = 0; i < done; i++) {
            if (s_getline(j) < 0) {
                free(last);
                return cli_fail(err, CLI_INVAL,
                                "--resume: %s has %llu lines but the input has only %llu; "
                                "is it the output of another input?",
                                o->out, (unsigned long long)done, (unsigned long long)i);
            }
        }
        if (done) {
            cJSON *a = s_line_id(last), *b = s_line_id(j->lbuf);
            int same = a && b && cJSON_Compare(a, b, 1);
            char *as = a ? cJSON_PrintUnformatted(a) : NULL;
            char *bs = b ? cJSON_PrintUnformatted(b) : NULL;
            if (!same)
                cli_fail(err, CLI_INVAL,
                         "--resume: line %llu of %s has id %s but input line %llu has id %s; "
                         "is it the output of another input?",
                         (unsigned long long)done, o->out, as ? as : "?",
                         (unsigned long long)done, bs ? bs : "?");
            cJSON_Delete(a), cJSON_Delete(b), free(as), free(bs);
            if (!same) {
                free(last);
                return CLI_INVAL;
            }
        }
        free(last);
        if (ftruncate(j->out_fd, end) != 0)
            return cli_fail(err, CLI_IO, "cannot truncate %s: %s", o->out, strerror(errno));
        j->st->skipped = done;
        j->next_read = j->next_write = done + 1;
        if (o->rejects) {
            int rc2 = cli_rejects_trim(o->rejects, done, err);
            if (rc2 != CLI_OK)
                return rc2;
        }
    } else {
        struct stat sb;
        if (!o->force && stat(o->out, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0)
            return cli_fail(err, CLI_INVAL,
                            "--out %s already exists (%lld bytes): use --resume to continue "
                            "that job or --force to overwrite it",
                            o->out, (long long)sb.st_size);
        j->out_fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (j->out_fd < 0)
            return cli_fail(err, CLI_IO, "cannot open --out %s: %s", o->out, strerror(errno));
    }
    if (o->rejects) {
        int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (o->resume ? 0 : O_TRUNC);
        j->rej_fd = open(o->rejects, flags, 0644);
        if (j->rej_fd < 0)
            return cli_fail(err, CLI_IO, "cannot open --rejects %s: %s", o->rejects,
                            strerror(errno));
    }
    return CLI_OK;
}

/* ---- lines ------------------------------------------------------------------ */

/* Finish a line with an error reply the client made up. */
static int s_done_local(s_job *j, s_line *l, const char *code, const char *message)
{
    cJSON *r = cli_error_reply(l->id, code, message);
    l->out = r ? cJSON_PrintUnformatted(r) : NULL;
    cJSON_Delete(r);
    l->reason = strdup(message);
    if (!l->out || !l->reason)
        return CLI_NOMEM;
    snprintf(l->code, sizeof l->code, "%s", code);
    l->state = S_DONE;
    (void)j;
    return CLI_OK;
}

/* Finish a line with the daemon's reply, the user's id put back. */
static int s_done_reply(s_line *l, cJSON *reply, int ok, const char *code, const char *reason)
{
    cJSON *id = l->id ? cJSON_Duplicate(l->id, 1) : cJSON_CreateNull();
    if (!id)
        return CLI_NOMEM;
    if (cJSON_HasObjectItem(reply, "id"))
        cJSON_ReplaceItemInObjectCaseSensitive(reply, "id", id);
    else
        cJSON_AddItemToObject(reply, "id", id);
    l->out = cJSON_PrintUnformatted(reply);
    if (!l->out)
        return CLI_NOMEM;
    l->ok = ok;
    if (!ok) {
        snprintf(l->code, sizeof l->code, "%s", code);
        if (!(l->reason = strdup(reason)))
            return CLI_NOMEM;
    }
    l->state = S_DONE;
    return CLI_OK;
}

static void s_push_ready(s_job *j, uint64_t line)
{
    j->ready[(j->ready_head + j->ready_n++) % j->window] = line;
    s_slot(j, line)->state = S_READY;
}

/* Read input lines while the window has room. */
static int s_fill(s_job *j)
{
    while (!j->eof && j->next_read - j->next_write < j->window) {
        ssize_t n = s_getline(j);
        if (n < 0) {
            if (ferror(j->in))
                return CLI_IO;
            j->eof = 1;
            break;
        }
        uint64_t ln = j->next_read++;
        s_line *l = s_slot(j, ln);
        l->line = ln;
        if (!(l->orig = strdup(j->lbuf)))
            return CLI_NOMEM;
        char msg[160];
        /* The whole line must be one object: trailing garbage is refused
         * here, not sent (the parse also checks every token). */
        cJSON *req = n ? cli_json_object_strict(j->lbuf, (size_t)n) : NULL;
        s_split sp = {.text = j->lbuf, .body = malloc((size_t)n + 3), .at = 1};
        int scan = req && sp.body ? util_json_members(j->lbuf, (size_t)n, s_split_member, &sp)
                                  : -1;
        cJSON_Delete(req);
        if (n && !sp.body)
            return CLI_NOMEM;
        if (scan != 0) {
            free(sp.body);
            cJSON *loose = n ? cli_json_object(j->lbuf, (size_t)n) : NULL;
            snprintf(msg, sizeof msg, "line %llu: %s", (unsigned long long)ln,
                     !n ? "empty line" : loose ? "text after the JSON object"
                                               : "not a JSON object");
            cJSON_Delete(loose);
            int rc = s_done_local(j, l, "bad_json", msg);
            if (rc != CLI_OK)
                return rc;
            continue;
        }
        l->orig_is_json = 1;
        sp.body[0] = '{';
        sp.body[sp.at++] = '}';
        sp.body[sp.at] = 0;
        l->body = sp.body;
        l->len = sp.at;
        if (!(l->id = s_raw_id(&sp)))
            return CLI_NOMEM;
        /* The daemon answers an oversized message with id null, which could
         * never be matched to its line: say so here instead. */
        if (j->max_bytes > 0 && (long)l->len + 32 > j->max_bytes) {
            snprintf(msg, sizeof msg,
                     "line %llu: %zu bytes, more than the daemon's limits.max_message_bytes (%ld)",
                     (unsigned long long)ln, l->len + 32, j->max_bytes);
            int rc = s_done_local(j, l, "too_large", msg);
            if (rc != CLI_OK)
                return rc;
            continue;
        }
        s_push_ready(j, ln);
    }
    return CLI_OK;
}

/* Move lines whose backoff has passed to the ready FIFO, oldest first. */
static void s_wake_retries(s_job *j, int64_t now)
{
    j->next_retry = INT64_MAX;
    for (uint64_t ln = j->next_write; ln < j->next_read; ln++) {
        s_line *l = s_slot(j, ln);
        if (l->state != S_WAIT_RETRY)
            continue;
        if (l->retry_at <= now) {
            j->n_wait--;
            s_push_ready(j, ln);
        } else if (l->retry_at < j->next_retry) {
            j->next_retry = l->retry_at;
        }
    }
}

/* Send ready lines until the FIFO is empty or no peer can take more.
 * Sets *blocked when the socket refused. */
static int s_send_ready(s_job *j, int *blocked)
{
    *blocked = 0;
    while (j->ready_n) {
        uint64_t ln = j->ready[j->ready_head];
        s_line *l = s_slot(j, ln);
        int64_t now = cli_now_us();
        int rc = cli_pipe_send(j->pipe, ln, l->body, l->len, 0,
                               now + (int64_t)j->o->timeout_ms * 1000);
        if (rc == CLI_AGAIN) {
            *blocked = 1;
            return CLI_OK;
        }
        if (rc != CLI_OK)
            return rc;
        j->ready_head = (j->ready_head + 1) % j->window;
        j->ready_n--;
        l->state = S_INFLIGHT;
        if (l->attempts++ == 0)
            l->first_sent = now;
        else
            j->st->retries++;
    }
    return CLI_OK;
}

/* reply: the error reply that asks for the retry, or NULL (a timeout). */
static void s_schedule_retry(s_job *j, s_line *l, int64_t now, const cJSON *reply)
{
    int shift = l->attempts - 1 < 5 ? l->attempts - 1 : 5;
    double delay_ms = (double)j->o->backoff_ms * (double)(1 << shift);
    /* Jitter (50-100%) so that lines that failed together don't retry together. */
    delay_ms *= 0.5 + 0.5 * util_rng_unit(util_xorshift64(&j->rng));
    /* rate_limited says when the next token is back: earlier would be
     * refused again.  Jittered too, or every waiting line takes that one. */
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(reply, "error"), "retry_after_ms");
    if (cJSON_IsNumber(after) && after->valuedouble > delay_ms && after->valuedouble < 3.6e6)
        delay_ms = after->valuedouble * (1.0 + util_rng_unit(util_xorshift64(&j->rng)));
    l->retry_at = now + (int64_t)(delay_ms * 1000);
    l->state = S_WAIT_RETRY;
    j->n_wait++;
    if (l->retry_at < j->next_retry)
        j->next_retry = l->retry_at;
}

/* Handle one pipe event.  CLI_STOPPED when nothing answers any more. */
static int s_on_event(s_job *j, cli_pipe_event *ev, cli_err *err)
{
    s_line *l = s_slot(j, ev->key);
    if (l->line != ev->key || l->state != S_INFLIGHT) {   /* defensive: can't happen */
        cJSON_Delete(ev->json);
        return CLI_OK;
    }
    char msg[256];
    if (ev->kind == CLI_EV_TIMEOUT) {
        j->st->timeouts++;
        if (l->attempts <= j->o->retries) {
            s_schedule_retry(j, l, ev->at_us, NULL);
            return CLI_OK;
        }
        if (j->last_reply < l->first_sent) {
            char eps[1024];
            return cli_fail(err, CLI_STOPPED,
                            "no reply from %s within %d ms (line %llu, %d attempts); "
                            "stopping",
                            cli_endpoints_str(&j->o->eps, eps, sizeof eps), j->o->timeout_ms,
                            (unsigned long long)l->line, l->attempts);
        }
        snprintf(msg, sizeof msg, "no reply within %d ms (%d attempts)", j->o->timeout_ms,
                 l->attempts);
        return s_done_local(j, l, "timeout", msg);
    }

    j->last_reply = ev->at_us;
    const char *code = NULL, *message = NULL;
    int status = cli_reply_status(ev->json, &code, &message);
    int rc;
    if (status == 1) {
        rc = s_done_reply(l, ev->json, 1, NULL, NULL);
    } else if (status == 0 && (!strcmp(code, "busy") || !strcmp(code, "unavailable") ||
                               !strcmp(code, "rate_limited"))) {
        j->st->busy++;
        if (l->attempts <= j->o->retries) {
            s_schedule_retry(j, l, ev->at_us, ev->json);
            cJSON_Delete(ev->json);
            return CLI_OK;
        }
        snprintf(msg, sizeof msg, "%s: %s (%d attempts)", code, message, l->attempts);
        rc = s_done_reply(l, ev->json, 0, code, msg);
    } else if (status == 0) {
        snprintf(msg, sizeof msg, "%s: %s", code, message);
        rc = s_done_reply(l, ev->json, 0, code, msg);
    } else {
        rc = s_done_local(j, l, "bad_reply", "the reply has no boolean \"ok\": not protocol v1");
    }
    cJSON_Delete(ev->json);
    ev->json = NULL;
    return rc;
}

static void s_count_code(cli_batch_stats *st, const char *code)
{
    if (!st->reject_codes && !(st->reject_codes = cJSON_CreateObject()))
        return;
    cJSON *n = cJSON_GetObjectItemCaseSensitive(st->reject_codes, code);
    if (n)
        cJSON_SetNumberValue(n, n->valuedouble + 1);
    else
        cJSON_AddNumberToObject(st->reject_codes, code, 1);
}

/* Write every finished line that has no unfinished line before it. */
static int s_flush(s_job *j, cli_err *err)
{
    while (j->next_write < j->next_read) {
        s_line *l = s_slot(j, j->next_write);
        if (l->state != S_DONE)
            break;
        if (!l->ok && j->rej_fd >= 0) {
            cli_buf_reset(&j->wbuf);
            int bad = cli_buf_printf(&j->wbuf, "{\"line\":%llu,\"code\":",
                                     (unsigned long long)l->line) ||
                      cli_buf_json_str(&j->wbuf, l->code) ||
                      cli_buf_puts(&j->wbuf, ",\"reason\":") ||
                      cli_buf_json_str(&j->wbuf, l->reason) ||
                      cli_buf_printf(&j->wbuf, ",\"attempts\":%d,\"request\":", l->attempts) ||
                      (l->orig_is_json ? cli_buf_puts(&j->wbuf, l->orig)
                                       : cli_buf_json_str(&j->wbuf, l->orig)) ||
                      cli_buf_puts(&j->wbuf, "}\n");
            if (bad)
                return cli_fail(err, CLI_NOMEM, "out of memory");
            if (cli_write_all(j->rej_fd, j->wbuf.data, j->wbuf.len))
                return cli_fail(err, CLI_IO, "cannot write --rejects %s: %s", j->o->rejects,
                                strerror(errno));
        }
        cli_buf_reset(&j->wbuf);
        if (cli_buf_puts(&j->wbuf, l->out) || cli_buf_put(&j->wbuf, "\n", 1))
            return cli_fail(err, CLI_NOMEM, "out of memory");
        if (cli_write_all(j->out_fd, j->wbuf.data, j->wbuf.len))
            return cli_fail(err, CLI_IO, "cannot write --out %s: %s", j->o->out,
                            strerror(errno));
        j->st->lines++;
        if (l->ok) {
            j->st->ok++;
        } else {
            j->st->rejected++;
            s_count_code(j->st, l->code);
        }
        s_line_clear(l);
        j->next_write++;
    }
    return CLI_OK;
}

/* ---- the job ---------------------------------------------------------------- */

static int s_check_opts(const cli_batch_opts *o, cli_err *err)
{
    if (!o->in || !o->out)
        return cli_fail(err, CLI_INVAL, "--in and --out are required");
    if (o->window < 1 || o->window > 100000)
        return cli_fail(err, CLI_INVAL, "--window: %d is outside 1..100000", o->window);
    if (o->timeout_ms < 1)
        return cli_fail(err, CLI_INVAL, "--timeout: must be at least 1 ms");
    if (o->retries < 0 || o->retries > 100)
        return cli_fail(err, CLI_INVAL, "--retries: %d is outside 0..100", o->retries);
    if (o->backoff_ms < 0)
        return cli_fail(err, CLI_INVAL, "--backoff: must not be negative");
    if (o->resume && o->force)
        return cli_fail(err, CLI_INVAL, "--resume and --force contradict each other");
    if (o->rejects && (!strcmp(o->rejects, o->out) || !strcmp(o->rejects, o->in)))
        return cli_fail(err, CLI_INVAL, "--rejects must be a file of its own");
    if (strcmp(o->in, "-") && !strcmp(o->in, o->out))
        return cli_fail(err, CLI_INVAL, "--in and --out are the same file");
    return CLI_OK;
}

static int s_loop(s_job *j, cli_err *err)
{
    const cli_batch_opts *o = j->o;
    int rc;
    for (;;) {
        if (o->stop && *o->stop)
            return cli_fail(err, CLI_STOPPED, "interrupted");
        if ((rc = s_fill(j)) != CLI_OK)
            return rc == CLI_IO ? cli_fail(err, CLI_IO, "cannot read --in %s: %s", o->in,
                                           strerror(errno))
                                : cli_fail(err, rc, "out of memory");
        int64_t now = cli_now_us();
        if (j->n_wait && now >= j->next_retry)
            s_wake_retries(j, now);
        int blocked;
        if ((rc = s_send_ready(j, &blocked)) != CLI_OK)
            return cli_fail(err, rc, "send failed: %s", cli_strerror(rc));
        if ((rc = s_flush(j, err)) != CLI_OK)
            return rc;
        if (j->eof && j->next_write == j->next_read)
            return CLI_OK;
        cli_progress_update(j->bar, j->next_write - 1, j->st->rejected, 0);

        /* With nothing answering and nothing sendable (every daemon down)
         * no deadline runs: this is the limit on how long we wait. */
        int64_t stall_us = (int64_t)(o->retries + 1) * (o->timeout_ms + 32LL * o->backoff_ms) * 1000;
        if (now - j->last_reply > stall_us && cli_pipe_inflight(j->pipe) == 0) {
            char eps[1024];
            return cli_fail(err, CLI_STOPPED, "no reply from %s within %lld ms; stopping",
                            cli_endpoints_str(&o->eps, eps, sizeof eps),
                            (long long)(stall_us / 1000));
        }

        int64_t until = now + 100000;   /* the progress bar's refresh */
        if (j->n_wait && j->next_retry < until)
            until = j->next_retry;
        cli_pipe_event ev;
        rc = cli_pipe_wait(j->pipe, until, blocked && j->ready_n, &ev);
        if (rc == CLI_ZMQ)
            return cli_fail(err, CLI_ZMQ, "receive failed: %s", zmq_strerror(errno));
        if (rc == CLI_OK && (rc = s_on_event(j, &ev, err)) != CLI_OK)
            return rc;
    }
}

int cli_batch_run(void *zmq_ctx, const cli_batch_opts *o, cli_batch_stats *st, cli_err *err)
{
    memset(st, 0, sizeof *st);
    int rc = s_check_opts(o, err);
    if (rc != CLI_OK)
        return rc;
    int64_t t0 = cli_now_us();
    s_job job = {.o = o, .st = st, .out_fd = -1, .rej_fd = -1, .next_read = 1,
                 .next_write = 1, .window = (uint32_t)o->window, .next_retry = INT64_MAX,
                 .rng = (uint64_t)t0 * 2654435761u ^ (uint64_t)getpid()};
    s_job *j = &job;
    if (!j->rng)
        j->rng = 1;

    /* Ask before touching any file: an unreachable daemon must not cost the
     * user the output of an earlier run. */
    cJSON *info = NULL;
    if ((rc = cli_probe(zmq_ctx, &o->eps, o->timeout_ms, 1, &info, err)) != CLI_OK)
        return rc;
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(info, "limits");
    const cJSON *mb = cJSON_GetObjectItemCaseSensitive(lim, "max_message_bytes");
    if (cJSON_IsNumber(mb) && mb->valuedouble > 0)
        j->max_bytes = (long)mb->valuedouble;
    cJSON_Delete(info);

    if ((rc = s_open_files(j, err)) != CLI_OK)
        goto done;
    j->ring = calloc(j->window, sizeof *j->ring);
    j->ready = calloc(j->window, sizeof *j->ready);
    if (!j->ring || !j->ready) {
        rc = cli_fail(err, CLI_NOMEM, "out of memory");
        goto done;
    }
    if (!(j->pipe = cli_pipe_new(zmq_ctx, &o->eps, "b", j->window, err))) {
        rc = err ? err->code : CLI_ZMQ;
        goto done;
    }
    if (o->progress)
        j->bar = cli_progress_new(stderr, "attn-batch", j->total);
    j->last_reply = cli_now_us();
    rc = s_loop(j, err);
    if (rc == CLI_OK && st->rejected)
        rc = cli_fail(err, CLI_FAILED, "%llu of %llu lines rejected",
                      (unsigned long long)st->rejected, (unsigned long long)st->lines);
    if (rc == CLI_STOPPED && err) {
        size_t n = strlen(err->msg);
        uint64_t late = cli_pipe_stale(j->pipe);
        /* Late replies mean a daemon is alive but slower than --timeout. */
        if (late)
            n += (size_t)snprintf(err->msg + n, sizeof err->msg - n,
                                  " (%llu replies came after their timeout: raise --timeout?)",
                                  (unsigned long long)late);
        if (n < sizeof err->msg)
            snprintf(err->msg + n, sizeof err->msg - n,
                     " after %llu lines; run again with --resume to continue",
                     (unsigned long long)(j->next_write - 1));
    }
done:
    cli_progress_destroy(&j->bar);
    if (j->pipe)
        st->stale = cli_pipe_stale(j->pipe);
    cli_pipe_destroy(&j->pipe);
    if (j->ring)
        for (uint32_t i = 0; i < j->window; i++)
            s_line_clear(&j->ring[i]);
    free(j->ring);
    free(j->ready);
    free(j->lbuf);
    cli_buf_free(&j->wbuf);
    if (j->in && j->in != stdin)
        fclose(j->in);
    if (j->out_fd >= 0 && j->out_fd != STDOUT_FILENO) {
        if (close(j->out_fd) != 0 && rc == CLI_OK)
            rc = cli_fail(err, CLI_IO, "cannot write --out %s: %s", o->out, strerror(errno));
    }
    if (j->rej_fd >= 0)
        close(j->rej_fd);
    st->seconds = (double)(cli_now_us() - t0) / 1e6;
    return rc;
}
