/* prom.c -- see prom.h.  The format: https://prometheus.io/docs/instrumenting/exposition_formats/
 * (text format 0.0.4): per family a `# HELP name text` line (backslash and
 * newline escaped), a `# TYPE name kind` line, then `name{labels} value`
 * lines; a histogram's buckets are cumulative, labelled `le`, and end with
 * le="+Inf" equal to its _count.
 */
#include "daemon/prom.h"

#include <inttypes.h>

#include "daemon/metric_defs.h"

static const char *s_kinds[] = {"counter", "gauge", "histogram"};

static void s_help(FILE *out, const char *name, const char *help)
{
    fprintf(out, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", out);
        else if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
    fputc('\n', out);
}

/* v / 10^decimals, exactly: "0.000464009" for 464009 ns, not the
 * 0.00046400900000000004 a double would print. */
static void s_decimal(char *buf, size_t len, uint64_t v, int decimals)
{
    uint64_t div = 1;
    for (int i = 0; i < decimals; i++)
        div *= 10;
    uint64_t frac = v % div;
    int n = snprintf(buf, len, "%" PRIu64, v / div);
    if (frac == 0 || n < 0 || (size_t)n >= len)
        return;
    int digits = decimals;
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(buf + n, len - (size_t)n, ".%0*" PRIu64, digits, frac);
}

/* `le` bounds as Prometheus' own clients print them ("1e-06", "0.5", "10"):
 * the same text in every scrape and release, or series would split. */
static void s_le(char *buf, size_t len, uint64_t v, int decimals)
{
    double d = (double)v;
    for (int i = 0; i < decimals; i++)
        d /= 10;
    snprintf(buf, len, "%.15g", d);
}

static void s_histogram(FILE *out, const srv_metric *m, const srv_phist *h, const char *labels)
{
    const srv_layout_def *l = srv_layout(m->layout);
    const char *sep = labels ? "," : "";
    labels = labels ? labels : "";
    uint64_t cum = 0;
    char le[32];
    for (int b = 0; b < l->n; b++) {
        cum += h->bucket[b];
        s_le(le, sizeof le, l->le[b], l->decimals);
        fprintf(out, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", m->name, labels, sep, le, cum);
    }
    cum += h->bucket[l->n];
    fprintf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", m->name, labels, sep, cum);
    const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
    char sum[32];
    s_decimal(sum, sizeof sum, h->sum, l->decimals);
    fprintf(out, "%s_sum%s%s%s %s\n", m->name, open, labels, close, sum);
    fprintf(out, "%s_count%s%s%s %" PRIu64 "\n", m->name, open, labels, close, cum);
}

/* A family whose labels leave out every value (no experiment: no arms) is
 * not written at all, HELP and TYPE included. */
static int s_any(const srv_metric *m, const srv_metrics_view *v)
{
    char lbuf[256];
    for (int i = 0; i < m->n; i++)
        if (!m->labels || m->labels(v, i, lbuf, sizeof lbuf))
            return 1;
    return 0;
}

static void s_family(FILE *out, const srv_metric *m, const srv_metrics_view *v)
{
    if (!s_any(m, v))
        return;
    s_help(out, m->name, m->help);
    fprintf(out, "# TYPE %s %s\n", m->name, s_kinds[m->kind]);
    for (int i = 0; i < m->n; i++) {
        char lbuf[256], val[64];
        const char *labels = m->labels ? m->labels(v, i, lbuf, sizeof lbuf) : NULL;
        if (m->labels && !labels)
            continue;
        if (m->kind == SRV_MK_HISTOGRAM) {
            s_histogram(out, m, srv_metric_phist(m, v, i), labels);
            continue;
        }
        srv_metric_print(m, v, i, val, sizeof val);
        if (labels)
            fprintf(out, "%s{%s} %s\n", m->name, labels, val);
        else
            fprintf(out, "%s %s\n", m->name, val);
    }
}

int srv_prom_write(const srv_metrics_view *v, FILE *out)
{
    int n;
    const srv_metric *defs = srv_metric_defs(&n);
    for (int i = 0; i < n; i++)
        if (defs[i].name)
            s_family(out, &defs[i], v);
    return ferror(out) ? -1 : 0;
}
