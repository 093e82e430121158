/*
 * sentinel.h -- the requests to one Redis Sentinel: parse the configured
 * list, check the master name, connect, SENTINEL get-master-addr-by-name
 * and SENTINEL sentinels. What is done with them lives with the hiredis
 * pool: the discovery (the Sentinels in turn, the one that answered asked
 * first next time, then ROLE on the primary itself) in pool_redis.c, and
 * the watch (+switch-master, Sentinels added later) in
 * pool_redis_watch.c, as the Sentinel client guidelines describe.
 *
 * The list parser does no I/O; the others connect or use a connection.
 * Nothing here logs: errors come back as text (never holding a password).
 */
#ifndef APPHOST_HOST_SENTINEL_H
#define APPHOST_HOST_SENTINEL_H

#include <stddef.h>
#include <stdint.h>

#include <apphost/component.h>

#define APPHOST_SENTINEL_DEFAULT_PORT 26379
#define APPHOST_SENTINEL_MAX	      64

/* One Sentinel's address. */
struct apphost_sentinel_addr {
	char host[256]; /* name or address; IPv6 without brackets */
	uint16_t port;
};

/*
 * Parse a comma-separated list of host[:port] ([v6]:port; port default
 * 26379; blanks around entries ignored) into *out (malloc()ed, *n
 * entries; the caller frees it). Returns 0, APPHOST_EINVAL with the
 * entry and reason in err ("entry 2 'h:x': port must be 1..65535"),
 * or APPHOST_ENOMEM. Any thread.
 */
int apphost_sentinels_parse(const char *list,
			    struct apphost_sentinel_addr **out, size_t *n,
			    char *err, size_t errlen);

/*
 * Check a master name (1..128 bytes, no blank or control character).
 * Returns 0 or APPHOST_EINVAL with the reason in err. Any thread.
 */
int apphost_sentinel_master_check(const char *name, char *err, size_t errlen);

/*
 * "host:port" (or "[v6]:port") of a into buf (always NUL-terminated).
 * Returns buf. Any thread.
 */
char *apphost_sentinel_addr_text(const char *host, unsigned port, char *buf,
				 size_t cap);

struct redisContext;

/*
 * Connect to the Sentinel at s (at most timeout_ms, also the timeout of
 * each reply later) and AUTH with `password` when not NULL. Returns 0
 * and *out (the caller redisFree()s it), APPHOST_ECONN when it cannot be
 * reached, or APPHOST_EPROTO when it refused the password; the reason
 * is in err. Blocks; any thread.
 */
int apphost_sentinel_connect(const struct apphost_sentinel_addr *s,
			     const char *password, uint32_t timeout_ms,
			     struct redisContext **out, char *err,
			     size_t errlen);

/*
 * SENTINEL get-master-addr-by-name on a connection from
 * apphost_sentinel_connect. Returns 0 with the address in host and
 * *port, APPHOST_ECONN when the connection failed, or APPHOST_EPROTO when
 * the Sentinel does not know the master (nil), refused, or answered
 * nonsense; the reason is in err. Blocks; the connection's thread.
 */
int apphost_sentinel_get_master(struct redisContext *c, const char *master,
				char *host, size_t hostcap, uint16_t *port,
				char *err, size_t errlen);

/*
 * SENTINEL sentinels <master> on a connection from apphost_sentinel_connect:
 * the other Sentinels monitoring it, up to cap into out (*n of them;
 * entries without a usable ip and port are skipped). Returns 0,
 * APPHOST_ECONN when the connection failed, or APPHOST_EPROTO when the
 * Sentinel refused (an unknown master); the reason is in err. Blocks; the
 * connection's thread.
 */
int apphost_sentinel_peers(struct redisContext *c, const char *master,
			   struct apphost_sentinel_addr *out, size_t cap,
			   size_t *n, char *err, size_t errlen);

/*
 * Ask the Sentinel at s for the address of `master`: connect (at most
 * timeout_ms, also per reply), AUTH with `password` when not NULL, then
 * SENTINEL get-master-addr-by-name. Returns 0 with the address in host and
 * *port, APPHOST_ECONN when the Sentinel cannot be reached or
 * answered nothing usable, or APPHOST_EPROTO when it does not know the
 * master (nil) or refused; the reason is in err. Blocks; any thread.
 */
int apphost_sentinel_ask(const struct apphost_sentinel_addr *s,
			 const char *master, const char *password,
			 uint32_t timeout_ms, char *host, size_t hostcap,
			 uint16_t *port, char *err, size_t errlen);

#endif
