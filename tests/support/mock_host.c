/*
 * mock_host.c -- the apphost_services test double.
 */
#include "mock_host.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct line {
	int level;
	char *text;
} line;

typedef struct kv {
	char *key, *value;
} kv;

struct mock_host {
	apphost_services svc;
	pthread_mutex_t mu;
	int log_level;
	line *lines;
	size_t nlines, lines_cap;
	kv *cfg;
	size_t ncfg, cfg_cap;
	int fail_redis, fail_pg;
	mock_redis_connect_fn redis_connect;
	mock_redis_close_fn redis_close;
	void *redis_ud;
	mock_pg_connect_fn pg_connect;
	mock_pg_close_fn pg_close;
	void *pg_ud;
	int leases_out, broken;
	uint64_t clock_offset;
};

/* ---- services ----------------------------------------------------------- */

static void svc_log(void *host, int level, const char *msg,
		    const char *fields_fmt, ...) APPHOST_PRINTF(4, 5);

static void svc_log(void *host, int level, const char *msg,
		    const char *fields_fmt, ...)
{
	mock_host *m = host;
	char *fields = NULL, *text = NULL;

	if (fields_fmt != NULL) {
		va_list ap;
		va_start(ap, fields_fmt);
		if (vasprintf(&fields, fields_fmt, ap) < 0)
			fields = NULL;
		va_end(ap);
	}
	if (asprintf(&text, "%s%s%s", msg, fields ? " " : "",
		     fields ? fields : "") < 0)
		text = NULL;
	free(fields);
	if (text == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	if (level < m->log_level) {
		pthread_mutex_unlock(&m->mu);
		free(text);
		return;
	}
	if (m->nlines == m->lines_cap) {
		size_t nc = m->lines_cap ? m->lines_cap * 2 : 32;
		line *nl = realloc(m->lines, nc * sizeof(*nl));
		if (nl == NULL) {
			pthread_mutex_unlock(&m->mu);
			free(text);
			return;
		}
		m->lines = nl;
		m->lines_cap = nc;
	}
	m->lines[m->nlines++] = (line){level, text};
	pthread_mutex_unlock(&m->mu);
}

static bool svc_log_enabled(void *host, int level)
{
	mock_host *m = host;
	pthread_mutex_lock(&m->mu);
	bool on = level >= m->log_level;
	pthread_mutex_unlock(&m->mu);
	return on;
}

static const char *svc_config_get(void *host, const char *key)
{
	mock_host *m = host;
	const char *v = NULL;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->ncfg; i++)
		if (strcmp(m->cfg[i].key, key) == 0)
			v = m->cfg[i].value;
	pthread_mutex_unlock(&m->mu);
	return v;
}

/* Count a lease that succeeded (rc == 0); returns rc. */
static int leased(mock_host *m, int rc)
{
	if (rc == 0) {
		pthread_mutex_lock(&m->mu);
		m->leases_out++;
		pthread_mutex_unlock(&m->mu);
	}
	return rc;
}

/* Count a release; the caller holds m->mu. */
static void released_locked(mock_host *m, bool broken)
{
	m->leases_out--;
	m->broken += broken;
}

static int svc_redis_lease(void *host, uint32_t timeout_ms,
			   struct redisContext **out)
{
	mock_host *m = host;

	pthread_mutex_lock(&m->mu);
	int rc = m->fail_redis;
	mock_redis_connect_fn fn = m->redis_connect;
	void *ud = m->redis_ud;
	pthread_mutex_unlock(&m->mu);
	if (rc == 0)
		rc = fn != NULL ? fn(ud, out) : APPHOST_ECONN;
	return leased(m, rc);
}

