/*
 * consumer.c -- the consumer thread: a standby until the lease thread
 * (leader.c) holds the lease, then take over (fence, saved offset), read,
 * process, commit, retry; back to standby when leadership ends.
 */
#include "consumer_int.h"

#include "he_clock.h"
#include "he_stream_id.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define HOLD_WAIT_MS   5000 /* export waits this long for the batch in hand */
#define LAG_REFRESH_NS (5000 * HE_NS_PER_MS) /* while behind */
#define LAG_CAP	       100000
/*
 * Hot-swap state: this tag, the exporter's epoch (8 bytes, LE), the
 * published position its dedupe cache reflects (HE_POSITION_MAX bytes,
 * NUL-padded), the cache.
 */
static const char SWAP_MAGIC[8] = {'H', 'E', 'S', 'W', 'A', 'P', '0', '2'};
#define SWAP_HEAD (sizeof(SWAP_MAGIC) + 8 + HE_POSITION_MAX)

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
	atomic_init(&c->park_asked, false);
	uv_mutex_init(&c->mu);
	uv_cond_init(&c->cv);
	*out = c;
	return HE_OK;
}

void consumer_set_offset(he_consumer *c, const char *id)
{
	snprintf(c->offset, sizeof(c->offset), "%s", id);
	/* The main thread may log it while this thread runs: it reads the
	 * copy, under mu. */
	uv_mutex_lock(&c->mu);
	snprintf(c->offset_told, sizeof(c->offset_told), "%s", id);
	uv_mutex_unlock(&c->mu);
}

/* ---- the loop ------------------------------------------------------------ */

/* Park between batches (export asked) until stop: no batch is in hand. */
static void park(he_consumer *c)
{
	uv_mutex_lock(&c->mu);
	c->parked = true;
	uv_cond_broadcast(&c->cv);
	while (!atomic_load(&c->stopping))
		uv_cond_wait(&c->cv, &c->mu);
	uv_mutex_unlock(&c->mu);
}

/*
 * After each read (n entries, committed): keep readiness fresh while idle
 * (the XREAD itself checks Redis), and refresh the lag: 0 after a short
 * read (the end was reached), else counted every LAG_REFRESH_NS.
 */
