/*
 * consumer.c -- the consumer thread: a standby until the lease thread
 * (leader.c) holds the lease, then take over (fence, saved offset), read,
 * process, commit, retry; back to standby when leadership ends.
 */
#include "consumer.h"

#include "he_lag.h"
#include "he_ops.h"
#include "leader.h"
#include "preflight.h"
#include "record_store_pg.h"
#include "stream_redis.h"

#include "he_consumer_step.h"
#include "he_outbox.h"
#include "he_stream_id.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define HOLD_WAIT_MS   5000 /* export waits this long for the batch in hand */
#define LAG_REFRESH_NS (5000ull * 1000000u) /* while behind */
#define LAG_CAP	       100000
/*
 * Hot-swap state: this tag, the exporter's epoch (8 bytes, LE), the
 * published position its dedupe cache reflects (HE_POSITION_MAX bytes,
 * NUL-padded), the cache.
 */
static const char SWAP_MAGIC[8] = {'H', 'E', 'S', 'W', 'A', 'P', '0', '2'};
#define SWAP_HEAD (sizeof(SWAP_MAGIC) + 8 + HE_POSITION_MAX)

enum dep { DEP_REDIS, DEP_PG, DEP_COUNT };
static const char *const dep_name[DEP_COUNT] = {"redis", "postgres"};

/* Failure state of one dependency, for one log line per change. */
typedef struct dep_state {
	bool failing;
	unsigned attempts;
	char err[256];
	uint64_t last_ok_ns; /* now_ns of the last success, 0: never */
} dep_state;

struct he_consumer {
	const apphost_services *svc;
	he_config cfg;
	he_core *core;
	he_record_store_pg pg;
	he_stream_redis rs;
	he_leader *leader;
	/* check_ms: a server silent this long is pinged (the leader's
	 * XREADs answer for Redis); a standby pings both this often. So an
	 * idle instance that can work stays able to (leader.h). */
	he_lease_timing t;
	uint64_t epoch; /* the epoch we lead with, 0: standby (thread only) */
	uint64_t swap_epoch; /* a hot swap's predecessor led with this one */
	char swap_published[HE_POSITION_MAX]; /* ... and had published to */

	uv_thread_t thread;
	bool started;
	atomic_bool stopping;
	atomic_bool holding; /* export asked the thread to park */
	uv_mutex_t mu; /* guards exited, held; cv signals stop, park, exit */
	uv_cond_t cv;
	bool exited;
	bool held; /* parked between batches until stop */

	char offset[HE_POSITION_MAX]; /* applied and committed up to here */
	he_outbox box;		      /* the batch being applied */
	he_entry_report *reports;
	size_t reports_cap;
	/* The batch before it, applied and waiting for its commit while the
	 * next one applies (pipelined): entries borrowed from a read slot. */
	bool pending;
	he_outbox pbox;
	he_entry_report *preports;
	size_t preports_cap;
	const he_stream_entry *pe;
	size_t pn;
	uint64_t pt0;
	unsigned backoff_ms;
	dep_state deps[DEP_COUNT];
	he_ops ops;	    /* metrics and readiness (he_ops.h) */
	he_preflight pf;    /* permissions, asked at each (re)connection */
	uint64_t lag_at_ns; /* last lag count */
	he_lag lag;	    /* the oldest uncommitted entry's age (he_lag.h) */
};

#define LOG(c, lvl, msg, ...)                                                  \
	(c)->svc->log((c)->svc->host, lvl, msg, __VA_ARGS__)

/*
 * Every call has a deadline below the write window, and every answer is
 * noted for the lease thread: the server-side statement_timeout (which
 * also ends an apply whose leader died) at check_ms, the client-side
 * deadline at heard_ms for a flow that never answers; Redis's socket
 * timeout is set by stream_redis.c from the lease.
 */
static void bound_calls(he_consumer *c)
{
	c->t = he_lease_timing_for(c->cfg.lease_ms);
	he_record_store_pg_set_statement_timeout(&c->pg, c->t.check_ms);
	he_record_store_pg_set_timeout(&c->pg, c->t.heard_ms);
	he_record_store_pg_set_heard(&c->pg,
				     he_leader_heard(c->leader, HE_DEP_PG));
	he_stream_redis_set_heard(&c->rs,
				  he_leader_heard(c->leader, HE_DEP_REDIS));
	he_record_store_pg_set_token(&c->pg, he_leader_token(c->leader));
	he_stream_redis_set_token(&c->rs, he_leader_token(c->leader));
}

int he_consumer_new(const apphost_services *svc, he_consumer **out)
{
	he_consumer *c = calloc(1, sizeof(*c));
	if (!c)
		return HE_ENOMEM;
	c->svc = svc;
	int r = he_config_load(svc, &c->cfg);
	if (!r)
		r = he_core_new(svc, &c->core);
	if (!r && (r = he_leader_new(svc, &c->cfg, &c->leader)) < 0)
		he_core_free(c->core);
	if (r < 0) {
		free(c);
		return r;
	}
	he_record_store_pg_init(&c->pg, svc);
	he_record_store_pg_set_abort(&c->pg, &c->stopping);
	he_stream_redis_init(&c->rs, svc, &c->cfg);
	bound_calls(c);
	he_ops_init(&c->ops, svc);
	he_preflight_init(&c->pf, svc, &c->cfg);
	atomic_init(&c->stopping, false);
	atomic_init(&c->holding, false);
	uv_mutex_init(&c->mu);
	uv_cond_init(&c->cv);
	*out = c;
	return HE_OK;
}

