/* undef.c -- calls a function nobody defines; linked without -z defs, so
 * dlopen(RTLD_NOW) must refuse it with the dlerror text. */
#include <apphost/component.h>

extern void apphost_test_undefined_symbol(void);

APPHOST_COMPONENT("undef", "0");

int apphost_component_init(const apphost_services *svc, void **state)
{
	apphost_test_undefined_symbol();
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
