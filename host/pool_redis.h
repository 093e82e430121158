/*
 * pool_redis.h -- the shared pool of hiredis connections
 * (APPHOST_REDIS_URL). See pool.h for leasing, backoff and logging.
 *
 * Every connection: redisConnectWithTimeout, AUTH (argv; "AUTH user pass"
 * when the URL names a user) when the URL has a password, SELECT db when
 * db != 0, and a 5 s command timeout re-applied at every lease. A context
 * with c->err set at lease time is discarded (hiredis contexts cannot be
 * reused after an error). Any thread.
 */
#ifndef APPHOST_HOST_POOL_REDIS_H
#define APPHOST_HOST_POOL_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <apphost/component.h>

#define APPHOST_REDIS_COMMAND_TIMEOUT_MS 5000

struct apphost_redis_pool;

/*
 * Parse `url` and create a pool of at most `max` connections; does not
 * connect. Returns 0 and *out (free with apphost_redis_pool_free), or
 * APPHOST_EINVAL with the reason in err (no password), or APPHOST_ENOMEM.
 */
int apphost_redis_pool_new(const char *url, unsigned max,
			   struct apphost_redis_pool **out, char *err,
			   size_t errlen);

/* Server address for log lines ("host:port/db", no secret). Owned by p. */
const char *apphost_redis_pool_addr(const struct apphost_redis_pool *p);

/* As apphost_pool_lease, for a redisContext. */
int apphost_redis_pool_lease(struct apphost_redis_pool *p, uint32_t timeout_ms,
			     const char *who, struct redisContext **out);

/* As apphost_pool_release. */
void apphost_redis_pool_release(struct apphost_redis_pool *p,
				struct redisContext *c, bool broken);

/* Connections currently leased. */
unsigned apphost_redis_pool_leased(struct apphost_redis_pool *p);

/* As apphost_pool_free; NULL is a no-op. */
void apphost_redis_pool_free(struct apphost_redis_pool *p);

#endif
