/* cli_progress.c -- a one-line progress bar for a terminal.
 *
 * The rate shown is over the last few seconds (a ring of samples), not since
 * the start: after a daemon restart or a slow patch the ETA should follow
 * what is happening now.  Redraws are throttled to 10 per second so that a
 * fast job spends its time on requests, not on the terminal.
 */
#include "clients/cli.h"

#include <stdlib.h>
#include <string.h>

#define S_SAMPLES 16          /* ring size: ~4 s of history at one sample per 250 ms */
#define S_SAMPLE_US 250000
#define S_DRAW_US 100000
#define S_BAR 24

struct cli_progress {
    FILE *out;                /* the terminal */
    char label[32];           /* program name, first on the line */
    uint64_t total;           /* expected items, 0 when unknown */
    int64_t last_draw;        /* when the line was last drawn */
    int64_t t[S_SAMPLES];     /* sample times */
    uint64_t d[S_SAMPLES];    /* items done at those times */
    int head, n;              /* newest sample, samples held */
};

const char *cli_fmt_duration(double seconds, char *buf, size_t len)
{
    if (!(seconds >= 0) || seconds > 359999)
        seconds = 359999;   /* 99:59:59: "forever" for a progress bar */
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, len, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

cli_progress *cli_progress_new(FILE *out, const char *label, uint64_t total)
{
    cli_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->out = out;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->t[0] = cli_now_us();
    p->n = 1;
    return p;
}

void cli_progress_update(cli_progress *p, uint64_t done, uint64_t failed, int force)
{
    if (!p)
        return;
    int64_t now = cli_now_us();
    if (!force && now - p->last_draw < S_DRAW_US)
        return;
    p->last_draw = now;
    if (now - p->t[p->head] >= S_SAMPLE_US) {
        p->head = (p->head + 1) % S_SAMPLES;
        p->t[p->head] = now;
        p->d[p->head] = done;
        if (p->n < S_SAMPLES)
            p->n++;
    }
    int oldest = (p->head - p->n + 1 + S_SAMPLES) % S_SAMPLES;
    double span = (double)(now - p->t[oldest]) / 1e6;
    double rate = span > 0.2 && done >= p->d[oldest] ? (double)(done - p->d[oldest]) / span : 0;

    char line[256], eta[32];
    int w = 0;
    if (p->total) {
        double frac = done >= p->total ? 1.0 : (double)done / (double)p->total;
        char bar[S_BAR + 1];
        int fill = (int)(frac * S_BAR);
        for (int i = 0; i < S_BAR; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[S_BAR] = '\0';
        w = snprintf(line, sizeof line, "%s [%s] %3d%% %llu/%llu", p->label, bar,
                     (int)(frac * 100), (unsigned long long)done,
                     (unsigned long long)p->total);
    } else {
        w = snprintf(line, sizeof line, "%s %llu done", p->label, (unsigned long long)done);
    }
    if (rate > 0 && w > 0 && (size_t)w < sizeof line)   /* 0: not measured yet */
        w += snprintf(line + w, sizeof line - (size_t)w, "  %.0f/s", rate);
    if (p->total && rate > 0 && done < p->total && w > 0 && (size_t)w < sizeof line)
        w += snprintf(line + w, sizeof line - (size_t)w, "  ETA %s",
                      cli_fmt_duration((double)(p->total - done) / rate, eta, sizeof eta));
    if (failed && w > 0 && (size_t)w < sizeof line)
        snprintf(line + w, sizeof line - (size_t)w, "  rejects %llu",
                 (unsigned long long)failed);
    /* \r back to the start, \033[K clears what a longer previous line left. */
    fprintf(p->out, "\r%s\033[K", line);
    fflush(p->out);
}

void cli_progress_destroy(cli_progress **self_p)
{
    if (!self_p || !*self_p)
        return;
    fprintf((*self_p)->out, "\r\033[K");
    fflush((*self_p)->out);
    free(*self_p);
    *self_p = NULL;
}
