/* noop.c -- lifecycle functions that do nothing, for components whose
 * test is about what surrounds them (the magic block, or its absence).
 * Built alone it is nomagic.so: lifecycle symbols but no
 * APPHOST_COMPONENT(), which must be refused. */
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
