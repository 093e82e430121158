/*
 * heartbeat.c -- an apphost component: every HEARTBEAT_INTERVAL_MS it sets
 * HEARTBEAT_KEY in Redis to "<instance> <unix ms>" with a TTL of
 * HEARTBEAT_TTL_MS, so whoever watches the key knows this host is alive
 * (the key vanishes at most one TTL after the host stops beating). A
 * graceful stop deletes the key at once.
 *
 * Configuration (through the host: environment or apphost --config):
 *   HEARTBEAT_KEY          default apphost:heartbeat:<hostname>
 *   HEARTBEAT_INTERVAL_MS  default 1000, 10..3600000
 *   HEARTBEAT_TTL_MS       default 3 x interval; must exceed the interval
 *
 * Metrics: heartbeat_writes_total, heartbeat_failures_total (counters),
 * heartbeat_last_write_timestamp_seconds (gauge, Unix time of the last
 * write: alert on time() minus it). Readiness:
 * not ready while writes fail, with the reason. A failure is logged once
 * when it starts and once when writes succeed again.
 *
 * Threads: one beat thread, started by start and ended by stop (a
 * condition variable wakes it at once). It leases a Redis connection per
 * beat and returns it, broken when a command failed.
 */
#define _POSIX_C_SOURCE 200809L
#include <apphost/component.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#ifndef HEARTBEAT_VERSION
#define HEARTBEAT_VERSION "1.0.0"
#endif

APPHOST_COMPONENT("heartbeat", HEARTBEAT_VERSION);

struct heartbeat {
	const apphost_services *svc;
	char key[512];
	char instance[300];
	unsigned interval_ms, ttl_ms;
	struct apphost_metric *writes, *failures, *last_write;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping, started, failing;
};

#define LOG(h, level, msg, ...)                                                \
	(h)->svc->log((h)->svc->host, (level), (msg), __VA_ARGS__)

/* A number of milliseconds for `key` in [min, max], or `def` when unset. */
static int read_ms(struct heartbeat *h, const char *key, unsigned def,
		   unsigned min, unsigned max, unsigned *out)
{
	const char *v = h->svc->config_get(h->svc->host, key);
	unsigned long n;
	char *end;

	if (v == NULL || v[0] == '\0') {
		*out = def;
		return 0;
	}
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || v[0] == '-' || n < min || n > max) {
		LOG(h, APPHOST_LOG_ERROR, "bad configuration",
		    "key=%s value=\"%s\" err=\"expected %u..%u\"", key, v, min,
		    max);
		return APPHOST_EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}

int apphost_component_init(const apphost_services *svc, void **state)
{
	struct heartbeat *h;
	const char *key;
	char host[256] = "localhost";
	int rc;

	/* metrics and readiness arrived with ABI 1.1 */
	if (!APPHOST_SVC_HAS(svc, set_ready))
		return APPHOST_ENOTSUP;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return APPHOST_ENOMEM;
	h->svc = svc;
	(void)gethostname(host, sizeof(host) - 1);
	snprintf(h->instance, sizeof(h->instance), "%s:%ld", host,
		 (long)getpid());
	key = svc->config_get(svc->host, "HEARTBEAT_KEY");
	if (key != NULL && key[0] != '\0')
		snprintf(h->key, sizeof(h->key), "%s", key);
	else
		snprintf(h->key, sizeof(h->key), "apphost:heartbeat:%s", host);
	rc = read_ms(h, "HEARTBEAT_INTERVAL_MS", 1000, 10, 3600000,
		     &h->interval_ms);
	if (rc == 0)
		rc = read_ms(h, "HEARTBEAT_TTL_MS", 3 * h->interval_ms, 1,
			     3 * 3600000u, &h->ttl_ms);
	if (rc == 0 && h->ttl_ms <= h->interval_ms) {
		LOG(h, APPHOST_LOG_ERROR, "bad configuration",
		    "key=HEARTBEAT_TTL_MS value=\"%u\" err=\"must exceed "
		    "HEARTBEAT_INTERVAL_MS (%u), or the key expires between "
		    "beats\"",
		    h->ttl_ms, h->interval_ms);
		rc = APPHOST_EINVAL;
	}
	if (rc == 0)
		rc = svc->metric_get(
		    svc->host, APPHOST_METRIC_COUNTER, "heartbeat_writes_total",
		    "Heartbeats written to Redis.", NULL, NULL, 0, &h->writes);
	if (rc == 0)
		rc = svc->metric_get(svc->host, APPHOST_METRIC_COUNTER,
				     "heartbeat_failures_total",
				     "Heartbeats that could not be written.",
				     NULL, NULL, 0, &h->failures);
	if (rc == 0)
		rc = svc->metric_get(svc->host, APPHOST_METRIC_GAUGE,
				     "heartbeat_last_write_timestamp_seconds",
				     "Unix time of the last heartbeat written.",
				     NULL, NULL, 0, &h->last_write);
	if (rc < 0) {
		free(h);
		return rc;
	}
	{
		/* beats keep their pace when the wall clock jumps */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&h->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&h->mu, NULL);
	*state = h;
	return 0;
}

