/*
 * test_decisions.c -- one test per decision of the seed (D1-D5) and the
 * batch-level guarantees of DESIGN §6, through he_core_process with the
 * in-memory store.
 */
#include "unit.h"

#include "he_events.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

TestSuite(decisions, .init = fx_setup, .fini = fx_teardown);

/* Rows g1..gN, running with no summary yet, at turn 1. */
static void put_running(int n)
{
	char game[16];

	for (int i = 1; i <= n; i++) {
		snprintf(game, sizeof(game), "g%d", i);
		mem_store_put(fx.ms, game, "running", "", 1);
	}
}

/*
 * Runs a batch of ids base-0, base-1, ... of the (game_id, event_type)
 * pairs that follow, up to a NULL, and asserts the core took it: the
 * first step of most tests here, and then of each later batch.
 */
static void __attribute__((sentinel)) run_entries(batch *b, unsigned base, ...)
{
	va_list ap;
	const char *game;

	b_init(b, base);
	va_start(ap, base);
	while ((game = va_arg(ap, const char *)) != NULL)
		b_add(b, game, va_arg(ap, const char *));
	va_end(ap);
	cr_assert_eq(fx_run(b), 0);
}

/* Snapshot i of the outbox is g1's row with these values. */
static void expect_g1_snapshot(size_t i, const char *status,
			       const char *summary, int turn)
{
	char want[512];

	cr_assert_str_eq(fx_payload(i), expect_json(want, sizeof(want), "g1",
						    status, summary, turn));
}

/* ---- D1: the seven event types ----------------------------------------- */

struct d1_case {
	const char *type;
	const char *status_before;
	const char *summary;
	const char *status_after;
	he_entry_outcome outcome;
};

/* A transition from one status to another, or an outcome that keeps it. */
#define MOVES(type, from, summary, to)                                         \
	{                                                                      \
		type, from, summary, to, HE_ENTRY_TRANSITIONED                 \
	}
#define KEEPS(type, status, summary, outcome)                                  \
	{                                                                      \
		type, status, summary, status, outcome                         \
	}

static const struct d1_case d1_each_type_cases[] = {
    /* container_started never transitions, whatever the status */
    KEEPS("container_started", "running", "healthy", HE_ENTRY_HEALTH_ONLY),
    KEEPS("container_started", "engine_unreachable", "healthy",
	  HE_ENTRY_HEALTH_ONLY),
    KEEPS("container_started", "starting", "healthy", HE_ENTRY_HEALTH_ONLY),
    /* probe_recovered recovers engine_unreachable */
    MOVES("probe_recovered", "engine_unreachable", "healthy", "running"),
    KEEPS("probe_recovered", "running", "healthy", HE_ENTRY_CONFLICT),
    MOVES("container_exited", "running", "exited", "engine_unreachable"),
    MOVES("container_oom", "running", "oom", "engine_unreachable"),
    MOVES("container_disappeared", "running", "disappeared",
	  "engine_unreachable"),
    KEEPS("inspect_unhealthy", "running", "unhealthy", HE_ENTRY_HEALTH_ONLY),
    KEEPS("inspect_unhealthy", "engine_unreachable", "unhealthy",
	  HE_ENTRY_HEALTH_ONLY),
    KEEPS("probe_failed", "running", "probe_failed", HE_ENTRY_HEALTH_ONLY),
};

ParameterizedTestParameters(decisions, d1_each_type)
{
	INDEX_PARAMS(d1_each_type_cases);
}

ParameterizedTest(size_t *ip, decisions, d1_each_type)
{
	const struct d1_case *c = &d1_each_type_cases[*ip];
	batch b;
	he_row row;

	cr_assert_eq(mem_store_put(fx.ms, "g1", c->status_before, "", 3), 0);
	run_entries(&b, 100, "g1", c->type, NULL);

	cr_assert(mem_store_get(fx.ms, "g1", &row));
	cr_assert_str_eq(row.engine_health, c->summary, "%s", c->type);
	cr_assert_str_eq(row.status, c->status_after, "%s", c->type);
	cr_assert_eq(fx.reps[0].outcome, c->outcome, "%s: %s", c->type,
		     he_entry_outcome_name(fx.reps[0].outcome));
	cr_assert_str_eq(fx.reps[0].event_type, c->type);
	/* First summary for the game: always published. */
	cr_assert(fx.reps[0].published);
	cr_assert_eq(fx.box.nsnapshots, 1);
	expect_g1_snapshot(0, c->status_after, c->summary, 3);
	cr_assert_str_eq(fx.box.snapshots[0].source_id, "100-0");
	cr_assert_str_eq(fx.box.last_id, "100-0");
}

