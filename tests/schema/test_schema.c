/*
 * tests/schema -- the migrated runtime_records schema (DESIGN.md §5).
 *
 * Needs PostgreSQL with the migrations applied: scripts/test starts one,
 * runs apphost-migrate and exports APPHOST_POSTGRES_DSN. Without it the
 * tests skip, unless CI is set, where they fail. meson passes the built
 * apphost-migrate in APPHOST_MIGRATE and the schema in APPHOST_SCHEMA_DIR
 * (SOURCE_ROOT at build time stands in for both when the binary runs by
 * hand) so the idempotence test can run it again.
 *
 * Criterion runs each test in its own process; rows are named
 * "schema-test-<pid>-..." so this suite can run beside others, and each test
 * deletes its rows when it ends.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static PGconn *conn;
static char prefix[64];

static void pg_setup(void)
{
	const char *dsn = getenv("APPHOST_POSTGRES_DSN");

	if (dsn == NULL || *dsn == '\0') {
		if (getenv("CI") != NULL)
			cr_assert_fail(
			    "APPHOST_POSTGRES_DSN is not set and CI is: "
			    "a missing server is a failure under CI");
		cr_skip_test(
		    "APPHOST_POSTGRES_DSN is not set: run scripts/test, "
		    "or eval \"$(scripts/services env)\" and "
		    "build/host/apphost-migrate first");
	}
	conn = PQconnectdb(dsn);
	cr_assert(PQstatus(conn) == CONNECTION_OK, "connect to %s: %s", dsn,
		  PQerrorMessage(conn));
	snprintf(prefix, sizeof(prefix), "schema-test-%ld-", (long)getpid());
}

static void pg_teardown(void)
{
	if (conn == NULL)
		return;
	if (PQstatus(conn) == CONNECTION_OK) {
		char pattern[80];
		const char *params[1] = {pattern};

		snprintf(pattern, sizeof(pattern), "%s%%", prefix);
		PQclear(PQexecParams(conn,
				     "DELETE FROM runtime_records "
				     "WHERE game_id LIKE $1",
				     1, NULL, params, NULL, NULL, 0));
	}
	PQfinish(conn);
	conn = NULL;
}

/* A game id unique to this test process. */
static const char *game_id(const char *name)
{
	static char buf[4][128];
	static int next;
	char *id = buf[next++ % 4];

	snprintf(id, sizeof(buf[0]), "%s%s", prefix, name);
	return id;
}

/* Run sql with text parameters; the caller PQclear()s the result. */
static PGresult *run(const char *sql, int n, const char *const *params)
{
	return PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
}

/* Run a one-value query that must succeed; returns a malloc'd string. */
static char *scalar(const char *sql)
{
	PGresult *res = run(sql, 0, NULL);
	char *value;

	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
		  PQresultErrorMessage(res));
	cr_assert(PQntuples(res) == 1 && PQnfields(res) == 1,
		  "%s: %d rows, %d columns", sql, PQntuples(res),
		  PQnfields(res));
	value = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return value;
}

/* A runtime_records row for game in status running. */
static void insert_running(const char *game)
{
	const char *ins[] = {game};
	PGresult *res = run("INSERT INTO runtime_records (game_id, status) "
			    "VALUES ($1, 'running')",
			    1, ins);

	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
		  PQresultErrorMessage(res));
	PQclear(res);
}

static void insert_fails_with(const char *sql, int n, const char *const *params,
			      const char *sqlstate)
{
	PGresult *res = run(sql, n, params);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	cr_assert(PQresultStatus(res) == PGRES_FATAL_ERROR,
		  "%s: expected SQLSTATE %s, got status %s", sql, sqlstate,
		  PQresStatus(PQresultStatus(res)));
	cr_assert(state != NULL && strcmp(state, sqlstate) == 0,
		  "%s: expected SQLSTATE %s, got %s (%s)", sql, sqlstate,
		  state ? state : "none", PQresultErrorMessage(res));
	PQclear(res);
}

TestSuite(schema, .init = pg_setup, .fini = pg_teardown, .timeout = 30);

/* ---- columns ------------------------------------------------------------ */

struct column_case {
	char name[32];
	char type[32];
	char default_[32]; /* "" when the column has no default */
};

