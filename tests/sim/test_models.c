/*
 * Suite models: the simulation's models of the SQL functions and Lua
 * scripts (sim_model.c) against the real ones, on the servers of
 * scripts/services, through the same adapters production uses. Seeded
 * sequences of calls go to both; every answer and the state after each
 * call must agree, so a change to a script or to its model shows here
 * before the simulation checks a protocol the servers do not run.
 *
 * Tokens included (DESIGN §10, schema/005): the fence holds epoch and
 * token, the apply names both; holders t1..t3 of the model are tokens
 * 1..3.
 */
#include "adapter_fixture.h"
#include "record_store_pg.h"
#include "redis_pg.h"
#include "sim_model.h"
#include "stream_redis.h"

#include "he_outbox.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(models, .init = adapter_setup, .fini = adapter_teardown);

static unsigned long long rng;

/* The holders' tokens: toks[k] is the model's token k. */
static const char *const toks[] = {"", "t1", "t2", "t3"};

static unsigned rnd(unsigned n)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((rng >> 33) % n);
}

/* ---- PostgreSQL ---------------------------------------------------- */

/* The model's clock: leases of a minute never lapse by themselves within
 * a test; LAPSE makes them lapse in both. */
#define T0	 (1000000ull * 1000000000ull)
#define LEASE_MS 60000

static const char *const cas_from[SIM_KINDS] = {NULL, "engine_unreachable",
						"running", "running", NULL};
static const char *const cas_to[SIM_KINDS] = {
    NULL, "running", "engine_unreachable", "engine_unreachable", NULL};
static const char *const status_name[] = {"running", "engine_unreachable"};

static uint64_t real_lease(const char *name, unsigned k, uint64_t min)
{
	char holder[16], token[16], ms[16], mn[24];
	snprintf(holder, sizeof(holder), "h%u", k);
	snprintf(token, sizeof(token), "t%u", k);
	snprintf(ms, sizeof(ms), "%u", LEASE_MS);
	snprintf(mn, sizeof(mn), "%llu", (unsigned long long)min);
	return th_lease(pg, name, holder, token, ms, mn);
}

static bool real_release(const char *name, unsigned k, uint64_t epoch)
{
	char token[16], e[24];
	snprintf(token, sizeof(token), "t%u", k);
	snprintf(e, sizeof(e), "%llu", (unsigned long long)epoch);
	const char *p[] = {name, token, e};
	PGresult *res = PQexecParams(
	    pg, "SELECT health_events_lease_release($1, $2, $3::bigint)", 3,
	    NULL, p, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s",
		     PQresultErrorMessage(res));
	bool r = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return r;
}

