/*
 * record_store_pg.h -- the runtime record store (ports.h) on a leased
 * PostgreSQL connection: one call of health_events_apply() per batch
 * (schema/002, fenced by 003, a compare-and-set on the applied position
 * by 004), i.e. one statement, one round trip, one transaction; and the
 * reads a resync needs (the applied position, current rows, refusals).
 * The connection itself, its bounds and its error classes are
 * pg_session.h's.
 */
#ifndef HE_RECORD_STORE_PG_H
#define HE_RECORD_STORE_PG_H

#include "he_lease.h"
#include "pg_session.h"
#include "ports.h"

#include <apphost/component.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct he_record_store_pg {
	/* private, like every field: read them through the functions below */
	he_pg_session pg;  /* the connection: lease, waits, SQLSTATE classes */
	const char *lease; /* fence of every apply: lease name and */
	char epoch[24];	   /* epoch, decimal (he_record_store_pg_set_fence) */
	const char *token; /* ... and the holder's token (set_token) */
	char refusal[160]; /* after HE_EDATA: SQLSTATE and primary message */
	char stmt[32];	   /* the apply's statement name: a hash of its SQL */
	int sent;	   /* an apply in flight: PQsend*'s result, 0: none */
	size_t sent_n;	   /* its number of ops */
	/* with async commit: the next apply commits synchronously (the first
	 * after each read of the applied position) */
	bool sync_next;
	/* array-literal scratch buffers, reused across batches */
	char *buf[4];
	size_t cap[4];
} he_record_store_pg;

/* Set up (no I/O). Any thread; the store is then used by one thread. */
void he_record_store_pg_init(he_record_store_pg *s,
			     const apphost_services *svc);
/*
 * Give up on a server that does not answer once *flag is set (after a
 * short grace): the consumer passes its stop flag so a hung PostgreSQL
 * cannot hold stop past the host's deadline. NULL: wait for ever.
 */
void he_record_store_pg_set_abort(he_record_store_pg *s,
				  const atomic_bool *flag);
/*
 * Give up on an answer after `ms` (the connection goes back as broken).
 * 0: no limit. For the lease thread, whose calls must not outlast a lease.
 */
void he_record_store_pg_set_timeout(he_record_store_pg *s, unsigned ms);
/*
 * A server-side bound on every statement: SET statement_timeout = ms on
 * each connection leased. Unlike a client-side deadline it also ends the
 * statement (and frees its locks) when this process is gone, so an apply
 * orphaned by a killed leader cannot hold a takeover for longer than ms;
 * and a statement that waits on another flow's row lock longer fails with
 * an answer (57014), retried like any infrastructure error. 0: none.
 */
void he_record_store_pg_set_statement_timeout(he_record_store_pg *s,
					      unsigned ms);
/*
 * Commit each apply without waiting for its WAL flush (SET
 * synchronous_commit = off on each connection leased). A PostgreSQL crash
 * then loses the last applies with their applied position, a suffix of
 * the WAL, and the consumer applies them again from the stream (DESIGN
 * §13, Redis ahead). The first apply after each read of the applied
 * position still commits synchronously: its flush makes the position row
 * durable (whoever created it), since a crash that lost the row itself
 * would read as "no position yet" and resume from Redis's offset instead.
 * false (the default): the server's setting.
 */
void he_record_store_pg_set_async_commit(he_record_store_pg *s, bool on);
/*
 * Note in *heard (he_lease.h; he_clock.h) each time PostgreSQL
 * answers, an error included, and while a call waits for its answer
 * (DESIGN §10). NULL: nowhere.
 */
void he_record_store_pg_set_heard(he_record_store_pg *s, he_heard *heard);
/*
 * The holder's token (borrowed; outlives the store): every apply names it
 * with the epoch, and is refused unless the lease row holds both
 * (schema/005). Until set, the empty token is named. Its lock_timeout is
 * the statement timeout (set_statement_timeout), else 600 s.
 */
void he_record_store_pg_set_token(he_record_store_pg *s, const char *token);
/*
 * Fence every following apply: it runs for the holder of `epoch` of lease
 * `lease` (borrowed; outlives the store) and fails with HE_EFENCED, writing
 * nothing, once that epoch is not the lease's current one. Until this is
 * called every apply fails with HE_EFENCED.
 */
void he_record_store_pg_set_fence(he_record_store_pg *s, const char *lease,
				  uint64_t epoch);
/* The last error's text, for the caller's log (owned by s, valid until
 * its next call). Its thread. */
const char *he_record_store_pg_err(const he_record_store_pg *s);
/* Return the lease (if held) and free the buffers. */
void he_record_store_pg_close(he_record_store_pg *s);
/* The port for he_core_process; ctx is s. */
he_record_store he_record_store_pg_port(he_record_store_pg *s);
/*
 * The port's apply in two halves, so the caller can do other work while
 * PostgreSQL runs it: send puts the statement on the wire (0, or a
 * negative HE_E* with nothing in flight); receive waits for its answer
 * (with the store's timeout and abort flag) and returns what apply would.
 * ops and their strings must stay valid until receive. One in flight.
 */
int he_record_store_pg_send(he_record_store_pg *s, const he_apply_span *span,
			    const he_mutation *ops, size_t n);
int he_record_store_pg_receive(he_record_store_pg *s,
			       he_mutation_result *results);
/*
 * Whether a connection was made anew since the last call (clears the
 * flag): the server behind it may have failed over or been restored.
 */
bool he_record_store_pg_reconnected(he_record_store_pg *s);
/* Lease and check the connection now (readiness). 0 or negative HE_E*. */
int he_record_store_pg_ping(he_record_store_pg *s);

#endif