ParameterizedTestParameters(schema, column)
{
	static struct column_case cases[] = {
	    {"game_id", "text", ""},
	    {"status", "text", ""},
	    {"engine_health", "text", "''::text"},
	    {"current_turn", "integer", "0"},
	    {"created_at", "timestamp with time zone", "now()"},
	    {"updated_at", "timestamp with time zone", "now()"},
	};

	return cr_make_param_array(struct column_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct column_case *c, schema, column)
{
	const char *params[1] = {c->name};
	PGresult *res = run("SELECT data_type, is_nullable, "
			    "coalesce(column_default, '') "
			    "FROM information_schema.columns "
			    "WHERE table_schema = current_schema() "
			    "AND table_name = 'runtime_records' "
			    "AND column_name = $1",
			    1, params);

	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
		  PQresultErrorMessage(res));
	cr_assert(PQntuples(res) == 1, "runtime_records.%s does not exist",
		  c->name);
	cr_expect_str_eq(PQgetvalue(res, 0, 0), c->type, "%s type: %s, want %s",
			 c->name, PQgetvalue(res, 0, 0), c->type);
	cr_expect_str_eq(PQgetvalue(res, 0, 1), "NO", "%s is nullable",
			 c->name);
	cr_expect_str_eq(PQgetvalue(res, 0, 2), c->default_,
			 "%s default: '%s', want '%s'", c->name,
			 PQgetvalue(res, 0, 2), c->default_);
	PQclear(res);
}

Test(schema, game_id_is_primary_key)
{
	char *cols =
	    scalar("SELECT string_agg(a.attname, ',') "
		   "FROM pg_index i JOIN pg_attribute a "
		   "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
		   "WHERE i.indrelid = 'runtime_records'::regclass "
		   "AND i.indisprimary");

	cr_expect_str_eq(cols, "game_id", "primary key: (%s)", cols);
	free(cols);
}

/* ---- status ------------------------------------------------------------- */

struct status_case {
	char status[32];
};

ParameterizedTestParameters(schema, status_accepted)
{
	static struct status_case cases[] = {
	    {"starting"},	    {"running"}, {"generation_in_progress"},
	    {"generation_failed"},  {"stopped"}, {"finished"},
	    {"engine_unreachable"},
	};

	return cr_make_param_array(struct status_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct status_case *c, schema, status_accepted)
{
	const char *params[2] = {game_id(c->status), c->status};
	PGresult *res = run("INSERT INTO runtime_records (game_id, status) "
			    "VALUES ($1, $2)",
			    2, params);

	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK,
		  "status %s refused: %s", c->status,
		  PQresultErrorMessage(res));
	PQclear(res);
}

Test(schema, unknown_status_rejected)
{
	const char *params[2] = {game_id("bogus"), "paused"};
	PGresult *res;
	const char *constraint;

	insert_fails_with("INSERT INTO runtime_records (game_id, status) "
			  "VALUES ($1, $2)",
			  2, params, "23514");

	/* and the constraint that refused it is the status check */
	res = run("INSERT INTO runtime_records (game_id, status) "
		  "VALUES ($1, $2)",
		  2, params);
	constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
	cr_expect(constraint != NULL &&
		      strcmp(constraint, "runtime_records_status_check") == 0,
		  "refused by %s", constraint ? constraint : "(no constraint)");
	PQclear(res);
}

Test(schema, status_change_to_unknown_rejected)
{
	const char *id = game_id("update");
	const char *params[1] = {id};

	insert_running(id);
	insert_fails_with("UPDATE runtime_records SET status = 'RUNNING' "
			  "WHERE game_id = $1",
			  1, params, "23514");
}

Test(schema, null_status_rejected)
{
	const char *params[1] = {game_id("null")};

	insert_fails_with("INSERT INTO runtime_records (game_id) VALUES ($1)",
			  1, params, "23502");
}

Test(schema, duplicate_game_id_rejected)
{
	const char *params[1] = {game_id("dup")};
	const char *sql = "INSERT INTO runtime_records (game_id, status) "
			  "VALUES ($1, 'starting')";
	PGresult *res = run(sql, 1, params);

	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
		  PQresultErrorMessage(res));
	PQclear(res);
	insert_fails_with(sql, 1, params, "23505");
}

/* ---- defaults ----------------------------------------------------------- */

Test(schema, insert_game_id_and_status_fills_defaults)
{
	const char *params[1] = {game_id("defaults")};
	PGresult *res = run("INSERT INTO runtime_records (game_id, status) "
			    "VALUES ($1, 'running') "
			    "RETURNING engine_health, current_turn, "
			    "created_at IS NOT NULL AND created_at <= now(), "
			    "updated_at IS NOT NULL AND updated_at <= now(), "
			    "created_at = updated_at",
			    1, params);

	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
		  PQresultErrorMessage(res));
	cr_assert_eq(PQntuples(res), 1);
	cr_expect_str_eq(PQgetvalue(res, 0, 0), "", "engine_health: '%s'",
			 PQgetvalue(res, 0, 0));
	cr_expect_str_eq(PQgetvalue(res, 0, 1), "0", "current_turn: %s",
			 PQgetvalue(res, 0, 1));
	cr_expect_str_eq(PQgetvalue(res, 0, 2), "t", "created_at set");
	cr_expect_str_eq(PQgetvalue(res, 0, 3), "t", "updated_at set");
	cr_expect_str_eq(PQgetvalue(res, 0, 4), "t",
			 "created_at = updated_at on insert");
	PQclear(res);
}

