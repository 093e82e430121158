/*
 * pool_redis_watch.c -- the Sentinel watcher of the hiredis pool (see
 * pool_redis_int.h): switches of the primary, and Sentinels added later.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "pool_redis_int.h"

/* The watcher's pause before trying the Sentinels again. */
#define WATCH_RETRY_MS 1000
/* The watcher PINGs a silent Sentinel, and gives it up when it stays so. */
#define WATCH_PING_MS 500
#define WATCH_DEAD_MS 2000

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
	apphost_redis_primary_state(p, true, k.primary, NULL);
	apphost_pool_each(p->pool, kick_one, &k);
}

/* One +switch-master message: "<name> <old ip> <old port> <ip> <port>". */
/*
 * A Sentinel of our master at host:port, as one of them names it: kept,
 * when new, for the discoveries and the watcher to ask too (the Sentinel
 * client guidelines allow it; an operator adding a Sentinel expects it).
 */
static void add_sentinel(struct apphost_redis_pool *p, const char *host,
			 unsigned port)
{
	struct apphost_sentinel_addr a = {.port = (uint16_t)port};
	size_t n = p->nsentinels;
	char at[300];

	if (port == 0 || port > 65535 || strlen(host) >= sizeof(a.host))
		return;
	snprintf(a.host, sizeof(a.host), "%s", host);
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < n && a.port; i++)
		if (p->sentinels[i].port == a.port &&
		    strcmp(p->sentinels[i].host, a.host) == 0)
			a.port = 0; /* known */
	if (a.port && n < APPHOST_SENTINEL_MAX) {
		p->sentinels[n] = a;
		p->nsentinels = n + 1; /* after the entry: see the header */
	} else {
		a.port = 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (a.port)
		apphost_log(
		    APPHOST_LOG_INFO, NULL, "redis sentinel discovered",
		    "master=%s addr=%s sentinels=%zu", p->master,
		    apphost_sentinel_addr_text(host, port, at, sizeof(at)),
		    n + 1);
}

/* Ask the Sentinel on c for its peers of our master, and keep them. */
static void learn_peers(struct apphost_redis_pool *p, redisContext *c)
{
	struct apphost_sentinel_addr peers[APPHOST_SENTINEL_MAX];
	size_t n = 0;
	char err[256];

	if (apphost_sentinel_peers(c, p->master, peers, APPHOST_SENTINEL_MAX,
				   &n, err, sizeof(err)) < 0)
		return; /* asked again at the next subscribe */
	for (size_t i = 0; i < n; i++)
		add_sentinel(p, peers[i].host, peers[i].port);
}

/*
 * One message: on +switch-master "<name> <old ip> <old port> <ip> <port>",
 * on +sentinel "sentinel <runid> <ip> <port> @ <name> <ip> <port>".
 */
static void on_message(struct apphost_redis_pool *p, const redisReply *r)
{
	char name[160], oldip[256], ip[256], kind[16], runid[64];
	unsigned oldport, port;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "message") != 0 ||
	    r->element[1]->type != REDIS_REPLY_STRING ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return; /* the SUBSCRIBE confirmation, a PING's pong */
	if (strcmp(r->element[1]->str, "+sentinel") == 0) {
		if (sscanf(r->element[2]->str, "%15s %63s %255s %u @ %159s",
			   kind, runid, ip, &port, name) == 5 &&
		    strcmp(kind, "sentinel") == 0 &&
		    strcmp(name, p->master) == 0)
			add_sentinel(p, ip, port);
		return;
	}
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
	size_t n = p->nsentinels; /* only grows */

	for (size_t k = 0; k < n; k++) {
		const struct apphost_sentinel_addr *s =
		    &p->sentinels[(*at + k) % n];
		const char *argv[] = {"SUBSCRIBE", "+switch-master",
				      "+sentinel"};
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
		/* Sentinels added while no watcher listened, too. */
		learn_peers(p, c);
		r = redisCommandArgv(c, 3, argv, NULL);
		if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			*at = (*at + k) % n;
			return c;
		}
		if (r != NULL)
			freeReplyObject(r);
		redisFree(c);
	}
	return NULL;
}

/*
 * Read messages until the connection fails or a stop is asked (true).
 * A Sentinel that hangs sends nothing, not even a FIN: after
 * WATCH_PING_MS of silence a PING goes out (allowed while subscribed),
 * and after WATCH_DEAD_MS the connection is given up for the next one.
 */
static bool listen_on(struct apphost_redis_pool *p, redisContext *c)
{
	uint64_t last_rx = apphost_now_ms();
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
			uint64_t idle = apphost_now_ms() - last_rx;
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
		last_rx = apphost_now_ms();
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

void apphost_redis_watch_start(struct apphost_redis_pool *p)
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

void apphost_redis_watch_stop(struct apphost_redis_pool *p)
{
	bool watching;

	/* Not held across the join: the watcher takes mu itself. */
	pthread_mutex_lock(&p->mu);
	watching = p->watching;
	pthread_mutex_unlock(&p->mu);
	if (!watching)
		return;
	(void)!write(p->wake[1], "x", 1);
	pthread_join(p->watcher, NULL);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_lock(&p->mu);
	p->watching = false;
	pthread_mutex_unlock(&p->mu);
}
