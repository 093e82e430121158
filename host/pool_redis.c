/* pool_redis.c -- see pool_redis.h. The hiredis adapter: nothing above
 * this file sees a redisReply. */
#include "pool_redis.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "pool_redis_int.h"
#include "tcp_opts.h"

/* Run one argv command; 0 on a non-error reply, else reason in err. */
static int command_ok(redisContext *c, int argc, const char **argv, char *err,
		      size_t errlen)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	int rc = 0;

	if (r == NULL) {
		snprintf(err, errlen, "%s: %s", argv[0],
			 c->err ? c->errstr : "no reply");
		return APPHOST_EIO;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "%s refused: %.*s", argv[0],
			 (int)(r->len > 200 ? 200 : r->len), r->str);
		/* An ACL's NOPERM (SELECT of another db, ROLE) and a refused
		 * AUTH are not an outage: their own classes say so. */
		if (r->len >= 6 && strncmp(r->str, "NOPERM", 6) == 0)
			rc = APPHOST_EPERM;
		else if (strcmp(argv[0], "AUTH") == 0)
			rc = APPHOST_EAUTH;
		else
			rc = APPHOST_EPROTO;
	}
	freeReplyObject(r);
	return rc;
}

/*
 * In Sentinel mode, a connection must reach the primary itself: ROLE's
 * first element is "master". 0, or APPHOST_EPROTO with the reason.
 */
static int role_is_master(redisContext *c, char *err, size_t errlen)
{
	const char *argv[] = {"ROLE"};
	redisReply *r = redisCommandArgv(c, 1, argv, NULL);
	int rc = 0;

	if (r == NULL) {
		snprintf(err, errlen, "ROLE: %s",
			 c->err ? c->errstr : "no reply");
		return APPHOST_EIO;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "master") != 0) {
		snprintf(err, errlen, "ROLE is %.32s, not master",
			 r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
				 r->element[0]->type == REDIS_REPLY_STRING
			     ? r->element[0]->str
			     : "unexpected");
		rc = APPHOST_EPROTO;
	}
	freeReplyObject(r);
	return rc;
}

/* See pool_redis_int.h. */
void apphost_redis_primary_state(struct apphost_redis_pool *p, bool known,
				 const char *addr, const char *why)
{
	char from[sizeof(p->primary)];
	enum primary_state was;
	bool changed;

	/* Compared and set at once: of two threads that find the same new
	 * primary, one counts and logs the change. */
	pthread_mutex_lock(&p->mu);
	was = p->state;
	snprintf(from, sizeof(from), "%s", p->primary);
	changed = known && from[0] != '\0' && strcmp(from, addr) != 0;
	p->state = known ? PRIMARY_KNOWN : PRIMARY_UNKNOWN;
	if (known)
		snprintf(p->primary, sizeof(p->primary), "%s", addr);
	/* Under mu, as the state: set after unlocking, two racing
	 * discoveries could leave /readyz saying the opposite of it. */
	apphost_status_cond_set(p->ready, known, "no primary known");
	pthread_mutex_unlock(&p->mu);

	if (changed) {
		apphost_metric_add(p->m_changes, 1);
		apphost_log(APPHOST_LOG_WARN, NULL, "redis primary changed",
			    "master=%s from=%s to=%s", p->master, from, addr);
	} else if (known && was != PRIMARY_KNOWN) {
		apphost_log(APPHOST_LOG_INFO, NULL, "redis primary found",
			    "master=%s addr=%s", p->master, addr);
	} else if (!known && was != PRIMARY_UNKNOWN) {
		apphost_log(APPHOST_LOG_WARN, NULL, "redis primary unknown",
			    "master=%s err=\"%s\"", p->master, why);
	}
}

/*
 * Ask the Sentinels in turn, starting with the one that answered last;
 * *host and *port are the primary they name. 0, or APPHOST_ECONN with every
 * Sentinel's reason in err.
 */