Test(models, postgres_functions_answer_as_their_model)
{
	for (unsigned seed = 1; seed <= 12; seed++) {
		rng = seed;
		const char *name = th_unique("models");
		char games[SIM_GAMES][160];
		for (int g = 0; g < SIM_GAMES; g++) {
			snprintf(games[g], sizeof(games[g]), "%s:g%d", name, g);
			th_insert_game(pg, games[g], "running", 0);
		}
		sim_pg m = {0};
		he_record_store_pg st;
		he_record_store_pg_init(&st, rs_services(rs));
		he_record_store port = he_record_store_pg_port(&st);
		unsigned long long next_id = 1;
		for (int step = 0; step < 80; step++) {
			unsigned op = rnd(6), k = 1 + rnd(3);
			if (op == 0 || op == 1) { /* ask (often), any holder */
				uint64_t min = rnd(2) ? 0 : m.epoch + rnd(3);
				uint64_t want, left;
				sim_pg_lease(&m, T0, k, LEASE_MS, min, &want,
					     &left);
				uint64_t got = real_lease(name, k, min);
				cr_assert_eq(got, want,
					     "seed %u step %d: lease for t%u "
					     "(min %llu): %llu, model %llu",
					     seed, step, k,
					     (unsigned long long)min,
					     (unsigned long long)got,
					     (unsigned long long)want);
			} else if (op == 2) { /* release, maybe a stale one */
				uint64_t e =
				    m.epoch > 1 ? m.epoch - rnd(2) : m.epoch;
				bool want = sim_pg_release(&m, T0, k, e);
				cr_assert_eq(real_release(name, k, e), want,
					     "seed %u step %d: release", seed,
					     step);
			} else if (op == 3) { /* the lease lapses */
				if (m.lease)
					m.expires = T0 - 1;
				th_sql(pg,
				       "UPDATE health_events_leader SET "
				       "expires_at = now() - interval '1 hour' "
				       "WHERE name = $1",
				       name, NULL);
			} else { /* an apply, as a holder or not */
				uint64_t epoch = m.epoch + rnd(3);
				if (epoch > 1 && rnd(2))
					epoch -= 2; /* an older holder */
				he_stream_id after = m.applied;
				if (rnd(4) == 0)
					after.ms += 1 + rnd(2);
				sim_entry e[3];
				unsigned n = rnd(4);
				he_mutation ops[3];
				/* ids after both `after` and every id used */
				unsigned long long base = after.ms >= next_id
							      ? after.ms
							      : next_id - 1;
				he_stream_id last = {base + (n ? n : 1), 0};
				for (unsigned i = 0; i < n; i++) {
					e[i].game = (uint8_t)rnd(SIM_GAMES);
					e[i].kind = (uint8_t)rnd(SIM_KINDS);
					e[i].id =
					    (he_stream_id){base + 1 + i, 0};
					uint8_t kind = e[i].kind;
					ops[i] = (he_mutation){
					    games[e[i].game],
					    strlen(games[e[i].game]),
					    sim_health_name[kind == 0	? 1
							    : kind == 1 ? 1
									: kind],
					    cas_from[kind], cas_to[kind]};
				}
				next_id = last.ms + 1;
				sim_row rows[3];
				int want =
				    sim_pg_apply(&m, true, epoch, k, after,
						 last, e, n, rows);
				char a[48], l[48];
				he_stream_id_format(a, sizeof(a), after);
				he_stream_id_format(l, sizeof(l), last);
				he_apply_span span = {.after = a, .last = l};
				he_mutation_result res[3];
				he_record_store_pg_set_fence(&st, name, epoch);
				he_record_store_pg_set_token(&st, toks[k]);
				int got =
				    port.apply(port.ctx, &span, ops, n, res);
				cr_assert_eq(
				    got, want,
				    "seed %u step %d: apply epoch "
				    "%llu after %s to %s: %s, model "
				    "%s (%s)",
				    seed, step, (unsigned long long)epoch, a, l,
				    he_strerror(got), he_strerror(want),
				    he_record_store_pg_err(&st));
				for (unsigned i = 0; got == 0 && i < n; i++) {
					cr_assert_str_eq(
					    res[i].row.status,
					    status_name[rows[i].status],
					    "seed %u step %d entry %u", seed,
					    step, i);
					cr_assert_str_eq(
					    res[i].row.engine_health,
					    sim_health_name[rows[i].health],
					    "seed %u step %d entry %u", seed,
					    step, i);
				}
			}
			/* and the position, after every step */
			char pos[48];
			he_stream_id want_pos;
			int wp = sim_pg_position(&m, &want_pos);
			int gp = port.position(port.ctx, pos, sizeof(pos));
			cr_assert_eq(gp, wp, "seed %u step %d: position", seed,
				     step);
			if (wp == 0) {
				char w[48];
				he_stream_id_format(w, sizeof(w), want_pos);
				cr_assert_str_eq(pos, w, "seed %u step %d",
						 seed, step);
			}
		}
		he_record_store_pg_close(&st);
	}
}

/* ---- Redis --------------------------------------------------------- */

static he_config redis_config(void)
{
	he_config cfg = adapter_config(th_unique("models"));
	cfg.lease_ms = 3000;
	return cfg;
}

/* What Redis holds, compared with the model. */
static void same_state(const he_config *cfg, const sim_redis *m, unsigned seed,
		       int step)
{
	char *fence = th_get(redis, cfg->fence_key), *holder = NULL;
	unsigned long long f = fence ? strtoull(fence, &holder, 10) : 0;
	cr_assert_eq(f, m->fence, "seed %u step %d: fence %llu, model %llu",
		     seed, step, f, (unsigned long long)m->fence);
	cr_assert_str_eq(holder && *holder ? holder + 1 : "",
			 toks[m->fence_token], "seed %u step %d: fence holder",
			 seed, step);
	free(fence);
	char *off = th_get(redis, cfg->offset_key), want[48] = "";
	if (m->has_offset)
		he_stream_id_format(want, sizeof(want), m->offset);
	cr_assert_str_eq(off ? off : "", want, "seed %u step %d: offset", seed,
			 step);
	free(off);
	cr_assert_eq(th_xlen(redis, cfg->lobby_stream), m->published,
		     "seed %u step %d: lobby", seed, step);
}

