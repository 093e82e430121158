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
#include "status.h"
#include "url.h"

/* Per Sentinel: a stuck one must not hold up asking the next. */
#define SENTINEL_TIMEOUT_MS 500

enum primary_state {
	PRIMARY_INIT,	 /* not asked yet */
	PRIMARY_KNOWN,	 /* the last discovery found it */
	PRIMARY_UNKNOWN, /* the last discovery failed */
};

/*
 * Owners: immutable (set by apphost_redis_pool_new*, read by any thread
 * without a lock), mu (read and written under mu only), atomic. The pool
 * itself (pool) has its own lock.
 */
struct apphost_redis_pool {
	struct apphost_redis_url url; /* immutable */
	char addr[600];		      /* immutable */
	struct apphost_pool *pool;    /* immutable */

	/*
	 * Sentinel mode (nsentinels > 0): the primary comes from them. The
	 * array holds APPHOST_SENTINEL_MAX entries and never moves; entries
	 * below nsentinels never change. Sentinels discovered later are
	 * appended under mu, the entry written before the count grows, so a
	 * reader needs no lock to use [0, nsentinels).
	 */
	struct apphost_sentinel_addr *sentinels; /* see above */
	_Atomic size_t nsentinels;		 /* atomic; grows under mu */
	char *master;				 /* immutable */
	char *sentinel_password;		 /* immutable; NULL: none */
	struct apphost_metric *m_changes;	 /* immutable */
	/* immutable; NULL without Sentinels: "redis" on /readyz, set under
	 * mu with state (mu, then the status lock) */
	struct apphost_status_cond *ready;
	atomic_uint nonce; /* atomic */

	pthread_mutex_t mu;
	size_t first;		  /* mu: the Sentinel to ask first */
	char primary[300];	  /* mu: "host:port" last found, "" before */
	enum primary_state state; /* mu */

	/* The watcher: SUBSCRIBE +switch-master and +sentinel on a Sentinel,
	 * started at the first connect; wake[1] written to stop it. watcher
	 * and wake are set before watching turns true and stay so until
	 * apphost_redis_watch_stop has joined the thread. */
	bool watching;	   /* mu */
	pthread_t watcher; /* immutable while watching */
	int wake[2];	   /* immutable while watching */
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
