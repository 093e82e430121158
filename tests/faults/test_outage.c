/*
 * Server outages under a running consumer: every Redis client connection
 * dropped mid-stream, PostgreSQL restarted mid-batch, and SIGTERM while
 * either server is down. The consumer must recover by itself within 5 s
 * of the server's return, skip nothing and apply nothing twice in a way
 * the model sees; stop must meet APPHOST_SHUTDOWN_TIMEOUT_MS.
 */
#include "faults.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(faults_outage, .init = fx_setup, .fini = fx_teardown, .timeout = 180);

#define GAMES	    100
#define RECOVERY_MS 5000 /* work resumes this soon after a server is back */

static mgame initial[GAMES];

/* n random entries over GAMES games (every game once first). */
static fx_entry *make_entries(size_t n)
{
	fx_entry *e = calloc(n, sizeof(*e));
	for (size_t i = 0; i < n; i++) {
		e[i].game = i < GAMES ? (int)i : rand() % GAMES;
		e[i].ev = rand() % TH_EVENT_COUNT;
	}
	return e;
}

/* Wait for the end, stop, and compare rows and lobby with the model. */
static void finish(pid_t pid, const fx_entry *e, size_t n)
{
	cr_assert(
	    th_wait_offset(F.redis, F.keys.offset_key, e[n - 1].id, 60000),
	    "the offset reached the last entry (log: %s)", F.log);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0, "SIGTERM exits 0");
	mgame model[GAMES];
	memcpy(model, initial, sizeof(model));
	for (size_t i = 0; i < n; i++)
		(void)model_apply(&model[e[i].game], e[i].ev);
	fx_expect_rows(model, GAMES);
	fx_expect_lobby_sequence(initial, GAMES, e, n);
}

Test(faults_outage, redis_clients_killed_mid_stream)
{
	enum { CHUNK = 2000, KILLS = 3, N = CHUNK * KILLS };
	srand((unsigned)getpid());
	fx_insert_games(GAMES, false, initial);
	fx_entry *e = make_entries(N);
	static const char *const env[] = {"HEALTH_EVENTS_BATCH=16", NULL};
	pid_t pid = fx_spawn(env);
	char at[64] = "";
	for (int k = 0; k < KILLS; k++) {
		/* A backlog for each kill to land in. */
		fx_entry *chunk = e + (size_t)k * CHUNK;
		fx_write_entries(chunk, CHUNK);
		cr_assert_geq(fx_wait_offset_past(at, 20000), 0,
			      "consumer running (log: %s)", F.log);
		redisReply *r =
		    th_cmd(F.redis, "CLIENT", "KILL", "TYPE", "normal", NULL);
		cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
		cr_assert_geq(r->integer, 1, "killed the consumer's clients");
		freeReplyObject(r);
		fx_offset(at, sizeof(at));
		cr_assert_lt(fx_id_cmp(at, chunk[CHUNK - 1].id), 0,
			     "kill %d landed before the end of its chunk", k);
		double ms = fx_wait_offset_past(at, RECOVERY_MS);
		cr_log_info("CLIENT KILL %d at %s: offset moved after %.0f ms",
			    k, at, ms);
		cr_assert(ms >= 0 && ms <= RECOVERY_MS,
			  "offset did not advance within %d ms of CLIENT KILL "
			  "(log: %s)",
			  RECOVERY_MS, F.log);
	}
	finish(pid, e, N);
	free(e);
}

Test(faults_outage, postgres_restarted_mid_batch)
{
	enum { N = 2000 };
	srand((unsigned)getpid());
	fx_insert_games(GAMES, false, initial);
	fx_entry *e = make_entries(N);
	static const char *const env[] = {"HEALTH_EVENTS_BATCH=16", NULL};
	pid_t pid = fx_spawn(env);
	fx_write_entries(e, 1);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, e[0].id, 20000),
		  "consumer running (log: %s)", F.log);

	/* Hold the row of the next batch's first game: apply blocks on it. */
	th_sql(F.pg, "BEGIN", NULL);
	th_sql(F.pg,
	       "SELECT 1 FROM runtime_records WHERE game_id = $1 FOR "
	       "UPDATE",
	       fx_game(e[1].game), NULL);
	fx_write_entries(e + 1, N - 1);
	cr_assert(th_wait_apply_blocked(F.pg, 10000), "the batch's apply is in flight");

	cr_assert_eq(fx_services("restart-postgres"), 0, "pg_ctl restart");
	double ms = fx_wait_offset_past(e[0].id, RECOVERY_MS);
	cr_log_info("PostgreSQL back: offset moved after %.0f ms", ms);
	cr_assert(ms >= 0 && ms <= RECOVERY_MS,
		  "offset did not advance within %d ms of PostgreSQL's return "
		  "(log: %s)",
		  RECOVERY_MS, F.log);
	fx_reconnect();
	finish(pid, e, N);
	cr_expect_geq(
	    ap_log_count(F.log, "dependency failing", "postgres", NULL), 1,
	    "the outage was logged");
	cr_expect_geq(
	    ap_log_count(F.log, "dependency recovered", "postgres", NULL), 1,
	    "the recovery was logged");
	free(e);
}

/*
 * Take a server down under a running consumer (entries pending), then
 * SIGTERM: exit 0 within APPHOST_SHUTDOWN_TIMEOUT_MS.
 */
static void stop_while_down(const char *down, const char *up)
{
	enum { TIMEOUT_MS = 3000 };
	srand((unsigned)getpid());
	fx_insert_games(GAMES, false, initial);
	fx_entry *e = make_entries(GAMES);
	static const char *const env[] = {"APPHOST_SHUTDOWN_TIMEOUT_MS=3000",
					  NULL};
	pid_t pid = fx_spawn(env);
	fx_write_entries(e, 1);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, e[0].id, 20000),
		  "consumer running (log: %s)", F.log);
	cr_assert_eq(fx_services(down), 0, "scripts/services %s", down);
	if (strstr(down, "postgres")) /* a batch to retry, or in flight */
		fx_write_entries(e + 1, GAMES - 1);
	usleep(1500000); /* into the retry loop */
	double ms;
	int rc = fx_terminate(pid, TIMEOUT_MS + 5000, &ms);
	cr_log_info("%s: SIGTERM -> exit %d after %.0f ms", down, rc, ms);
	cr_assert_eq(fx_services(up), 0, "scripts/services %s", up);
	cr_expect_eq(rc, 0, "exit code (log: %s)", F.log);
	cr_expect_leq(ms, TIMEOUT_MS, "stopped within the deadline");
	fx_reconnect();
	free(e);
}

Test(faults_outage, sigterm_while_redis_is_down)
{
	stop_while_down("stop-redis", "start-redis");
}

Test(faults_outage, sigterm_while_postgres_is_down)
{
	stop_while_down("stop-postgres", "start-postgres");
}

/* A server that hangs rather than goes down: the batch's apply never
 * answers, yet stop must not wait for it past the deadline. */
Test(faults_outage, sigterm_while_postgres_hangs)
{
	stop_while_down("freeze-postgres", "thaw-postgres");
}
