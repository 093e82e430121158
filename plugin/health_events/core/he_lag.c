/* he_lag.c -- see he_lag.h. */
#include "he_lag.h"

#include <stddef.h>
#include <string.h>

void he_lag_reset(he_lag *l)
{
	memset(l, 0, sizeof(*l));
}

void he_lag_clock(he_lag *l, uint64_t redis_us, uint64_t mono_ns)
{
	l->clock_known = true;
	l->redis_us = redis_us;
	l->mono_ns = mono_ns;
}

void he_lag_read(he_lag *l, size_t n, unsigned long long first_ms)
{
	/* An empty read means nothing follows the offset. A non-empty one
	 * names the oldest entry not committed, whatever was pending. */
	l->pending = n > 0;
	l->ms = n > 0 ? first_ms : 0;
}

void he_lag_committed(he_lag *l, bool end, unsigned long long last_ms)
{
	l->pending = !end;
	l->ms = end ? 0 : last_ms;
}

double he_lag_age(const he_lag *l, unsigned long long id_ms, uint64_t mono_ns)
{
	if (!l->clock_known)
		return -1;
	/* A sample taken "after" mono_ns (the caller read its clock first)
	 * carries forward by nothing rather than backwards by wrapping. */
	uint64_t since = mono_ns > l->mono_ns ? mono_ns - l->mono_ns : 0;
	double now_ms = (double)l->redis_us / 1e3 + (double)since / 1e6;
	double age = (now_ms - (double)id_ms) / 1e3;
	return age > 0 ? age : 0;
}

double he_lag_seconds(const he_lag *l, uint64_t mono_ns)
{
	if (!l->pending)
		return 0;
	double a = he_lag_age(l, l->ms, mono_ns);
	return a > 0 ? a : 0;
}
