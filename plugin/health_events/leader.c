/* leader.c -- see leader.h. */
#include "leader.h"

#include "he_clock.h"
#include "he_lease_step.h"
#include "he_ops.h"
#include "pg_session.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static const char lease_sql[] =
    "SELECT o_epoch, o_holder FROM health_events_lease($1, $2, "
    "$3, $4::integer, $5::bigint)";
static const char release_sql[] =
    "SELECT health_events_lease_release($1, $2, $3::bigint)";

struct he_leader {
	const apphost_services *svc;  /* immutable */
	const apphost_services *msvc; /* immutable: svc with metrics, or NULL */
	const he_config *cfg;	      /* immutable */
	he_lease_timing t;	      /* immutable */
	char token[33];	      /* immutable: random per instance (schema/003) */
	char lease_ms[16];    /* immutable */
	void (*wake)(void *); /* immutable once started */
	void *wake_arg;	      /* immutable once started */
	uv_thread_t thread;   /* main thread */
	bool started;	      /* main thread */
	struct apphost_metric *m_leader, *m_epoch, *m_changes,
	    *m_fenced; /* immutable (the host's series take any thread) */

	he_pg_session pg; /* lease thread: a connection of its own */

	atomic_bool stop;     /* atomic */
	atomic_bool failing;  /* atomic: lease calls failing (logged once) */
	atomic_int fail_code; /* atomic: the last failed call's HE_E* */
	/* atomic: when the consumer last had an answer from each server
	 * (he_now_ns, 0: never); written by its adapters, read here. */
	he_heard heard[HE_DEP_COUNT];

	uv_mutex_t mu; /* guards the fields below it; cv signals changes */
	uv_cond_t cv;
	/* mu: the decisions: renew, expire, step down, contend, release,
	 * back off (core/he_lease_step.h); this file only makes its calls. */
	he_lease_sm sm;
	char holder_seen[256]; /* mu: the other holder, last poll */
	const char *aside;     /* mu: why we do not contend now, NULL: we do */
};

/* Why a standby does not contend before its consumer reached both. */
static const char STARTING[] = "starting";

#define LOG(l, lvl, msg, ...)                                                  \
	(l)->svc->log((l)->svc->host, lvl, msg, __VA_ARGS__)

static struct apphost_metric *metric(he_leader *l, int type, const char *name,
				     const char *help)
{
	return he_ops_metric(l->msvc, type, name, help, NULL, NULL, 0);
}

/* 32 hex digits from getrandom(), or from the clock and pid without it. */
static void make_token(char out[33])
{
	unsigned char b[16];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		unsigned long long x = (unsigned long long)ts.tv_nsec ^
				       ((unsigned long long)getpid() << 32) ^
				       (unsigned long long)ts.tv_sec;
		for (size_t i = 0; i < sizeof(b);
		     i++, x = x * 6364136223846793005ull + 1)
			b[i] = (unsigned char)(x >> 56);
	}
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int he_leader_new(const apphost_services *svc, const he_config *cfg,
		  he_leader **out)
{
	he_leader *l = calloc(1, sizeof(*l));
	if (!l)
		return HE_ENOMEM;
	l->svc = svc;
	l->msvc = he_ops_services(svc);
	l->cfg = cfg;
	l->t = he_lease_timing_for(cfg->lease_ms);
	he_lease_sm_init(&l->sm, cfg->lease_ms);
	snprintf(l->lease_ms, sizeof(l->lease_ms), "%u", cfg->lease_ms);
	make_token(l->token);
	he_pg_init(&l->pg, svc);
	/* Every call is bounded by its own timeout, stopping or not. */
	he_pg_set_timeout(&l->pg, l->t.call_ms);
	atomic_init(&l->stop, false);
	atomic_init(&l->failing, false);
	atomic_init(&l->fail_code, 0);
	for (int i = 0; i < HE_DEP_COUNT; i++) {
		atomic_init(&l->heard[i].at, 0);
		atomic_init(&l->heard[i].waiting, 0);
	}
	uv_mutex_init(&l->mu);
	uv_cond_init(&l->cv);
	l->aside = STARTING;
	l->m_leader = metric(l, APPHOST_METRIC_GAUGE, "health_events_leader",
			     "1 while this instance holds the leadership "
			     "lease and consumes, 0 on a standby.");
	l->m_epoch =
	    metric(l, APPHOST_METRIC_GAUGE, "health_events_leader_epoch",
		   "Epoch (fencing token) of the lease this instance "
		   "holds or last held.");
	l->m_changes = metric(l, APPHOST_METRIC_COUNTER,
			      "health_events_leadership_changes_total",
			      "Times this instance acquired or lost the "
			      "leadership lease.");
	l->m_fenced =
	    metric(l, APPHOST_METRIC_COUNTER, "health_events_fenced_total",
		   "Writes refused because a newer leader exists.");
	he_ops_metric_set(l->msvc, l->m_leader, 0);
	*out = l;
	return HE_OK;
}