/* ---- migrate ------------------------------------------------------------ */

Test(schema, migrate_again_applies_nothing, .timeout = 60)
{
	const char *migrate = getenv("APPHOST_MIGRATE");
	const char *schema = getenv("APPHOST_SCHEMA_DIR");
	char cmd[4096], out[4096];
	size_t len = 0, got;
	char *before, *after;
	FILE *p;
	int status;

	/* run by hand, outside meson test */
	if (migrate == NULL || *migrate == '\0')
		migrate = SOURCE_ROOT "/build/host/apphost-migrate";
	if (schema == NULL || *schema == '\0')
		schema = SOURCE_ROOT "/schema";
	cr_assert(strchr(migrate, '\'') == NULL && strchr(schema, '\'') == NULL,
		  "odd paths: %s %s", migrate, schema);
	snprintf(cmd, sizeof(cmd), "APPHOST_SCHEMA_DIR='%s' '%s' 2>&1", schema,
		 migrate);

	before = scalar("SELECT count(*) FROM schema_migrations");
	cr_assert_str_neq(before, "0", "no migration recorded yet");

	p = popen(cmd, "r");
	cr_assert(p != NULL, "popen %s", cmd);
	while (len < sizeof(out) - 1 &&
	       (got = fread(out + len, 1, sizeof(out) - 1 - len, p)) > 0)
		len += got;
	out[len] = '\0';
	status = pclose(p);

	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "apphost-migrate failed (status %d):\n%s", status, out);
	cr_expect(strstr(out, "nothing to apply") != NULL,
		  "second run printed:\n%s", out);
	cr_expect(strstr(out, "applied") == NULL, "second run printed:\n%s",
		  out);

	after = scalar("SELECT count(*) FROM schema_migrations");
	cr_expect_str_eq(after, before,
			 "schema_migrations rows changed: %s -> %s", before,
			 after);
	free(before);
	free(after);
}

/* ---- health_events_apply ----------------------------------------------- */

/*
 * The reference: the batch applied one element at a time, read then write,
 * exactly as DESIGN §6 words it (CAS when the row is in p_expected[i],
 * else health-only; the row right after element i, or not_found). Plain
 * and slow on purpose: schema/002's function must give the same rows and
 * leave the same table, through its loop (< 16 elements) and its
 * set-based path (>= 16) alike.
 */
static const char reference_sql[] =
    "CREATE FUNCTION pg_temp.apply_reference(p_game_ids text[], "
    "    p_summaries text[], p_expected text[], p_to text[]) "
    "RETURNS TABLE (o_ord integer, o_outcome text, o_status text, "
    "    o_engine_health text, o_current_turn integer) "
    "LANGUAGE plpgsql AS $$ "
    "DECLARE r runtime_records; "
    "BEGIN "
    "  FOR i IN 1 .. coalesce(array_length(p_game_ids, 1), 0) LOOP "
    "    o_ord := i; "
    "    SELECT * INTO r FROM runtime_records t "
    "     WHERE t.game_id = p_game_ids[i]; "
    "    IF NOT FOUND THEN "
    "      o_outcome := 'not_found'; o_status := NULL; "
    "      o_engine_health := NULL; o_current_turn := NULL; "
    "    ELSE "
    "      o_outcome := CASE WHEN p_to[i] IS NULL THEN 'health' "
    "                        WHEN r.status = p_expected[i] "
    "                        THEN 'transitioned' ELSE 'conflict' END; "
    "      IF o_outcome = 'transitioned' THEN r.status := p_to[i]; END IF; "
    "      UPDATE runtime_records t SET status = r.status, "
    "             engine_health = p_summaries[i], updated_at = now() "
    "       WHERE t.game_id = p_game_ids[i]; "
    "      o_status := r.status; o_engine_health := p_summaries[i]; "
    "      o_current_turn := r.current_turn; "
    "    END IF; "
    "    RETURN NEXT; "
    "  END LOOP; "
    "END $$";

