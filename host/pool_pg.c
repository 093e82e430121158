/* pool_pg.c -- see pool_pg.h. The libpq adapter: nothing above this file
 * sees a PGresult. */
#include "pool_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dsn.h"
#include "pool.h"

struct apphost_pg_pool {
	char *dsn;
	char *addr; /* redacted */
	struct apphost_pool *pool;
};

static int pg_connect(void *arg, uint32_t timeout_ms, void **conn, char *err,
		      size_t errlen)
{
	struct apphost_pg_pool *p = arg;
	char cto[16];
	/* Ours first, the DSN (expanded from dbname) overrides them. */
	const char *keys[] = {"connect_timeout", "fallback_application_name",
			      "dbname", NULL};
	const char *vals[] = {cto, "apphost", p->dsn, NULL};
	PGconn *c;

	/* Whole seconds; libpq treats anything below 2 as 2. */
	snprintf(cto, sizeof(cto), "%u",
		 timeout_ms < 2000 ? 2u : (timeout_ms + 999) / 1000);
	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return APPHOST_ENOMEM;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		apphost_dsn_error_summary(PQerrorMessage(c), err, errlen);
		PQfinish(c);
		return APPHOST_ECONN;
	}
	*conn = c;
	return 0;
}

static int pg_prepare(void *arg, void *conn)
{
	PGconn *c = conn;

	(void)arg;
	if (PQstatus(c) != CONNECTION_OK ||
	    PQtransactionStatus(c) != PQTRANS_IDLE ||
	    PQpipelineStatus(c) != PQ_PIPELINE_OFF)
		return APPHOST_EIO;
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

void apphost_pg_pool_release(struct apphost_pg_pool *p, struct pg_conn *c,
			     bool broken)
{
	apphost_pool_release(p->pool, c, broken);
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
