/*
 * he_clock.h -- the one clock of health_events: the host's now_ns
 * (monotonic; the mock host's can be advanced). The lease and consumer
 * steps, the adapters' answer times (he_heard) and every deadline compare
 * readings of this clock only, so a test that moves it moves them all.
 * Any thread.
 */
#ifndef HE_CLOCK_H
#define HE_CLOCK_H

#include <apphost/component.h>
#include <stdint.h>

#define HE_NS_PER_MS 1000000ull

static inline uint64_t he_now_ns(const apphost_services *svc)
{
	return svc->now_ns(svc->host);
}

#endif
