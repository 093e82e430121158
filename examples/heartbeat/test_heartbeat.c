/*
 * test_heartbeat.c -- the heartbeat component on apphost's mock host
 * (apphost/mock.h), linked into this test: configuration errors, the key
 * with its TTL against a real Redis (APPHOST_REDIS_URL), a Redis lease
 * failing and recovering, and the key removed on stop.
 *
 * Redis comes from APPHOST_REDIS_URL and APPHOST_POSTGRES_DSN (the mock
 * reads both); without them the server tests skip, or fail when CI is set.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <apphost/mock.h>

static apphost_mock *m;
static apphost_mock_component *hb;
static char key[128];

static void setup(void)
{
	m = apphost_mock_new();
	cr_assert(m != NULL);
	if (getenv("TEST_VERBOSE"))
		apphost_mock_log_echo(m, stderr);
	snprintf(key, sizeof(key), "heartbeat-test:%ld:%ld", (long)getpid(),
		 (long)time(NULL));
	cr_assert_eq(apphost_mock_config_set(m, "HEARTBEAT_KEY", key), 0);
	cr_assert_eq(apphost_mock_attach(m, &APPHOST_MOCK_LINKED, &hb, NULL, 0),
		     0);
}

static void teardown(void)
{
	apphost_mock_component_free(hb);
	apphost_mock_free(m);
}

TestSuite(heartbeat, .init = setup, .fini = teardown);

static void need_servers(void)
{
	if (apphost_mock_use_env_servers(m) == 0)
		return;
	cr_assert(getenv("CI") == NULL,
		  "APPHOST_REDIS_URL / APPHOST_POSTGRES_DSN unset under CI");
	cr_skip_test("no servers: set APPHOST_REDIS_URL, APPHOST_POSTGRES_DSN");
}

static double metric(const char *series)
{
	double v = -1;

	cr_assert_eq(apphost_mock_metric(m, series, &v), 0, "no series %s",
		     series);
	return v;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Poll up to 5 s for cond(); true once it holds. */
#define WAIT_UNTIL(cond)                                                       \
	({                                                                     \
		bool ok_ = false;                                              \
		for (int i_ = 0; i_ < 500 && !(ok_ = (cond)); i_++)            \
			sleep_ms(10);                                          \
		ok_;                                                           \
	})

Test(heartbeat, refuses_bad_configuration)
{
	apphost_mock_config_set(m, "HEARTBEAT_INTERVAL_MS", "soon");
	cr_assert_eq(apphost_mock_init(hb), APPHOST_EINVAL);
	cr_assert_eq(apphost_mock_log_match(m, APPHOST_LOG_ERROR,
					    "bad configuration",
					    "key=HEARTBEAT_INTERVAL_MS "
					    "value=\"soon\""),
		     1);
	/* a failed init is never stopped; a fresh instance tries again */
	apphost_mock_component_free(hb);
	cr_assert_eq(apphost_mock_attach(m, &APPHOST_MOCK_LINKED, &hb, NULL, 0),
		     0);
	apphost_mock_config_set(m, "HEARTBEAT_INTERVAL_MS", "1000");
	apphost_mock_config_set(m, "HEARTBEAT_TTL_MS", "1000");
	cr_assert_eq(apphost_mock_init(hb), APPHOST_EINVAL);
	cr_assert_eq(apphost_mock_log_match(m, APPHOST_LOG_ERROR,
					    "bad configuration",
					    "key=HEARTBEAT_TTL_MS"),
		     1);
}

Test(heartbeat, writes_key_with_ttl)
{
	redisContext *r;
	redisReply *rep;

	need_servers();
	cr_assert_eq(apphost_mock_connect_redis(NULL, &r, NULL, 0), 0);
	apphost_mock_config_set(m, "HEARTBEAT_INTERVAL_MS", "50");
	apphost_mock_config_set(m, "HEARTBEAT_TTL_MS", "60000");
	cr_assert_eq(apphost_mock_init(hb), 0);
	cr_assert_eq(apphost_mock_start(hb), 0);
	cr_assert(WAIT_UNTIL(metric("heartbeat_writes_total") >= 3),
		  "fewer than 3 beats in 5 s");
	rep = redisCommand(r, "PTTL %s", key);
	cr_assert(rep != NULL && rep->type == REDIS_REPLY_INTEGER);
	cr_assert(rep->integer > 0 && rep->integer <= 60000, "PTTL %lld",
		  rep->integer);
	freeReplyObject(rep);
	rep = redisCommand(r, "GET %s", key);
	cr_assert(rep != NULL && rep->type == REDIS_REPLY_STRING);
	cr_assert(strchr(rep->str, ' ') != NULL, "value \"%s\"", rep->str);
	freeReplyObject(rep);
	cr_assert_eq(metric("heartbeat_failures_total"), 0);
	cr_assert(metric("heartbeat_last_write_timestamp_seconds") >
		  (double)time(NULL) - 60);
	cr_assert(apphost_mock_ready(m, NULL, 0));

	cr_assert_eq(apphost_mock_stop(hb), 0);
	cr_assert_eq(apphost_mock_leases_out(m), 0, "a lease was not returned");
	rep = redisCommand(r, "EXISTS %s", key);
	cr_assert(rep != NULL && rep->integer == 0, "key left after stop");
	freeReplyObject(rep);
	redisFree(r);
}

Test(heartbeat, redis_failing_then_recovering)
{
	char reason[128];

	need_servers();
	apphost_mock_config_set(m, "HEARTBEAT_INTERVAL_MS", "20");
	apphost_mock_fail_redis(m, APPHOST_ECONN);
	cr_assert_eq(apphost_mock_init(hb), 0);
	cr_assert_eq(apphost_mock_start(hb), 0);
	cr_assert(WAIT_UNTIL(metric("heartbeat_failures_total") >= 3));
	cr_assert(!apphost_mock_ready(m, reason, sizeof(reason)));
	cr_assert(strstr(reason, "connection failed") != NULL, "reason: %s",
		  reason);
	/* once per outage, not once per beat */
	cr_assert_eq(apphost_mock_log_match(m, APPHOST_LOG_WARN,
					    "heartbeat failing", NULL),
		     1);
	cr_assert_eq(metric("heartbeat_writes_total"), 0);

	apphost_mock_fail_redis(m, 0);
	cr_assert(WAIT_UNTIL(apphost_mock_ready(m, NULL, 0)),
		  "not ready again within 5 s of Redis answering");
	cr_assert(metric("heartbeat_writes_total") >= 1);
	cr_assert_eq(apphost_mock_log_match(m, APPHOST_LOG_INFO,
					    "heartbeat recovered", NULL),
		     1);
	cr_assert_eq(apphost_mock_stop(hb), 0);
	cr_assert_eq(apphost_mock_leases_out(m), 0);
}

Test(heartbeat, stop_wakes_a_long_interval)
{
	need_servers();
	apphost_mock_config_set(m, "HEARTBEAT_INTERVAL_MS", "3600000");
	cr_assert_eq(apphost_mock_init(hb), 0);
	cr_assert_eq(apphost_mock_start(hb), 0);
	cr_assert(WAIT_UNTIL(metric("heartbeat_writes_total") >= 1));
	/* an hour until the next beat: stop must not wait for it (Criterion's
	 * --timeout in meson.build bounds the whole test) */
	cr_assert_eq(apphost_mock_stop(hb), 0);
	cr_assert_eq(apphost_mock_log_match(m, APPHOST_LOG_INFO,
					    "heartbeat stopped", NULL),
		     1);
}
