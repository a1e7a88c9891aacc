/* tu_model.h -- a trained-looking model version for suites that need one.
 *
 *     store *db = ...;                       // read-write, items embedded
 *     int64_t v = tu_trained_model(db, 2, 5);   // saved and active
 *
 * Random projections, position bias, and per-item bias and residual for
 * every item of the catalog as it is now, so an item embedded later is one
 * the model never saw.  Fails the test on any error.
 */
#ifndef TESTS_TU_MODEL_H
#define TESTS_TU_MODEL_H

#include <stdint.h>
#include "store/store.h"

/* Save and activate a model of the database's dimension (m = d, heads
 * must divide it, l_max 16, no self-attention block); its version. */
int64_t tu_trained_model(store *db, int heads, uint64_t seed);

#endif
