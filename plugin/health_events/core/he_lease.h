/*
 * he_lease.h -- the leadership lease's timing, derived from one number
 * (HEALTH_EVENTS_LEASE_MS), with no I/O.
 *
 * The lease lives in PostgreSQL and expires by the database's clock. Our
 * own monotonic clock only decides when we stop writing: a renewal sent at
 * t and confirmed makes us valid until t + valid_ms, half the lease, so a
 * leader that cannot renew (PostgreSQL unreachable, a long pause) stops
 * well before the database could hand the lease to someone else. The
 * fencing of every write covers what a pause between that check and the
 * write itself could still let through.
 */
#ifndef HE_LEASE_H
#define HE_LEASE_H

#include <stdatomic.h>

typedef struct he_lease_timing {
	unsigned lease_ms; /* the lease's length in the database */
	unsigned renew_ms; /* a leader renews this often: lease / 4 */
	unsigned valid_ms; /* writes stop this long after the last confirmed
			    * renewal was sent: lease / 2 */
	unsigned poll_ms;  /* a standby asks this often: lease / 8, at most
			    * 250 ms (a graceful handover takes one poll) */
	unsigned call_ms;  /* one lease call gives up after: lease / 4 */
	unsigned check_ms; /* an idle server is pinged, and one XREAD
			    * blocks at most, this long: lease / 4 */
	unsigned heard_ms; /* holding or contending needs an answer from
			    * both servers within this: lease / 2 */
	unsigned aside_ms; /* after stepping down for want of an answer, no
			    * contending for this long: one lease */
} he_lease_timing;

/* The timing for a lease of lease_ms (500..60000, checked by config). */
he_lease_timing he_lease_timing_for(unsigned lease_ms);

/*
 * One server as the consumer meets it (monotonic ns, 0: never / none):
 * when it last answered, and since when its calls have been waiting for
 * an answer (the first of them that got none; reconnects included).
 * Written by the consumer's adapters, read by the lease thread.
 */
typedef struct he_heard {
	atomic_ullong at;
	atomic_ullong waiting;
} he_heard;

/*
 * Whether an instance can do the work, from when its consumer last had an
 * answer (an error reply counts: the server is reachable) from Redis and
 * from PostgreSQL, on the monotonic clock (0: never). A leader renews, and
 * a standby contends, only while both answered within heard_ms. When both
 * are silent, the one a call is waiting on is named (a consumer stuck on
 * one server pings the other no more), else the one silent for longer.
 */
typedef enum he_able {
	HE_ABLE,	      /* both answered */
	HE_ABLE_REDIS_SILENT, /* Redis did not */
	HE_ABLE_PG_SILENT,    /* PostgreSQL did not */
	HE_ABLE_BOTH_SILENT,  /* neither did */
} he_able;

he_able he_lease_able(const he_lease_timing *t, unsigned long long now_ns,
		      unsigned long long redis_ns, unsigned long long pg_ns,
		      unsigned long long redis_waiting,
		      unsigned long long pg_waiting);

/* "redis_silent", "postgres_silent", "both_silent" ("able" for HE_ABLE):
 * the reason= of the logs. */
const char *he_able_name(he_able a);

#endif
