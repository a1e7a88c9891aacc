/* experiment.c -- see experiment.h. */
#include "daemon/experiment.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "util/hash.h"
#include "util/rng.h"

/* The next comma-separated field of *p, trimmed, into buf; 0 at the end. */
static int s_next(const char **p, char *buf, size_t cap)
{
    const char *s = *p;
    if (!*s)
        return 0;
    const char *e = strchr(s, ',');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    *p = e ? e + 1 : s + n;
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
    return 1;
}

static int s_version(const char *text, int64_t *v)
{
    if (!strcmp(text, "active")) {
        *v = SRV_VERSION_ACTIVE;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(text, &end, 10);
    if (errno || end == text || *end || x < 0)
        return -1;
    *v = x;
    return 0;
}

static int s_arm(srv_experiment *e, const char *text, char *why, size_t why_len)
{
    char name[64], ver[32], weight[32];
    if (sscanf(text, "%63[^:]:%31[^:]:%31s", name, ver, weight) != 3) {
        snprintf(why, why_len, "experiment.arms: '%s' is not NAME:VERSION:WEIGHT", text);
        return -1;
    }
    size_t n = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            n = 0;
    if (n == 0 || n > SRV_ARM_NAME_MAX) {
        snprintf(why, why_len, "experiment.arms: arm name '%s' must be 1..%d of a-z, 0-9, _, -",
                 name, SRV_ARM_NAME_MAX);
        return -1;
    }
    srv_arm *a = &e->arm[e->n];
    char *end;
    a->weight = strtod(weight, &end);
    if (s_version(ver, &a->version) || *end || !isfinite(a->weight) || !(a->weight > 0)) {
        snprintf(why, why_len, "experiment.arms: arm '%s': version '%s' must be a number or "
                 "`active`, weight '%s' a number > 0", name, ver, weight);
        return -1;
    }
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->arm[i].name, name)) {
            snprintf(why, why_len, "experiment.arms: arm '%s' is named twice", name);
            return -1;
        }
    memcpy(a->name, name, strlen(name) + 1);
    e->n++;
    return 0;
}

int srv_experiment_parse(const char *arms, const char *salt, srv_experiment *e, char *why,
                         size_t why_len)
{
    memset(e, 0, sizeof *e);
    snprintf(e->salt, sizeof e->salt, "%s", salt);
    char buf[256];
    const char *p = arms;
    while (s_next(&p, buf, sizeof buf)) {
        if (e->n == SRV_ARMS_MAX) {
            snprintf(why, why_len, "experiment.arms: more than %d arms", SRV_ARMS_MAX);
            return -1;
        }
        if (s_arm(e, buf, why, why_len))
            return -1;
    }
    if (e->n == 1) {
        snprintf(why, why_len, "experiment.arms: one arm is not an experiment (give two or "
                 "more, or none)");
        return -1;
    }
    double total = 0, run = 0;
    for (int i = 0; i < e->n; i++)
        total += e->arm[i].weight;
    for (int i = 0; i < e->n; i++) {
        run += e->arm[i].weight;
        e->arm[i].upto = i == e->n - 1 ? 1.0 : run / total;
    }
    return 0;
}

int srv_experiment_arm(const srv_experiment *e, const char *key, size_t len)
{
    if (e->n == 0 || !key)
        return 0;
    uint64_t h = util_fnv1a(UTIL_FNV_OFFSET, e->salt, strlen(e->salt));
    h = util_fnv1a(h, "\x1f", 1);
    double u = util_rng_unit(util_hash_mix(util_fnv1a(h, key, len)));
    for (int i = 0; i < e->n; i++)
        if (u < e->arm[i].upto)
            return i;
    return e->n - 1;
}

int srv_models_parse(const char *serve, int64_t *versions, int *n, int max, char *why,
                     size_t why_len)
{
    char buf[64];
    const char *p = serve;
    *n = 0;
    while (s_next(&p, buf, sizeof buf)) {
        int64_t v;
        if (s_version(buf, &v) || v == SRV_VERSION_ACTIVE) {
            snprintf(why, why_len, "models.serve: '%s' is not a model version", buf);
            return -1;
        }
        if (*n == max) {
            snprintf(why, why_len, "models.serve: more than %d versions", max);
            return -1;
        }
        versions[(*n)++] = v;
    }
    return 0;
}

int srv_precisions_parse(const char *spec, srv_precisions *p, char *why, size_t why_len)
{
    char buf[64];
    const char *s = spec;
    p->n = 0;
    while (s_next(&s, buf, sizeof buf)) {
        char *colon = strchr(buf, ':');
        int64_t v;
        if (colon)
            *colon = 0;
        if (!colon || s_version(buf, &v) || v == SRV_VERSION_ACTIVE) {
            snprintf(why, why_len, "models.precision: '%s%s%s' is not VERSION:f32 or "
                     "VERSION:bf16 (a model version number)", buf, colon ? ":" : "",
                     colon ? colon + 1 : "");
            return -1;
        }
        int prec = cfg_enum_value("model.precision", colon + 1);
        if (prec < 0) {
            snprintf(why, why_len, "models.precision: version %lld: precision '%s' is not "
                     "f32 or bf16", (long long)v, colon + 1);
            return -1;
        }
        for (int i = 0; i < p->n; i++)
            if (p->version[i] == v) {
                snprintf(why, why_len, "models.precision: version %lld is named twice",
                         (long long)v);
                return -1;
            }
        if (p->n == SRV_PRECISIONS_MAX) {
            snprintf(why, why_len, "models.precision: more than %d versions",
                     SRV_PRECISIONS_MAX);
            return -1;
        }
        p->version[p->n] = v;
        p->precision[p->n++] = prec;
    }
    return 0;
}

int srv_precision_of(const srv_precisions *p, int64_t version, int dflt)
{
    for (int i = 0; i < p->n; i++)
        if (p->version[i] == version)
            return p->precision[i];
    return dflt;
}
