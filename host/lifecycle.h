/*
 * lifecycle.h -- driving components: one at a time (for hot swap) and the
 * configured list as a whole.
 *
 * Per component (main thread; the record moves LOADED -> READY ->
 * RUNNING -> STOPPED, or STUCK when a stop overruns; this file alone
 * moves it):
 *   apphost_comp_init              bind services, call init
 *   apphost_comp_start             call start
 *   apphost_comp_stop_with_deadline call stop on a helper thread, wait
 *                                  until an absolute monotonic deadline
 *   apphost_comp_export/_import    hand state from one instance to another
 * These do not log; they return a code and a reason in err.
 *
 * The list functions log one line per step and per failure.
 */
#ifndef APPHOST_HOST_LIFECYCLE_H
#define APPHOST_HOST_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "loader.h"
#include "services.h"

/*
 * Bind c to ctx (a services table whose log lines carry c->name) and call
 * its init. c must be LOADED; ctx must outlive c's stop. Returns 0 (c is
 * READY: its stop is now owed), APPHOST_ESTATE, or the component's
 * negative code (a positive one becomes APPHOST_EINVAL) with the reason in
 * err; on failure c stays LOADED and stop must not be called. Main thread.
 */
int apphost_comp_init(struct apphost_comp *c, const struct apphost_ctx *ctx,
		      char *err, size_t errlen);

/*
 * Call start on a READY component. Returns 0 (RUNNING), APPHOST_ESTATE, or
 * the component's code with the reason in err (c stays READY: stop it).
 * Main thread.
 */
int apphost_comp_start(struct apphost_comp *c, char *err, size_t errlen);

/*
 * Call stop on a READY or RUNNING component on a helper thread and wait
 * until `deadline_ns` (apphost_now_ns() clock). Returns 0 (STOPPED),
 * the component's code (STOPPED: it returned, with an error),
 * APPHOST_ESTATE (nothing owed), or APPHOST_ETIMEDOUT: the stop is still
 * running, c is STUCK and must never be unloaded (apphost_comp_free parks
 * it) and the ctx it uses must stay alive. Main thread.
 */
int apphost_comp_stop_with_deadline(struct apphost_comp *c,
				    uint64_t deadline_ns, char *err,
				    size_t errlen);

/* c's state. Main thread (or the thread that drives c). */
enum apphost_comp_state apphost_comp_state(const struct apphost_comp *c);

/*
 * Whether c's code may still run: its stop is owed (READY, RUNNING) or
 * overran (STUCK). Such a record is never unloaded (apphost_comp_free
 * parks it), nor the file it was loaded from removed. Main thread.
 */
bool apphost_comp_live(const struct apphost_comp *c);

/*
 * A RUNNING component's export_state. Returns 0 with *buf (malloc()ed by
 * the component; the caller frees it) and *len, or 0 with *buf NULL and
 * *len 0 when c exports nothing (no such symbol, or not RUNNING), or the
 * component's negative code (a positive one becomes APPHOST_EINVAL) with
 * *buf NULL. Main thread.
 */
int apphost_comp_export(struct apphost_comp *c, void **buf, size_t *len);

/*
 * Hand buf (len bytes, from apphost_comp_export of another instance) to
 * a READY component's import_state, before its start. Returns 0 (also
 * when buf is NULL or c imports nothing), APPHOST_ESTATE when c is not
 * READY, or the component's negative code (positive: APPHOST_EINVAL).
 * Main thread.
 */
int apphost_comp_import(struct apphost_comp *c, const void *buf, size_t len);

/* The configured components, in APPHOST_COMPONENTS order. */
struct apphost_comp_list {
	struct apphost_comp **v;
	size_t n;
};

/*
 * Split `csv` (comma-separated paths; blanks around entries and empty
 * entries ignored) and load every file. Returns 0 and fills *out, or the
 * first failure (logged with its reason; nothing is kept loaded).
 * Main thread.
 */
int apphost_lifecycle_load_all(const char *csv, struct apphost_comp_list *out);

/* Loads one file as apphost_comp_load does (hot swap: from a copy). */
typedef int (*apphost_comp_load_fn)(const char *path, struct apphost_comp **out,
				    char *err, size_t errlen, void *arg);

/*
 * As apphost_lifecycle_load_all, loading each path with load(path, ...,
 * arg) (NULL: apphost_comp_load). Main thread.
 */
int apphost_lifecycle_load_all_with(const char *csv, apphost_comp_load_fn load,
				    void *arg, struct apphost_comp_list *out);

/*
 * Init every component in order. On a failure, the ones already
 * initialised are stopped in reverse order (within timeout_ms) and the
 * failure is returned; the others are never touched. Logs. Main thread.
 */
int apphost_lifecycle_init_all(struct apphost_comp_list *l,
			       const struct apphost_ctx *ctx,
			       uint32_t timeout_ms);

/*
 * Start every component in order, marking each up for /readyz and
 * apphost_component_up (metrics.h). On a failure every initialised one
 * (started or not) is stopped in reverse order within timeout_ms and the
 * failure is returned. Logs. Main thread.
 */
int apphost_lifecycle_start_all(struct apphost_comp_list *l,
				uint32_t timeout_ms);

/*
 * --check --connect: each initialised component's check (ABI 1.3), in
 * list order; a component without one is logged as not checked. Logs
 * each report. Returns 0 when every check passed, else the first
 * failure's code. Main thread.
 */
int apphost_lifecycle_check_all(struct apphost_comp_list *l);

/*
 * Stop every READY/RUNNING component in reverse order, all within
 * timeout_ms. A stop still running at the deadline is logged as an error
 * and left behind (STUCK); components after it still get a short grace
 * (timeout/10, 100..1000 ms) so a prompt stop is not skipped. Each one
 * that returned is marked down (metrics.h). Returns 0,
 * APPHOST_ETIMEDOUT if any overran, or the first stop error. Logs.
 * Main thread.
 */
int apphost_lifecycle_stop_all(struct apphost_comp_list *l,
			       uint32_t timeout_ms);

/*
 * Put nc in l's slot i (hot swap) and return the record it held; the
 * caller stops and frees that one. i must be < l->n. Main thread.
 */
struct apphost_comp *apphost_lifecycle_replace(struct apphost_comp_list *l,
					       size_t i,
					       struct apphost_comp *nc);

/* Number of STUCK components (their ctx must stay alive). */
size_t apphost_lifecycle_stuck(const struct apphost_comp_list *l);

/* Free every record (stop-owed or stuck ones are parked, see
 * apphost_comp_free) and the list; NULL is a no-op. Main thread. */
void apphost_lifecycle_free_all(struct apphost_comp_list *l);

#endif
