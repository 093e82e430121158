/*
 * Suite integration: entries PostgreSQL refuses (a data error, SQLSTATE
 * classes 22 and 23) are isolated, dead-lettered with the database's
 * message and the rest of the batch applies, in order; other errors still
 * fail the batch. A trigger the test installs refuses chosen game ids.
 */
#include "adapter_fixture.h"
#include "core.h"
#include "record_store_pg.h"
#include "redis_pg.h"
#include "stream_redis.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The refusing trigger: RAISE with the SQLSTATE listed for the game. */
static const char install_sql[] =
    "CREATE TABLE IF NOT EXISTS he_test_refusals ("
    "  game_id text PRIMARY KEY, sqlstate text NOT NULL);"
    "CREATE OR REPLACE FUNCTION he_test_refuse() RETURNS trigger "
    "LANGUAGE plpgsql AS $f$ DECLARE st text; BEGIN "
    "  SELECT r.sqlstate INTO st FROM he_test_refusals r "
    "   WHERE r.game_id = NEW.game_id;"
    "  IF FOUND THEN RAISE EXCEPTION 'game % refused by the test', "
    "    NEW.game_id USING ERRCODE = st, DETAIL = 'detail not shown'; "
    "  END IF; RETURN NEW; END $f$;"
    "CREATE OR REPLACE TRIGGER he_test_refuse BEFORE UPDATE ON "
    "runtime_records FOR EACH ROW EXECUTE FUNCTION he_test_refuse();";

static void setup(void)
{
	adapter_setup();
	PGresult *r = PQexec(pg, install_sql);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s",
		     PQerrorMessage(pg));
	PQclear(r);
}

static void teardown(void)
{
	if (pg != NULL)
		PQclear(PQexec(pg, "DROP TRIGGER IF EXISTS he_test_refuse "
				   "ON runtime_records"));
	adapter_teardown();
}

TestSuite(poison, .init = setup, .fini = teardown);

enum { GAMES = 40, N = GAMES + 3 };

typedef struct batch {
	he_stream_entry e[N];
	const char *items[N][4];
	size_t lens[N][4];
	char ids[N][16];
	char games[GAMES][96];
	size_t n;
} batch;

static void add(batch *b, int game, const char *type)
{
	size_t i = b->n++;
	snprintf(b->ids[i], sizeof(b->ids[i]), "7-%zu", i);
	const char *it[4] = {"game_id", b->games[game], "event_type", type};
	for (int k = 0; k < 4; k++) {
		b->items[i][k] = it[k];
		b->lens[i][k] = strlen(it[k]);
	}
	b->e[i] = (he_stream_entry){b->ids[i], 4, b->items[i], b->lens[i]};
}

static void refuse(const char *game, const char *state)
{
	th_sql(pg, "INSERT INTO he_test_refusals VALUES ($1, $2)", game, state,
	       NULL);
}

