/* clock.c -- see clock.h. */
#include "clock.h"

#include <time.h>

uint64_t apphost_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t apphost_now_ms(void)
{
	return apphost_now_ns() / 1000000u;
}

struct timeval apphost_ms_timeval(uint32_t ms)
{
	struct timeval tv = {
	    .tv_sec = (time_t)(ms / 1000),
	    .tv_usec = (suseconds_t)((ms % 1000) * 1000),
	};
	return tv;
}