/* A candidate that must be caught: every CAS is treated as lost. */
static const char broken_sql[] =
    "CREATE FUNCTION pg_temp.apply_broken(a text[], b text[], c text[], "
    "    d text[]) "
    "RETURNS TABLE (o_ord integer, o_outcome text, o_status text, "
    "    o_engine_health text, o_current_turn integer) "
    "LANGUAGE sql AS $$ SELECT * FROM health_events_apply_batch(a, b, "
    "    array_fill(NULL::text, ARRAY[cardinality(c)]), d) $$";

/*
 * pg_temp.equivalence(candidate, batches, prefix): random batches
 * (0..59 elements over 8 games, 6 of them with rows in random statuses,
 * some NULL ids) through the reference, undone, then through the
 * candidate; the rows returned and the table afterwards must match.
 * Returns NULL when every batch agrees, else the first difference.
 */
static const char equivalence_sql[] =
    "CREATE FUNCTION pg_temp.equivalence(candidate text, batches integer, "
    "    pfx text) RETURNS text LANGUAGE plpgsql AS $$ "
    "DECLARE "
    "  n int; r int; ids text[]; sums text[]; ex text[]; tos text[]; "
    "  a text; b text; ta text; tb text; "
    "  types text[][] := ARRAY[ "
    "    ['healthy', NULL, NULL], "
    "    ['healthy', 'engine_unreachable', 'running'], "
    "    ['exited', 'running', 'engine_unreachable'], "
    "    ['oom', 'running', 'engine_unreachable'], "
    "    ['probe_failed', NULL, NULL], "
    "    ['disappeared', 'running', 'engine_unreachable']]; "
    "  sts text[] := ARRAY['running', 'engine_unreachable', 'finished', "
    "                      'stopped', 'starting']; "
    "  rows_sql text := 'SELECT string_agg(concat_ws('','', game_id, "
    "    status, engine_health, current_turn), '';'' ORDER BY game_id) "
    "    FROM runtime_records WHERE game_id LIKE $1'; "
    "BEGIN "
    "  FOR it IN 1 .. batches LOOP "
    "    DELETE FROM runtime_records WHERE game_id LIKE pfx || '%'; "
    "    INSERT INTO runtime_records (game_id, status, current_turn) "
    "      SELECT pfx || i, sts[1 + floor(random() * 5)::int], i "
    "        FROM generate_series(1, 6) AS i; "
    "    n := floor(random() * 60)::int; "
    "    ids := '{}'; sums := '{}'; ex := '{}'; tos := '{}'; "
    "    FOR i IN 1 .. n LOOP "
    "      r := 1 + floor(random() * 6)::int; "
    "      ids := ids || CASE WHEN random() < 0.05 THEN NULL "
    "                    ELSE pfx || (1 + floor(random() * 8)::int) END; "
    "      sums := sums || types[r][1]; "
    "      ex := ex || types[r][2]; "
    "      tos := tos || types[r][3]; "
    "    END LOOP; "
    "    BEGIN "
    "      SELECT string_agg(x::text, ';' ORDER BY x.o_ord) INTO a "
    "        FROM pg_temp.apply_reference(ids, sums, ex, tos) AS x; "
    "      EXECUTE rows_sql INTO ta USING pfx || '%'; "
    "      RAISE EXCEPTION 'undo'; "
    "    EXCEPTION WHEN raise_exception THEN NULL; "
    "    END; "
    "    EXECUTE format('SELECT string_agg(x::text, '';'' ORDER BY "
    "        x.o_ord) FROM %s($1, $2, $3, $4) AS x', candidate) "
    "      INTO b USING ids, sums, ex, tos; "
    "    EXECUTE rows_sql INTO tb USING pfx || '%'; "
    "    IF a IS DISTINCT FROM b OR ta IS DISTINCT FROM tb THEN "
    "      RETURN format('batch %s (%s elements) differs: rows %s / %s; "
    "          table %s / %s', it, n, a, b, ta, tb); "
    "    END IF; "
    "  END LOOP; "
    "  RETURN NULL; "
    "END $$";

/* Run a statement that must succeed (no result wanted). */
static void exec_ok(const char *sql)
{
	PGresult *res = run(sql, 0, NULL);

	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK ||
		      PQresultStatus(res) == PGRES_TUPLES_OK,
		  "%.60s...: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
}

/*
 * Compare `candidate` with the reference on `batches` random batches,
 * inside a transaction that is rolled back. Returns NULL when they agree,
 * else the first difference (malloc'd). The seed is logged, so a failure
 * can be replayed.
 */
