/*
 * consumer_loop.c -- the consumer thread's loop: the consumer step
 * (core/he_consumer_step.h) decides every call, when to stand aside, take
 * over, resync, read, apply, commit, ping, back off; this file makes the
 * calls over the adapters, hands their results back, and tells what the
 * step decided (logs, readiness, the lease thread).
 */
#include "consumer_int.h"

#include "he_clock.h"
#include "he_lease_step.h"
#include "he_stream_id.h"

#include <stdio.h>
#include <string.h>

#define LAG_REFRESH_NS (5000 * HE_NS_PER_MS) /* while behind */
#define LAG_CAP	       100000

static he_stream_id id_of(const char *text)
{
	he_stream_id v = {0, 0};
	(void)he_stream_id_parse(text, &v);
	return v;
}

/* The step's servers are the consumer's dependencies. */
static enum dep dep_of(int server)
{
	return server == HE_HEARD_PG ? DEP_PG : DEP_REDIS;
}

static const char *err_of(he_consumer *c, enum dep d)
{
	return d == DEP_PG ? he_record_store_pg_err(&c->pg)
			   : he_stream_redis_err(&c->rs);
}

/*
 * After each read of n entries: the lag is 0 after a short read (the end
 * was reached), else counted every LAG_REFRESH_NS.
 */
static void lag_after_read(he_consumer *c, size_t n)
{
	uint64_t now = he_now_ns(c->svc);
	unsigned long long lag = 0;
	if (n < he_stream_redis_asked(&c->rs)) {
		he_ops_lag(&c->ops, 0);
	} else if (now - c->lag_at_ns >= LAG_REFRESH_NS) {
		c->lag_at_ns = now;
		if (he_stream_redis_lag(&c->rs, c->offset, LAG_CAP, &lag) == 0)
			he_ops_lag(&c->ops, lag);
	}
}

/* Log an offset gap when `from` is older than the stream's first entry. */
static void check_gap(he_consumer *c, const char *from, const char *what)
{
	char first[HE_POSITION_MAX];
	if (he_stream_id_text_cmp(from, "0-0") == 0 || /* nothing before */
	    he_stream_redis_check_gap(&c->rs, from, first, sizeof(first)) != 1)
		return;
	he_ops_gap(&c->ops);
	LOG(c, APPHOST_LOG_WARN,
	    "saved offset is older than the stream's first entry: entries "
	    "may have been trimmed unread",
	    "stream=%s offset=%s first_entry=%s not_repaired=\"%s\"",
	    c->cfg.stream, from, first, what);
}

/* ---- the calls ------------------------------------------------------------
 */

static int ping_once(he_consumer *c, int server, unsigned long long *fence)
{
	if (server == HE_HEARD_PG)
		return he_record_store_pg_ping(&c->pg);
	if (c->cs.st == HE_CS_STANDBY)
		/* GET the fence: the lease is then asked for an epoch above
		 * the highest one written with. */
		return he_stream_redis_read_fence(&c->rs, fence);
	return he_stream_redis_ping(&c->rs);
}

/*
 * A ping, again at once after a quick failure: a broken idle connection
 * found (the adapter gave it back), and the check is whether a new one
 * answers. A server that let the ping wait out its deadline gets no
 * second.
 */
static int ping(he_consumer *c, int server, unsigned long long *fence)
{
	uint64_t t0 = he_now_ns(c->svc);
	int r = ping_once(c, server, fence);
	if (r == HE_ECONN && !consumer_stopping(c) &&
	    he_now_ns(c->svc) - t0 < c->t.check_ms * HE_NS_PER_MS / 4)
		r = ping_once(c, server, fence);
	return r;
}

/* Entries after `from`, none past `to`: a repair's read. */
static int repair_read(he_consumer *c, const he_cs_next *n, he_cs_result *res)
{
	char from[HE_POSITION_MAX];
	he_stream_id_format(from, sizeof(from), n->from);
	const he_stream_entry *e;
	size_t k;
	int r = he_stream_redis_read_now(&c->rs, from, &e, &k);
	if (r < 0)
		return r;
	while (k > 0 && he_stream_id_cmp(id_of(e[k - 1].id), n->to) > 0)
		k--; /* past the applied position: read as usual */
	c->repair.e = e;
	c->repair.n = k;
	res->n = k;
	if (k)
		res->id = id_of(e[k - 1].id);
	return HE_OK;
}

