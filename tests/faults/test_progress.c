/*
 * The applied position lives with the rows (DESIGN §13): a replay never
 * applies an entry twice over a newer write of another flow, and either
 * store's loss converges -- the rows equal the model of the stream, each
 * game's last snapshot equals its row, writes another flow made before
 * the fault stand.
 */
#include "faults.h"

#include "real_services.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(faults_progress, .init = fx_setup, .fini = fx_teardown,
	  .timeout = 180);

#define EV_EXITED 2 /* th_events: container_exited, running -> unreachable */

/* The applied position PostgreSQL holds for this test's label. */
static char *applied(void)
{
	return th_sql_value(
	    F.pg,
	    "SELECT ms || '-' || seq FROM health_events_progress "
	    "WHERE name = $1",
	    F.keys.prefix);
}

/* Poll until the applied position is `want`. */
static bool wait_applied(const char *want, int timeout_ms)
{
	double t0 = th_now_ms();
	do {
		char *p = applied();
		bool ok = p && strcmp(p, want) == 0;
		free(p);
		if (ok)
			return true;
		usleep(20000);
	} while (th_now_ms() - t0 < timeout_ms);
	return false;
}

/* Another flow sets game i running again (a restart, a turn later). */
static void restart_game(mgame *model, int i)
{
	th_sql(F.pg,
	       "UPDATE runtime_records SET status = 'running', current_turn = "
	       "current_turn + 1 WHERE game_id = $1",
	       fx_game(i), NULL);
	snprintf(model[i].status, sizeof(model[i].status), "running");
	model[i].turn++;
}

/* Running games only: every container_exited transitions. */
static void insert_running(int n, mgame *model)
{
	fx_insert_games(n, false, model);
	th_sql(F.pg,
	       "UPDATE runtime_records SET status = 'running' WHERE game_id "
	       "LIKE $1 || ':g%'",
	       F.keys.prefix, NULL);
	for (int i = 0; i < n; i++)
		snprintf(model[i].status, sizeof(model[i].status), "running");
}

static void apply_model(mgame *model, const fx_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		(void)model_apply(&model[e[i].game], e[i].ev);
}

/*
 * An entry applied while its Redis commit fails, then another flow's
 * write, then the leader SIGKILLed: the successor publishes the current
 * row instead of applying the entry a second time.
 */
Test(faults_progress, a_replay_after_sigkill_keeps_a_newer_write)
{
	mgame model[2];
	insert_running(2, model);
	fx_entry e[2] = {{0, EV_EXITED, ""}, {1, EV_EXITED, ""}};
	pid_t pid = fx_spawn(NULL);
	freeReplyObject(th_cmd(F.redis, "SET", F.keys.lobby, "x", NULL));
	fx_write_entries(e, 2);
	cr_assert(wait_applied(e[1].id, 20000),
		  "applied while the commit fails (log: %s)", F.log);
	apply_model(model, e, 2);
	restart_game(model, 0);
	fx_kill9(pid);
	freeReplyObject(th_cmd(F.redis, "DEL", F.keys.lobby, NULL));

	pid = fx_spawn(NULL);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, e[1].id, 20000),
		  "the successor moved the offset up (log: %s)", F.log);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0);
	fx_expect_rows(model, 2);
	fx_expect_last_snapshots(model, 2);
	cr_expect_geq(ap_log_count(F.log,
				   "redis is behind the applied "
				   "position",
				   NULL),
		      1);
}

/*
 * The offset key deleted, idle and then under load, and once more before
 * a restart: the whole retained stream is re-published from the rows in
 * batches, nothing is applied again.
 */
