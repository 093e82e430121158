/*
 * services.h -- the host context shared by all components, and the
 * apphost_services table each component receives.
 *
 * Each component gets its own table whose `host` pointer is its own
 * struct apphost_svc_host, so log lines carry the component's name and
 * leases are attributed to it. Everything behind the table is thread-safe.
 */
#ifndef APPHOST_HOST_SERVICES_H
#define APPHOST_HOST_SERVICES_H

#include <apphost/component.h>

struct apphost_config;
struct apphost_redis_pool;
struct apphost_pg_pool;

/* What every component shares. Owned by main (or a test); outlives every
 * component that uses it. A NULL pool makes its lease APPHOST_ENOTSUP. */
struct apphost_ctx {
	struct apphost_config *cfg;
	struct apphost_redis_pool *redis;
	struct apphost_pg_pool *pg;
	uint32_t shutdown_timeout_ms;
};

/* The per-component `host` pointer behind a services table. */
struct apphost_svc_host {
	const struct apphost_ctx *ctx;
	char name[64];	    /* component name, as in its magic block */
	unsigned abi_minor; /* the component's: which codes it knows */
};

/*
 * Fill *svc with the host's functions, bound to h (svc->host = h).
 * h->ctx and h->name must be set; both h and *svc must stay at a fixed
 * address until the component's stop has returned. Any thread.
 */
void apphost_services_fill(apphost_services *svc, struct apphost_svc_host *h);

#endif