static char *compare_with_reference(const char *candidate, int batches)
{
	char seed[32], count[16];
	const char *params[3] = {candidate, count, game_id("equiv-")};
	PGresult *res;
	char *diff = NULL;

	snprintf(seed, sizeof(seed), "%.6f",
		 (double)(getpid() % 1000000) / 1000000.0);
	snprintf(count, sizeof(count), "%d", batches);
	cr_log_info("%s: %d random batches, setseed(%s)", candidate, batches,
		    seed);
	exec_ok(reference_sql);
	exec_ok(equivalence_sql);
	exec_ok("BEGIN");
	params[0] = seed;
	res = run("SELECT setseed($1::float8)", 1, params);
	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
		  PQresultErrorMessage(res));
	PQclear(res);
	params[0] = candidate;
	res = run("SELECT pg_temp.equivalence($1, $2::integer, $3)", 3, params);
	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "equivalence: %s",
		  PQresultErrorMessage(res));
	if (!PQgetisnull(res, 0, 0))
		diff = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	exec_ok("ROLLBACK");
	return diff;
}

Test(schema, apply_matches_sequential_reference)
{
	char *diff = compare_with_reference("health_events_apply_batch", 200);

	cr_expect(diff == NULL,
		  "health_events_apply differs from the sequential reference: "
		  "%s",
		  diff);
	free(diff);
}

Test(schema, apply_reference_check_catches_a_difference)
{
	char *diff;

	exec_ok(broken_sql);
	diff = compare_with_reference("pg_temp.apply_broken", 200);
	cr_expect(diff != NULL, "a function that never transitions passed");
	free(diff);
}

/*
 * A concurrent writer: another flow changes two rows and holds them while
 * a set-sized batch (16 elements: one game twice) waits on their locks.
 * Once it commits, the batch must see the rows as that flow left them, as
 * the sequential reference would after it: the CAS of the changed single
 * game is lost (a conflict, its status kept), the game with two elements
 * folds from the new status. A before state read beside the write, from
 * the statement's snapshot, would see `running` for both.
 */
Test(schema, apply_sees_a_concurrent_writers_rows)
{
	char ids[2048] = "{", sums[1024] = "{", ex[1024] = "{", to[1024] = "{";
	const char *g[15];
	for (int i = 0; i < 15; i++) {
		char name[16];
		snprintf(name, sizeof(name), "cw%d", i);
		g[i] = strdup(game_id(name));
		insert_running(g[i]);
	}
	/* g0 once, g1 twice (elements 2 and 3), g2..g14 once: 16 elements */
	for (int e = 0; e < 16; e++) {
		int k = e < 2 ? e : e == 2 ? 1 : e - 1;
		bool last = e == 15;
		snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids),
			 "\"%s\"%s", g[k], last ? "}" : ",");
		snprintf(sums + strlen(sums), sizeof(sums) - strlen(sums),
			 "exited%s", last ? "}" : ",");
		snprintf(ex + strlen(ex), sizeof(ex) - strlen(ex), "running%s",
			 last ? "}" : ",");
		snprintf(to + strlen(to), sizeof(to) - strlen(to),
			 "engine_unreachable%s", last ? "}" : ",");
	}
	PGconn *other = PQconnectdb(getenv("APPHOST_POSTGRES_DSN"));
	PGconn *mine = PQconnectdb(getenv("APPHOST_POSTGRES_DSN"));
	cr_assert(PQstatus(other) == CONNECTION_OK &&
		  PQstatus(mine) == CONNECTION_OK);
	const char *lock[] = {g[0], g[1]};
	PQclear(PQexec(other, "BEGIN"));
	PGresult *res = PQexecParams(
	    other,
	    "UPDATE runtime_records SET status = 'generation_in_progress' "
	    "WHERE game_id IN ($1, $2)",
	    2, NULL, lock, NULL, NULL, 0);
	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
		  PQresultErrorMessage(res));
	PQclear(res);
	const char *p[] = {ids, sums, ex, to};
	cr_assert(PQsendQueryParams(mine,
				    "SELECT o_ord, o_outcome, o_status FROM "
				    "health_events_apply_batch($1, $2, $3, $4) "
				    "ORDER BY o_ord",
				    4, NULL, p, NULL, NULL, 0));
	bool waiting = false;
	for (int i = 0; i < 500 && !waiting; i++) {
		char *v = scalar("SELECT count(*) FROM pg_stat_activity WHERE "
				 "wait_event_type = 'Lock' AND query LIKE "
				 "'%health_events_apply_batch%'");
		waiting = atoi(v) > 0;
		free(v);
		if (!waiting)
			usleep(10000);
	}
	cr_assert(waiting, "the batch waits on the other flow's locks");
	PQclear(PQexec(other, "COMMIT"));
	res = PQgetResult(mine);
	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
		  PQresultErrorMessage(res));
	cr_assert_eq(PQntuples(res), 16);
	cr_expect_str_eq(PQgetvalue(res, 0, 1), "conflict");
	cr_expect_str_eq(PQgetvalue(res, 0, 2), "generation_in_progress");
	cr_expect_str_eq(PQgetvalue(res, 1, 1), "conflict");
	cr_expect_str_eq(PQgetvalue(res, 2, 1), "conflict");
	cr_expect_str_eq(PQgetvalue(res, 2, 2), "generation_in_progress");
	cr_expect_str_eq(PQgetvalue(res, 3, 1), "transitioned");
	cr_expect_str_eq(PQgetvalue(res, 3, 2), "engine_unreachable");
	PQclear(res);
	while ((res = PQgetResult(mine)))
		PQclear(res);
	PQfinish(mine);
	PQfinish(other);
	for (int i = 0; i < 15; i++)
		free((void *)g[i]);
}