/* ---- failure reporting and backoff -------------------------------------- */

/* Ready while both dependencies answered once and neither is failing. */
static void readiness(he_consumer *c)
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

static void dep_failed(he_consumer *c, enum dep d, int code, const char *err)
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
	readiness(c);
	LOG(c, APPHOST_LOG_ERROR, "dependency failing, retrying with backoff",
	    "dependency=%s code=%s error=\"%s\" offset=%s", dep_name[d],
	    he_strerror(code), err, c->offset);
}

static void dep_ok(he_consumer *c, enum dep d)
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
			dep_failed(c, d, r, c->pf.err);
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
	s->last_ok_ns = c->svc->now_ns(c->svc->host);
	bool was_failing = s->failing;
	s->failing = false;
	s->attempts = 0;
	s->err[0] = '\0';
	if (first || was_failing)
		readiness(c);
	if (!c->deps[DEP_REDIS].failing && !c->deps[DEP_PG].failing)
		c->backoff_ms = 0;
}

/* ---- lag in seconds (he_lag.h) ------------------------------------------ */

static unsigned long long id_ms(const char *id)
{
	he_stream_id v;
	return he_stream_id_parse(id, &v) == 0 ? v.ms : 0;
}

/* Export the lag now; also while a batch is retried, so it keeps rising. */
static void lag_export(he_consumer *c)
{
	he_ops_lag_seconds(
	    &c->ops, he_lag_seconds(&c->lag, c->svc->now_ns(c->svc->host)));
}

/* A read returned n entries: dated by the TIME that came with it. */
static void lag_read(he_consumer *c, const he_stream_entry *e, size_t n)
{
	if (c->rs.time_us)
		he_lag_clock(&c->lag, c->rs.time_us, c->rs.time_at_ns);
	he_lag_read(&c->lag, n, n ? id_ms(e[0].id) : 0);
	he_ops_abandoned(&c->ops, c->rs.overflows);
	lag_export(c);
}

/* A batch of n (> 0) was committed: each entry's age, and what is left. */
static void lag_committed(he_consumer *c, const he_stream_entry *e, size_t n)
{
	uint64_t now = c->svc->now_ns(c->svc->host);
	for (size_t i = 0; i < n; i++) {
		double a = he_lag_age(&c->lag, id_ms(e[i].id), now);
		if (a >= 0)
			he_ops_age(&c->ops, a);
	}
	he_lag_committed(&c->lag, n < c->rs.asked, id_ms(e[n - 1].id));
	lag_export(c);
}

/* Sleep the current backoff (doubling, capped) unless stop comes first. */
static void backoff(he_consumer *c)
{
	lag_export(c);
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	uv_mutex_lock(&c->mu);
	if (!atomic_load(&c->stopping))
		(void)uv_cond_timedwait(&c->cv, &c->mu,
					(uint64_t)c->backoff_ms * 1000000u);
	uv_mutex_unlock(&c->mu);
}

static bool stopping(he_consumer *c)
{
	return atomic_load(&c->stopping);
}

/* ---- the loop ------------------------------------------------------------ */

/* Park between batches (export asked) until stop: no batch is in hand. */
static void park(he_consumer *c)
{
	uv_mutex_lock(&c->mu);
	c->held = true;
	uv_cond_broadcast(&c->cv);
	while (!atomic_load(&c->stopping))
		uv_cond_wait(&c->cv, &c->mu);
	uv_mutex_unlock(&c->mu);
}

/* A write with `epoch` was refused: a newer leader exists. */
static void fenced(he_consumer *c, const char *what, bool in_redis)
{
	LOG(c, APPHOST_LOG_WARN, "write fenced: a newer leader exists",
	    "write=%s epoch=%llu error=\"%s\"", what,
	    (unsigned long long)c->epoch, in_redis ? c->rs.err : c->pg.err);
	/* Only Redis's refusal names the fence it met. */
	he_leader_fenced(c->leader, c->epoch, in_redis ? c->rs.fence_seen : 0);
}

static bool leading(he_consumer *c)
{
	return he_leader_epoch(c->leader) == c->epoch;
}

/* Stream ids as numbers: <0, 0, >0 (an unparsable one counts as 0-0). */
static int id_cmp(const char *a, const char *b)
{
	he_stream_id x = {0, 0}, y = {0, 0};
	(void)he_stream_id_parse(a, &x);
	(void)he_stream_id_parse(b, &y);
	return he_stream_id_cmp(x, y);
}

