/*
 * he_lease_step.h -- the leadership lease as a pure state machine
 * (DESIGN §10): renew, expire, step down, contend, release, back off.
 *
 * No I/O and no clock of its own: every function takes the time (the
 * services table's now_ns, so the mock host's clock or a simulation's
 * virtual time drives it) and the results of the calls the caller made;
 * he_lease_sm_next says which call to make next, and when. The caller
 * (leader.c in production, tests/sim in the simulation) does the calls
 * and feeds back their results, so the same decisions run against real
 * servers and against models of them.
 *
 * The rules, in one place:
 *   - a leader may write (he_lease_sm_writable) while its last confirmed
 *     renewal was sent less than valid_ms (lease/2) ago, it was not
 *     fenced, and its consumer had an answer from both Redis and
 *     PostgreSQL within heard (lease/2): one lapsed lease in the
 *     database's time is always past our own deadline;
 *   - a leader renews every renew_ms (lease/4) and only while both
 *     answered; at a renewal without an answer from either within
 *     lease/2 it steps down, releases the lease (where PostgreSQL
 *     answers) and stands aside for a lease, so that an instance that
 *     can work takes over (it stopped writing already, at once);
 *   - a standby contends every poll_ms, only while both answered and it
 *     is not standing aside;
 *   - a fenced write (a newer epoch exists) steps down; every later ask
 *     is for an epoch above the highest fence seen, so an epoch a lost or
 *     rolled-back lease row hands out again is never used twice.
 *
 * One thread drives one machine (the lease thread under its mutex).
 * Private to plugin/health_events, its tests and the simulation.
 */
#ifndef HE_LEASE_STEP_H
#define HE_LEASE_STEP_H

#include "he_lease.h"

#include <stdbool.h>
#include <stdint.h>

/* The servers whose answers make an instance able to work. */
enum { HE_HEARD_REDIS, HE_HEARD_PG, HE_HEARD_COUNT };

typedef enum he_lease_do {
	HE_LEASE_DO_WAIT = 0, /* no call before at_ns (UINT64_MAX: none) */
	HE_LEASE_DO_ASK,      /* health_events_lease(min_epoch) */
	HE_LEASE_DO_RELEASE,  /* health_events_lease_release(epoch) */
} he_lease_do;

/* The next call: what, when (WAIT) or by when it gives up (the others). */
typedef struct he_lease_next {
	he_lease_do what;
	uint64_t at_ns;
	uint64_t epoch;		      /* RELEASE: the epoch to let go */
	unsigned long long min_epoch; /* ASK: a new epoch is at least this */
} he_lease_next;

/* Why leadership ended (the reason= of "leadership lost"). */
typedef enum he_lease_why {
	HE_LEASE_WHY_NONE = 0,
	HE_LEASE_WHY_FENCED,	   /* a write was refused: newer epoch */
	HE_LEASE_WHY_RENEW_FAILED, /* no confirmed renewal within valid_ms */
	HE_LEASE_WHY_LAPSED,	   /* the database says ours lapsed */
	HE_LEASE_WHY_TAKEN,	   /* another holds it */
	HE_LEASE_WHY_SILENT,	   /* a server did not answer the consumer */
	HE_LEASE_WHY_STOPPING,
} he_lease_why;

/* Stable lower-case name ("fenced", "renew_failed", ...). */
const char *he_lease_why_name(he_lease_why w);

/* What changed in the last step, for the caller's logs and metrics. */
typedef struct he_lease_news {
	uint64_t acquired; /* the epoch just acquired, 0: none */
	uint64_t lost;	   /* the epoch just lost, 0: none */
	he_lease_why why;  /* with lost */
} he_lease_news;

typedef struct he_lease_sm {
	he_lease_timing t;		/* read-only after init */
	unsigned heard_ms, aside_ms;	/* lease/2, lease */
	uint64_t epoch;			/* held, 0: standby */
	uint64_t valid_until;		/* writes stop at this time */
	uint64_t fenced;		/* the refused epoch, 0: none */
	unsigned long long min_epoch;	/* above the highest fence seen */
	uint64_t next_ns;		/* the next ask is not before */
	uint64_t aside_until;		/* no contending before */
	uint64_t heard[HE_HEARD_COUNT]; /* the consumer's last answers */
	uint64_t release;		/* an epoch to let go, 0: none */
	bool stop;
	he_lease_news news; /* set by the steps; the caller clears it */
} he_lease_sm;

/* A standby with nothing heard yet, for a lease of lease_ms. */
void he_lease_sm_init(he_lease_sm *s, unsigned lease_ms);

/*
 * The call to make at `now` (may step down first: news says so). After
 * ASK, report with he_lease_sm_asked; after RELEASE with
 * he_lease_sm_released; after WAIT call again at at_ns or on a change.
 */
he_lease_next he_lease_sm_next(he_lease_sm *s, uint64_t now);

/*
 * An ASK sent at `sent` came back at `now`: rc 0 and the epoch held after
 * it (`got`, 0: another holds the lease), or a negative HE_E* (no answer,
 * an error: the call says nothing about the lease).
 */
void he_lease_sm_asked(he_lease_sm *s, uint64_t now, uint64_t sent, int rc,
		       uint64_t got);

/* The RELEASE came back (whatever rc: a lease not let go lapses). */
void he_lease_sm_released(he_lease_sm *s, uint64_t now, int rc);

/* The consumer had an answer from server `which` (HE_HEARD_*) at `at`. */
void he_lease_sm_heard(he_lease_sm *s, int which, uint64_t at);

/*
 * A write with `epoch` was refused; `fence` is the epoch the refusal
 * named (0: unknown). Steps down at the next step if it is ours.
 */
void he_lease_sm_fenced(he_lease_sm *s, uint64_t epoch,
			unsigned long long fence);

/*
 * A standby read the Redis fence (its idle check): a new lease is asked
 * for above it, so an epoch a lost or rolled-back lease row hands out
 * again is not even tried. Ignored while holding (our own epoch is the
 * fence then).
 */
void he_lease_sm_saw_fence(he_lease_sm *s, unsigned long long fence);

/* Stop: the next step lets the lease go and then waits for ever. */
void he_lease_sm_stop(he_lease_sm *s);

/* Whether the consumer had answers from both servers within heard_ms. */
bool he_lease_sm_able(const he_lease_sm *s, uint64_t now);

/* The epoch this instance may write with at `now`, else 0. */
uint64_t he_lease_sm_writable(const he_lease_sm *s, uint64_t now);

#endif