/* ---- state changes --------------------------------------------------------
 */

/*
 * What one turn of the lease thread has to tell, gathered under mu and
 * told once mu is let go: the consumer asks for the epoch under mu before
 * each write, and must not wait behind the log.
 */
typedef struct news_out {
	uint64_t lost;	       /* leadership with this epoch ended */
	he_lease_why why;      /* ... for this */
	const char *reason;    /* ... named so (static text) */
	uint64_t acquired;     /* leadership with this epoch began */
	char previous[256];    /* ... after this holder ("": none seen) */
	bool aside_changed;    /* stand_aside moved from `from` to `to` */
	const char *from, *to; /* static text, NULL: contending */
} news_out;

static void tell(he_leader *l, const news_out *o)
{
	if (o->lost) {
		/* Stopping is the planned way to lose it; the others are
		 * news. */
		LOG(l,
		    o->why == HE_LEASE_WHY_STOPPING ? APPHOST_LOG_INFO
						    : APPHOST_LOG_WARN,
		    "leadership lost", "epoch=%llu instance=%s reason=%s",
		    (unsigned long long)o->lost, l->cfg->instance_id,
		    o->reason);
		he_ops_metric_set(l->msvc, l->m_leader, 0);
		he_ops_metric_add(l->msvc, l->m_changes, 1);
	}
	if (o->acquired) {
		LOG(l, APPHOST_LOG_INFO, "leadership acquired",
		    "epoch=%llu instance=%s previous_holder=%s lease_ms=%u",
		    (unsigned long long)o->acquired, l->cfg->instance_id,
		    o->previous[0] ? o->previous : "none", l->t.lease_ms);
		/* health_events_leader turns 1 once the consumer consumes. */
		he_ops_metric_set(l->msvc, l->m_epoch, (double)o->acquired);
		he_ops_metric_add(l->msvc, l->m_changes, 1);
	}
	if (!o->aside_changed || o->to == STARTING ||
	    (!o->to && o->from == STARTING))
		return; /* nothing to say before both servers were reached */
	if (o->to)
		LOG(l, APPHOST_LOG_WARN, "standing aside from the lease",
		    "instance=%s reason=%s", l->cfg->instance_id, o->to);
	else
		LOG(l, APPHOST_LOG_INFO, "contending for the lease again",
		    "instance=%s after=%s", l->cfg->instance_id, o->from);
}

/* Whether the consumer can do the work now (DESIGN §10). Any thread. */
static he_able able_now(he_leader *l, uint64_t now)
{
	const he_heard *r = &l->heard[HE_DEP_REDIS], *p = &l->heard[HE_DEP_PG];
	return he_lease_able(&l->t, now, atomic_load(&r->at),
			     atomic_load(&p->at), atomic_load(&r->waiting),
			     atomic_load(&p->waiting));
}

/* Under mu: we do not contend, for `why` (NULL: we do again); told on
 * change (tell), except at the start, before the consumer reached both
 * servers. */
static void stand_aside(he_leader *l, const char *why, news_out *o)
{
	if (why == l->aside)
		return;
	if (!o->aside_changed)
		o->from = l->aside;
	o->aside_changed = true;
	o->to = why;
	l->aside = why;
}

/* ---- lease calls (without mu) -------------------------------------------- */

