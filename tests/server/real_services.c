/*
 * real_services.c -- see real_services.h. The services table is the mock
 * host's (include/apphost/mock.h) with leases from the environment's
 * servers: one test double for every suite.
 */
#include "real_services.h"

#include <apphost/mock.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

struct real_services {
	apphost_mock *m;
};

redisContext *rs_redis(void)
{
	redisContext *c;

	return apphost_mock_connect_redis(NULL, &c, NULL, 0) == 0 ? c : NULL;
}

PGconn *rs_pg(void)
{
	PGconn *c;

	return apphost_mock_connect_pg(NULL, &c, NULL, 0) == 0 ? c : NULL;
}

void rs_require_servers(void)
{
	if (getenv("APPHOST_REDIS_URL") && getenv("APPHOST_POSTGRES_DSN"))
		return;
	if (getenv("CI"))
		cr_assert_fail("APPHOST_REDIS_URL/APPHOST_POSTGRES_DSN unset "
			       "under CI");
	cr_skip_test("servers not configured: run via scripts/test");
}

void rs_connect(redisContext **redis, PGconn **pg)
{
	rs_require_servers();
	*redis = rs_redis();
	*pg = rs_pg();
	cr_assert(*redis && *pg, "servers configured but unreachable");
}

void rs_disconnect(redisContext **redis, PGconn **pg)
{
	if (*redis)
		redisFree(*redis);
	if (*pg)
		PQfinish(*pg);
	*redis = NULL;
	*pg = NULL;
}

real_services *rs_new(void)
{
	real_services *rs = calloc(1, sizeof(*rs));

	if (rs == NULL || (rs->m = apphost_mock_new()) == NULL ||
	    apphost_mock_use_env_servers(rs->m) < 0) {
		rs_free(rs);
		return NULL;
	}
	if (getenv("TEST_VERBOSE"))
		apphost_mock_log_echo(rs->m, stderr);
	return rs;
}

void rs_free(real_services *rs)
{
	if (!rs)
		return;
	apphost_mock_free(rs->m);
	free(rs);
}

const apphost_services *rs_services(real_services *rs)
{
	return apphost_mock_services(rs->m);
}

void rs_config_set(real_services *rs, const char *key, const char *value)
{
	cr_assert_eq(apphost_mock_config_set(rs->m, key, value), 0);
}

size_t rs_log_count(real_services *rs, int level, const char *needle)
{
	return apphost_mock_log_count(rs->m, level, needle);
}

int rs_leases_out(real_services *rs)
{
	return apphost_mock_leases_out(rs->m);
}

int rs_broken_releases(real_services *rs)
{
	return apphost_mock_broken_releases(rs->m);
}