static int discover(struct apphost_redis_pool *p, uint32_t timeout_ms,
		    char *host, size_t hostcap, uint16_t *port, char *err,
		    size_t errlen)
{
	uint32_t per =
	    timeout_ms < SENTINEL_TIMEOUT_MS ? timeout_ms : SENTINEL_TIMEOUT_MS;
	size_t first, used = 0;

	pthread_mutex_lock(&p->mu);
	first = p->first;
	pthread_mutex_unlock(&p->mu);
	err[0] = '\0';
	size_t n = p->nsentinels; /* only grows: see pool_redis_int.h */

	for (size_t k = 0; k < n; k++) {
		size_t i = (first + k) % n;
		const struct apphost_sentinel_addr *s = &p->sentinels[i];
		char why[256], at[300];

		if (apphost_sentinel_ask(s, p->master, p->sentinel_password,
					 per, host, hostcap, port, why,
					 sizeof(why)) == 0) {
			pthread_mutex_lock(&p->mu);
			p->first = i;
			pthread_mutex_unlock(&p->mu);
			return 0;
		}
		if (used + 1 < errlen) {
			int w = snprintf(err + used, errlen - used, "%s%s: %s",
					 used ? "; " : "sentinels: ",
					 apphost_sentinel_addr_text(
					     s->host, s->port, at, sizeof(at)),
					 why);
			used += w > 0 ? (size_t)w : 0;
			if (used >= errlen)
				used = errlen - 1;
		}
	}
	return APPHOST_ECONN;
}

static int redis_connect(void *arg, uint32_t timeout_ms, void **conn, char *err,
			 size_t errlen)
{
	struct apphost_redis_pool *p = arg;
	char host[256], at[300];
	uint16_t port = p->url.port;
	redisContext *c;
	int rc;

	snprintf(host, sizeof(host), "%s", p->url.host);
	if (p->nsentinels > 0) {
		rc = discover(p, timeout_ms, host, sizeof(host), &port, err,
			      errlen);
		if (rc < 0) {
			apphost_redis_primary_state(p, false, NULL, err);
			return rc;
		}
		apphost_redis_watch_start(
		    p); /* after: it asks the one that answered */
	}
	c = redisConnectWithTimeout(host, port, apphost_ms_timeval(timeout_ms));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return APPHOST_ENOMEM;
	}
	if (c->err) {
		if (p->nsentinels > 0) {
			/* Their answer is stale (the primary died, no
			 * promotion yet): none is known for now. */
			snprintf(err, errlen,
				 "primary %s named by sentinels: %s",
				 apphost_sentinel_addr_text(host, port, at,
							    sizeof(at)),
				 c->errstr);
			apphost_redis_primary_state(p, false, NULL, err);
		} else {
			snprintf(err, errlen, "%s", c->errstr);
		}
		redisFree(c);
		return APPHOST_ECONN;
	}
	/* AUTH and SELECT must not hang on a stuck server either. */
	redisSetTimeout(c, apphost_ms_timeval(timeout_ms));
	(void)apphost_tcp_opts_set(c->fd);
	if (p->url.password != NULL) {
		const char *argv[3];
		int argc = 0;

		argv[argc++] = "AUTH";
		if (p->url.user != NULL && p->url.user[0] != '\0')
			argv[argc++] = p->url.user;
		argv[argc++] = p->url.password;
		rc = command_ok(c, argc, argv, err, errlen);
		if (rc < 0)
			goto fail;
	}
	if (p->nsentinels > 0) {
		rc = role_is_master(c, err, errlen);
		if (rc < 0) {
			/* A stale answer mid-failover: ask again later. */
			char why[300];

			snprintf(why, sizeof(why), "%s: %s",
				 apphost_sentinel_addr_text(host, port, at,
							    sizeof(at)),
				 err);
			snprintf(err, errlen, "%s", why);
			apphost_redis_primary_state(p, false, NULL, err);
			if (rc != APPHOST_EPERM)
				rc = APPHOST_ECONN;
			goto fail;
		}
		apphost_redis_primary_state(
		    p, true,
		    apphost_sentinel_addr_text(host, port, at, sizeof(at)),
		    NULL);
	}
	if (p->url.db != 0) {
		char db[16];
		const char *argv[2] = {"SELECT", db};

		snprintf(db, sizeof(db), "%u", p->url.db);
		rc = command_ok(c, 2, argv, err, errlen);
		if (rc < 0)
			goto fail;
	}
	/* The lessee's default, as at every later lease (redis_prepare). */
	if (redisSetTimeout(
		c, apphost_ms_timeval(APPHOST_REDIS_COMMAND_TIMEOUT_MS)) !=
	    REDIS_OK) {
		snprintf(err, errlen, "cannot set the command timeout");
		rc = APPHOST_EIO;
		goto fail;
	}
	*conn = c;
	return 0;
fail:
	redisFree(c);
	return rc;
}

/* Whether c is connected to the primary last found (Sentinel mode). */
static bool at_primary(struct apphost_redis_pool *p, const redisContext *c)
{
	char at[300];
	bool same;

	if (p->nsentinels == 0 || c->tcp.host == NULL)
		return true;
	apphost_sentinel_addr_text(c->tcp.host, (unsigned)c->tcp.port, at,
				   sizeof(at));
	pthread_mutex_lock(&p->mu);
	same = strcmp(at, p->primary) == 0;
	pthread_mutex_unlock(&p->mu);
	return same;
}

