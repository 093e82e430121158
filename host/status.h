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
 * set_ready: the ABI hands text). The text is parsed once, here, into a
 * short code (its head before the first ':' or control character, the
 * end of its first line, trimmed; "not ready" when there is none), the
 * only part /readyz and STATUS= show, and the detail
 * (the whole text, truncated to 200 bytes), which only the log gets: a
 * change is logged with it.
 */
void apphost_status_set_ready(const char *name, bool ready, const char *reason);

/*
 * A condition of the host's own (not a component), e.g. the Redis pool's
 * "no primary known": while not ok, /readyz is not ready and shows
 * "<what>: <code>". The owner adds it (`what` is a short constant that
 * outlives the condition), sets it, and removes it before it goes away;
 * conditions are shown in the order they were added. Returns NULL when
 * out of memory (setting or removing NULL does nothing). The code is
 * copied, control characters blanked; keep it short and generic (/readyz
 * shows it to whoever asks): details belong in the owner's log line.
 */
struct apphost_status_cond;

struct apphost_status_cond *apphost_status_cond_add(const char *what);
void apphost_status_cond_set(struct apphost_status_cond *c, bool ok,
			     const char *code);
void apphost_status_cond_remove(struct apphost_status_cond *c);

/* The host is stopping (SIGINT/SIGTERM): /readyz answers 503 from now. */
void apphost_status_set_stopping(void);

/* ---- the host's readiness, structured ---------------------------------- */

#define APPHOST_STATUS_LINES 32

/* One reason or note: "<who>: <code>", or the code alone when who is "". */
struct apphost_status_line {
	char who[64];
	char code[201];
};

/*
 * ok: not stopping, no host condition fails, at least one component is
 * known, and every known component is up and ready. line[0..n): in the
 * order /readyz shows them: "stopping", the failing host conditions, "no
 * component started yet", then per component "not started", its code
 * when not ready, or its note when ready with one (lines past
 * APPHOST_STATUS_LINES are dropped; ok still counts them).
 */
struct apphost_status {
	bool ok;
	size_t n;
	struct apphost_status_line line[APPHOST_STATUS_LINES];
};

/* The readiness of now into *st. */
void apphost_status_get(struct apphost_status *st);

/*
 * st as /readyz serves it: one "<line>\n" per line, then "ready\n" when
 * ok (buf always NUL-terminated, truncated to cap).
 */
void apphost_status_text(const struct apphost_status *st, char *buf,
			 size_t cap);

/* apphost_status_get, then apphost_status_text; returns ok. */
bool apphost_status_ready(char *buf, size_t cap);

#endif
