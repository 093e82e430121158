/*
 * he_events.c -- the event-type table (DESIGN §4). Changing what an event
 * does is an edit of one row here.
 */
#include "he_events.h"

#include <string.h>

#define RUNNING	    "running"
#define UNREACHABLE "engine_unreachable"

static const he_event_type event_types[HE_EVENT_TYPE_COUNT] = {
    /* D1: informational; GM owns startup through register-runtime. */
    {"container_started", "healthy", NULL, NULL},
    /* D1: the only event that recovers an unreachable engine. */
    {"probe_recovered", "healthy", UNREACHABLE, RUNNING},
    {"container_exited", "exited", RUNNING, UNREACHABLE},
    {"container_oom", "oom", RUNNING, UNREACHABLE},
    {"container_disappeared", "disappeared", RUNNING, UNREACHABLE},
    {"inspect_unhealthy", "unhealthy", NULL, NULL},
    {"probe_failed", "probe_failed", NULL, NULL},
};

/* Distinct summaries of the table above, in first-use order. */
static const char *const summaries[] = {
    "healthy", "exited", "oom", "disappeared", "unhealthy", "probe_failed",
};

const he_event_type *he_event_lookup(const char *name, size_t len)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < HE_EVENT_TYPE_COUNT; i++) {
		const char *n = event_types[i].name;
		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return &event_types[i];
	}
	return NULL;
}

const he_event_type *he_event_at(size_t i)
{
	return i < HE_EVENT_TYPE_COUNT ? &event_types[i] : NULL;
}

size_t he_summary_count(void)
{
	return sizeof(summaries) / sizeof(summaries[0]);
}

int he_summary_index(const char *s)
{
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < he_summary_count(); i++)
		if (strcmp(summaries[i], s) == 0)
			return (int)i;
	return -1;
}

const char *he_summary_at(size_t i)
{
	return i < he_summary_count() ? summaries[i] : NULL;
}
