/* initfail.c -- health_events builds that fail: init refuses, or (with
 * -DFAIL_AT_START) init works and start refuses. A hot swap to either must
 * leave a build of the real component serving. */
#include <apphost/component.h>

#ifdef FAIL_AT_START
APPHOST_COMPONENT("health_events", "startfail");
#else
APPHOST_COMPONENT("health_events", "initfail");
#endif

APPHOST_EXPORT int apphost_component_init(const apphost_services *svc,
					  void **state)
{
	*state = (void *)svc;
#ifdef FAIL_AT_START
	return 0;
#else
	svc->log(svc->host, APPHOST_LOG_ERROR, "init refuses on purpose", NULL);
	return APPHOST_EINVAL;
#endif
}

APPHOST_EXPORT int apphost_component_start(void *state)
{
	const apphost_services *svc = state;

	svc->log(svc->host, APPHOST_LOG_ERROR, "start refuses on purpose",
		 NULL);
	return APPHOST_ESTATE;
}

APPHOST_EXPORT int apphost_component_stop(void *state)
{
	return 0;
}
