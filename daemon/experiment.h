/* experiment.h -- which model serves whom: the models kept loaded, and the
 * arms of an A/B experiment with their sticky assignment.
 *
 *     srv_experiment e;
 *     if (srv_experiment_parse(cfg.exp_arms, cfg.exp_salt, &e, why, sizeof why))
 *         die(why);               // "experiment.arms: 'x:3' needs NAME:VERSION:WEIGHT"
 *     int arm = srv_experiment_arm(&e, "u42", 3);     // the same for u42 everywhere
 *
 * A user's arm is a pure function of (salt, user ext_id): no state, so it is
 * the same across requests, restarts and replicas, and a new salt reshuffles
 * everyone.  The hash is FNV-1a over salt, a 0x1f separator and the key, then
 * util_hash_mix; its top 53 bits as a fraction in [0, 1) fall into the arm
 * whose cumulative share covers them.
 */
#ifndef DAEMON_EXPERIMENT_H
#define DAEMON_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>

#define SRV_ARMS_MAX 8
#define SRV_MODELS_MAX 8           /* loaded at once: the active one and the others */
#define SRV_ARM_NAME_MAX 32
#define SRV_VERSION_ACTIVE (-1)    /* an arm served by whatever model is active */

typedef struct srv_arm {
    char name[SRV_ARM_NAME_MAX + 1];
    int64_t version;            /* or SRV_VERSION_ACTIVE */
    double weight;              /* as configured */
    double upto;                /* cumulative share: the arm takes fractions below it */
} srv_arm;

typedef struct srv_experiment {
    int n;                      /* 0: no experiment */
    srv_arm arm[SRV_ARMS_MAX];  /* [0] is the control */
    char salt[128];
} srv_experiment;

/* Parse experiment.arms ("NAME:VERSION:WEIGHT,..."; VERSION a number or
 * `active`); "" is no experiment.  0, or -1 with the reason naming the key. */
int srv_experiment_parse(const char *arms, const char *salt, srv_experiment *e, char *why,
                         size_t why_len);

/* The arm of key (a user ext_id or a session), 0 when key is NULL or there
 * is no experiment (then no arm at all: callers check e->n). */
int srv_experiment_arm(const srv_experiment *e, const char *key, size_t len);

/* Parse models.serve ("3,5"; "" none) into versions[], at most max of them.
 * 0, or -1 with the reason. */
int srv_models_parse(const char *serve, int64_t *versions, int *n, int max, char *why,
                     size_t why_len);

/* models.precision: the precision of named versions, wherever they load
 * (active, models.serve or an arm), over model.precision for the rest. */
#define SRV_PRECISIONS_MAX 16

typedef struct srv_precisions {
    int n;
    int64_t version[SRV_PRECISIONS_MAX];
    int precision[SRV_PRECISIONS_MAX];    /* enum cfg_precision */
} srv_precisions;

/* Parse "VERSION:f32|bf16,..." ("" none).  0, or -1 with the reason. */
int srv_precisions_parse(const char *spec, srv_precisions *p, char *why, size_t why_len);

/* The precision version loads in: its entry in p, else dflt. */
int srv_precision_of(const srv_precisions *p, int64_t version, int dflt);

#endif
