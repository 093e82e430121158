/*
 * test_mock.c -- suite 'mock': libapphost-mock (include/apphost/mock.h)
 * does what its header promises: configuration, log capture, lease
 * switches and real leases from the environment, metrics and readiness
 * read back, and the lifecycle of a dlopen()ed component with the host's
 * ABI checks. The test acts as the component where it calls the services
 * table itself.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <apphost/mock.h>

static apphost_mock *m;
static const apphost_services *svc;

static void setup(void)
{
	m = apphost_mock_new();
	cr_assert(m != NULL);
	svc = apphost_mock_services(m);
}

static void teardown(void)
{
	apphost_mock_free(m);
}

TestSuite(mock, .init = setup, .fini = teardown);

static const char *comp(const char *name)
{
	static char path[4096];
	const char *dir = getenv("TEST_COMPONENTS_DIR");

	cr_assert(dir != NULL, "TEST_COMPONENTS_DIR unset");
	snprintf(path, sizeof(path), "%s/%s.so", dir, name);
	return path;
}

Test(mock, config_set_replace_unset)
{
	const char *first;

	cr_assert_null(svc->config_get(svc->host, "K"));
	cr_assert_eq(apphost_mock_config_set(m, "K", "one"), 0);
	first = svc->config_get(svc->host, "K");
	cr_assert_str_eq(first, "one");
	cr_assert_eq(apphost_mock_config_set(m, "K", "two"), 0);
	cr_assert_str_eq(svc->config_get(svc->host, "K"), "two");
	/* a string config_get returned stays valid until the mock is freed */
	cr_assert_str_eq(first, "one");
	cr_assert_eq(apphost_mock_config_set(m, "K", NULL), 0);
	cr_assert_null(svc->config_get(svc->host, "K"));
}

Test(mock, log_capture_and_match)
{
	char msg[64], fields[64];

	apphost_mock_set_log_level(m, APPHOST_LOG_INFO);
	cr_assert(!svc->log_enabled(svc->host, APPHOST_LOG_DEBUG));
	svc->log(svc->host, APPHOST_LOG_DEBUG, "dropped", NULL);
	svc->log(svc->host, APPHOST_LOG_WARN, "dependency failing",
		 "dependency=%s err=\"%s\"", "redis", "connection refused");
	svc->log(svc->host, APPHOST_LOG_INFO, "started", NULL);
	cr_assert_eq(apphost_mock_log_lines(m), 2);
	cr_assert_eq(apphost_mock_log_get(m, 0, msg, sizeof(msg), fields,
					  sizeof(fields)),
		     APPHOST_LOG_WARN);
	cr_assert_str_eq(msg, "dependency failing");
	cr_assert_str_eq(fields, "dependency=redis err=\"connection refused\"");
	cr_assert_eq(apphost_mock_log_get(m, 1, msg, sizeof(msg), fields,
					  sizeof(fields)),
		     APPHOST_LOG_INFO);
	cr_assert_str_eq(fields, "");
	cr_assert_eq(apphost_mock_log_get(m, 2, NULL, 0, NULL, 0), -1);
	cr_assert_eq(apphost_mock_log_match(m, APPHOST_LOG_WARN,
					    "dependency failing",
					    "dependency=redis"),
		     1);
	cr_assert_eq(apphost_mock_log_match(m, APPHOST_LOG_ERROR,
					    "dependency failing", NULL),
		     0);
	cr_assert_eq(apphost_mock_log_count(m, APPHOST_LOG_DEBUG, "refused"),
		     1);
	cr_assert_eq(apphost_mock_log_max_level(m, NULL), APPHOST_LOG_WARN);
	apphost_mock_log_clear(m);
	cr_assert_eq(apphost_mock_log_lines(m), 0);
}

Test(mock, lease_fails_on_demand)
{
	struct redisContext *r = (void *)1;
	struct pg_conn *p = (void *)1;

	/* no connector: like a host whose servers are unreachable */
	cr_assert_eq(svc->redis_lease(svc->host, 100, &r), APPHOST_ECONN);
	cr_assert_null(r);
	apphost_mock_fail_pg(m, APPHOST_ETIMEDOUT);
	cr_assert_eq(svc->pg_lease(svc->host, 100, &p), APPHOST_ETIMEDOUT);
	cr_assert_null(p);
	cr_assert_eq(apphost_mock_leases_out(m), 0);
	cr_assert_eq(apphost_mock_leases_total(m), 0);
}

