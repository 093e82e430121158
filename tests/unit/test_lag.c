/* Lag in seconds from stream ids and Redis's clock (core/he_lag.c). */
#include "he_lag.h"

#include <criterion/criterion.h>

#define S_NS 1000000000ull

/* Redis says 1000.000 s at local monotonic 50 s. */
static he_lag sampled(void)
{
	he_lag l;
	he_lag_reset(&l);
	he_lag_clock(&l, 1000ull * 1000000u, 50 * S_NS);
	return l;
}

Test(lag, an_age_is_redis_time_minus_the_id_milliseconds)
{
	he_lag l = sampled();
	cr_expect_float_eq(he_lag_age(&l, 997500, 50 * S_NS), 2.5, 1e-9);
	/* an id ahead of Redis's clock (written with an explicit id) */
	cr_expect_eq(he_lag_age(&l, 1000500, 50 * S_NS), 0);
}

Test(lag, redis_time_is_carried_forward_by_the_monotonic_clock)
{
	he_lag l = sampled();
	/* no new sample for 7 s: the age still grows */
	cr_expect_float_eq(he_lag_age(&l, 997500, 57 * S_NS), 9.5, 1e-9);
	/* a clock read taken before the sample does not go back */
	cr_expect_float_eq(he_lag_age(&l, 997500, 49 * S_NS), 2.5, 1e-9);
	/* a new sample replaces the old one, whatever the wall clocks did */
	he_lag_clock(&l, 990ull * 1000000u, 60 * S_NS);
	cr_expect_float_eq(he_lag_age(&l, 987500, 61 * S_NS), 3.5, 1e-9);
}

Test(lag, without_a_sample_an_age_is_unknown_and_lag_zero)
{
	he_lag l;
	he_lag_reset(&l);
	cr_expect_eq(he_lag_age(&l, 1, 5 * S_NS), -1);
	he_lag_read(&l, 3, 1);
	cr_expect_eq(he_lag_seconds(&l, 5 * S_NS), 0);
}

Test(lag, the_batch_in_hand_ages_while_it_is_retried)
{
	he_lag l = sampled();
	he_lag_read(&l, 10, 999000);
	cr_expect_float_eq(he_lag_seconds(&l, 50 * S_NS), 1, 1e-9);
	/* PostgreSQL down for 30 s: no read, no commit, the lag rises */
	cr_expect_float_eq(he_lag_seconds(&l, 80 * S_NS), 31, 1e-9);
}

Test(lag, reaching_the_end_is_zero)
{
	he_lag l = sampled();
	he_lag_read(&l, 10, 999000);
	he_lag_committed(&l, true, 999900);
	cr_expect_eq(he_lag_seconds(&l, 90 * S_NS), 0);
	/* an empty read: nothing after the offset */
	he_lag_read(&l, 2, 999000);
	he_lag_read(&l, 0, 0);
	cr_expect_eq(he_lag_seconds(&l, 90 * S_NS), 0);
}

Test(lag, a_full_batch_committed_leaves_its_last_entry_as_the_bound)
{
	he_lag l = sampled();
	he_lag_read(&l, 256, 990000);
	he_lag_committed(&l, false, 998000);
	cr_expect_float_eq(he_lag_seconds(&l, 50 * S_NS), 2, 1e-9);
	/* the next read says exactly */
	he_lag_read(&l, 256, 998500);
	cr_expect_float_eq(he_lag_seconds(&l, 50 * S_NS), 1.5, 1e-9);
}

Test(lag, a_standby_is_zero)
{
	he_lag l = sampled();
	he_lag_read(&l, 256, 990000);
	he_lag_reset(&l);
	cr_expect_eq(he_lag_seconds(&l, 50 * S_NS), 0);
}