/* Log an offset gap when `from` is older than the stream's first entry. */
static void check_gap(he_consumer *c, const char *from, const char *what)
{
	char first[HE_POSITION_MAX];
	if (id_cmp(from, "0-0") == 0 || /* the beginning: nothing before */
	    he_stream_redis_check_gap(&c->rs, from, first, sizeof(first)) != 1)
		return;
	he_ops_gap(&c->ops);
	LOG(c, APPHOST_LOG_WARN,
	    "saved offset is older than the stream's first entry: entries "
	    "may have been trimmed unread",
	    "stream=%s offset=%s first_entry=%s not_repaired=\"%s\"",
	    c->cfg.stream, from, first, what);
}

enum sync_end { SYNC_OK, SYNC_AGAIN, SYNC_LOST };

/* Commit one outbox of a resync, retrying while Redis fails. */
static enum sync_end sync_commit(he_consumer *c)
{
	he_stream_port port = he_stream_redis_port(&c->rs);
	while (!stopping(c) && leading(c)) {
		int r = port.commit(port.ctx, &c->box);
		if (r == HE_OK) {
			dep_ok(c, DEP_REDIS);
			return SYNC_OK;
		}
		if (r == HE_EFENCED) {
			fenced(c, "commit", true);
			return SYNC_LOST;
		}
		if (r == HE_EMOVED)
			return SYNC_AGAIN;
		dep_failed(c, DEP_REDIS, r, c->rs.err);
		backoff(c);
	}
	return SYNC_LOST;
}

/*
 * Redis is behind the applied position (a commit lost in a failover,
 * never made after a crash, or the offset key gone): publish again what
 * the commits of (from, to] held -- a snapshot of the current row of every
 * game their entries touched, their dead letters (he_core_repair) -- and
 * move the Redis offset up to `to`, in batches. Nothing is applied again.
 * Entries the stream no longer holds (trimmed, or lost with Redis) are
 * counted as a gap.
 */
static enum sync_end repair(he_consumer *c, const char *from, const char *to)
{
	char at[HE_POSITION_MAX];
	size_t entries = 0, games = 0, batches = 0;
	he_record_store store = he_record_store_pg_port(&c->pg);
	snprintf(at, sizeof(at), "%s", from);
	LOG(c, APPHOST_LOG_WARN,
	    "redis is behind the applied position: publishing again what "
	    "its lost commits held",
	    "key=%s offset=%s applied=%s epoch=%llu", c->cfg.offset_key, from,
	    to, (unsigned long long)c->epoch);
	check_gap(c, from, "the snapshots of entries trimmed before repair");
	while (id_cmp(at, to) < 0) {
		if (stopping(c) || !leading(c))
			return SYNC_LOST;
		const he_stream_entry *e;
		size_t n, g = 0;
		int r = he_stream_redis_read_now(&c->rs, at, &e, &n);
		if (r < 0) {
			dep_failed(c, DEP_REDIS, r, c->rs.err);
			backoff(c);
			continue;
		}
		while (n > 0 && id_cmp(e[n - 1].id, to) > 0)
			n--; /* past the applied position: read as usual */
		he_outbox_clear(&c->box);
		if (n == 0) /* the stream holds no more of them */
			r = he_outbox_set_last_id(&c->box, to);
		else if ((r = he_core_repair(c->core, at, e, n, &store, &c->box,
					     &g)) < 0) {
			dep_failed(c, DEP_PG, r, c->pg.err);
			backoff(c);
			continue;
		}
		enum sync_end end = sync_commit(c);
		if (end != SYNC_OK)
			return end;
		snprintf(at, sizeof(at), "%s", c->box.last_id);
		entries += n;
		games += g;
		batches++;
	}
	LOG(c, APPHOST_LOG_WARN, "redis caught up with the applied position",
	    "offset=%s entries=%zu snapshots_for_games=%zu batches=%zu", to,
	    entries, games, batches);
	return SYNC_OK;
}

/* The applied position (HE_OK, HE_ENOENT), retrying while PostgreSQL
 * fails; HE_ESTATE when leadership ended or stop came first. */
static int applied_position(he_consumer *c, char *out, size_t cap)
{
	he_record_store store = he_record_store_pg_port(&c->pg);
	he_record_store_pg_set_fence(&c->pg, c->cfg.label, c->epoch);
	(void)he_record_store_pg_reconnected(&c->pg); /* compared now */
	while (!stopping(c) && leading(c)) {
		int r = store.position(store.ctx, out, cap);
		if (r == HE_OK || r == HE_ENOENT) {
			dep_ok(c, DEP_PG);
			return r;
		}
		dep_failed(c, DEP_PG, r, c->pg.err);
		backoff(c);
	}
	return HE_ESTATE;
}

/*
 * Raise the fence to our epoch, read the offset Redis holds and the
 * applied position PostgreSQL holds, and converge (DESIGN §13): resume
 * from the applied position; where Redis is behind it, publish again what
 * its lost commits held first; where Redis is ahead (PostgreSQL lost
 * transactions), the entries after the applied position apply again and
 * publish, and the Redis offset stays. First (resync false) as a new
 * leader; again (resync true) after a reconnection or a refused write,
 * since a failover may have lost either store's last writes. Sets
 * *diverged when the two disagreed (the dedupe cache no longer says what
 * Lobby last got). false: leadership ended, or stop.
 */