/* ---- D2: lost CAS and invalid transition fall back, at debug ----------- */

Test(decisions, d2_lost_cas_falls_back_health_only_at_debug)
{
	batch b;
	he_row row;

	mem_store_put(fx.ms, "g1", "generation_in_progress", "healthy", 9);
	run_entries(&b, 100, "g1", "container_oom", NULL);

	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_CONFLICT);
	cr_assert(mem_store_get(fx.ms, "g1", &row));
	cr_assert_str_eq(row.status, "generation_in_progress");
	cr_assert_str_eq(row.engine_health, "oom");
	cr_assert_eq(mock_host_log_count(fx.mh, APPHOST_LOG_DEBUG, "CAS lost"),
		     1);
	cr_assert_eq(mock_host_log_max_level(fx.mh, "CAS lost"),
		     APPHOST_LOG_DEBUG);
	cr_assert_eq(mock_host_log_count(fx.mh, APPHOST_LOG_INFO, NULL), 0,
		     "nothing above debug");
	/* The summary changed: operators see "last known: oom". */
	cr_assert_eq(fx.box.nsnapshots, 1);
	cr_assert_str_eq(
	    fx_payload(0),
	    "{\"game_id\":\"g1\",\"runtime_status\":"
	    "\"generation_in_progress\",\"engine_health_summary\":"
	    "\"oom\",\"current_turn\":9,\"player_turn_stats\":null}");
}

static bool refuse_all(const char *from, const char *to)
{
	return false;
}

Test(decisions, d2_invalid_transition_falls_back_health_only_at_debug)
{
	batch b;
	he_row row;
	size_t nops;

	he_core_set_transition_fn(fx.core, refuse_all);
	mem_store_put(fx.ms, "g1", "running", "", 1);
	run_entries(&b, 100, "g1", "container_oom", NULL);

	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_INVALID_TRANSITION);
	/* The store was asked for a health-only update, not a CAS. */
	const he_mutation *ops = mem_store_last_ops(fx.ms, &nops);
	cr_assert_eq(nops, 1);
	cr_assert_null(ops[0].to);
	cr_assert_null(ops[0].expected);
	cr_assert_str_eq(ops[0].summary, "oom");
	cr_assert(mem_store_get(fx.ms, "g1", &row));
	cr_assert_str_eq(row.status, "running");
	cr_assert_str_eq(row.engine_health, "oom");
	cr_assert_eq(mock_host_log_count(fx.mh, APPHOST_LOG_DEBUG,
					 "transition not allowed"),
		     1);
	cr_assert_eq(mock_host_log_count(fx.mh, APPHOST_LOG_INFO, NULL), 0);
	cr_assert(fx.reps[0].published);

	/* Restoring the default table makes it a CAS again. */
	he_core_set_transition_fn(fx.core, NULL);
	run_entries(&b, 101, "g1", "container_exited", NULL);
	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_TRANSITIONED);
}

Test(decisions, d2_debug_disabled_logs_nothing)
{
	batch b;

	mock_host_set_log_level(fx.mh, APPHOST_LOG_INFO);
	mem_store_put(fx.ms, "g1", "stopped", "", 1);
	run_entries(&b, 100, "g1", "container_exited", NULL);
	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_CONFLICT);
	cr_assert_eq(mock_host_log_lines(fx.mh), 0);
}

/* ---- D3: health-only update in stopped and finished --------------------- */

struct d3_case {
	const char *status;
	const char *type;
	he_entry_outcome outcome;
};

static const struct d3_case d3_health_only_in_stopped_finished_cases[] = {
    {"stopped", "inspect_unhealthy", HE_ENTRY_HEALTH_ONLY},
    {"stopped", "probe_failed", HE_ENTRY_HEALTH_ONLY},
    {"stopped", "container_oom", HE_ENTRY_CONFLICT},
    {"finished", "inspect_unhealthy", HE_ENTRY_HEALTH_ONLY},
    {"finished", "container_exited", HE_ENTRY_CONFLICT},
    {"finished", "probe_recovered", HE_ENTRY_CONFLICT},
};

