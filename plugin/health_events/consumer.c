/*
 * consumer.c -- the consumer thread's life: set up, start, the hot swap
 * (export parks the thread, import hands the cache on), stop. What the
 * thread does in between is the consumer step's (consumer_loop.c): a
 * standby until the lease thread (leader.c) holds the lease, then take
 * over, read, apply, commit, retry; back to standby when leadership ends.
 */
#include "consumer_int.h"

#include "he_clock.h"
#include "he_stream_id.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define HOLD_WAIT_MS 5000 /* export waits this long for the batch in hand */
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
	he_record_store_pg_set_async_commit(&c->pg, c->cfg.async_commit);
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

static void run(void *arg)
{
	he_consumer *c = arg;
	consumer_loop(c);
	/* Export asked: parked between batches, no batch in hand, until
	 * stop. */
	if (atomic_load(&c->park_asked))
		park(c);
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
	    "batch=%u block_ms=%u instance=%s lease=%s lease_ms=%u "
	    "synchronous_commit=%s",
	    c->cfg.stream, c->cfg.lobby_stream, c->cfg.dead_stream,
	    c->cfg.offset_key, c->cfg.batch, c->cfg.block_ms,
	    c->cfg.instance_id, c->cfg.lease_name, c->cfg.lease_ms,
	    c->cfg.async_commit ? "off" : "on");
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
