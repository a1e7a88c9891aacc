/* lane.c -- see lane.h.
 *
 * Each ring has one producer and one consumer: the producer alone moves
 * head, the consumer alone moves tail, each publishing its slot with a
 * release store that the other side's acquire load pairs with.
 *
 * Sleeping is the usual store-then-check on both sides, sequentially
 * consistent so that of a sleeper's "I wait" and a waker's "there is work"
 * at least one sees the other:
 * - a helper stores waits = 1, then reads the bell; main bumps the bell
 *   after each task, then reads waits.  The futex sleeps only while the
 *   bell still holds the value the helper read before it last looked.
 * - main stores main_waits = 1, then looks at every reply ring; a helper
 *   publishes its reply, then takes main_waits (exchange with 0): one
 *   eventfd write per sleep, however many helpers answer.
 */
#include "daemon/lane.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define S_MASK (SRV_LANE_SLOTS - 1)

_Static_assert((SRV_LANE_SLOTS & S_MASK) == 0, "SRV_LANE_SLOTS must be a power of two");

typedef struct s_tasks {
    _Alignas(64) _Atomic uint32_t head;
    _Alignas(64) _Atomic uint32_t tail;
    srv_task slot[SRV_LANE_SLOTS];
} s_tasks;

typedef struct s_dones {
    _Alignas(64) _Atomic uint32_t head;
    _Alignas(64) _Atomic uint32_t tail;
    srv_done slot[SRV_LANE_SLOTS];
} s_dones;

struct srv_lane {
    s_tasks tasks;
    s_dones dones;
    _Alignas(64) _Atomic uint32_t bell;   /* futex word: bumped per task and at stop */
    _Atomic int waits;                    /* the helper sleeps, or is about to */
    _Atomic int stop;
    srv_lanes *owner;
};

struct srv_lanes {
    _Alignas(64) _Atomic int main_waits;
    int efd;
    int n;
    srv_lane *lane;
};

srv_lanes *srv_lanes_new(int n)
{
    /* aligned_alloc, not calloc: the flags sit on cache lines of their own. */
    srv_lanes *ls = aligned_alloc(64, sizeof *ls);
    if (!ls)
        return NULL;
    memset(ls, 0, sizeof *ls);
    ls->n = n;
    ls->lane = n > 0 ? aligned_alloc(64, (size_t)n * sizeof *ls->lane) : NULL;
    ls->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if ((n > 0 && !ls->lane) || ls->efd < 0) {
        if (ls->efd >= 0)
            close(ls->efd);
        free(ls->lane);
        free(ls);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        srv_lane *l = &ls->lane[i];
        atomic_init(&l->tasks.head, 0);
        atomic_init(&l->tasks.tail, 0);
        atomic_init(&l->dones.head, 0);
        atomic_init(&l->dones.tail, 0);
        atomic_init(&l->bell, 0);
        atomic_init(&l->waits, 0);
        atomic_init(&l->stop, 0);
        l->owner = ls;
    }
    atomic_init(&ls->main_waits, 0);
    return ls;
}

void srv_lanes_free(srv_lanes **lanes_p)
{
    srv_lanes *ls = *lanes_p;
    if (!ls)
        return;
    *lanes_p = NULL;
    for (int i = 0; i < ls->n; i++) {
        srv_lane *l = &ls->lane[i];
        srv_done d;
        for (uint32_t k = atomic_load(&l->tasks.tail); k != atomic_load(&l->tasks.head); k++) {
            zmq_msg_close(&l->tasks.slot[k & S_MASK].route);
            zmq_msg_close(&l->tasks.slot[k & S_MASK].payload);
        }
        while (srv_lane_collect(l, &d)) {
            zmq_msg_close(&d.route);
            zmq_msg_close(&d.body);
        }
    }
    close(ls->efd);
    free(ls->lane);
    free(ls);
}

srv_lane *srv_lanes_at(srv_lanes *ls, int i)
{
    return &ls->lane[i];
}

/* zmq_msg_move wants an initialised destination; the source is left empty. */
static void s_move(zmq_msg_t *dst, zmq_msg_t *src)
{
    zmq_msg_init(dst);
    zmq_msg_move(dst, src);
}