/* What the lost commits of the entries in hand held, into a stage. */
static int repair(he_consumer *c, const he_cs_next *n)
{
	consumer_stage *st = consumer_stage_free(c);
	if (!st)
		return HE_ESTATE;
	char from[HE_POSITION_MAX], to[HE_POSITION_MAX];
	he_stream_id_format(from, sizeof(from), n->from);
	he_stream_id_format(to, sizeof(to), n->to);
	he_record_store store = he_record_store_pg_port(&c->pg);
	size_t g = 0;
	int r;
	he_outbox_clear(&st->box);
	if (c->repair.n == 0) /* the stream holds no more of them */
		r = he_outbox_set_last_id(&st->box, to);
	else
		r = he_core_repair(c->core, from, c->repair.e, c->repair.n,
				   &store, &st->box, &g);
	if (r < 0)
		return r;
	st->repair = true;
	st->applied = true;
	st->e = c->repair.e;
	st->n = c->repair.n;
	c->repair.entries += c->repair.n;
	c->repair.games += g;
	return HE_OK;
}

static int read_batch(he_consumer *c, const he_cs_next *n, he_cs_result *res)
{
	consumer_stage *st = consumer_stage_free(c);
	if (!st)
		return HE_ESTATE;
	char from[HE_POSITION_MAX];
	he_stream_id_format(from, sizeof(from), n->from);
	const he_stream_entry *e = NULL;
	size_t k = 0;
	int r;
	if (!n->now_only)
		r = he_stream_redis_read(&c->rs, from, &e, &k);
	else if (!consumer_read_ahead(c, from, &e, &k, &r))
		r = he_stream_redis_read_now(&c->rs, from, &e, &k);
	if (r < 0)
		return r;
	st->e = e;
	st->n = k;
	c->in_hand = st; /* what the step applies next */
	res->n = k;
	if (k)
		res->id = id_of(e[k - 1].id);
	consumer_lag_read(c, e, k);
	lag_after_read(c, k);
	return HE_OK;
}

/* Make call n; the result into *res. */
static void make(he_consumer *c, const he_cs_next *n, he_cs_result *res)
{
	char saved[HE_POSITION_MAX];
	int r = HE_ESTATE;
	switch (n->what) {
	case HE_CS_PING: r = ping(c, n->server, &res->fence); break;
	case HE_CS_TAKE_OVER:
		r = he_stream_redis_take_over(&c->rs, saved, sizeof(saved));
		snprintf(c->saved, sizeof(c->saved), "%s",
			 r == HE_OK ? saved : "0-0");
		if (r == HE_OK)
			res->id = id_of(saved);
		if (r == HE_EFENCED) {
			res->fence = he_stream_redis_fence_seen(&c->rs);
			consumer_fenced(c, "take-over", true);
		}
		break;
	case HE_CS_POSITION: {
		he_record_store store = he_record_store_pg_port(&c->pg);
		(void)he_record_store_pg_reconnected(&c->pg); /* compared now */
		r = store.position(store.ctx, saved, sizeof(saved));
		if (r == HE_OK)
			res->id = id_of(saved);
		break;
	}
	case HE_CS_REPAIR_READ: r = repair_read(c, n, res); break;
	case HE_CS_REPAIR: r = repair(c, n); break;
	case HE_CS_READ: r = read_batch(c, n, res); break;
	case HE_CS_APPLY: r = consumer_apply(c); break;
	case HE_CS_COMMIT:
		r = consumer_commit(c, n->to);
		if (r == HE_EFENCED)
			res->fence = he_stream_redis_fence_seen(&c->rs);
		break;
	default: break;
	}
	res->rc = r;
	enum dep d = dep_of(n->server);
	if (n->what == HE_CS_PING && d == DEP_PG && c->cs.st == HE_CS_STANDBY &&
	    he_leader_failing(c->leader)) {
		/*
		 * A standby that cannot ask for the lease (PostgreSQL down, or
		 * the lease functions missing) could never take over: that is
		 * PostgreSQL failing, for readiness and the logs alike. Its
		 * ping still goes on: answers let the lease thread try again.
		 */
		int why = he_leader_failure(c->leader);
		consumer_dep_failed(c, DEP_PG, why < 0 ? why : HE_ECONN,
				    "lease calls failing");
	} else if (r == HE_OK || r == HE_ENOENT || r == HE_EPOSITION) {
		consumer_dep_ok(c, d);
	} else if (r != HE_EFENCED && r != HE_EMOVED) {
		consumer_dep_failed(c, d, r, err_of(c, d));
	}
}