Test(faults_progress, a_deleted_offset_key_applies_nothing_again)
{
	enum { GAMES = 30, FIRST = 90, MORE = 400 };
	static mgame model[GAMES];
	static fx_entry e[FIRST + MORE];
	insert_running(GAMES, model);
	for (int i = 0; i < FIRST + MORE; i++)
		e[i] = (fx_entry){.game = i % GAMES,
				  .ev = i < FIRST ? EV_EXITED
						  : rand() % TH_EVENT_COUNT};
	static const char *const env[] = {"HEALTH_EVENTS_BATCH=16", NULL};
	pid_t pid = fx_spawn(env);
	fx_write_entries(e, FIRST);
	cr_assert(
	    th_wait_offset(F.redis, F.keys.offset_key, e[FIRST - 1].id, 20000),
	    "log: %s", F.log);
	apply_model(model, e, FIRST);
	for (int i = 0; i < 15; i++)
		restart_game(model, i);

	/* idle */
	freeReplyObject(th_cmd(F.redis, "DEL", F.keys.offset_key, NULL));
	/* busy: deleted again while the load is consumed */
	fx_write_entries(e + FIRST, MORE / 2);
	freeReplyObject(th_cmd(F.redis, "DEL", F.keys.offset_key, NULL));
	fx_write_entries(e + FIRST + MORE / 2, MORE / 2);
	const char *last = e[FIRST + MORE - 1].id;
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, last, 30000),
		  "the offset reached the last entry (log: %s)", F.log);
	fx_kill9(pid);
	/* and before a restart */
	freeReplyObject(th_cmd(F.redis, "DEL", F.keys.offset_key, NULL));
	pid = fx_spawn(env);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, last, 30000),
		  "log: %s", F.log);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0);

	apply_model(model, e + FIRST, MORE);
	fx_expect_rows(model, GAMES);
	fx_expect_last_snapshots(model, GAMES);
}

/*
 * PostgreSQL loses its last transactions (a standby promoted behind, a
 * point-in-time restore), played by putting the rows and the applied
 * position back to a copy taken earlier, under load: the entries after
 * the restored position apply again, the offset never moves back.
 */
Test(faults_progress, postgres_losing_transactions_is_repaired)
{
	enum { GAMES = 30, FIRST = 60, MORE = 300 };
	static mgame model[GAMES];
	static fx_entry e[FIRST + MORE];
	insert_running(GAMES, model);
	for (int i = 0; i < FIRST + MORE; i++)
		e[i] = (fx_entry){.game = i % GAMES,
				  .ev = rand() % TH_EVENT_COUNT};
	static const char *const env[] = {"HEALTH_EVENTS_BATCH=8", NULL};
	char backup[80], sql[640];
	snprintf(backup, sizeof(backup), "bk_%d", (int)getpid());

	pid_t pid = fx_spawn(env);
	fx_write_entries(e, FIRST);
	cr_assert(wait_applied(e[FIRST - 1].id, 20000), "log: %s", F.log);
	/* the copy, taken after the first entries */
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE %s AS SELECT * FROM runtime_records WHERE "
		 "game_id LIKE $1 || ':g%%'",
		 backup);
	th_sql(F.pg, sql, F.keys.prefix, NULL);
	fx_write_entries(e + FIRST, MORE);
	usleep(200000);
	/* restored while the rest is consumed: rows and position together */
	snprintf(sql, sizeof(sql),
		 "WITH r AS (UPDATE runtime_records t SET status = b.status, "
		 "engine_health = b.engine_health, current_turn = "
		 "b.current_turn FROM %s b WHERE t.game_id = b.game_id "
		 "RETURNING 1) UPDATE health_events_progress SET ms = "
		 "split_part($2, '-', 1)::bigint, seq = split_part($2, '-', "
		 "2)::bigint WHERE name = $1 AND (SELECT count(*) FROM r) >= 0",
		 backup);
	th_sql(F.pg, sql, F.keys.prefix, e[FIRST - 1].id, NULL);
	/* as a failover or restore does, every session is cut */
	th_sql(F.pg,
	       "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
	       "WHERE pid <> pg_backend_pid() AND datname = current_database() "
	       "AND backend_type = 'client backend'",
	       NULL);
	const char *last = e[FIRST + MORE - 1].id;
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, last, 30000),
		  "log: %s", F.log);
	cr_assert(wait_applied(last, 30000), "log: %s", F.log);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0);
	snprintf(sql, sizeof(sql), "DROP TABLE %s", backup);
	th_sql(F.pg, sql, NULL);
	cr_log_info("applied again: %zu lines",
		    ap_log_count(F.log,
				 "redis is ahead of the applied "
				 "position",
				 NULL));

	apply_model(model, e, FIRST + MORE);
	fx_expect_rows(model, GAMES);
	fx_expect_last_snapshots(model, GAMES);
}

