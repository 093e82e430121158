/*
 * consumer_batch.c -- the consumer step's APPLY and COMMIT over the
 * adapters, and the two batch stages they fill.
 *
 * Pipelined (he_cs_pipeline): after a batch applies, the step commits the
 * batch before it and reads the one after. The apply is sent first and,
 * while PostgreSQL runs it, the batch before is ended (its box written:
 * he_core_end, left for now when its apply came back), that commit is
 * made and that read done; their results wait here for the step to ask
 * for them. So PostgreSQL waits neither for Redis nor for the box of
 * the batch before, applies stay serial and in stream order on one
 * connection, and the step still decides every call. Any other call
 * than the next apply, a read or another batch's commit ends a batch
 * left so first (consumer_loop.c).
 */
#include "consumer_int.h"

#include "he_clock.h"
#include "he_stream_id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

consumer_stage *consumer_stage_free(he_consumer *c)
{
	for (int i = 0; i < 2; i++)
		if (!c->stage[i].applied)
			return &c->stage[i];
	return NULL;
}

/* The applied stage other than `not`, if any. */
static consumer_stage *applied_other(he_consumer *c,
				     const consumer_stage * not )
{
	for (int i = 0; i < 2; i++)
		if (c->stage[i].applied && &c->stage[i] != not )
			return &c->stage[i];
	return NULL;
}

/* The batch left at its apply ends: its box is written now. */
static void settle(he_consumer *c, consumer_stage *st)
{
	he_record_store store = he_record_store_pg_port(&c->pg);
	st->end_due = false;
	int r = he_core_end(c->core, st->e, st->n, HE_OK, &store, &st->box,
			    st->reports);
	if (r == HE_OK)
		return;
	/* Applied, but what Lobby gets cannot be built: its commit is
	 * refused, and the resync publishes the rows again. */
	st->lost = true;
	LOG(c, APPHOST_LOG_ERROR,
	    "a batch applied but its snapshots could not be built: "
	    "comparing the positions again",
	    "last_entry=%s error=\"%s\"", st->e[st->n - 1].id, he_strerror(r));
}

void consumer_settle(he_consumer *c)
{
	for (int i = 0; i < 2; i++)
		if (c->stage[i].end_due)
			settle(c, &c->stage[i]);
}

void consumer_stages_forget(he_consumer *c)
{
	consumer_settle(c); /* the core ends batches in order */
	for (int i = 0; i < 2; i++)
		if (c->stage[i].applied) {
			he_core_forget(c->core, &c->stage[i].box);
			c->stage[i].applied = false;
			c->stage[i].lost = false;
		}
	c->spec_commit.valid = false;
	c->spec_read.valid = false;
}

void consumer_stages_free(he_consumer *c)
{
	for (int i = 0; i < 2; i++) {
		he_outbox_free(&c->stage[i].box);
		free(c->stage[i].reports);
	}
}

static int reserve_reports(consumer_stage *st, size_t n)
{
	return he_grow((void **)&st->reports, &st->reports_cap, n,
		       sizeof(*st->reports));
}

