/*
 * Suite integration: the PostgreSQL record store and the Redis stream
 * adapter against the real servers of scripts/services.
 */
#include "adapter_fixture.h"
#include "record_store_pg.h"
#include "redis_pg.h"
#include "stream_redis.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(pg_store, .init = adapter_setup, .fini = adapter_teardown);

/*
 * Take lease `name` for a new holder (schema/003) and fence st's applies
 * with it; returns the epoch.
 */
static unsigned long long take_lease(he_record_store_pg *st, const char *name,
				     const char *token)
{
	unsigned long long e = th_take_lease(pg, name, token);
	if (st) {
		he_record_store_pg_set_fence(st, name, e);
		he_record_store_pg_set_token(st, token);
	}
	return e;
}

/* Let lease `name` lapse now, as a holder that died long ago would. */
static void lapse_lease(const char *name)
{
	th_sql(pg,
	       "UPDATE health_events_leader SET expires_at = now() - "
	       "interval '1 hour' WHERE name = $1",
	       name, NULL);
}

/*
 * A game (named into g) whose row is running at turn 1, and st fenced by
 * a lease of its own name taken for `token`; returns the epoch.
 */
static unsigned long long store_for_one_game(he_record_store_pg *st, char *g,
					     size_t cap, const char *tag,
					     const char *token)
{
	snprintf(g, cap, "%s:%s", th_unique("pg"), tag);
	th_insert_game(pg, g, "running", 1);
	he_record_store_pg_init(st, rs_services(rs));
	return take_lease(st, g, token);
}

/*
 * Apply as the next batch of the store's lease: each apply follows the
 * position the last successful one left ("k-0" to "k+1-0"; the first of a
 * lease takes any, as with no applied position yet). One test per
 * process, so the counter is the test's own.
 */
static int apply_next(he_record_store *port, const he_mutation *ops, size_t n,
		      he_mutation_result *res)
{
	static unsigned long long at = 1;
	char after[24], last[24];
	snprintf(after, sizeof(after), "%llu-0", at);
	snprintf(last, sizeof(last), "%llu-0", at + 1);
	he_apply_span span = {.after = after, .last = last};
	int r = port->apply(port->ctx, &span, ops, n, res);
	if (r == 0)
		at++;
	return r;
}

static he_mutation op(const char *game, const char *summary,
		      const char *expected, const char *to)
{
	return (he_mutation){game, strlen(game), summary, expected, to};
}

Test(pg_store, applies_cas_fallback_health_and_not_found_in_order)
{
	char g1[160], g2[160], g3[160], missing[160];
	const char *u = th_unique("pg");
	/* quotes, backslashes, commas, braces and non-ASCII survive arrays */
	snprintf(g1, sizeof(g1), "%s:q\"b\\c,{x} \xc3\xa9", u);
	snprintf(g2, sizeof(g2), "%s:gen", u);
	snprintf(g3, sizeof(g3), "%s:stopped", u);
	snprintf(missing, sizeof(missing), "%s:missing", u);
	th_insert_game(pg, g1, "running", 7);
	th_insert_game(pg, g2, "generation_in_progress", 3);
	th_insert_game(pg, g3, "stopped", 9);

	he_record_store_pg st;
	he_record_store_pg_init(&st, rs_services(rs));
	take_lease(&st, u, "a");
	he_record_store port = he_record_store_pg_port(&st);
	he_mutation ops[] = {
	    op(g1, "oom", "running", "engine_unreachable"),
	    op(g2, "oom", "running", "engine_unreachable"),
	    op(g3, "probe_failed", NULL, NULL),
	    op(missing, "healthy", NULL, NULL),
	    op(g1, "healthy", "engine_unreachable", "running"),
	    op(g1, "probe_failed", NULL, NULL),
	};
	he_mutation_result res[6];
	int r = apply_next(&port, ops, 6, res);
	cr_assert_eq(r, 0, "apply: %s (%s)", he_strerror(r),
		     he_record_store_pg_err(&st));

	cr_assert_eq(res[0].outcome, HE_APPLY_TRANSITIONED);
	cr_assert_str_eq(res[0].row.status, "engine_unreachable");
	cr_assert_str_eq(res[0].row.engine_health, "oom");
	cr_assert_eq(res[0].row.current_turn, 7);
	cr_assert_eq(res[1].outcome, HE_APPLY_CONFLICT);
	cr_assert_str_eq(res[1].row.status, "generation_in_progress");
	cr_assert_str_eq(res[1].row.engine_health, "oom");
	cr_assert_eq(res[2].outcome, HE_APPLY_HEALTH);
	cr_assert_str_eq(res[2].row.status, "stopped");
	cr_assert_eq(res[3].outcome, HE_APPLY_NOT_FOUND);
	cr_assert_eq(res[4].outcome, HE_APPLY_TRANSITIONED);
	cr_assert_str_eq(res[4].row.status, "running");
	cr_assert_eq(res[5].outcome, HE_APPLY_HEALTH);
	cr_assert_str_eq(res[5].row.engine_health, "probe_failed");

	char *h = th_sql_value(
	    pg,
	    "SELECT status || '/' || engine_health FROM runtime_records "
	    "WHERE game_id = $1",
	    g1);
	cr_assert_str_eq(h, "running/probe_failed");
	free(h);
	he_record_store_pg_close(&st);
	cr_assert_eq(rs_leases_out(rs), 0);
}