static bool take_over(he_consumer *c, bool resync, bool *diverged)
{
	char saved[HE_POSITION_MAX], applied[HE_POSITION_MAX];
	*diverged = false;
	while (!stopping(c) && leading(c)) {
		int r = he_stream_redis_take_over(&c->rs, saved, sizeof(saved));
		if (r == HE_EFENCED) {
			fenced(c, "take-over", true);
			return false;
		}
		if (r != HE_OK && r != HE_ENOENT) {
			dep_failed(c, DEP_REDIS, r, c->rs.err);
			backoff(c);
			continue;
		}
		dep_ok(c, DEP_REDIS);
		if (r == HE_ENOENT)
			snprintf(saved, sizeof(saved), "0-0");
		int p = applied_position(c, applied, sizeof(applied));
		if (p == HE_ESTATE)
			return false;
		if (p == HE_ENOENT) {
			/* Upgrading: the first apply records the position. */
			LOG(c, APPHOST_LOG_INFO,
			    "no applied position yet: starting from the offset "
			    "Redis holds",
			    "key=%s offset=%s epoch=%llu", c->cfg.offset_key,
			    saved, (unsigned long long)c->epoch);
			snprintf(applied, sizeof(applied), "%s", saved);
		}
		/* The decision is the core's (he_consumer_step.h): where to
		 * resume, and whether to repair or apply again first. */
		he_stream_id a = {0, 0}, o = {0, 0}, at;
		(void)he_stream_id_parse(applied, &a);
		(void)he_stream_id_parse(saved, &o);
		he_converge how =
		    he_converge_decide(p == HE_OK, a, r == HE_OK, o, &at);
		snprintf(applied, sizeof(applied), "%llu-%llu", at.ms, at.seq);
		if (how == HE_CONVERGE_REPAIR) {
			*diverged = true;
			enum sync_end end = repair(c, saved, applied);
			if (end == SYNC_LOST)
				return false;
			if (end == SYNC_AGAIN)
				continue;
		} else if (how == HE_CONVERGE_REAPPLY) {
			*diverged = true;
			LOG(c, APPHOST_LOG_WARN,
			    "redis is ahead of the applied position: applying "
			    "again from the applied position",
			    "key=%s offset=%s applied=%s epoch=%llu",
			    c->cfg.offset_key, saved, applied,
			    (unsigned long long)c->epoch);
			check_gap(c, applied, "entries PostgreSQL lost");
		} else if (!resync || strcmp(applied, c->offset) != 0) {
			LOG(c, APPHOST_LOG_INFO,
			    "resuming after the applied position",
			    "key=%s position=%s epoch=%llu", c->cfg.offset_key,
			    applied, (unsigned long long)c->epoch);
			check_gap(c, applied, "entries never read");
		}
		snprintf(c->offset, sizeof(c->offset), "%s", applied);
		(void)he_core_set_applied(c->core, applied);
		return true;
	}
	return false;
}

static void check_dep(he_consumer *c, enum dep d, uint64_t now);

/*
 * While a batch is retried against one server, keep the other's answers
 * fresh: a lock wait that PostgreSQL answers with an error must not read
 * as a silent Redis and cost the leadership.
 */
static void keep_fresh(he_consumer *c, enum dep d)
{
	check_dep(c, d, c->svc->now_ns(c->svc->host));
}

enum batch_end {
	BATCH_DONE,	 /* applied, committed, offset saved */
	BATCH_ABANDONED, /* stop while a dependency failed */
	BATCH_LOST,	 /* leadership ended: nothing more is written */
	BATCH_MOVED,	 /* the saved offset moved: resync first */
};

#define NOT_TRIED 1 /* commit_batch: no attempt was made yet */

/*
 * Commit a batch applied as leader of c->epoch (its outbox and reports),
 * retrying while Redis fails; r is the result of an attempt already made,
 * or NOT_TRIED. A batch not committed (abandoned, lost, moved) has its
 * games forgotten by the dedupe cache, since its rows were written: the
 * resync publishes them again. Its offset is not saved.
 */
