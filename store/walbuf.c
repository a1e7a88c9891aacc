/* walbuf.c -- a VFS over SQLite's default one whose WAL files write a
 * transaction's frames in a few system calls instead of two per page.
 *
 * SQLite appends a WAL frame as two writes, its 24-byte header and then the
 * page.  A record batch of a few hundred events writes hundreds of frames,
 * and on a guest where a system call costs ~1 µs (PTI) those writes were a
 * large share of the writer's time (docs/PERFORMANCE.md).  Here a WAL file
 * gathers consecutive writes in a buffer and hands them to the real file
 * in one write (so ~30 frames of 4 KiB a system call):
 *  - after the page of a commit frame (a frame header whose bytes 4-7, the
 *    database size after the commit, are not zero: docs of the WAL format,
 *    fileformat2 4.1).  SQLite publishes a commit in the WAL index only
 *    after its frames are written, so every reader, in this process or
 *    another, finds the frames in the file before it can look for them;
 *  - before anything else touches the file (read, sync, truncate, size,
 *    lock, file control, close), and when a write does not follow on from
 *    the buffered bytes (SQLite rewriting a frame in place);
 *  - before the connection releases a lock of the WAL index or passes its
 *    memory barrier (the database file's xShmLock and xShmBarrier, which
 *    this VFS wraps for that alone).  That covers what the WAL file is
 *    never told: a transaction whose spilled frames were rolled back ends
 *    by releasing the write lock, and its frames must reach the file while
 *    the lock is still held -- written later, they would land on frames
 *    another writer has committed there since.  And the barrier comes
 *    between the two copies of the index header that publish a commit, so
 *    no reader can accept a commit before its frames are in the file even
 *    if the commit frame were missed;
 *  - when 124 KiB have gathered (about 30 frames of 4 KiB).
 * A write of any other shape than the ones SQLite makes today (a 32-byte
 * WAL header at offset 0, 24-byte frame headers, pages of a power of two
 * from 512 to 65536 bytes) turns buffering off for that file for good, so
 * that a future SQLite writing frames differently is passed through rather
 * than misread; so is a WAL whose database file was not opened here.
 * Main database files only forward, but for those two flushes; journals
 * and temporary files are the default VFS's own.
 * Durability is unchanged: a commit's frames reach the operating system
 * before SQLite returns from the commit, as before.
 */
#include "store/store_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The unix VFS writes at most 128 KiB in one call (its seekAndWrite keeps
 * the low 17 bits of the size: SQLite itself never writes more than a
 * frame), so a flush stays under that. */
#define S_CAP ((1 << 17) - 4096)
#define S_NAME "attn-walbuf"

/* A WAL file, or the main database file it belongs to. */
typedef struct s_file {
    sqlite3_file base;          /* our methods */
    sqlite3_file *real;         /* the default VFS's file, after this struct */
    struct s_file *peer;        /* database <-> its WAL, NULL until both are open */
    const char *name;           /* database: the pointer SQLite opened it with */
    struct s_file *next;        /* database: the list of open ones */
    unsigned char *buf;         /* WAL: the writes not yet handed on */
    sqlite3_int64 buf_off;      /* file offset of buf[0] */
    size_t buf_len;
    int passthrough;            /* WAL: no buffering (a write of an unknown shape) */
    int flush_after_page;       /* a commit frame's header is buffered */
} s_file;

static sqlite3_vfs *real_vfs;
static atomic_ulong n_writes, n_flushes;
static atomic_int unlock_delay_us;
/* Open database files, so that a WAL file finds its own: SQLite opens a
 * WAL with a name from which sqlite3_filename_database gives back the very
 * pointer its database was opened with. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static s_file *open_dbs;

#define REAL(f) (((s_file *)(f))->real)

static int s_flush(s_file *f)
{
    if (f->buf_len == 0)
        return SQLITE_OK;
    atomic_fetch_add_explicit(&n_flushes, 1, memory_order_relaxed);
    int rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->buf_len, f->buf_off);
    /* On failure the frames are dropped: SQLite rolls the transaction back,
     * and frames past the last commit in the index are never read. */
    f->buf_len = 0;
    f->flush_after_page = 0;
    return rc;
}

