/*
 * component.c -- health_events.so's entry points (include/apphost/
 * component.h): init validates configuration, start runs the consumer
 * thread, stop finishes and frees it, export/import carry the dedupe
 * cache across a hot swap.
 */
#include "consumer.h"

#include <apphost/component.h>

#ifndef HE_VERSION
#define HE_VERSION "0.0.0"
#endif

APPHOST_COMPONENT("health_events", HE_VERSION);

APPHOST_EXPORT int apphost_component_init(const apphost_services *svc,
					  void **state)
{
	if (!APPHOST_SVC_HAS(svc, set_ready)) {
		svc->log(svc->host, APPHOST_LOG_ERROR,
			 "services table too small", "size=%u want=%zu",
			 (unsigned)svc->size, sizeof(apphost_services));
		return APPHOST_EINVAL;
	}
	he_consumer *c;
	int r = he_consumer_new(svc, &c);
	if (r < 0)
		return he_to_apphost(r);
	*state = c;
	return APPHOST_OK;
}

APPHOST_EXPORT int apphost_component_start(void *state)
{
	return he_to_apphost(he_consumer_start(state));
}

APPHOST_EXPORT int apphost_component_stop(void *state)
{
	he_consumer_free(state);
	return APPHOST_OK;
}

APPHOST_EXPORT int apphost_component_export(void *state, void **buf,
					    size_t *len)
{
	return he_to_apphost(he_consumer_export(state, buf, len));
}

APPHOST_EXPORT int apphost_component_import(void *state, const void *buf,
					    size_t len)
{
	return he_to_apphost(he_consumer_import(state, buf, len));
}