/* A task or a reply from one place to another: messages moved, fields copied. */
static void s_move_task(srv_task *dst, srv_task *src)
{
    s_move(&dst->route, &src->route);
    s_move(&dst->payload, &src->payload);
    dst->t_recv_ns = src->t_recv_ns;
    dst->style = src->style;
    dst->role = src->role;
}

static void s_move_done(srv_done *dst, srv_done *src)
{
    s_move(&dst->route, &src->route);
    s_move(&dst->body, &src->body);
    dst->kind = src->kind;
    dst->style = src->style;
}

static void s_futex_wait(_Atomic uint32_t *word, uint32_t seen)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

static void s_futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void s_ring_bell(srv_lane *l)
{
    atomic_fetch_add(&l->bell, 1);
    if (atomic_load(&l->waits))
        s_futex_wake(&l->bell);
}

/* ---- main's side ---------------------------------------------------------- */

int srv_lane_give(srv_lane *l, srv_task *task)
{
    uint32_t h = atomic_load_explicit(&l->tasks.head, memory_order_relaxed);
    if (h - atomic_load_explicit(&l->tasks.tail, memory_order_acquire) == SRV_LANE_SLOTS)
        return -1;
    s_move_task(&l->tasks.slot[h & S_MASK], task);
    atomic_store_explicit(&l->tasks.head, h + 1, memory_order_release);
    s_ring_bell(l);
    return 0;
}

int srv_lane_collect(srv_lane *l, srv_done *done)
{
    uint32_t t = atomic_load_explicit(&l->dones.tail, memory_order_relaxed);
    if (t == atomic_load_explicit(&l->dones.head, memory_order_acquire))
        return 0;
    s_move_done(done, &l->dones.slot[t & S_MASK]);
    atomic_store_explicit(&l->dones.tail, t + 1, memory_order_release);
    return 1;
}

int srv_lanes_sleep(srv_lanes *ls)
{
    atomic_store(&ls->main_waits, 1);
    for (int i = 0; i < ls->n; i++) {
        s_dones *d = &ls->lane[i].dones;
        if (atomic_load(&d->head) != atomic_load_explicit(&d->tail, memory_order_relaxed)) {
            atomic_store(&ls->main_waits, 0);
            return -1;
        }
    }
    return ls->efd;
}

void srv_lanes_woke(srv_lanes *ls, int signaled)
{
    atomic_store(&ls->main_waits, 0);
    uint64_t v;
    while (signaled && read(ls->efd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

void srv_lane_stop(srv_lane *l)
{
    atomic_store(&l->stop, 1);
    atomic_fetch_add(&l->bell, 1);
    s_futex_wake(&l->bell);
}

/* ---- the helper's side ---------------------------------------------------- */

int srv_lane_take(srv_lane *l, srv_task *task)
{
    for (;;) {
        uint32_t seen = atomic_load(&l->bell);
        uint32_t t = atomic_load_explicit(&l->tasks.tail, memory_order_relaxed);
        if (t != atomic_load_explicit(&l->tasks.head, memory_order_acquire)) {
            s_move_task(task, &l->tasks.slot[t & S_MASK]);
            atomic_store_explicit(&l->tasks.tail, t + 1, memory_order_release);
            return 1;
        }
        if (atomic_load(&l->stop))
            return 0;
        atomic_store(&l->waits, 1);
        if (atomic_load(&l->bell) == seen)
            s_futex_wait(&l->bell, seen);
        atomic_store(&l->waits, 0);
    }
}

void srv_lane_answer(srv_lane *l, srv_done *done)
{
    uint32_t h = atomic_load_explicit(&l->dones.head, memory_order_relaxed);
    /* Main owes at most SRV_LANE_SLOTS, so this never waits but for a bug. */
    while (h - atomic_load_explicit(&l->dones.tail, memory_order_acquire) == SRV_LANE_SLOTS)
        sched_yield();
    s_move_done(&l->dones.slot[h & S_MASK], done);
    atomic_store(&l->dones.head, h + 1);
    srv_lanes *ls = l->owner;
    if (atomic_load(&ls->main_waits) && atomic_exchange(&ls->main_waits, 0)) {
        uint64_t one = 1;
        while (write(ls->efd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
}
