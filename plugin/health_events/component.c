/*
 * component.c -- health_events.so's entry points (include/apphost/
 * component.h): init validates configuration, start runs the consumer
 * thread, stop finishes and frees it, export/import carry the dedupe
 * cache across a hot swap.
 */
#include "consumer.h"
#include "preflight.h"

#include <stdio.h>

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

/*
 * --check --connect: the permission check of both servers, as the
 * consumer runs it before it reports ready; nothing is written.
 */
APPHOST_EXPORT int apphost_component_check(void *state, char *report,
					   size_t cap)
{
	he_preflight *pf = he_consumer_preflight(state);
	char pg[sizeof(pf->err)], rd[sizeof(pf->err)];
	int rp = he_preflight_pg(pf);
	snprintf(pg, sizeof(pg), "%s", rp == 0 ? "ok" : pf->err);
	int rr = he_preflight_redis(pf);
	snprintf(rd, sizeof(rd), "%s", rr == 0 ? "ok" : pf->err);
	snprintf(report, cap, "postgres: %.500s; redis: %.500s", pg, rd);
	return he_to_apphost(rp < 0 ? rp : rr);
}