static void after_read(he_consumer *c, size_t n)
{
	uint64_t now = he_now_ns(c->svc);
	consumer_check_dep(c, DEP_PG, now);
	unsigned long long lag = 0;
	if (n < he_stream_redis_asked(
		    &c->rs)) { /* a short read: the end was reached */
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
	bool diverged;
	he_record_store_pg_set_fence(&c->pg, c->cfg.lease_name, c->epoch);
	he_stream_redis_set_epoch(&c->rs, c->epoch);
	if (!consumer_take_over(c, false, &diverged)) {
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
	    he_stream_id_text_cmp(c->swap_published, c->offset) != 0)
		he_core_reset(c->core);
	c->swap_epoch = 0;
	he_leader_consuming(c->leader, true);
	consumer_readiness(c);
	after_read(c, c->cfg.batch); /* readiness and lag at once */
	c->pending = false;
	const he_stream_entry *e = NULL;
	size_t n = 0; /* read, not yet applied */
	enum batch_end end = BATCH_DONE;
	while (!consumer_stopping(c) && consumer_leading(c)) {
		/* Either server may have failed over: compare again. */
		bool again = he_stream_redis_reconnected(&c->rs);
		again |= he_record_store_pg_reconnected(&c->pg);
		if (atomic_load(&c->park_asked) || again || n == 0) {
			/* Nothing read ahead survives these: commit first. */
			if ((end = consumer_drain(c)) == BATCH_ABANDONED ||
			    end == BATCH_LOST)
				break;
			if (atomic_load(&c->park_asked)) {
				park(c);
				continue;
			}
			if ((again || end == BATCH_MOVED) &&
			    !consumer_resync(c))
				break;
			int r = he_stream_redis_read(&c->rs, c->offset, &e, &n);
			if (r < 0) {
				n = 0;
				consumer_dep_failed(
				    c, DEP_REDIS, r,
				    he_stream_redis_err(&c->rs));
				consumer_backoff(c);
				continue;
			}
			consumer_dep_ok(c, DEP_REDIS);
			consumer_lag_read(c, e, n);
			if (n == 0) {
				after_read(c, 0);
				continue;
			}
		}
		const he_stream_entry *next;
		size_t nnext;
		end = consumer_overlap(c, e, n, &next, &nnext);
		if (end == BATCH_ABANDONED || end == BATCH_LOST)
			break;
		if (end == BATCH_MOVED) {
			n = 0;
			if (!consumer_resync(c))
				break;
			continue;
		}
		after_read(c, n);
		e = next;
		n = nnext;
	}
	/* A stop still commits what was applied; a lost lead forgets it. */
	if (c->pending && !(end == BATCH_LOST || !consumer_leading(c)))
		(void)consumer_drain(c);
	else if (c->pending)
		he_core_forget(c->core, &c->pend.box);
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
	if (!consumer_check_due(c, DEP_REDIS, now))
		return;
	int r = he_stream_redis_read_fence(&c->rs, &fence);
	if (r < 0) {
		consumer_dep_failed(c, DEP_REDIS, r,
				    he_stream_redis_err(&c->rs));
		return;
	}
	consumer_dep_ok(c, DEP_REDIS);
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
	consumer_readiness(c);
	he_lag_reset(&c->lag); /* only the leader is behind */
	consumer_lag_export(c);
	while (!consumer_stopping(c) && !atomic_load(&c->park_asked)) {
		/* First the checks: the lease thread contends only once both
		 * servers answered. */
		uint64_t now = he_now_ns(c->svc);
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
			consumer_dep_failed(c, DEP_PG, why < 0 ? why : HE_ECONN,
					    "lease calls failing");
		} else {
			consumer_check_dep(c, DEP_PG, now);
		}
		uint64_t e =
		    he_leader_wait(c->leader, &c->stopping, c->t.check_ms);
		if (e)
			return e;
		consumer_readiness(c); /* why we stand aside may have changed */
	}
	return 0;
}

static void run(void *arg)
{
	he_consumer *c = arg;
	while (!consumer_stopping(c)) {
		if (atomic_load(&c->park_asked)) {
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
	    c->cfg.instance_id, c->cfg.lease_name, c->cfg.lease_ms);
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
	uint64_t end = he_now_ns(c->svc) + timeout_ns;
	uv_mutex_lock(&c->mu);
	uv_cond_broadcast(&c->cv);
	while (!*flag && !c->exited &&
	       (timeout_ns == 0 || he_now_ns(c->svc) < end)) {
		long long id = he_stream_redis_client_id(&c->rs);
		uv_mutex_unlock(&c->mu);
		he_leader_kick(c->leader); /* a standby waits there */
		if (id)
			(void)he_stream_redis_unblock(c->svc, id);
		uv_mutex_lock(&c->mu);
		if (!*flag && !c->exited)
			(void)uv_cond_timedwait(&c->cv, &c->mu,
						50 * HE_NS_PER_MS);
	}
	bool reached = *flag || c->exited;
	uv_mutex_unlock(&c->mu);
	return reached;
}

int he_consumer_export(he_consumer *c, void **buf, size_t *len)
{
	if (c->started) {
		atomic_store(&c->park_asked, true);
		if (!wake_until(c, &c->parked, HOLD_WAIT_MS * HE_NS_PER_MS)) {
			/* The thread may still be writing c->offset. */
			char at[HE_POSITION_MAX];
			uv_mutex_lock(&c->mu);
			snprintf(at, sizeof(at), "%s", c->offset_told);
			uv_mutex_unlock(&c->mu);
			LOG(c, APPHOST_LOG_WARN,
			    "export refused: the batch in hand did not finish "
			    "in time; the next instance starts with an empty "
			    "dedupe cache",
			    "wait_ms=%u offset=%s", HOLD_WAIT_MS, at);
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
	consumer_stages_free(c);
	he_core_free(c->core);
	uv_cond_destroy(&c->cv);
	uv_mutex_destroy(&c->mu);
	free(c);
}