/* One SET key value PX ttl. Returns 0, or the error text in why. */
static int beat(struct heartbeat *h, char *why, size_t cap)
{
	struct redisContext *c;
	redisReply *r;
	struct timespec now;
	char value[400], ttl[16];
	const char *argv[5] = {"SET", h->key, value, "PX", ttl};
	bool ok;
	int rc;

	rc = h->svc->redis_lease(h->svc->host, 1000, &c);
	if (rc < 0) {
		snprintf(why, cap, "redis lease: %s", apphost_strerror(rc));
		return rc;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(value, sizeof(value), "%s %lld", h->instance,
		 (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	snprintf(ttl, sizeof(ttl), "%u", h->ttl_ms);
	r = redisCommandArgv(c, 5, argv, NULL);
	ok = r != NULL && r->type == REDIS_REPLY_STATUS;
	if (!ok)
		snprintf(why, cap, "redis SET: %s",
			 r != NULL && r->type == REDIS_REPLY_ERROR ? r->str
			 : c->err != 0				   ? c->errstr
				       : "unexpected reply");
	if (r != NULL)
		freeReplyObject(r);
	/* an error reply leaves the connection usable; an I/O error not */
	h->svc->redis_release(h->svc->host, c, r == NULL);
	return ok ? 0 : APPHOST_EIO;
}

static void beat_once(struct heartbeat *h)
{
	char why[256];
	const apphost_services *s = h->svc;

	if (beat(h, why, sizeof(why)) == 0) {
		s->metric_add(s->host, h->writes, 1);
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		s->metric_set(s->host, h->last_write,
			      (double)now.tv_sec + (double)now.tv_nsec / 1e9);
		if (h->failing) {
			h->failing = false;
			LOG(h, APPHOST_LOG_INFO, "heartbeat recovered",
			    "key=%s", h->key);
			s->set_ready(s->host, true, NULL);
		}
		return;
	}
	s->metric_add(s->host, h->failures, 1);
	if (!h->failing) {
		h->failing = true;
		LOG(h, APPHOST_LOG_WARN, "heartbeat failing",
		    "key=%s err=\"%s\"", h->key, why);
		s->set_ready(s->host, false, why);
	}
}

static void *run(void *arg)
{
	struct heartbeat *h = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		pthread_mutex_unlock(&h->mu);
		beat_once(h);
		next.tv_sec += h->interval_ms / 1000;
		next.tv_nsec += (long)(h->interval_ms % 1000) * 1000000L;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&h->mu);
		while (!h->stopping &&
		       pthread_cond_timedwait(&h->cv, &h->mu, &next) == 0)
			;
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int apphost_component_start(void *state)
{
	struct heartbeat *h = state;

	if (pthread_create(&h->thread, NULL, run, h) != 0)
		return APPHOST_ENOMEM;
	h->started = true;
	LOG(h, APPHOST_LOG_INFO, "heartbeat started",
	    "key=%s interval_ms=%u ttl_ms=%u", h->key, h->interval_ms,
	    h->ttl_ms);
	return 0;
}

/* Best effort: the TTL removes the key anyway. */
static void delete_key(struct heartbeat *h)
{
	const char *argv[2] = {"DEL", h->key};
	struct redisContext *c;
	redisReply *r;

	if (h->svc->redis_lease(h->svc->host, 1000, &c) < 0)
		return;
	r = redisCommandArgv(c, 2, argv, NULL);
	if (r != NULL)
		freeReplyObject(r);
	h->svc->redis_release(h->svc->host, c, r == NULL);
}

int apphost_component_stop(void *state)
{
	struct heartbeat *h = state;

	if (h->started) {
		pthread_mutex_lock(&h->mu);
		h->stopping = true;
		pthread_cond_signal(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->thread, NULL);
		delete_key(h);
		LOG(h, APPHOST_LOG_INFO, "heartbeat stopped", "key=%s", h->key);
	}
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
	return 0;
}