/* ---- what the step decided --------------------------------------------------
 */

static void standby_entered(he_consumer *c)
{
	consumer_readiness(c);
	he_lag_reset(&c->lag); /* only the leader is behind */
	consumer_lag_export(c);
}

/* How the last take-over converged (DESIGN §13), for the logs. */
static void converged(he_consumer *c, he_converge how, int position_rc)
{
	char applied[HE_POSITION_MAX];
	he_stream_id_format(applied, sizeof(applied), c->cs.applied);
	unsigned long long epoch = (unsigned long long)c->epoch;
	if (position_rc == HE_ENOENT)
		/* Upgrading: the first apply records the position. */
		LOG(c, APPHOST_LOG_INFO,
		    "no applied position yet: starting from the offset "
		    "Redis holds",
		    "key=%s offset=%s epoch=%llu", c->cfg.offset_key, c->saved,
		    epoch);
	c->repair = (struct consumer_repair){.on = how == HE_CONVERGE_REPAIR};
	if (how == HE_CONVERGE_REPAIR) {
		LOG(c, APPHOST_LOG_WARN,
		    "redis is behind the applied position: publishing again "
		    "what its lost commits held",
		    "key=%s offset=%s applied=%s epoch=%llu", c->cfg.offset_key,
		    c->saved, applied, epoch);
		check_gap(c, c->saved,
			  "the snapshots of entries trimmed before repair");
	} else if (how == HE_CONVERGE_REAPPLY) {
		LOG(c, APPHOST_LOG_WARN,
		    "redis is ahead of the applied position: applying again "
		    "from the applied position",
		    "key=%s offset=%s applied=%s epoch=%llu", c->cfg.offset_key,
		    c->saved, applied, epoch);
		check_gap(c, applied, "entries PostgreSQL lost");
	} else if (c->new_lead || strcmp(applied, c->offset) != 0) {
		LOG(c, APPHOST_LOG_INFO, "resuming after the applied position",
		    "key=%s position=%s epoch=%llu", c->cfg.offset_key, applied,
		    epoch);
		check_gap(c, applied, "entries never read");
	}
	c->new_lead = false;
}

/* The take-over is over: reading goes on after the applied position. */
static void taken_over(he_consumer *c)
{
	char applied[HE_POSITION_MAX];
	he_stream_id_format(applied, sizeof(applied), c->cs.applied);
	if (c->repair.on)
		LOG(c, APPHOST_LOG_WARN,
		    "redis caught up with the applied position",
		    "offset=%s entries=%zu snapshots_for_games=%zu "
		    "batches=%zu",
		    applied, c->repair.entries, c->repair.games,
		    c->repair.batches);
	c->repair.on = false;
	consumer_set_offset(c, applied);
	(void)he_core_set_applied(c->core, applied);
	if (!c->consuming) {
		c->consuming = true;
		he_leader_consuming(c->leader, true);
		consumer_readiness(c);
		lag_after_read(c, c->cfg.batch); /* the lag at once */
	}
}

