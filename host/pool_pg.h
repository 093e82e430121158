/*
 * pool_pg.h -- the shared pool of libpq connections
 * (APPHOST_POSTGRES_DSN). See pool.h for leasing, backoff and logging.
 *
 * Connections are made with the DSN (conninfo or URI; empty: libpq
 * defaults and PG* variables; libpq's multi-host form host=a,b port=p,q
 * target_session_attrs=read-write finds the primary) plus
 * fallback_application_name=apphost unless the DSN sets it, and always
 * client_encoding=UTF8; once connected, the socket gets apphost's TCP
 * keepalives and TCP_USER_TIMEOUT (tcp_opts.h). A connect ends at the lessee's
 * timeout by our clock (connect_timeout is not used: it rounds to whole
 * seconds, at least 2). At lease time a connection that is not CONNECTION_OK,
 * not idle (in a transaction) or still in pipeline mode is discarded and
 * replaced; one that another component held last is reset with DISCARD ALL,
 * within what is left of the lessee's timeout. Any thread.
 */
#ifndef APPHOST_HOST_POOL_PG_H
#define APPHOST_HOST_POOL_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <apphost/component.h>

struct apphost_pg_pool;

/*
 * Validate `dsn` (NULL = empty) and create a pool of at most `max`
 * connections; does not connect. Returns 0 and *out (free with
 * apphost_pg_pool_free), APPHOST_EINVAL with a fixed reason in err
 * (nothing of the DSN: see dsn.h), or APPHOST_ENOMEM. A failed connect is
 * reported by its summary (apphost_dsn_error_summary), never libpq's text.
 */
int apphost_pg_pool_new(const char *dsn, unsigned max,
			struct apphost_pg_pool **out, char *err, size_t errlen);

/* The DSN with secrets redacted, for log lines. Owned by p. */
const char *apphost_pg_pool_addr(const struct apphost_pg_pool *p);

/* As apphost_pool_lease, for a PGconn. */
int apphost_pg_pool_lease(struct apphost_pg_pool *p, uint32_t timeout_ms,
			  const char *who, struct pg_conn **out);

/* As apphost_pool_release. */
int apphost_pg_pool_release(struct apphost_pg_pool *p, struct pg_conn *c,
			    const char *who, bool broken);

/* Connections currently leased. */
unsigned apphost_pg_pool_leased(struct apphost_pg_pool *p);

/* As apphost_pool_free; NULL is a no-op. */
void apphost_pg_pool_free(struct apphost_pg_pool *p);

#endif
