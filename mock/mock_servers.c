/*
 * mock_servers.c -- the mock's real connections: apphost_mock_connect_redis
 * and _pg, and leases from the environment's servers. A file of its own so
 * a test that never asks for a server links neither hiredis nor libpq
 * (the unit suite runs under valgrind, where every library loaded costs).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "dsn.h"
#include "mock_impl.h"
#include "url.h"

/* Send one command; true when the reply is not an error. */
static bool redis_ok(redisContext *c, int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;

	if (r != NULL)
		freeReplyObject(r);
	return ok;
}

int apphost_mock_connect_redis(const char *url, struct redisContext **out,
			       char *err, size_t errlen)
{
	struct apphost_redis_url u;
	struct timeval connect_tv = {2, 0}, cmd_tv = {5, 0};
	char why[256], db[16];
	redisContext *c;
	int rc;

	*out = NULL;
	if (url == NULL)
		url = getenv("APPHOST_REDIS_URL");
	if (url == NULL || url[0] == '\0') {
		set_err(err, errlen, "APPHOST_REDIS_URL is not set");
		return APPHOST_EINVAL;
	}
	rc = apphost_redis_url_parse(url, &u, why, sizeof(why));
	if (rc < 0) {
		set_err(err, errlen, "redis URL: %s", why);
		return rc;
	}
	c = redisConnectWithTimeout(u.host, u.port, connect_tv);
	if (c == NULL || c->err) {
		set_err(err, errlen, "redis %s:%u: %s", u.host,
			(unsigned)u.port, c != NULL ? c->errstr : "no memory");
		goto fail;
	}
	redisSetTimeout(c, cmd_tv);
	if (u.password != NULL) {
		const char *auth[] = {"AUTH", u.user, u.password};
		bool ok = u.user != NULL
			      ? redis_ok(c, 3, auth)
			      : (auth[1] = u.password, redis_ok(c, 2, auth));

		if (!ok) {
			set_err(err, errlen, "redis %s:%u: AUTH refused",
				u.host, (unsigned)u.port);
			goto fail;
		}
	}
	snprintf(db, sizeof(db), "%u", (unsigned)u.db);
	if (u.db != 0 && !redis_ok(c, 2, (const char *[]){"SELECT", db})) {
		set_err(err, errlen, "redis %s:%u: SELECT %s refused", u.host,
			(unsigned)u.port, db);
		goto fail;
	}
	apphost_redis_url_clear(&u);
	*out = c;
	return 0;
fail:
	if (c != NULL)
		redisFree(c);
	apphost_redis_url_clear(&u);
	return APPHOST_ECONN;
}

int apphost_mock_connect_pg(const char *dsn, struct pg_conn **out, char *err,
			    size_t errlen)
{
	PGconn *c;

	*out = NULL;
	if (dsn == NULL)
		dsn = getenv("APPHOST_POSTGRES_DSN");
	if (dsn == NULL) {
		set_err(err, errlen, "APPHOST_POSTGRES_DSN is not set");
		return APPHOST_EINVAL;
	}
	c = PQconnectdb(dsn);
	if (c == NULL)
		return APPHOST_ENOMEM;
	if (PQstatus(c) != CONNECTION_OK) {
		/* libpq's text quotes pieces of the DSN: a summary only */
		char why[128];

		apphost_dsn_error_summary(PQerrorMessage(c), why, sizeof(why));
		set_err(err, errlen, "postgres: %s", why);
		PQfinish(c);
		return APPHOST_ECONN;
	}
	*out = c;
	return 0;
}

static int env_redis_connect(void *ud, struct redisContext **out)
{
	return apphost_mock_connect_redis(((apphost_mock *)ud)->env_redis_url,
					  out, NULL, 0);
}

static void env_redis_close(void *ud, struct redisContext *c)
{
	redisFree(c);
}

static int env_pg_connect(void *ud, struct pg_conn **out)
{
	return apphost_mock_connect_pg(((apphost_mock *)ud)->env_pg_dsn, out,
				       NULL, 0);
}

static void env_pg_close(void *ud, struct pg_conn *c)
{
	PQfinish(c);
}

int apphost_mock_use_env_servers(apphost_mock *m)
{
	const char *url = getenv("APPHOST_REDIS_URL");
	const char *dsn = getenv("APPHOST_POSTGRES_DSN");
	struct apphost_redis_url u;
	char why[256];

	if (url == NULL || url[0] == '\0' || dsn == NULL)
		return APPHOST_EINVAL;
	if (apphost_redis_url_parse(url, &u, why, sizeof(why)) < 0)
		return APPHOST_EINVAL;
	apphost_redis_url_clear(&u);
	pthread_mutex_lock(&m->mu);
	free(m->env_redis_url);
	free(m->env_pg_dsn);
	m->env_redis_url = strdup(url);
	m->env_pg_dsn = strdup(dsn);
	pthread_mutex_unlock(&m->mu);
	if (m->env_redis_url == NULL || m->env_pg_dsn == NULL)
		return APPHOST_ENOMEM;
	apphost_mock_set_redis_connector(m, env_redis_connect, env_redis_close,
					 m);
	apphost_mock_set_pg_connector(m, env_pg_connect, env_pg_close, m);
	return 0;
}
