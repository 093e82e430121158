/* he_lease.c -- see he_lease.h. */
#include "he_lease.h"

he_lease_timing he_lease_timing_for(unsigned lease_ms)
{
	he_lease_timing t = {
	    .lease_ms = lease_ms,
	    .renew_ms = lease_ms / 4,
	    .valid_ms = lease_ms / 2,
	    .poll_ms = lease_ms / 8 < 250 ? lease_ms / 8 : 250,
	    .call_ms = lease_ms / 4,
	};
	return t;
}
