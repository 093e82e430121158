/* url.c -- see url.h. */
#include "url.h"

#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REDIS_DEFAULT_PORT 6379
#define REDACTED	   "***"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* *out = malloc()ed, percent-decoded copy of s[0..n). 0, EINVAL, ENOMEM. */
static int pct_decode(const char *s, size_t n, char **out)
{
	char *d = malloc(n + 1);
	size_t j = 0;

	if (d == NULL)
		return APPHOST_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n || hexval(s[i + 1]) < 0 ||
			    hexval(s[i + 2]) < 0) {
				free(d);
				return APPHOST_EINVAL;
			}
			d[j++] =
			    (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			d[j++] = s[i];
		}
	}
	d[j] = '\0';
	*out = d;
	return 0;
}

static void wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

void apphost_redis_url_clear(struct apphost_redis_url *u)
{
	if (u == NULL)
		return;
	wipe_free(u->user);
	wipe_free(u->password);
	u->user = NULL;
	u->password = NULL;
}

/* Parse a decimal number in s[0..n) into *out, max `max`. */
static bool parse_dec(const char *s, size_t n, unsigned long max,
		      unsigned long *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

int apphost_redis_url_parse(const char *url, struct apphost_redis_url *out,
			    char *err, size_t errlen)
{
	static const char scheme[] = "redis://";
	const char *p, *end, *at, *hostend, *slash;
	unsigned long v;
	int rc;

	memset(out, 0, sizeof(*out));
	out->port = REDIS_DEFAULT_PORT;
	if (url == NULL || url[0] == '\0') {
		snprintf(err, errlen, "empty URL");
		return APPHOST_EINVAL;
	}
	if (strncasecmp(url, "rediss://", 9) == 0) {
		/* Say why and what instead: an operator reads this first. */
		snprintf(err, errlen,
			 "TLS (rediss://) is not supported: the hiredis of "
			 "Debian 12 (0.14) has no TLS; run a local TLS "
			 "sidecar (stunnel4) and give its redis:// address, "
			 "see operations.md, \"Redis over TLS\"");
		return APPHOST_EINVAL;
	}
	if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0) {
		snprintf(err, errlen,
			 "expected redis://[[user]:password@]host:port/db");
		return APPHOST_EINVAL;
	}
	p = url + sizeof(scheme) - 1;
	end = p + strlen(p);
	if (strpbrk(p, "?#") != NULL) {
		snprintf(err, errlen, "query or fragment not supported");
		return APPHOST_EINVAL;
	}
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = end;
	/* userinfo: the last '@' before the path (passwords may hold '@'). */
	at = NULL;
	for (const char *q = p; q < slash; q++)
		if (*q == '@')
			at = q;
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));

		if (colon == NULL) {
			/* redis://secret@host: is "secret" a user or a
			 * password? Refuse rather than guess. */
			snprintf(err, errlen,
				 "userinfo without ':' (write "
				 "redis://:password@host)");
			return APPHOST_EINVAL;
		}
		if (colon > p) {
			rc = pct_decode(p, (size_t)(colon - p), &out->user);
			if (rc < 0)
				goto bad_userinfo;
		}
		rc = pct_decode(colon + 1, (size_t)(at - colon - 1),
				&out->password);
		if (rc < 0)
			goto bad_userinfo;
		p = at + 1;
	}
	/* host[:port] */
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(slash - p));

		if (rb == NULL) {
			snprintf(err, errlen, "unterminated [IPv6] host");
			goto fail;
		}
		if ((size_t)(rb - p - 1) >= sizeof(out->host) || rb == p + 1) {
			snprintf(err, errlen, "bad host");
			goto fail;
		}
		memcpy(out->host, p + 1, (size_t)(rb - p - 1));
		hostend = rb + 1;
		if (hostend < slash && *hostend != ':') {
			snprintf(err, errlen, "junk after [IPv6] host");
			goto fail;
		}
	} else {
		hostend = memchr(p, ':', (size_t)(slash - p));
		if (hostend == NULL)
			hostend = slash;
		if (hostend == p) {
			snprintf(err, errlen, "missing host");
			goto fail;
		}
		if ((size_t)(hostend - p) >= sizeof(out->host)) {
			snprintf(err, errlen, "host too long");
			goto fail;
		}
		memcpy(out->host, p, (size_t)(hostend - p));
	}
	if (hostend < slash) { /* ":port" */
		if (!parse_dec(hostend + 1, (size_t)(slash - hostend - 1),
			       65535, &v) ||
		    v == 0) {
			snprintf(err, errlen, "port must be 1..65535");
			goto fail;
		}
		out->port = (uint16_t)v;
	}
	if (slash < end && slash + 1 < end) { /* "/db" */
		if (!parse_dec(slash + 1, (size_t)(end - slash - 1), 1000000,
			       &v)) {
			snprintf(err, errlen, "db must be a number 0..1000000");
			goto fail;
		}
		out->db = (uint32_t)v;
	}
	return 0;

bad_userinfo:
	if (rc == APPHOST_ENOMEM) {
		snprintf(err, errlen, "out of memory");
		apphost_redis_url_clear(out);
		return rc;
	}
	snprintf(err, errlen, "bad %%-escape in user or password");