int consumer_apply(he_consumer *c)
{
	consumer_stage *st = c->in_hand;
	if (!st || st->applied || !st->n)
		return HE_ESTATE; /* the step applies what it read */
	const he_stream_entry *e = st->e;
	size_t n = st->n;
	he_record_store store = he_record_store_pg_port(&c->pg);
	he_stream_port port = he_stream_redis_port(&c->rs);
	he_core_apply a;
	c->spec_commit.valid = false;
	c->spec_read.valid = false;
	st->t0 = he_now_ns(c->svc);
	st->repair = false;
	if (reserve_reports(st, n) < 0)
		return HE_ENOMEM;
	he_outbox_clear(&st->box);
	int r = he_core_begin(c->core, e, n, &st->box, &a);
	bool begun = r == HE_OK;
	if (begun)
		r = he_record_store_pg_send(&c->pg, &a.span, a.ops, a.nops);
	bool sent = begun && r == HE_OK;
	/* While it runs: the end of the batch before, the commit the step
	 * asks for next, and the read after that. */
	consumer_stage *p = applied_other(c, st);
	if (p && p->end_due)
		settle(c, p);
	if (p && !p->lost && consumer_leading(c))
		c->spec_commit = (struct consumer_spec_commit){
		    .valid = true,
		    .stage = p,
		    .rc = port.commit(port.ctx, &p->box)};
	if (sent && (!p || (c->spec_commit.valid && c->spec_commit.rc == 0)) &&
	    !consumer_stopping(c)) {
		struct consumer_spec_read *sr = &c->spec_read;
		snprintf(sr->after, sizeof(sr->after), "%s", e[n - 1].id);
		sr->rc =
		    he_stream_redis_read_now(&c->rs, sr->after, &sr->e, &sr->n);
		sr->valid = true;
	}
	if (sent)
		r = he_record_store_pg_receive(&c->pg, a.results);
	if (begun && r == HE_OK) {
		/* Its box is written while the next apply runs. */
		st->applied = true;
		st->end_due = true;
		return HE_OK;
	}
	if (begun)
		r = he_core_end(c->core, e, n, r, &store, &st->box,
				st->reports);
	if (r == HE_OK)
		st->applied = true;
	else if (r == HE_EFENCED)
		consumer_fenced(c, "apply", false);
	else if (r == HE_EPOSITION)
		/* Applied by someone, or PostgreSQL lost it: resync. The rows
		 * are as before this attempt. */
		LOG(c, APPHOST_LOG_WARN, "applied position moved: resyncing",
		    "offset=%s error=\"%s\"", c->offset,
		    he_record_store_pg_err(&c->pg));
	return r;
}

bool consumer_read_ahead(he_consumer *c, const char *after,
			 const he_stream_entry **e, size_t *n, int *rc)
{
	struct consumer_spec_read *sr = &c->spec_read;
	bool mine = sr->valid && strcmp(sr->after, after) == 0;
	sr->valid = false;
	if (mine) {
		*e = sr->e;
		*n = sr->n;
		*rc = sr->rc;
	}
	return mine;
}

int consumer_commit(he_consumer *c, he_stream_id to)
{
	char want[HE_POSITION_MAX];
	he_stream_id_format(want, sizeof(want), to);
	consumer_stage *st = NULL;
	for (int i = 0; i < 2; i++) {
		consumer_stage *s = &c->stage[i];
		/* A box not written yet ends where its entries do. */
		const char *last =
		    s->end_due || s->lost ? s->e[s->n - 1].id : s->box.last_id;
		if (s->applied && he_stream_id_text_cmp(last, want) == 0)
			st = s;
	}
	if (!st) {
		LOG(c, APPHOST_LOG_ERROR, "no outbox in hand ends there",
		    "to=%s", want);
		return HE_ESTATE;
	}
	if (st->end_due)
		settle(c, st);
	if (st->lost)
		return HE_EMOVED; /* logged: the step resyncs */
	he_stream_port port = he_stream_redis_port(&c->rs);
	int r;
	if (c->spec_commit.valid && c->spec_commit.stage == st)
		r = c->spec_commit.rc; /* made while the apply ran */
	else
		r = port.commit(port.ctx, &st->box);
	c->spec_commit.valid = false;
	if (r == HE_EFENCED)
		consumer_fenced(c, "commit", true);
	if (r != HE_OK)
		return r;
	st->applied = false;
	if (st->repair) {
		c->repair.batches++;
		return HE_OK;
	}
	he_ops_batch(&c->ops, c->core, st->reports, st->n,
		     (double)(he_now_ns(c->svc) - st->t0) / 1e9);
	consumer_lag_committed(c, st->e, st->n);
	consumer_set_offset(c, st->box.last_id);
	if (c->svc->log_enabled(c->svc->host, APPHOST_LOG_DEBUG))
		LOG(c, APPHOST_LOG_DEBUG, "batch committed",
		    "entries=%zu snapshots=%zu dead_letters=%zu offset=%s",
		    st->n, st->box.nsnapshots, st->box.ndead, c->offset);
	return HE_OK;
}