/* ---- leadership (schema/003) -------------------------------------------- */

/* health_events_lease(name, holder, token, ms, 0): the epoch, or "0". */
static char *lease(const char *name, const char *token, const char *ms)
{
	const char *p[] = {name, token, token, ms};
	PGresult *res = run("SELECT o_epoch FROM health_events_lease($1, $2, "
			    "$3, $4::integer, 0)",
			    4, p);
	char *v;

	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "lease: %s",
		  PQresultErrorMessage(res));
	v = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

static void expire(const char *name)
{
	const char *p[] = {name};
	PGresult *res = run("UPDATE health_events_leader SET expires_at = "
			    "now() - interval '1 second' WHERE name = $1",
			    1, p);

	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK);
	PQclear(res);
}

#define LEASE_IS(name, token, want)                                            \
	do {                                                                   \
		char *got_ = lease(name, token, "60000");                      \
		cr_assert_str_eq(got_, want, "lease(%s) by %s", name, token);  \
		free(got_);                                                    \
	} while (0)

Test(schema, lease_epoch_grows_only_when_the_holder_changes_or_it_lapsed)
{
	const char *name = game_id("lease");

	LEASE_IS(name, "a", "1");
	LEASE_IS(name, "a", "1"); /* renewal */
	LEASE_IS(name, "b", "0"); /* held by a */
	expire(name);
	LEASE_IS(name, "b", "2"); /* a lapsed: b takes over */
	LEASE_IS(name, "a", "0");
	expire(name);
	LEASE_IS(name, "b", "3"); /* b's own lease lapsed: a new epoch */

	const char *p[] = {name, "b", "3"};
	PGresult *res = run("SELECT health_events_lease_release($1, $2, "
			    "$3::bigint)",
			    3, p);
	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK);
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	LEASE_IS(name, "a", "4"); /* released: taken at once */
}

/*
 * health_events_apply(lease, epoch, after, last, ...) of one health-only
 * element (game NULL: none), following applied position after_ms-0 and
 * ending at last_ms-0.
 */
static PGresult *apply_at(const char *name, const char *epoch, const char *game,
			  unsigned after_ms, unsigned last_ms)
{
	char ids[160], a[16], l[16];
	snprintf(ids, sizeof(ids), game ? "{\"%s\"}" : "{}", game);
	snprintf(a, sizeof(a), "%u", after_ms);
	snprintf(l, sizeof(l), "%u", last_ms);
	const char *p[] = {name,
			   epoch,
			   ids,
			   a,
			   l,
			   game ? "{oom}" : "{}",
			   game ? "{NULL}" : "{}"};
	return run("SELECT * FROM health_events_apply($1, $2::bigint, "
		   "$4::bigint, 0, $5::bigint, 0, $3::text[], $6::text[], "
		   "$7::text[], $7::text[], NULL, NULL, NULL, 'a', 10000)",
		   7, p);
}

/* The next apply of a test: each follows the last (one test a process). */
static PGresult *apply_one(const char *name, const char *epoch,
			   const char *game)
{
	static unsigned at = 1;
	PGresult *res = apply_at(name, epoch, game, at, at + 1);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		at++;
	return res;
}

static void expect_state(PGresult *res, const char *sqlstate)
{
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (sqlstate)
		cr_assert_str_eq(st ? st : "", sqlstate, "%s",
				 PQresultErrorMessage(res));
	else
		cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
			  PQresultErrorMessage(res));
	PQclear(res);
}