static enum batch_end commit_batch(he_consumer *c, he_outbox *box,
				   const he_entry_report *reports,
				   const he_stream_entry *e, size_t n,
				   uint64_t t0, int r)
{
	he_stream_port port = he_stream_redis_port(&c->rs);
	enum batch_end end = BATCH_DONE;
	for (;; r = NOT_TRIED) {
		if (r == NOT_TRIED) {
			if (!leading(c)) {
				end = BATCH_LOST;
				break;
			}
			r = port.commit(port.ctx, box);
		}
		if (r == HE_OK)
			break;
		if (r == HE_EFENCED || r == HE_EMOVED) {
			if (r == HE_EFENCED)
				fenced(c, "commit", true);
			end = r == HE_EFENCED ? BATCH_LOST : BATCH_MOVED;
			break;
		}
		dep_failed(c, DEP_REDIS, r, c->rs.err);
		if (stopping(c)) {
			end = BATCH_ABANDONED;
			break;
		}
		keep_fresh(c, DEP_PG);
		backoff(c);
	}
	if (end != BATCH_DONE) {
		he_core_forget(c->core, box);
		return end;
	}
	dep_ok(c, DEP_REDIS);
	he_ops_batch(&c->ops, c->core, reports, n,
		     (double)(c->svc->now_ns(c->svc->host) - t0) / 1e9);
	lag_committed(c, e, n);
	snprintf(c->offset, sizeof(c->offset), "%s", box->last_id);
	if (c->svc->log_enabled(c->svc->host, APPHOST_LOG_DEBUG))
		LOG(c, APPHOST_LOG_DEBUG, "batch committed",
		    "entries=%zu snapshots=%zu dead_letters=%zu offset=%s", n,
		    box->nsnapshots, box->ndead, c->offset);
	return BATCH_DONE;
}

static int reserve_reports(he_entry_report **r, size_t *cap, size_t n)
{
	return he_grow((void **)r, cap, n, sizeof(**r));
}

/*
 * Apply a batch and commit it, as leader of c->epoch, one step after the
 * other. Every attempt first checks that we still lead (our deadline has
 * not passed); the writes themselves are fenced, which covers a pause
 * after that check.
 */
static enum batch_end run_batch(he_consumer *c, const he_stream_entry *e,
				size_t n)
{
	uint64_t t0 = c->svc->now_ns(c->svc->host);
	if (reserve_reports(&c->reports, &c->reports_cap, n) < 0)
		return BATCH_ABANDONED;
	he_record_store store = he_record_store_pg_port(&c->pg);
	for (;;) {
		if (!leading(c))
			return BATCH_LOST;
		he_outbox_clear(&c->box);
		int r =
		    he_core_process(c->core, e, n, &store, &c->box, c->reports);
		if (r == HE_OK)
			break;
		if (r == HE_EFENCED) {
			fenced(c, "apply", false);
			return BATCH_LOST;
		}
		if (r == HE_EPOSITION) {
			/* Applied by someone, or PostgreSQL lost it: resync.
			 * The rows are as before this attempt. */
			dep_ok(c, DEP_PG);
			LOG(c, APPHOST_LOG_WARN,
			    "applied position moved: resyncing",
			    "offset=%s error=\"%s\"", c->offset, c->pg.err);
			return BATCH_MOVED;
		}
		dep_failed(c, DEP_PG, r, c->pg.err);
		if (stopping(c))
			return BATCH_ABANDONED;
		keep_fresh(c, DEP_REDIS);
		backoff(c);
	}
	dep_ok(c, DEP_PG);
	return commit_batch(c, &c->box, c->reports, e, n, t0, NOT_TRIED);
}

/* Commit the pending batch, if any, after an attempt r (or NOT_TRIED). */
static enum batch_end drain_tried(he_consumer *c, int r)
{
	if (!c->pending)
		return BATCH_DONE;
	c->pending = false;
	return commit_batch(c, &c->pbox, c->preports, c->pe, c->pn, c->pt0, r);
}

/* Before a resync, a park or a stop: the pending batch committed. */
static enum batch_end drain(he_consumer *c)
{
	return drain_tried(c, NOT_TRIED);
}

/*
 * Pipelined: send the apply of e[0..n) and, while PostgreSQL runs it,
 * commit the batch before (if one is pending) and read the one after
 * (*next, *nnext; none when the stream had nothing more, or on any
 * trouble, which the next blocking read then reports). So PostgreSQL
 * never waits for Redis, applies stay serial and in stream order on one
 * connection, and a batch is committed only after the one before it.
 * DONE: e's batch applied and is now the pending one. A commit of the
 * batch before that is refused or lost forgets both from the dedupe
 * cache (the resync re-publishes them: Redis is then behind the applied
 * position). An apply that fails falls back to run_batch's retries.
 */