fail:
	apphost_redis_url_clear(out);
	return APPHOST_EINVAL;
}

/* Is s plainly host[:digits][/digits] (host a name or [v6])? */
static bool plain_addr(const char *s)
{
	size_t n;

	if (*s == '[') {
		n = 1 + strspn(s + 1, "0123456789abcdefABCDEF:.");
		if (n == 1 || s[n] != ']')
			return false;
		n++;
	} else {
		n = strspn(s, "abcdefghijklmnopqrstuvwxyz"
			      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
		if (n == 0)
			return false;
	}
	s += n;
	if (*s == ':') {
		n = strspn(s + 1, "0123456789");
		if (n == 0)
			return false;
		s += 1 + n;
	}
	if (*s == '/')
		s += 1 + strspn(s + 1, "0123456789");
	return *s == '\0';
}

void apphost_redis_url_shown(const char *url, char *buf, size_t len)
{
	struct apphost_redis_url u;
	const char *rest, *at;
	char err[128];

	if (len == 0)
		return;
	if (apphost_redis_url_parse(url, &u, err, sizeof(err)) == 0) {
		snprintf(buf, len,
			 strchr(u.host, ':') != NULL ? "[%s]:%u/%u"
						     : "%s:%u/%u",
			 u.host, u.port, u.db);
		apphost_redis_url_clear(&u);
		return;
	}
	snprintf(buf, len, "%s", APPHOST_REDIS_URL_UNPARSABLE);
	if (url == NULL || strncasecmp(url, "redis://", 8) != 0)
		return;
	at = strrchr(url + 8, '@');
	rest = at != NULL ? at + 1 : url + 8;
	if (plain_addr(rest))
		snprintf(buf, len, "%s", rest);
}

/* ---- redaction --------------------------------------------------------- */

/*
 * Length of the keyword "password" or "sslpassword" (libpq's key for the
 * client key's passphrase) starting at s[i] on a token boundary, else 0.
 */
static size_t password_kw_len(const char *s, size_t i)
{
	static const char *const kws[] = {"password", "sslpassword"};

	if (i > 0) {
		char prev = s[i - 1];

		if (!(isspace((unsigned char)prev) || prev == '?' ||
		      prev == '&'))
			return 0;
	}
	for (size_t k = 0; k < sizeof(kws) / sizeof(kws[0]); k++)
		if (strncasecmp(s + i, kws[k], strlen(kws[k])) == 0)
			return strlen(kws[k]);
	return 0;
}

char *apphost_redact(const char *s)
{
	struct apphost_strbuf b = {0};
	size_t i = 0, n;
	const char *sep;

	if (s == NULL)
		return NULL;
	n = strlen(s);
	apphost_strbuf_put(&b, "", 0);

	/* scheme://user:password@ -> scheme://user:***@ */
	sep = strstr(s, "://");
	if (sep != NULL) {
		const char *auth = sep + 3;
		size_t alen = strcspn(auth, "/?#");
		const char *at = NULL;

		for (size_t k = 0; k < alen; k++)
			if (auth[k] == '@')
				at = auth + k;
		/* A password may hold an unescaped '/', '?' or '#' (such a
		 * URL is refused, and its value logged): with no '@' before
		 * them take the last '@'. Hiding too much is the safe side. */
		if (at == NULL)
			at = strrchr(auth, '@');
		if (at != NULL) {
			const char *colon =
			    memchr(auth, ':', (size_t)(at - auth));

			if (colon != NULL) {
				apphost_strbuf_put(&b, s,
						   (size_t)(colon + 1 - s));
				apphost_strbuf_put(&b, REDACTED, 3);
				i = (size_t)(at - s);
			} else if (strncasecmp(s, "redis", 5) == 0) {
				/* redis://secret@host: a lone userinfo is
				 * the password to Redis users. */
				apphost_strbuf_put(&b, s, (size_t)(auth - s));
				apphost_strbuf_put(&b, REDACTED, 3);
				i = (size_t)(at - s);
			}
		}
	}

	while (i < n) {
		size_t kw = password_kw_len(s, i);

		if (kw) {
			size_t j = i + kw;

			while (j < n && isspace((unsigned char)s[j]))
				j++;
			if (j < n && s[j] == '=') {
				j++;
				while (j < n && isspace((unsigned char)s[j]))
					j++;
				apphost_strbuf_put(&b, s + i, j - i);
				apphost_strbuf_put(&b, REDACTED, 3);
				if (j < n && s[j] == '\'') { /* quoted value */
					j++;
					while (j < n && s[j] != '\'') {
						if (s[j] == '\\' && j + 1 < n)
							j++;
						j++;
					}
					if (j < n)
						j++;
				} else {
					while (j < n &&
					       !isspace((unsigned char)s[j]) &&
					       s[j] != '&' && s[j] != '#')
						j++;
				}
				i = j;
				continue;
			}
		}
		apphost_strbuf_put(&b, s + i, 1);
		i++;
	}
	return apphost_strbuf_take(&b, NULL);
}
