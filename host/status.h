/*
 * status.h -- the per-component status behind /readyz and the
 * apphost_component_up{component} and apphost_component_ready{component}
 * gauges (in the default registry).
 *
 * An entry per component name: whether it is started (set by the
 * lifecycle and by hot swap), and its last readiness report (the
 * services table's set_ready). Entries are never removed, so a component
 * that is swapped or restarted keeps its gauge. The lifecycle registers
 * each component when it initialises it (apphost_comp_init), so /readyz
 * waits for a component from then on, before it has started.
 *
 * All functions may be called from any thread.
 */
#ifndef APPHOST_HOST_STATUS_H
#define APPHOST_HOST_STATUS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Make `name` known (not up, no report) if it is not yet: from then on
 * /readyz waits for it. Leaves an existing entry as it is (hot swap).
 */
void apphost_status_register(const char *name);

/*
 * Mark component `name` started (up=true) or stopped (false); creates its
 * entry on first use. A component that goes up again keeps its last
 * readiness report until it reports anew (set_ready in init resets it).
 */
void apphost_status_set_up(const char *name, bool up);

/*
 * Record a readiness report from component `name` (the services table's
 * set_ready). `reason` (may be NULL) is copied, truncated to 200 bytes;
 * /readyz shows only its head before the first ':', a change is logged
 * with the whole reason.
 */
void apphost_status_set_ready(const char *name, bool ready, const char *reason);

/*
 * A condition of the host's own (not a component), e.g. "redis" while no
 * primary is known: while not ok, /readyz is not ready and shows
 * "<what>: <reason>". Entries are made on first use (at most 8 names;
 * `what` is a short constant that outlives the process's use of it) and
 * kept. `reason` is copied; keep it short and generic (/readyz shows it
 * to whoever asks).
 */
void apphost_status_set_host(const char *what, bool ok, const char *reason);

/* The host is stopping (SIGINT/SIGTERM): /readyz answers 503 from now. */
void apphost_status_set_stopping(void);

/*
 * Readiness of the whole host: true when not stopping, no host condition
 * fails, at least one component is known, and every known component is up
 * and ready. Writes
 * "ready\n" or one line per reason ("health_events: not started\n") into
 * buf (always NUL-terminated, truncated to cap).
 */
bool apphost_status_ready(char *buf, size_t cap);

#endif