/* The server ends the store's session, as a failover or restore does. */
static void end_backend(he_record_store_pg *st)
{
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", PQbackendPID(st->pg.conn));
	th_sql(pg, "SELECT pg_terminate_backend($1::integer)", pid, NULL);
}

Test(pg_store, a_lost_connection_is_reported_and_the_next_apply_recovers)
{
	char g[160];
	he_record_store_pg st;
	store_for_one_game(&st, g, sizeof(g), "kill", "a");
	he_record_store port = he_record_store_pg_port(&st);
	he_mutation ops[] = {op(g, "probe_failed", NULL, NULL)};
	he_mutation_result res[1];
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));

	end_backend(&st);
	ops[0].summary = "oom";
	int r = apply_next(&port, ops, 1, res);
	cr_assert_eq(r, HE_ECONN, "got %s (%s)", he_strerror(r),
		     he_record_store_pg_err(&st));
	cr_assert_null(st.pg.conn, "a broken connection is given back");
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));
	cr_assert_str_eq(res[0].row.engine_health, "oom");
	he_record_store_pg_close(&st);
}

/* SHOW synchronous_commit on the store's own connection is `want`. */
static void expect_commit_mode(he_record_store_pg *st, const char *want)
{
	cr_assert_not_null(st->pg.conn, "the store holds a connection");
	PGresult *r = PQexec(st->pg.conn, "SHOW synchronous_commit");
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s",
		     PQerrorMessage(st->pg.conn));
	cr_expect_str_eq(PQgetvalue(r, 0, 0), want);
	PQclear(r);
}

/*
 * st again for game g's lease, taken over by a new holder, committing
 * without waiting; returns its port.
 */
static he_record_store reopen_async(he_record_store_pg *st, const char *g)
{
	he_record_store_pg_init(st, rs_services(rs));
	lapse_lease(g);
	take_lease(st, g, "b");
	he_record_store_pg_set_async_commit(st, true);
	return he_record_store_pg_port(st);
}

Test(pg_store, commits_without_waiting_when_asked_after_reconnects_too)
{
	char g[160];
	he_record_store_pg st;
	store_for_one_game(&st, g, sizeof(g), "async", "a");
	he_record_store port = he_record_store_pg_port(&st);
	he_mutation ops[] = {op(g, "probe_failed", NULL, NULL)};
	he_mutation_result res[1];
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));
	expect_commit_mode(&st, "on"); /* the server's, by default */
	he_record_store_pg_close(&st);

	port = reopen_async(&st, g);
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));
	expect_commit_mode(&st, "off");
	/* a new connection (a failover, a restore) gets it too */
	end_backend(&st);
	(void)apply_next(&port, ops, 1, res); /* finds the broken one */
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));
	expect_commit_mode(&st, "off");
	/* After a read of the applied position the next apply commits
	 * synchronously, until one succeeds: one refused stays so. */
	char at[64];
	cr_assert_eq(port.position(port.ctx, at, sizeof(at)), 0);
	he_apply_span stale = {.after = "1-0", .last = "2-0"};
	cr_assert_eq(port.apply(port.ctx, &stale, ops, 1, res), HE_EPOSITION);
	expect_commit_mode(&st, "on");
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));
	expect_commit_mode(&st, "off");
	he_record_store_pg_close(&st);
	cr_assert_eq(rs_leases_out(rs), 0);
}

