/* he_consumer_step.c -- see he_consumer_step.h. */
#include "he_consumer_step.h"

#include "he_lease_step.h"
#include "ports.h"

#define MS 1000000ull

static const he_stream_id ZERO = {0, 0};

he_converge he_converge_decide(bool has_applied, he_stream_id applied,
			       bool has_saved, he_stream_id saved,
			       he_stream_id *resume)
{
	if (!has_saved)
		saved = ZERO;
	if (!has_applied) /* upgrading: the first apply records it */
		applied = saved;
	*resume = applied;
	int cmp = he_stream_id_cmp(applied, saved);
	return cmp > 0	 ? HE_CONVERGE_REPAIR
	       : cmp < 0 ? HE_CONVERGE_REAPPLY
			 : HE_CONVERGE_RESUME;
}

unsigned he_cs_backoff_next(unsigned ms)
{
	ms = ms ? ms * 2 : 50;
	return ms > 1000 ? 1000 : ms;
}

void he_cs_init(he_cs *s, unsigned lease_ms)
{
	*s = (he_cs){.check_ms = lease_ms / 4};
}

void he_cs_reconnected(he_cs *s)
{
	s->resync_due = true;
}

void he_cs_swap(he_cs *s, uint64_t epoch, he_stream_id at)
{
	s->swap_epoch = epoch;
	s->swap_published = at;
}

void he_cs_pipeline(he_cs *s, bool on)
{
	s->pipelined = on;
}

void he_cs_stop(he_cs *s)
{
	s->stop = true;
}

/* The last answer from server, or the last ping sent to it if later. */
static uint64_t last_sign(const he_cs *s, int server)
{
	return s->heard[server] > s->ping_at[server] ? s->heard[server]
						     : s->ping_at[server];
}

/*
 * A server is checked once silent for half of check_ms: the checks come
 * after a wait of up to check_ms (an XREAD's BLOCK, a standby's turn), so
 * a server that answered just under a full check_ms before one would go
 * unchecked to twice that, heard_ms, where the lease counts it silent;
 * half keeps it under one and a half. A ping that got no answer is sent
 * again no sooner.
 */
static bool idle(const he_cs *s, int server, uint64_t now)
{
	uint64_t last = last_sign(s, server);
	return !last || (now > last && now - last >= s->check_ms * MS / 2);
}

static he_cs_next call(he_cs *s, he_cs_do what, int server);

static he_cs_next ping(he_cs *s, int server, uint64_t now)
{
	s->ping_at[server] = now;
	return call(s, HE_CS_PING, server);
}

/* A batch whose rows may be written but is not committed. */
static bool in_batch(const he_cs *s)
{
	return s->st == HE_CS_S_APPLY || s->st == HE_CS_S_COMMIT || s->has_pend;
}

/* Commit the pending batch first, then go on in state `then`. */
static void drain(he_cs *s, he_cs_state then)
{
	s->committing_pend = true;
	s->shift = false;
	s->then = then;
	s->st = HE_CS_S_COMMIT;
}

/* No outbox in hand will be committed (their games were forgotten). */
static void drop_batches(he_cs *s)
{
	s->committing_repair = false;
	s->committing_pend = false;
	s->has_pend = false;
}

static he_cs_next call(he_cs *s, he_cs_do what, int server)
{
	s->pending = what;
	s->pending_server = server;
	return (he_cs_next){.what = what, .server = server, .epoch = s->epoch};
}