static void svc_redis_release(void *host, struct redisContext *c, bool broken)
{
	mock_host *m = host;

	if (c == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	released_locked(m, broken);
	mock_redis_close_fn fn = m->redis_close;
	void *ud = m->redis_ud;
	pthread_mutex_unlock(&m->mu);
	if (fn != NULL)
		fn(ud, c);
}

static int svc_pg_lease(void *host, uint32_t timeout_ms, struct pg_conn **out)
{
	mock_host *m = host;

	pthread_mutex_lock(&m->mu);
	int rc = m->fail_pg;
	mock_pg_connect_fn fn = m->pg_connect;
	void *ud = m->pg_ud;
	pthread_mutex_unlock(&m->mu);
	if (rc == 0)
		rc = fn != NULL ? fn(ud, out) : APPHOST_ECONN;
	return leased(m, rc);
}

static void svc_pg_release(void *host, struct pg_conn *c, bool broken)
{
	mock_host *m = host;

	if (c == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	released_locked(m, broken);
	mock_pg_close_fn fn = m->pg_close;
	void *ud = m->pg_ud;
	pthread_mutex_unlock(&m->mu);
	if (fn != NULL)
		fn(ud, c);
}

static uint64_t svc_now_ns(void *host)
{
	mock_host *m = host;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&m->mu);
	uint64_t off = m->clock_offset;
	pthread_mutex_unlock(&m->mu);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + off;
}

/* ---- control ------------------------------------------------------------ */

mock_host *mock_host_new(void)
{
	mock_host *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	m->log_level = APPHOST_LOG_DEBUG;
	m->svc = (apphost_services){
	    .size = sizeof(apphost_services),
	    .host = m,
	    .log = svc_log,
	    .log_enabled = svc_log_enabled,
	    .config_get = svc_config_get,
	    .redis_lease = svc_redis_lease,
	    .redis_release = svc_redis_release,
	    .pg_lease = svc_pg_lease,
	    .pg_release = svc_pg_release,
	    .now_ns = svc_now_ns,
	};
	return m;
}

void mock_host_free(mock_host *m)
{
	if (m == NULL)
		return;
	mock_host_log_clear(m);
	free(m->lines);
	for (size_t i = 0; i < m->ncfg; i++) {
		free(m->cfg[i].key);
		free(m->cfg[i].value);
	}
	free(m->cfg);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

const apphost_services *mock_host_services(mock_host *m)
{
	return &m->svc;
}

void mock_host_set_log_level(mock_host *m, int level)
{
	pthread_mutex_lock(&m->mu);
	m->log_level = level;
	pthread_mutex_unlock(&m->mu);
}

size_t mock_host_log_lines(mock_host *m)
{
	pthread_mutex_lock(&m->mu);
	size_t n = m->nlines;
	pthread_mutex_unlock(&m->mu);
	return n;
}

int mock_host_log_line(mock_host *m, size_t i, char *out, size_t cap)
{
	int level = -1;

	pthread_mutex_lock(&m->mu);
	if (i < m->nlines) {
		level = m->lines[i].level;
		if (cap > 0)
			snprintf(out, cap, "%s", m->lines[i].text);
	}
	pthread_mutex_unlock(&m->mu);
	return level;
}

size_t mock_host_log_count(mock_host *m, int level, const char *needle)
{
	size_t n = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nlines; i++)
		if (m->lines[i].level >= level &&
		    (needle == NULL || strstr(m->lines[i].text, needle)))
			n++;
	pthread_mutex_unlock(&m->mu);
	return n;
}

int mock_host_log_max_level(mock_host *m, const char *needle)
{
	int max = -1;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nlines; i++)
		if ((needle == NULL || strstr(m->lines[i].text, needle)) &&
		    m->lines[i].level > max)
			max = m->lines[i].level;
	pthread_mutex_unlock(&m->mu);
	return max;
}

size_t mock_host_log_longest(mock_host *m)
{
	size_t max = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nlines; i++) {
		size_t l = strlen(m->lines[i].text);
		if (l > max)
			max = l;
	}
	pthread_mutex_unlock(&m->mu);
	return max;
}

void mock_host_log_clear(mock_host *m)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nlines; i++)
		free(m->lines[i].text);
	m->nlines = 0;
	pthread_mutex_unlock(&m->mu);
}

int mock_host_config_set(mock_host *m, const char *key, const char *value)
{
	int rc = 0;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->ncfg; i++) {
		if (strcmp(m->cfg[i].key, key) != 0)
			continue;
		if (value == NULL) {
			free(m->cfg[i].key);
			free(m->cfg[i].value);
			m->cfg[i] = m->cfg[--m->ncfg];
		} else {
			char *v = strdup(value);
			if (v == NULL) {
				rc = APPHOST_ENOMEM;
			} else {
				free(m->cfg[i].value);
				m->cfg[i].value = v;
			}
		}
		pthread_mutex_unlock(&m->mu);
		return rc;
	}
	if (value == NULL) {
		pthread_mutex_unlock(&m->mu);
		return 0;
	}
	if (m->ncfg == m->cfg_cap) {
		size_t nc = m->cfg_cap ? m->cfg_cap * 2 : 8;
		kv *n = realloc(m->cfg, nc * sizeof(*n));
		if (n == NULL) {
			pthread_mutex_unlock(&m->mu);
			return APPHOST_ENOMEM;
		}
		m->cfg = n;
		m->cfg_cap = nc;
	}
	char *k = strdup(key), *v = strdup(value);
	if (k == NULL || v == NULL) {
		free(k);
		free(v);
		rc = APPHOST_ENOMEM;
	} else {
		m->cfg[m->ncfg++] = (kv){k, v};
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

void mock_host_fail_redis(mock_host *m, int code)
{
	pthread_mutex_lock(&m->mu);
	m->fail_redis = code;
	pthread_mutex_unlock(&m->mu);
}

void mock_host_fail_pg(mock_host *m, int code)
{
	pthread_mutex_lock(&m->mu);
	m->fail_pg = code;
	pthread_mutex_unlock(&m->mu);
}

void mock_host_set_redis_connector(mock_host *m, mock_redis_connect_fn fn,
				   mock_redis_close_fn close, void *ud)
{
	pthread_mutex_lock(&m->mu);
	m->redis_connect = fn;
	m->redis_close = close;
	m->redis_ud = ud;
	pthread_mutex_unlock(&m->mu);
}

void mock_host_set_pg_connector(mock_host *m, mock_pg_connect_fn fn,
				mock_pg_close_fn close, void *ud)
{
	pthread_mutex_lock(&m->mu);
	m->pg_connect = fn;
	m->pg_close = close;
	m->pg_ud = ud;
	pthread_mutex_unlock(&m->mu);
}

int mock_host_leases_out(mock_host *m)
{
	pthread_mutex_lock(&m->mu);
	int n = m->leases_out;
	pthread_mutex_unlock(&m->mu);
	return n;
}

int mock_host_broken_releases(mock_host *m)
{
	pthread_mutex_lock(&m->mu);
	int n = m->broken;
	pthread_mutex_unlock(&m->mu);
	return n;
}

void mock_host_advance(mock_host *m, uint64_t ns)
{
	pthread_mutex_lock(&m->mu);
	m->clock_offset += ns;
	pthread_mutex_unlock(&m->mu);
}