Test(poison, refused_entries_are_dead_lettered_and_the_rest_applies)
{
	static batch b;
	const char *u = th_unique("poison");
	for (int i = 0; i < GAMES; i++) {
		snprintf(b.games[i], sizeof(b.games[i]), "%s:g%02d", u, i);
		th_insert_game(pg, b.games[i], "running", i);
	}
	refuse(b.games[7], "22023");
	refuse(b.games[23], "23514");
	/* every game's oom, g07 twice, then g05 recovers after its oom */
	for (int i = 0; i < GAMES; i++) {
		add(&b, i, "container_oom");
		if (i == 7)
			add(&b, 7, "probe_failed");
	}
	add(&b, 5, "probe_recovered");
	add(&b, 6, "probe_failed");
	cr_assert_eq(b.n, N);

	he_record_store_pg st;
	he_record_store_pg_init(&st, rs_services(rs));
	/* every apply of the split carries this holder's epoch */
	unsigned long long epoch = th_take_lease(pg, u, "poison");
	he_record_store_pg_set_fence(&st, u, epoch);
	he_record_store_pg_set_token(&st, "poison");
	he_record_store store = he_record_store_pg_port(&st);
	he_core *core;
	cr_assert_eq(he_core_new(NULL, &core), 0);
	he_outbox box = {0};
	he_entry_report rep[N];
	int r = he_core_process(core, b.e, N, &store, &box, rep);
	cr_assert_eq(r, 0, "%s: %s", he_strerror(r),
		     he_record_store_pg_err(&st));

	cr_assert_eq(box.ndead, 3, "g07 twice and g23");
	cr_assert_str_eq(box.dead[0].entry->id, b.ids[7]);
	cr_assert_str_eq(box.dead[1].entry->id, b.ids[8]);
	cr_assert_str_eq(box.dead[2].entry->id, b.ids[24]);
	char want[256];
	snprintf(want, sizeof(want),
		 "refused by the database: SQLSTATE 22023: game %s refused by "
		 "the test",
		 b.games[7]);
	cr_assert_str_eq(box.dead[0].reason, want);
	cr_assert(strstr(box.dead[2].reason, "SQLSTATE 23514: game "), "%s",
		  box.dead[2].reason);
	cr_assert_eq(rep[N - 2].outcome, HE_ENTRY_TRANSITIONED,
		     "g05's recovery saw its oom");
	for (int i = 0; i < GAMES; i++) {
		char *row = th_row(pg, b.games[i]);
		const char *s = i == 7 || i == 23 ? "running/"
				: i == 5	  ? "running/healthy/"
						  : "engine_unreachable/";
		cr_assert(strncmp(row, s, strlen(s)) == 0, "%s: %s", b.games[i],
			  row);
		free(row);
	}

	/* the dead letters reach Redis, the offset moves past the batch */
	he_config cfg = adapter_config(u);
	cfg.batch = 64;
	he_stream_redis s;
	he_stream_redis_init(&s, rs_services(rs), &cfg);
	he_stream_redis_set_epoch(&s, epoch);
	he_stream_port port = he_stream_redis_port(&s);
	cr_assert_eq(port.commit(port.ctx, &box), 0, "%s", s.err);
	redisReply *d = th_xrange(redis, cfg.dead_stream);
	cr_assert_eq(d->elements, 3);
	cr_assert_str_eq(th_field(d->element[0], "reason"), want);
	cr_assert_str_eq(th_field(d->element[0], "source_id"), b.ids[7]);
	cr_assert_str_eq(th_field(d->element[0], "game_id"), b.games[7]);
	cr_assert_null(strstr(th_field(d->element[0], "reason"), "detail"));
	freeReplyObject(d);
	char *off = th_get(redis, cfg.offset_key);
	cr_assert_str_eq(off, b.ids[N - 1]);
	free(off);
	cr_assert_eq(th_xlen(redis, cfg.lobby_stream), N - 3);
	he_stream_redis_close(&s);

	/* an error of another class is no refusal: the batch fails whole
	 * (the same batch again: forget that it applied, or the applied
	 * position refuses it first) */
	he_core_free(core);
	cr_assert_eq(he_core_new(NULL, &core), 0);
	th_sql(pg, "DELETE FROM health_events_progress WHERE name = $1", u,
	       NULL);
	refuse(b.games[30], "40001");
	he_outbox_clear(&box);
	r = he_core_process(core, b.e, N, &store, &box, rep);
	cr_assert_eq(r, HE_EIO, "%s", he_strerror(r));
	cr_assert_eq(box.ndead, 0);
	cr_assert_eq(box.nsnapshots, 0);

	/* fenced mid-split: fenced, never a refusal */
	th_sql(pg, "DELETE FROM he_test_refusals WHERE game_id = $1",
	       b.games[30], NULL);
	th_sql(pg,
	       "UPDATE health_events_leader SET expires_at = now() - "
	       "interval '1 hour' WHERE name = $1",
	       u, NULL);
	cr_assert_gt(th_take_lease(pg, u, "newer"), epoch);
	r = he_core_process(core, b.e, N, &store, &box, rep);
	cr_assert_eq(r, HE_EFENCED, "%s", he_strerror(r));
	cr_assert_eq(box.ndead, 0);

	he_outbox_free(&box);
	he_core_free(core);
	he_record_store_pg_close(&st);
	cr_assert_eq(rs_leases_out(rs), 0);
}
