/*
 * pool_redis_int.h -- what the hiredis pool (pool_redis.c) and its
 * Sentinel watcher (pool_redis_watch.c) share. Private to those two files.
 */
#ifndef APPHOST_HOST_POOL_REDIS_INT_H
#define APPHOST_HOST_POOL_REDIS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"
#include "pool.h"
#include "sentinel.h"
#include "url.h"

/* Per Sentinel: a stuck one must not hold up asking the next. */
#define SENTINEL_TIMEOUT_MS 500

enum primary_state {
	PRIMARY_INIT,	 /* not asked yet */
	PRIMARY_KNOWN,	 /* the last discovery found it */
	PRIMARY_UNKNOWN, /* the last discovery failed */
};

struct apphost_redis_pool {
	struct apphost_redis_url url;
	char addr[600];
	struct apphost_pool *pool;

	/*
	 * Sentinel mode (nsentinels > 0): the primary comes from them. The
	 * array holds APPHOST_SENTINEL_MAX entries and never moves; entries
	 * below nsentinels never change. Sentinels discovered later are
	 * appended under mu, the entry written before the count grows, so a
	 * reader needs no lock to use [0, nsentinels).
	 */
	struct apphost_sentinel_addr *sentinels;
	_Atomic size_t nsentinels;
	char *master;
	char *sentinel_password; /* NULL: none */
	pthread_mutex_t mu;	 /* guards the fields below */
	size_t first;		 /* the Sentinel to ask first */
	char primary[300];	 /* "host:port" last found, "" before */
	enum primary_state state;
	struct apphost_metric *m_changes;
	atomic_uint nonce;

	/* The watcher: SUBSCRIBE +switch-master and +sentinel on a Sentinel
	 * (started at the first connect, under mu; wake[1] written to stop
	 * it). */
	bool watching;
	pthread_t watcher;
	int wake[2];
};

/*
 * Record what a discovery found: known (at addr) or not (why). Logs one
 * line per change of state, counts changes of the primary's address, and
 * keeps /readyz not ready while no primary is known. Any thread.
 */
void apphost_redis_primary_state(struct apphost_redis_pool *p, bool known,
				 const char *addr, const char *why);

/* Start the watcher once (Sentinel mode, at the first connect). */
void apphost_redis_watch_start(struct apphost_redis_pool *p);
/* Stop it (if started) and wait for it. */
void apphost_redis_watch_stop(struct apphost_redis_pool *p);

#endif