/* The applied position as (ms, seq) below `id`'s: PostgreSQL lost some. */
static bool applied_behind(const char *id)
{
	char sql[256];
	unsigned long long ms = 0, seq = 0;
	cr_assert_eq(sscanf(id, "%llu-%llu", &ms, &seq), 2, "id %s", id);
	snprintf(sql, sizeof(sql),
		 "SELECT coalesce((SELECT (ms, seq) < (%llu, %llu) FROM "
		 "health_events_progress WHERE name = $1), true)",
		 ms, seq);
	char *v = th_sql_value(F.pg, sql, F.keys.prefix);
	bool behind = v && strcmp(v, "t") == 0;
	free(v);
	return behind;
}

/* wal_writer_delay back to the server's after the test, however it ended:
 * ALTER SYSTEM keeps it for every later test on these servers. */
static void reset_wal_writer_delay(void)
{
	(void)fx_services("start-postgres"); /* a crash that failed midway */
	PGconn *c = rs_pg();
	if (!c)
		return;
	PQclear(PQexec(c, "ALTER SYSTEM RESET wal_writer_delay"));
	PQclear(PQexec(c, "SELECT pg_reload_conf()"));
	PQfinish(c);
}

/*
 * Applies committed without waiting for their WAL flush
 * (HEALTH_EVENTS_SYNCHRONOUS_COMMIT=off), then PostgreSQL crashes: the
 * last of them are lost with their applied position, Redis is ahead, and
 * they apply again from the stream (DESIGN §13).
 */
Test(faults_progress, a_crash_loses_async_applies_which_apply_again,
     .fini = reset_wal_writer_delay)
{
	enum { GAMES = 12, EACH = 40, TRIES = 3 };
	static mgame model[GAMES];
	static fx_entry e[EACH * TRIES];
	insert_running(GAMES, model);
	for (int i = 0; i < EACH * TRIES; i++)
		e[i] = (fx_entry){.game = i % GAMES,
				  .ev = rand() % TH_EVENT_COUNT};
	/* Nothing else flushes the WAL meanwhile: a renewal every 15 s, the
	 * WAL writer every 10 s. */
	static const char *const env[] = {
	    "HEALTH_EVENTS_SYNCHRONOUS_COMMIT=off",
	    "HEALTH_EVENTS_LEASE_MS=60000", "HEALTH_EVENTS_BATCH=8", NULL};
	th_sql(F.pg, "ALTER SYSTEM SET wal_writer_delay = '10s'", NULL);
	th_sql(F.pg, "SELECT pg_reload_conf()", NULL);
	pid_t pid = fx_spawn(env);
	int n = 0;
	bool lost = false;
	for (int t = 0; t < TRIES && !lost; t++) {
		fx_write_entries(e + n, EACH);
		n += EACH;
		const char *last = e[n - 1].id;
		cr_assert(
		    th_wait_offset(F.redis, F.keys.offset_key, last, 20000),
		    "log: %s", F.log);
		cr_assert_eq(fx_services("crash-postgres"), 0, "crash");
		fx_reconnect();
		/* a renewal in between flushes it all: try again */
		lost = applied_behind(last);
	}
	cr_assert(lost, "no apply was lost in %d crashes", TRIES);
	const char *last = e[n - 1].id;
	cr_assert(wait_applied(last, 30000), "applied again (log: %s)", F.log);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0);
	cr_expect_geq(ap_log_count(F.log,
				   "redis is ahead of the applied "
				   "position",
				   NULL),
		      1);
	apply_model(model, e, (size_t)n);
	fx_expect_rows(model, GAMES);
	fx_expect_last_snapshots(model, GAMES);
}

/*
 * A batch of undecodable entries moves the applied position too, so a
 * successor neither re-reads nor re-sends them.
 */
Test(faults_progress, only_undecodable_entries_before_a_failover)
{
	mgame model[1];
	insert_running(1, model);
	pid_t pid = fx_spawn(NULL);
	char *bad[3];
	for (int i = 0; i < 3; i++)
		bad[i] = th_xadd(F.redis, F.keys.stream, "event_type",
				 "container_oom", NULL);
	cr_assert(wait_applied(bad[2], 20000), "log: %s", F.log);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, bad[2], 20000));
	fx_kill9(pid);
	pid = fx_spawn(NULL);
	fx_entry e[1] = {{0, EV_EXITED, ""}};
	fx_write_entries(e, 1);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, e[0].id, 20000),
		  "log: %s", F.log);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0);
	cr_expect_eq(th_xlen(F.redis, F.keys.dead), 3, "each sent once");
	apply_model(model, e, 1);
	fx_expect_rows(model, 1);
	for (int i = 0; i < 3; i++)
		free(bad[i]);
}
