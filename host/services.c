/* services.c -- see services.h. */
#include "services.h"

#include <stdarg.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "pool_pg.h"
#include "pool_redis.h"
#include "status.h"

APPHOST_PRINTF(4, 5)
static void svc_log(void *host, int level, const char *msg,
		    const char *fields_fmt, ...)
{
	struct apphost_svc_host *h = host;
	va_list ap;

	va_start(ap, fields_fmt);
	apphost_logv(level, h->name, msg, fields_fmt, ap);
	va_end(ap);
}

static bool svc_log_enabled(void *host, int level)
{
	(void)host;
	return apphost_log_enabled(level);
}

static const char *svc_config_get(void *host, const char *key)
{
	struct apphost_svc_host *h = host;

	return apphost_config_get(h->ctx->cfg, key);
}

/*
 * A lease's code as the component knows it: one built before ABI 1.3 has
 * no EPERM or EAUTH and gets the ECONN it always got for them.
 */
static int lease_code(const struct apphost_svc_host *h, int rc)
{
	if (h->abi_minor < 3 && (rc == APPHOST_EPERM || rc == APPHOST_EAUTH))
		return APPHOST_ECONN;
	return rc;
}

static int svc_redis_lease(void *host, uint32_t timeout_ms,
			   struct redisContext **out)
{
	struct apphost_svc_host *h = host;

	if (out == NULL)
		return APPHOST_EINVAL;
	*out = NULL;
	if (h->ctx->redis == NULL)
		return APPHOST_ENOTSUP;
	return lease_code(h, apphost_redis_pool_lease(h->ctx->redis, timeout_ms,
						      h->name, out));
}

static void svc_redis_release(void *host, struct redisContext *c, bool broken)
{
	struct apphost_svc_host *h = host;

	if (c == NULL || h->ctx->redis == NULL)
		return;
	(void)apphost_redis_pool_release(h->ctx->redis, c, h->name, broken);
}

static int svc_pg_lease(void *host, uint32_t timeout_ms, struct pg_conn **out)
{
	struct apphost_svc_host *h = host;

	if (out == NULL)
		return APPHOST_EINVAL;
	*out = NULL;
	if (h->ctx->pg == NULL)
		return APPHOST_ENOTSUP;
	return lease_code(
	    h, apphost_pg_pool_lease(h->ctx->pg, timeout_ms, h->name, out));
}

static void svc_pg_release(void *host, struct pg_conn *c, bool broken)
{
	struct apphost_svc_host *h = host;

	if (c == NULL || h->ctx->pg == NULL)
		return;
	(void)apphost_pg_pool_release(h->ctx->pg, c, h->name, broken);
}

static uint64_t svc_now_ns(void *host)
{
	(void)host;
	return apphost_now_ns();
}

static int svc_metric_get(void *host, int type, const char *name,
			  const char *help, const char *const *labels,
			  const double *buckets, size_t nbuckets,
			  struct apphost_metric **out)
{
	(void)host;
	return apphost_metrics_get(apphost_metrics_default(), type, name, help,
				   labels, buckets, nbuckets, out);
}

static void svc_metric_add(void *host, struct apphost_metric *m, double v)
{
	(void)host;
	apphost_metric_add(m, v);
}

static void svc_metric_set(void *host, struct apphost_metric *m, double v)
{
	(void)host;
	apphost_metric_set(m, v);
}

static void svc_metric_observe(void *host, struct apphost_metric *m, double v)
{
	(void)host;
	apphost_metric_observe(m, v);
}

static void svc_set_ready(void *host, bool ready, const char *reason)
{
	struct apphost_svc_host *h = host;

	apphost_status_set_ready(h->name, ready, reason);
}

void apphost_services_fill(apphost_services *svc, struct apphost_svc_host *h)
{
	*svc = (apphost_services){
	    .size = (uint32_t)sizeof(apphost_services),
	    .host = h,
	    .log = svc_log,
	    .log_enabled = svc_log_enabled,
	    .config_get = svc_config_get,
	    .redis_lease = svc_redis_lease,
	    .redis_release = svc_redis_release,
	    .pg_lease = svc_pg_lease,
	    .pg_release = svc_pg_release,
	    .now_ns = svc_now_ns,
	    .metric_get = svc_metric_get,
	    .metric_add = svc_metric_add,
	    .metric_set = svc_metric_set,
	    .metric_observe = svc_metric_observe,
	    .set_ready = svc_set_ready,
	};
}
