/* pool_redis.c -- see pool_redis.h. The hiredis adapter: nothing above
 * this file sees a redisReply. */
#include "pool_redis.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "sentinel.h"
#include "status.h"
#include "url.h"

/* Per Sentinel: a stuck one must not hold up asking the next. */
#define SENTINEL_TIMEOUT_MS 500
/* The watcher's pause before trying the Sentinels again. */
#define WATCH_RETRY_MS 1000
/* The watcher PINGs a silent Sentinel, and gives it up when it stays so. */
#define WATCH_PING_MS 500
#define WATCH_DEAD_MS 2000

enum primary_state {
	PRIMARY_INIT,	 /* not asked yet */
	PRIMARY_KNOWN,	 /* the last discovery found it */
	PRIMARY_UNKNOWN, /* the last discovery failed */
};

struct apphost_redis_pool {
	struct apphost_redis_url url;
	char addr[600];
	struct apphost_pool *pool;

	/* Sentinel mode (nsentinels > 0): the primary comes from them. */
	struct apphost_sentinel_addr *sentinels;
	size_t nsentinels;
	char *master;
	char *sentinel_password; /* NULL: none */
	pthread_mutex_t mu;	 /* guards the fields below */
	size_t first;		 /* the Sentinel to ask first */
	char primary[300];	 /* "host:port" last found, "" before */
	enum primary_state state;
	struct apphost_metric *m_changes;
	atomic_uint nonce;

	/* The watcher: SUBSCRIBE +switch-master on a Sentinel (started at
	 * the first connect, under mu; wake[1] written to stop it). */
	bool watching;
	pthread_t watcher;
	int wake[2];
};

static void watch_start(struct apphost_redis_pool *p);

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

/*
 * Record what a discovery found: known (at addr) or not (why). Logs one
 * line per change of state, counts changes of the primary's address, and
 * keeps /readyz not ready while no primary is known.
 */
static void primary_state(struct apphost_redis_pool *p, bool known,
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
	apphost_status_set_host("redis", known,
				known ? NULL : "no primary known");
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
	for (size_t k = 0; k < p->nsentinels; k++) {
		size_t i = (first + k) % p->nsentinels;
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
			primary_state(p, false, NULL, err);
			return rc;
		}
		watch_start(p); /* after: it asks the one that answered */
	}
	c = redisConnectWithTimeout(host, port, ms_tv(timeout_ms));
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
			primary_state(p, false, NULL, err);
		} else {
			snprintf(err, errlen, "%s", c->errstr);
		}
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
			primary_state(p, false, NULL, err);
			if (rc != APPHOST_EPERM)
				rc = APPHOST_ECONN;
			goto fail;
		}
		primary_state(
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

/* ---- the Sentinel watcher -----------------------------------------------
 *
 * A lessee may hold its connection for a long time (the consumer does).
 * When the Sentinels switch the primary while the old one is still up (a
 * switchover, SENTINEL FAILOVER), nothing tells that lessee: the old
 * primary goes on accepting writes until the Sentinels turn it into a
 * replica, seconds later. So, as the Sentinel client guidelines suggest,
 * a thread subscribes to +switch-master and, on a switch of our master,
 * records the new primary and shuts down the socket of every pooled
 * connection to another address: each lessee sees its connection drop,
 * gives it back as broken, and its next lease finds the new primary.
 */

struct kick {
	const char *primary; /* "host:port" */
};

/* Shut down c's socket unless it is connected to k->primary. */
static void kick_one(void *arg, void *conn)
{
	const struct kick *k = arg;
	redisContext *c = conn;
	char at[300];

	if (c->tcp.host == NULL)
		return;
	apphost_sentinel_addr_text(c->tcp.host, (unsigned)c->tcp.port, at,
				   sizeof(at));
	/* The fd stays open (the pool lock keeps it from being closed);
	 * its lessee's next read or write fails and it releases it. */
	if (strcmp(at, k->primary) != 0)
		(void)shutdown(c->fd, SHUT_RDWR);
}

/* The Sentinels now name host:port: record it and, when that is a
 * change, drop every pooled connection to another address. */
static void switched(struct apphost_redis_pool *p, const char *host,
		     unsigned port)
{
	char at[300];
	struct kick k = {
	    apphost_sentinel_addr_text(host, port, at, sizeof(at))};
	bool same;

	/* Only a new address is news: the same one says nothing of whether
	 * it is reachable (the connect path finds that out). */
	pthread_mutex_lock(&p->mu);
	same = strcmp(p->primary, k.primary) == 0;
	pthread_mutex_unlock(&p->mu);
	if (same)
		return;
	primary_state(p, true, k.primary, NULL);
	apphost_pool_each(p->pool, kick_one, &k);
}

/* One +switch-master message: "<name> <old ip> <old port> <ip> <port>". */
static void on_message(struct apphost_redis_pool *p, const redisReply *r)
{
	char name[160], oldip[256], ip[256];
	unsigned oldport, port;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "message") != 0 ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return; /* the SUBSCRIBE confirmation, a PING's pong */
	if (sscanf(r->element[2]->str, "%159s %255s %u %255s %u", name, oldip,
		   &oldport, ip, &port) != 5 ||
	    strcmp(name, p->master) != 0 || port == 0 || port > 65535)
		return;
	switched(p, ip, port);
}

/* Wait up to ms for a stop; true when asked to stop. */
static bool stop_asked(struct apphost_redis_pool *p, int ms)
{
	struct pollfd w = {.fd = p->wake[0], .events = POLLIN};

	return poll(&w, 1, ms) > 0;
}

