/*
 * test_progress.c -- the applied position (DESIGN §13) through the core
 * and the in-memory store: every apply is a compare-and-set on it, every
 * entry moves it, and a repair rebuilds what a lost commit held without
 * applying anything.
 */
#include "unit.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(progress, .init = fx_setup, .fini = fx_teardown);

Test(progress, each_batch_follows_and_moves_the_position)
{
	batch b;

	mem_store_put(fx.ms, "g1", "running", "", 1);
	b_init(&b, 100);
	b_add(&b, "g1", "probe_failed");
	b_add(&b, "g1", "inspect_unhealthy");
	cr_assert_eq(fx_run(&b), 0);
	cr_assert_str_eq(mem_store_position(fx.ms), "100-1");
	cr_assert_str_eq(he_core_applied(fx.core), "100-1");

	b_init(&b, 101);
	b_add(&b, "g1", "probe_failed");
	cr_assert_eq(fx_run(&b), 0);
	cr_assert_str_eq(mem_store_position(fx.ms), "101-0");
}

/* "10-0" follows "9-0": as text it would sort before it. */
Test(progress, ids_compare_as_numbers)
{
	batch b;

	mem_store_put(fx.ms, "g1", "running", "", 1);
	mem_store_set_position(fx.ms, "9-0");
	cr_assert_eq(he_core_set_applied(fx.core, "9-0"), 0);
	b_init(&b, 10);
	b_add(&b, "g1", "probe_failed");
	cr_assert_eq(fx_run(&b), 0);
	cr_assert_str_eq(mem_store_position(fx.ms), "10-0");
	cr_assert_eq(he_core_set_applied(fx.core, "not-an-id"), HE_EINVAL);
	cr_assert_str_eq(he_core_applied(fx.core), "10-0");
}

/* A batch that does not follow the stored position writes nothing. */
Test(progress, a_batch_behind_or_ahead_of_the_position_is_refused)
{
	static const char *const stored[] = {"100-5", "99-0"};
	batch b;

	for (size_t i = 0; i < 2; i++) {
		mem_store_put(fx.ms, "g1", "running", "", 1);
		mem_store_set_position(fx.ms, stored[i]);
		cr_assert_eq(he_core_set_applied(fx.core, "100-1"), 0);
		b_init(&b, 100);
		b_add(&b, "g1", "container_oom"); /* ids 100-0: behind 100-1 */
		b_add(&b, "g1", "container_oom");
		b_add(&b, "g1", "container_oom");
		b.e[0].id = "100-2";
		b.e[1].id = "100-3";
		b.e[2].id = "100-4";
		cr_assert_eq(fx_run(&b), HE_EPOSITION, "stored %s", stored[i]);
		he_row row;
		cr_assert(mem_store_get(fx.ms, "g1", &row));
		cr_assert_str_eq(row.status, "running", "nothing applied");
		cr_assert_str_eq(mem_store_position(fx.ms), stored[i]);
		cr_assert_eq(fx.box.nsnapshots, 0);
	}
}

/*
 * A refused entry is stepped over by an apply of its own that records the
 * refusal; the ranges around it chain position to position.
 */
Test(progress, a_refused_entry_moves_the_position_and_is_recorded)
{
	batch b;

	for (int i = 1; i <= 4; i++) {
		char g[8];
		snprintf(g, sizeof(g), "g%d", i);
		mem_store_put(fx.ms, g, "running", "", 1);
	}
	mem_store_refuse(fx.ms, "g3", HE_EDATA);
	b_init(&b, 100);
	b_add(&b, "g1", "probe_failed");
	b_fields(&b, 1, "x"); /* undecodable, between two ops */
	b_add(&b, "g2", "probe_failed");
	b_add(&b, "g3", "probe_failed");
	b_add(&b, "g4", "probe_failed");
	b_fields(&b, 1, "y"); /* undecodable, last */
	cr_assert_eq(fx_run(&b), 0);
	cr_assert_str_eq(mem_store_position(fx.ms), "100-5");
	cr_assert_eq(fx.box.ndead, 3);
	cr_assert_eq(fx.reps[3].outcome, HE_ENTRY_DEAD_LETTERED);

	/* A repair of the batch sends the refusal again, as recorded. */
	he_outbox_clear(&fx.box);
	cr_assert_eq(
	    he_core_repair(fx.core, "0-0", b.e, b.n, &fx.store, &fx.box, NULL),
	    0);
	cr_assert_eq(fx.box.ndead, 3);
	cr_assert_eq(fx.box.dead[1].entry, &b.e[3]);
	cr_assert(strstr(fx.box.dead[1].reason, "refused by the database"),
		  "%s", fx.box.dead[1].reason);
	cr_assert_eq(fx.box.nsnapshots, 3, "g1, g2, g4: not the refused g3");
}

