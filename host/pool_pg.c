/* pool_pg.c -- see pool_pg.h. The libpq adapter: nothing above this file
 * sees a PGresult. */
#include "pool_pg.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "clock.h"
#include "dsn.h"
#include "pool.h"
#include "tcp_opts.h"

struct apphost_pg_pool {
	char *dsn;
	char *addr; /* redacted */
	struct apphost_pool *pool;
};

/*
 * Connect within timeout_ms by our own clock: libpq's connect_timeout
 * counts whole seconds, at least 2 per host, which is longer than a
 * lessee that must answer within a lease can wait. PQconnectPoll is
 * driven here instead, up to the deadline; then the attempt is abandoned.
 */
static int pg_connect(void *arg, uint32_t timeout_ms, void **conn, char *err,
		      size_t errlen)
{
	struct apphost_pg_pool *p = arg;
	/* Ours first, the DSN (expanded from dbname) overrides them; then
	 * the encoding, which overrides the DSN: every component sends and
	 * expects UTF-8, whatever the database's own encoding. */
	const char *keys[4], *vals[4];
	size_t k = 0;
	uint64_t deadline = apphost_now_ms() + timeout_ms;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	PGconn *c;

	keys[k] = "fallback_application_name";
	vals[k++] = "apphost";
	keys[k] = "dbname";
	vals[k++] = p->dsn;
	keys[k] = "client_encoding";
	vals[k++] = "UTF8";
	keys[k] = vals[k] = NULL;
	c = PQconnectStartParams(keys, vals, 1);
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return APPHOST_ENOMEM;
	}
	while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		uint64_t now = apphost_now_ms();
		struct pollfd pfd = {
		    .fd = PQsocket(c),
		    .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
		};

		if (now >= deadline) {
			snprintf(err, errlen,
				 "no connection within %u ms (server "
				 "unreachable or not answering)",
				 (unsigned)timeout_ms);
			PQfinish(c);
			return APPHOST_ECONN;
		}
		if (pfd.fd >= 0 && poll(&pfd, 1, (int)(deadline - now)) == 0)
			continue; /* the deadline check above ends it */
		st = PQconnectPoll(c);
	}
	if (PQstatus(c) != CONNECTION_OK) {
		int rc =
		    apphost_dsn_error_summary(PQerrorMessage(c), err, errlen);

		PQfinish(c);
		return rc;
	}
	/*
	 * Keepalives and TCP_USER_TIMEOUT, as on the Redis sockets, set here
	 * rather than as libpq's keepalives* and tcp_user_timeout keywords:
	 * with those, sustained throughput measured about 10% lower (bench,
	 * alternating runs), with the same socket options in the end. A peer
	 * gone without a FIN or RST then breaks an idle pooled connection
	 * within seconds, not after tcp_retries2. A Unix socket takes none.
	 */
	(void)apphost_tcp_opts_set(PQsocket(c));
	*conn = c;
	return 0;
}

/* Run a command that returns no rows, waiting at most timeout_ms (a
 * server that hangs must not hold up a lease). 0 or APPHOST_EIO. */
static int exec_within(PGconn *c, const char *sql, uint32_t timeout_ms)
{
	uint64_t deadline = apphost_now_ms() + timeout_ms;
	PGresult *r;
	int rc = 0;

	if (PQsendQuery(c, sql) != 1)
		return APPHOST_EIO;
	while (PQisBusy(c)) {
		uint64_t now = apphost_now_ms();
		struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};

		if (now >= deadline ||
		    poll(&pfd, 1, (int)(deadline - now)) < 0 ||
		    PQconsumeInput(c) != 1)
			return APPHOST_EIO; /* mid-query: the pool closes it */
	}
	while ((r = PQgetResult(c)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			rc = APPHOST_EIO;
		PQclear(r);
	}
	return rc;
}

