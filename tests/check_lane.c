/* check_lane.c -- daemon/lane.c, the hand-off between main and a helper.
 *
 * A helper thread here echoes each task's payload back as its reply, so
 * that what main collects can be checked against what it gave: every task
 * answered once, in order, with its own route.  The waits are made to
 * happen -- a helper asleep on its futex when a task comes, main asleep on
 * the eventfd when a reply comes -- rather than hoped for.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/lane.h"
#include "daemon/worker.h"
#include "tests/testutil.h"

static void s_task(srv_task *t, uint32_t seq)
{
    char route[16];
    int n = snprintf(route, sizeof route, "r%u", seq);
    zmq_msg_init_size(&t->route, (size_t)n);
    memcpy(zmq_msg_data(&t->route), route, (size_t)n);
    zmq_msg_init_size(&t->payload, sizeof seq);
    memcpy(zmq_msg_data(&t->payload), &seq, sizeof seq);
    t->t_recv_ns = seq;
    t->style = (uint8_t)(seq & 1);
    t->role = 0;
}

/* The helper: echo until told to stop; how many it served. */
static void *s_echo(void *arg)
{
    srv_lane *l = arg;
    srv_task t;
    uintptr_t served = 0;
    while (srv_lane_take(l, &t)) {
        srv_done d = {.kind = SRV_DONE_REPLY, .style = t.style};
        zmq_msg_init(&d.route);
        zmq_msg_move(&d.route, &t.route);
        zmq_msg_init(&d.body);
        zmq_msg_move(&d.body, &t.payload);
        srv_lane_answer(l, &d);
        served++;
    }
    return (void *)served;
}

/* One reply: it must be task seq's. */
static void s_check_done(srv_done *d, uint32_t seq)
{
    char route[16];
    int n = snprintf(route, sizeof route, "r%u", seq);
    ck_assert_uint_eq(zmq_msg_size(&d->route), (size_t)n);
    ck_assert(!memcmp(zmq_msg_data(&d->route), route, (size_t)n));
    uint32_t got;
    ck_assert_uint_eq(zmq_msg_size(&d->body), sizeof got);
    memcpy(&got, zmq_msg_data(&d->body), sizeof got);
    ck_assert_uint_eq(got, seq);
    ck_assert_uint_eq(d->style, seq & 1);
    ck_assert_uint_eq(d->kind, SRV_DONE_REPLY);
    zmq_msg_close(&d->route);
    zmq_msg_close(&d->body);
}

/* Main's wait as server.c does it: say it sleeps, poll the eventfd unless
 * a reply is already there.  0 when a reply came within timeout_ms. */
static int s_wait_reply(srv_lanes *ls, int timeout_ms)
{
    int efd = srv_lanes_sleep(ls);
    if (efd < 0)
        return 0;
    struct pollfd p = {.fd = efd, .events = POLLIN};
    int rc = poll(&p, 1, timeout_ms);
    srv_lanes_woke(ls, rc > 0 && (p.revents & POLLIN));
    return rc > 0 ? 0 : -1;
}

/* Many tasks, the lane kept full: all answered once, in order. */
START_TEST(every_task_answered_in_order)
{
    srv_lanes *ls = srv_lanes_new(2);
    ck_assert_ptr_nonnull(ls);
    srv_lane *l = srv_lanes_at(ls, 1);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, s_echo, l), 0);
    enum { N = 20000 };
    uint32_t given = 0, collected = 0;
    int timeout = (int)(5000 * tu_slowdown());
    while (collected < N) {
        while (given < N && given - collected < SRV_LANE_SLOTS) {
            srv_task t;
            s_task(&t, given);
            ck_assert_int_eq(srv_lane_give(l, &t), 0);
            zmq_msg_close(&t.route);   /* moved out: empty */
            zmq_msg_close(&t.payload);
            given++;
        }
        srv_done d;
        if (srv_lane_collect(l, &d))
            s_check_done(&d, collected++);
        else
            ck_assert_msg(s_wait_reply(ls, timeout) == 0, "no reply to task %u in %d ms",
                          collected, timeout);
    }
    srv_done d;
    ck_assert_int_eq(srv_lane_collect(l, &d), 0);
    srv_lane_stop(l);
    void *served;
    pthread_join(th, &served);
    ck_assert_uint_eq((uintptr_t)served, N);
    srv_lanes_free(&ls);
    ck_assert_ptr_null(ls);
}
END_TEST

/* A helper asleep on its futex wakes for a task; main asleep on the
 * eventfd wakes for the reply; a stop wakes a sleeping helper. */
START_TEST(sleepers_are_woken)
{
    srv_lanes *ls = srv_lanes_new(2);
    srv_lane *l = srv_lanes_at(ls, 1);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, s_echo, l), 0);
    int timeout = (int)(5000 * tu_slowdown());
    for (uint32_t seq = 0; seq < 5; seq++) {
        usleep(20000);   /* the helper has long gone to sleep */
        srv_task t;
        s_task(&t, seq);
        ck_assert_int_eq(srv_lane_give(l, &t), 0);
        ck_assert_msg(s_wait_reply(ls, timeout) == 0, "task %u: no reply in %d ms", seq, timeout);
        srv_done d;
        ck_assert_int_eq(srv_lane_collect(l, &d), 1);
        s_check_done(&d, seq);
    }
    usleep(20000);
    srv_lane_stop(l);
    void *served;
    pthread_join(th, &served);   /* a hang here is the check's timeout */
    ck_assert_uint_eq((uintptr_t)served, 5);
    srv_lanes_free(&ls);
}
END_TEST

/* Nobody takes: the lane holds SRV_LANE_SLOTS, refuses the next and leaves
 * the caller's messages alone; freeing closes what it held (the sanitizer
 * and valgrind runs would report a leak). */
START_TEST(full_lane_refuses)
{
    srv_lanes *ls = srv_lanes_new(2);
    srv_lane *l = srv_lanes_at(ls, 1);
    srv_task t;
    for (uint32_t seq = 0; seq < SRV_LANE_SLOTS; seq++) {
        s_task(&t, seq);
        ck_assert_int_eq(srv_lane_give(l, &t), 0);
        ck_assert_uint_eq(zmq_msg_size(&t.payload), 0);
        zmq_msg_close(&t.route);
        zmq_msg_close(&t.payload);
    }
    s_task(&t, 99);
    ck_assert_int_eq(srv_lane_give(l, &t), -1);
    ck_assert_uint_eq(zmq_msg_size(&t.payload), sizeof(uint32_t));
    zmq_msg_close(&t.route);
    zmq_msg_close(&t.payload);
    srv_done d;
    ck_assert_int_eq(srv_lane_collect(l, &d), 0);
    ck_assert_int_ge(srv_lanes_sleep(ls), 0);   /* nothing answered: main may sleep */
    srv_lanes_woke(ls, 0);
    srv_lanes_free(&ls);
}
END_TEST

static Suite *lane_suite(void)
{
    Suite *s = suite_create("lane");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60 * tu_slowdown());
    tcase_add_test(tc, every_task_answered_in_order);
    tcase_add_test(tc, sleepers_are_woken);
    tcase_add_test(tc, full_lane_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(lane_suite());
}
