/* The leadership lease's timing (core/he_lease.c). */
#include "he_lease.h"

#include <criterion/criterion.h>

Test(lease, the_default_lease_fails_over_within_five_seconds)
{
	he_lease_timing t = he_lease_timing_for(3000);
	cr_assert_eq(t.renew_ms, 750);
	cr_assert_eq(t.valid_ms, 1500);
	cr_assert_eq(t.poll_ms, 250);
	cr_assert_eq(t.call_ms, 750);
	/* a dead leader's lease lapses, then one poll at most */
	cr_assert_leq(t.lease_ms + t.poll_ms, 5000);
}

Test(lease, a_leader_stops_writing_well_before_its_lease_can_lapse)
{
	for (unsigned ms = 500; ms <= 60000; ms += 500) {
		he_lease_timing t = he_lease_timing_for(ms);
		cr_assert_lt(t.renew_ms, t.valid_ms, "lease %u", ms);
		cr_assert_leq(t.valid_ms * 2, ms, "lease %u", ms);
		/* a call that hangs gives up before the next is due */
		cr_assert_leq(t.call_ms, t.renew_ms, "lease %u", ms);
		cr_assert_gt(t.poll_ms, 0, "lease %u", ms);
		cr_assert_leq(t.poll_ms, 250, "lease %u", ms);
	}
}

Test(lease, an_instance_works_only_while_both_servers_answer)
{
	he_lease_timing t = he_lease_timing_for(3000);
	const unsigned long long ms = 1000000ull, now = 100000 * ms;
	cr_assert_eq(t.check_ms, 750);
	cr_assert_eq(t.heard_ms, 1500);
	/* a ping every check_ms keeps an idle instance able */
	cr_assert_lt(t.check_ms * 2, t.heard_ms + 1);
	cr_assert_eq(
	    he_lease_able(&t, now, now - 10 * ms, now - 1499 * ms, 0, 0),
	    HE_ABLE);
	cr_assert_eq(he_lease_able(&t, now, now - 1500 * ms, now, 0, 0),
		     HE_ABLE_REDIS_SILENT);
	cr_assert_eq(he_lease_able(&t, now, now, now - 1500 * ms, 0, 0),
		     HE_ABLE_PG_SILENT);
	cr_assert_eq(he_lease_able(&t, now, 0, 0, 0, 0), HE_ABLE_BOTH_SILENT,
		     "never heard is silent");
	/* stuck on Redis, the consumer stopped pinging PostgreSQL too */
	cr_assert_eq(
	    he_lease_able(&t, now, now - 2500 * ms, now - 1600 * ms, 0, 0),
	    HE_ABLE_REDIS_SILENT);
	cr_assert_eq(
	    he_lease_able(&t, now, now - 1600 * ms, now - 2500 * ms, 0, 0),
	    HE_ABLE_PG_SILENT);
	/* a call waiting on Redis names Redis, whichever answered last */
	cr_assert_eq(he_lease_able(&t, now, now - 1600 * ms, now - 2500 * ms,
				   now - 1600 * ms, 0),
		     HE_ABLE_REDIS_SILENT);
	/* a stamp written after `now` was read is fresh, not 584 years old */
	cr_assert_eq(he_lease_able(&t, now, now + ms, now + ms, 0, 0), HE_ABLE);
	cr_assert_str_eq(he_able_name(HE_ABLE_PG_SILENT), "postgres_silent");
}

Test(lease, a_leader_hears_of_a_silent_server_before_its_write_window_ends)
{
	for (unsigned ms = 500; ms <= 60000; ms += 500) {
		he_lease_timing t = he_lease_timing_for(ms);
		/* one XREAD plus its socket margin stays inside the window */
		cr_assert_leq(2 * t.check_ms, t.heard_ms, "lease %u", ms);
		cr_assert_leq(t.heard_ms, t.valid_ms, "lease %u", ms);
		cr_assert_geq(t.aside_ms, t.lease_ms, "lease %u", ms);
	}
}