/* One acquire-or-renew: 0 and *epoch (0: held by *holder), or HE_E*. */
static int lease_call(he_leader *l, unsigned long long min_epoch,
		      uint64_t *epoch, char *holder, size_t cap)
{
	char min[24];
	snprintf(min, sizeof(min), "%llu", min_epoch);
	const char *params[] = {l->cfg->lease_name, l->cfg->instance_id,
				l->token, l->lease_ms, min};
	PGresult *res;
	int r = he_pg_query(&l->pg, "health_events_lease", lease_sql, 5, params,
			    &res);
	if (r < 0)
		return r;
	if (PQntuples(res) != 1 || PQnfields(res) != 2) {
		he_pg_errorf(&l->pg, "health_events_lease returned %d rows",
			     PQntuples(res));
		PQclear(res);
		return HE_EPROTO;
	}
	*epoch = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	snprintf(holder, cap, "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	return HE_OK;
}

static void release(he_leader *l, uint64_t epoch)
{
	char e[24];
	snprintf(e, sizeof(e), "%llu", (unsigned long long)epoch);
	const char *params[] = {l->cfg->lease_name, l->token, e};
	PGresult *res;
	int r = he_pg_query(&l->pg, "health_events_lease_release", release_sql,
			    3, params, &res);
	if (r < 0) {
		/* It lapses by itself; a standby then takes over later. */
		LOG(l, APPHOST_LOG_WARN, "lease not released",
		    "epoch=%llu error=\"%s\"", (unsigned long long)epoch,
		    he_pg_error(&l->pg));
		return;
	}
	PQclear(res);
}

/* ---- the thread ---------------------------------------------------------- */

static void call_result(he_leader *l, int r)
{
	bool was = atomic_load(&l->failing);
	if (r < 0 && !was)
		LOG(l, APPHOST_LOG_ERROR, "lease calls failing, retrying",
		    "code=%s error=\"%s\"", he_strerror(r),
		    he_pg_error(&l->pg));
	else if (r == 0 && was)
		LOG(l, APPHOST_LOG_INFO, "lease calls recovered", "%s", "");
	atomic_store(&l->fail_code, r < 0 ? r : 0);
	atomic_store(&l->failing, r < 0);
}

/* Wait on cv until `until_ns` (he_now_ns), stop or a change. */
static void wait_until(he_leader *l, uint64_t until_ns)
{
	uint64_t now = he_now_ns(l->svc);
	if (now < until_ns && !atomic_load(&l->stop))
		(void)uv_cond_timedwait(&l->cv, &l->mu, until_ns - now);
}

/* Under mu: the consumer's last answers, into the machine. */
static void hear(he_leader *l)
{
	he_lease_sm_heard(&l->sm, HE_HEARD_REDIS,
			  atomic_load(&l->heard[HE_DEP_REDIS].at));
	he_lease_sm_heard(&l->sm, HE_HEARD_PG,
			  atomic_load(&l->heard[HE_DEP_PG].at));
}

/* Under mu: what the last step changed, into *o (told by tell once mu
 * is let go); a change wakes the waits on cv. */
static void news(he_leader *l, uint64_t now, news_out *o)
{
	he_lease_news n = l->sm.news;
	l->sm.news = (he_lease_news){0};
	if (n.lost) {
		o->lost = n.lost;
		o->why = n.why;
		o->reason = n.why == HE_LEASE_WHY_SILENT
				? he_able_name(able_now(l, now))
				: he_lease_why_name(n.why);
	}
	if (n.acquired) {
		o->acquired = n.acquired;
		snprintf(o->previous, sizeof(o->previous), "%s",
			 l->holder_seen);
	}
	if (n.lost || n.acquired)
		uv_cond_broadcast(&l->cv);
}

/* Under mu: why a standby does not contend now, for readiness and the
 * logs (the machine decides; this names it). */
static void note_aside(he_leader *l, uint64_t now, news_out *o)
{
	he_able a = able_now(l, now);
	bool never = !atomic_load(&l->heard[HE_DEP_REDIS].at) ||
		     !atomic_load(&l->heard[HE_DEP_PG].at);
	if (l->sm.epoch)
		stand_aside(l, NULL, o);
	else if (a != HE_ABLE)
		stand_aside(l, never ? STARTING : he_able_name(a), o);
	else if (now < l->sm.aside_until)
		stand_aside(l, "backing_off", o);
	else
		stand_aside(l, NULL, o);
}

/* The lease thread: the machine's calls, made without mu. */
static void run(void *arg)
{
	he_leader *l = arg;
	uv_mutex_lock(&l->mu);
	for (;;) {
		if (atomic_load(&l->stop))
			he_lease_sm_stop(&l->sm);
		uint64_t now = he_now_ns(l->svc);
		hear(l);
		he_lease_next n = he_lease_sm_next(&l->sm, now);
		news_out o = {0};
		news(l, now, &o);
		note_aside(l, now, &o);
		if (o.lost || o.acquired || o.aside_changed) {
			uv_mutex_unlock(&l->mu);
			tell(l, &o);
			/* Leadership ended: wake the consumer. */
			if (o.lost && l->wake)
				l->wake(l->wake_arg);
			uv_mutex_lock(&l->mu);
		}
		if (n.what == HE_LEASE_DO_WAIT) {
			if (atomic_load(&l->stop))
				break; /* stopped, nothing left to let go */
			/* The consumer's answers change without telling: look
			 * again at least every poll. */
			uint64_t poll = now + l->t.poll_ms * HE_NS_PER_MS;
			wait_until(l, n.at_ns < poll ? n.at_ns : poll);
			continue;
		}
		if (n.what == HE_LEASE_DO_RELEASE) {
			uv_mutex_unlock(&l->mu);
			release(l, n.epoch);
			uv_mutex_lock(&l->mu);
			he_lease_sm_released(&l->sm, he_now_ns(l->svc), 0);
			continue;
		}
		uint64_t got = 0;
		char holder[256] = "";
		uv_mutex_unlock(&l->mu);
		uint64_t t0 = he_now_ns(l->svc);
		int r =
		    lease_call(l, n.min_epoch, &got, holder, sizeof(holder));
		call_result(l, r); /* logs: before mu */
		uv_mutex_lock(&l->mu);
		if (r == 0 && !got)
			snprintf(l->holder_seen, sizeof(l->holder_seen), "%s",
				 holder);
		he_lease_sm_asked(&l->sm, he_now_ns(l->svc), t0, r, got);
	}
	uv_mutex_unlock(&l->mu);
	he_pg_close(&l->pg);
}

int he_leader_start(he_leader *l, void (*wake)(void *), void *arg)
{
	l->wake = wake;
	l->wake_arg = arg;
	if (uv_thread_create(&l->thread, run, l) != 0)
		return HE_ENOMEM;
	l->started = true;
	return HE_OK;
}

/* Under mu: the epoch we may write with at `now`, else 0. Not once a
 * server went silent: the lease thread then steps down at its next turn. */
static uint64_t writable(he_leader *l, uint64_t now)
{
	hear(l);
	return he_lease_sm_writable(&l->sm, now);
}

uint64_t he_leader_epoch(he_leader *l)
{
	uv_mutex_lock(&l->mu);
	uint64_t e = writable(l, he_now_ns(l->svc));
	uv_mutex_unlock(&l->mu);
	return e;
}

uint64_t he_leader_wait(he_leader *l, const atomic_bool *stop,
			unsigned timeout_ms)
{
	uint64_t end = he_now_ns(l->svc) + (uint64_t)timeout_ms * HE_NS_PER_MS,
		 e = 0;
	uv_mutex_lock(&l->mu);
	for (;;) {
		uint64_t now = he_now_ns(l->svc);
		if ((e = writable(l, now)) || atomic_load(stop) || now >= end)
			break;
		(void)uv_cond_timedwait(&l->cv, &l->mu, end - now);
	}
	uv_mutex_unlock(&l->mu);
	return e;
}

int he_leader_failure(he_leader *l)
{
	return atomic_load(&l->fail_code);
}

he_heard *he_leader_heard(he_leader *l, enum he_dep d)
{
	return &l->heard[d];
}

const char *he_leader_token(const he_leader *l)
{
	return l->token;
}

void he_leader_saw_fence(he_leader *l, unsigned long long fence)
{
	uv_mutex_lock(&l->mu);
	he_lease_sm_saw_fence(&l->sm, fence);
	uv_mutex_unlock(&l->mu);
}

void he_leader_consuming(he_leader *l, bool on)
{
	he_ops_metric_set(l->msvc, l->m_leader, on ? 1 : 0);
}

bool he_leader_aside(he_leader *l, char *buf, size_t cap)
{
	uv_mutex_lock(&l->mu);
	bool asked = l->aside != STARTING;
	if (!asked)
		snprintf(buf, cap, "starting: lease not asked for yet");
	else if (l->sm.epoch)
		snprintf(buf, cap, "leader");
	else if (l->aside)
		snprintf(buf, cap, "standby, standing aside: %s", l->aside);
	else if (l->holder_seen[0])
		snprintf(buf, cap, "standby, lease held by %s", l->holder_seen);
	else
		snprintf(buf, cap, "standby");
	uv_mutex_unlock(&l->mu);
	return asked;
}

bool he_leader_failing(he_leader *l)
{
	return atomic_load(&l->failing);
}

void he_leader_kick(he_leader *l)
{
	uv_mutex_lock(&l->mu);
	uv_cond_broadcast(&l->cv);
	uv_mutex_unlock(&l->mu);
}

void he_leader_fenced(he_leader *l, uint64_t epoch, unsigned long long fence)
{
	uv_mutex_lock(&l->mu);
	he_ops_metric_add(l->msvc, l->m_fenced, 1);
	he_lease_sm_fenced(&l->sm, epoch, fence);
	uv_cond_broadcast(&l->cv);
	uv_mutex_unlock(&l->mu);
}

void he_leader_free(he_leader *l)
{
	if (!l)
		return;
	if (l->started) {
		uv_mutex_lock(&l->mu);
		atomic_store(&l->stop, true);
		uv_cond_broadcast(&l->cv);
		uv_mutex_unlock(&l->mu);
		uv_thread_join(&l->thread);
	} else {
		he_pg_close(&l->pg);
	}
	uv_cond_destroy(&l->cv);
	uv_mutex_destroy(&l->mu);
	free(l);
}