static enum batch_end overlap(he_consumer *c, const he_stream_entry *e,
			      size_t n, const he_stream_entry **next,
			      size_t *nnext)
{
	uint64_t t0 = c->svc->now_ns(c->svc->host);
	he_record_store store = he_record_store_pg_port(&c->pg);
	he_stream_port port = he_stream_redis_port(&c->rs);
	he_core_apply a;
	*nnext = 0;
	if (reserve_reports(&c->reports, &c->reports_cap, n) < 0)
		return BATCH_ABANDONED;
	he_outbox_clear(&c->box);
	int r =
	    leading(c) ? he_core_begin(c->core, e, n, &c->box, &a) : HE_EFENCED;
	bool begun = r == HE_OK;
	if (begun)
		r = he_record_store_pg_send(&c->pg, &a.span, a.ops, a.nops);
	bool sent = begun && r == HE_OK;
	int cr = NOT_TRIED;
	if (c->pending && leading(c))
		cr = port.commit(port.ctx, &c->pbox);
	if (sent && (!c->pending || cr == HE_OK) && !stopping(c) &&
	    he_stream_redis_read_now(&c->rs, e[n - 1].id, next, nnext) < 0)
		*nnext = 0;
	if (sent)
		r = he_record_store_pg_receive(&c->pg, a.results);
	if (begun)
		r = he_core_end(c->core, e, n, r, &store, &c->box, c->reports);
	if (c->pending) {
		enum batch_end end = drain_tried(c, cr);
		if (end != BATCH_DONE) {
			if (r == HE_OK)
				he_core_forget(c->core, &c->box);
			*nnext = 0;
			return end;
		}
	}
	if (r != HE_OK)
		return run_batch(c, e, n);
	dep_ok(c, DEP_PG);
	he_outbox t = c->pbox;
	c->pbox = c->box;
	c->box = t;
	he_entry_report *tr = c->preports;
	size_t tc = c->preports_cap;
	c->preports = c->reports;
	c->preports_cap = c->reports_cap;
	c->reports = tr;
	c->reports_cap = tc;
	c->pe = e;
	c->pn = n;
	c->pt0 = t0;
	c->pending = true;
	return BATCH_DONE;
}

/*
 * Whether d is to be checked: silent for half of check_ms. The checks
 * come after a wait of up to check_ms (an XREAD's BLOCK, a standby's
 * turn), so a server that answered just under a full check_ms before one
 * would go unchecked to twice that, heard_ms, where the lease thread
 * counts it silent; half keeps it under one and a half.
 */
static bool check_due(const he_consumer *c, enum dep d, uint64_t now)
{
	return now - c->deps[d].last_ok_ns >= c->t.check_ms * 500000ull;
}

static int ping(he_consumer *c, enum dep d)
{
	return d == DEP_PG ? he_record_store_pg_ping(&c->pg)
			   : he_stream_redis_ping(&c->rs);
}

/*
 * Ping dependency d when a check is due. An idle
 * connection broken meanwhile (a reset, a failover) fails its first
 * ping: the adapter has given it back, and the check is whether a new
 * one answers, now; waiting for the next check would add check_ms of
 * silence to the lease's count.
 */
static void check_dep(he_consumer *c, enum dep d, uint64_t now)
{
	if (!check_due(c, d, now))
		return;
	uint64_t t0 = c->svc->now_ns(c->svc->host);
	int r = ping(c, d);
	/* Only a quick failure (a broken connection found) is tried again:
	 * a server that let the ping wait out its deadline gets no second. */
	if (r == HE_ECONN && !stopping(c) &&
	    c->svc->now_ns(c->svc->host) - t0 < c->t.check_ms * 250000ull)
		r = ping(c, d);
	if (r < 0)
		dep_failed(c, d, r, d == DEP_PG ? c->pg.err : c->rs.err);
	else
		dep_ok(c, d);
}

/*
 * After each read (n entries, committed): keep readiness fresh while idle
 * (the XREAD itself checks Redis), and refresh the lag: 0 after a short
 * read (the end was reached), else counted every LAG_REFRESH_NS.
 */
static void after_read(he_consumer *c, size_t n)
{
	uint64_t now = c->svc->now_ns(c->svc->host);
	check_dep(c, DEP_PG, now);
	unsigned long long lag = 0;
	if (n < c->rs.asked) { /* a short read: the end was reached */
		he_ops_lag(&c->ops, 0);
	} else if (now - c->lag_at_ns >= LAG_REFRESH_NS) {
		c->lag_at_ns = now;
		if (he_stream_redis_lag(&c->rs, c->offset, LAG_CAP, &lag) == 0)
			he_ops_lag(&c->ops, lag);
	}
}

/* Resync after a reconnection or a refused write (take_over). */
static bool resync(he_consumer *c)
{
	bool diverged;
	if (!take_over(c, true, &diverged))
		return false;
	if (diverged) /* what Lobby last got is not what the cache says */
		he_core_reset(c->core);
	return true;
}

