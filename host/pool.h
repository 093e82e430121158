/*
 * pool.h -- a bounded pool of exclusive connection leases, independent of
 * the kind of connection (pool_redis.c and pool_pg.c supply the ops).
 *
 * Connections are made lazily, at lease time, outside the pool lock.
 * Connect failures back off exponentially (100 ms, doubling, capped at
 * 1 s so a server that comes back is used again within about 1 s): while
 * the server is believed down and the backoff window is open, a lease
 * that would need a new connection fails at once with APPHOST_ECONN
 * instead of connecting again, so a down server is probed at most once per
 * window whatever the number of callers (the caller owns its own retry
 * loop). Reachability changes are logged once per change ("redis
 * unreachable ..." then "redis reachable again"), not once per attempt.
 *
 * Metrics (default registry, metrics.h), labelled pool=<ops->kind>:
 *   apphost_pool_leases_total{pool}                  leases granted
 *   apphost_pool_lease_failures_total{pool,reason}   timeout | unreachable
 *   apphost_pool_connections{pool}                   open connections
 *
 * All functions may be called from any thread.
 */
#ifndef APPHOST_HOST_POOL_H
#define APPHOST_HOST_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <apphost/component.h>

struct apphost_pool_ops {
	const char *kind; /* "redis", "postgres": first word of log lines */
	/*
	 * Connect; blocks at most about timeout_ms. Returns 0 and *conn, or a
	 * negative code with a reason in err (no secrets). Called without
	 * the pool lock, possibly from several threads at once.
	 */
	int (*connect)(void *arg, uint32_t timeout_ms, void **conn, char *err,
		       size_t errlen);
	/*
	 * Make an idle connection ready for its next lessee: reset timeouts,
	 * check that nothing of the last lessee's is left in flight, and
	 * when new_lessee (another component held it last) reset the
	 * session state it may have left behind, all within timeout_ms (what
	 * is left of the lessee's own timeout: a server that stops answering
	 * must not hold a lease longer than the lessee asked). Returns 0, or
	 * negative: the pool closes it and connects anew. Called without the
	 * pool lock.
	 */
	int (*prepare)(void *arg, void *conn, bool new_lessee,
		       uint32_t timeout_ms);
	/* Close and free a connection. Called without the pool lock. */
	void (*close)(void *arg, void *conn);
};

struct apphost_pool;

/*
 * Create a pool of at most `max` connections. `ops` and `arg` must outlive
 * the pool; `addr` (copied) names the server in log lines and must hold no
 * secret. Returns 0 and *out, APPHOST_EINVAL (max == 0) or APPHOST_ENOMEM.
 * Does not connect.
 */
int apphost_pool_new(const struct apphost_pool_ops *ops, void *arg,
		     const char *addr, unsigned max, struct apphost_pool **out);

/*
 * Lease a connection for `who` (a component name: the lease's holder, and
 * the name in log lines; NULL means "apphost"). Waits
 * up to timeout_ms for a free slot. Returns 0 and *out (exclusive until
 * apphost_pool_release), APPHOST_ETIMEDOUT when the pool stayed exhausted
 * (logged as an error), or APPHOST_ECONN when a connection could not be
 * made (or the server is in its backoff window).
 */
int apphost_pool_lease(struct apphost_pool *p, uint32_t timeout_ms,
		       const char *who, void **out);

/*
 * Return a connection leased by `who`; broken=true closes it (the next
 * lease connects anew). Returns 0 (also for conn NULL, a no-op), or
 * APPHOST_EINVAL, logged as an error, when the pool did not lease conn or
 * leased it to another holder: the release is refused and the connection
 * stays with its holder.
 */
int apphost_pool_release(struct apphost_pool *p, void *conn, const char *who,
			 bool broken);

/*
 * Call fn(arg, conn) for every open connection, leased or idle, under the
 * pool lock: fn must be quick, must not block nor call into the pool,
 * and may only do what is safe on a connection another thread is using
 * (pool_redis.c shuts down the sockets of connections to a former
 * primary, so that their lessees see the connection drop). Any thread.
 */
void apphost_pool_each(struct apphost_pool *p,
		       void (*fn)(void *arg, void *conn), void *arg);

/* Connections currently leased (for tests and diagnostics). */
unsigned apphost_pool_leased(struct apphost_pool *p);

/*
 * Close every connection and free the pool; NULL is a no-op. Leases still
 * out are logged (with the lessee) and closed: call only when no component
 * can use the pool any more.
 */
void apphost_pool_free(struct apphost_pool *p);

#endif
