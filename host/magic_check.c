/* magic_check.c -- see magic_check.h. */
#include "magic_check.h"

#include <stdio.h>

int apphost_magic_check(const char *what, const apphost_magic *m, char *err,
			size_t errlen)
{
	if (err == NULL)
		errlen = 0;
	if (m->magic != APPHOST_MAGIC) {
		snprintf(err, errlen, "%s: magic 0x%08x, host expects 0x%08x",
			 what, (unsigned)m->magic, (unsigned)APPHOST_MAGIC);
		return APPHOST_EINVAL;
	}
	if (m->abi_major != APPHOST_ABI_MAJOR) {
		snprintf(err, errlen, "%s: ABI major %u, host supports %u",
			 what, (unsigned)m->abi_major,
			 (unsigned)APPHOST_ABI_MAJOR);
		return APPHOST_EINVAL;
	}
	if (m->abi_minor > APPHOST_ABI_MINOR) {
		snprintf(err, errlen,
			 "%s: ABI minor %u, host supports up to %u.%u", what,
			 (unsigned)m->abi_minor, (unsigned)APPHOST_ABI_MAJOR,
			 (unsigned)APPHOST_ABI_MINOR);
		return APPHOST_EINVAL;
	}
	/*
	 * A component built against another hiredis would misread the
	 * redisContext the host lends (ABI 1.2 records it; 0.0: built
	 * without hiredis, nothing to misread).
	 */
	if (m->abi_minor >= 2 && (m->hiredis_major || m->hiredis_minor) &&
	    (m->hiredis_major != APPHOST_HIREDIS_MAJOR ||
	     m->hiredis_minor != APPHOST_HIREDIS_MINOR)) {
		snprintf(err, errlen,
			 "%s: built against hiredis %u.%u, host uses %u.%u",
			 what, (unsigned)m->hiredis_major,
			 (unsigned)m->hiredis_minor,
			 (unsigned)APPHOST_HIREDIS_MAJOR,
			 (unsigned)APPHOST_HIREDIS_MINOR);
		return APPHOST_EINVAL;
	}
	if (m->services_size > sizeof(apphost_services)) {
		snprintf(err, errlen,
			 "%s: services table size %u, host provides %zu", what,
			 (unsigned)m->services_size, sizeof(apphost_services));
		return APPHOST_EINVAL;
	}
	return 0;
}