/* Consume as leader of c->epoch until leadership ends or stop. */
static void lead(he_consumer *c)
{
	bool diverged;
	he_record_store_pg_set_fence(&c->pg, c->cfg.label, c->epoch);
	he_stream_redis_set_epoch(&c->rs, c->epoch);
	if (!take_over(c, false, &diverged)) {
		c->swap_epoch = 0;
		return;
	}
	/*
	 * D4: a new leader knows nothing of what the last one published,
	 * unless that was our hot-swap predecessor, nobody led between us
	 * (each takeover raises the epoch by one), and Redis holds every
	 * commit its cache reflects.
	 */
	if (diverged || !c->swap_epoch || c->epoch != c->swap_epoch + 1 ||
	    id_cmp(c->swap_published, c->offset) != 0)
		he_core_reset(c->core);
	c->swap_epoch = 0;
	he_leader_consuming(c->leader, true);
	readiness(c);
	after_read(c, c->cfg.batch); /* readiness and lag at once */
	c->pending = false;
	const he_stream_entry *e = NULL;
	size_t n = 0; /* read, not yet applied */
	enum batch_end end = BATCH_DONE;
	while (!stopping(c) && leading(c)) {
		/* Either server may have failed over: compare again. */
		bool again = he_stream_redis_reconnected(&c->rs);
		again |= he_record_store_pg_reconnected(&c->pg);
		if (atomic_load(&c->holding) || again || n == 0) {
			/* Nothing read ahead survives these: commit first. */
			if ((end = drain(c)) == BATCH_ABANDONED ||
			    end == BATCH_LOST)
				break;
			if (atomic_load(&c->holding)) {
				park(c);
				continue;
			}
			if ((again || end == BATCH_MOVED) && !resync(c))
				break;
			int r = he_stream_redis_read(&c->rs, c->offset, &e, &n);
			if (r < 0) {
				n = 0;
				dep_failed(c, DEP_REDIS, r, c->rs.err);
				backoff(c);
				continue;
			}
			dep_ok(c, DEP_REDIS);
			lag_read(c, e, n);
			if (n == 0) {
				after_read(c, 0);
				continue;
			}
		}
		const he_stream_entry *next;
		size_t nnext;
		end = overlap(c, e, n, &next, &nnext);
		if (end == BATCH_ABANDONED || end == BATCH_LOST)
			break;
		if (end == BATCH_MOVED) {
			n = 0;
			if (!resync(c))
				break;
			continue;
		}
		after_read(c, n);
		e = next;
		n = nnext;
	}
	/* A stop still commits what was applied; a lost lead forgets it. */
	if (c->pending && !(end == BATCH_LOST || !leading(c)))
		(void)drain(c);
	else if (c->pending)
		he_core_forget(c->core, &c->pbox);
	c->pending = false;
	he_leader_consuming(c->leader, false);
}

/*
 * A standby's Redis check (as check_dep's): GET the fence key, so that the
 * lease is asked for an epoch above the highest one written with.
 */
static void check_fence(he_consumer *c, uint64_t now)
{
	unsigned long long fence;
	if (!check_due(c, DEP_REDIS, now))
		return;
	int r = he_stream_redis_read_fence(&c->rs, &fence);
	if (r < 0) {
		dep_failed(c, DEP_REDIS, r, c->rs.err);
		return;
	}
	dep_ok(c, DEP_REDIS);
	he_leader_saw_fence(c->leader, fence);
}

/*
 * A standby: keep both connections warm and readiness fresh, until the
 * lease thread holds the lease (returns its epoch), export parks us, or
 * stop (0).
 */
static uint64_t standby(he_consumer *c)
{
	c->epoch = 0;
	readiness(c);
	he_lag_reset(&c->lag); /* only the leader is behind */
	lag_export(c);
	while (!stopping(c) && !atomic_load(&c->holding)) {
		/* First the checks: the lease thread contends only once both
		 * servers answered. */
		uint64_t now = c->svc->now_ns(c->svc->host);
		check_fence(c, now);
		/*
		 * A standby that cannot ask for the lease (PostgreSQL down, or
		 * the lease functions missing) could never take over: that is
		 * PostgreSQL failing, for readiness and the logs alike.
		 */
		int why = he_leader_failure(c->leader);
		if (he_leader_failing(c->leader)) {
			/* Still pinged: its answers let the lease thread
			 * try again (it asks only while both answer). */
			(void)he_record_store_pg_ping(&c->pg);
			dep_failed(c, DEP_PG, why < 0 ? why : HE_ECONN,
				   "lease calls failing");
		} else {
			check_dep(c, DEP_PG, now);
		}
		uint64_t e =
		    he_leader_wait(c->leader, &c->stopping, c->t.check_ms);
		if (e)
			return e;
		readiness(c); /* why we stand aside may have changed */
	}
	return 0;
}

static void run(void *arg)
{
	he_consumer *c = arg;
	while (!stopping(c)) {
		if (atomic_load(&c->holding)) {
			park(c);
			continue;
		}
		if ((c->epoch = standby(c)) != 0)
			lead(c);
	}
	LOG(c, APPHOST_LOG_INFO, "consumer stopped", "offset=%s", c->offset);
	he_stream_redis_close(&c->rs);
	he_record_store_pg_close(&c->pg);
	uv_mutex_lock(&c->mu);
	c->exited = true;
	uv_cond_broadcast(&c->cv);
	uv_mutex_unlock(&c->mu);
}

static void he_consumer_stop_thread(he_consumer *c);

/*
 * From the lease thread, when leadership ends: wake a backoff. No Redis
 * I/O here (the lease thread must not wait on Redis): a blocked XREAD
 * ends within a quarter of the lease, and nothing it read is written.
 */
static void wake_reader(void *arg)
{
	he_consumer *c = arg;
	uv_mutex_lock(&c->mu);
	uv_cond_broadcast(&c->cv);
	uv_mutex_unlock(&c->mu);
}

he_preflight *he_consumer_preflight(he_consumer *c)
{
	return &c->pf;
}