/*
 * A connection to the first Sentinel from *at on that takes it (*at is
 * then its index), subscribed. Before
 * subscribing it asks for the primary, so that a switch published while
 * no watcher listened (the last Sentinel died, say) is caught up on.
 */
static redisContext *subscribe(struct apphost_redis_pool *p, size_t *at)
{
	for (size_t k = 0; k < p->nsentinels; k++) {
		const struct apphost_sentinel_addr *s =
		    &p->sentinels[(*at + k) % p->nsentinels];
		const char *argv[] = {"SUBSCRIBE", "+switch-master"};
		char err[256], host[256];
		uint16_t port;
		redisContext *c;
		redisReply *r;

		if (apphost_sentinel_connect(s, p->sentinel_password,
					     SENTINEL_TIMEOUT_MS, &c, err,
					     sizeof(err)) < 0)
			continue;
		(void)redisEnableKeepAlive(c);
		if (apphost_sentinel_get_master(c, p->master, host,
						sizeof(host), &port, err,
						sizeof(err)) == 0)
			switched(p, host, port);
		r = redisCommandArgv(c, 2, argv, NULL);
		if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			*at = (*at + k) % p->nsentinels;
			return c;
		}
		if (r != NULL)
			freeReplyObject(r);
		redisFree(c);
	}
	return NULL;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Read messages until the connection fails or a stop is asked (true).
 * A Sentinel that hangs sends nothing, not even a FIN: after
 * WATCH_PING_MS of silence a PING goes out (allowed while subscribed),
 * and after WATCH_DEAD_MS the connection is given up for the next one.
 */
static bool listen_on(struct apphost_redis_pool *p, redisContext *c)
{
	uint64_t last_rx = mono_ms();
	bool pinged = false;

	for (;;) {
		struct pollfd fds[2] = {
		    {.fd = c->fd, .events = POLLIN},
		    {.fd = p->wake[0], .events = POLLIN},
		};
		void *reply = NULL;
		int n = poll(fds, 2, WATCH_PING_MS);

		if (n < 0 && errno != EINTR)
			return false;
		if (fds[1].revents != 0)
			return true;
		if (n <= 0 || fds[0].revents == 0) {
			uint64_t idle = mono_ms() - last_rx;
			const char *ping[] = {"PING"};
			int done = 0;

			if (idle >= WATCH_DEAD_MS)
				return false;
			if (pinged || idle < WATCH_PING_MS)
				continue;
			if (redisAppendCommandArgv(c, 1, ping, NULL) !=
			    REDIS_OK)
				return false;
			while (!done)
				if (redisBufferWrite(c, &done) != REDIS_OK)
					return false;
			pinged = true;
			continue;
		}
		if (redisBufferRead(c) != REDIS_OK)
			return false;
		last_rx = mono_ms();
		pinged = false;
		while (redisGetReplyFromReader(c, &reply) == REDIS_OK &&
		       reply != NULL) {
			on_message(p, reply);
			freeReplyObject(reply);
			reply = NULL;
		}
		if (c->err)
			return false;
	}
}

static void *watch(void *arg)
{
	struct apphost_redis_pool *p = arg;
	size_t at;

	/* First the Sentinel that answered the discovery; after a failure
	 * the next one, not the one that just failed. */
	pthread_mutex_lock(&p->mu);
	at = p->first;
	pthread_mutex_unlock(&p->mu);
	for (;;) {
		redisContext *c = subscribe(p, &at);
		bool stop = false;

		if (c != NULL) {
			stop = listen_on(p, c);
			redisFree(c);
			/* Nor should a discovery ask the failed one first. */
			pthread_mutex_lock(&p->mu);
			if (p->first == at)
				p->first = (at + 1) % p->nsentinels;
			pthread_mutex_unlock(&p->mu);
			at = (at + 1) % p->nsentinels;
		}
		if (stop || stop_asked(p, WATCH_RETRY_MS))
			return NULL;
	}
}

/* Start the watcher once (Sentinel mode, at the first connect). */
static void watch_start(struct apphost_redis_pool *p)
{
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	if (!p->watching) {
		rc = pipe2(p->wake, O_CLOEXEC);
		if (rc == 0) {
			rc = pthread_create(&p->watcher, NULL, watch, p);
			if (rc != 0) {
				close(p->wake[0]);
				close(p->wake[1]);
			}
		}
		p->watching = rc == 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (rc != 0)
		apphost_log(APPHOST_LOG_WARN, NULL,
			    "redis sentinel watch not started: a switchover "
			    "is noticed at the next error only",
			    "master=%s", p->master);
}

static void watch_stop(struct apphost_redis_pool *p)
{
	if (!p->watching)
		return;
	(void)!write(p->wake[1], "x", 1);
	pthread_join(p->watcher, NULL);
	close(p->wake[0]);
	close(p->wake[1]);
	p->watching = false;
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
static int redis_prepare(void *arg, void *conn, bool new_lessee)
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
	if (redisSetTimeout(c, ms_tv(APPHOST_REDIS_COMMAND_TIMEOUT_MS)) !=
	    REDIS_OK)
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
		rc = apphost_sentinels_parse(sen->sentinels, &p->sentinels,
					     &p->nsentinels, err, errlen);
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
		apphost_status_set_host("redis", false, "no primary known yet");
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

void apphost_redis_pool_free(struct apphost_redis_pool *p)
{
	if (p == NULL)
		return;
	watch_stop(p);
	apphost_pool_free(p->pool);
	pool_clear(p);
}