/* Fails the store from the third apply on. */
static void fail_third(mem_store *s, const he_mutation *op, long index,
		       void *ud)
{
	int *calls = ud;
	if (++*calls == 3)
		mem_store_fail(s, HE_ECONN);
}

/*
 * The store fails after part of a split batch applied: the retry is
 * refused (nothing applies twice), and the core's position stays at the
 * batch's start for the caller to resync.
 */
Test(progress, a_retry_after_a_partial_split_is_refused)
{
	batch b;
	int calls = 0;

	for (int i = 1; i <= 4; i++) {
		char g[8];
		snprintf(g, sizeof(g), "g%d", i);
		mem_store_put(fx.ms, g, "running", "", 1);
	}
	mem_store_refuse(fx.ms, "g4", HE_EDATA);
	b_init(&b, 100);
	b_add(&b, "g1", "container_oom");
	b_add(&b, "g2", "container_oom");
	b_add(&b, "g3", "container_oom");
	b_add(&b, "g4", "container_oom");
	/* all four refused, [g1 g2] applies, then [g3 g4] fails */
	mem_store_set_before_apply(fx.ms, fail_third, &calls);
	cr_assert_eq(fx_run(&b), HE_ECONN);
	cr_assert_str_eq(mem_store_position(fx.ms), "100-1");
	cr_assert_str_eq(he_core_applied(fx.core), "0-0");

	mem_store_set_before_apply(fx.ms, NULL, NULL);
	mem_store_fail(fx.ms, 0);
	cr_assert_eq(fx_run(&b), HE_EPOSITION);
	he_row row;
	cr_assert(mem_store_get(fx.ms, "g3", &row));
	cr_assert_str_eq(row.status, "running", "g3 never applied");
	cr_assert(mem_store_get(fx.ms, "g1", &row));
	cr_assert_str_eq(row.status, "engine_unreachable", "g1 applied once");
}

/*
 * The repair publishes the current row of each game touched, with the id
 * of its last entry, in the order of those entries; games without a row
 * are skipped; nothing is written.
 */
Test(progress, a_repair_publishes_current_rows_and_writes_nothing)
{
	batch b;
	char want[256];

	mem_store_put(fx.ms, "g1", "running", "", 1);
	mem_store_put(fx.ms, "g2", "running", "", 1);
	b_init(&b, 100);
	b_add(&b, "g1", "container_oom");
	b_add(&b, "g2", "probe_failed");
	b_add(&b, "g1", "probe_recovered");
	b_add(&b, "nobody", "probe_failed");
	b_fields(&b, 1, "x");
	cr_assert_eq(fx_run(&b), 0);

	/* another flow writes g1 after the apply */
	mem_store_put(fx.ms, "g1", "generation_in_progress", "healthy", 7);
	size_t calls = mem_store_apply_calls(fx.ms);
	he_outbox_clear(&fx.box);
	size_t games = 0;
	cr_assert_eq(he_core_repair(fx.core, "0-0", b.e, b.n, &fx.store,
				    &fx.box, &games),
		     0);
	cr_assert_eq(mem_store_apply_calls(fx.ms), calls, "nothing applied");
	cr_assert_eq(games, 3);
	cr_assert_eq(fx.box.nsnapshots, 2);
	cr_assert_str_eq(fx.box.snapshots[0].source_id, "100-1");
	cr_assert_str_eq(fx.box.snapshots[1].source_id, "100-2");
	cr_assert_str_eq(fx.box.snapshots[1].payload,
			 expect_json(want, sizeof(want), "g1",
				     "generation_in_progress", "healthy", 7));
	cr_assert_eq(fx.box.ndead, 1);
	cr_assert_str_eq(fx.box.last_id, "100-4");
	he_row row;
	cr_assert(mem_store_get(fx.ms, "g1", &row));
	cr_assert_str_eq(row.status, "generation_in_progress");
	cr_assert_eq(he_core_cache_size(fx.core), 0, "g1 and g2 forgotten");
}

Test(progress, a_repair_reports_the_store_failing)
{
	batch b;

	b_init(&b, 100);
	b_add(&b, "g1", "probe_failed");
	mem_store_fail(fx.ms, HE_ECONN);
	cr_assert_eq(
	    he_core_repair(fx.core, "0-0", b.e, b.n, &fx.store, &fx.box, NULL),
	    HE_ECONN);
	cr_assert_eq(
	    he_core_repair(fx.core, "0-0", b.e, 0, &fx.store, &fx.box, NULL),
	    HE_EINVAL);
}

/*
 * he_core_process in two halves: begin says what to apply (the whole
 * batch, after the core's position), end takes the store's answer; a
 * refusal there is split through the store as he_core_process does.
 */