Test(models, redis_scripts_answer_as_their_model)
{
	for (unsigned seed = 1; seed <= 12; seed++) {
		rng = seed;
		he_config cfg = redis_config();
		he_stream_redis s;
		he_stream_redis_init(&s, rs_services(rs), &cfg);
		he_stream_port port = he_stream_redis_port(&s);
		sim_redis m = {0};
		/* what the adapter expects the saved offset to be */
		bool has_expect = false;
		he_stream_id expect = {0, 0};
		he_outbox box = {0};
		for (int step = 0; step < 80; step++) {
			unsigned op = rnd(8);
			uint64_t epoch = m.fence + rnd(4);
			epoch = epoch ? epoch - 1 : 0;
			if (epoch == 0)
				epoch = 1;
			he_stream_redis_set_epoch(&s, epoch);
			unsigned k = 1 + rnd(3);
			he_stream_redis_set_token(&s, toks[k]);
			if (op < 2) { /* take over */
				he_stream_id saved = {0, 0};
				uint64_t fence = 0;
				int want = sim_redis_take_over(
				    &m, true, epoch, k, &saved, &fence);
				char out[48];
				int got = he_stream_redis_take_over(
				    &s, out, sizeof(out));
				cr_assert_eq(got, want,
					     "seed %u step %d: take-over: %s, "
					     "model %s (%s)",
					     seed, step, he_strerror(got),
					     he_strerror(want), s.err);
				if (want == HE_EFENCED)
					cr_assert_eq(s.fence_seen, fence);
				if (want == HE_OK || want == HE_ENOENT) {
					has_expect = want == HE_OK;
					expect = saved;
				}
			} else if (op < 6) { /* commit, maybe below */
				/* at, after or (publishing again, Redis
				 * ahead) before the offset it follows */
				unsigned long long at = expect.ms + rnd(5);
				he_stream_id last = {at > 2 ? at - 2 : 1, 0};
				sim_pub pubs[2];
				unsigned n = rnd(3);
				he_outbox_clear(&box);
				char src[48];
				he_stream_id_format(src, sizeof(src), last);
				for (unsigned i = 0; i < n; i++) {
					pubs[i] = (sim_pub){
					    (uint8_t)i, {0, 1}, last, 0};
					cr_assert_eq(he_outbox_add_snapshot(
							 &box, "g", 1, src,
							 strdup("{}"), 2),
						     0);
				}
				cr_assert_eq(he_outbox_set_last_id(&box, src),
					     0);
				uint64_t fence = 0;
				bool has_saved = false;
				he_stream_id saved = {0, 0};
				int want = sim_redis_commit(
				    &m, true, epoch, k, has_expect, expect,
				    last, pubs, n, &fence, &has_saved, &saved);
				/* the adapter takes a refusal naming its own
				 * commit's offset for a lost reply: landed */
				if (want == HE_EMOVED && has_saved &&
				    he_stream_id_cmp(saved, last) == 0)
					want = HE_OK;
				int got = port.commit(port.ctx, &box);
				cr_assert_eq(
				    got, want,
				    "seed %u step %d: commit epoch "
				    "%llu to %s: %s, model %s (%s)",
				    seed, step, (unsigned long long)epoch, src,
				    he_strerror(got), he_strerror(want), s.err);
				if (got == HE_OK &&
				    (!has_expect ||
				     he_stream_id_cmp(last, expect) > 0)) {
					has_expect = true;
					expect = last;
				}
			} else if (op == 6) { /* a failover lost the offset */
				if (rnd(2)) {
					freeReplyObject(th_cmd(redis, "DEL",
							       cfg.offset_key,
							       NULL));
					m.has_offset = false;
				} else {
					char v[48];
					m.has_offset = true;
					m.offset =
					    (he_stream_id){1 + rnd(9), 0};
					he_stream_id_format(v, sizeof(v),
							    m.offset);
					freeReplyObject(th_cmd(redis, "SET",
							       cfg.offset_key,
							       v, NULL));
				}
			} else if (m.fence > 1) { /* ... or the fence's raise */
				char v[24];
				m.fence--;
				m.fence_token = k;
				snprintf(v, sizeof(v), "%llu %s",
					 (unsigned long long)m.fence, toks[k]);
				freeReplyObject(th_cmd(redis, "SET",
						       cfg.fence_key, v, NULL));
			}
			same_state(&cfg, &m, seed, step);
		}
		he_outbox_free(&box);
		he_stream_redis_close(&s);
	}
}
