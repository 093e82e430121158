/*
 * test_split.c -- refused entries isolated by splitting: the splitter
 * alone against random refusal sets, then through he_core_process with
 * the in-memory store refusing games.
 */
#include "unit.h"

#include "he_split.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static size_t log2_ceil(size_t n)
{
	size_t k = 0;
	while (((size_t)1 << k) < n)
		k++;
	return k;
}

/* Every op applied once, in order; every refused one reported once. */
Test(split, isolates_every_refused_op_in_order)
{
	enum { MAXN = 300 };
	uint32_t seed = 99;
	for (int round = 0; round < 500; round++) {
		bool bad[MAXN] = {false};
		seed = seed * 1103515245u + 12345u;
		size_t n = (seed >> 8) % MAXN, nbad = 0;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			bad[i] = (seed >> 8) % 23 == 0 || round % 50 == 7;
			nbad += bad[i];
		}
		he_split sp;
		size_t next_applied = 0, reported = 0, applies = 0;
		he_split_init(&sp, n);
		while (he_split_more(&sp)) {
			size_t off, len, which;
			he_split_range(&sp, &off, &len);
			cr_assert_geq(len, 1);
			cr_assert_leq(off + len, n);
			applies++;
			bool refused = false;
			for (size_t i = off; i < off + len; i++)
				refused |= bad[i];
			if (!refused) {
				cr_assert_eq(off, next_applied, "in order");
				next_applied = off + len;
			}
			if (he_split_result(&sp, refused, &which) ==
			    HE_SPLIT_REFUSED) {
				cr_assert(bad[which], "op %zu refused", which);
				cr_assert_eq(which, next_applied);
				next_applied = which + 1;
				reported++;
			}
		}
		cr_assert_eq(next_applied, n, "round %d", round);
		cr_assert_eq(reported, nbad, "round %d", round);
		if (nbad == 0)
			cr_assert_leq(applies, n ? 1 : 0);
		else
			cr_assert_leq(
			    applies, nbad * (2 * log2_ceil(n) + 2) + 1,
			    "n %zu bad %zu applies %zu", n, nbad, applies);
	}
}

TestSuite(poison, .init = fx_setup, .fini = fx_teardown);

/*
 * A game the store refuses (a data error) does not fail the batch: its
 * entries are dead-lettered with the store's text, every other entry
 * applies in order, and the offset moves to the batch's end.
 */
Test(poison, refused_entries_are_dead_lettered_and_the_rest_applies)
{
	batch b;
	char g[24][8];

	for (int i = 0; i < 24; i++) {
		snprintf(g[i], sizeof(g[i]), "g%d", i);
		mem_store_put(fx.ms, g[i], "running", "", i);
	}
	mem_store_put(fx.ms, "bad", "running", "", 1);
	mem_store_refuse(fx.ms, "bad", HE_EDATA);
	b_init(&b, 300);
	for (int i = 0; i < 24; i++) {
		if (i == 5 || i == 17)
			b_add(&b, "bad", "container_oom");
		b_add(&b, g[i], i % 2 ? "container_oom" : "probe_failed");
	}
	b_add(&b, "g3", "probe_recovered"); /* after g3's oom: recovers */
	cr_assert_eq(b.n, 27);
	cr_assert_eq(fx_run(&b), 0);

	cr_assert_eq(fx.reps[5].outcome, HE_ENTRY_DEAD_LETTERED);
	cr_assert_eq(fx.reps[18].outcome, HE_ENTRY_DEAD_LETTERED);
	cr_assert_str_eq(fx.reps[5].reason,
			 "refused by the database: game bad refused\\x0a(line "
			 "two)");
	cr_assert_eq(fx.box.ndead, 2);
	cr_assert_str_eq(fx.box.dead[0].entry->id, "300-5");
	cr_assert_str_eq(fx.box.dead[1].entry->id, "300-18");
	cr_assert_eq(fx.box.nsnapshots, 25, "every other entry published");
	cr_assert_str_eq(fx.box.snapshots[5].source_id, "300-6");
	cr_assert_str_eq(fx.box.last_id, "300-26");
	for (int i = 0; i < 24; i++) {
		he_row row;
		cr_assert(mem_store_get(fx.ms, g[i], &row));
		const char *want = i == 3  ? "running"
				   : i % 2 ? "engine_unreachable"
					   : "running";
		cr_assert_str_eq(row.status, want, "%s", g[i]);
	}
	cr_assert_eq(fx.reps[26].outcome, HE_ENTRY_TRANSITIONED,
		     "g3's recovery saw its oom, applied before it");
	he_row row;
	cr_assert(mem_store_get(fx.ms, "bad", &row));
	cr_assert_str_eq(row.status, "running", "the refused game untouched");
	cr_assert_lt(mem_store_apply_calls(fx.ms), 30);
	he_core_stats st;
	he_core_get_stats(fx.core, &st);
	cr_assert_eq(st.dead_lettered, 2);
}

