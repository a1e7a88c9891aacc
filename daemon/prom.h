/* prom.h -- the Prometheus text exposition format 0.0.4 of a metrics view.
 *
 *     FILE *f = open_memstream(&body, &len);
 *     srv_prom_write(&view, f);          // every metric_defs.c row with a name
 *     fclose(f);                         // body: "# HELP attnd_... \n# TYPE ..."
 *
 * Families in table order, each with HELP and TYPE; histogram buckets are
 * cumulative with an `le` label in the exported unit and end at +Inf, whose
 * count equals _count.  Integers are printed exactly.
 */
#ifndef DAEMON_PROM_H
#define DAEMON_PROM_H

#include <stdio.h>

#include "daemon/metrics.h"

#define SRV_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Returns 0, or -1 when out failed (its error flag was set). */
int srv_prom_write(const srv_metrics_view *v, FILE *out);

#endif
