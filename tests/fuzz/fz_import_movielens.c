/* fz_import_movielens.c -- `attnctl import movielens DIR` on a directory of
 * fuzzed files.
 *
 * Input: a flags byte (bits 0 and 3 pick the layout; bit 1 skip_bad; bit
 * 2 Latin-1), then the files separated by FZ_MARK lines -- 100K (neither
 * bit): u.item, u.data, u.genre; CSV (bit 0): movies.csv, ratings.csv,
 * tags.csv; ML-1M '::' (bit 3): movies.dat, ratings.dat, users.dat; the
 * shared ML-1M copy (bits 0 and 3): movies.dat, sequences.txt.  A file with
 * no part left is absent.  Into an empty database; the invariants are
 * fzi_after's (fuzz_import.h).
 */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_import.h"
#include "tests/fuzz/fuzz_util.h"

static const char *const s_files[4][3] = {
    {"u.item", "u.data", "u.genre"},
    {"movies.csv", "ratings.csv", "tags.csv"},
    {"movies.dat", "ratings.dat", "users.dat"},
    {"movies.dat", "sequences.txt", NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int flags = data[0], layout = (flags & 1) | ((flags >> 3) & 1) << 1;
    const char *dir = fz_path("ml");
    mkdir(dir, 0700);
    char path[600];
    for (int l = 0; l < 4; l++)
        for (int f = 0; f < 3 && s_files[l][f]; f++) {
            snprintf(path, sizeof path, "%s/%s", dir, s_files[l][f]);
            unlink(path);
        }
    fz_part p[3];
    size_t n = fz_split(data + 1, size - 1, p, 3);
    for (size_t f = 0; f < n && s_files[layout][f]; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, s_files[layout][f]);
        fz_write(path, p[f].d, p[f].n);
    }
    store_import_opts o = fzi_opts();
    o.skip_bad = (flags >> 1) & 1;
    o.latin1 = (flags >> 2) & 1;
    store *db = fzi_db_empty();
    store_import_stats st;
    store_err err = {0};
    fzi_after(store_import_movielens(db, dir, &o, &st, &err), &err);
    return 0;
}
