/* pg_session.c -- see pg_session.h. */
#include "pg_session.h"

#include "he_clock.h"
#include "he_text.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LEASE_TIMEOUT_MS 1000
#define POLL_MS		 100 /* how often a wait looks at the abort flag */
#define STOP_GRACE_NS	 1000000000u /* an answer may still come after stop */

void he_pg_init(he_pg_session *s, const apphost_services *svc)
{
	memset(s, 0, sizeof(*s));
	s->svc = svc;
}

void he_pg_set_abort(he_pg_session *s, const atomic_bool *flag)
{
	s->abort_flag = flag;
}

void he_pg_set_timeout(he_pg_session *s, unsigned ms)
{
	s->timeout_ns = (uint64_t)ms * HE_NS_PER_MS;
}

void he_pg_set_statement_timeout(he_pg_session *s, unsigned ms)
{
	s->stmt_ms = ms;
}

void he_pg_set_async_commit(he_pg_session *s, bool on)
{
	s->async_commit = on;
}

void he_pg_set_heard(he_pg_session *s, he_heard *heard)
{
	s->heard = heard;
}

void he_pg_set_on_connect(he_pg_session *s,
			  int (*fn)(he_pg_session *s, void *arg), void *arg)
{
	s->on_connect = fn;
	s->on_connect_arg = arg;
}

const char *he_pg_error(const he_pg_session *s)
{
	return s->err;
}

void he_pg_errorf(he_pg_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
}

void he_pg_drop(he_pg_session *s, bool broken)
{
	if (s->conn)
		s->svc->pg_release(s->svc->host, s->conn, broken);
	s->conn = NULL;
}

void he_pg_close(he_pg_session *s)
{
	/* The pool resets a connection only between components: one left
	 * committing without waiting would give that mode to the next
	 * session of ours that leases it, the lease thread's included. */
	he_pg_drop(s, s->async_commit);
}

void he_pg_set_error(he_pg_session *s, const char *what, const PGresult *res)
{
	const char *msg = res ? PQresultErrorMessage(res) : "";
	if (!msg || !*msg)
		msg = PQerrorMessage(s->conn);
	snprintf(s->err, sizeof(s->err), "%s: %s", what, msg);
	he_text_one_line(s->err);
}

int he_pg_classify(he_pg_session *s, const char *state)
{
	/* 25006: a read-only server (a standby, a demoted primary). */
	bool lost = PQstatus(s->conn) != CONNECTION_OK ||
		    (state && strncmp(state, "08", 2) == 0) ||
		    (state && strncmp(state, "57P", 3) == 0) ||
		    (state && strcmp(state, "25006") == 0);
	if (lost || PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		he_pg_drop(s, true);
		return HE_ECONN;
	}
	/* 42501: a missing GRANT; class 28: the role itself refused. Both
	 * are retried like I/O (never dead-lettered), but named. */
	if (state && strcmp(state, "42501") == 0)
		return HE_EPERM;
	if (state && strncmp(state, "28", 2) == 0)
		return HE_EAUTH;
	return HE_EIO;
}

/*
 * Anything but a lost connection is EIO: retried by the caller with the
 * connection kept, after a rollback that a single statement does
 * implicitly.
 */
int he_pg_fail(he_pg_session *s, const char *what, PGresult *res)
{
	he_pg_set_error(s, what, res);
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char code[6];
	snprintf(code, sizeof(code), "%s", st ? st : "");
	PQclear(res);
	return he_pg_classify(s, st ? code : NULL);
}

/*
 * A server that stops answering must not hold a stopping consumer past
 * its deadline: once *abort_flag is set, the wait gives the answer
 * STOP_GRACE_NS more, then gives the connection back as broken (the
 * statement's transaction is then rolled back by the server or, if it
 * had committed, replayed harmlessly).
 */
