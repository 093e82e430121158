/* order.c -- built five times as order1..order5 (-DORDER_NAME). Records
 * init/start/stop into TEST_ORDER_LOG; init fails when
 * TEST_ORDER_FAIL_INIT names it, start when TEST_ORDER_FAIL_START does. */
#include <stdlib.h>
#include <string.h>

#include <apphost/component.h>

#include "record.h"

#ifndef ORDER_NAME
#error "ORDER_NAME must be defined"
#endif

APPHOST_COMPONENT(ORDER_NAME, "1");

static bool named(const apphost_services *svc, const char *key)
{
	const char *v = svc->config_get(svc->host, key);

	return v != NULL && strcmp(v, ORDER_NAME) == 0;
}

int apphost_component_init(const apphost_services *svc, void **state)
{
	record(svc, "init", ORDER_NAME);
	if (named(svc, "TEST_ORDER_FAIL_INIT")) {
		svc->log(svc->host, APPHOST_LOG_ERROR, "init refused by test",
			 "key=TEST_ORDER_FAIL_INIT");
		return APPHOST_EINVAL;
	}
	*state = (void *)svc;
	return 0;
}

int apphost_component_start(void *state)
{
	const apphost_services *svc = state;

	record(svc, "start", ORDER_NAME);
	return named(svc, "TEST_ORDER_FAIL_START") ? APPHOST_EIO : 0;
}

int apphost_component_stop(void *state)
{
	record(state, "stop", ORDER_NAME);
	return 0;
}
