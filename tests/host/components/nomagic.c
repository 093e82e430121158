/* nomagic.c -- lifecycle symbols but no APPHOST_COMPONENT(): refused. */
#include <apphost/component.h>

int apphost_component_init(const apphost_services *svc, void **state)
{
	*state = NULL;
	return 0;
}

int apphost_component_start(void *state)
{
	return 0;
}

int apphost_component_stop(void *state)
{
	return 0;
}
