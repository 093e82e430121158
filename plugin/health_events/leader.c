/* leader.c -- see leader.h. */
#include "leader.h"

#include "he_lease_step.h"
#include "record_store_pg.h"

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
    "SELECT o_epoch, o_holder, o_ms_left FROM health_events_lease($1, $2, "
    "$3, $4::integer, $5::bigint)";
static const char release_sql[] =
    "SELECT health_events_lease_release($1, $2, $3::bigint)";

struct he_leader {
	const apphost_services *svc;
	const he_config *cfg;
	he_lease_timing t;
	he_record_store_pg pg; /* the lease thread's own connection */
	char token[33];	       /* random per instance: see schema/003 */
	char lease_ms[16];
	void (*wake)(void *);
	void *wake_arg;

	uv_thread_t thread;
	bool started;
	atomic_bool stop;
	uv_mutex_t mu; /* guards everything below; cv signals changes */
	uv_cond_t cv;
	/* The decisions: renew, expire, step down, contend, release, back
	 * off (core/he_lease_step.h); this file only makes its calls. */
	he_lease_sm sm;
	char holder_seen[256]; /* the other holder, last poll */
	const char *aside;     /* why we do not contend now, NULL: we do */
	atomic_bool failing; /* lease calls failing (logged once); any thread */
	atomic_int
	    fail_code; /* the last failed call's HE_E* code; any thread */
	/* When the consumer last had an answer from each server (monotonic
	 * ns, 0: never); written by its adapters, read here. */
	he_heard heard[HE_DEP_COUNT];

	struct apphost_metric *m_leader, *m_epoch, *m_changes, *m_fenced;
};

/* Why a standby does not contend before its consumer reached both. */
static const char STARTING[] = "starting";

#define LOG(l, lvl, msg, ...)                                                  \
	(l)->svc->log((l)->svc->host, lvl, msg, __VA_ARGS__)

static uint64_t mono_ns(void)
{
	return uv_hrtime();
}

static struct apphost_metric *metric(he_leader *l, int type, const char *name,
				     const char *help)
{
	struct apphost_metric *m = NULL;
	if (APPHOST_SVC_HAS(l->svc, metric_set) && l->svc->metric_get &&
	    l->svc->metric_add && l->svc->metric_set &&
	    l->svc->metric_get(l->svc->host, type, name, help, NULL, NULL, 0,
			       &m) < 0)
		m = NULL;
	return m;
}

static void metric_set(he_leader *l, struct apphost_metric *m, double v)
{
	if (m)
		l->svc->metric_set(l->svc->host, m, v);
}

static void metric_add(he_leader *l, struct apphost_metric *m)
{
	if (m)
		l->svc->metric_add(l->svc->host, m, 1);
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
	l->cfg = cfg;
	l->t = he_lease_timing_for(cfg->lease_ms);
	he_lease_sm_init(&l->sm, cfg->lease_ms);
	snprintf(l->lease_ms, sizeof(l->lease_ms), "%u", cfg->lease_ms);
	make_token(l->token);
	he_record_store_pg_init(&l->pg, svc);
	/* Every call is bounded by its own timeout, stopping or not. */
	he_record_store_pg_set_timeout(&l->pg, l->t.call_ms);
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
	metric_set(l, l->m_leader, 0);
	*out = l;
	return HE_OK;
}

/* ---- state changes (under mu) ------------------------------------------- */

static void acquired(he_leader *l, uint64_t epoch)
{
	LOG(l, APPHOST_LOG_INFO, "leadership acquired",
	    "epoch=%llu instance=%s previous_holder=%s lease_ms=%u",
	    (unsigned long long)epoch, l->cfg->instance_id,
	    l->holder_seen[0] ? l->holder_seen : "none", l->t.lease_ms);
	/* health_events_leader turns 1 once the consumer consumes. */
	metric_set(l, l->m_epoch, (double)epoch);
	metric_add(l, l->m_changes);
	uv_cond_broadcast(&l->cv);
}

/* Leadership ends (the caller then wakes the consumer). */
static void lost(he_leader *l, uint64_t epoch, const char *reason)
{
	/* Stopping is the planned way to lose it; the others are news. */
	LOG(l, strcmp(reason, "stopping") ? APPHOST_LOG_WARN : APPHOST_LOG_INFO,
	    "leadership lost", "epoch=%llu instance=%s reason=%s",
	    (unsigned long long)epoch, l->cfg->instance_id, reason);
	metric_set(l, l->m_leader, 0);
	metric_add(l, l->m_changes);
	uv_cond_broadcast(&l->cv);
}

/* Whether the consumer can do the work now (DESIGN §10). Any thread. */
static he_able able_now(he_leader *l, uint64_t now)
{
	const he_heard *r = &l->heard[HE_DEP_REDIS], *p = &l->heard[HE_DEP_PG];
	return he_lease_able(&l->t, now, atomic_load(&r->at),
			     atomic_load(&p->at), atomic_load(&r->waiting),
			     atomic_load(&p->waiting));
}

/* We do not contend, for `why` (NULL: we do again); logged on change,
 * except at the start, before the consumer reached both servers. */
static void stand_aside(he_leader *l, const char *why)
{
	if (why == l->aside)
		return;
	if (why == STARTING || (!why && l->aside == STARTING)) {
		/* nothing to say */
	} else if (why)
		LOG(l, APPHOST_LOG_WARN, "standing aside from the lease",
		    "instance=%s reason=%s", l->cfg->instance_id, why);
	else
		LOG(l, APPHOST_LOG_INFO, "contending for the lease again",
		    "instance=%s after=%s", l->cfg->instance_id, l->aside);
	l->aside = why;
}