/*
 * A connection goes to its next lessee as new: alive, idle (no transaction,
 * no pipeline), and when another component held it last, DISCARD ALL drops
 * the session state the last one left: temporary tables (which would be
 * searched before the real ones), prepared statements, settings, LISTENs,
 * advisory locks. A lessee that prepares statements must therefore
 * prepare them after each lease (or handle 42P05 when one survived).
 */
/*
 * An idle connection has nothing to read: if its socket is readable, the
 * server ended it (a restart, a failover, a reset link) or sent a notice.
 * Reading tells which, so an ended one is replaced here rather than
 * failing its lessee's first statement.
 */
static bool ended_while_idle(PGconn *c)
{
	struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};

	if (pfd.fd < 0)
		return true;
	/* A server that ends a session sends its FATAL first: read on while
	 * there is more, until the close itself is read (a bounded number of
	 * times: a chatty server is left to the lessee). */
	for (int i = 0; i < 4 && poll(&pfd, 1, 0) > 0; i++) {
		if (PQconsumeInput(c) != 1 || PQstatus(c) != CONNECTION_OK)
			return true;
		(void)PQisBusy(c); /* parses what came: notices, statuses */
	}
	return false;
}

static int pg_prepare(void *arg, void *conn, bool new_lessee,
		      uint32_t timeout_ms)
{
	PGconn *c = conn;

	(void)arg;
	if (PQstatus(c) != CONNECTION_OK || ended_while_idle(c) ||
	    PQtransactionStatus(c) != PQTRANS_IDLE ||
	    PQpipelineStatus(c) != PQ_PIPELINE_OFF)
		return APPHOST_EIO;
	if (new_lessee)
		return exec_within(c, "DISCARD ALL", timeout_ms);
	return 0;
}

static void pg_close(void *arg, void *conn)
{
	(void)arg;
	PQfinish(conn);
}

static const struct apphost_pool_ops pg_ops = {
    .kind = "postgres",
    .connect = pg_connect,
    .prepare = pg_prepare,
    .close = pg_close,
};

int apphost_pg_pool_new(const char *dsn, unsigned max,
			struct apphost_pg_pool **out, char *err, size_t errlen)
{
	struct apphost_pg_pool *p;
	int rc;

	if (dsn == NULL)
		dsn = "";
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return APPHOST_ENOMEM;
	if (dsn[0] == '\0')
		p->addr = strdup("(libpq defaults)");
	else if ((rc = apphost_dsn_redact(dsn, &p->addr, err, errlen)) ==
		 APPHOST_EINVAL) {
		free(p->addr);
		free(p);
		return rc;
	}
	p->dsn = strdup(dsn);
	if (p->dsn == NULL || p->addr == NULL) {
		rc = APPHOST_ENOMEM;
		goto fail;
	}
	rc = apphost_pool_new(&pg_ops, p, p->addr, max, &p->pool);
	if (rc < 0)
		goto fail;
	*out = p;
	return 0;
fail:
	snprintf(err, errlen, "%s", apphost_strerror(rc));
	free(p->dsn);
	free(p->addr);
	free(p);
	return rc;
}

const char *apphost_pg_pool_addr(const struct apphost_pg_pool *p)
{
	return p->addr;
}

int apphost_pg_pool_lease(struct apphost_pg_pool *p, uint32_t timeout_ms,
			  const char *who, struct pg_conn **out)
{
	void *c = NULL;
	int rc = apphost_pool_lease(p->pool, timeout_ms, who, &c);

	*out = c;
	return rc;
}

int apphost_pg_pool_release(struct apphost_pg_pool *p, struct pg_conn *c,
			    const char *who, bool broken)
{
	return apphost_pool_release(p->pool, c, who, broken);
}

unsigned apphost_pg_pool_leased(struct apphost_pg_pool *p)
{
	return apphost_pool_leased(p->pool);
}

void apphost_pg_pool_free(struct apphost_pg_pool *p)
{
	if (p == NULL)
		return;
	apphost_pool_free(p->pool);
	if (p->dsn != NULL) {
		explicit_bzero(p->dsn, strlen(p->dsn));
		free(p->dsn);
	}
	free(p->addr);
	free(p);
}
