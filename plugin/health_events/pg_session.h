/*
 * pg_session.h -- one leased PostgreSQL connection as health_events uses
 * it: leased lazily from the host's pool, every wait bounded (a client
 * deadline, an abort flag, a server-side statement_timeout), every answer
 * noted for the lease (he_heard), and failures sorted by SQLSTATE class
 * into the project's codes. The record store (record_store_pg.h), the
 * lease thread (leader.c) and the permission check (preflight.c) each
 * hold a session of their own; nothing above them sees the connection.
 *
 * A session is used by one thread at a time.
 */
#ifndef HE_PG_SESSION_H
#define HE_PG_SESSION_H

#include "he_lease.h"
#include "ports.h"

#include <apphost/component.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct pg_conn;
struct pg_result;

typedef struct he_pg_session he_pg_session;

struct he_pg_session {
	const apphost_services *svc; /* private, like every field */
	struct pg_conn *conn;	     /* leased lazily, NULL when not held */
	const atomic_bool *abort_flag;
	char err[256];	     /* the last error, one line */
	uint64_t timeout_ns; /* 0: wait as long as the server takes */
	unsigned stmt_ms;    /* statement_timeout, 0: none */
	bool async_commit;   /* synchronous_commit = off */
	he_heard *heard;     /* answers and waits noted, or NULL */
	bool had_conn, reconnected;
	/* run on each new connection (he_pg_set_on_connect) */
	int (*on_connect)(he_pg_session *s, void *arg);
	void *on_connect_arg;
};

/* Set up (no I/O). */
void he_pg_init(he_pg_session *s, const apphost_services *svc);
/*
 * Give up on a server that does not answer once *flag is set (after a
 * short grace), so a hung PostgreSQL cannot hold a stop past the host's
 * deadline. NULL: wait for ever.
 */
void he_pg_set_abort(he_pg_session *s, const atomic_bool *flag);
/* Give up on an answer after `ms` (the connection goes back as broken);
 * a lease of a connection is bounded by it too. 0: no limit. */
void he_pg_set_timeout(he_pg_session *s, unsigned ms);
/* SET statement_timeout = ms on each connection leased (0: none). */
void he_pg_set_statement_timeout(he_pg_session *s, unsigned ms);
/* SET synchronous_commit = off on each connection leased (false: the
 * server's setting). */
void he_pg_set_async_commit(he_pg_session *s, bool on);
/* Note in *heard (he_lease.h; he_clock.h) each answer, an error
 * included, and each wait for one. NULL: nowhere. */
void he_pg_set_heard(he_pg_session *s, he_heard *heard);
/* fn(s, arg) runs on each new connection once it is bounded (to prepare
 * statements); its negative result fails the lease. */
void he_pg_set_on_connect(he_pg_session *s,
			  int (*fn)(he_pg_session *s, void *arg), void *arg);

/* Lease a connection unless one is held: 0 or a negative HE_E*. */
int he_pg_connect(he_pg_session *s);
/* Give the connection back (broken: the pool closes it). No-op without. */
void he_pg_drop(he_pg_session *s, bool broken);
/* Give the connection back: broken when set to commit without waiting. */
void he_pg_close(he_pg_session *s);

/*
 * Wait for the answer to a query sent with PQsend* (sent: its return
 * value) within the session's bounds; its first result (the caller
 * PQclear()s it), or NULL with the error set and the connection given
 * back as broken.
 */
struct pg_result *he_pg_await(he_pg_session *s, const char *what, int sent);
/*
 * A failed result (or NULL: the connection's error): the error set to
 * "what: message" and res cleared; returns by SQLSTATE class: ECONN for a
 * connection lost or unusable (given back as broken: 08, 57P, a read-only
 * server 25006, a transaction left open), EPERM for a missing GRANT
 * (42501), EAUTH for a refused role (28), else EIO.
 */
int he_pg_fail(he_pg_session *s, const char *what, struct pg_result *res);
/* The error text "what: message" of res (or of the connection), one line. */
void he_pg_set_error(he_pg_session *s, const char *what,
		     const struct pg_result *res);
/* he_pg_fail's classes for a SQLSTATE (NULL: none) of a result already
 * read; the error must be set. */
int he_pg_classify(he_pg_session *s, const char *sqlstate);

/*
 * One parameterised statement returning rows: 0 and *out (the caller
 * PQclear()s it), or a negative HE_E* with the error set.
 */
int he_pg_query(he_pg_session *s, const char *what, const char *sql,
		int nparams, const char *const *params, struct pg_result **out);
/* Lease and check the connection now (SELECT 1). 0 or negative HE_E*. */
int he_pg_ping(he_pg_session *s);
/* Whether a connection was made anew since the last call (clears it):
 * the server behind it may have failed over or been restored. */
bool he_pg_reconnected(he_pg_session *s);
/* The last error's text (owned by s, until its next call). */
const char *he_pg_error(const he_pg_session *s);
/* Set the error text, printf-style. */
void he_pg_errorf(he_pg_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
