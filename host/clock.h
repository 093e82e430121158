/*
 * clock.h -- the host's one monotonic clock (CLOCK_MONOTONIC), and the
 * struct timeval that hiredis wants for a timeout in milliseconds.
 *
 * All functions may be called from any thread.
 */
#ifndef APPHOST_HOST_CLOCK_H
#define APPHOST_HOST_CLOCK_H

#include <stdint.h>
#include <sys/time.h>

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
uint64_t apphost_now_ns(void);

/* The same clock in milliseconds. */
uint64_t apphost_now_ms(void);

/* ms as a struct timeval (seconds and microseconds). */
struct timeval apphost_ms_timeval(uint32_t ms);

#endif