he_cs_next he_cs_next_call(he_cs *s, uint64_t now, uint64_t writable)
{
	he_cs_next n = {.what = HE_CS_WAIT, .at_ns = UINT64_MAX};
	unsigned flags = 0;
	if (s->st == HE_CS_STOPPED)
		return n;
	if (s->stop && (!in_batch(s) || s->failed)) {
		/* Stopping: the batch in hand finishes only while both
		 * servers answer; abandoned, its games publish again. */
		n.flags = in_batch(s) ? HE_CS_FORGET : 0;
		s->st = HE_CS_STOPPED;
		s->news.stood_down = s->epoch;
		s->epoch = 0;
		drop_batches(s);
		return n;
	}
	if (s->stop && s->has_pend && s->st == HE_CS_S_READ)
		drain(s, HE_CS_S_READ); /* what was applied is committed */
	if (s->st != HE_CS_STANDBY && writable != s->epoch) {
		/* Our deadline passed, a server went silent, or a newer
		 * leader exists: write nothing more. */
		flags = in_batch(s) ? HE_CS_FORGET : 0;
		s->news.stood_down = s->epoch;
		s->st = HE_CS_STANDBY;
		s->epoch = 0;
		drop_batches(s);
		s->retry_at = 0;
		s->backoff_ms = 0;
	}
	if (s->st == HE_CS_STANDBY) {
		/* Never lead again with an epoch a write was refused for. */
		if (!writable || writable == s->fenced_epoch || s->stop) {
			/* Keep both servers warm and heard from. */
			for (int i = 0; i < 2; i++)
				if (idle(s, i, now)) {
					n = ping(s, i, now);
					n.flags = flags;
					return n;
				}
			uint64_t a = last_sign(s, 0) + s->check_ms * MS / 2,
				 b = last_sign(s, 1) + s->check_ms * MS / 2;
			n.at_ns = a < b ? a : b;
			n.flags = flags;
			return n;
		}
		s->epoch = writable;
		s->new_lead = true;
		s->resync_due = false;
		s->st = HE_CS_S_TAKE_OVER;
		s->news.led = writable;
	}
	if (now < s->retry_at) {
		/* While a call is retried, keep the other server heard: a lock
		 * wait PostgreSQL answers with errors must not read as a
		 * silent Redis and cost the leadership. */
		int other = !s->retry_server;
		if (s->heard[other] && idle(s, other, now))
			n = ping(s, other, now);
		else
			n.at_ns = s->retry_at;
		n.flags = flags;
		return n;
	}
	if (s->st == HE_CS_S_READ && s->resync_due) {
		/* Nothing read ahead survives a resync: commit first. */
		if (s->has_pend)
			drain(s, HE_CS_S_READ);
		else {
			s->resync_due = false;
			s->st = HE_CS_S_TAKE_OVER;
		}
	}
	switch (s->st) {
	case HE_CS_S_TAKE_OVER:
		n = call(s, HE_CS_TAKE_OVER, HE_HEARD_REDIS);
		break;
	case HE_CS_S_POSITION: n = call(s, HE_CS_POSITION, HE_HEARD_PG); break;
	case HE_CS_S_REPAIR_READ:
		n = call(s, HE_CS_REPAIR_READ, HE_HEARD_REDIS);
		n.from = s->repair_at;
		n.to = s->repair_to;
		break;
	case HE_CS_S_REPAIR:
		n = call(s, HE_CS_REPAIR, HE_HEARD_PG);
		n.from = s->repair_at;
		n.to = s->repair_last;
		break;
	case HE_CS_S_READ:
		/* The XREADs answer for Redis; PostgreSQL gets a ping. */
		if (idle(s, HE_HEARD_PG, now))
			n = ping(s, HE_HEARD_PG, now);
		else {
			n = call(s, HE_CS_READ, HE_HEARD_REDIS);
			n.from = s->applied;
			n.now_only = s->has_pend;
		}
		break;
	case HE_CS_S_APPLY:
		n = call(s, HE_CS_APPLY, HE_HEARD_PG);
		n.from = s->applied;
		n.to = s->batch_last;
		break;
	case HE_CS_S_COMMIT:
		n = call(s, HE_CS_COMMIT, HE_HEARD_REDIS);
		n.has_from = s->has_saved;
		n.from = s->saved;
		n.to = s->committing_repair ? s->repair_last
		       : s->committing_pend ? s->pend_last
					    : s->batch_last;
		break;
	default: break;
	}
	n.has_from |= n.what != HE_CS_COMMIT;
	n.flags |= flags;
	if (s->reset_due && n.what != HE_CS_WAIT) {
		s->reset_due = false;
		n.flags |= HE_CS_RESET;
	}
	return n;
}

/* Where the two positions disagree the cache no longer says what Lobby
 * got; a new leader's cache is kept only from its hot-swap predecessor
 * when nobody led in between and Redis holds what it reflects. */
static void converge(he_cs *s, bool has_applied, he_stream_id applied)
{
	he_stream_id resume;
	he_converge c = he_converge_decide(has_applied, applied, s->has_saved,
					   s->saved, &resume);
	bool keep = c == HE_CONVERGE_RESUME &&
		    (!s->new_lead ||
		     (s->swap_epoch && s->epoch == s->swap_epoch + 1 &&
		      he_stream_id_cmp(s->swap_published, resume) == 0));
	s->news.converged = c;
	s->swap_epoch = 0;
	s->new_lead = false;
	s->applied = resume;
	s->reset_due = !keep;
	if (c == HE_CONVERGE_REPAIR) {
		s->repair_at = s->has_saved ? s->saved : ZERO;
		s->repair_to = resume;
		s->st = HE_CS_S_REPAIR_READ;
	} else {
		s->st = HE_CS_S_READ;
	}
}