ParameterizedTestParameters(decisions, d3_health_only_in_stopped_finished)
{
	INDEX_PARAMS(d3_health_only_in_stopped_finished_cases);
}

ParameterizedTest(size_t *ip, decisions, d3_health_only_in_stopped_finished)
{
	const struct d3_case *c =
	    &d3_health_only_in_stopped_finished_cases[*ip];
	batch b;
	he_row row;
	const he_event_type *t = he_event_lookup(c->type, strlen(c->type));

	cr_assert_not_null(t);
	mem_store_put(fx.ms, "g1", c->status, "old", 4);
	run_entries(&b, 100, "g1", c->type, NULL);
	cr_assert(mem_store_get(fx.ms, "g1", &row));
	cr_assert_str_eq(row.status, c->status);
	cr_assert_str_eq(row.engine_health, t->summary);
	cr_assert_eq(fx.reps[0].outcome, c->outcome);
	cr_assert_eq(mock_host_log_count(fx.mh, APPHOST_LOG_INFO, NULL), 0);
}

/* ---- D4: publish on transition / change, suppress repeats --------------- */

Test(decisions, d4_publish_transition_change_suppress_reset)
{
	batch b;

	mem_store_put(fx.ms, "g1", "running", "", 5);

	/* first summary: published */
	run_entries(&b, 100, "g1", "probe_failed", NULL);
	cr_assert_eq(fx.box.nsnapshots, 1);

	/* same summary again: suppressed */
	run_entries(&b, 101, "g1", "probe_failed", NULL);
	cr_assert_eq(fx.box.nsnapshots, 0);
	cr_assert_not(fx.reps[0].published);
	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_HEALTH_ONLY);

	/* changed summary: published */
	run_entries(&b, 102, "g1", "inspect_unhealthy", NULL);
	cr_assert_eq(fx.box.nsnapshots, 1);

	/* after a reset: exactly one extra publish, then suppressed again */
	he_core_reset(fx.core);
	cr_assert_eq(he_core_cache_size(fx.core), 0);
	run_entries(&b, 103, "g1", "inspect_unhealthy", "g1",
		    "inspect_unhealthy", NULL);
	cr_assert_eq(fx.box.nsnapshots, 1);
	cr_assert(fx.reps[0].published);
	cr_assert_not(fx.reps[1].published);
	run_entries(&b, 104, "g1", "inspect_unhealthy", NULL);
	cr_assert_eq(fx.box.nsnapshots, 0);
}

Test(decisions, d4_transition_publishes_even_with_same_summary)
{
	batch b;

	/* oom published while a turn was generating (CAS lost) */
	mem_store_put(fx.ms, "g1", "generation_in_progress", "", 5);
	run_entries(&b, 100, "g1", "container_oom", NULL);
	cr_assert_eq(fx.box.nsnapshots, 1);

	/* the turn ends; a second oom now takes the CAS: same summary, but
	 * the status changed, so it is published */
	mem_store_set_status(fx.ms, "g1", "running");
	run_entries(&b, 101, "g1", "container_oom", NULL);
	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_TRANSITIONED);
	cr_assert_eq(fx.box.nsnapshots, 1);
	expect_g1_snapshot(0, "engine_unreachable", "oom", 5);
}

Test(decisions, d4_games_are_independent)
{
	batch b;

	put_running(2);
	run_entries(&b, 100, "g1", "probe_failed", "g2", "probe_failed", "g1",
		    "probe_failed", NULL);
	cr_assert(fx.reps[0].published);
	cr_assert(fx.reps[1].published);
	cr_assert_not(fx.reps[2].published);
	cr_assert_eq(he_core_cache_size(fx.core), 2);
}

/* ---- D5: the snapshot is the row as stored after the mutation ----------- */

static void concurrent_stop(mem_store *s, const he_mutation *op, long index,
			    void *ud)
{
	/* another flow wins between the CAS check and the fallback */
	mem_store_put(s, "g1", "stopped", "whatever", 42);
}

static void bump_turn(mem_store *s, const he_mutation *op, long index, void *ud)
{
	he_row r;
	if (mem_store_get(s, "g1", &r))
		mem_store_put(s, "g1", r.status, r.engine_health,
			      r.current_turn + 1);
}

/* A row changed by another flow at some point of the apply. */
struct d5_case {
	const char *status;
	int turn;
	mem_store_hook on_conflict, before_apply;
	const char *type;
	he_entry_outcome outcome;
	const char *snap_status, *snap_summary;
	int snap_turn;
};

