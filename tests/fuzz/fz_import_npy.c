/* fz_import_npy.c -- `attnctl import items --npy E.npy --ids IDS`.
 *
 * Input: one byte n, then n bytes of the id list (one ext_id per line),
 * then the .npy file; bit 7 of n turns skip_bad on (the length is n & 127).
 * The invariants are fzi_after's (fuzz_import.h).
 */
#include "tests/fuzz/fuzz_import.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = data[0] & 127;
    if (n > size - 1)
        n = size - 1;
    const char *ids = fz_path("ids.txt"), *npy = fz_path("emb.npy");
    fz_write(ids, data + 1, n);
    fz_write(npy, data + 1 + n, size - 1 - n);
    store_import_opts o = fzi_opts();
    o.npy_path = npy;
    o.ids_path = ids;
    o.skip_bad = data[0] >> 7;
    store *db = fzi_db();
    store_import_stats st;
    store_err err = {0};
    fzi_after(store_import_items(db, NULL, &o, &st, &err), &err);
    return 0;
}
