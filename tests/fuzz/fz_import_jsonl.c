/* fz_import_jsonl.c -- `attnctl import items|events` on a JSONL file.
 *
 * The first byte picks items or events and the reading options (see
 * fzi_table in fuzz_import.h); the rest is the file.  The invariants are
 * fzi_after's: a failed import commits nothing and says why, a committed
 * one leaves a database store_check finds healthy.
 */
#include "tests/fuzz/fuzz_import.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fzi_table(data, size, STORE_IMPORT_JSONL);
    return 0;
}