int he_consumer_start(he_consumer *c)
{
	if (c->started)
		return HE_ESTATE;
	LOG(c, APPHOST_LOG_INFO, "consumer starting",
	    "stream=%s lobby_stream=%s dead_letter_stream=%s offset_key=%s "
	    "batch=%u block_ms=%u instance=%s lease=%s lease_ms=%u",
	    c->cfg.stream, c->cfg.lobby_stream, c->cfg.dead_stream,
	    c->cfg.offset_key, c->cfg.batch, c->cfg.block_ms,
	    c->cfg.instance_id, c->cfg.label, c->cfg.lease_ms);
	/* Not ready until both servers answered (before the thread runs). */
	he_ops_ready(&c->ops, false, "starting: redis not reached yet");
	if (uv_thread_create(&c->thread, run, c) != 0)
		return HE_ENOMEM;
	c->started = true;
	if (he_leader_start(c->leader, wake_reader, c) < 0) {
		he_consumer_stop_thread(c);
		return HE_ENOMEM;
	}
	return HE_OK;
}

/*
 * Wait until *flag (guarded by mu) is set or the thread has exited,
 * waking an XREAD BLOCK with CLIENT UNBLOCK every 50 ms (repeated in case
 * it was not yet sent). timeout_ns 0: no limit. true when reached.
 */
static bool wake_until(he_consumer *c, const bool *flag, uint64_t timeout_ns)
{
	uint64_t end = uv_hrtime() + timeout_ns;
	uv_mutex_lock(&c->mu);
	uv_cond_broadcast(&c->cv);
	while (!*flag && !c->exited && (timeout_ns == 0 || uv_hrtime() < end)) {
		long long id = atomic_load(&c->rs.client_id);
		uv_mutex_unlock(&c->mu);
		he_leader_kick(c->leader); /* a standby waits there */
		if (id)
			(void)he_stream_redis_unblock(c->svc, id);
		uv_mutex_lock(&c->mu);
		if (!*flag && !c->exited)
			(void)uv_cond_timedwait(&c->cv, &c->mu, 50 * 1000000u);
	}
	bool reached = *flag || c->exited;
	uv_mutex_unlock(&c->mu);
	return reached;
}

int he_consumer_export(he_consumer *c, void **buf, size_t *len)
{
	if (c->started) {
		atomic_store(&c->holding, true);
		if (!wake_until(c, &c->held, HOLD_WAIT_MS * 1000000ull)) {
			LOG(c, APPHOST_LOG_WARN,
			    "export refused: the batch in hand did not finish "
			    "in time; the next instance starts with an empty "
			    "dedupe cache",
			    "wait_ms=%u offset=%s", HOLD_WAIT_MS, c->offset);
			return HE_ETIMEDOUT;
		}
	}
	void *core;
	size_t n;
	int r = he_core_export(c->core, &core, &n);
	if (r < 0)
		return r;
	/* The dedupe cache, headed by the epoch it was built under and the
	 * position it reflects. */
	unsigned char *out = calloc(1, SWAP_HEAD + n);
	if (!out) {
		free(core);
		return HE_ENOMEM;
	}
	memcpy(out, SWAP_MAGIC, sizeof(SWAP_MAGIC));
	for (int i = 0; i < 8; i++)
		out[sizeof(SWAP_MAGIC) + i] =
		    (unsigned char)(c->epoch >> (8 * i));
	memcpy(out + sizeof(SWAP_MAGIC) + 8, c->offset, strlen(c->offset));
	memcpy(out + SWAP_HEAD, core, n);
	free(core);
	*buf = out;
	*len = SWAP_HEAD + n;
	return HE_OK;
}

int he_consumer_import(he_consumer *c, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (len < SWAP_HEAD || memcmp(p, SWAP_MAGIC, sizeof(SWAP_MAGIC)) != 0 ||
	    memchr(p + sizeof(SWAP_MAGIC) + 8, '\0', HE_POSITION_MAX) == NULL)
		return HE_EINVAL;
	uint64_t epoch = 0;
	for (int i = 0; i < 8; i++)
		epoch |= (uint64_t)p[sizeof(SWAP_MAGIC) + i] << (8 * i);
	int r = he_core_import(c->core, p + SWAP_HEAD, len - SWAP_HEAD);
	if (r == HE_OK) {
		c->swap_epoch = epoch;
		snprintf(c->swap_published, sizeof(c->swap_published), "%s",
			 (const char *)p + sizeof(SWAP_MAGIC) + 8);
	}
	return r;
}

static void he_consumer_stop_thread(he_consumer *c)
{
	if (!c->started)
		return;
	atomic_store(&c->stopping, true);
	(void)wake_until(c, &c->exited, 0);
	uv_thread_join(&c->thread);
	c->started = false;
}

void he_consumer_free(he_consumer *c)
{
	if (!c)
		return;
	/* The consumer writes no more before the lease is let go. */
	he_consumer_stop_thread(c);
	he_leader_free(c->leader);
	he_outbox_free(&c->box);
	he_outbox_free(&c->pbox);
	free(c->reports);
	free(c->preports);
	he_core_free(c->core);
	uv_cond_destroy(&c->cv);
	uv_mutex_destroy(&c->mu);
	free(c);
}