Test(progress, begin_and_end_split_a_refusal_like_process)
{
	batch b;
	he_core_apply a;

	mem_store_put(fx.ms, "g1", "running", "", 1);
	mem_store_put(fx.ms, "g2", "running", "", 1);
	mem_store_refuse(fx.ms, "g2", HE_EDATA);
	b_init(&b, 100);
	b_fields(&b, 1, "x");
	b_add(&b, "g1", "container_oom");
	b_add(&b, "g2", "container_oom");
	cr_assert_eq(he_core_begin(fx.core, b.e, b.n, &fx.box, &a), 0);
	cr_assert_str_eq(a.span.after, "0-0");
	cr_assert_str_eq(a.span.last, "100-2");
	cr_assert_eq(a.nops, 2);
	int rc =
	    fx.store.apply(fx.store.ctx, &a.span, a.ops, a.nops, a.results);
	cr_assert_eq(rc, HE_EDATA);
	cr_assert_eq(
	    he_core_end(fx.core, b.e, b.n, rc, &fx.store, &fx.box, fx.reps), 0);
	cr_assert_eq(fx.reps[1].outcome, HE_ENTRY_TRANSITIONED);
	cr_assert_eq(fx.reps[2].outcome, HE_ENTRY_DEAD_LETTERED);
	cr_assert_eq(fx.box.ndead, 2);
	cr_assert_str_eq(mem_store_position(fx.ms), "100-2");
	cr_assert_str_eq(he_core_applied(fx.core), "100-2");

	/* another failure ends the batch with nothing added */
	b_init(&b, 101);
	b_add(&b, "g1", "probe_failed");
	he_outbox_clear(&fx.box);
	cr_assert_eq(he_core_begin(fx.core, b.e, b.n, &fx.box, &a), 0);
	cr_assert_eq(he_core_end(fx.core, b.e, b.n, HE_ECONN, &fx.store,
				 &fx.box, fx.reps),
		     HE_ECONN);
	cr_assert_eq(fx.box.nsnapshots, 0);
	cr_assert_str_eq(he_core_applied(fx.core), "100-2");
}

/*
 * The pipelined consumer begins the next batch before it ends the one
 * whose apply came back: the second follows the first's last entry, the
 * two end in the order begun, and the outboxes, the dedupe cache and the
 * position come out as two batches processed one after the other.
 */
Test(progress, a_second_batch_begun_before_the_first_ends_follows_it)
{
	batch b1, b2;
	he_core_apply a1, a2;
	he_outbox box2 = {0};
	he_entry_report reps2[B_MAX];

	mem_store_put(fx.ms, "g1", "running", "", 1);
	mem_store_put(fx.ms, "g2", "running", "", 1);
	b_init(&b1, 100);
	b_add(&b1, "g1", "container_oom");
	b_add(&b1, "g2", "probe_failed");
	b_init(&b2, 101);
	b_add(&b2, "g1", "probe_recovered");
	b_add(&b2, "g2", "probe_failed"); /* the same summary: suppressed */
	b_add(&b2, "g1", "probe_recovered");

	cr_assert_eq(he_core_begin(fx.core, b1.e, b1.n, &fx.box, &a1), 0);
	cr_assert_eq(fx.store.apply(fx.store.ctx, &a1.span, a1.ops, a1.nops,
				    a1.results),
		     0);
	cr_assert_eq(he_core_begin(fx.core, b2.e, b2.n, &box2, &a2), 0);
	cr_assert_str_eq(a2.span.after, "100-1", "follows the first batch");
	cr_assert_neq(a2.results, a1.results, "its own results");
	cr_assert_eq(he_core_begin(fx.core, b2.e, b2.n, &box2, &a2),
		     HE_ESTATE, "two batches at most");
	cr_assert_eq(fx.store.apply(fx.store.ctx, &a2.span, a2.ops, a2.nops,
				    a2.results),
		     0);
	cr_assert_eq(he_core_end(fx.core, b2.e, b2.n, 0, &fx.store, &box2,
				 reps2),
		     HE_EINVAL, "ended in the order begun");

	cr_assert_eq(
	    he_core_end(fx.core, b1.e, b1.n, 0, &fx.store, &fx.box, fx.reps),
	    0);
	cr_assert_str_eq(he_core_applied(fx.core), "100-1");
	cr_assert_eq(he_core_end(fx.core, b2.e, b2.n, 0, &fx.store, &box2,
				 reps2),
		     0);
	cr_assert_str_eq(he_core_applied(fx.core), "101-2");
	cr_assert_str_eq(mem_store_position(fx.ms), "101-2");
	cr_assert_eq(fx.box.nsnapshots, 2);
	cr_assert_eq(reps2[0].outcome, HE_ENTRY_TRANSITIONED);
	cr_assert_eq(box2.nsnapshots, 1, "g2 repeated, g1 unchanged");
	cr_assert_str_eq(box2.snapshots[0].source_id, "101-0");
	cr_assert(!reps2[1].published && !reps2[2].published);
	cr_assert_eq(he_core_cache_size(fx.core), 2);
	he_outbox_free(&box2);
}
