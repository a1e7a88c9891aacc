/* proc.c -- see proc.h. */
#include "util/proc.h"

#include <sched.h>
#include <stdio.h>
#include <unistd.h>

uint64_t util_rss_bytes(pid_t pid)
{
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    else
        snprintf(path, sizeof path, "/proc/self/statm");
    FILE *f = fopen(path, "r");
    unsigned long long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

int util_sched_idle(void)
{
    struct sched_param p = {.sched_priority = 0};
    return sched_setscheduler(0, SCHED_IDLE, &p);   /* 0: this thread, on Linux */
}
