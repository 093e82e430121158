/*
 * loader.h -- finding, checking and dlopen()ing one component file.
 *
 * A component is refused, with the reason in err and nothing called, when
 *   - the file or one of its directories fails the StrictModes check
 *     (see apphost_comp_open), or the file is a symbolic link;
 *   - the same file (inode) is already loaded in this process;
 *   - dlopen(RTLD_NOW | RTLD_LOCAL) fails (dlerror text, e.g. an
 *     unresolved symbol);
 *   - it has no apphost_component_magic, or the block it returns has the
 *     wrong magic number, another ABI major, a newer ABI minor, a larger
 *     services table than the host's, or no usable name/version (checked
 *     in that order, each message naming the field and both values:
 *     "x.so: ABI major 2, host supports 1");
 *   - a lifecycle symbol is missing ("x.so: missing symbol
 *     apphost_component_start").
 * Note: dlopen() itself runs the file's ELF constructors before the magic
 * can be checked; that is why the file checks come first.
 *
 * The per-component record below is what lifecycle.h drives. Main thread
 * (or one thread at a time per record); the accessors: any thread.
 */
#ifndef APPHOST_HOST_LOADER_H
#define APPHOST_HOST_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <apphost/component.h>

#include "services.h"

enum apphost_comp_state {
	APPHOST_COMP_LOADED =
	    0,		      /* verified; not initialised (or init failed) */
	APPHOST_COMP_READY,   /* init returned 0: stop is owed */
	APPHOST_COMP_RUNNING, /* start returned 0 */
	APPHOST_COMP_STOPPED, /* stop returned (state freed by it) */
	APPHOST_COMP_STUCK,   /* stop overran its deadline: never unloaded */
};

/*
 * One loaded component. Opaque: loader.c fills what the load found (read
 * it through the accessors below), lifecycle.c owns its state and the
 * component's own (lifecycle.h); the fields are in comp_int.h, which only
 * those two files include.
 */
struct apphost_comp;

/*
 * Open a component file for loading, checked as sshd's StrictModes
 * checks its key files, without a gap between check and use: the
 * directories of `path` are resolved (realpath) and then walked from "/",
 * each opened relative to the one before without following symlinks and
 * checked on its descriptor: owned by root or `euid`, not group- or
 * world-writable unless sticky (like /tmp: the entry below is then
 * checked for its own owner). The file itself is opened once with
 * O_NOFOLLOW (a symlink is refused) and checked on that descriptor
 * (fstat): a regular file owned by root or `euid`, not group- or
 * world-writable. Returns 0 with *fd (O_RDONLY | O_CLOEXEC; the caller
 * closes it) and, when real is not NULL, *real (the canonical path,
 * malloc()ed); or APPHOST_EINVAL (refused; "PATH: why; fix" in err),
 * APPHOST_EIO (errno says why: ENOENT for a missing file),
 * APPHOST_ENOMEM. Any thread.
 */
int apphost_comp_open(const char *path, uid_t euid, int *fd, char **real,
		      char *err, size_t errlen);

/* apphost_comp_open, then close: the check alone. Any thread. */
int apphost_comp_check_file(const char *path, uid_t euid, char *err,
			    size_t errlen);

/*
 * Check, dlopen and verify the component at `path` (relative paths are
 * taken from the current directory, never from the library search path).
 * The descriptor apphost_comp_open returned is what is loaded
 * (dlopen("/proc/self/fd/N")); it stays open while the object is mapped.
 * Returns 0 and *out in state APPHOST_COMP_LOADED (nothing of the
 * component called except its magic function), or a negative code with
 * the reason in err: APPHOST_EIO (file), APPHOST_EINVAL (refused),
 * APPHOST_ENOMEM. The caller frees *out with apphost_comp_free.
 */
int apphost_comp_load(const char *path, struct apphost_comp **out, char *err,
		      size_t errlen);

/*
 * As apphost_comp_load, with `shown` as the path the record keeps for
 * messages (apphost_comp_path): hot swap loads a private copy of the
 * configured file under that file's name.
 */
int apphost_comp_load_as(const char *path, const char *shown,
			 struct apphost_comp **out, char *err, size_t errlen);

/*
 * Unload and free a record; NULL is a no-op. A record whose stop is still
 * owed (READY/RUNNING) or overran (STUCK) is never dlclose()d: its code
 * may still run; it is parked (kept reachable) instead. Main thread.
 */
void apphost_comp_free(struct apphost_comp *c);

/* Text for a state ("running"). Static; any thread. */
const char *apphost_comp_state_name(enum apphost_comp_state s);

/*
 * What the load found; fixed for the record's life. Strings live as long
 * as c: the name and version from its magic block, the path as
 * configured (for messages) and the canonical path of the file loaded.
 */
const char *apphost_comp_name(const struct apphost_comp *c);
const char *apphost_comp_version(const struct apphost_comp *c);
const char *apphost_comp_path(const struct apphost_comp *c);
const char *apphost_comp_realpath(const struct apphost_comp *c);
const apphost_magic *apphost_comp_magic(const struct apphost_comp *c);

/* Whether c exports apphost_component_export_state / _import_state. */
bool apphost_comp_can_export(const struct apphost_comp *c);
bool apphost_comp_can_import(const struct apphost_comp *c);

#endif