/* An outage is not a data error: the batch fails whole, as before. */
Test(poison, an_outage_is_never_taken_for_a_refusal)
{
	batch b;

	mem_store_put(fx.ms, "g1", "running", "", 1);
	mem_store_put(fx.ms, "g2", "running", "", 1);
	mem_store_refuse(fx.ms, "g2", HE_ECONN);
	b_init(&b, 300);
	b_add(&b, "g1", "container_oom");
	b_add(&b, "g2", "container_oom");
	cr_assert_eq(fx_run(&b), HE_ECONN);
	cr_assert_eq(fx.box.ndead, 0);
	cr_assert_eq(fx.box.nsnapshots, 0);
	cr_assert_eq(mem_store_apply_calls(fx.ms), 1, "no split");
}

/* A batch of refused entries only: each dead-lettered, nothing else. */
Test(poison, a_batch_of_refused_entries)
{
	batch b;

	mem_store_put(fx.ms, "bad", "running", "", 1);
	mem_store_refuse(fx.ms, "bad", HE_EDATA);
	b_init(&b, 300);
	for (int i = 0; i < 5; i++)
		b_add(&b, "bad", "probe_failed");
	b_fields(&b, 2, "game_id", "g1"); /* undecodable as well */
	cr_assert_eq(fx_run(&b), 0);
	cr_assert_eq(fx.box.ndead, 6);
	cr_assert_eq(fx.box.nsnapshots, 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(fx.reps[i].outcome, HE_ENTRY_DEAD_LETTERED);
	cr_assert_str_eq(fx.box.last_id, "300-5");
}

/* The second apply of a split finds a newer leader: fenced, no refusal. */
static void fence_after_first(mem_store *s, const he_mutation *op, long index,
			      void *ud)
{
	(void)op;
	(void)index;
	(void)ud;
	if (mem_store_apply_calls(s) == 2)
		mem_store_fail(s, HE_EFENCED);
}

Test(poison, fenced_while_splitting_is_fenced)
{
	batch b;

	mem_store_put(fx.ms, "g1", "running", "", 1);
	mem_store_put(fx.ms, "bad", "running", "", 1);
	mem_store_refuse(fx.ms, "bad", HE_EDATA);
	mem_store_set_before_apply(fx.ms, fence_after_first, NULL);
	b_init(&b, 300);
	b_add(&b, "g1", "container_oom");
	b_add(&b, "bad", "container_oom");
	b_add(&b, "g1", "probe_failed");
	cr_assert_eq(fx_run(&b), HE_EFENCED);
	cr_assert_eq(mem_store_apply_calls(fx.ms), 2);
	cr_assert_eq(fx.box.ndead, 0, "nothing dead-lettered");
	cr_assert_eq(fx.box.nsnapshots, 0);
	cr_assert_eq(he_core_cache_size(fx.core), 0);
}
