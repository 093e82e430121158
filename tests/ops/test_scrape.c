/*
 * Suite ops, with servers: apphost + health_events.so as a subprocess
 * with APPHOST_HTTP_ADDR on a free port. A scenario whose counters are
 * checked on /metrics; /readyz while a private PostgreSQL is stopped and
 * started again (scripts/services stop-postgres / start-postgres on an
 * instance of this test's own, never the shared one).
 */
#include "apphost_proc.h"
#include "ops.h"
#include "real_services.h"
#include "redis_pg.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static th_keys K;
static char logfile[256];
static char env_buf[5][600];
static const char *env[6];

/* The child's settings beyond K's streams: these servers, a free HTTP
 * port (returned), JSON log lines. */
/* block_ms: HEALTH_EVENTS_BLOCK_MS, or NULL for the suite's default. */
static int setup_env(const char *redis_url, const char *pg_dsn,
		     const char *block_ms)
{
	int port = ops_free_port(), n = 0;
	th_keys_init(&K, "ops");
	snprintf(logfile, sizeof(logfile), "/tmp/apphost-ops-%d.log",
		 (int)getpid());
#define ENV(...) snprintf(env_buf[n], sizeof(env_buf[n]), __VA_ARGS__), n++
	ENV("APPHOST_HTTP_ADDR=127.0.0.1:%d", port);
	ENV("APPHOST_LOG_FORMAT=json");
	ENV("APPHOST_REDIS_URL=%s", redis_url);
	ENV("APPHOST_POSTGRES_DSN=%s", pg_dsn);
	if (block_ms)
		ENV("HEALTH_EVENTS_BLOCK_MS=%s", block_ms);
#undef ENV
	for (int i = 0; i < n; i++)
		env[i] = env_buf[i];
	env[n] = NULL;
	return port;
}

TestSuite(scrape, .timeout = 240);

static double metric(int port, const char *series)
{
	ops_resp r = ops_http(port, "/metrics", NULL);
	cr_assert_eq(r.status, 200);
	double v = ops_sample(r.body, series);
	ops_resp_free(&r);
	return v;
}

/* Every line of the log is one JSON object with the five keys. */
static void expect_json_log(void)
{
	FILE *f = fopen(logfile, "r");
	char line[16384];
	int n = 0;
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		n++;
		cr_expect(strncmp(line, "{\"ts\":\"", 7) == 0 &&
			      strstr(line, "\",\"level\":\"") &&
			      strstr(line, "\",\"component\":\"") &&
			      strstr(line, "\",\"msg\":\"") &&
			      strstr(line, ",\"fields\":{") &&
			      strcmp(line + strlen(line) - 3, "}}\n") == 0,
			  "not a JSON log line: %s", line);
	}
	fclose(f);
	cr_expect_gt(n, 3);
}