static int s_is_page_size(int n)
{
    return n >= 512 && n <= 65536 && (n & (n - 1)) == 0;
}

static int s_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
    s_file *f = (s_file *)file;
    atomic_fetch_add_explicit(&n_writes, 1, memory_order_relaxed);
    int header = amt == 24, page = s_is_page_size(amt);
    if (!f->passthrough && !header && !page && !(amt == 32 && off == 0))
        f->passthrough = 1;
    int follows_on = f->buf_len == 0 || off == f->buf_off + (sqlite3_int64)f->buf_len;
    if (f->passthrough || off == 0 || !follows_on) {
        int rc = s_flush(f);
        if (rc != SQLITE_OK)
            return rc;
        if (f->passthrough || off == 0)   /* the WAL header: written as it comes */
            return f->real->pMethods->xWrite(f->real, data, amt, off);
    }
    if (!f->buf && !(f->buf = malloc(S_CAP)))
        return f->real->pMethods->xWrite(f->real, data, amt, off);
    if (f->buf_len + (size_t)amt > S_CAP) {
        int rc = s_flush(f);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (f->buf_len == 0)
        f->buf_off = off;
    memcpy(f->buf + f->buf_len, data, (size_t)amt);
    f->buf_len += (size_t)amt;
    if (header) {
        const unsigned char *h = data;
        if (h[4] | h[5] | h[6] | h[7])
            f->flush_after_page = 1;
        return SQLITE_OK;
    }
    return f->flush_after_page ? s_flush(f) : SQLITE_OK;
}

static int s_close(sqlite3_file *file)
{
    s_file *f = (s_file *)file;
    int rc = s_flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    pthread_mutex_lock(&open_lock);
    if (f->peer)
        f->peer->peer = NULL;
    pthread_mutex_unlock(&open_lock);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

/* Everything else flushes first, then forwards. */
#define S_FLUSHED(call)                           \
    do {                                          \
        int rc_ = s_flush((s_file *)file);        \
        if (rc_ != SQLITE_OK)                     \
            return rc_;                           \
        return REAL(file)->pMethods->call;        \
    } while (0)

static int s_read(sqlite3_file *file, void *out, int amt, sqlite3_int64 off)
{
    S_FLUSHED(xRead(REAL(file), out, amt, off));
}
static int s_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    S_FLUSHED(xTruncate(REAL(file), size));
}
static int s_sync(sqlite3_file *file, int flags)
{
    S_FLUSHED(xSync(REAL(file), flags));
}
static int s_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    S_FLUSHED(xFileSize(REAL(file), size));
}
static int s_lock(sqlite3_file *file, int level)
{
    S_FLUSHED(xLock(REAL(file), level));
}
static int s_unlock(sqlite3_file *file, int level)
{
    S_FLUSHED(xUnlock(REAL(file), level));
}
static int s_check_reserved(sqlite3_file *file, int *out)
{
    return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}
static int s_file_control(sqlite3_file *file, int op, void *arg)
{
    S_FLUSHED(xFileControl(REAL(file), op, arg));
}
static int s_sector_size(sqlite3_file *file)
{
    return REAL(file)->pMethods->xSectorSize(REAL(file));
}
static int s_device_characteristics(sqlite3_file *file)
{
    return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}
/* Shared memory and memory mapping: plain forwards, for both kinds of
 * file.  SQLite maps only the database file and never a WAL; were a later
 * version to ask a WAL anyway, its buffer would still leave at the next
 * write, read or close. */
