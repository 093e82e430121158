/*
 * loader.h -- finding, checking and dlopen()ing one component file.
 *
 * A component is refused, with the reason in err and nothing called, when
 *   - the file or its directory fails the StrictModes check (see
 *     apphost_comp_check_file);
 *   - the same file is already loaded in this process;
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
 * (or one thread at a time per record).
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

struct apphost_comp {
	char *path;	/* as configured, used in messages */
	char *realpath; /* the canonical file that was dlopen()ed */
	void *handle;	/* dlopen handle */
	const apphost_magic *magic;
	char name[64];	  /* magic->name, copied */
	char version[64]; /* magic->version, copied */

	apphost_init_fn init;
	apphost_start_fn start;
	apphost_stop_fn stop;
	apphost_export_fn export_state; /* NULL unless exported */
	apphost_import_fn import_state; /* NULL unless exported */

	enum apphost_comp_state state;
	void *cstate; /* the component's own state from init */

	struct apphost_svc_host svc_host; /* svc.host points here */
	apphost_services svc;
};

/*
 * StrictModes check, as sshd does for its key files: `path` must be a
 * regular file owned by root or by `euid`, and not group- or
 * world-writable; its directory must be owned by root or `euid` and not
 * group- or world-writable unless sticky (like /tmp). Returns 0, or
 * APPHOST_EINVAL with "PATH: why; fix" in err (APPHOST_EIO when stat
 * fails). Any thread.
 */
int apphost_comp_check_file(const char *path, uid_t euid, char *err,
			    size_t errlen);

/*
 * Check, dlopen and verify the component at `path` (relative paths are
 * taken from the current directory, never from the library search path).
 * Returns 0 and *out in state APPHOST_COMP_LOADED (nothing of the
 * component called except its magic function), or a negative code with
 * the reason in err: APPHOST_EIO (file), APPHOST_EINVAL (refused),
 * APPHOST_ENOMEM. The caller frees *out with apphost_comp_free.
 */
int apphost_comp_load(const char *path, struct apphost_comp **out, char *err,
		      size_t errlen);

/*
 * Unload and free a record; NULL is a no-op. A record whose stop is still
 * owed (READY/RUNNING) or overran (STUCK) is never dlclose()d: its code
 * may still run; it is parked (kept reachable) instead. Main thread.
 */
void apphost_comp_free(struct apphost_comp *c);

/* Text for a state ("running"). Static; any thread. */
const char *apphost_comp_state_name(enum apphost_comp_state s);

#endif