Test(mock, leases_from_env_servers)
{
	struct redisContext *r;
	struct pg_conn *p;
	redisReply *rep;

	if (getenv("APPHOST_REDIS_URL") == NULL) {
		cr_assert(getenv("CI") == NULL, "servers unset under CI");
		cr_skip_test("servers not configured: run via scripts/test");
	}
	cr_assert_eq(apphost_mock_use_env_servers(m), 0);
	cr_assert_eq(svc->redis_lease(svc->host, 1000, &r), 0);
	cr_assert_eq(svc->pg_lease(svc->host, 1000, &p), 0);
	cr_assert_eq(apphost_mock_leases_out(m), 2);
	rep = redisCommand(r, "PING");
	cr_assert(rep != NULL && rep->type == REDIS_REPLY_STATUS);
	freeReplyObject(rep);
	cr_assert_eq(PQstatus(p), CONNECTION_OK);
	svc->redis_release(svc->host, r, false);
	svc->pg_release(svc->host, p, true);
	cr_assert_eq(apphost_mock_leases_out(m), 0);
	cr_assert_eq(apphost_mock_leases_total(m), 2);
	cr_assert_eq(apphost_mock_broken_releases(m), 1);
	/* the switch wins over the connector */
	apphost_mock_fail_redis(m, APPHOST_ECONN);
	cr_assert_eq(svc->redis_lease(svc->host, 100, &r), APPHOST_ECONN);
	apphost_mock_fail_redis(m, 0);
	cr_assert_eq(svc->redis_lease(svc->host, 100, &r), 0);
	svc->redis_release(svc->host, r, false);
}

Test(mock, connect_error_has_no_password)
{
	struct redisContext *r;
	char err[256];

	cr_assert_eq(apphost_mock_connect_redis("redis://:s3cret@127.0.0.1:1/0",
						&r, err, sizeof(err)),
		     APPHOST_ECONN);
	cr_assert(strstr(err, "127.0.0.1:1") != NULL, "%s", err);
	cr_assert(strstr(err, "s3cret") == NULL, "%s", err);
	cr_assert_eq(
	    apphost_mock_connect_redis("http://x", &r, err, sizeof(err)),
	    APPHOST_EINVAL);
}

Test(mock, metrics_read_back)
{
	const char *labels[] = {"dependency", "redis", NULL};
	const double buckets[] = {0.1, 1};
	struct apphost_metric *c, *g, *h, *bad;
	double v;
	char *text;

	cr_assert_eq(svc->metric_get(svc->host, APPHOST_METRIC_COUNTER,
				     "x_errors_total", "Errors.", labels, NULL,
				     0, &c),
		     0);
	cr_assert_eq(svc->metric_get(svc->host, APPHOST_METRIC_GAUGE, "x_lag",
				     "Lag.", NULL, NULL, 0, &g),
		     0);
	cr_assert_eq(svc->metric_get(svc->host, APPHOST_METRIC_HISTOGRAM,
				     "x_seconds", "Time.", NULL, buckets, 2,
				     &h),
		     0);
	svc->metric_add(svc->host, c, 2);
	svc->metric_add(svc->host, c, 1);
	svc->metric_set(svc->host, g, 42);
	svc->metric_observe(svc->host, h, 0.5);
	cr_assert_eq(
	    apphost_mock_metric(m, "x_errors_total{dependency=\"redis\"}", &v),
	    0);
	cr_assert_float_eq(v, 3, 1e-9);
	cr_assert_eq(apphost_mock_metric(m, "x_lag", &v), 0);
	cr_assert_float_eq(v, 42, 1e-9);
	cr_assert_eq(apphost_mock_metric(m, "x_seconds_count", &v), 0);
	cr_assert_float_eq(v, 1, 1e-9);
	cr_assert_eq(apphost_mock_metric(m, "x_seconds_bucket{le=\"0.1\"}", &v),
		     0);
	cr_assert_float_eq(v, 0, 1e-9);
	cr_assert_eq(apphost_mock_metric(m, "x_missing", &v), APPHOST_EINVAL);
	/* the host's rules: another type for a known name is refused */
	cr_assert_eq(svc->metric_get(svc->host, APPHOST_METRIC_GAUGE,
				     "x_errors_total", "Errors.", labels, NULL,
				     0, &bad),
		     APPHOST_EINVAL);
	cr_assert_eq(svc->metric_get(svc->host, APPHOST_METRIC_GAUGE,
				     "0bad name", "x", NULL, NULL, 0, &bad),
		     APPHOST_EINVAL);
	text = apphost_mock_metrics_text(m);
	cr_assert(text != NULL && strstr(text, "# TYPE x_lag gauge") != NULL);
	free(text);
}

Test(mock, readiness)
{
	char reason[64];

	cr_assert(apphost_mock_ready(m, reason, sizeof(reason)));
	svc->set_ready(svc->host, false, "postgres unreachable");
	cr_assert(!apphost_mock_ready(m, reason, sizeof(reason)));
	cr_assert_str_eq(reason, "postgres unreachable");
	svc->set_ready(svc->host, true, NULL);
	cr_assert(apphost_mock_ready(m, reason, sizeof(reason)));
	cr_assert_str_eq(reason, "");
	/* ready with a note, as a standby reports itself */
	svc->set_ready(svc->host, true, "standby");
	cr_assert(apphost_mock_ready(m, reason, sizeof(reason)));
	cr_assert_str_eq(reason, "standby");
	cr_assert_eq(apphost_mock_ready_reports(m), 3);
}