static PGresult *wait_answer(he_pg_session *s, const char *what, int sent,
			     uint64_t t0)
{
	uint64_t stop_seen = 0;
	bool ok = sent == 1;
	while (ok && PQisBusy(s->conn)) {
		if (s->timeout_ns && he_now_ns(s->svc) - t0 > s->timeout_ns) {
			he_pg_errorf(
			    s, "%s: no answer within %llu ms", what,
			    (unsigned long long)(s->timeout_ns / HE_NS_PER_MS));
			he_pg_drop(s, true);
			return NULL;
		}
		if (s->abort_flag && atomic_load(s->abort_flag)) {
			uint64_t now = he_now_ns(s->svc);
			if (!stop_seen)
				stop_seen = now;
			else if (now - stop_seen > STOP_GRACE_NS) {
				he_pg_errorf(s,
					     "%s: no answer, abandoned on stop",
					     what);
				he_pg_drop(s, true);
				return NULL;
			}
		}
		struct pollfd p = {.fd = PQsocket(s->conn), .events = POLLIN};
		ok = poll(&p, 1, POLL_MS) >= 0 && PQconsumeInput(s->conn) == 1;
	}
	if (!ok) {
		(void)he_pg_fail(s, what, NULL);
		if (s->conn) /* not a lost connection, but unusable mid-query */
			he_pg_drop(s, true);
		return NULL;
	}
	PGresult *first = PQgetResult(s->conn), *more;
	while ((more = PQgetResult(s->conn)))
		PQclear(more);
	/* The server's own answer (an error carries its SQLSTATE), not one
	 * libpq made up for a lost connection. */
	if (s->heard && first && PQstatus(s->conn) == CONNECTION_OK &&
	    (PQresultStatus(first) != PGRES_FATAL_ERROR ||
	     PQresultErrorField(first, PG_DIAG_SQLSTATE))) {
		atomic_store(&s->heard->at, he_now_ns(s->svc));
		atomic_store(&s->heard->waiting, 0);
	}
	return first;
}

/* The wait is noted in s->heard from its start (or an earlier one that
 * got no answer: reconnects included) until PostgreSQL answers. */
PGresult *he_pg_await(he_pg_session *s, const char *what, int sent)
{
	uint64_t t0 = he_now_ns(s->svc);
	unsigned long long none = 0;
	if (s->heard)
		(void)atomic_compare_exchange_strong(&s->heard->waiting, &none,
						     t0);
	return wait_answer(s, what, sent, t0);
}

/* One SET on a connection just leased; a failure gives it back. */
static int set_on_connect(he_pg_session *s, const char *what, const char *sql)
{
	PGresult *res = he_pg_await(s, what, PQsendQuery(s->conn, sql));
	if (!res)
		return HE_ECONN;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		(void)he_pg_fail(s, what, res);
		he_pg_drop(s, true);
		return HE_ECONN;
	}
	PQclear(res);
	return HE_OK;
}

int he_pg_connect(he_pg_session *s)
{
	if (s->conn)
		return HE_OK;
	/* A connect is bounded like any call of this session. */
	unsigned ms = LEASE_TIMEOUT_MS;
	if (s->timeout_ns && s->timeout_ns / HE_NS_PER_MS < ms)
		ms = (unsigned)(s->timeout_ns / HE_NS_PER_MS);
	int r = s->svc->pg_lease(s->svc->host, ms, &s->conn);
	if (r < 0) {
		s->conn = NULL;
		he_pg_errorf(s, "postgres lease: %s", apphost_strerror(r));
		return he_from_lease(r);
	}
	/* A new connection may reach another server (a failover, a restore):
	 * the consumer compares the applied position again. */
	s->reconnected = s->had_conn;
	s->had_conn = true;
	char set[64];
	snprintf(set, sizeof(set), "SET statement_timeout = %u", s->stmt_ms);
	/* Never a connection without its bound, nor with another commit
	 * mode than the one configured. */
	if ((s->stmt_ms &&
	     set_on_connect(s, "set statement_timeout", set) < 0) ||
	    (s->async_commit &&
	     set_on_connect(s, "set synchronous_commit",
			    "SET synchronous_commit = off") < 0))
		return HE_ECONN;
	return s->on_connect ? s->on_connect(s, s->on_connect_arg) : HE_OK;
}

bool he_pg_reconnected(he_pg_session *s)
{
	bool r = s->reconnected;
	s->reconnected = false;
	return r;
}

int he_pg_ping(he_pg_session *s)
{
	int r = he_pg_connect(s);
	if (r < 0)
		return r;
	PGresult *res =
	    he_pg_await(s, "ping", PQsendQuery(s->conn, "SELECT 1"));
	if (!res)
		return HE_ECONN;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return he_pg_fail(s, "ping", res);
	PQclear(res);
	return HE_OK;
}

int he_pg_query(he_pg_session *s, const char *what, const char *sql,
		int nparams, const char *const *params, PGresult **out)
{
	*out = NULL;
	int r = he_pg_connect(s);
	if (r < 0)
		return r;
	PGresult *res =
	    he_pg_await(s, what,
			PQsendQueryParams(s->conn, sql, nparams, NULL, params,
					  NULL, NULL, 0));
	if (!res)
		return HE_ECONN;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return he_pg_fail(s, what, res);
	*out = res;
	return HE_OK;
}
