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

typedef struct he_lease_timing {
	unsigned lease_ms; /* the lease's length in the database */
	unsigned renew_ms; /* a leader renews this often: lease / 4 */
	unsigned valid_ms; /* writes stop this long after the last confirmed
			    * renewal was sent: lease / 2 */
	unsigned poll_ms;  /* a standby asks this often: lease / 8, at most
			    * 250 ms (a graceful handover takes one poll) */
	unsigned call_ms;  /* one lease call gives up after: lease / 4 */
} he_lease_timing;

/* The timing for a lease of lease_ms (500..60000, checked by config). */
he_lease_timing he_lease_timing_for(unsigned lease_ms);

#endif
