/* sentinel.c -- see sentinel.h. */
#include "sentinel.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "clock.h"

#define MASTER_NAME_MAX 128

/* Parse host[:port] in s[0..n) into *a; reason in why. */
static bool parse_one(const char *s, size_t n, struct apphost_sentinel_addr *a,
		      const char **why)
{
	const char *end = s + n, *hostend, *portp = NULL;
	unsigned long port = APPHOST_SENTINEL_DEFAULT_PORT;

	memset(a, 0, sizeof(*a));
	if (n == 0) {
		*why = "empty entry";
		return false;
	}
	if (*s == '[') {
		const char *rb = memchr(s, ']', n);

		if (rb == NULL || rb == s + 1) {
			*why = "bad [IPv6] host";
			return false;
		}
		if (rb + 1 < end && rb[1] != ':') {
			*why = "junk after [IPv6] host";
			return false;
		}
		if (rb + 1 < end)
			portp = rb + 2;
		s++;
		hostend = rb;
	} else {
		hostend = memchr(s, ':', n);
		if (hostend != NULL)
			portp = hostend + 1;
		else
			hostend = end;
		if (hostend == s) {
			*why = "missing host";
			return false;
		}
	}
	if ((size_t)(hostend - s) >= sizeof(a->host)) {
		*why = "host too long";
		return false;
	}
	for (const char *q = s; q < hostend; q++)
		if (isspace((unsigned char)*q) || iscntrl((unsigned char)*q)) {
			*why = "blank inside host";
			return false;
		}
	if (portp != NULL) {
		port = 0;
		if (portp == end || end - portp > 5) {
			*why = "port must be 1..65535";
			return false;
		}
		for (const char *q = portp; q < end; q++) {
			if (*q < '0' || *q > '9') {
				*why = "port must be 1..65535";
				return false;
			}
			port = port * 10 + (unsigned long)(*q - '0');
		}
		if (port == 0 || port > 65535) {
			*why = "port must be 1..65535";
			return false;
		}
	}
	memcpy(a->host, s, (size_t)(hostend - s));
	a->port = (uint16_t)port;
	return true;
}

int apphost_sentinels_parse(const char *list,
			    struct apphost_sentinel_addr **out, size_t *n,
			    char *err, size_t errlen)
{
	struct apphost_sentinel_addr *v;
	size_t cap = 1, k = 0;
	const char *p;

	*out = NULL;
	*n = 0;
	if (list == NULL || list[0] == '\0') {
		snprintf(err, errlen, "empty list: expected host:port,...");
		return APPHOST_EINVAL;
	}
	for (p = list; *p != '\0'; p++)
		cap += *p == ',';
	if (cap > APPHOST_SENTINEL_MAX) {
		snprintf(err, errlen, "%zu entries, at most %d", cap,
			 APPHOST_SENTINEL_MAX);
		return APPHOST_EINVAL;
	}
	v = calloc(cap, sizeof(*v));
	if (v == NULL)
		return APPHOST_ENOMEM;
	p = list;
	for (;;) {
		const char *comma = strchr(p, ','), *s = p, *e;
		const char *why = NULL;

		e = comma != NULL ? comma : p + strlen(p);
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (!parse_one(s, (size_t)(e - s), &v[k], &why)) {
			snprintf(err, errlen, "entry %zu '%.*s': %s", k + 1,
				 (int)(e - s > 64 ? 64 : e - s), s, why);
			free(v);
			return APPHOST_EINVAL;
		}
		k++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*out = v;
	*n = k;
	return 0;
}

int apphost_sentinel_master_check(const char *name, char *err, size_t errlen)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > MASTER_NAME_MAX) {
		snprintf(err, errlen, "expected a master name of 1..%d bytes",
			 MASTER_NAME_MAX);
		return APPHOST_EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (isspace((unsigned char)name[i]) ||
		    iscntrl((unsigned char)name[i])) {
			snprintf(err, errlen,
				 "blank or control character in the master "
				 "name");
			return APPHOST_EINVAL;
		}
	return 0;
}

char *apphost_sentinel_addr_text(const char *host, unsigned port, char *buf,
				 size_t cap)
{
	snprintf(buf, cap, strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u",
		 host, port);
	return buf;
}

