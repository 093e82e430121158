/*
 * consumer_batch.c -- applying a batch and committing it as leader, one
 * after the other or pipelined (the apply of one overlapping the commit
 * of the one before and the read of the one after), with the retries.
 */
#include "consumer_int.h"

#include "he_clock.h"

#include <stdio.h>
#include <stdlib.h>

#define NOT_TRIED 1 /* commit_batch: no attempt was made yet */

/*
 * Commit a batch applied as leader of c->epoch (stage st),
 * retrying while Redis fails; r is the result of an attempt already made,
 * or NOT_TRIED. A batch not committed (abandoned, lost, moved) has its
 * games forgotten by the dedupe cache, since its rows were written: the
 * resync publishes them again. Its offset is not saved.
 */
static enum batch_end commit_batch(he_consumer *c, consumer_stage *st, int r)
{
	he_stream_port port = he_stream_redis_port(&c->rs);
	enum batch_end end = BATCH_DONE;
	for (;; r = NOT_TRIED) {
		if (r == NOT_TRIED) {
			if (!consumer_leading(c)) {
				end = BATCH_LOST;
				break;
			}
			r = port.commit(port.ctx, &st->box);
		}
		if (r == HE_OK)
			break;
		if (r == HE_EFENCED || r == HE_EMOVED) {
			if (r == HE_EFENCED)
				consumer_fenced(c, "commit", true);
			end = r == HE_EFENCED ? BATCH_LOST : BATCH_MOVED;
			break;
		}
		consumer_dep_failed(c, DEP_REDIS, r,
				    he_stream_redis_err(&c->rs));
		if (consumer_stopping(c)) {
			end = BATCH_ABANDONED;
			break;
		}
		consumer_keep_fresh(c, DEP_PG);
		consumer_backoff(c);
	}
	if (end != BATCH_DONE) {
		he_core_forget(c->core, &st->box);
		return end;
	}
	consumer_dep_ok(c, DEP_REDIS);
	he_ops_batch(&c->ops, c->core, st->reports, st->n,
		     (double)(he_now_ns(c->svc) - st->t0) / 1e9);
	consumer_lag_committed(c, st->e, st->n);
	consumer_set_offset(c, st->box.last_id);
	if (c->svc->log_enabled(c->svc->host, APPHOST_LOG_DEBUG))
		LOG(c, APPHOST_LOG_DEBUG, "batch committed",
		    "entries=%zu snapshots=%zu dead_letters=%zu offset=%s",
		    st->n, st->box.nsnapshots, st->box.ndead, c->offset);
	return BATCH_DONE;
}

static int reserve_reports(consumer_stage *st, size_t n)
{
	return he_grow((void **)&st->reports, &st->reports_cap, n,
		       sizeof(*st->reports));
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
	uint64_t t0 = he_now_ns(c->svc);
	if (reserve_reports(&c->cur, n) < 0)
		return BATCH_ABANDONED;
	he_record_store store = he_record_store_pg_port(&c->pg);
	for (;;) {
		if (!consumer_leading(c))
			return BATCH_LOST;
		he_outbox_clear(&c->cur.box);
		int r = he_core_process(c->core, e, n, &store, &c->cur.box,
					c->cur.reports);
		if (r == HE_OK)
			break;
		if (r == HE_EFENCED) {
			consumer_fenced(c, "apply", false);
			return BATCH_LOST;
		}
		if (r == HE_EPOSITION) {
			/* Applied by someone, or PostgreSQL lost it: resync.
			 * The rows are as before this attempt. */
			consumer_dep_ok(c, DEP_PG);
			LOG(c, APPHOST_LOG_WARN,
			    "applied position moved: resyncing",
			    "offset=%s error=\"%s\"", c->offset,
			    he_record_store_pg_err(&c->pg));
			return BATCH_MOVED;
		}
		consumer_dep_failed(c, DEP_PG, r,
				    he_record_store_pg_err(&c->pg));
		if (consumer_stopping(c))
			return BATCH_ABANDONED;
		consumer_keep_fresh(c, DEP_REDIS);
		consumer_backoff(c);
	}
	consumer_dep_ok(c, DEP_PG);
	c->cur.e = e;
	c->cur.n = n;
	c->cur.t0 = t0;
	return commit_batch(c, &c->cur, NOT_TRIED);
}

/* Commit the pending batch, if any, after an attempt r (or NOT_TRIED). */
static enum batch_end drain_tried(he_consumer *c, int r)
{
	if (!c->pending)
		return BATCH_DONE;
	c->pending = false;
	return commit_batch(c, &c->pend, r);
}

/* Before a resync, a park or a stop: the pending batch committed. */
enum batch_end consumer_drain(he_consumer *c)
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
enum batch_end consumer_overlap(he_consumer *c, const he_stream_entry *e,
				size_t n, const he_stream_entry **next,
				size_t *nnext)
{
	uint64_t t0 = he_now_ns(c->svc);
	he_record_store store = he_record_store_pg_port(&c->pg);
	he_stream_port port = he_stream_redis_port(&c->rs);
	he_core_apply a;
	*nnext = 0;
	if (reserve_reports(&c->cur, n) < 0)
		return BATCH_ABANDONED;
	he_outbox_clear(&c->cur.box);
	int r = consumer_leading(c)
		    ? he_core_begin(c->core, e, n, &c->cur.box, &a)
		    : HE_EFENCED;
	bool begun = r == HE_OK;
	if (begun)
		r = he_record_store_pg_send(&c->pg, &a.span, a.ops, a.nops);
	bool sent = begun && r == HE_OK;
	int cr = NOT_TRIED;
	if (c->pending && consumer_leading(c))
		cr = port.commit(port.ctx, &c->pend.box);
	if (sent && (!c->pending || cr == HE_OK) && !consumer_stopping(c) &&
	    he_stream_redis_read_now(&c->rs, e[n - 1].id, next, nnext) < 0)
		*nnext = 0;
	if (sent)
		r = he_record_store_pg_receive(&c->pg, a.results);
	if (begun)
		r = he_core_end(c->core, e, n, r, &store, &c->cur.box,
				c->cur.reports);
	if (c->pending) {
		enum batch_end end = drain_tried(c, cr);
		if (end != BATCH_DONE) {
			if (r == HE_OK)
				he_core_forget(c->core, &c->cur.box);
			*nnext = 0;
			return end;
		}
	}
	if (r != HE_OK)
		return run_batch(c, e, n);
	consumer_dep_ok(c, DEP_PG);
	c->cur.e = e;
	c->cur.n = n;
	c->cur.t0 = t0;
	consumer_stage t = c->pend;
	c->pend = c->cur;
	c->cur = t;
	c->pending = true;
	return BATCH_DONE;
}

void consumer_stages_free(he_consumer *c)
{
	he_outbox_free(&c->cur.box);
	he_outbox_free(&c->pend.box);
	free(c->cur.reports);
	free(c->pend.reports);
}