/* The news of the last step, told; flags of its next call applied. */
static void tell(he_consumer *c, unsigned flags)
{
	he_cs_news n = c->cs.news;
	c->cs.news = (he_cs_news){0};
	if (n.fenced) /* the lease steps down; the log said which write */
		he_leader_fenced(c->leader, n.fenced, n.fence);
	if (n.dropped || (flags & HE_CS_FORGET))
		consumer_stages_forget(c);
	if (flags & HE_CS_RESET)
		he_core_reset(c->core);
	if (n.saw_fence)
		he_leader_saw_fence(c->leader, n.saw_fence);
	if (n.stood_down) {
		consumer_stages_forget(c);
		if (c->consuming)
			he_leader_consuming(c->leader, false);
		c->consuming = false;
		c->repair.on = false;
		/* Stopped, the export still says whom the cache was built
		 * under. */
		if (c->cs.st != HE_CS_STOPPED)
			c->epoch = 0;
		if (c->cs.st == HE_CS_STANDBY)
			standby_entered(c);
	}
	if (n.led) {
		c->epoch = n.led;
		c->new_lead = true;
		he_record_store_pg_set_fence(&c->pg, c->cfg.lease_name,
					     c->epoch);
		he_stream_redis_set_epoch(&c->rs, c->epoch);
	}
}

/* Nothing to call before at_ns: wait for it, a change of the lease, stop
 * or export. */
static void wait_for(he_consumer *c, uint64_t at_ns)
{
	uint64_t now = he_now_ns(c->svc);
	uint64_t cap = now + c->t.check_ms * HE_NS_PER_MS;
	uint64_t until = at_ns < cap ? at_ns : cap;
	if (c->cs.st == HE_CS_STANDBY) {
		/* The lease thread says when we may lead. */
		(void)he_leader_wait(
		    c->leader, &c->stopping,
		    until > now ? (unsigned)((until - now + HE_NS_PER_MS - 1) /
					     HE_NS_PER_MS)
				: 1);
		consumer_readiness(c); /* why we stand aside may change */
		return;
	}
	consumer_lag_export(c); /* a retry: the lag keeps rising */
	uv_mutex_lock(&c->mu);
	if (!atomic_load(&c->stopping) && !atomic_load(&c->park_asked) &&
	    until > now)
		(void)uv_cond_timedwait(&c->cv, &c->mu, until - now);
	uv_mutex_unlock(&c->mu);
}

void consumer_loop(he_consumer *c)
{
	he_cs_init(&c->cs, c->cfg.lease_ms);
	he_cs_pipeline(&c->cs, true);
	if (c->swap_epoch)
		he_cs_swap(&c->cs, c->swap_epoch, id_of(c->swap_published));
	c->swap_epoch = 0;
	c->epoch = 0;
	standby_entered(c);
	while (c->cs.st != HE_CS_STOPPED) {
		if (consumer_stopping(c) || atomic_load(&c->park_asked))
			he_cs_stop(&c->cs);
		if (c->cs.st == HE_CS_S_READ) {
			/* Either server may have failed over: compare
			 * again. */
			bool again = he_stream_redis_reconnected(&c->rs);
			again |= he_record_store_pg_reconnected(&c->pg);
			if (again)
				he_cs_reconnected(&c->cs);
		}
		he_cs_next n = he_cs_next_call(&c->cs, he_now_ns(c->svc),
					       he_leader_epoch(c->leader));
		/* A batch's box waits for the next apply only through the
		 * calls that lead to it (consumer_batch.c). */
		if (n.what != HE_CS_APPLY && n.what != HE_CS_READ &&
		    n.what != HE_CS_COMMIT)
			consumer_settle(c);
		tell(c, n.flags);
		if (n.what == HE_CS_WAIT) {
			if (c->cs.st != HE_CS_STOPPED)
				wait_for(c, n.at_ns);
			continue;
		}
		he_cs_state before = c->cs.st;
		he_cs_result res = {0};
		make(c, &n, &res);
		he_cs_done(&c->cs, he_now_ns(c->svc), &res);
		if (c->cs.news.converged)
			converged(c, c->cs.news.converged, res.rc);
		if (c->cs.st == HE_CS_S_READ && before != HE_CS_S_READ &&
		    before != HE_CS_S_APPLY && before != HE_CS_S_COMMIT)
			taken_over(c);
		else if (c->cs.st == HE_CS_S_READ && before == HE_CS_S_COMMIT &&
			 c->repair.on)
			taken_over(c); /* the last repair commit */
		tell(c, 0);
	}
	if (c->consuming)
		he_leader_consuming(c->leader, false);
	c->consuming = false;
}