int apphost_sentinel_connect(const struct apphost_sentinel_addr *s,
			     const char *password, uint32_t timeout_ms,
			     struct redisContext **out, char *err,
			     size_t errlen)
{
	redisContext *c = redisConnectWithTimeout(
	    s->host, s->port, apphost_ms_timeval(timeout_ms));
	redisReply *r;

	*out = NULL;
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return APPHOST_ENOMEM;
	}
	if (c->err) {
		snprintf(err, errlen, "%s", c->errstr);
		redisFree(c);
		return APPHOST_ECONN;
	}
	redisSetTimeout(c, apphost_ms_timeval(timeout_ms));
	if (password != NULL) {
		const char *argv[] = {"AUTH", password};
		int rc = 0;

		r = redisCommandArgv(c, 2, argv, NULL);
		if (r == NULL) {
			snprintf(err, errlen, "AUTH: %s", c->errstr);
			rc = APPHOST_ECONN;
		} else if (r->type == REDIS_REPLY_ERROR) {
			/* The server's text names no password. */
			snprintf(err, errlen, "AUTH refused: %.*s",
				 (int)(r->len > 200 ? 200 : r->len), r->str);
			rc = APPHOST_EPROTO;
		}
		if (r != NULL)
			freeReplyObject(r);
		if (rc < 0) {
			redisFree(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

int apphost_sentinel_get_master(struct redisContext *c, const char *master,
				char *host, size_t hostcap, uint16_t *port,
				char *err, size_t errlen)
{
	const char *argv[] = {"SENTINEL", "get-master-addr-by-name", master};
	redisReply *r = redisCommandArgv(c, 3, argv, NULL);
	unsigned long p = 0;
	char *end = NULL;
	int rc = APPHOST_EPROTO;

	if (r == NULL) {
		snprintf(err, errlen, "SENTINEL: %s", c->errstr);
		return APPHOST_ECONN;
	}
	if (r->type == REDIS_REPLY_NIL) {
		snprintf(err, errlen, "does not know master %.128s", master);
	} else if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "SENTINEL refused: %.*s",
			 (int)(r->len > 200 ? 200 : r->len), r->str);
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		   r->element[0]->type != REDIS_REPLY_STRING ||
		   r->element[1]->type != REDIS_REPLY_STRING ||
		   r->element[0]->len == 0 || r->element[0]->len >= hostcap) {
		snprintf(err, errlen, "SENTINEL: unexpected reply");
	} else if ((p = strtoul(r->element[1]->str, &end, 10)) == 0 ||
		   *end != '\0' || p > 65535) {
		snprintf(err, errlen, "SENTINEL: bad port \"%.16s\"",
			 r->element[1]->str);
	} else {
		memcpy(host, r->element[0]->str, r->element[0]->len + 1);
		*port = (uint16_t)p;
		rc = 0;
	}
	freeReplyObject(r);
	return rc;
}

/* Value of `key` in a flat key/value array reply, or NULL. */
static const char *field(const redisReply *m, const char *key)
{
	for (size_t i = 0; i + 1 < m->elements; i += 2)
		if (m->element[i]->type == REDIS_REPLY_STRING &&
		    m->element[i + 1]->type == REDIS_REPLY_STRING &&
		    strcmp(m->element[i]->str, key) == 0)
			return m->element[i + 1]->str;
	return NULL;
}

int apphost_sentinel_peers(struct redisContext *c, const char *master,
			   struct apphost_sentinel_addr *out, size_t cap,
			   size_t *n, char *err, size_t errlen)
{
	const char *argv[] = {"SENTINEL", "sentinels", master};
	redisReply *r = redisCommandArgv(c, 3, argv, NULL);
	int rc = 0;

	*n = 0;
	if (r == NULL) {
		snprintf(err, errlen, "SENTINEL: %s", c->errstr);
		return APPHOST_ECONN;
	}
	if (r->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "SENTINEL sentinels: %.*s",
			 r->type == REDIS_REPLY_ERROR ? (int)r->len : 0,
			 r->type == REDIS_REPLY_ERROR ? r->str : "");
		rc = APPHOST_EPROTO;
	}
	for (size_t i = 0; rc == 0 && i < r->elements && *n < cap; i++) {
		const redisReply *m = r->element[i];
		const char *ip, *port;
		char *end = NULL;
		unsigned long p;

		if (m->type != REDIS_REPLY_ARRAY ||
		    (ip = field(m, "ip")) == NULL ||
		    (port = field(m, "port")) == NULL || strlen(ip) == 0 ||
		    strlen(ip) >= sizeof(out->host) ||
		    (p = strtoul(port, &end, 10)) == 0 || *end != '\0' ||
		    p > 65535)
			continue;
		memset(&out[*n], 0, sizeof(out[*n]));
		memcpy(out[*n].host, ip, strlen(ip) + 1);
		out[*n].port = (uint16_t)p;
		(*n)++;
	}
	freeReplyObject(r);
	return rc;
}

int apphost_sentinel_ask(const struct apphost_sentinel_addr *s,
			 const char *master, const char *password,
			 uint32_t timeout_ms, char *host, size_t hostcap,
			 uint16_t *port, char *err, size_t errlen)
{
	redisContext *c;
	int rc =
	    apphost_sentinel_connect(s, password, timeout_ms, &c, err, errlen);

	if (rc < 0)
		return rc;
	rc = apphost_sentinel_get_master(c, master, host, hostcap, port, err,
					 errlen);
	redisFree(c);
	return rc;
}
