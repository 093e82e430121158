/*
 * consumer_health.c -- what the consumer tells of its dependencies: one
 * log line per change of a failure, readiness, the lag metrics, a fenced
 * write, and whether it still leads.
 */
#include "consumer_int.h"

#include "he_clock.h"
#include "he_consumer_step.h"
#include "he_stream_id.h"

#include <stdio.h>
#include <string.h>

static const char *const dep_name[DEP_COUNT] = {"redis", "postgres"};

/* Ready while both dependencies answered once and neither is failing. */
void consumer_readiness(he_consumer *c)
{
	const dep_state *rd = &c->deps[DEP_REDIS], *pg = &c->deps[DEP_PG];
	char why[300];
	if (rd->failing)
		snprintf(why, sizeof(why), "redis failing: %s", rd->err);
	else if (pg->failing)
		snprintf(why, sizeof(why), "postgres failing: %s", pg->err);
	else if (!rd->last_ok_ns || !pg->last_ok_ns)
		snprintf(why, sizeof(why), "starting: %s not reached yet",
			 !rd->last_ok_ns ? "redis" : "postgres");
	else {
		char what[300];
		bool asked = he_leader_aside(c->leader, what, sizeof(what));
		he_ops_ready(&c->ops, asked, what);
		return;
	}
	he_ops_ready(&c->ops, false, why);
}

void consumer_dep_failed(he_consumer *c, enum dep d, int code, const char *err)
{
	dep_state *s = &c->deps[d];
	/* Refused inside a script, Redis names no command: ask which. */
	if (code == HE_EPERM && d == DEP_REDIS && err != c->pf.err &&
	    he_preflight_redis(&c->pf) == HE_EPERM)
		err = c->pf.err;
	s->attempts++;
	/* (compared as far as it is kept: a long reason is cut) */
	if (s->failing && strncmp(s->err, err, sizeof(s->err) - 1) == 0)
		return; /* same state: already said */
	snprintf(s->err, sizeof(s->err), "%.*s", (int)sizeof(s->err) - 1, err);
	s->failing = true;
	consumer_readiness(c);
	LOG(c, APPHOST_LOG_ERROR, "dependency failing, retrying with backoff",
	    "dependency=%s code=%s error=\"%s\" offset=%s", dep_name[d],
	    he_strerror(code), err, c->offset);
}

void consumer_dep_ok(he_consumer *c, enum dep d)
{
	dep_state *s = &c->deps[d];
	/*
	 * Reached for the first time or again (a reconnection, perhaps to
	 * another node): may we do all we will do there? Until we may, the
	 * dependency stays failing, and each retry asks again.
	 */
	if (!s->last_ok_ns || s->failing) {
		int r = d == DEP_PG ? he_preflight_pg(&c->pf)
				    : he_preflight_redis(&c->pf);
		if (r < 0) {
			consumer_dep_failed(c, d, r, c->pf.err);
			return;
		}
	}
	if (s->failing) {
		LOG(c, APPHOST_LOG_INFO, "dependency recovered",
		    "dependency=%s failed_attempts=%u", dep_name[d],
		    s->attempts);
		he_ops_reconnected(&c->ops);
	}
	bool first = !s->last_ok_ns;
	s->last_ok_ns = he_now_ns(c->svc);
	bool was_failing = s->failing;
	s->failing = false;
	s->attempts = 0;
	s->err[0] = '\0';
	if (first || was_failing)
		consumer_readiness(c);
}

static unsigned long long id_ms(const char *id)
{
	he_stream_id v;
	return he_stream_id_parse(id, &v) == 0 ? v.ms : 0;
}

/* Export the lag now; also while a batch is retried, so it keeps rising. */
void consumer_lag_export(he_consumer *c)
{
	he_ops_lag_seconds(&c->ops, he_lag_seconds(&c->lag, he_now_ns(c->svc)));
}

/* A read returned n entries: dated by the TIME that came with it. */
void consumer_lag_read(he_consumer *c, const he_stream_entry *e, size_t n)
{
	uint64_t redis_us, at_ns;
	if (he_stream_redis_time(&c->rs, &redis_us, &at_ns))
		he_lag_clock(&c->lag, redis_us, at_ns);
	he_lag_read(&c->lag, n, n ? id_ms(e[0].id) : 0);
	he_ops_abandoned(&c->ops, he_stream_redis_overflows(&c->rs));
	consumer_lag_export(c);
}

/* A batch of n (> 0) was committed: each entry's age, and what is left. */
void consumer_lag_committed(he_consumer *c, const he_stream_entry *e, size_t n)
{
	uint64_t now = he_now_ns(c->svc);
	for (size_t i = 0; i < n; i++) {
		double a = he_lag_age(&c->lag, id_ms(e[i].id), now);
		if (a >= 0)
			he_ops_age(&c->ops, a);
	}
	he_lag_committed(&c->lag, n < he_stream_redis_asked(&c->rs),
			 id_ms(e[n - 1].id));
	consumer_lag_export(c);
}

bool consumer_stopping(he_consumer *c)
{
	return atomic_load(&c->stopping);
}

/* A write with `epoch` was refused: a newer leader exists. */
void consumer_fenced(he_consumer *c, const char *what, bool in_redis)
{
	LOG(c, APPHOST_LOG_WARN, "write fenced: a newer leader exists",
	    "write=%s epoch=%llu error=\"%s\"", what,
	    (unsigned long long)c->epoch,
	    in_redis ? he_stream_redis_err(&c->rs)
		     : he_record_store_pg_err(&c->pg));
}

bool consumer_leading(he_consumer *c)
{
	return he_leader_epoch(c->leader) == c->epoch;
}
