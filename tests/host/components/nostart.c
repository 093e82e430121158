/* nostart.c -- magic, init and stop, but no start: refused at load. */
#include <apphost/component.h>

APPHOST_COMPONENT("nostart", "0");

int apphost_component_init(const apphost_services *svc, void **state)
{
	*state = NULL;
	return 0;
}

int apphost_component_stop(void *state)
{
	return 0;
}