/*
 * The next lessee must not inherit the last one's state. Nothing may be
 * left unsent or unread (a reply read now would answer someone else's
 * command), no MULTI may be open, WATCHes go, and the configured db is
 * selected again. One round trip: SELECT, UNWATCH (and ROLE with
 * Sentinel), then ECHO of a fresh nonce; any other answer, in particular
 * +QUEUED from an open MULTI or a stale reply ahead of ours, or a server
 * no longer primary, discards the connection.
 */
static int redis_prepare(void *arg, void *conn, bool new_lessee,
			 uint32_t timeout_ms)
{
	struct apphost_redis_pool *p = arg;
	redisContext *c = conn;
	char db[16], nonce[32];
	const char *sel[] = {"SELECT", db}, *unwatch[] = {"UNWATCH"};
	const char *role[] = {"ROLE"}, *echo[] = {"ECHO", nonce};
	bool sentinel = p->nsentinels > 0;
	int n = sentinel ? 4 : 3, rc = 0;

	(void)new_lessee; /* cheap enough to do at every lease */
	if (c->err || (c->obuf != NULL && c->obuf[0] != '\0') ||
	    c->reader->pos < c->reader->len || c->reader->ridx >= 0)
		return APPHOST_EIO;
	if (!at_primary(p, c))
		return APPHOST_EIO;
	/* This round trip within the lessee's timeout; then its default. */
	if (redisSetTimeout(c, apphost_ms_timeval(timeout_ms)) != REDIS_OK)
		return APPHOST_EIO;
	snprintf(db, sizeof(db), "%u", p->url.db);
	snprintf(nonce, sizeof(nonce), "apphost-lease-%u",
		 atomic_fetch_add(&p->nonce, 1));
	if (redisAppendCommandArgv(c, 2, sel, NULL) != REDIS_OK ||
	    redisAppendCommandArgv(c, 1, unwatch, NULL) != REDIS_OK ||
	    (sentinel &&
	     redisAppendCommandArgv(c, 1, role, NULL) != REDIS_OK) ||
	    redisAppendCommandArgv(c, 2, echo, NULL) != REDIS_OK)
		return APPHOST_EIO;
	for (int i = 0; i < n; i++) {
		redisReply *r;

		if (redisGetReply(c, (void **)&r) != REDIS_OK)
			return APPHOST_EIO;
		if (rc == 0) {
			bool ok;

			if (i < 2)
				ok = r->type == REDIS_REPLY_STATUS &&
				     strcmp(r->str, "OK") == 0;
			else if (i == n - 1)
				ok = r->type == REDIS_REPLY_STRING &&
				     strcmp(r->str, nonce) == 0;
			else
				ok =
				    r->type == REDIS_REPLY_ARRAY &&
				    r->elements > 0 &&
				    r->element[0]->type == REDIS_REPLY_STRING &&
				    strcmp(r->element[0]->str, "master") == 0;
			if (!ok)
				rc = APPHOST_EPROTO;
		}
		freeReplyObject(r);
	}
	if (rc == 0 &&
	    redisSetTimeout(
		c, apphost_ms_timeval(APPHOST_REDIS_COMMAND_TIMEOUT_MS)) !=
		REDIS_OK)
		rc = APPHOST_EIO;
	return rc;
}

static void redis_close(void *arg, void *conn)
{
	(void)arg;
	redisFree(conn);
}

static const struct apphost_pool_ops redis_ops = {
    .kind = "redis",
    .connect = redis_connect,
    .prepare = redis_prepare,
    .close = redis_close,
};

