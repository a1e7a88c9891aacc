/* metric_defs.h -- the registry's names: one table row per metric.
 *
 * A row ties a field of srv_metrics_view to its Prometheus family (NULL:
 * not exported), its key in the `stats` reply (NULL: not there) and its key
 * in the logfmt line (NULL: not there).  /metrics, `stats` and the log line
 * render from the same rows and the same collected view, so a new metric is
 * one line in metric_defs.c and shows up everywhere it is asked for:
 *
 *     SRV_COUNTER("attnd_replies_dropped_total", dropped, "dropped", "dropped",
 *                 "Replies dropped because the client did not read them."),
 *     SRV_HISTOGRAM("attnd_rank_candidates", w.candidates, SRV_LAYOUT_SIZE,
 *                   "Candidates per rank request."),
 *
 * Naming follows Prometheus: `attnd_` prefix, base units (seconds, bytes),
 * `_total` on counters, a unit suffix on gauges and histograms that have one.
 * The value's C type is read from the field (_Generic), so a row cannot
 * print a double as an integer.
 */
#ifndef DAEMON_METRIC_DEFS_H
#define DAEMON_METRIC_DEFS_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/metrics.h"

enum srv_mkind { SRV_MK_COUNTER, SRV_MK_GAUGE, SRV_MK_HISTOGRAM };
enum srv_mtype { SRV_MT_U64, SRV_MT_I64, SRV_MT_INT, SRV_MT_F64, SRV_MT_PHIST };

typedef struct srv_metric {
    const char *name;        /* Prometheus family, or NULL */
    const char *stats;       /* key in `stats`, or NULL (scalars only) */
    const char *log;         /* key in the logfmt line, or NULL (scalars only) */
    uint8_t kind;            /* enum srv_mkind */
    uint8_t type;            /* enum srv_mtype */
    uint8_t layout;          /* histograms: enum srv_layout */
    size_t offset;           /* of the (first) value in srv_metrics_view */
    size_t stride;           /* between the values of an array */
    int n;                   /* 1, or the values of an array */
    /* An array's label set for value i of v ("op=\"rank\",code=\"ok\""),
     * into buf; NULL to leave value i out. */
    const char *(*labels)(const srv_metrics_view *v, int i, char *buf, size_t len);
    const char *help;
} srv_metric;

#define SRV_MT_OF(f)                                                                       \
    _Generic(((srv_metrics_view *)0)->f, uint64_t: SRV_MT_U64, int64_t: SRV_MT_I64,       \
             int: SRV_MT_INT, double: SRV_MT_F64, srv_phist: SRV_MT_PHIST)
#define SRV_M_ROW(kind, name, stats, log, f, layout, n, labels, help)                     \
    {name, stats, log, kind, SRV_MT_OF(f), layout, offsetof(srv_metrics_view, f),         \
     sizeof(((srv_metrics_view *)0)->f), n, labels, help}

#define SRV_COUNTER(name, f, stats, log, help)                                             \
    SRV_M_ROW(SRV_MK_COUNTER, name, stats, log, f, 0, 1, NULL, help)
#define SRV_GAUGE(name, f, stats, log, help)                                               \
    SRV_M_ROW(SRV_MK_GAUGE, name, stats, log, f, 0, 1, NULL, help)
#define SRV_HISTOGRAM(name, f, layout, help)                                               \
    SRV_M_ROW(SRV_MK_HISTOGRAM, name, NULL, NULL, f, layout, 1, NULL, help)
/* Arrays: f names the first element, n values labelled by labels(). */
#define SRV_COUNTERS_BY(name, f, n, labels, help)                                          \
    SRV_M_ROW(SRV_MK_COUNTER, name, NULL, NULL, f, 0, n, labels, help)
#define SRV_GAUGES_BY(name, f, n, labels, help)                                            \
    SRV_M_ROW(SRV_MK_GAUGE, name, NULL, NULL, f, 0, n, labels, help)
#define SRV_HISTOGRAMS_BY(name, f, layout, n, labels, help)                                \
    SRV_M_ROW(SRV_MK_HISTOGRAM, name, NULL, NULL, f, layout, n, labels, help)

/* The table; *n gets its length. */
const srv_metric *srv_metric_defs(int *n);

/* Value i of a scalar-typed row, printed exactly (integers as integers). */
int srv_metric_print(const srv_metric *m, const srv_metrics_view *v, int i, char *buf,
                     size_t len);
/* Value i as a double (for JSON numbers), and as an int64 (integer types). */
double srv_metric_f64(const srv_metric *m, const srv_metrics_view *v, int i);
int srv_metric_is_int(const srv_metric *m);
int64_t srv_metric_i64(const srv_metric *m, const srv_metrics_view *v, int i);
/* Value i of a histogram row. */
const srv_phist *srv_metric_phist(const srv_metric *m, const srv_metrics_view *v, int i);

#endif