static const struct d5_case d5_snapshot_shows_the_stored_row_cases[] = {
    /* between the CAS check and the fallback */
    {"generation_in_progress", 7, concurrent_stop, NULL, "container_oom",
     HE_ENTRY_CONFLICT, "stopped", "oom", 42},
    /* before the apply */
    {"running", 7, NULL, bump_turn, "container_exited", HE_ENTRY_TRANSITIONED,
     "engine_unreachable", "exited", 8},
};

ParameterizedTestParameters(decisions, d5_snapshot_shows_the_stored_row)
{
	INDEX_PARAMS(d5_snapshot_shows_the_stored_row_cases);
}

ParameterizedTest(size_t *ip, decisions, d5_snapshot_shows_the_stored_row)
{
	const struct d5_case *c = &d5_snapshot_shows_the_stored_row_cases[*ip];
	batch b;

	mem_store_put(fx.ms, "g1", c->status, "", c->turn);
	mem_store_set_on_conflict(fx.ms, c->on_conflict, NULL);
	mem_store_set_before_apply(fx.ms, c->before_apply, NULL);
	run_entries(&b, 100, "g1", c->type, NULL);
	cr_assert_eq(fx.reps[0].outcome, c->outcome);
	cr_assert_eq(fx.box.nsnapshots, 1);
	expect_g1_snapshot(0, c->snap_status, c->snap_summary, c->snap_turn);
	cr_assert(strstr(fx_payload(0), "\"player_turn_stats\":null}"));
}

/* ---- missing row --------------------------------------------------------- */

Test(decisions, missing_row_warns_and_publishes_nothing)
{
	batch b;

	run_entries(&b, 100, "ghost", "container_oom", NULL);
	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_NOT_FOUND);
	cr_assert_not(fx.reps[0].published);
	cr_assert_eq(fx.box.nsnapshots, 0);
	cr_assert_eq(fx.box.ndead, 0);
	cr_assert_eq(he_core_cache_size(fx.core), 0);
	cr_assert_eq(mock_host_log_count(fx.mh, APPHOST_LOG_WARN,
					 "game_id=\"ghost\" entry=100-0"),
		     1);
	cr_assert_eq(mock_host_log_count(fx.mh, APPHOST_LOG_ERROR, NULL), 0);
	cr_assert_str_eq(fx.box.last_id, "100-0");
	he_core_stats st;
	he_core_get_stats(fx.core, &st);
	cr_assert_eq(st.not_found, 1);
}

/* ---- a failing store ------------------------------------------------------
 */

/* A batch with every kind of entry, for the retry tests. */
static void mixed_batch(batch *b)
{
	b_init(b, 200);
	b_add(b, "g1", "container_oom");
	b_fields(b, 2, "game_id", "g1"); /* dead: missing event_type */
	b_add(b, "g2", "probe_failed");
	b_add(b, "ghost", "probe_failed");
	b_add(b, "g1", "probe_recovered");
}

static void seed_rows(mem_store *s)
{
	mem_store_put(s, "g1", "running", "", 1);
	mem_store_put(s, "g2", "running", "probe_failed", 2);
}