/*
 * The host's pool hands a connection back to the same component without
 * resetting it, so one the store set to commit without waiting would give
 * that mode to the lease thread's session: it goes back as broken.
 */
Test(pg_store, gives_back_a_connection_it_set_to_commit_async_as_broken)
{
	char g[160];
	he_record_store_pg st;
	store_for_one_game(&st, g, sizeof(g), "asyncpool", "a");
	he_record_store port = he_record_store_pg_port(&st);
	he_mutation ops[] = {op(g, "probe_failed", NULL, NULL)};
	he_mutation_result res[1];
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));
	int broken = rs_broken_releases(rs);
	he_record_store_pg_close(&st);
	cr_assert_eq(rs_broken_releases(rs), broken, "the server's mode: kept");

	port = reopen_async(&st, g);
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));
	expect_commit_mode(&st, "off");
	he_record_store_pg_close(&st);
	cr_assert_eq(rs_broken_releases(rs), broken + 1,
		     "a connection committing without waiting is not reused");
	cr_assert_eq(rs_leases_out(rs), 0);
}

/*
 * The apply that commits synchronously has committed once its result is
 * read: a failure to set the session back is no failed apply (retried, it
 * would be refused and resync), and the next apply tries again.
 */
Test(pg_store, a_failed_switch_back_to_async_still_reports_the_apply)
{
	char g[160];
	he_record_store_pg st;
	store_for_one_game(&st, g, sizeof(g), "asyncback", "a");
	he_record_store_pg_set_async_commit(&st, true);
	he_record_store port = he_record_store_pg_port(&st);
	he_mutation ops[] = {op(g, "probe_failed", NULL, NULL)};
	he_mutation_result res[1];
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));
	/* A set_config of its own, found before pg_catalog's on the store's
	 * session, refuses 'off'. */
	char schema[64], sql[512];
	snprintf(schema, sizeof(schema), "he_shadow_%d", (int)getpid());
	snprintf(sql, sizeof(sql),
		 "CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO PUBLIC; "
		 "CREATE FUNCTION %s.set_config(text, text, boolean) "
		 "RETURNS text LANGUAGE plpgsql AS $f$ BEGIN "
		 "IF $2 = 'off' THEN RAISE EXCEPTION 'refused here'; END IF; "
		 "RETURN pg_catalog.set_config($1, $2, $3); END $f$",
		 schema, schema, schema);
	PGresult *r = PQexec(pg, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s",
		     PQerrorMessage(pg));
	PQclear(r);
	snprintf(sql, sizeof(sql),
		 "SELECT set_config('search_path', '%s, pg_catalog, ' || "
		 "current_setting('search_path'), false)",
		 schema);
	r = PQexec(st.pg.conn, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s",
		     PQerrorMessage(st.pg.conn));
	PQclear(r);

	char at[64];
	cr_assert_eq(port.position(port.ctx, at, sizeof(at)), 0);
	ops[0].summary = "oom";
	int rc = apply_next(&port, ops, 1, res);
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
	th_sql(pg, sql, NULL);
	cr_assert_eq(rc, 0, "committed, reported %s (%s)", he_strerror(rc),
		     he_record_store_pg_err(&st));
	cr_expect_eq(res[0].outcome, HE_APPLY_HEALTH);
	cr_expect_str_eq(res[0].row.engine_health, "oom");
	/* still synchronous: the next apply sets it again, then back */
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&st));
	expect_commit_mode(&st, "off");
	he_record_store_pg_close(&st);
	cr_assert_eq(rs_leases_out(rs), 0);
}

Test(pg_store, an_apply_with_an_old_epoch_after_a_takeover_writes_nothing)
{
	char g[160];
	he_record_store_pg old;
	unsigned long long e1 =
	    store_for_one_game(&old, g, sizeof(g), "fence", "old");
	he_record_store port = he_record_store_pg_port(&old);
	he_mutation ops[] = {op(g, "probe_failed", NULL, NULL)};
	he_mutation_result res[1];
	cr_assert_eq(apply_next(&port, ops, 1, res), 0, "%s",
		     he_record_store_pg_err(&old));

	/* the old holder's lease lapses; another instance takes it */
	lapse_lease(g);
	unsigned long long e2 = take_lease(NULL, g, "new");
	cr_assert_gt(e2, e1, "a takeover raises the epoch: %llu, %llu", e1, e2);
	ops[0].summary = "oom";
	int r = apply_next(&port, ops, 1, res);
	cr_assert_eq(r, HE_EFENCED, "got %s (%s)", he_strerror(r),
		     he_record_store_pg_err(&old));
	cr_assert_not_null(old.pg.conn, "a fenced apply keeps its connection");
	char *row = th_row(pg, g);
	cr_assert_str_eq(row, "running/probe_failed/1", "fenced apply wrote");
	free(row);
	he_record_store_pg_close(&old);
}

