/* The machine's cost of one thread waking another, the unit the issue-18 profile counts in.
 *
 *   cc -O2 -pthread benches/wake_latency.c -o target/wake_latency && target/wake_latency
 *
 * One thread writes a timestamp into a pipe; another, blocked in read(2), takes it and sends
 * back how long it took to run. Measured with both threads on one CPU and on two CPUs, after
 * gaps of 0, 0.1, 1 and 5 ms (after a gap the other CPU has gone idle, and waking an idle
 * virtual CPU is what costs most on a VM without guest halt-polling). Bounded: 300 pings per
 * case. Prints medians and 90th percentiles in microseconds. Linux only. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static int reader_cpu;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *reader(void *unused) {
    (void)unused;
    pin(reader_cpu);
    uint64_t sent;
    while (read(ping[0], &sent, sizeof sent) == sizeof sent) {
        uint64_t took = now_ns() - sent;
        if (write(pong[1], &took, sizeof took) != sizeof took) break;
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(void) {
    enum { N = 300 };
    static uint64_t took[N];
    const int gaps_us[] = {0, 100, 1000, 5000};
    for (int cross = 0; cross <= 1; cross++) {
        if (pipe(ping) || pipe(pong)) return 1;
        reader_cpu = cross;
        pin(0);
        pthread_t thread;
        pthread_create(&thread, NULL, reader, NULL);
        for (unsigned g = 0; g < sizeof gaps_us / sizeof *gaps_us; g++) {
            for (int i = 0; i < N; i++) {
                if (gaps_us[g]) usleep(gaps_us[g]);
                uint64_t t = now_ns();
                if (write(ping[1], &t, sizeof t) != sizeof t) return 1;
                if (read(pong[0], &took[i], sizeof took[i]) != sizeof took[i]) return 1;
            }
            qsort(took, N, sizeof *took, cmp);
            printf("%s CPU, gap %5d us: wake-up p50 %6.1f us, p90 %6.1f us\n",
                   cross ? "other" : "same ", gaps_us[g], took[N / 2] / 1e3, took[N * 9 / 10] / 1e3);
        }
        close(ping[1]);
        pthread_join(thread, NULL);
        close(ping[0]);
        close(pong[0]);
        close(pong[1]);
    }
    return 0;
}
