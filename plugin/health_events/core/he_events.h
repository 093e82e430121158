/*
 * he_events.h -- the seven runtime:health_events event types (DESIGN §4,
 * seed D1) as one table of data, and the engine_health summaries they
 * write. Static data; every function is pure and may be called from any
 * thread.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_EVENTS_H
#define HE_EVENTS_H

#include <stddef.h>

typedef struct he_event_type {
	const char *name;     /* event_type value on the stream */
	const char *summary;  /* written to runtime_records.engine_health */
	const char *expected; /* CAS source status, or NULL: health-only */
	const char *to;	      /* CAS target status, or NULL: health-only */
} he_event_type;

#define HE_EVENT_TYPE_COUNT 7

/* The type named name[0..len), or NULL when there is none. */
const he_event_type *he_event_lookup(const char *name, size_t len);

/* The i-th type in table order (i < HE_EVENT_TYPE_COUNT), else NULL. */
const he_event_type *he_event_at(size_t i);

/*
 * The distinct summaries of the table, for interning: he_summary_index
 * returns the index (0 <= i < he_summary_count()) of a known summary
 * equal to the NUL-terminated s, or -1; he_summary_at returns the
 * static string for an index, or NULL when out of range.
 */
size_t he_summary_count(void);
int he_summary_index(const char *s);
const char *he_summary_at(size_t i);

#endif /* HE_EVENTS_H */
