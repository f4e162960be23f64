/* lc_clock.h - the clocks the RX loops read (one home for them).
 *
 * lc_mono_ns: CLOCK_MONOTONIC, for intervals (busy/idle cycles where the
 * loop counts in nanoseconds, batch deadlines, idle timers).
 * lc_realtime_ns: CLOCK_REALTIME, for the rx_time a record carries.
 * Both go through the vDSO: no system call.
 */
#ifndef LC_CLOCK_H
#define LC_CLOCK_H

#include <stdint.h>
#include <time.h>

#define LC_NS_PER_S 1000000000ull

static inline uint64_t lc_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * LC_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline int64_t lc_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * (int64_t)LC_NS_PER_S + ts.tv_nsec;
}

/* A relative timeout or nap of `ns` nanoseconds (ppoll, nanosleep). */
static inline struct timespec lc_timespec_ns(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / LC_NS_PER_S), .tv_nsec = (long)(ns % LC_NS_PER_S)};
}

#endif
