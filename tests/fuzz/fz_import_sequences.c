/* fz_import_sequences.c -- `attnctl import sequences DB FILE [--items F]`.
 *
 * Input: a flags byte (bits 0-1: the layout -- 0 detected, 1 "user item"
 * lines, 2 "user item1 item2 ..." lines, 3 detected again; bit 2 skip_bad;
 * bit 3 Latin-1; bit 4 a titles file), then the sequence file and, after an
 * FZ_MARK line, the titles file (CSV).  Into the generated database, so
 * that sequences meet items that exist as well as new ones; the invariants
 * are fzi_after's (fuzz_import.h).
 */
#include <unistd.h>

#include "tests/fuzz/fuzz_import.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int flags = data[0];
    const char *seq = fz_path("seq.txt"), *titles = fz_path("titles.csv");
    fz_part p[2];
    size_t n = fz_split(data + 1, size - 1, p, 2);
    fz_write(seq, n > 0 ? p[0].d : data, n > 0 ? p[0].n : 0);
    unlink(titles);
    if (n > 1 && ((flags >> 4) & 1))
        fz_write(titles, p[1].d, p[1].n);
    store_import_opts o = fzi_opts();
    int layout = flags & 3;
    o.seq_layout = layout == 1 ? STORE_IMPORT_SEQ_PAIRS
                 : layout == 2 ? STORE_IMPORT_SEQ_LISTS : STORE_IMPORT_SEQ_AUTO;
    o.skip_bad = (flags >> 2) & 1;
    o.latin1 = (flags >> 3) & 1;
    o.titles_path = (flags >> 4) & 1 ? titles : NULL;
    store *db = fzi_db();
    store_import_stats st;
    store_err err = {0};
    fzi_after(store_import_sequences(db, seq, &o, &st, &err), &err);
    return 0;
}
