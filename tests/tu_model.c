/* tu_model.c -- a trained-looking model version (tu_model.h). */
#include "tests/tu_model.h"

#include <math.h>
#include "attn/model.h"
#include "tests/testutil.h"

int64_t tu_trained_model(store *db, int heads, uint64_t seed)
{
    store_catalog *cat;
    store_err err = {0};
    ck_assert_msg(store_catalog_load(db, &cat, &err) == STORE_OK, "%s", err.msg);
    int d = cat->dim, l_max = 16;
    attn_model *m = attn_model_new(d, d, heads, l_max, (int64_t)cat->n, 1);
    ck_assert_ptr_nonnull(m);
    tu_rng g = {seed};
    tu_fill_normal(&g, m->wq, (size_t)d * d, 0.4f);
    tu_fill_normal(&g, m->wk, (size_t)d * d, 0.4f);
    tu_fill_normal(&g, m->wv, (size_t)d * d, 0.4f);
    tu_fill_normal(&g, m->wo, (size_t)d * d, 0.4f);
    tu_fill_normal(&g, m->pos_bias, (size_t)l_max, 0.3f);
    for (size_t i = 0; i < cat->n; i++)
        m->item_ids[i] = cat->item_id[i];
    tu_fill_normal(&g, m->item_bias, cat->n, 0.5f);
    tu_fill_normal(&g, m->residual, cat->n * (size_t)d, 0.2f);
    m->scale = 1.0f / sqrtf((float)d / (float)heads);
    int64_t v;
    ck_assert_msg(store_model_save(db, m, "{\"test\":true}", NULL, 1, &v, &err) == STORE_OK, "%s",
                  err.msg);
    attn_model_free(&m);
    store_catalog_free(&cat);
    return v;
}
