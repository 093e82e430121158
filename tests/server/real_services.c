/* real_services.c -- see real_services.h. */
#include "real_services.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONFIG 32
#define MAX_LINES  4096

struct real_services {
	apphost_services svc;
	pthread_mutex_t mu;
	char *keys[MAX_CONFIG], *values[MAX_CONFIG];
	int nconfig;
	char *lines[MAX_LINES];
	int levels[MAX_LINES];
	int nlines;
	int leases;
};

/* redis://[:password@]host:port/db -- enough for scripts/services URLs */
static redisContext *redis_from_url(const char *url)
{
	char host[256] = "127.0.0.1";
	int port = 6379, db = 0;
	if (strncmp(url, "redis://", 8) == 0)
		url += 8;
	const char *at = strchr(url, '@');
	if (at)
		url = at + 1;
	sscanf(url, "%255[^:/]:%d/%d", host, &port, &db);
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	if (!c || c->err) {
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, (struct timeval){10, 0});
	if (db) {
		redisReply *r = redisCommand(c, "SELECT %d", db);
		freeReplyObject(r);
	}
	return c;
}

redisContext *rs_redis(void)
{
	const char *url = getenv("APPHOST_REDIS_URL");
	return url ? redis_from_url(url) : NULL;
}

PGconn *rs_pg(void)
{
	const char *dsn = getenv("APPHOST_POSTGRES_DSN");
	if (!dsn)
		return NULL;
	PGconn *c = PQconnectdb(dsn);
	if (PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return NULL;
	}
	return c;
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

static void slog(void *host, int level, const char *msg, const char *fmt, ...)
{
	real_services *rs = host;
	char fields[1024] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(fields, sizeof(fields), fmt, ap);
		va_end(ap);
	}
	char *line;
	if (asprintf(&line, "%s %s", msg, fields) < 0)
		return;
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "[%d] %s\n", level, line);
	pthread_mutex_lock(&rs->mu);
	if (rs->nlines < MAX_LINES) {
		rs->levels[rs->nlines] = level;
		rs->lines[rs->nlines++] = line;
		line = NULL;
	}
	pthread_mutex_unlock(&rs->mu);
	free(line);
}

static bool slog_enabled(void *host, int level)
{
	return true;
}

static const char *sconfig(void *host, const char *key)
{
	real_services *rs = host;
	for (int i = 0; i < rs->nconfig; i++)
		if (strcmp(rs->keys[i], key) == 0)
			return rs->values[i];
	return NULL;
}

static void count(real_services *rs, int d)
{
	pthread_mutex_lock(&rs->mu);
	rs->leases += d;
	pthread_mutex_unlock(&rs->mu);
}

static int sredis_lease(void *host, uint32_t timeout_ms, redisContext **out)
{
	*out = rs_redis();
	if (!*out)
		return APPHOST_ECONN;
	count(host, 1);
	return APPHOST_OK;
}

static void sredis_release(void *host, redisContext *c, bool broken)
{
	if (!c)
		return;
	redisFree(c);
	count(host, -1);
}

static int spg_lease(void *host, uint32_t timeout_ms, PGconn **out)
{
	*out = rs_pg();
	if (!*out)
		return APPHOST_ECONN;
	count(host, 1);
	return APPHOST_OK;
}

static void spg_release(void *host, PGconn *c, bool broken)
{
	if (!c)
		return;
	PQfinish(c);
	count(host, -1);
}

static uint64_t snow(void *host)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

real_services *rs_new(void)
{
	if (!getenv("APPHOST_REDIS_URL") || !getenv("APPHOST_POSTGRES_DSN"))
		return NULL;
	real_services *rs = calloc(1, sizeof(*rs));
	pthread_mutex_init(&rs->mu, NULL);
	rs->svc = (apphost_services){
	    .size = sizeof(apphost_services),
	    .host = rs,
	    .log = slog,
	    .log_enabled = slog_enabled,
	    .config_get = sconfig,
	    .redis_lease = sredis_lease,
	    .redis_release = sredis_release,
	    .pg_lease = spg_lease,
	    .pg_release = spg_release,
	    .now_ns = snow,
	};
	return rs;
}

void rs_free(real_services *rs)
{
	if (!rs)
		return;
	for (int i = 0; i < rs->nconfig; i++) {
		free(rs->keys[i]);
		free(rs->values[i]);
	}
	for (int i = 0; i < rs->nlines; i++)
		free(rs->lines[i]);
	pthread_mutex_destroy(&rs->mu);
	free(rs);
}

const apphost_services *rs_services(real_services *rs)
{
	return &rs->svc;
}

void rs_config_set(real_services *rs, const char *key, const char *value)
{
	for (int i = 0; i < rs->nconfig; i++)
		if (strcmp(rs->keys[i], key) == 0) {
			free(rs->values[i]);
			rs->values[i] = strdup(value);
			return;
		}
	if (rs->nconfig < MAX_CONFIG) {
		rs->keys[rs->nconfig] = strdup(key);
		rs->values[rs->nconfig++] = strdup(value);
	}
}

size_t rs_log_count(real_services *rs, int level, const char *needle)
{
	size_t n = 0;
	pthread_mutex_lock(&rs->mu);
	for (int i = 0; i < rs->nlines; i++)
		if (rs->levels[i] >= level && strstr(rs->lines[i], needle))
			n++;
	pthread_mutex_unlock(&rs->mu);
	return n;
}

int rs_leases_out(real_services *rs)
{
	pthread_mutex_lock(&rs->mu);
	int n = rs->leases;
	pthread_mutex_unlock(&rs->mu);
	return n;
}