Test(decisions, failing_store_leaves_everything_for_a_retry)
{
	batch b;
	he_row row;

	seed_rows(fx.ms);
	/* g2's last published summary is already probe_failed */
	run_entries(&b, 100, "g2", "probe_failed", NULL);
	cr_assert_eq(he_core_cache_size(fx.core), 1);
	mock_host_log_clear(fx.mh);

	mixed_batch(&b);
	mem_store_fail(fx.ms, HE_ECONN);
	cr_assert_eq(fx_run(&b), HE_ECONN);
	cr_assert_eq(fx.box.nsnapshots, 0);
	cr_assert_eq(fx.box.ndead, 0);
	cr_assert_eq(he_core_cache_size(fx.core), 1);
	cr_assert(mem_store_get(fx.ms, "g1", &row));
	cr_assert_str_eq(row.status, "running");
	cr_assert_eq(mock_host_log_lines(fx.mh), 0,
		     "nothing logged for a batch that will be retried");

	/* Partial failure inside the store: all or nothing. */
	mem_store_fail(fx.ms, 0);
	mem_store_fail_after(fx.ms, 2, HE_EIO);
	cr_assert_eq(fx_run(&b), HE_EIO);
	cr_assert(mem_store_get(fx.ms, "g1", &row));
	cr_assert_str_eq(row.status, "running");
	cr_assert_str_eq(row.engine_health, "");
	cr_assert_eq(fx.box.nsnapshots + fx.box.ndead, 0);

	/* The retry behaves exactly as a first try on a fresh core. */
	mem_store_fail_after(fx.ms, -1, 0);
	cr_assert_eq(fx_run(&b), 0);

	mem_store *ms2 = mem_store_new();
	he_core *c2;
	he_outbox box2 = {0};
	he_entry_report reps2[B_MAX];
	seed_rows(ms2);
	cr_assert_eq(he_core_new(NULL, &c2), 0);
	he_record_store st2 = mem_store_port(ms2);
	batch b0;
	b_init(&b0, 100);
	b_add(&b0, "g2", "probe_failed");
	cr_assert_eq(he_core_process(c2, b0.e, b0.n, &st2, &box2, NULL), 0);
	he_outbox_clear(&box2);
	cr_assert_eq(he_core_process(c2, b.e, b.n, &st2, &box2, reps2), 0);

	cr_assert_eq(fx.box.nsnapshots, box2.nsnapshots);
	cr_assert_eq(fx.box.ndead, box2.ndead);
	for (size_t i = 0; i < b.n; i++) {
		cr_assert_eq(fx.reps[i].outcome, reps2[i].outcome, "entry %zu",
			     i);
		cr_assert_eq(fx.reps[i].published, reps2[i].published);
	}
	for (size_t i = 0; i < box2.nsnapshots; i++) {
		cr_assert_str_eq(fx.box.snapshots[i].payload,
				 box2.snapshots[i].payload);
		cr_assert_str_eq(fx.box.snapshots[i].source_id,
				 box2.snapshots[i].source_id);
	}
	cr_assert_str_eq(fx.box.dead[0].reason, box2.dead[0].reason);
	cr_assert_str_eq(fx.box.last_id, "200-4");
	/* g1 oom (transition) and recovered (transition) published, g2's
	 * repeat suppressed, ghost not found, one dead letter. */
	cr_assert_eq(fx.box.nsnapshots, 2);
	cr_assert_eq(fx.reps[2].published, false);
	cr_assert_eq(fx.reps[3].outcome, HE_ENTRY_NOT_FOUND);

	he_outbox_free(&box2);
	he_core_free(c2);
	mem_store_free(ms2);
}

/* ---- one game several times in a batch ----------------------------------- */

Test(decisions, same_game_several_times_in_one_batch)
{
	batch b;

	mem_store_put(fx.ms, "g1", "running", "", 11);
	run_entries(&b, 100, "g1", "container_oom", "g1", "probe_recovered",
		    "g1", "probe_failed", "g1", "probe_failed", NULL);
	cr_assert_eq(mem_store_apply_calls(fx.ms), 1, "one apply per batch");

	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_TRANSITIONED);
	cr_assert_eq(fx.reps[1].outcome, HE_ENTRY_TRANSITIONED);
	cr_assert_eq(fx.reps[2].outcome, HE_ENTRY_HEALTH_ONLY);
	cr_assert_eq(fx.reps[3].outcome, HE_ENTRY_HEALTH_ONLY);
	cr_assert_eq(fx.box.nsnapshots, 3);
	expect_g1_snapshot(0, "engine_unreachable", "oom", 11);
	expect_g1_snapshot(1, "running", "healthy", 11);
	expect_g1_snapshot(2, "running", "probe_failed", 11);
	cr_assert_str_eq(fx.box.snapshots[0].source_id, "100-0");
	cr_assert_str_eq(fx.box.snapshots[2].source_id, "100-2");
	cr_assert_not(fx.reps[3].published);

	/* The cache holds the last published summary. */
	run_entries(&b, 101, "g1", "probe_failed", NULL);
	cr_assert_eq(fx.box.nsnapshots, 0);
}

