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
