/*
 * sim_world.c -- see sim_world.h and sim.c.
 *
 * The pieces: an event queue in virtual time (a heap ordered by time,
 * then by insertion); instances of two actors each (the lease thread and
 * the consumer thread, one call out at most, as in production), each call
 * a message over a link (instance, server, connection) that may be down,
 * slow or deliver it twice; the models of sim_model.h executing a message
 * when it arrives; faults; and the calls into the checker (sim_check.c)
 * where something is sent or lands.
 */
#include "sim_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- randomness: splitmix64, one stream per run -------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static bool chance(double p)
{
	return (double)(rnd() >> 11) * 0x1p-53 < p;
}

struct world W;

void fail(const char *fmt, ...)
{
	if (W.failed)
		return;
	W.failed = true;
	W.rep->fail_ms = W.now / MS;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(W.rep->why, sizeof(W.rep->why), fmt, ap);
	va_end(ap);
}

void trace(const char *fmt, ...)
{
	if (!W.trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("%10.3f ", W.now / 1e6);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
}

static bool ev_less(const event *a, const event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void push(uint64_t t, int kind, int a, int b, int c, int m)
{
	if (m >= 0 && (kind == EV_DELIVER || kind == EV_REPLY))
		W.msgs[m].refs++;
	if (W.nheap == MAX_EVENTS) {
		fail("simulation: event queue full");
		return;
	}
	event e = {t, W.seq++, (uint8_t)kind, a, b, c, m};
	unsigned i = W.nheap++;
	while (i && ev_less(&e, &W.heap[(i - 1) / 2])) {
		W.heap[i] = W.heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	W.heap[i] = e;
}

static event pop(void)
{
	event top = W.heap[0], last = W.heap[--W.nheap];
	unsigned i = 0;
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;
		const event *best = &last;
		if (l < W.nheap && ev_less(&W.heap[l], best))
			best = &W.heap[m = l];
		if (r < W.nheap && ev_less(&W.heap[r], best))
			best = &W.heap[m = r];
		if (m == i)
			break;
		W.heap[i] = W.heap[m];
		i = m;
	}
	W.heap[i] = last;
	return top;
}

static int msg_new(void)
{
	for (int k = 0; k < MAX_MSGS; k++) {
		int i = (int)((W.msg_at + (unsigned)k) % MAX_MSGS);
		if (!W.msgs[i].used) {
			memset(&W.msgs[i], 0, sizeof(W.msgs[i]));
			W.msgs[i].used = true;
			W.msgs[i].gen = ++W.gen;
			W.msg_at = (unsigned)i + 1;
			return i;
		}
	}
	fail("simulation: out of messages");
	return -1;
}

/* An instance's clock reading now, and the global time of a reading. */
#define LOCAL_BASE (1000000ull * MS)
static uint64_t loc(const inst *p)
{
	return LOCAL_BASE + (uint64_t)((double)(W.now - p->t0) * p->rate);
}

static uint64_t glob(const inst *p, uint64_t local)
{
	if (local == UINT64_MAX)
		return UINT64_MAX;
	if (local <= LOCAL_BASE)
		return p->t0;
	return p->t0 + (uint64_t)((double)(local - LOCAL_BASE) / p->rate) + 1;
}

he_stream_id id_of(uint32_t k) /* entry k's id */
{
	return (he_stream_id){k + 1, 0};
}

/* The index of the first entry after id (entry k's id is k+1-0). */
uint32_t after_index(he_stream_id id)
{
	return id.ms > W.nstream ? W.nstream : (uint32_t)id.ms;
}

static uint64_t delay(void)
{
	if (chance(W.p_slow)) /* a slow delivery: up to two call deadlines */
		return below(2 * CALL_MS * MS);
	return 100000 + below(2 * MS);
}

/* ---- the servers executing a call ---------------------------------------- */
static void exec_pg(msg *m)
{
	switch (m->kind) {
	case K_ASK: {
		uint64_t e, left;
		sim_pg_lease(&W.pg, W.now, m->token, LEASE_MS, m->min_epoch, &e,
			     &left);
		m->rc = HE_OK;
		m->r_epoch = e;
		if (e && e < MAX_EPOCHS) {
			if (e > W.pg_granted)
				W.pg_granted = e;
			int k = W.grantee[e][0] == m->token   ? 0
				: W.grantee[e][1] == m->token ? 1
				: W.grantee[e][0]	      ? 1
							      : 0;
			if (W.grantee[e][k] != m->token)
				W.granted[e][k] = 0;
			W.grantee[e][k] = m->token;
			if (W.pg.expires > W.granted[e][k])
				W.granted[e][k] = W.pg.expires;
		}
		break;
	}
	case K_RELEASE:
		(void)sim_pg_release(&W.pg, W.now, m->token, m->epoch);
		m->rc = HE_OK;
		break;
	case HE_CS_PING: m->rc = HE_OK; break;
	case HE_CS_POSITION: m->rc = sim_pg_position(&W.pg, &m->r_id); break;
	case HE_CS_REPAIR: /* the current rows: as of the applied position */
		m->rc = HE_OK;
		m->row_at = W.pg.progress ? after_index(W.pg.applied) : 0;
		for (uint32_t k = m->lo; k < m->hi; k++)
			m->rows[k - m->lo] = W.pg.rows[W.stream[k].game];
		break;
	case HE_CS_APPLY: {
		m->rc = sim_pg_apply(&W.pg, W.tokens, m->epoch, m->token,
				     m->from, m->to, &W.stream[m->lo],
				     m->hi - m->lo, m->rows);
		if (m->rc != HE_OK)
			break;
		/* which entries moved a status now, for the dedupe rule */
		for (uint32_t k = m->lo; k < m->hi; k++) {
			const sim_row *before = &W.model[k][W.stream[k].game];
			m->moved_now[k - m->lo] =
			    before->status !=
			    W.model[k + 1][W.stream[k].game].status;
		}
		check_landed(m, "apply", W.pg_granted, "a grant");
		if (after_index(m->from) != m->lo ||
		    he_stream_id_cmp(id_of(m->hi - 1), m->to) != 0)
			fail("apply of entries %u..%u does not follow "
			     "%llu-%llu: "
			     "an entry skipped",
			     m->lo, m->hi, m->from.ms, m->from.seq);
		check_rows();
		break;
	}
	default: fail("simulation: call %d sent to PostgreSQL", m->kind);
	}
}

static void exec_redis(msg *m)
{
	bool moved;
	switch (m->kind) {
	case HE_CS_PING: /* a standby's check reads the fence */
		m->rc = HE_OK;
		m->r_fence = W.rd.fence;
		break;
	case HE_CS_TAKE_OVER:
		m->rc = sim_redis_take_over(&W.rd, W.tokens, m->epoch, m->token,
					    &m->r_id, &m->r_fence);
		if (m->rc == HE_EFENCED)
			break;
		check_landed(m, "take-over", W.rd_taken, "a take-over");
		W.rd_taken = m->epoch;
		note_reapply();
		break;
	case HE_CS_READ:
	case HE_CS_REPAIR_READ: {
		uint32_t lo = after_index(m->from), hi = lo + W.batch;
		if (hi > W.nstream)
			hi = W.nstream;
		if (m->kind == HE_CS_REPAIR_READ && hi > after_index(m->to))
			hi = after_index(m->to);
		if (hi < lo)
			hi = lo;
		m->lo = lo;
		m->hi = hi;
		m->rc = HE_OK;
		if (hi > lo)
			m->r_id = id_of(hi - 1);
		break;
	}
	case HE_CS_COMMIT:
		moved = !W.rd.has_offset ||
			he_stream_id_cmp(m->to, W.rd.offset) > 0;
		m->rc = sim_redis_commit(
		    &W.rd, W.tokens, m->epoch, m->token, m->has_from, m->from,
		    m->to, m->pubs, m->npubs, &m->r_fence, &m->r_has, &m->r_id);
		if (m->rc != HE_OK)
			break;
		check_landed(m, "commit", W.rd_taken, "a take-over");
		/* An older batch published again after a newer one (a late
		 * copy, a slow delivery): the known gap of note_reapply(). */
		if (!moved && he_stream_id_cmp(m->to, W.republished) < 0)
			W.rep->lobby_unchecked = true;
		check_published(m, moved);
		if (he_stream_id_cmp(m->to, W.republished) > 0)
			W.republished = m->to;
		break;
	default: fail("simulation: call %d sent to Redis", m->kind);
	}
}

/* ---- instances: sending and receiving ------------------------------------ */

static void wake(int i, int actor, uint64_t t)
{
	inst *p = &W.in[i];
	if (t < W.now)
		t = W.now;
	if (p->wake_at[actor] && p->wake_at[actor] <= t &&
	    p->wake_at[actor] >= W.now)
		return; /* an earlier wake is already due */
	p->wake_at[actor] = t;
	push(t, EV_WAKE, i, actor, p->inc, -1);
}

static void send(int i, int actor, int mi)
{
	inst *p = &W.in[i];
	msg *m = &W.msgs[mi];
	m->inst = i;
	m->inc = p->inc;
	m->actor = actor;
	m->token = p->token;
	m->sent = loc(p);
	p->out[actor] = mi;
	int conn = actor == 0 ? LEASE_CONN : CONS_CONN;
	if (!p->down[m->server][conn])
		push(W.now + delay(), EV_DELIVER, 0, 0, 0, mi);
	/* else lost: only the timeout comes */
	push(m->deadline, EV_TIMEOUT, 0, 0, (int)(m->gen & 0x7fffffff), mi);
	bool write = m->kind == HE_CS_APPLY || m->kind == HE_CS_COMMIT ||
		     m->kind == HE_CS_TAKE_OVER || m->kind == K_ASK ||
		     m->kind == K_RELEASE;
	if (write && !W.healed && !p->down[m->server][conn] &&
	    chance(W.p_dup)) {
		int d = msg_new();
		if (d >= 0) {
			W.msgs[d] = *m;
			W.msgs[d].refs = 0;
			W.msgs[d].dup = true;
			W.msgs[d].resolved = true; /* nobody waits for it */
			push(W.now + below(LEASE_MS * MS), EV_DELIVER, 0, 0, 0,
			     d);
		}
	}
	trace("i%d.%d send %d epoch=%llu from=%llu to=%llu n=%u", i, actor,
	      m->kind, (unsigned long long)m->epoch, m->from.ms, m->to.ms,
	      m->hi - m->lo);
	for (int k = 0; W.trace && k < m->npubs; k++)
		trace("    snapshot game %d: %d/%d from %llu", m->pubs[k].game,
		      m->pubs[k].row.status, m->pubs[k].row.health,
		      m->pubs[k].source.ms);
}

/* Forget the games of every outbox in hand: none will be committed. */
static void forget_boxes(inst *p)
{
	for (int b = 0; b < 2; b++) {
		for (int k = 0; p->box[b].used && k < p->box[b].n; k++)
			p->cached[p->box[b].pub[k].game] = false;
		p->box[b].used = false;
	}
}

static struct obox *find_box(inst *p, he_stream_id last)
{
	for (int b = 0; b < 2; b++)
		if (p->box[b].used &&
		    he_stream_id_cmp(p->box[b].last, last) == 0)
			return &p->box[b];
	return NULL;
}

static struct obox *new_box(inst *p, he_stream_id last)
{
	struct obox *o = find_box(p, last);
	for (int b = 0; !o && b < 2; b++)
		if (!p->box[b].used)
			o = &p->box[b];
	if (!o) /* one dropped without a word: the oldest goes */
		o = &p->box[he_stream_id_cmp(p->box[0].last, p->box[1].last) >
			    0];
	*o = (struct obox){.used = true, .last = last};
	return o;
}

/* The outbox of the batch in hand, after the apply (D4: a snapshot when
 * the status moved now or the summary differs from the last published). */
static void build_box(inst *p, const msg *m)
{
	struct obox *o = new_box(p, m->to);
	for (uint32_t k = m->lo; k < m->hi; k++) {
		uint8_t g = W.stream[k].game;
		const sim_row *r = &m->rows[k - m->lo];
		if (!m->moved_now[k - m->lo] && p->cached[g] &&
		    p->cache[g].health == r->health &&
		    p->cache[g].status == r->status)
			continue;
		p->cached[g] = true;
		p->cache[g] = *r;
		o->pub[o->n++] = (sim_pub){g, *r, id_of(k), k + 1};
	}
}

/* What a lost commit of the entries in hand held: each touched game's
 * current row, once, sourced by the last entry that touched it; those
 * games are forgotten by the dedupe cache. */
static void build_repair(inst *p, const msg *m)
{
	struct obox *o = new_box(p, m->to);
	for (uint32_t k = m->hi; k-- > m->lo;) {
		uint8_t g = W.stream[k].game;
		bool seen = false;
		for (int j = 0; j < o->n; j++)
			seen |= o->pub[j].game == g;
		if (seen)
			continue;
		o->pub[o->n++] =
		    (sim_pub){g, m->rows[k - m->lo], id_of(k), m->row_at};
		p->cached[g] = false;
	}
}

static void lease_result(inst *p, msg *m, int rc)
{
	if (m->kind == K_ASK)
		he_lease_sm_asked(&p->L, loc(p), m->sent, rc, m->r_epoch);
	else
		he_lease_sm_released(&p->L, loc(p), rc);
}

static void cons_result(int i, msg *m, int rc)
{
	inst *p = &W.in[i];
	he_cs_result r = {.rc = rc, .id = m->r_id, .fence = m->r_fence};
	if (rc == HE_OK &&
	    (m->kind == HE_CS_READ || m->kind == HE_CS_REPAIR_READ)) {
		p->lo = m->lo;
		p->hi = m->hi;
		r.n = m->hi - m->lo;
	}
	if (rc == HE_OK && m->kind == HE_CS_APPLY)
		build_box(p, m);
	if (rc == HE_OK && m->kind == HE_CS_REPAIR)
		build_repair(p, m);
	/* Our own commit whose reply was lost landed (stream_redis.c). */
	if (rc == HE_EMOVED && m->kind == HE_CS_COMMIT && m->r_has &&
	    he_stream_id_cmp(m->r_id, m->to) == 0)
		r.rc = rc = HE_OK;
	if (rc == HE_EFENCED) {
		if (m->r_fence > p->fence_seen)
			p->fence_seen = m->r_fence;
		if (m->epoch > p->refused)
			p->refused = m->epoch;
	}
	if (rc == HE_OK && m->kind == HE_CS_COMMIT && find_box(p, m->to))
		find_box(p, m->to)->used = false;
	if (rc == HE_OK && m->kind == HE_CS_COMMIT)
		p->committed = m->to; /* consumer.c's offset */
	/* A connection that broke is a reconnection on its next answer:
	 * the consumer compares both positions again (DESIGN §11). */
	if (rc != HE_ETIMEDOUT)
		p->answered[m->server] = loc(p);
	if (rc == HE_ETIMEDOUT)
		p->broken[m->server] = true;
	else if (p->broken[m->server]) {
		p->broken[m->server] = false;
		he_cs_reconnected(&p->C);
	}
	he_cs_done(&p->C, loc(p), &r);
	if (m->kind == HE_CS_POSITION && p->C.st != HE_CS_S_POSITION &&
	    p->C.epoch)
		p->committed = p->C.applied; /* resumes there */
	/* The consumer step decides a refusal deposes us; the lease hears
	 * it from there, as leader.c does from consumer_loop.c. */
	if (p->C.news.fenced) {
		he_lease_sm_fenced(&p->L, p->C.news.fenced, p->C.news.fence);
		p->C.news.fenced = 0;
	}
	if (p->C.news.dropped) {
		forget_boxes(p);
		p->C.news.dropped = false;
	}
	if (p->C.news.saw_fence) {
		he_lease_sm_saw_fence(&p->L, p->C.news.saw_fence);
		p->C.news.saw_fence = 0;
	}
	/* what a standby read, which its next ask must be above */
	if (rc == HE_OK && m->kind == HE_CS_PING && m->server == REDIS &&
	    !p->L.epoch && p->C.st == HE_CS_STANDBY &&
	    m->r_fence > p->fence_seen)
		p->fence_seen = m->r_fence;
	for (int s = 0; s < 2; s++)
		he_lease_sm_heard(&p->L, s, p->C.heard[s]);
}

static void result(int mi, int rc)
{
	msg *m = &W.msgs[mi];
	inst *p = &W.in[m->inst];
	p->out[m->actor] = -1;
	trace("i%d.%d result %d rc=%d epoch=%llu id=%llu", m->inst, m->actor,
	      m->kind, rc, (unsigned long long)m->r_epoch, m->r_id.ms);
	if (m->actor == 0)
		lease_result(p, m, rc);
	else
		cons_result(m->inst, m, rc);
	wake(m->inst, m->actor, W.now);
}

/* ---- instances: the two actors ------------------------------------------- */

static void lease_step(int i)
{
	inst *p = &W.in[i];
	he_lease_next n = he_lease_sm_next(&p->L, loc(p));
	if (p->L.news.acquired || p->L.news.lost) {
		trace("i%d lease acquired=%llu lost=%llu why=%s", i,
		      (unsigned long long)p->L.news.acquired,
		      (unsigned long long)p->L.news.lost,
		      he_lease_why_name(p->L.news.why));
		p->L.news = (he_lease_news){0};
		wake(i, 1, W.now);
	}
	if (n.what == HE_LEASE_DO_WAIT) {
		if (n.at_ns != UINT64_MAX)
			wake(i, 0, glob(p, n.at_ns));
		return;
	}
	int mi = msg_new();
	if (mi < 0)
		return;
	msg *m = &W.msgs[mi];
	m->server = PG;
	m->kind = n.what == HE_LEASE_DO_ASK ? K_ASK : K_RELEASE;
	m->epoch = n.epoch;
	m->min_epoch = n.min_epoch;
	m->deadline = glob(p, n.at_ns);
	if (m->kind == K_ASK)
		check_ask_rules(p, loc(p), m->min_epoch);
	send(i, 0, mi);
}

static void cons_step(int i)
{
	inst *p = &W.in[i];
	uint64_t now = loc(p);
	uint64_t w = he_lease_sm_writable(&p->L, now);
	if (w && w <= p->refused)
		fail("fence: holding epoch %llu after a write with epoch %llu "
		     "was refused",
		     (unsigned long long)w, (unsigned long long)p->refused);
	he_cs_next n = he_cs_next_call(&p->C, now, w);
	if (n.flags & HE_CS_FORGET)
		forget_boxes(p);
	if (n.flags & HE_CS_RESET)
		memset(p->cached, 0, sizeof(p->cached));
	if (p->C.news.led || p->C.news.stood_down) {
		p->C.news = (he_cs_news){0};
		wake(i, 0, W.now);
	}
	if (n.what == HE_CS_WAIT) {
		/* Also look again once a quarter lease: the lease may have
		 * changed without telling (its deadline passing). */
		uint64_t t = now + CALL_MS * MS;
		wake(i, 1, glob(p, n.at_ns < t ? n.at_ns : t));
		return;
	}
	int mi = msg_new();
	if (mi < 0)
		return;
	msg *m = &W.msgs[mi];
	m->server = n.server;
	m->kind = n.what;
	m->epoch = n.epoch;
	m->has_from = n.has_from;
	m->from = n.from;
	m->to = n.to;
	m->deadline = glob(
	    p,
	    now + (n.what == HE_CS_READ ? BLOCK_MS + CALL_MS : CALL_MS) * MS);
	switch (n.what) {
	case HE_CS_REPAIR:
	case HE_CS_APPLY:
		m->lo = p->lo;
		m->hi = p->hi;
		break;
	case HE_CS_COMMIT: {
		const struct obox *o = find_box(p, n.to);
		if (!o) {
			fail("simulation: no outbox in hand ends at %llu",
			     n.to.ms);
			return;
		}
		memcpy(m->pubs, o->pub, o->n * sizeof(o->pub[0]));
		m->npubs = o->n;
		m->batch = !p->C.committing_repair;
		break;
	}
	case HE_CS_READ: m->now_only = n.now_only; break;
	default: break;
	}
	if (n.what == HE_CS_APPLY || n.what == HE_CS_COMMIT ||
	    n.what == HE_CS_TAKE_OVER)
		check_deadline(p, n.epoch,
			       n.what == HE_CS_APPLY	? "apply"
			       : n.what == HE_CS_COMMIT ? "commit"
							: "take-over");
	send(i, 1, mi);
}

static void boot(int i)
{
	inst *p = &W.in[i];
	p->up = true;
	p->inc++;
	p->token = (uint64_t)(i + 1) * 1000000u + (uint64_t)p->inc;
	p->paused_until[0] = p->paused_until[1] = 0;
	p->out[0] = p->out[1] = -1;
	p->wake_at[0] = p->wake_at[1] = 0;
	p->broken[0] = p->broken[1] = false;
	memset(p->box, 0, sizeof(p->box));
	p->refused = p->fence_seen = 0;
	p->swapping = false;
	p->committed = (he_stream_id){0, 0};
	p->answered[0] = p->answered[1] = 0;
	memset(p->cached, 0, sizeof(p->cached));
	p->rate = 1 + ((double)below(2001) - 1000) / 10000;
	p->t0 = W.now;
	he_lease_sm_init(&p->L, LEASE_MS);
	he_cs_init(&p->C, LEASE_MS);
	he_cs_pipeline(&p->C, W.pipelined);
	wake(i, 0, W.now);
	wake(i, 1, W.now);
}

/* ---- faults -------------------------------------------------------------- */

static void checkpoint(void)
{
	ckpt *c = &W.ring[W.ring_at];
	c->t = W.now;
	c->pg = W.pg;
	c->rd = W.rd;
	c->pg_granted = W.pg_granted;
	c->rd_taken = W.rd_taken;
	W.ring_at = (W.ring_at + 1) % RING;
	if (W.nring < RING)
		W.nring++;
	if (W.ckpts++ % 10 == 0)
		W.backup[W.nbackup++ % 64] = *c;
}

/* One store loses its last writes (a failover to a lagging replica) or
 * is restored from an older state; every connection to it breaks. */
static void store_fault(void)
{
	if (W.now < W.quiet_until || !W.nring)
		return;
	unsigned back = 1 + (unsigned)below(chance(0.2) ? W.nring : 10);
	if (back > W.nring)
		back = W.nring;
	const ckpt *c = &W.ring[(W.ring_at + RING - back) % RING];
	int s = chance(0.5) ? PG : REDIS;
	/* One store at a time: the other may lose writes only once the one
	 * that lost some knows again the highest epoch in use (else both
	 * would have forgotten it, which no fence survives). */
	if (W.lost >= 0 && s != W.lost &&
	    (W.lost == PG ? W.pg.epoch : W.rd.fence) < W.top_epoch)
		s = W.lost;
	W.lost = s;
	if (chance(0.25)) /* restored from a backup, of any age */
		c = &W.backup[below(W.nbackup < 64 ? W.nbackup : 64)];
	trace("fault: %s back to %.3fs", s == PG ? "postgres" : "redis",
	      c->t / 1e9);
	if (s == PG) {
		W.pg = c->pg;
		W.pg_granted = c->pg_granted;
		check_rows();
	} else {
		W.rd = c->rd;
		W.rd_taken = c->rd_taken;
	}
	for (int i = 0; i < W.n; i++)
		if (W.in[i].up)
			W.in[i].broken[s] = true;
	W.quiet_until = W.now + 2ull * LEASE_MS * MS;
}

static void fault(void)
{
	int i = (int)below((uint64_t)W.n);
	inst *p = &W.in[i];
	uint64_t r = below(100);
	W.rep->faults++;
	if (r < 30) { /* a pause: GC, SIGSTOP, a VM migrating */
		uint64_t d = chance(0.7) ? below(LEASE_MS * MS / 2)
					 : below(3ull * LEASE_MS * MS);
		/* or one thread stalled (a call without a deadline, a
		 * lock): the other goes on and must not outrun the rules */
		int a = chance(0.6) ? 2 : (int)below(2);
		for (int k = 0; k < 2 && p->up; k++)
			if ((a == 2 || a == k) &&
			    p->paused_until[k] < W.now + d)
				p->paused_until[k] = W.now + d;
		trace("fault: i%d paused %.3fs (%d)", i, d / 1e9, a);
	} else if (r < 70) { /* a partition of one connection or both */
		int s = (int)below(2), c = (int)below(3);
		uint64_t d = below(2ull * LEASE_MS * MS);
		for (int k = 0; k < 2; k++)
			if (c == 2 || c == k) {
				p->down[s][k] = true;
				push(W.now + d, EV_LINK_UP, i, s, k, -1);
			}
		trace("fault: i%d link %d.%d down %.3fs", i, s, c, d / 1e9);
	} else if (r < 85) { /* a crash, or a graceful stop, then a start */
		/* often the leader's: deployments restart leaders too */
		for (int k = 0; k < W.n && chance(0.5); k++)
			if (W.in[k].up && W.in[k].C.epoch)
				p = &W.in[i = k];
		if (!p->up)
			return;
		if (chance(0.3)) {
			p->swapping = chance(0.5);
			p->swap_epoch = p->C.epoch;
			he_lease_sm_stop(&p->L);
			he_cs_stop(&p->C);
			wake(i, 0, W.now);
			wake(i, 1, W.now);
			push(W.now + 2 * CALL_MS * MS, EV_CRASH, i, 0, p->inc,
			     -1);
		} else {
			p->up = false;
			push(W.now + below(2000 * MS), EV_RESTART, i, 0, 0, -1);
		}
		trace("fault: i%d restarts", i);
	} else if (r < 90) {
		store_fault();
	}
}

static void heal(void)
{
	W.healed = true;
	W.p_slow = 0; /* slow links are faults too */
	trace("heal");
	int good = (int)below((uint64_t)W.n);
	for (int i = 0; i < W.n; i++) {
		inst *p = &W.in[i];
		memset(p->down, 0, sizeof(p->down));
		memset(p->gray, 0, sizeof(p->gray));
		/* Gray failures stay: an instance that reaches PostgreSQL but
		 * not Redis (or the reverse) must not keep the lease. */
		if (i != good && chance(0.3)) {
			int s = (int)below(2);
			p->gray[s] = true;
			p->down[s][CONS_CONN] = true;
		}
		if (!p->up)
			boot(i);
		p->paused_until[0] = p->paused_until[1] = 0;
		wake(i, 0, W.now);
		wake(i, 1, W.now);
	}
}

/* ---- one run ------------------------------------------------------------- */

static void append(void)
{
	if (W.nstream >= MAX_ENTRIES)
		return;
	uint32_t k = W.nstream;
	sim_entry e = {id_of(k), (uint8_t)below(SIM_GAMES),
		       (uint8_t)below(SIM_KINDS)};
	W.stream[k] = e;
	memcpy(W.model[k + 1], W.model[k], sizeof(W.model[k]));
	bool changed;
	sim_row_apply(&W.model[k + 1][e.game], e.kind, &changed);
	W.touched[e.game] = true;
	W.nstream++;
}

static void handle_event(const event *e, inst *p, msg *m);

static void handle(const event *e)
{
	msg *m = e->m >= 0 ? &W.msgs[e->m] : NULL;
	inst *p = e->kind == EV_WAKE || e->kind == EV_RESTART ||
			  e->kind == EV_CRASH || e->kind == EV_LINK_UP
		      ? &W.in[e->a]
		  : m ? &W.in[m->inst]
		      : NULL;
	/* A paused instance handles nothing until it resumes. */
	int actor = e->kind == EV_WAKE ? e->b : m ? m->actor : 0;
	if (p && p->paused_until[actor] > W.now &&
	    (e->kind == EV_WAKE || e->kind == EV_REPLY ||
	     (e->kind == EV_TIMEOUT && !m->dup))) {
		if (e->kind == EV_TIMEOUT &&
		    (!m->used || (int)(m->gen & 0x7fffffff) != e->c))
			return;
		push(p->paused_until[actor], e->kind, e->a, e->b, e->c, e->m);
		if (m && e->kind != EV_TIMEOUT)
			m->refs--; /* moved, not handled */
		return;
	}
	if (e->kind == EV_TIMEOUT &&
	    (!m->used || (int)(m->gen & 0x7fffffff) != e->c))
		return; /* resolved and gone: the slot serves another */
	handle_event(e, p, m);
	if (m && e->kind != EV_TIMEOUT)
		m->refs--;
	if (m && !m->refs && m->resolved)
		m->used = false;
}

static void handle_event(const event *e, inst *p, msg *m)
{
	switch (e->kind) {
	case EV_WAKE:
		if (!p->up || e->c != p->inc || p->out[e->b] >= 0)
			return;
		if (p->wake_at[e->b] == e->t)
			p->wake_at[e->b] = 0;
		if (e->b == 0)
			lease_step(e->a);
		else
			cons_step(e->a);
		return;
	case EV_DELIVER:
		if (m->server == PG)
			exec_pg(m);
		else
			exec_redis(m);
		if (!m->dup && !m->resolved &&
		    !W.in[m->inst]
			 .down[m->server][m->actor ? CONS_CONN : LEASE_CONN]) {
			uint64_t t = W.now + delay();
			if (m->kind == HE_CS_READ && m->hi == m->lo &&
			    !m->now_only)
				t += BLOCK_MS * MS; /* XREAD BLOCK, nothing */
			if (t <= m->deadline) {
				m->replied = true;
				push(t, EV_REPLY, 0, 0, 0, e->m);
			}
		}
		break;
	case EV_REPLY:
		if (!m->resolved && W.in[m->inst].up &&
		    m->inc == W.in[m->inst].inc) {
			m->resolved = true;
			result(e->m, m->rc);
		}
		m->resolved = true;
		break;
	case EV_TIMEOUT:
		/* A reply on its way by the deadline wins. */
		if (!m->resolved && !m->replied && W.in[m->inst].up &&
		    m->inc == W.in[m->inst].inc) {
			m->resolved = true;
			result(e->m, HE_ETIMEDOUT);
		}
		if (!m->replied)
			m->resolved = true;
		break;
	case EV_APPEND:
		if (W.healed)
			return;
		if (W.now >= W.burst_until) { /* idle, then a burst */
			uint64_t idle = below(3000 * MS);
			W.burst_until = W.now + idle + below(3000 * MS);
			push(W.now + idle, EV_APPEND, 0, 0, 0, -1);
			return;
		}
		append();
		push(W.now + below(40 * MS), EV_APPEND, 0, 0, 0, -1);
		return;
	case EV_FAULT:
		if (W.healed)
			return;
		fault();
		push(W.now + below((uint64_t)W.fault_ms * 2 * MS), EV_FAULT, 0,
		     0, 0, -1);
		return;
	case EV_LINK_UP:
		if (!W.healed || !p->gray[e->b] || e->c != CONS_CONN)
			p->down[e->b][e->c] = false;
		return;
	case EV_RESTART:
		if (!p->up)
			boot(e->a);
		return;
	case EV_CRASH:
		if (p->up && p->inc == e->c && p->swapping) {
			/* the next build starts at once, with the cache */
			bool cached[SIM_GAMES];
			sim_row cache[SIM_GAMES];
			uint64_t epoch = p->swap_epoch;
			he_stream_id at = p->committed;
			memcpy(cached, p->cached, sizeof(cached));
			memcpy(cache, p->cache, sizeof(cache));
			boot(e->a);
			memcpy(p->cached, cached, sizeof(cached));
			memcpy(p->cache, cache, sizeof(cache));
			he_cs_swap(&p->C, epoch, at);
			trace("i%d swapped: epoch %llu, published %llu", e->a,
			      (unsigned long long)epoch, at.ms);
		} else if (p->up && p->inc == e->c) {
			p->up = false;
			push(W.now + below(1000 * MS), EV_RESTART, e->a, 0, 0,
			     -1);
		}
		return;
	case EV_CHECKPOINT:
		checkpoint();
		push(W.now + CK_MS * MS, EV_CHECKPOINT, 0, 0, 0, -1);
		return;
	case EV_HEAL: heal(); return;
	}
}

bool sim_run(unsigned long long seed, bool tr, sim_report *rep)
{
	memset(&W, 0, sizeof(W));
	memset(rep, 0, sizeof(*rep));
	W.rep = rep;
	W.trace = tr;
	rng = seed * 0x2545f4914f6cdd1dull;
	W.tokens = true;
	W.lost = -1;
	W.n = 3 + (int)below(MAX_INST - 2);
	W.pipelined = chance(0.5);
	W.batch = 1 + (unsigned)below(BATCH_MAX);
	W.p_slow = chance(0.5) ? 0.02 * (double)below(4) : 0;
	W.p_dup = chance(0.5) ? 0.01 * (double)below(6) : 0;
	W.fault_ms = 50 + (double)below(400);
	W.heal_at = (5000 + below(15000)) * MS;
	/* A deployment that applied before: the position is recorded. */
	W.pg.progress = true;
	for (int i = 0; i < W.n; i++)
		boot(i);
	push(0, EV_APPEND, 0, 0, 0, -1);
	push((uint64_t)W.fault_ms * MS, EV_FAULT, 0, 0, 0, -1);
	push(0, EV_CHECKPOINT, 0, 0, 0, -1);
	push(W.heal_at, EV_HEAL, 0, 0, 0, -1);
	append(); /* never an empty stream */
	while (W.nheap && !W.failed) {
		event e = pop();
		if (e.t == W.now && ++W.same_time > 100000) {
			fail("livelock: 100000 steps at %.3fs", W.now / 1e9);
			break;
		}
		if (e.t != W.now)
			W.same_time = 0;
		W.now = e.t;
		rep->steps++;
		handle(&e);
		if (!W.healed || W.failed)
			continue;
		if (!W.converged_at && converged())
			W.converged_at = W.now;
		else if (W.converged_at && !converged())
			fail("converged at %.3fs, then diverged",
			     W.converged_at / 1e9);
		if (W.converged_at && W.now > W.converged_at + LEASE_MS * MS)
			break; /* and stayed so for a lease */
		if (!W.converged_at && W.now > W.heal_at + BOUND_MS * MS) {
			int g = 0;
			while (
			    g < SIM_GAMES - 1 &&
			    (!W.touched[g] ||
			     (W.rd.lobby[g].present &&
			      W.rd.lobby[g].row.status == W.pg.rows[g].status &&
			      W.rd.lobby[g].row.health == W.pg.rows[g].health)))
				g++;
			fail("not converged %u ms after the heal (applied "
			     "%llu, offset %llu, stream %u; game %d: row "
			     "%d/%d, last snapshot %d/%d from %llu)",
			     BOUND_MS, W.pg.applied.ms, W.rd.offset.ms,
			     W.nstream, g, W.pg.rows[g].status,
			     W.pg.rows[g].health, W.rd.lobby[g].row.status,
			     W.rd.lobby[g].row.health, W.rd.lobby[g].source.ms);
		}
	}
	rep->virtual_ms = W.now / MS;
	return !W.failed;
}