Test(decisions, mixed_batch_commits_in_stream_order)
{
	batch b;

	seed_rows(fx.ms);
	mixed_batch(&b);
	cr_assert_eq(fx_run(&b), 0);
	he_stream_port port = mem_stream_port(fx.stream);
	cr_assert_eq(port.commit(port.ctx, &fx.box), 0);

	const mem_commit *c = mem_stream_commit_at(fx.stream, 0);
	cr_assert_not_null(c);
	cr_assert_str_eq(c->last_id, "200-4");
	cr_assert_eq(c->nsnapshots, 3); /* g1 oom, g2 first, g1 recovered */
	cr_assert_str_eq(c->snapshots[0].source_id, "200-0");
	cr_assert_str_eq(c->snapshots[1].source_id, "200-2");
	cr_assert_str_eq(c->snapshots[2].source_id, "200-4");
	cr_assert_eq(c->ndead, 1);
	cr_assert_str_eq(c->dead[0].id, "200-1");
	cr_assert_str_eq(c->dead[0].reason, "missing event_type");
	cr_assert_eq(c->dead[0].nitems, 2);
	cr_assert_str_eq(c->dead[0].items[1], "g1");
	cr_assert_str_eq(mem_stream_offset(fx.stream), "200-4");

	he_core_stats st;
	he_core_get_stats(fx.core, &st);
	cr_assert_eq(st.entries, 5);
	cr_assert_eq(st.transitioned, 2);
	cr_assert_eq(st.dead_lettered, 1);
	cr_assert_eq(st.not_found, 1);
	cr_assert_eq(st.published, 3);
}

/* ---- finished games and forget ------------------------------------------- */

Test(decisions, finished_games_are_dropped_from_the_cache)
{
	batch b;

	mem_store_put(fx.ms, "g1", "finished", "", 1);
	mem_store_put(fx.ms, "g2", "running", "", 1);
	run_entries(&b, 100, "g1", "inspect_unhealthy", "g2",
		    "inspect_unhealthy", NULL);
	cr_assert(fx.reps[0].published);
	cr_assert_eq(he_core_cache_size(fx.core), 1, "only g2 remembered");

	/* a game that finishes later is dropped on its next entry; one that
	 * stops keeps what it published while running */
	mem_store_put(fx.ms, "g3", "running", "", 1);
	run_entries(&b, 101, "g3", "inspect_unhealthy", NULL);
	mem_store_set_status(fx.ms, "g2", "finished");
	mem_store_set_status(fx.ms, "g3", "stopped");
	run_entries(&b, 102, "g2", "inspect_unhealthy", "g3",
		    "inspect_unhealthy", NULL);
	cr_assert_not(fx.reps[0].published, "decided before dropping");
	cr_assert_not(fx.reps[1].published, "the stopped game's repeat");
	cr_assert_eq(he_core_cache_size(fx.core), 1, "only g3 remembered");
}

/* Games whose row was deleted leave the cache; the row's return publishes. */
Test(decisions, deleted_games_are_dropped_from_the_cache)
{
	batch b;

	put_running(2);
	run_entries(&b, 100, "g1", "inspect_unhealthy", "g2",
		    "inspect_unhealthy", NULL);
	cr_assert_eq(he_core_cache_size(fx.core), 2);

	cr_assert(mem_store_delete(fx.ms, "g2"));
	run_entries(&b, 101, "g2", "inspect_unhealthy", NULL);
	cr_assert_eq(fx.reps[0].outcome, HE_ENTRY_NOT_FOUND);
	cr_assert_eq(he_core_cache_size(fx.core), 1, "only g1 remembered");

	/* the row comes back: its first entry publishes again */
	mem_store_put(fx.ms, "g2", "running", "unhealthy", 1);
	run_entries(&b, 102, "g2", "inspect_unhealthy", "g2",
		    "inspect_unhealthy", NULL);
	cr_assert(fx.reps[0].published);
	cr_assert_not(fx.reps[1].published);
}

/*
 * `stopped` is not final (an administrator may start the game again), so a
 * stopped game keeps its last published summary: repeats are suppressed
 * within a batch and across batches, a changed summary is published.
 */
Test(decisions, stopped_games_keep_their_last_summary)
{
	batch b;

	mem_store_put(fx.ms, "g1", "stopped", "", 1);
	run_entries(&b, 100, "g1", "probe_failed", "g1", "probe_failed", NULL);
	cr_assert(fx.reps[0].published);
	cr_assert_not(fx.reps[1].published, "a repeat in the same batch");
	cr_assert_eq(he_core_cache_size(fx.core), 1);

	run_entries(&b, 101, "g1", "probe_failed", NULL);
	cr_assert_not(fx.reps[0].published, "a repeat in the next batch");

	run_entries(&b, 102, "g1", "inspect_unhealthy", NULL);
	cr_assert(fx.reps[0].published, "a changed summary");
	cr_assert_eq(he_core_cache_size(fx.core), 1);
}

