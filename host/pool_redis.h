/*
 * pool_redis.h -- the shared pool of hiredis connections
 * (APPHOST_REDIS_URL). See pool.h for leasing, backoff and logging.
 *
 * Every connection: redisConnectWithTimeout, AUTH (argv; "AUTH user pass"
 * when the URL names a user) when the URL has a password, SELECT db when
 * db != 0, and a 5 s command timeout re-applied at every lease. A context
 * with c->err set at lease time is discarded (hiredis contexts cannot be
 * reused after an error), and so is one with anything unsent or unread
 * or a MULTI left open; every lease selects the configured db again and
 * drops WATCHes (one pipelined round trip). Any thread.
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

/* Where the Sentinels are (APPHOST_REDIS_SENTINEL*); strings are copied. */
struct apphost_redis_sentinel {
	const char *sentinels; /* "host:port,host:port" (sentinel.h) */
	const char *master;    /* the master name they monitor */
	const char *password;  /* AUTH to each Sentinel; NULL or "": none */
};

/*
 * As apphost_redis_pool_new; with sen (not NULL) the primary's address
 * comes from the Sentinels and `url` gives only password (user) and db.
 * Each new connection asks them in turn (500 ms each at most, the one
 * that answered last first), connects, AUTHs, checks ROLE is master and
 * SELECTs the db; idle connections to an address that is no longer the
 * primary are dropped at lease time. A change of primary is logged once
 * ("redis primary changed from=... to=...") and counted in
 * apphost_redis_primary_changes_total; while no primary is known /readyz
 * says "redis: no primary known". An error in sen is APPHOST_EINVAL with
 * the reason in err (the caller names the key).
 */
int apphost_redis_pool_new_sentinel(const char *url,
				    const struct apphost_redis_sentinel *sen,
				    unsigned max,
				    struct apphost_redis_pool **out, char *err,
				    size_t errlen);

/* Server address for log lines ("host:port/db", or with Sentinel
 * "sentinel:<master>@h1:p1,h2:p2/db"; no secret). Owned by p. */
const char *apphost_redis_pool_addr(const struct apphost_redis_pool *p);

/* As apphost_pool_lease, for a redisContext. */
int apphost_redis_pool_lease(struct apphost_redis_pool *p, uint32_t timeout_ms,
			     const char *who, struct redisContext **out);

/* As apphost_pool_release (a context with c->err set counts as broken). */
int apphost_redis_pool_release(struct apphost_redis_pool *p,
			       struct redisContext *c, const char *who,
			       bool broken);

/* Connections currently leased. */
unsigned apphost_redis_pool_leased(struct apphost_redis_pool *p);

/*
 * Sentinels known: those configured, and those discovered since (SENTINEL
 * sentinels, +sentinel: the watcher asks and listens). 0 without Sentinel.
 * Any thread.
 */
size_t apphost_redis_pool_sentinels(struct apphost_redis_pool *p);

/* As apphost_pool_free; NULL is a no-op. */
void apphost_redis_pool_free(struct apphost_redis_pool *p);

#endif
