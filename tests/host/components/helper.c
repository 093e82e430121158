/* helper.c -- built twice (helper_a, helper_b) with a different
 * HELPER_VALUE. Each exports a global `helper` (default visibility, on
 * purpose): with RTLD_GLOBAL the second would bind to the first's; with
 * RTLD_LOCAL each calls its own, and init checks that. */
#include <apphost/component.h>

#ifndef HELPER_NAME
#error "HELPER_NAME and HELPER_VALUE must be defined"
#endif

APPHOST_COMPONENT(HELPER_NAME, "1");

APPHOST_EXPORT int helper(void);

APPHOST_EXPORT int helper(void)
{
	return HELPER_VALUE;
}

int apphost_component_init(const apphost_services *svc, void **state)
{
	int got = helper();

	svc->log(svc->host, APPHOST_LOG_INFO, "helper called", "got=%d want=%d",
		 got, HELPER_VALUE);
	*state = NULL;
	return got == HELPER_VALUE ? 0 : APPHOST_EINVAL;
}

int apphost_component_start(void *state)
{
	return 0;
}

int apphost_component_stop(void *state)
{
	return 0;
}
