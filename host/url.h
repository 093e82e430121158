/*
 * url.h -- the Redis URL parser and secret redaction for log lines.
 *
 * Pure string code: no I/O, no logging, usable from any thread.
 */
#ifndef APPHOST_HOST_URL_H
#define APPHOST_HOST_URL_H

#include <stddef.h>
#include <stdint.h>

#include <apphost/component.h>

/* Shown in place of a Redis URL that does not parse. */
#define APPHOST_REDIS_URL_UNPARSABLE "(unparsable redis:// URL: value withheld)"

/* A parsed redis://[[user]:password@]host[:port][/db] URL. */
struct apphost_redis_url {
	char host[256]; /* name or address; IPv6 without brackets */
	uint16_t port;	/* default 6379 */
	uint32_t db;	/* default 0 */
	char *user;	/* NULL or malloc()ed, percent-decoded */
	char *password; /* NULL or malloc()ed, percent-decoded */
};

/*
 * Parse `url` into *out (which the caller later clears with
 * apphost_redis_url_clear). Returns 0, APPHOST_EINVAL with a reason in
 * err (never containing the password), or APPHOST_ENOMEM. On failure *out
 * holds nothing to free. Any thread.
 */
int apphost_redis_url_parse(const char *url, struct apphost_redis_url *out,
			    char *err, size_t errlen);

/*
 * What of `url` may be shown, into buf: "host:port/db" ("[v6]:port/db")
 * for a URL that parses; for one that does not, the text after its
 * userinfo when that is plainly host[:digits][/digits] (so
 * "redis://:pw@h:99999/0" shows "h:99999/0"), else
 * APPHOST_REDIS_URL_UNPARSABLE: without a clean '@' a malformed URL
 * cannot be told apart from its password ("redis:/:pw@h", "redis://:pw").
 * Any thread.
 */
void apphost_redis_url_shown(const char *url, char *buf, size_t len);

/* Free and wipe the strings in *u; NULL is a no-op. Any thread. */
void apphost_redis_url_clear(struct apphost_redis_url *u);

/*
 * Copy of `s` with secrets replaced by "***": the password of
 * scheme://user:password@ (redis://:secret@ -> redis://:***@), and the
 * value of a `password` keyword in a libpq conninfo string (password=x,
 * password = 'a b') or URI query (?password=x&...). Returns a malloc()ed
 * string the caller frees, or NULL when out of memory (or s is NULL).
 * Any thread.
 */
char *apphost_redact(const char *s);

#endif
