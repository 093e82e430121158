/*
 * he_transitions.h -- runtime_records status names (DESIGN §5) and the
 * one table of allowed status transitions. Static data; pure functions,
 * any thread.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_TRANSITIONS_H
#define HE_TRANSITIONS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum he_status {
	HE_STATUS_STARTING = 0,
	HE_STATUS_RUNNING,
	HE_STATUS_GENERATION_IN_PROGRESS,
	HE_STATUS_GENERATION_FAILED,
	HE_STATUS_STOPPED,
	HE_STATUS_FINISHED,
	HE_STATUS_ENGINE_UNREACHABLE,
	HE_STATUS_COUNT
} he_status;

/* Name of a status ("running", ...), or NULL when out of range. */
const char *he_status_name(he_status s);

/* The status named by the NUL-terminated name, or -1 when unknown. */
int he_status_parse(const char *name);

/*
 * true when `from -> to` is in the transition table. Unknown names and
 * self-transitions are never allowed. NULL arguments give false.
 */
bool he_transition_allowed(const char *from, const char *to);

/* Signature of a transition check (he_transition_allowed is one). */
typedef bool (*he_transition_fn)(const char *from, const char *to);

#endif /* HE_TRANSITIONS_H */
