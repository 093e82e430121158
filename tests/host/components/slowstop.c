/* slowstop.c -- a stop that sleeps TEST_SLOW_STOP_MS (default 5000) and
 * so overruns a short shutdown deadline. It touches no host service after
 * sleeping: the host may be gone by then. */
#include <stdlib.h>
#include <time.h>

#include <apphost/component.h>

#include "record.h"

APPHOST_COMPONENT("slowstop", "1");

struct slow {
	long ms;
};

int apphost_component_init(const apphost_services *svc, void **state)
{
	struct slow *s = malloc(sizeof(*s));
	const char *v = svc->config_get(svc->host, "TEST_SLOW_STOP_MS");

	if (s == NULL)
		return APPHOST_ENOMEM;
	s->ms = v != NULL ? atol(v) : 5000;
	record(svc, "init", "slowstop");
	*state = s;
	return 0;
}

int apphost_component_start(void *state)
{
	return 0;
}

int apphost_component_stop(void *state)
{
	struct slow *s = state;
	struct timespec ts = {s->ms / 1000, (s->ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
	free(s);
	return 0;
}