Test(mock, lifecycle_of_loaded_component)
{
	apphost_mock_component *c, *c2;
	char err[256];
	void *buf;
	size_t len;

	cr_assert_eq(apphost_mock_config_set(m, "TEST_GOOD_GREETING", "hej"),
		     0);
	cr_assert_eq(apphost_mock_load(m, comp("good"), &c, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(apphost_mock_component_magic(c)->name, "good");
	cr_assert_eq(apphost_mock_start(c), APPHOST_ESTATE,
		     "start before init");
	cr_assert_eq(apphost_mock_init(c), 0);
	cr_assert_eq(apphost_mock_log_match(m, APPHOST_LOG_INFO, "good init",
					    "greeting=hej"),
		     1);
	cr_assert_eq(apphost_mock_init(c), APPHOST_ESTATE, "init twice");
	cr_assert_eq(apphost_mock_start(c), 0);
	cr_assert_eq(apphost_mock_export(c, &buf, &len), 0);
	cr_assert_str_eq(buf, "hej");
	cr_assert_eq(apphost_mock_stop(c), 0);
	cr_assert_eq(
	    apphost_mock_log_count(m, APPHOST_LOG_INFO, "good stopped"), 1);
	cr_assert_eq(apphost_mock_stop(c), APPHOST_ESTATE, "stop twice");

	/* a second instance gets the state (hot swap's order) */
	cr_assert_eq(apphost_mock_load(m, comp("good"), &c2, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_mock_init(c2), 0);
	cr_assert_neq(apphost_mock_import(c2, buf, len), APPHOST_ESTATE);
	free(buf);
	apphost_mock_component_free(c2); /* stops it */
	cr_assert_eq(
	    apphost_mock_log_count(m, APPHOST_LOG_INFO, "good stopped"), 2);
	apphost_mock_component_free(c);
}

Test(mock, refuses_like_the_host)
{
	apphost_mock_component *c;
	char err[256];

	cr_assert_eq(
	    apphost_mock_load(m, comp("badmajor"), &c, err, sizeof(err)),
	    APPHOST_EINVAL);
	cr_assert(strstr(err, "ABI major 2, host supports 1") != NULL, "%s",
		  err);
	cr_assert_eq(
	    apphost_mock_load(m, comp("nostart"), &c, err, sizeof(err)),
	    APPHOST_EINVAL);
	cr_assert(strstr(err, "apphost_component_start") != NULL, "%s", err);
	cr_assert_eq(
	    apphost_mock_load(m, "/nonexistent.so", &c, err, sizeof(err)),
	    APPHOST_EINVAL);
}

/* ---- check (ABI 1.3): a component linked into this test ---- */

static const apphost_magic *check_magic(void)
{
	static const apphost_magic mg = {APPHOST_MAGIC,
					 APPHOST_ABI_MAJOR,
					 APPHOST_ABI_MINOR,
					 (uint32_t)sizeof(apphost_services),
					 "checked",
					 "1.0",
					 0,
					 0};
	return &mg;
}
static int check_init(const apphost_services *s, void **state)
{
	*state = (void *)s;
	return 0;
}
static int check_nop(void *state)
{
	(void)state;
	return 0;
}
static int check_check(void *state, char *report, size_t cap)
{
	(void)state;
	snprintf(report, cap, "redis: user may not run xadd");
	return APPHOST_EPERM;
}

Test(mock, check_of_a_component)
{
	apphost_mock_entry e = {check_magic, check_init, check_nop,  check_nop,
				NULL,	     NULL,	 check_check};
	apphost_mock_component *c, *g;
	char err[256], report[64] = "x";

	cr_assert_eq(apphost_mock_attach(m, &e, &c, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(apphost_mock_check(c, report, sizeof(report)),
		     APPHOST_ESTATE, "check before init");
	cr_assert_eq(apphost_mock_init(c), 0);
	cr_assert_eq(apphost_mock_check(c, report, sizeof(report)),
		     APPHOST_EPERM);
	cr_assert_str_eq(report, "redis: user may not run xadd");
	cr_assert_eq(apphost_mock_start(c), 0);
	cr_assert_eq(apphost_mock_check(c, report, sizeof(report)),
		     APPHOST_ESTATE, "check after start");
	apphost_mock_component_free(c);

	/* one without the export */
	cr_assert_eq(apphost_mock_load(m, comp("good"), &g, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_mock_init(g), 0);
	cr_assert_eq(apphost_mock_check(g, report, sizeof(report)),
		     APPHOST_ENOTSUP);
	apphost_mock_component_free(g);
}