static char *position_of(const char *name)
{
	const char *p[] = {name};
	PGresult *res = run("SELECT ms || '-' || seq FROM "
			    "health_events_progress WHERE name = $1",
			    1, p);
	char *v = strdup(PQntuples(res) ? PQgetvalue(res, 0, 0) : "(none)");
	PQclear(res);
	return v;
}

/*
 * The apply is a compare-and-set on the applied position: one that does
 * not follow it writes nothing (HE002); positions compare as numbers.
 */
Test(schema, apply_is_a_compare_and_set_on_the_applied_position)
{
	const char *name = game_id("cas");
	const char *game = game_id("cas-game");

	insert_running(game);
	LEASE_IS(name, "a", "1");
	expect_state(apply_at(name, "1", game, 9, 9), "22023");
	expect_state(apply_at(name, "1", game, 8, 9), NULL); /* none yet */
	char *pos = position_of(name);
	cr_assert_str_eq(pos, "9-0");
	free(pos);
	expect_state(apply_at(name, "1", game, 8, 9), "HE002");	  /* replay */
	expect_state(apply_at(name, "1", game, 10, 11), "HE002"); /* a gap */
	expect_state(apply_at(name, "1", game, 9, 10), NULL);	  /* 10 > 9 */
	pos = position_of(name);
	cr_assert_str_eq(pos, "10-0");
	free(pos);
	char *n = scalar("SELECT count(*) FROM pg_proc WHERE "
			 "to_regprocedure('health_events_apply(text, bigint, "
			 "text[], text[], text[], text[])') IS NOT NULL");
	cr_assert_str_eq(n, "0", "the old signature is retired");
	free(n);
}

/*
 * Every entry moves the position: an apply without ops does, and records
 * the entry the database refused with its reason.
 */
Test(schema, an_apply_without_ops_moves_the_position_and_records_a_refusal)
{
	const char *name = game_id("skip");
	const char *p[] = {name};

	LEASE_IS(name, "a", "1");
	expect_state(apply_at(name, "1", NULL, 4, 5), NULL);
	PGresult *res =
	    run("SELECT * FROM health_events_apply($1, 1, 5, 0, 7, 2, '{}', "
		"'{}', '{}', '{}', 7, 1, 'refused by the database: x', 'a', "
		"10000)",
		1, p);
	expect_state(res, NULL);
	char *pos = position_of(name);
	cr_assert_str_eq(pos, "7-2");
	free(pos);
	res = run("SELECT ms || '-' || seq || ' ' || reason FROM "
		  "health_events_refused WHERE name = $1",
		  1, p);
	cr_assert_eq(PQntuples(res), 1);
	cr_assert_str_eq(PQgetvalue(res, 0, 0),
			 "7-1 refused by the database: x");
	PQclear(res);
	/* a refused id outside (after, last] is a caller's bug */
	res = run("SELECT * FROM health_events_apply($1, 1, 7, 2, 8, 0, '{}', "
		  "'{}', '{}', '{}', 9, 0, 'x', 'a', 10000)",
		  1, p);
	expect_state(res, "22023");
}

Test(schema, apply_with_an_old_epoch_after_a_takeover_is_refused)
{
	const char *name = game_id("fence");
	const char *game = game_id("fence-game");
	PGresult *res;

	insert_running(game);
	LEASE_IS(name, "a", "1");
	res = apply_one(name, "1", game);
	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
		  PQresultErrorMessage(res));
	PQclear(res);
	expire(name);
	LEASE_IS(name, "b", "2");
	res = apply_one(name, "1", game);
	cr_assert(PQresultStatus(res) == PGRES_FATAL_ERROR);
	cr_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "HE001");
	PQclear(res);
	res = apply_one(game_id("no-such-lease"), "1", game);
	cr_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "HE001");
	PQclear(res);
}

/*
 * A fencing token is the epoch and the holder together: the lease row
 * rolled back to hand epoch 1 to another holder refuses the first one's
 * applies, though the epoch matches.
 */
Test(schema, apply_with_the_epoch_of_another_holder_is_refused)
{
	const char *name = game_id("token");
	const char *game = game_id("token-game");
	const char *p[] = {name, game};

	insert_running(game);
	LEASE_IS(name, "a", "1");
	expect_state(apply_one(name, "1", game), NULL);
	/* as a restore would leave it: epoch 1, now held by "b" */
	PGresult *res = run("UPDATE health_events_leader SET token = 'b', "
			    "holder = 'b' WHERE name = $1",
			    1, p);
	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK);
	PQclear(res);
	expect_state(apply_one(name, "1", game), "HE001");
	res = run("SELECT * FROM health_events_apply($1, 1, 0, 0, 1, 0, '{}', "
		  "'{}', '{}', '{}', NULL, NULL, NULL, 'a', 0)",
		  1, p);
	expect_state(res, "22023"); /* a lock timeout of 0 would be none */
}

