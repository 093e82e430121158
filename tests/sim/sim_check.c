/*
 * sim_check.c -- the simulation's checker: its own account of what
 * happened (grants, take-overs, uses of each epoch, the rows the stream
 * makes), independent of the models' own checks, and the invariants
 * held against it after every step (see sim.c).
 */
#include "sim_internal.h"

#include <stdio.h>
#include <string.h>

/* ---- the checker --------------------------------------------------------- */

/* An epoch used (a take-over or a write landed) by `token`. */
void check_use(uint64_t epoch, uint64_t token, const char *what)
{
	if (epoch >= MAX_EPOCHS) {
		fail("simulation: epoch %llu beyond the table",
		     (unsigned long long)epoch);
		return;
	}
	if (W.owner[epoch] && W.owner[epoch] != token)
		fail("two instances used epoch %llu (tokens %llu, %llu: %s)",
		     (unsigned long long)epoch,
		     (unsigned long long)W.owner[epoch],
		     (unsigned long long)token, what);
	W.owner[epoch] = token;
	if (epoch > W.top_epoch)
		W.top_epoch = epoch;
}

/*
 * The rules of DESIGN §10 as each instance's behaviour, checked on what it
 * sends (like the deadline below: even where the fences would refuse):
 * an epoch a write was refused for is written with no more; a lease is
 * asked for above every fence and refused epoch seen; a standby contends
 * only while its consumer had answers from both servers within lease/2.
 */
static void check_write_rules(const inst *p, uint64_t epoch, const char *what)
{
	if (epoch && epoch <= p->refused)
		fail("fence: %s with epoch %llu after a write with epoch %llu "
		     "was refused",
		     what, (unsigned long long)epoch,
		     (unsigned long long)p->refused);
}

void check_ask_rules(const inst *p, uint64_t now, uint64_t min_epoch)
{
	uint64_t seen = p->fence_seen > p->refused ? p->fence_seen : p->refused;
	if (seen && min_epoch <= seen)
		fail("fence: a lease asked for from epoch %llu, not above the "
		     "fence or refused epoch %llu it saw",
		     (unsigned long long)min_epoch, (unsigned long long)seen);
	for (int s = 0; s < 2 && !p->L.epoch; s++) {
		const char *server = s == PG ? "postgres" : "redis";
		if (!p->answered[s])
			fail("contend: a standby asked for the lease before "
			     "%s ever answered",
			     server);
		else if (now - p->answered[s] >= LEASE_MS / 2 * MS)
			fail("contend: a standby asked for the lease with no "
			     "answer from %s for %.3fs",
			     server, (now - p->answered[s]) / 1e9);
	}
}

/* A leader whose lease lapsed in PostgreSQL's time writes nothing: every
 * write is sent before the expiry PostgreSQL granted its epoch. */
void check_deadline(const inst *p, uint64_t epoch, const char *what)
{
	check_write_rules(p, epoch, what);
	uint64_t until = 0;
	for (int k = 0; epoch < MAX_EPOCHS && k < 2; k++)
		if (W.grantee[epoch][k] == p->token)
			until = W.granted[epoch][k];
	if (W.now >= until)
		fail("deadline: %s with epoch %llu sent at %.3fs, after its "
		     "lease lapsed in PostgreSQL (%.3fs)",
		     what, (unsigned long long)epoch, W.now / 1e9, until / 1e9);
}

static bool rows_equal(const sim_row *a, const sim_row *b)
{
	for (int g = 0; g < SIM_GAMES; g++)
		if (a[g].status != b[g].status || a[g].health != b[g].health)
			return false;
	return true;
}

/* The rows are the stream's entries up to the applied position, each
 * applied once, in order. */
void check_rows(void)
{
	uint32_t k = W.pg.progress ? after_index(W.pg.applied) : 0;
	if (!rows_equal(W.pg.rows, W.model[k]))
		fail("rows differ from the model of the first %u entries", k);
}

