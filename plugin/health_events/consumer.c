/*
 * consumer.c -- the consumer thread: a standby until the lease thread
 * (leader.c) holds the lease, then take over (fence, saved offset), read,
 * process, commit, retry; back to standby when leadership ends.
 */
#include "consumer.h"

#include "he_ops.h"
#include "leader.h"
#include "preflight.h"
#include "record_store_pg.h"
#include "stream_redis.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define HOLD_WAIT_MS   5000 /* export waits this long for the batch in hand */
/* Readiness: ping a server that has not answered for this long (the
 * leader's XREADs check Redis; a standby pings both). */
#define IDLE_CHECK_NS  (2000ull * 1000000u)
#define LAG_REFRESH_NS (5000ull * 1000000u) /* while behind */
#define LAG_CAP	       100000
/* A standby checks both servers this often (readiness, warm pools). */
#define STANDBY_CHECK_MS 1000
/* Hot-swap state: this tag, the exporter's epoch (8 bytes, LE), the cache. */
static const char SWAP_MAGIC[8] = {'H', 'E', 'S', 'W', 'A', 'P', '0', '1'};

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
	uint64_t epoch; /* the epoch we lead with, 0: standby (thread only) */
	uint64_t swap_epoch; /* a hot swap's predecessor led with this one */

	uv_thread_t thread;
	bool started;
	atomic_bool stopping;
	atomic_bool holding; /* export asked the thread to park */
	uv_mutex_t mu; /* guards exited, held; cv signals stop, park, exit */
	uv_cond_t cv;
	bool exited;
	bool held; /* parked between batches until stop */

	char offset[48];
	he_outbox box;
	he_entry_report *reports;
	size_t reports_cap;
	unsigned backoff_ms;
	dep_state deps[DEP_COUNT];
	he_ops ops;	    /* metrics and readiness (he_ops.h) */
	he_preflight pf;    /* permissions, asked at each (re)connection */
	uint64_t lag_at_ns; /* last lag count */
};

#define LOG(c, lvl, msg, ...)                                                  \
	(c)->svc->log((c)->svc->host, lvl, msg, __VA_ARGS__)

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
		he_ops_ready(&c->ops, true, c->epoch ? "leader" : "standby");
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

/* Sleep the current backoff (doubling, capped) unless stop comes first. */
static void backoff(he_consumer *c)
{
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

/*
 * Raise the fence to our epoch and read the offset Redis holds, retrying
 * while Redis fails and we still lead. First (resync false) as a new
 * leader; again (resync true) after a reconnection or a refused commit,
 * since a failover may have lost the last writes: the saved offset then
 * moved back, and what was published after it is forgotten so the replay
 * publishes it again. false: leadership ended, or stop.
 */
static bool take_over(he_consumer *c, bool resync)
{
	char saved[48];
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
		bool moved = strcmp(saved, c->offset) != 0;
		if (resync && moved) {
			LOG(c, APPHOST_LOG_WARN,
			    "saved offset moved: resuming from the offset "
			    "Redis holds, dedupe cache cleared",
			    "key=%s offset=%s saved_offset=%s epoch=%llu",
			    c->cfg.offset_key, c->offset, saved,
			    (unsigned long long)c->epoch);
			he_core_reset(c->core);
		} else if (!resync) {
			LOG(c, APPHOST_LOG_INFO,
			    r == HE_ENOENT
				? "no saved offset: reading from the beginning"
				: "resuming after saved offset",
			    "key=%s offset=%s epoch=%llu", c->cfg.offset_key,
			    saved, (unsigned long long)c->epoch);
		}
		snprintf(c->offset, sizeof(c->offset), "%s", saved);
		char first[48];
		if (r == HE_OK && moved &&
		    he_stream_redis_check_gap(&c->rs, c->offset, first,
					      sizeof(first)) == 1) {
			he_ops_gap(&c->ops);
			LOG(c, APPHOST_LOG_WARN,
			    "saved offset is older than the stream's first "
			    "entry: entries may have been trimmed unread",
			    "stream=%s offset=%s first_entry=%s", c->cfg.stream,
			    c->offset, first);
		}
		return true;
	}
	return false;
}

enum batch_end {
	BATCH_DONE,	 /* applied, committed, offset saved */
	BATCH_ABANDONED, /* stop while a dependency failed */
	BATCH_LOST,	 /* leadership ended: nothing more is written */
	BATCH_MOVED,	 /* the saved offset moved: resync first */
};

/*
 * Apply a batch and commit it, as leader of c->epoch. Every attempt
 * first checks that we still lead (our deadline has not passed); the
 * writes themselves are fenced, which covers a pause after that check.
 * A batch not committed (abandoned, lost, moved) has its games forgotten
 * by the dedupe cache when its rows were already written, so whoever
 * replays it publishes them again; its offset is not saved.
 */