static int s_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **p)
{
    return REAL(file)->pMethods->xShmMap(REAL(file), pg, pgsz, extend, p);
}
static int s_shm_unmap(sqlite3_file *file, int delete_flag)
{
    return REAL(file)->pMethods->xShmUnmap(REAL(file), delete_flag);
}
static int s_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **p)
{
    return REAL(file)->pMethods->xFetch(REAL(file), off, amt, p);
}
static int s_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    return REAL(file)->pMethods->xUnfetch(REAL(file), off, p);
}
static int s_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    S_FLUSHED(xShmLock(REAL(file), offset, n, flags));
}
static void s_shm_barrier(sqlite3_file *file)
{
    s_flush((s_file *)file);
    REAL(file)->pMethods->xShmBarrier(REAL(file));
}

static const sqlite3_io_methods s_methods = {
    3,        s_close,      s_read,          s_write,     s_truncate,
    s_sync,   s_file_size,  s_lock,          s_unlock,    s_check_reserved,
    s_file_control, s_sector_size, s_device_characteristics,
    s_shm_map, s_shm_lock,  s_shm_barrier,   s_shm_unmap, s_fetch,
    s_unfetch,
};

/* ---- the database file: everything forwarded; its WAL flushed first
 * where the WAL index is unlocked or published ---------------------------- */

/* The WAL buffer of a database file's connection.  Only that connection's
 * thread touches either file, so no lock is needed to use the link; the
 * link itself changes under open_lock, at open and close. */
static int s_flush_peer(sqlite3_file *file)
{
    s_file *wal = ((s_file *)file)->peer;
    return wal ? s_flush(wal) : SQLITE_OK;
}

static int s_db_close(sqlite3_file *file)
{
    s_file *f = (s_file *)file;
    pthread_mutex_lock(&open_lock);
    for (s_file **p = &open_dbs; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    if (f->peer)
        f->peer->peer = NULL;
    pthread_mutex_unlock(&open_lock);
    return f->real->pMethods->xClose(f->real);
}
static int s_db_read(sqlite3_file *file, void *out, int amt, sqlite3_int64 off)
{
    return REAL(file)->pMethods->xRead(REAL(file), out, amt, off);
}
static int s_db_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
    return REAL(file)->pMethods->xWrite(REAL(file), data, amt, off);
}
static int s_db_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    return REAL(file)->pMethods->xTruncate(REAL(file), size);
}
static int s_db_sync(sqlite3_file *file, int flags)
{
    return REAL(file)->pMethods->xSync(REAL(file), flags);
}
static int s_db_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    return REAL(file)->pMethods->xFileSize(REAL(file), size);
}
static int s_db_lock(sqlite3_file *file, int level)
{
    return REAL(file)->pMethods->xLock(REAL(file), level);
}
static int s_db_unlock(sqlite3_file *file, int level)
{
    return REAL(file)->pMethods->xUnlock(REAL(file), level);
}
static int s_db_file_control(sqlite3_file *file, int op, void *arg)
{
    return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}
static int s_db_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    int delay = atomic_load_explicit(&unlock_delay_us, memory_order_relaxed);
    if (delay > 0 && offset == 0 && (flags & SQLITE_SHM_UNLOCK) && (flags & SQLITE_SHM_EXCLUSIVE))
        usleep((useconds_t)delay);   /* tests: the write lock (index 0) held a while longer */
    if (flags & SQLITE_SHM_UNLOCK) {
        int rc = s_flush_peer(file);
        if (rc != SQLITE_OK)
            return rc;
    }
    return REAL(file)->pMethods->xShmLock(REAL(file), offset, n, flags);
}
static void s_db_shm_barrier(sqlite3_file *file)
{
    /* No way to report a failure here: a failed write leaves the commit's
     * frames out of the file, and the commit frame's own flush, which can
     * fail the commit, has normally run already. */
    s_flush_peer(file);
    REAL(file)->pMethods->xShmBarrier(REAL(file));
}

