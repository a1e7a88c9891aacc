/* check_pid.c -- util/pid.c, getpid() cached for libzmq's fork checks.
 *
 * This binary links pid.c as attnd does, so the getpid every library here
 * calls is the cached one.  What must hold: it is the one the libraries
 * resolve to, it answers what the kernel answers, and a forked child
 * answers its own pid, not the parent's.  Check itself forks for every
 * test, so each test here already runs in a child of a process that may
 * have cached its own pid.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/pid.h"
#include "tests/testutil.h"

static pid_t s_kernel_pid(void)
{
    return (pid_t)syscall(SYS_getpid);
}

/* The global scope's getpid -- what libzmq's calls through the PLT
 * resolve to -- is the executable's, not libc's. */
START_TEST(libraries_get_the_cached_getpid)
{
    void *global = dlsym(RTLD_DEFAULT, "getpid");
    ck_assert_ptr_nonnull(global);
    ck_assert_ptr_eq(global, (void *)getpid);
}
END_TEST

START_TEST(answers_what_the_kernel_answers)
{
    ck_assert_int_eq(getpid(), s_kernel_pid());
    ck_assert_int_eq(getpid(), s_kernel_pid());   /* from the cache now */
}
END_TEST

START_TEST(a_forked_child_gets_its_own_pid)
{
    pid_t parent = getpid();   /* cached in this process */
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        pid_t mine = getpid();
        _exit(mine == s_kernel_pid() && mine != parent ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_int_eq(getpid(), parent);
    ck_assert_int_eq(getpid(), s_kernel_pid());
}
END_TEST

static Suite *pid_suite(void)
{
    Suite *s = suite_create("pid");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, libraries_get_the_cached_getpid);
    tcase_add_test(tc, answers_what_the_kernel_answers);
    tcase_add_test(tc, a_forked_child_gets_its_own_pid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* As attnd does first thing: the fork handler, before Check's forks. */
    if (util_pid_cache_init() != 0)
        return 1;
    (void)getpid();   /* cache the runner's pid, so that Check's children inherit it */
    return tu_run(pid_suite());
}