/* ---- lease calls (without mu) -------------------------------------------- */

/* One acquire-or-renew: 0 and *epoch (0: held by *holder), or HE_E*. */
static int lease_call(he_leader *l, unsigned long long min_epoch,
		      uint64_t *epoch, char *holder, size_t cap)
{
	char min[24];
	snprintf(min, sizeof(min), "%llu", min_epoch);
	const char *params[] = {l->cfg->label, l->cfg->instance_id, l->token,
				l->lease_ms, min};
	PGresult *res;
	int r = he_record_store_pg_query(&l->pg, "health_events_lease",
					 lease_sql, 5, params, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) != 1 || PQnfields(res) != 3) {
		snprintf(l->pg.err, sizeof(l->pg.err),
			 "health_events_lease returned %d rows",
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
	const char *params[] = {l->cfg->label, l->token, e};
	PGresult *res;
	int r = he_record_store_pg_query(&l->pg, "health_events_lease_release",
					 release_sql, 3, params, &res);
	if (r < 0) {
		/* It lapses by itself; a standby then takes over later. */
		LOG(l, APPHOST_LOG_WARN, "lease not released",
		    "epoch=%llu error=\"%s\"", (unsigned long long)epoch,
		    l->pg.err);
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
		    "code=%s error=\"%s\"", he_strerror(r), l->pg.err);
	else if (r == 0 && was)
		LOG(l, APPHOST_LOG_INFO, "lease calls recovered", "%s", "");
	atomic_store(&l->fail_code, r < 0 ? r : 0);
	atomic_store(&l->failing, r < 0);
}

/* Wait on cv until `until_ns` (monotonic), stop or a change. */
static void wait_until(he_leader *l, uint64_t until_ns)
{
	uint64_t now = mono_ns();
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

/* Under mu: log and count what the last step changed; true when
 * leadership ended (the consumer is to be woken). */
static bool news(he_leader *l, uint64_t now)
{
	he_lease_news n = l->sm.news;
	l->sm.news = (he_lease_news){0};
	if (n.lost)
		lost(l, n.lost,
		     n.why == HE_LEASE_WHY_SILENT
			 ? he_able_name(able_now(l, now))
			 : he_lease_why_name(n.why));
	if (n.acquired)
		acquired(l, n.acquired);
	return n.lost != 0;
}

/* Under mu: why a standby does not contend now, for readiness and the
 * logs (the machine decides; this names it). */
static void note_aside(he_leader *l, uint64_t now)
{
	he_able a = able_now(l, now);
	bool never = !atomic_load(&l->heard[HE_DEP_REDIS].at) ||
		     !atomic_load(&l->heard[HE_DEP_PG].at);
	if (l->sm.epoch)
		stand_aside(l, NULL);
	else if (a != HE_ABLE)
		stand_aside(l, never ? STARTING : he_able_name(a));
	else if (now < l->sm.aside_until)
		stand_aside(l, "backing_off");
	else
		stand_aside(l, NULL);
}

/* The lease thread: the machine's calls, made without mu. */
static void run(void *arg)
{
	he_leader *l = arg;
	const uint64_t ms = 1000000u;
	uv_mutex_lock(&l->mu);
	for (;;) {
		if (atomic_load(&l->stop))
			he_lease_sm_stop(&l->sm);
		uint64_t now = mono_ns();
		hear(l);
		he_lease_next n = he_lease_sm_next(&l->sm, now);
		bool wake = news(l, now);
		note_aside(l, now);
		if (wake && l->wake) {
			uv_mutex_unlock(&l->mu);
			l->wake(l->wake_arg);
			uv_mutex_lock(&l->mu);
		}
		if (n.what == HE_LEASE_DO_WAIT) {
			if (atomic_load(&l->stop))
				break; /* stopped, nothing left to let go */
			/* The consumer's answers change without telling: look
			 * again at least every poll. */
			uint64_t poll = now + l->t.poll_ms * ms;
			wait_until(l, n.at_ns < poll ? n.at_ns : poll);
			continue;
		}
		if (n.what == HE_LEASE_DO_RELEASE) {
			uv_mutex_unlock(&l->mu);
			release(l, n.epoch);
			uv_mutex_lock(&l->mu);
			he_lease_sm_released(&l->sm, mono_ns(), 0);
			continue;
		}
		uint64_t got = 0;
		char holder[256] = "";
		uv_mutex_unlock(&l->mu);
		uint64_t t0 = mono_ns();
		int r =
		    lease_call(l, n.min_epoch, &got, holder, sizeof(holder));
		uv_mutex_lock(&l->mu);
		call_result(l, r);
		if (r == 0 && !got)
			snprintf(l->holder_seen, sizeof(l->holder_seen), "%s",
				 holder);
		he_lease_sm_asked(&l->sm, mono_ns(), t0, r, got);
	}
	uv_mutex_unlock(&l->mu);
	he_record_store_pg_close(&l->pg);
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
	uint64_t e = writable(l, mono_ns());
	uv_mutex_unlock(&l->mu);
	return e;
}

uint64_t he_leader_wait(he_leader *l, const atomic_bool *stop,
			unsigned timeout_ms)
{
	uint64_t end = mono_ns() + (uint64_t)timeout_ms * 1000000u, e = 0;
	uv_mutex_lock(&l->mu);
	for (;;) {
		uint64_t now = mono_ns();
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
	metric_set(l, l->m_leader, on ? 1 : 0);
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
	metric_add(l, l->m_fenced);
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
		he_record_store_pg_close(&l->pg);
	}
	uv_cond_destroy(&l->cv);
	uv_mutex_destroy(&l->mu);
	free(l);
}
