/*
 * he_transitions.c -- status names and the allowed-transitions table.
 *
 * Shaped like Game Master's table: the consumer only relies on
 * running -> engine_unreachable and engine_unreachable -> running; the
 * rest documents the lifecycle the other flows drive (turn generation,
 * admin stop/finish). finished is terminal.
 */
#include "he_transitions.h"

#include <string.h>

static const char *const status_names[HE_STATUS_COUNT] = {
    [HE_STATUS_STARTING] = "starting",
    [HE_STATUS_RUNNING] = "running",
    [HE_STATUS_GENERATION_IN_PROGRESS] = "generation_in_progress",
    [HE_STATUS_GENERATION_FAILED] = "generation_failed",
    [HE_STATUS_STOPPED] = "stopped",
    [HE_STATUS_FINISHED] = "finished",
    [HE_STATUS_ENGINE_UNREACHABLE] = "engine_unreachable",
};

static const struct {
	he_status from, to;
} allowed[] = {
    {HE_STATUS_STARTING, HE_STATUS_RUNNING},
    {HE_STATUS_STARTING, HE_STATUS_STOPPED},
    {HE_STATUS_STARTING, HE_STATUS_FINISHED},
    {HE_STATUS_RUNNING, HE_STATUS_GENERATION_IN_PROGRESS},
    /* health_events: terminal container events (DESIGN §4). */
    {HE_STATUS_RUNNING, HE_STATUS_ENGINE_UNREACHABLE},
    {HE_STATUS_RUNNING, HE_STATUS_STOPPED},
    {HE_STATUS_RUNNING, HE_STATUS_FINISHED},
    {HE_STATUS_GENERATION_IN_PROGRESS, HE_STATUS_RUNNING},
    {HE_STATUS_GENERATION_IN_PROGRESS, HE_STATUS_GENERATION_FAILED},
    {HE_STATUS_GENERATION_IN_PROGRESS, HE_STATUS_FINISHED},
    {HE_STATUS_GENERATION_FAILED, HE_STATUS_GENERATION_IN_PROGRESS},
    {HE_STATUS_GENERATION_FAILED, HE_STATUS_RUNNING},
    {HE_STATUS_GENERATION_FAILED, HE_STATUS_STOPPED},
    {HE_STATUS_GENERATION_FAILED, HE_STATUS_FINISHED},
    /* health_events: probe_recovered (seed D1). */
    {HE_STATUS_ENGINE_UNREACHABLE, HE_STATUS_RUNNING},
    {HE_STATUS_ENGINE_UNREACHABLE, HE_STATUS_STOPPED},
    {HE_STATUS_ENGINE_UNREACHABLE, HE_STATUS_FINISHED},
    {HE_STATUS_STOPPED, HE_STATUS_RUNNING},
    {HE_STATUS_STOPPED, HE_STATUS_FINISHED},
};

const char *he_status_name(he_status s)
{
	return (unsigned)s < HE_STATUS_COUNT ? status_names[s] : NULL;
}

int he_status_parse(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < HE_STATUS_COUNT; i++)
		if (strcmp(status_names[i], name) == 0)
			return i;
	return -1;
}

bool he_transition_allowed(const char *from, const char *to)
{
	int f = he_status_parse(from), t = he_status_parse(to);

	if (f < 0 || t < 0 || f == t)
		return false;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if ((int)allowed[i].from == f && (int)allowed[i].to == t)
			return true;
	return false;
}