/* Holds the lease row's lock that a takeover needs, like a running apply. */
struct locker {
	const char *lease;
	unsigned long long epoch;
	int hold_ms;
};

static void *hold_apply(void *arg)
{
	struct locker *l = arg;
	PGconn *c = PQconnectdb(getenv("APPHOST_POSTGRES_DSN"));
	char e[24], ms[24];
	snprintf(e, sizeof(e), "%llu", l->epoch);
	snprintf(ms, sizeof(ms), "%f", l->hold_ms / 1000.0);
	const char *p[] = {l->lease, e, ms};
	PGresult *res = PQexecParams(
	    c,
	    "SELECT count(*), pg_sleep($3::float8) FROM health_events_apply("
	    "$1, $2::bigint, 0, 0, 1, 0, '{}', '{}', '{}', '{}', NULL, NULL, "
	    "NULL, 'old', 10000)",
	    3, NULL, p, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	PQclear(res);
	PQfinish(c);
	return (void *)(intptr_t)(st == PGRES_TUPLES_OK);
}

Test(pg_store, a_takeover_waits_for_a_running_apply_of_the_old_epoch)
{
	char name[160];
	snprintf(name, sizeof(name), "%s:inflight", th_unique("pg"));
	unsigned long long e1 = take_lease(NULL, name, "old");
	lapse_lease(name);
	struct locker l = {name, e1, 1500};
	pthread_t t;
	pthread_create(&t, NULL, hold_apply, &l);
	usleep(300 * 1000);
	/* the running apply of epoch e1 holds the lease row: not taken yet */
	cr_assert_eq(th_lease(pg, name, "new", "new", "60000", "0"), 0,
		     "taken while an apply of the old epoch ran");
	void *ok;
	pthread_join(t, &ok);
	cr_assert(ok, "the apply that started first commits");
	cr_assert_gt(take_lease(NULL, name, "new"), e1);
}

/* ---- redis -------------------------------------------------------------- */

TestSuite(redis_stream, .init = adapter_setup, .fini = adapter_teardown);

Test(redis_stream, reads_commits_publishes_and_saves_offset)
{
	he_config cfg = adapter_config(th_unique("rs"));
	char *id1 = th_xadd(redis, cfg.stream, "game_id", "g1", "event_type",
			    "container_oom", NULL);
	char *id2 = th_xadd(redis, cfg.stream, "bogus", "x", NULL);

	he_stream_redis s;
	he_stream_redis_init(&s, rs_services(rs), &cfg);
	he_stream_redis_set_epoch(&s, 3);
	he_stream_port port = he_stream_redis_port(&s);
	char off[48];
	cr_assert_null(th_get(redis, cfg.offset_key), "no offset saved yet");
	cr_assert_eq(he_stream_redis_take_over(&s, off, sizeof(off)), HE_ENOENT,
		     "%s", s.err);
	char *fence = th_get(redis, cfg.fence_key);
	cr_assert_str_eq(fence, "3", "taking over raises the fence");
	free(fence);

	const he_stream_entry *e;
	size_t n;
	cr_assert_eq(he_stream_redis_read(&s, "0-0", &e, &n), 0, "%s", s.err);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(e[0].id, id1);
	cr_assert_eq(e[0].nitems, 4);
	cr_assert_eq(e[0].lens[3], strlen("container_oom"));
	cr_assert_eq(memcmp(e[0].items[3], "container_oom", 13), 0);

	char payload[] = "{\"game_id\":\"g1\"}";
	he_snapshot_msg snap = {"g1", 2, e[0].id, payload, strlen(payload)};
	he_dead_letter dead = {&e[1], "missing game_id"};
	he_outbox box = {
	    .snapshots = &snap, .nsnapshots = 1, .dead = &dead, .ndead = 1};
	snprintf(box.last_id, sizeof(box.last_id), "%s", id2);
	cr_assert_eq(port.commit(port.ctx, &box), 0, "%s", s.err);

	redisReply *lobby = th_xrange(redis, cfg.lobby_stream);
	cr_assert_eq(lobby->elements, 1);
	cr_assert_str_eq(th_field(lobby->element[0], "event_type"),
			 "runtime_snapshot_update");
	cr_assert_str_eq(th_field(lobby->element[0], "game_id"), "g1");
	cr_assert_str_eq(th_field(lobby->element[0], "source_id"), id1);
	cr_assert_str_eq(th_field(lobby->element[0], "payload"), payload);
	redisReply *dl = th_xrange(redis, cfg.dead_stream);
	cr_assert_eq(dl->elements, 1);
	cr_assert_str_eq(th_field(dl->element[0], "bogus"), "x");
	cr_assert_str_eq(th_field(dl->element[0], "source_id"), id2);
	cr_assert_str_eq(th_field(dl->element[0], "reason"), "missing game_id");
	char *saved = th_get(redis, cfg.offset_key);
	cr_assert_str_eq(saved, id2);
	free(saved);

	/* nothing after the last id: a read times out empty */
	cr_assert_eq(he_stream_redis_read(&s, id2, &e, &n), 0, "%s", s.err);
	cr_assert_eq(n, 0);
	freeReplyObject(lobby);
	freeReplyObject(dl);
	he_stream_redis_close(&s);
	cr_assert_eq(rs_leases_out(rs), 0);
	free(id1);
	free(id2);
}

/* XADD stream * k <value of vlen bytes>; returns the id (malloc). */
static char *xadd_sized(const char *stream, size_t vlen)
{
	char *v = malloc(vlen ? vlen : 1);
	memset(v, 'v', vlen);
	const char *argv[] = {"XADD",	      stream,	 "*",
			      "game_id",      "g1",	 "event_type",
			      "probe_failed", "details", v};
	size_t lens[] = {4, strlen(stream), 1, 7, 2, 10, 12, 7, vlen};
	redisReply *r = redisCommandArgv(redis, 9, argv, lens);
	cr_assert(r && r->type == REDIS_REPLY_STRING, "XADD");
	char *id = strdup(r->str);
	freeReplyObject(r);
	free(v);
	return id;
}

/*
 * Runs of small, large (200 KiB) and small entries, then one of 4 MiB:
 * every read stays within the budget unless it holds a single entry,
 * and every entry is read once, in order.
 */
Test(redis_stream, a_batch_stays_within_its_byte_budget)
{
	enum { RUN = 30, N = 3 * RUN + 2 };
	const size_t budget = 1 << 20;
	he_config cfg = adapter_config(th_unique("rs"));
	char *ids[N];
	for (size_t i = 0; i < N; i++) {
		size_t v = i >= RUN && i < 2 * RUN ? 200 << 10 : 16;
		if (i == 3 * RUN)
			v = 4 << 20;
		ids[i] = xadd_sized(cfg.stream, v);
	}

	he_stream_redis s;
	he_stream_redis_init(&s, rs_services(rs), &cfg);
	he_batch_init(&s.batch, cfg.batch, budget);
	char after[48] = "0-0";
	size_t seen = 0, reads = 0;
	while (seen < N) {
		const he_stream_entry *e;
		size_t n;
		cr_assert_eq(he_stream_redis_read(&s, after, &e, &n), 0, "%s",
			     s.err);
		cr_assert_gt(n, 0, "entries left to read");
		cr_assert_leq(n, s.asked);
		size_t bytes = 0;
		for (size_t i = 0; i < n; i++) {
			cr_assert_str_eq(e[i].id, ids[seen + i], "in order");
			for (size_t k = 0; k < e[i].nitems; k++)
				bytes += e[i].lens[k];
		}
		cr_assert(n == 1 || bytes <= budget,
			  "read %zu: %zu entries, %zu bytes", reads, n, bytes);
		seen += n;
		reads++;
		snprintf(after, sizeof(after), "%s", e[n - 1].id);
	}
	cr_assert_eq(seen, N);
	cr_assert_lt(reads, 40, "small entries still come in large reads");
	he_stream_redis_close(&s);
	cr_assert_eq(rs_leases_out(rs), 0);
	for (size_t i = 0; i < N; i++)
		free(ids[i]);
	freeReplyObject(th_cmd(redis, "DEL", cfg.stream, NULL));
}

Test(redis_stream, a_refused_xadd_never_advances_the_offset)
{
	he_config cfg = adapter_config(th_unique("rs"));
	freeReplyObject(
	    th_cmd(redis, "SET", cfg.lobby_stream, "not a stream", NULL));
	he_stream_redis s;
	he_stream_redis_init(&s, rs_services(rs), &cfg);
	he_stream_redis_set_epoch(&s, 1);
	he_stream_port port = he_stream_redis_port(&s);
	char payload[] = "{}";
	he_snapshot_msg snap = {"g", 1, "1-1", payload, 2};
	he_outbox box = {.snapshots = &snap, .nsnapshots = 1};
	snprintf(box.last_id, sizeof(box.last_id), "1-1");
	int r = port.commit(port.ctx, &box);
	cr_assert_eq(r, HE_EREFUSED, "got %s", he_strerror(r));
	cr_assert(strstr(s.err, "WRONGTYPE"), "error says why: %s", s.err);
	char *off = th_get(redis, cfg.offset_key);
	cr_assert_null(off, "offset saved despite the refused XADD: %s", off);

	freeReplyObject(th_cmd(redis, "DEL", cfg.lobby_stream, NULL));
	cr_assert_eq(port.commit(port.ctx, &box), 0, "%s", s.err);
	off = th_get(redis, cfg.offset_key);
	cr_assert_str_eq(off, "1-1");
	free(off);
	he_stream_redis_close(&s);
}

Test(redis_stream, detects_an_offset_older_than_the_trimmed_stream)
{
	he_config cfg = adapter_config(th_unique("rs"));
	char *ids[5];
	for (int i = 0; i < 5; i++)
		ids[i] = th_xadd(redis, cfg.stream, "game_id", "g",
				 "event_type", "probe_failed", NULL);
	freeReplyObject(
	    th_cmd(redis, "XTRIM", cfg.stream, "MAXLEN", "2", NULL));
	he_stream_redis s;
	he_stream_redis_init(&s, rs_services(rs), &cfg);
	char first[48];
	cr_assert_eq(he_stream_redis_check_gap(&s, ids[0], first, 48), 1);
	cr_assert_str_eq(first, ids[3]);
	cr_assert_eq(he_stream_redis_check_gap(&s, ids[3], first, 48), 0,
		     "the offset is the first entry: nothing lost");
	cr_assert_eq(he_stream_redis_check_gap(&s, ids[4], first, 48), 0);
	he_stream_redis_close(&s);
	for (int i = 0; i < 5; i++)
		free(ids[i]);
}

struct reader {
	he_stream_redis *s;
	int rc;
	size_t n;
	double ms;
};

static void *blocked_read(void *arg)
{
	struct reader *rd = arg;
	const he_stream_entry *e;
	double t0 = th_now_ms();
	rd->rc = he_stream_redis_read(rd->s, "$", &e, &rd->n);
	rd->ms = th_now_ms() - t0;
	return NULL;
}

Test(redis_stream, client_unblock_wakes_a_blocked_xread)
{
	he_config cfg = adapter_config(th_unique("rs"));
	cfg.block_ms = 5000;
	he_stream_redis s;
	he_stream_redis_init(&s, rs_services(rs), &cfg);
	cr_assert_eq(he_stream_redis_ping(&s), 0, "%s", s.err);
	struct reader rd = {.s = &s};
	pthread_t t;
	pthread_create(&t, NULL, blocked_read, &rd);
	int woke = 0;
	for (int i = 0; i < 200 && woke != 1; i++) {
		woke = he_stream_redis_unblock(rs_services(rs),
					       atomic_load(&s.client_id));
		usleep(10000);
	}
	pthread_join(t, NULL);
	cr_assert_eq(woke, 1, "CLIENT UNBLOCK found the reader");
	cr_assert_eq(rd.rc, 0);
	cr_assert_eq(rd.n, 0);
	/* one XREAD blocks at most HE_BLOCK_MAX_PER_READ_MS (2 s): well below
	 */
	cr_assert_lt(rd.ms, 1000, "woken before BLOCK ran out (%.0f ms)",
		     rd.ms);
	he_stream_redis_close(&s);
}

/* A commit of one snapshot for game "g" at last_id, on stream s. */
static int commit_one(he_stream_redis *s, const char *last_id)
{
	he_stream_port port = he_stream_redis_port(s);
	char payload[] = "{}";
	he_snapshot_msg snap = {"g", 1, last_id, payload, 2};
	he_outbox box = {.snapshots = &snap, .nsnapshots = 1};
	snprintf(box.last_id, sizeof(box.last_id), "%s", last_id);
	return port.commit(port.ctx, &box);
}

/* s leads on cfg's keys (nothing saved yet) with epoch 1. */
static void leader_of_fresh_keys(he_stream_redis *s, const he_config *cfg)
{
	char off[48];
	he_stream_redis_init(s, rs_services(rs), cfg);
	he_stream_redis_set_epoch(s, 1);
	cr_assert_eq(he_stream_redis_take_over(s, off, sizeof(off)), HE_ENOENT,
		     "%s", s->err);
}

Test(redis_stream, a_commit_with_a_lower_epoch_writes_nothing)
{
	he_config cfg = adapter_config(th_unique("rs"));
	he_stream_redis old, cur;
	he_stream_redis_init(&old, rs_services(rs), &cfg);
	he_stream_redis_init(&cur, rs_services(rs), &cfg);
	he_stream_redis_set_epoch(&old, 4);
	he_stream_redis_set_epoch(&cur, 5);
	char off[48];
	cr_assert_eq(he_stream_redis_take_over(&old, off, sizeof(off)),
		     HE_ENOENT);
	cr_assert_eq(commit_one(&old, "1-1"), 0, "%s", old.err);
	/* the new leader takes over: it starts where the old one ended */
	cr_assert_eq(he_stream_redis_take_over(&cur, off, sizeof(off)), 0, "%s",
		     cur.err);
	cr_assert_str_eq(off, "1-1");

	int r = commit_one(&old, "2-1");
	cr_assert_eq(r, HE_EFENCED, "got %s (%s)", he_strerror(r), old.err);
	cr_assert_eq(old.fence_seen, 5);
	cr_assert_eq(th_xlen(redis, cfg.lobby_stream), 1,
		     "a fenced commit published");
	char *o = th_get(redis, cfg.offset_key);
	cr_assert_str_eq(o, "1-1", "a fenced commit moved the offset");
	free(o);
	cr_assert_eq(he_stream_redis_take_over(&old, off, sizeof(off)),
		     HE_EFENCED, "an old leader cannot take over again");

	cr_assert_eq(commit_one(&cur, "2-1"), 0, "%s", cur.err);
	cr_assert_eq(th_xlen(redis, cfg.lobby_stream), 2);
	he_stream_redis_close(&old);
	he_stream_redis_close(&cur);
}

/*
 * A fencing token is the epoch and the holder together: an epoch handed
 * out twice (a lease row PostgreSQL rolled back) is used by one instance
 * only, whichever wrote it first; the other is refused and sees the fence.
 */
Test(redis_stream, an_epoch_with_another_token_is_refused)
{
	he_config cfg = adapter_config(th_unique("rs"));
	he_stream_redis a, b;
	he_stream_redis_init(&a, rs_services(rs), &cfg);
	he_stream_redis_init(&b, rs_services(rs), &cfg);
	he_stream_redis_set_token(&a, "token-a");
	he_stream_redis_set_token(&b, "token-b");
	he_stream_redis_set_epoch(&a, 5);
	he_stream_redis_set_epoch(&b, 5);
	char off[48];
	cr_assert_eq(he_stream_redis_take_over(&a, off, sizeof(off)), HE_ENOENT,
		     "%s", a.err);
	char *f = th_get(redis, cfg.fence_key);
	cr_assert_str_eq(f, "5 token-a", "the fence stores epoch and token");
	free(f);
	cr_assert_eq(commit_one(&a, "1-1"), 0, "%s", a.err);

	int r = he_stream_redis_take_over(&b, off, sizeof(off));
	cr_assert_eq(r, HE_EFENCED, "epoch 5 of another holder: %s",
		     he_strerror(r));
	cr_assert_eq(b.fence_seen, 5);
	r = commit_one(&b, "2-1");
	cr_assert_eq(r, HE_EFENCED, "got %s", he_strerror(r));
	cr_assert_eq(th_xlen(redis, cfg.lobby_stream), 1, "b published");
	/* the holder itself takes over again (a resync) and commits */
	cr_assert_eq(he_stream_redis_take_over(&a, off, sizeof(off)), 0, "%s",
		     a.err);
	cr_assert_eq(commit_one(&a, "2-1"), 0, "%s", a.err);

	/* what a standby reads first: it then asks for an epoch above it */
	unsigned long long fence = 0;
	cr_assert_eq(he_stream_redis_read_fence(&b, &fence), 0, "%s", b.err);
	cr_assert_eq(fence, 5);
	he_stream_redis_set_epoch(&b, fence + 1);
	cr_assert_eq(he_stream_redis_take_over(&b, off, sizeof(off)), 0, "%s",
		     b.err);
	cr_assert_str_eq(off, "2-1");
	r = commit_one(&a, "3-1");
	cr_assert_eq(r, HE_EFENCED, "the older epoch after a newer one: %s",
		     he_strerror(r));
	he_stream_redis_close(&a);
	he_stream_redis_close(&b);
}

Test(redis_stream, a_commit_after_the_saved_offset_moved_is_refused)
{
	he_config cfg = adapter_config(th_unique("rs"));
	he_stream_redis s;
	char off[48];
	leader_of_fresh_keys(&s, &cfg);
	cr_assert_eq(commit_one(&s, "5-1"), 0, "%s", s.err);
	/* a failover lost the last write: the offset went back */
	freeReplyObject(th_cmd(redis, "SET", cfg.offset_key, "3-1", NULL));
	int r = commit_one(&s, "6-1");
	cr_assert_eq(r, HE_EMOVED, "got %s (%s)", he_strerror(r), s.err);
	cr_assert(strstr(s.err, "3-1"), "error names the saved offset: %s",
		  s.err);
	cr_assert_eq(th_xlen(redis, cfg.lobby_stream), 1);
	cr_assert_eq(he_stream_redis_take_over(&s, off, sizeof(off)), 0);
	cr_assert_str_eq(off, "3-1");
	cr_assert_eq(commit_one(&s, "4-1"), 0, "%s", s.err);
	he_stream_redis_close(&s);
}

Test(redis_stream, a_flushed_script_cache_is_reloaded)
{
	he_config cfg = adapter_config(th_unique("rs"));
	he_stream_redis s;
	leader_of_fresh_keys(&s, &cfg);
	cr_assert_eq(commit_one(&s, "1-1"), 0, "%s", s.err);
	freeReplyObject(th_cmd(redis, "SCRIPT", "FLUSH", NULL));
	cr_assert_eq(commit_one(&s, "2-1"), 0, "%s", s.err);
	char *o = th_get(redis, cfg.offset_key);
	cr_assert_str_eq(o, "2-1");
	free(o);
	he_stream_redis_close(&s);
}

/* Each XREAD carries Redis's TIME in its round trip, errors included. */
Test(redis_stream, each_read_is_dated_by_redis_time)
{
	he_config cfg = adapter_config(th_unique("rs"));
	char *id = th_xadd(redis, cfg.stream, "game_id", "g1", "event_type",
			   "container_oom", NULL);
	he_stream_redis s;
	he_stream_redis_init(&s, rs_services(rs), &cfg);
	const he_stream_entry *e;
	size_t n;
	cr_assert_eq(s.time_us, 0, "not dated before a read");
	cr_assert_eq(he_stream_redis_read(&s, "0-0", &e, &n), 0, "%s", s.err);
	cr_assert_eq(n, 1);
	redisReply *t = redisCommand(redis, "TIME");
	cr_assert(t && t->type == REDIS_REPLY_ARRAY && t->elements == 2);
	unsigned long long now_ms =
	    strtoull(t->element[0]->str, NULL, 10) * 1000;
	freeReplyObject(t);
	unsigned long long ms = strtoull(id, NULL, 10);
	cr_expect_geq(s.time_us / 1000, ms, "TIME after the entry was added");
	cr_expect_leq(s.time_us / 1000, now_ms + 1000, "and not ahead");
	cr_expect_gt(s.time_at_ns, 0);

	/* a refused XREAD still has its TIME read: the next command is in
	 * step with its own reply */
	snprintf(cfg.stream, sizeof(cfg.stream), "%s", cfg.offset_key);
	freeReplyObject(
	    th_cmd(redis, "SET", cfg.offset_key, "not a stream", NULL));
	cr_expect_lt(he_stream_redis_read(&s, "0-0", &e, &n), 0);
	cr_expect_eq(he_stream_redis_ping(&s), 0, "%s", s.err);
	he_stream_redis_close(&s);
	cr_assert_eq(rs_leases_out(rs), 0);
	free(id);
}
