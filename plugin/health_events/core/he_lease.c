/* he_lease.c -- see he_lease.h. */
#include "he_lease.h"

he_lease_timing he_lease_timing_for(unsigned lease_ms)
{
	he_lease_timing t = {
	    .lease_ms = lease_ms,
	    .renew_ms = lease_ms / 4,
	    .valid_ms = lease_ms / 2,
	    .poll_ms = lease_ms / 8 < 250 ? lease_ms / 8 : 250,
	    .call_ms = lease_ms / 4,
	    .check_ms = lease_ms / 4,
	    .heard_ms = lease_ms / 2,
	    .aside_ms = lease_ms,
	};
	return t;
}

/* Heard within heard_ms of now (a stamp taken after now is fresh). */
static int fresh(const he_lease_timing *t, unsigned long long now,
		 unsigned long long at)
{
	return at && (at >= now || now - at < t->heard_ms * 1000000ull);
}

he_able he_lease_able(const he_lease_timing *t, unsigned long long now_ns,
		      unsigned long long redis_ns, unsigned long long pg_ns,
		      unsigned long long redis_waiting,
		      unsigned long long pg_waiting)
{
	int r = fresh(t, now_ns, redis_ns), p = fresh(t, now_ns, pg_ns);
	/* Both silent: the cause is the one a call waits on (a consumer stuck
	 * on one server pings the other no more), else the one silent for
	 * longer, unless neither ever answered or both stopped at once. */
	if (!r && !p && !redis_waiting != !pg_waiting)
		return redis_waiting ? HE_ABLE_REDIS_SILENT : HE_ABLE_PG_SILENT;
	if (!r && !p && redis_ns != pg_ns && redis_ns && pg_ns)
		return redis_ns < pg_ns ? HE_ABLE_REDIS_SILENT
					: HE_ABLE_PG_SILENT;
	return r && p ? HE_ABLE
	       : p    ? HE_ABLE_REDIS_SILENT
	       : r    ? HE_ABLE_PG_SILENT
		      : HE_ABLE_BOTH_SILENT;
}

const char *he_able_name(he_able a)
{
	static const char *const names[] = {"able", "redis_silent",
					    "postgres_silent", "both_silent"};
	return (unsigned)a < 4 ? names[a] : "?";
}
