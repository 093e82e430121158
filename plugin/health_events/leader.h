/*
 * leader.h -- leadership among health_events instances (DESIGN §10): a
 * thread of its own that holds, renews, releases or waits for the lease
 * in PostgreSQL (schema/003_leadership.sql) on a connection of its own, so
 * neither a blocked XREAD nor a slow batch delays a renewal.
 *
 * The consumer asks he_leader_epoch() before each write and passes the
 * epoch along with it: the database and the Redis commit script refuse
 * a stale one, which is what makes a paused ex-leader write nothing. A
 * refused write comes back through he_leader_fenced(): the instance steps
 * down to standby and goes on polling (the host may run other components;
 * fencing never ends the process).
 *
 * Leadership follows the ability to work: the consumer's adapters note
 * every answer from Redis and PostgreSQL (he_leader_heard), and a leader
 * whose consumer went half a lease without one from either steps down,
 * releases the lease and stands aside for a lease; a standby contends only
 * while both answer.
 *
 * Logs: "leadership acquired" (epoch, previous holder) and "leadership
 * lost" (epoch, reason: fenced, renew_failed, lapsed, taken, stopping,
 * redis_silent, postgres_silent, both_silent); "standing aside from the
 * lease" (reason) and "contending for the lease again".
 * Metrics: health_events_leader, health_events_leader_epoch,
 * health_events_leadership_changes_total, health_events_fenced_total.
 */
#ifndef HE_LEADER_H
#define HE_LEADER_H

#include "he_config.h"
#include "he_lease.h"

#include <apphost/component.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct he_leader he_leader;

/* The servers the work needs. */
enum he_dep { HE_DEP_REDIS, HE_DEP_PG, HE_DEP_COUNT };

/* Allocate (no thread, no connection); cfg is borrowed. Main thread. */
int he_leader_new(const apphost_services *svc, const he_config *cfg,
		  he_leader **out);

/*
 * Start the lease thread. wake(arg) is called from it, without its lock,
 * when leadership is lost, so the consumer can interrupt a blocked read.
 * 0 or HE_ENOMEM. Main thread.
 */
int he_leader_start(he_leader *l, void (*wake)(void *), void *arg);

/*
 * The epoch this instance may write with now: the leader's, while its
 * last confirmed renewal is younger than the lease's valid_ms; else 0.
 * Any thread.
 */
uint64_t he_leader_epoch(he_leader *l);

/*
 * Wait up to timeout_ms for he_leader_epoch() > 0, or for *stop (checked
 * when he_leader_kick wakes the wait). Returns the epoch or 0.
 */
uint64_t he_leader_wait(he_leader *l, const atomic_bool *stop,
			unsigned timeout_ms);

/*
 * Whether the last lease call failed (PostgreSQL down, or the lease
 * functions missing: a migration not applied). A standby that cannot ask
 * for the lease is not ready: it could never take over. Any thread.
 */
bool he_leader_failing(he_leader *l);
/* The last failed lease call's code (HE_EPERM for a refused privilege,
 * ...), 0 when the last call succeeded. Any thread. */
int he_leader_failure(he_leader *l);

/*
 * Where the consumer's adapters note each answer of server d (he_now_ns
 * ns; he_stream_redis_set_heard, he_record_store_pg_set_heard). The lease
 * is renewed, and contended for, only while both answered within half a
 * lease; he_leader_epoch() is 0 as soon as one did not. Owned by l.
 */
he_heard *he_leader_heard(he_leader *l, enum he_dep d);

/*
 * This instance's random token (owned by l; for its whole life): a fencing
 * token is the epoch and this together, in the lease row, in every apply
 * and in the Redis fence. Any thread.
 */
const char *he_leader_token(const he_leader *l);

/*
 * The Redis fence holds `fence` (a standby reads it): the next lease asked
 * for is above it, so no epoch already written with is handed out again,
 * even by a lease row that PostgreSQL lost or rolled back. Any thread.
 */
void he_leader_saw_fence(he_leader *l, unsigned long long fence);

/*
 * The consumer consumes (on) or no longer does: health_events_leader is
 * 1 only in between. Consumer thread.
 */
void he_leader_consuming(he_leader *l, bool on);

/*
 * What this instance is, for readiness: "leader", "standby, lease held by
 * X", "standby, standing aside: redis_silent" and so on. false (and
 * "starting: ...") until the lease thread first decided whether to ask
 * for the lease. Any thread.
 */
bool he_leader_aside(he_leader *l, char *buf, size_t cap);

/* Wake every he_leader_wait (the consumer is stopping). */
void he_leader_kick(he_leader *l);

/*
 * A write with `epoch` was refused as stale (fence: the higher epoch seen
 * in Redis, 0 if unknown). If that is still our epoch, we step down: the
 * lease is let go in the database and this instance polls as a standby.
 * Any thread.
 */
void he_leader_fenced(he_leader *l, uint64_t epoch, unsigned long long fence);

/*
 * Stop the lease thread, releasing the lease if held (so a standby takes
 * over at its next poll), and free l. Call only once the consumer writes
 * no more. Started or not; NULL is a no-op. Main thread.
 */
void he_leader_free(he_leader *l);

#endif