static const sqlite3_io_methods s_db_methods = {
    3,           s_db_close,     s_db_read,        s_db_write,        s_db_truncate,
    s_db_sync,   s_db_file_size, s_db_lock,        s_db_unlock,       s_check_reserved,
    s_db_file_control, s_sector_size, s_device_characteristics,
    s_shm_map,   s_db_shm_lock,  s_db_shm_barrier, s_shm_unmap,       s_fetch,
    s_unfetch,
};

/* ---- the VFS --------------------------------------------------------------- */

static int s_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                  int *out_flags)
{
    (void)vfs;
    int main_db = (flags & SQLITE_OPEN_MAIN_DB) && name;
    if (!main_db && !((flags & SQLITE_OPEN_WAL) && name))
        /* journals, temporary files: the default VFS's own, in our room */
        return real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
    s_file *f = (s_file *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods)
            f->real->pMethods->xClose(f->real);
        file->pMethods = NULL;
        return rc;
    }
    pthread_mutex_lock(&open_lock);
    if (main_db) {
        f->name = name;
        f->next = open_dbs;
        open_dbs = f;
    } else {
        const char *db_name = sqlite3_filename_database(name);
        for (s_file *d = open_dbs; d; d = d->next)
            if (d->name == db_name && !d->peer) {
                d->peer = f;
                f->peer = d;
                break;
            }
        /* A WAL whose database is not ours: nothing would flush it at
         * unlock, so it is not buffered. */
        f->passthrough = !f->peer;
    }
    pthread_mutex_unlock(&open_lock);
    file->pMethods = main_db ? &s_db_methods : &s_methods;
    return SQLITE_OK;
}

/* The VFS calls that are not about a file go to the default VFS, with its
 * own handle (it reads its own pAppData). */
static int s_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}
static int s_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int s_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static void *s_dl_open(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return real_vfs->xDlOpen(real_vfs, name);
}
static void s_dl_error(sqlite3_vfs *v, int n, char *msg)
{
    (void)v;
    real_vfs->xDlError(real_vfs, n, msg);
}
static void (*s_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    (void)v;
    return real_vfs->xDlSym(real_vfs, h, sym);
}
static void s_dl_close(sqlite3_vfs *v, void *h)
{
    (void)v;
    real_vfs->xDlClose(real_vfs, h);
}
static int s_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xRandomness(real_vfs, n, out);
}
static int s_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return real_vfs->xSleep(real_vfs, us);
}
static int s_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return real_vfs->xCurrentTime(real_vfs, out);
}
static int s_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xGetLastError(real_vfs, n, out);
}
static int s_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static sqlite3_vfs s_vfs = {
    .iVersion = 2, .zName = S_NAME, .xOpen = s_open, .xDelete = s_delete,
    .xAccess = s_access, .xFullPathname = s_full_pathname, .xDlOpen = s_dl_open,
    .xDlError = s_dl_error, .xDlSym = s_dl_sym, .xDlClose = s_dl_close,
    .xRandomness = s_randomness, .xSleep = s_sleep, .xCurrentTime = s_current_time,
    .xGetLastError = s_last_error, .xCurrentTimeInt64 = s_current_time64,
};

const char *store_walbuf_register(void)
{
    /* Over the unix VFS only: its files have every method of version 3,
     * which the tables above forward to without asking. */
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs || strcmp(real_vfs->zName, "unix") != 0)
        return NULL;
    s_vfs.szOsFile = (int)(sizeof(s_file) + (size_t)real_vfs->szOsFile);
    s_vfs.mxPathname = real_vfs->mxPathname;
    return sqlite3_vfs_register(&s_vfs, 0) == SQLITE_OK ? S_NAME : NULL;
}

void store_walbuf_counts(unsigned long *writes, unsigned long *flushes)
{
    *writes = atomic_load(&n_writes);
    *flushes = atomic_load(&n_flushes);
}

void store_walbuf_delay_unlock(int us)
{
    atomic_store(&unlock_delay_us, us);
}