static void resync(he_cs *s)
{
	s->news.moved = true;
	if (s->has_pend && !s->committing_pend) {
		/* An apply refused while a batch is pending: commit it, then
		 * resync (consumer_batch.c commits it alongside the apply). */
		drain(s, HE_CS_S_TAKE_OVER);
		return;
	}
	/* A refused commit: its outboxes will not be committed. */
	s->news.dropped = s->st == HE_CS_S_COMMIT || s->has_pend;
	drop_batches(s);
	s->st = HE_CS_S_TAKE_OVER;
}

static void fenced(he_cs *s, unsigned long long fence)
{
	s->news.fence = fence;
	s->news.dropped = s->has_pend || s->st == HE_CS_S_COMMIT;
	drop_batches(s);
	s->news.fenced = s->epoch;
	s->fenced_epoch = s->epoch;
	s->news.stood_down = s->epoch;
	s->st = HE_CS_STANDBY;
	s->epoch = 0;
}

void he_cs_done(he_cs *s, uint64_t now, const he_cs_result *r)
{
	he_cs_do what = s->pending;
	int server = s->pending_server;
	s->pending = HE_CS_WAIT;
	/* An error reply is an answer: the server is reachable. */
	if (r->rc != HE_ETIMEDOUT && r->rc != HE_ECONN)
		s->heard[server] = now;
	if (what == HE_CS_PING && server == HE_HEARD_REDIS &&
	    s->st == HE_CS_STANDBY && r->rc == HE_OK && r->fence)
		s->news.saw_fence = r->fence;
	if (what == HE_CS_PING || what == HE_CS_WAIT ||
	    s->st == HE_CS_STANDBY || s->st == HE_CS_STOPPED)
		return; /* a ping, or leadership ended while it was out */
	int rc = r->rc;
	if (rc == HE_EFENCED) {
		fenced(s, r->fence);
		return;
	}
	bool ok = rc == HE_OK || (rc == HE_ENOENT && (what == HE_CS_TAKE_OVER ||
						      what == HE_CS_POSITION));
	if (!ok && (rc == HE_EMOVED || rc == HE_EPOSITION)) {
		resync(s);
		ok = true; /* not a failure: the servers answered */
		what = HE_CS_WAIT;
	}
	if (!ok) {
		s->failed = true;
		s->retry_server = server;
		s->backoff_ms = he_cs_backoff_next(s->backoff_ms);
		s->retry_at = now + s->backoff_ms * MS;
		/* A retried apply commits what is pending first. */
		if (what == HE_CS_APPLY && s->has_pend)
			drain(s, HE_CS_S_APPLY);
		return;
	}
	s->backoff_ms = 0;
	s->retry_at = 0;
	switch (what) {
	case HE_CS_TAKE_OVER:
		s->has_saved = rc == HE_OK;
		s->saved = rc == HE_OK ? r->id : ZERO;
		s->st = HE_CS_S_POSITION;
		break;
	case HE_CS_POSITION: converge(s, rc == HE_OK, r->id); break;
	case HE_CS_REPAIR_READ:
		s->repair_last = r->n ? r->id : s->repair_to;
		s->st = HE_CS_S_REPAIR;
		break;
	case HE_CS_REPAIR:
		s->committing_repair = true;
		s->st = HE_CS_S_COMMIT;
		break;
	case HE_CS_READ:
		if (r->n) {
			s->batch_last = r->id;
			s->failed = false;
			s->st = HE_CS_S_APPLY;
		} else if (s->has_pend) {
			drain(s, HE_CS_S_READ); /* then a blocking read */
		}
		break;
	case HE_CS_APPLY:
		s->applied = s->batch_last;
		if (!s->pipelined) {
			s->st = HE_CS_S_COMMIT;
		} else if (s->has_pend) {
			drain(s, HE_CS_S_READ);
			s->shift = true;
		} else {
			s->has_pend = true;
			s->pend_last = s->batch_last;
			s->st = HE_CS_S_READ;
		}
		break;
	case HE_CS_COMMIT: {
		he_stream_id to = s->committing_repair ? s->repair_last
				  : s->committing_pend ? s->pend_last
						       : s->batch_last;
		/* The offset never moves backwards. */
		if (!s->has_saved || he_stream_id_cmp(to, s->saved) > 0)
			s->saved = to;
		s->has_saved = true;
		if (s->committing_pend) {
			s->committing_pend = false;
			s->has_pend = s->shift;
			s->pend_last = s->batch_last;
			s->shift = false;
			s->st = s->then;
		} else if (s->committing_repair) {
			s->committing_repair = false;
			s->repair_at = to;
			s->st = he_stream_id_cmp(to, s->repair_to) >= 0
				    ? HE_CS_S_READ
				    : HE_CS_S_REPAIR_READ;
		} else {
			s->st = HE_CS_S_READ;
		}
		break;
	}
	default: break;
	}
}
