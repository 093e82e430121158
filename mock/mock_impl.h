/*
 * mock_impl.h -- what mock.c and mock_servers.c share: the mock's state.
 * Private to libapphost-mock.
 */
#ifndef APPHOST_MOCK_IMPL_H
#define APPHOST_MOCK_IMPL_H

#include <apphost/mock.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

struct line {
	int level;
	char *msg, *fields, *text; /* text: "msg" or "msg fields" */
};

struct kv {
	char *key, *value;
};

struct apphost_mock {
	apphost_services svc;
	pthread_mutex_t mu;
	int log_level;
	FILE *echo;
	struct line *lines;
	size_t nlines, lines_cap;
	struct kv *cfg;
	size_t ncfg, cfg_cap;
	char **old_values; /* replaced values: config_get results stay valid */
	size_t nold;
	/* one per pool: the switch and the connector, copied out under mu */
	struct redis_side {
		int fail;
		apphost_mock_redis_connect_fn connect;
		apphost_mock_redis_close_fn close;
		void *ud;
	} redis;
	struct pg_side {
		int fail;
		apphost_mock_pg_connect_fn connect;
		apphost_mock_pg_close_fn close;
		void *ud;
	} pg;
	char *env_redis_url, *env_pg_dsn; /* apphost_mock_use_env_servers */
	int leases_out, leases_total, broken;
	uint64_t clock_offset;
	struct apphost_metrics *metrics;
	bool reported, ready;
	char reason[256];
	int ready_reports;
};

/* Format into err (NULL or errlen 0: nothing). */
static inline void set_err(char *err, size_t errlen, const char *fmt, ...)
    APPHOST_PRINTF(3, 4);

static inline void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#endif
