/* pool_redis.c -- see pool_redis.h. The hiredis adapter: nothing above
 * this file sees a redisReply. */
#include "pool_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "pool.h"
#include "url.h"

struct apphost_redis_pool {
	struct apphost_redis_url url;
	char addr[300];
	struct apphost_pool *pool;
};

static struct timeval ms_tv(uint32_t ms)
{
	struct timeval tv = {
	    .tv_sec = (time_t)(ms / 1000),
	    .tv_usec = (suseconds_t)((ms % 1000) * 1000),
	};
	return tv;
}

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
		rc = APPHOST_EPROTO;
	}
	freeReplyObject(r);
	return rc;
}

static int redis_connect(void *arg, uint32_t timeout_ms, void **conn, char *err,
			 size_t errlen)
{
	struct apphost_redis_pool *p = arg;
	redisContext *c;
	int rc;

	c = redisConnectWithTimeout(p->url.host, p->url.port,
				    ms_tv(timeout_ms));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return APPHOST_ENOMEM;
	}
	if (c->err) {
		snprintf(err, errlen, "%s", c->errstr);
		redisFree(c);
		return APPHOST_ECONN;
	}
	/* AUTH and SELECT must not hang on a stuck server either. */
	redisSetTimeout(c, ms_tv(timeout_ms));
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
	if (p->url.db != 0) {
		char db[16];
		const char *argv[2] = {"SELECT", db};

		snprintf(db, sizeof(db), "%u", p->url.db);
		rc = command_ok(c, 2, argv, err, errlen);
		if (rc < 0)
			goto fail;
	}
	/* The lessee's default, as at every later lease (redis_prepare). */
	if (redisSetTimeout(c, ms_tv(APPHOST_REDIS_COMMAND_TIMEOUT_MS)) !=
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

static int redis_prepare(void *arg, void *conn)
{
	redisContext *c = conn;

	(void)arg;
	if (c->err)
		return APPHOST_EIO;
	if (redisSetTimeout(c, ms_tv(APPHOST_REDIS_COMMAND_TIMEOUT_MS)) !=
	    REDIS_OK)
		return APPHOST_EIO;
	return 0;
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

int apphost_redis_pool_new(const char *url, unsigned max,
			   struct apphost_redis_pool **out, char *err,
			   size_t errlen)
{
	struct apphost_redis_pool *p = calloc(1, sizeof(*p));
	int rc;

	if (p == NULL)
		return APPHOST_ENOMEM;
	rc = apphost_redis_url_parse(url, &p->url, err, errlen);
	if (rc < 0) {
		free(p);
		return rc;
	}
	snprintf(p->addr, sizeof(p->addr),
		 strchr(p->url.host, ':') ? "[%s]:%u/%u" : "%s:%u/%u",
		 p->url.host, p->url.port, p->url.db);
	rc = apphost_pool_new(&redis_ops, p, p->addr, max, &p->pool);
	if (rc < 0) {
		snprintf(err, errlen, "%s", apphost_strerror(rc));
		apphost_redis_url_clear(&p->url);
		free(p);
		return rc;
	}
	*out = p;
	return 0;
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

void apphost_redis_pool_release(struct apphost_redis_pool *p,
				struct redisContext *c, bool broken)
{
	if (c != NULL && c->err)
		broken = true; /* hiredis contexts are not reusable after err */
	apphost_pool_release(p->pool, c, broken);
}

unsigned apphost_redis_pool_leased(struct apphost_redis_pool *p)
{
	return apphost_pool_leased(p->pool);
}

void apphost_redis_pool_free(struct apphost_redis_pool *p)
{
	if (p == NULL)
		return;
	apphost_pool_free(p->pool);
	apphost_redis_url_clear(&p->url);
	free(p);
}
