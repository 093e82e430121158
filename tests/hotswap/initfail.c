/* initfail.c -- a health_events build whose init refuses: a hot swap to it
 * must leave the running build serving. */
#include <apphost/component.h>

APPHOST_COMPONENT("health_events", "initfail");

APPHOST_EXPORT int apphost_component_init(const apphost_services *svc,
					  void **state)
{
	svc->log(svc->host, APPHOST_LOG_ERROR, "init refuses on purpose", NULL);
	*state = NULL;
	return APPHOST_EINVAL;
}

APPHOST_EXPORT int apphost_component_start(void *state)
{
	return APPHOST_ESTATE;
}

APPHOST_EXPORT int apphost_component_stop(void *state)
{
	return 0;
}
