/* good.c -- a well-behaved component: logs, reads a config key, supports
 * state export/import. */
#include <stdlib.h>
#include <string.h>

#include <apphost/component.h>

#include "record.h"

APPHOST_COMPONENT("good", "1.2.3");

struct good {
	const apphost_services *svc;
	char greeting[64];
};

int apphost_component_init(const apphost_services *svc, void **state)
{
	struct good *g = calloc(1, sizeof(*g));
	const char *v = svc->config_get(svc->host, "TEST_GOOD_GREETING");

	if (g == NULL)
		return APPHOST_ENOMEM;
	g->svc = svc;
	snprintf(g->greeting, sizeof(g->greeting), "%s", v ? v : "hello");
	svc->log(svc->host, APPHOST_LOG_INFO, "good init", "greeting=%s",
		 g->greeting);
	record(svc, "init", "good");
	*state = g;
	return 0;
}

int apphost_component_start(void *state)
{
	struct good *g = state;

	g->svc->log(g->svc->host, APPHOST_LOG_INFO, "good started", NULL);
	record(g->svc, "start", "good");
	return 0;
}

int apphost_component_stop(void *state)
{
	struct good *g = state;

	g->svc->log(g->svc->host, APPHOST_LOG_INFO, "good stopped", NULL);
	record(g->svc, "stop", "good");
	free(g);
	return 0;
}

int apphost_component_export(void *state, void **buf, size_t *len)
{
	struct good *g = state;

	*buf = strdup(g->greeting);
	if (*buf == NULL)
		return APPHOST_ENOMEM;
	*len = strlen(g->greeting) + 1;
	return 0;
}

int apphost_component_import(void *state, const void *buf, size_t len)
{
	struct good *g = state;

	if (len == 0 || len > sizeof(g->greeting) ||
	    ((const char *)buf)[len - 1] != '\0')
		return APPHOST_EINVAL;
	memcpy(g->greeting, buf, len);
	return 0;
}