/* Healed: both positions at the stream's end, the rows its model, each
 * touched game's last snapshot its row. */
bool converged(void)
{
	he_stream_id end = id_of(W.nstream - 1);
	if (!W.nstream || !W.pg.progress ||
	    he_stream_id_cmp(W.pg.applied, end) != 0 || !W.rd.has_offset ||
	    he_stream_id_cmp(W.rd.offset, end) != 0 ||
	    !rows_equal(W.pg.rows, W.model[W.nstream]))
		return false;
	/* Publishing again while Redis was ahead ends only with the last
	 * of those commits: the lobby goes back and forth until then. */
	if (W.reapplying && he_stream_id_cmp(W.republished, end) < 0)
		return false;
	for (int g = 0; g < SIM_GAMES && !W.rep->lobby_unchecked; g++)
		if (W.touched[g] &&
		    (!W.rd.lobby[g].present ||
		     W.rd.lobby[g].row.status != W.pg.rows[g].status ||
		     W.rd.lobby[g].row.health != W.pg.rows[g].health))
			return false;
	return true;
}

/*
 * A known gap of DESIGN §13, not modelled away but told: while Redis is
 * ahead of the applied position, the entries applied again are published
 * again below an offset that does not move, so nothing orders those
 * commits. A take-over in the middle (a new leader, or a resync after a
 * refused commit) finds the applied position past what was published
 * again and resumes there: the batch applied but not committed is never
 * published again (seed 779 found it); and a late copy or slow delivery
 * of an older such commit passes the offset check and lands after a newer
 * one (seeds 976, 5213). Either way Lobby keeps an older snapshot. Such a
 * run still checks everything else; its lobby is not compared, and the
 * summary counts it.
 */
void note_reapply(void)
{
	bool ahead = W.pg.progress && W.rd.has_offset &&
		     he_stream_id_cmp(W.pg.applied, W.rd.offset) < 0;
	if (ahead && W.reapplying &&
	    he_stream_id_cmp(W.pg.applied, W.republished) > 0)
		W.rep->lobby_unchecked = true;
	if (ahead && !W.reapplying)
		W.republished = W.pg.applied;
	W.reapplying = ahead;
}

/*
 * A batch's commit that moves the offset leaves, for every game its
 * entries touched, Lobby's last snapshot equal to that game's row as of
 * the batch's last entry: published now, or suppressed (D4) because it
 * was already so. A dedupe cache that says what Lobby never got fails
 * here, at once.
 */
void check_published(const msg *m, bool moved)
{
	if (!m->batch || !moved || W.rep->lobby_unchecked)
		return;
	uint32_t lo = m->has_from ? after_index(m->from) : 0,
		 hi = after_index(m->to);
	for (uint32_t k = lo; k < hi; k++) {
		uint8_t g = W.stream[k].game;
		const sim_row *want = &W.model[hi][g];
		if (W.rd.lobby[g].present && W.rd.lobby[g].row_at > hi)
			continue; /* a newer row already (a repair's) */
		if (!W.rd.lobby[g].present ||
		    W.rd.lobby[g].row.status != want->status ||
		    W.rd.lobby[g].row.health != want->health)
			fail("dedupe: after the commit to %llu, game %d's last "
			     "snapshot is %d/%d, its row %d/%d",
			     m->to.ms, g, W.rd.lobby[g].row.status,
			     W.rd.lobby[g].row.health, want->status,
			     want->health);
	}
}

/* No write with epoch e lands after a higher epoch's take-over (in
 * PostgreSQL: its grant) in the same store's history. */
void check_landed(const msg *m, const char *what, uint64_t floor,
		  const char *floor_what)
{
	if (m->epoch < floor)
		fail("%s with epoch %llu landed after %s with epoch %llu", what,
		     (unsigned long long)m->epoch, floor_what,
		     (unsigned long long)floor);
	check_use(m->epoch, m->token, what);
}
