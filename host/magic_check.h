/*
 * magic_check.h -- a component's magic block against this host's ABI:
 * the one set of rules that the loader and the mock host (libapphost-mock)
 * both apply, so a component that passes its own tests loads. No I/O.
 * Any thread.
 */
#ifndef APPHOST_HOST_MAGIC_CHECK_H
#define APPHOST_HOST_MAGIC_CHECK_H

#include <stddef.h>

#include <apphost/component.h>

/*
 * Check m's magic number, ABI major and minor, the hiredis it was built
 * against (from ABI 1.2) and the size of the services table it expects.
 * Returns 0, or APPHOST_EINVAL with "<what>: <reason>" in err (err may be
 * NULL). m must not be NULL; the name and version are the caller's to
 * check (the loader's rules are stricter than the mock's).
 */
int apphost_magic_check(const char *what, const apphost_magic *m, char *err,
			size_t errlen);

#endif
