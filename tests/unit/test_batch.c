/*
 * test_batch.c -- XREAD COUNT from the sizes of recent batches.
 */
#include "he_batch.h"

#include <criterion/criterion.h>

/*
 * A controller of max 256 and an 8 MiB budget, grown to full COUNT by six
 * full reads of entry_bytes * 256 bytes each: the starting point of the
 * tests that then shrink it.
 */
static void init_full(he_batch_ctl *b, unsigned entry_bytes)
{
	he_batch_init(b, 256, 8 << 20);
	for (int i = 0; i < 6; i++)
		he_batch_observe(b, he_batch_count(b), entry_bytes * 256);
	cr_assert_eq(he_batch_count(b), 256);
}

Test(batch, starts_small_and_doubles_on_full_reads)
{
	he_batch_ctl b;
	he_batch_init(&b, 256, 8 << 20);
	cr_assert_eq(he_batch_count(&b), HE_BATCH_START);
	unsigned want[] = {16, 32, 64, 128, 256, 256};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		unsigned n = he_batch_count(&b);
		he_batch_observe(&b, n, n * 300);
		cr_assert_eq(he_batch_count(&b), want[i], "step %zu", i);
	}
	/* a short read (the end) and an empty one do not grow it */
	he_batch_init(&b, 256, 8 << 20);
	he_batch_observe(&b, 3, 900);
	he_batch_observe(&b, 0, 0);
	cr_assert_eq(he_batch_count(&b), HE_BATCH_START);
	/* HEALTH_EVENTS_BATCH below the start */
	he_batch_init(&b, 1, 8 << 20);
	cr_assert_eq(he_batch_count(&b), 1);
	he_batch_observe(&b, 1, 10);
	cr_assert_eq(he_batch_count(&b), 1);
}

Test(batch, large_entries_shrink_it_to_half_the_budget)
{
	he_batch_ctl b;
	init_full(&b, 300u);
	/* 256 entries of 1 MiB would be 256 MiB: now 4 fit half of 8 MiB */
	he_batch_observe(&b, 256, (size_t)256 << 20);
	cr_assert_eq(he_batch_count(&b), 4);
	he_batch_observe(&b, 4, (size_t)4 << 20);
	cr_assert_eq(he_batch_count(&b), 4);
	/* 3 MiB each: one at a time, never zero */
	he_batch_observe(&b, 4, (size_t)12 << 20);
	cr_assert_eq(he_batch_count(&b), 1);
	/* back to small entries: the estimate decays and COUNT grows back */
	int reads = 0;
	while (he_batch_count(&b) < 256 && reads < 100) {
		he_batch_observe(&b, he_batch_count(&b),
				 he_batch_count(&b) * 300u);
		reads++;
	}
	cr_assert_eq(he_batch_count(&b), 256);
	cr_assert_lt(reads, 60, "recovers in %d reads", reads);
}

Test(batch, an_abandoned_read_asks_at_most_what_fitted)
{
	he_batch_ctl b;
	init_full(&b, 100u);
	he_batch_overflow(&b, 10, (8 << 20) + 1);
	cr_assert_leq(he_batch_count(&b), 10);
	cr_assert_geq(he_batch_count(&b), 1);
	he_batch_overflow(&b, 1, (size_t)40 << 20);
	cr_assert_eq(he_batch_count(&b), 1);
}