Test(scrape, counters_match_the_scenario)
{
	redisContext *redis;
	PGconn *pg;
	rs_connect(&redis, &pg);
	int port = setup_env(getenv("APPHOST_REDIS_URL"),
			     getenv("APPHOST_POSTGRES_DSN"), NULL);
	char g1[160], g2[160], g3[160];
	snprintf(g1, sizeof(g1), "%s:g1", K.prefix);
	snprintf(g2, sizeof(g2), "%s:g2", K.prefix);
	snprintf(g3, sizeof(g3), "%s:missing", K.prefix);
	th_insert_game(pg, g1, "running", 1);
	th_insert_game(pg, g2, "running", 2);

	pid_t pid = ap_spawn_he(&K, logfile, env);
	cr_assert(ops_wait_status(port, "/readyz", 200, 20000),
		  "ready within 20 s (log: %s)", logfile);
	cr_expect_eq(metric(port, "apphost_component_up{component="
				  "\"health_events\"}"),
		     1);

	free(th_xadd(redis, K.stream, "game_id", g1, "event_type",
		     "container_oom", NULL)); /* transitioned, published */
	free(th_xadd(redis, K.stream, "game_id", g1, "event_type",
		     "container_oom", NULL)); /* conflict, suppressed */
	free(th_xadd(redis, K.stream, "game_id", g2, "event_type",
		     "probe_failed", NULL)); /* health only, published */
	free(th_xadd(redis, K.stream, "game_id", g3, "event_type",
		     "container_exited", NULL)); /* not found */
	free(th_xadd(redis, K.stream, "event_type", "container_oom", NULL));
	char *last = th_xadd(redis, K.stream, "game_id", g1, "event_type",
			     "container_melted", NULL); /* dead letters */
	cr_assert(th_wait_offset(redis, K.offset_key, last, 20000),
		  "offset reached the last entry (log: %s)", logfile);
	free(last);

	ops_resp r = ops_http(port, "/metrics", NULL);
	cr_assert_eq(r.status, 200);
	static const struct {
		const char *series;
		double want;
	} want[] = {
	    {"health_events_entries_total{event_type=\"container_oom\","
	     "outcome=\"transitioned\"}",
	     1},
	    {"health_events_entries_total{event_type=\"container_oom\","
	     "outcome=\"conflict\"}",
	     1},
	    {"health_events_entries_total{event_type=\"probe_failed\","
	     "outcome=\"health_only\"}",
	     1},
	    {"health_events_entries_total{event_type=\"container_exited\","
	     "outcome=\"not_found\"}",
	     1},
	    {"health_events_entries_total{event_type=\"none\","
	     "outcome=\"dead_lettered\"}",
	     2},
	    {"health_events_snapshots_published_total", 2},
	    {"health_events_snapshots_suppressed_total", 1},
	    {"health_events_dead_letters_total", 2},
	    {"health_events_reconnects_total", 0},
	    {"apphost_hot_swaps_total", 0},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect_eq(ops_sample(r.body, want[i].series), want[i].want,
			     "%s\n%s", want[i].series, r.body);
	double batches =
	    ops_sample(r.body, "health_events_batch_seconds_count");
	cr_expect(batches >= 1 && batches <= 6, "batches: %g", batches);
	cr_expect_eq(ops_sample(r.body, "health_events_batch_seconds_bucket"
					"{le=\"+Inf\"}"),
		     batches);
	cr_expect_geq(ops_sample(r.body, "apphost_pool_leases_total{pool="
					 "\"redis\"}"),
		      1);
	cr_expect_geq(ops_sample(r.body, "apphost_pool_connections{pool="
					 "\"postgres\"}"),
		      1);
	ops_resp_free(&r);
	/* the offset is at the end: the lag gauge says so (after a read) */
	for (int i = 0; i < 50 && metric(port, "health_events_lag_entries");
	     i++)
		usleep(100 * 1000);
	cr_expect_eq(metric(port, "health_events_lag_entries"), 0);

	/* malformed requests do not hurt the host */
	r = ops_http(port, "/nope", NULL);
	cr_expect_eq(r.status, 404);
	ops_resp_free(&r);
	r = ops_http(port, "/readyz", "-X POST -d x");
	cr_expect_eq(r.status, 405);
	ops_resp_free(&r);
	char big[20000];
	int k = snprintf(big, sizeof(big), "-H 'X-Big: ");
	memset(big + k, 'b', sizeof(big) - k - 2);
	big[sizeof(big) - 2] = '\'';
	big[sizeof(big) - 1] = '\0';
	r = ops_http(port, "/metrics", big);
	cr_expect_eq(r.status, 431);
	ops_resp_free(&r);
	r = ops_http(port, "/healthz", NULL);
	cr_expect_eq(r.status, 200, "still serving");
	ops_resp_free(&r);

	cr_expect_eq(ap_terminate(pid), 0, "SIGTERM exits 0 (log: %s)",
		     logfile);
	expect_json_log();
	rs_disconnect(&redis, &pg);
}

/* ---- readiness across a PostgreSQL outage -------------------------------- */

static ops_private priv;

static void stop_private(void)
{
	ops_private_stop(&priv);
}

Test(scrape, readyz_503_while_postgres_is_stopped, .fini = stop_private)
{
	rs_require_servers();
	ops_private_start(&priv, "readyz");
	/* a BLOCK far longer than 5 s: readiness must stay fresh anyway */
	int port = setup_env(priv.redis_url, priv.pg_dsn, "60000");
	pid_t pid = ap_spawn_he(&K, logfile, env);
	cr_assert(ops_wait_status(port, "/readyz", 200, 20000),
		  "ready within 20 s (log: %s)", logfile);
	free(ap_wait_log(logfile, "leadership acquired", 1, pid, 10000));

	ops_private_do(&priv, "stop-postgres");
	/* idle: no entries arrive, yet readiness notices within ~5 s */
	cr_expect(ops_wait_status(port, "/readyz", 503, 8000),
		  "503 while PostgreSQL is down (log: %s)", logfile);
	ops_resp r = ops_http(port, "/readyz", NULL);
	cr_expect(strstr(r.body, "health_events: postgres"), "%s", r.body);
	ops_resp_free(&r);
	cr_expect_eq(metric(port, "apphost_component_ready{component="
				  "\"health_events\"}"),
		     0, "the not-ready alert sees it");
	r = ops_http(port, "/healthz", NULL);
	cr_expect_eq(r.status, 200, "alive while not ready");
	ops_resp_free(&r);
	/* it cannot renew, nor reach PostgreSQL: it stops writing and steps
	 * down by itself (renew_failed or postgres_silent, whichever first) */
	free(ap_wait_log(logfile, "leadership lost", 1, pid, 8000));
	cr_expect_eq(metric(port, "health_events_leader"), 0);

	ops_private_do(&priv, "start-postgres");
	cr_expect(ops_wait_status(port, "/readyz", 200, 20000),
		  "200 again after PostgreSQL is back (log: %s)", logfile);
	cr_expect_geq(metric(port, "health_events_reconnects_total"), 1);
	cr_expect_eq(metric(port, "apphost_component_ready{component="
				  "\"health_events\"}"),
		     1);
	free(ap_wait_log(logfile, "leadership acquired", 2, pid, 10000));
	cr_expect_eq(metric(port, "health_events_leader"), 1);
	cr_expect_eq(ap_terminate(pid), 0, "SIGTERM exits 0 (log: %s)",
		     logfile);
}

/* Two instances on one stream: the leader and the standby both ready. */
Test(scrape, leader_and_standby_are_ready_and_say_which)
{
	redisContext *redis;
	PGconn *pg;
	rs_connect(&redis, &pg);
	int port[2];
	pid_t pid[2];
	char log2[300];
	port[0] = setup_env(getenv("APPHOST_REDIS_URL"),
			    getenv("APPHOST_POSTGRES_DSN"), NULL);
	pid[0] = ap_spawn_he(&K, logfile, env);
	cr_assert(ops_wait_status(port[0], "/readyz", 200, 20000),
		  "first instance ready (log: %s)", logfile);
	/* the second: same keys, its own port */
	port[1] = ops_free_port();
	snprintf(env_buf[0], sizeof(env_buf[0]),
		 "APPHOST_HTTP_ADDR=127.0.0.1:%d", port[1]);
	snprintf(log2, sizeof(log2), "%s.2", logfile);
	pid[1] = ap_spawn_he(&K, log2, env);
	cr_assert(ops_wait_status(port[1], "/readyz", 200, 20000),
		  "a standby is ready too (log: %s)", log2);

	ops_resp r = ops_http(port[1], "/readyz", NULL);
	cr_expect(strstr(r.body, "health_events: standby"), "standby: %s",
		  r.body);
	ops_resp_free(&r);
	r = ops_http(port[0], "/readyz", NULL);
	cr_expect(strstr(r.body, "health_events: leader"), "leader: %s",
		  r.body);
	ops_resp_free(&r);
	cr_expect_eq(metric(port[0], "health_events_leader"), 1);
	cr_expect_eq(metric(port[1], "health_events_leader"), 0);
	cr_expect_geq(metric(port[0], "health_events_leader_epoch"), 1);
	cr_expect_eq(metric(port[0], "health_events_leadership_changes_total"),
		     1);
	for (int i = 0; i < 2; i++)
		cr_expect_eq(ap_terminate(pid[i]), 0);
	rs_disconnect(&redis, &pg);
}

/* A database without the lease functions (migrations not applied): the
 * instance could never lead, so it must not say it is ready. */
Test(scrape, a_standby_that_cannot_ask_for_the_lease_is_not_ready)
{
	redisContext *redis;
	PGconn *pg;
	rs_connect(&redis, &pg);
	char db[64], dsn[512];
	snprintf(db, sizeof(db), "ops_nomig_%d", (int)getpid());
	char sql[128];
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	th_sql(pg, sql, NULL);
	const char *base = getenv("APPHOST_POSTGRES_DSN");
	const char *slash = strrchr(base, '/');
	cr_assert_not_null(slash);
	snprintf(dsn, sizeof(dsn), "%.*s/%s", (int)(slash - base), base, db);
	int port = setup_env(getenv("APPHOST_REDIS_URL"), dsn, NULL);
	pid_t pid = ap_spawn_he(&K, logfile, env);
	free(ap_wait_log(logfile, "lease calls failing", 1, pid, 20000));
	bool said = false;
	for (int i = 0; i < 80 && !said; i++, usleep(100000)) {
		ops_resp h = ops_http(port, "/readyz", NULL);
		said = h.status == 503 &&
		       strstr(h.body, "health_events: postgres failing");
		ops_resp_free(&h);
	}
	cr_expect(said, "not ready without the lease (log: %s)", logfile);
	/* the log says why (the apply's missing function may come first) */
	free(ap_wait_log(logfile, "postgres failing: lease calls failing", 1,
			 pid, 10000));
	cr_expect_eq(ap_terminate(pid), 0);
	snprintf(sql, sizeof(sql), "DROP DATABASE %s", db);
	th_sql(pg, sql, NULL);
	rs_disconnect(&redis, &pg);
}