/* Entries that find no row forget the game, also within the batch. */
Test(decisions, a_missing_row_in_a_batch_forgets_the_game)
{
	batch b;

	mem_store_put(fx.ms, "g1", "running", "", 1);
	run_entries(&b, 100, "g1", "inspect_unhealthy", NULL);
	cr_assert(mem_store_delete(fx.ms, "g1"));
	run_entries(&b, 101, "g1", "inspect_unhealthy", "g1",
		    "inspect_unhealthy", NULL);
	cr_assert_not(fx.reps[0].published);
	cr_assert_not(fx.reps[1].published);
	cr_assert_eq(he_core_cache_size(fx.core), 0);
}

Test(decisions, forget_makes_a_replay_publish_again)
{
	batch b;

	put_running(3);
	run_entries(&b, 90, "g3", "probe_failed", NULL);

	run_entries(&b, 100, "g1", "probe_failed", "g2", "inspect_unhealthy",
		    NULL);
	cr_assert_eq(fx.box.nsnapshots, 2);
	cr_assert_eq(he_core_cache_size(fx.core), 3);

	/* the commit failed and the consumer gives up on this outbox */
	he_stream_port port = mem_stream_port(fx.stream);
	mem_stream_fail(fx.stream, HE_ECONN);
	cr_assert_eq(port.commit(port.ctx, &fx.box), HE_ECONN);
	he_core_forget(fx.core, &fx.box);
	cr_assert_eq(he_core_cache_size(fx.core), 1, "g3 kept");

	/*
	 * Replaying the batch from the offset Redis holds applies nothing
	 * twice: the store has moved the applied position past it. The
	 * repair publishes both games again instead.
	 */
	cr_assert_eq(he_core_set_applied(fx.core, "90-0"), 0);
	cr_assert_eq(fx_run(&b), HE_EPOSITION);
	cr_assert_str_eq(he_core_applied(fx.core), "90-0", "left as it was");
	cr_assert_str_eq(mem_store_position(fx.ms), "100-1");
	size_t games = 0;
	cr_assert_eq(he_core_repair(fx.core, "90-0", b.e, b.n, &fx.store,
				    &fx.box, &games),
		     0);
	cr_assert_eq(games, 2);
	cr_assert_eq(fx.box.nsnapshots, 2);
	cr_assert_str_eq(fx.box.last_id, "100-1");
	he_core_forget(fx.core, NULL);
	he_core_forget(NULL, &fx.box);
}

/* ---- arguments ------------------------------------------------------------
 */

Test(decisions, bad_arguments)
{
	batch b;

	b_init(&b, 100);
	b_add(&b, "g1", "probe_failed");
	cr_assert_eq(he_core_process(fx.core, b.e, 0, &fx.store, &fx.box, NULL),
		     0);
	cr_assert_eq(mem_store_apply_calls(fx.ms), 0);
	cr_assert_eq(he_core_process(NULL, b.e, 1, &fx.store, &fx.box, NULL),
		     HE_EINVAL);
	cr_assert_eq(he_core_process(fx.core, b.e, 1, NULL, &fx.box, NULL),
		     HE_EINVAL);
	b.e[0].id = "1700000000000000000000000000000000000000000000000-0";
	cr_assert_eq(he_core_process(fx.core, b.e, 1, &fx.store, &fx.box, NULL),
		     HE_EINVAL);
	cr_assert_eq(mem_store_apply_calls(fx.ms), 0);
	he_core_free(NULL);
	he_outbox_free(NULL);
	he_outbox_clear(NULL);
}

/* Every entry moves the applied position, dead letters too. */
Test(decisions, only_dead_letters_still_move_the_position)
{
	batch b;

	b_init(&b, 100);
	b_fields(&b, 1, "x");
	cr_assert_eq(fx_run(&b), 0);
	cr_assert_eq(mem_store_apply_calls(fx.ms), 1);
	cr_assert_eq(mem_store_ops_seen(fx.ms), 0);
	cr_assert_str_eq(mem_store_position(fx.ms), "100-0");
	cr_assert_eq(fx.box.ndead, 1);
	cr_assert_str_eq(fx.reps[0].reason, "odd number of field items (1)");
	cr_assert_str_eq(fx.box.last_id, "100-0");
}