/*
 * The apply bounds its own lock waits (lock_timeout from p_lock_ms, for
 * its transaction only): a row another flow holds fails it with 55P03,
 * writing nothing, instead of holding the lease row without end.
 */
Test(schema, apply_waits_for_a_row_lock_at_most_its_lock_timeout)
{
	const char *name = game_id("lockwait");
	const char *game = game_id("lockwait-game");
	const char *p[] = {name, game};

	insert_running(game);
	LEASE_IS(name, "a", "1");
	PGconn *other = PQconnectdb(getenv("APPHOST_POSTGRES_DSN"));
	cr_assert_eq(PQstatus(other), CONNECTION_OK);
	PQclear(PQexec(other, "BEGIN"));
	PGresult *res = PQexecParams(other,
				     "SELECT 1 FROM runtime_records WHERE "
				     "game_id = $1 FOR UPDATE",
				     1, NULL, p + 1, NULL, NULL, 0);
	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK);
	PQclear(res);
	char ids[200];
	snprintf(ids, sizeof(ids), "{\"%s\"}", game);
	const char *q[] = {name, ids};
	res = run("SELECT * FROM health_events_apply($1, 1, 1, 0, 2, 0, "
		  "$2::text[], '{oom}', '{NULL}', '{NULL}', NULL, NULL, NULL, "
		  "'a', 200)",
		  2, q);
	expect_state(res, "55P03");
	char *pos = position_of(name);
	cr_assert_str_eq(pos, "(none)", "a failed apply moved the position");
	free(pos);
	char *lt = scalar("SHOW lock_timeout");
	cr_assert_str_eq(lt, "0", "the apply's lock_timeout outlived it");
	free(lt);
	PQclear(PQexec(other, "ROLLBACK"));
	PQfinish(other);
	res = run("SELECT * FROM health_events_apply($1, 1, 1, 0, 2, 0, "
		  "$2::text[], '{oom}', '{NULL}', '{NULL}', NULL, NULL, NULL, "
		  "'a', 200)",
		  2, q);
	expect_state(res, NULL);
}

Test(schema, apply_refuses_arrays_of_different_lengths)
{
	const char *name = game_id("shape");
	const char *p[] = {name};

	LEASE_IS(name, "a", "1");
	PGresult *res = run("SELECT * FROM health_events_apply($1, 1, 1, 0, "
			    "2, 0, '{g1,g2}', '{oom}', '{NULL,NULL}', "
			    "'{NULL,NULL}', NULL, NULL, NULL, 'a', 10000)",
			    1, p);
	cr_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "22023");
	PQclear(res);
	res = run("SELECT * FROM health_events_apply($1, 1, 1, 0, 2, 0, "
		  "'{{g1},{g2}}', '{{a},{b}}', '{{NULL},{NULL}}', "
		  "'{{NULL},{NULL}}', NULL, NULL, NULL, 'a', 10000)",
		  1, p);
	cr_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "22023");
	PQclear(res);
}

Test(schema, functions_are_not_executable_by_public_and_pin_search_path)
{
	char *n = scalar(
	    "SELECT count(*) FROM pg_proc p WHERE p.proname LIKE "
	    "'health\\_events\\_%' AND (p.proacl IS NULL OR EXISTS ("
	    "SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))");
	cr_assert_str_eq(n, "0", "functions executable by PUBLIC: %s", n);
	free(n);
	n = scalar("SELECT count(*) FROM pg_proc p WHERE p.proname LIKE "
		   "'health\\_events\\_%' AND NOT EXISTS (SELECT 1 FROM "
		   "unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%')");
	cr_assert_str_eq(n, "0", "functions without a pinned search_path: %s",
			 n);
	free(n);
}

Test(schema, a_temporary_table_does_not_stand_in_for_runtime_records)
{
	const char *name = game_id("temp");
	const char *game = game_id("temp-game");
	PGresult *res;

	insert_running(game);
	res = run("CREATE TEMP TABLE runtime_records (LIKE "
		  "public.runtime_records INCLUDING ALL)",
		  0, NULL);
	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK, "%s",
		  PQresultErrorMessage(res));
	PQclear(res);
	LEASE_IS(name, "a", "1");
	res = apply_one(name, "1", game);
	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s",
		  PQresultErrorMessage(res));
	cr_assert_str_eq(PQgetvalue(res, 0, 1), "health",
			 "the real row was updated");
	PQclear(res);
	PQclear(run("DROP TABLE pg_temp.runtime_records", 0, NULL));
}