static void pool_clear(struct apphost_redis_pool *p)
{
	apphost_status_cond_remove(p->ready);
	apphost_redis_url_clear(&p->url);
	free(p->sentinels);
	free(p->master);
	if (p->sentinel_password != NULL) {
		explicit_bzero(p->sentinel_password,
			       strlen(p->sentinel_password));
		free(p->sentinel_password);
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Room for the Sentinels discovered later (the array never moves). */
static int room_for_more(struct apphost_redis_pool *p)
{
	struct apphost_sentinel_addr *v =
	    realloc(p->sentinels, APPHOST_SENTINEL_MAX * sizeof(*v));

	if (v == NULL)
		return APPHOST_ENOMEM;
	p->sentinels = v;
	return 0;
}

/* "sentinel:<master>@h1:p1,h2:p2/<db>" into p->addr. */
static void sentinel_addr(struct apphost_redis_pool *p)
{
	size_t used = (size_t)snprintf(p->addr, sizeof(p->addr), "sentinel:%s@",
				       p->master);

	for (size_t i = 0; i < p->nsentinels && used < sizeof(p->addr); i++) {
		char at[300];

		used +=
		    (size_t)snprintf(p->addr + used, sizeof(p->addr) - used,
				     "%s%s", i ? "," : "",
				     apphost_sentinel_addr_text(
					 p->sentinels[i].host,
					 p->sentinels[i].port, at, sizeof(at)));
	}
	if (used < sizeof(p->addr))
		snprintf(p->addr + used, sizeof(p->addr) - used, "/%u",
			 p->url.db);
}

int apphost_redis_pool_new_sentinel(const char *url,
				    const struct apphost_redis_sentinel *sen,
				    unsigned max,
				    struct apphost_redis_pool **out, char *err,
				    size_t errlen)
{
	struct apphost_redis_pool *p = calloc(1, sizeof(*p));
	const char *labels[] = {NULL};
	int rc;

	if (p == NULL)
		return APPHOST_ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	rc = apphost_redis_url_parse(url, &p->url, err, errlen);
	if (rc < 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return rc;
	}
	if (sen != NULL) {
		size_t n = 0;

		rc = apphost_sentinels_parse(sen->sentinels, &p->sentinels, &n,
					     err, errlen);
		if (rc == 0)
			rc = room_for_more(p);
		p->nsentinels = n;
		if (rc == 0)
			rc = apphost_sentinel_master_check(sen->master, err,
							   errlen);
		if (rc == 0) {
			p->master = strdup(sen->master);
			if (sen->password != NULL && sen->password[0] != '\0')
				p->sentinel_password = strdup(sen->password);
			if (p->master == NULL || (sen->password != NULL &&
						  sen->password[0] != '\0' &&
						  p->sentinel_password == NULL))
				rc = APPHOST_ENOMEM;
		}
		if (rc < 0) {
			if (rc == APPHOST_ENOMEM)
				snprintf(err, errlen, "out of memory");
			pool_clear(p);
			return rc;
		}
		sentinel_addr(p);
		/* Not ready until a primary is found (first lease). */
		p->ready = apphost_status_cond_add("redis");
		if (p->ready == NULL) {
			snprintf(err, errlen, "out of memory");
			pool_clear(p);
			return APPHOST_ENOMEM;
		}
		apphost_status_cond_set(p->ready, false,
					"no primary known yet");
	} else {
		snprintf(p->addr, sizeof(p->addr),
			 strchr(p->url.host, ':') ? "[%s]:%u/%u" : "%s:%u/%u",
			 p->url.host, p->url.port, p->url.db);
	}
	(void)apphost_metrics_get(
	    apphost_metrics_default(), APPHOST_METRIC_COUNTER,
	    "apphost_redis_primary_changes_total",
	    "Times the Sentinels named another Redis primary than before.",
	    labels, NULL, 0, &p->m_changes);
	rc = apphost_pool_new(&redis_ops, p, p->addr, max, &p->pool);
	if (rc < 0) {
		snprintf(err, errlen, "%s", apphost_strerror(rc));
		pool_clear(p);
		return rc;
	}
	*out = p;
	return 0;
}

int apphost_redis_pool_new(const char *url, unsigned max,
			   struct apphost_redis_pool **out, char *err,
			   size_t errlen)
{
	return apphost_redis_pool_new_sentinel(url, NULL, max, out, err,
					       errlen);
}

const char *apphost_redis_pool_addr(const struct apphost_redis_pool *p)
{
	return p->addr;
}

int apphost_redis_pool_lease(struct apphost_redis_pool *p, uint32_t timeout_ms,
			     const char *who, struct redisContext **out)
{
	void *c = NULL;
	int rc = apphost_pool_lease(p->pool, timeout_ms, who, &c);

	*out = c;
	return rc;
}

int apphost_redis_pool_release(struct apphost_redis_pool *p,
			       struct redisContext *c, const char *who,
			       bool broken)
{
	if (c != NULL && c->err)
		broken = true; /* hiredis contexts are not reusable after err */
	return apphost_pool_release(p->pool, c, who, broken);
}

unsigned apphost_redis_pool_leased(struct apphost_redis_pool *p)
{
	return apphost_pool_leased(p->pool);
}

size_t apphost_redis_pool_sentinels(struct apphost_redis_pool *p)
{
	return p->nsentinels;
}

void apphost_redis_pool_free(struct apphost_redis_pool *p)
{
	if (p == NULL)
		return;
	apphost_redis_watch_stop(p);
	apphost_pool_free(p->pool);
	pool_clear(p);
}