static enum batch_end run_batch(he_consumer *c, const he_stream_entry *e,
				size_t n)
{
	uint64_t t0 = c->svc->now_ns(c->svc->host);
	if (n > c->reports_cap) {
		he_entry_report *r = realloc(c->reports, n * sizeof(*r));
		if (!r)
			return BATCH_ABANDONED;
		c->reports = r;
		c->reports_cap = n;
	}
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
		dep_failed(c, DEP_PG, r, c->pg.err);
		if (stopping(c))
			return BATCH_ABANDONED;
		backoff(c);
	}
	dep_ok(c, DEP_PG);
	he_stream_port port = he_stream_redis_port(&c->rs);
	enum batch_end end = BATCH_DONE;
	for (;;) {
		if (!leading(c)) {
			end = BATCH_LOST;
			break;
		}
		int r = port.commit(port.ctx, &c->box);
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
		backoff(c);
	}
	if (end != BATCH_DONE) {
		he_core_forget(c->core, &c->box);
		return end;
	}
	dep_ok(c, DEP_REDIS);
	he_ops_batch(&c->ops, c->core, c->reports, n,
		     (double)(c->svc->now_ns(c->svc->host) - t0) / 1e9);
	snprintf(c->offset, sizeof(c->offset), "%s", c->box.last_id);
	if (c->svc->log_enabled(c->svc->host, APPHOST_LOG_DEBUG))
		LOG(c, APPHOST_LOG_DEBUG, "batch committed",
		    "entries=%zu snapshots=%zu dead_letters=%zu offset=%s", n,
		    c->box.nsnapshots, c->box.ndead, c->offset);
	return BATCH_DONE;
}

/* Ping dependency d when it has not answered for IDLE_CHECK_NS. */
static void check_dep(he_consumer *c, enum dep d, uint64_t now)
{
	if (now - c->deps[d].last_ok_ns < IDLE_CHECK_NS)
		return;
	int r = d == DEP_PG ? he_record_store_pg_ping(&c->pg)
			    : he_stream_redis_ping(&c->rs);
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

/* Consume as leader of c->epoch until leadership ends or stop. */
static void lead(he_consumer *c)
{
	/*
	 * D4: a new leader knows nothing of what the last one published,
	 * unless that was our hot-swap predecessor and nobody led between
	 * us (each takeover raises the epoch by one).
	 */
	if (!c->swap_epoch || c->epoch != c->swap_epoch + 1)
		he_core_reset(c->core);
	c->swap_epoch = 0;
	he_record_store_pg_set_fence(&c->pg, c->cfg.label, c->epoch);
	he_stream_redis_set_epoch(&c->rs, c->epoch);
	if (!take_over(c, false))
		return;
	readiness(c);
	after_read(c, c->cfg.batch); /* readiness and lag at once */
	while (!stopping(c) && leading(c)) {
		const he_stream_entry *e;
		size_t n;
		if (atomic_load(&c->holding)) {
			park(c);
			continue;
		}
		if (he_stream_redis_reconnected(&c->rs) && !take_over(c, true))
			break;
		int r = he_stream_redis_read(&c->rs, c->offset, &e, &n);
		if (r < 0) {
			dep_failed(c, DEP_REDIS, r, c->rs.err);
			backoff(c);
			continue;
		}
		dep_ok(c, DEP_REDIS);
		enum batch_end end = n ? run_batch(c, e, n) : BATCH_DONE;
		if (end == BATCH_ABANDONED || end == BATCH_LOST)
			break;
		if (end == BATCH_MOVED && !take_over(c, true))
			break;
		after_read(c, n);
	}
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
	while (!stopping(c) && !atomic_load(&c->holding)) {
		uint64_t e =
		    he_leader_wait(c->leader, &c->stopping, STANDBY_CHECK_MS);
		if (e)
			return e;
		uint64_t now = c->svc->now_ns(c->svc->host);
		check_dep(c, DEP_REDIS, now);
		/*
		 * A standby that cannot ask for the lease (PostgreSQL down, or
		 * the lease functions missing) could never take over: that is
		 * PostgreSQL failing, for readiness and the logs alike.
		 */
		int why = he_leader_failure(c->leader);
		if (he_leader_failing(c->leader))
			dep_failed(c, DEP_PG, why < 0 ? why : HE_ECONN,
				   "lease calls failing");
		else
			check_dep(c, DEP_PG, now);
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

/* From the lease thread, when leadership ends: wake a blocked XREAD. */
static void wake_reader(void *arg)
{
	he_consumer *c = arg;
	long long id = atomic_load(&c->rs.client_id);
	if (id)
		(void)he_stream_redis_unblock(c->svc, id);
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
	/* The dedupe cache, headed by the epoch it was built under. */
	unsigned char *out = malloc(sizeof(SWAP_MAGIC) + 8 + n);
	if (!out) {
		free(core);
		return HE_ENOMEM;
	}
	memcpy(out, SWAP_MAGIC, sizeof(SWAP_MAGIC));
	for (int i = 0; i < 8; i++)
		out[sizeof(SWAP_MAGIC) + i] =
		    (unsigned char)(c->epoch >> (8 * i));
	memcpy(out + sizeof(SWAP_MAGIC) + 8, core, n);
	free(core);
	*buf = out;
	*len = sizeof(SWAP_MAGIC) + 8 + n;
	return HE_OK;
}

int he_consumer_import(he_consumer *c, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (len < sizeof(SWAP_MAGIC) + 8 ||
	    memcmp(p, SWAP_MAGIC, sizeof(SWAP_MAGIC)) != 0)
		return HE_EINVAL;
	uint64_t epoch = 0;
	for (int i = 0; i < 8; i++)
		epoch |= (uint64_t)p[sizeof(SWAP_MAGIC) + i] << (8 * i);
	int r = he_core_import(c->core, p + sizeof(SWAP_MAGIC) + 8,
			       len - sizeof(SWAP_MAGIC) - 8);
	if (r == HE_OK)
		c->swap_epoch = epoch;
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
	free(c->reports);
	he_core_free(c->core);
	uv_cond_destroy(&c->cv);
	uv_mutex_destroy(&c->mu);
	free(c);
}
