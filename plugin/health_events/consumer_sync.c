/*
 * consumer_sync.c -- taking over and resyncing (DESIGN §13): raise the
 * fence, read the offset Redis holds and the applied position PostgreSQL
 * holds, converge them (he_converge_decide), and where Redis is behind
 * publish again what its lost commits held.
 */
#include "consumer_int.h"

#include "he_consumer_step.h"
#include "he_stream_id.h"

#include <stdio.h>
#include <string.h>

enum sync_end { SYNC_OK, SYNC_AGAIN, SYNC_LOST };

/* Log an offset gap when `from` is older than the stream's first entry. */
static void check_gap(he_consumer *c, const char *from, const char *what)
{
	char first[HE_POSITION_MAX];
	if (he_stream_id_text_cmp(from, "0-0") ==
		0 || /* the beginning: nothing before */
	    he_stream_redis_check_gap(&c->rs, from, first, sizeof(first)) != 1)
		return;
	he_ops_gap(&c->ops);
	LOG(c, APPHOST_LOG_WARN,
	    "saved offset is older than the stream's first entry: entries "
	    "may have been trimmed unread",
	    "stream=%s offset=%s first_entry=%s not_repaired=\"%s\"",
	    c->cfg.stream, from, first, what);
}

/* Commit one outbox of a resync, retrying while Redis fails. */
static enum sync_end sync_commit(he_consumer *c)
{
	he_stream_port port = he_stream_redis_port(&c->rs);
	while (!consumer_stopping(c) && consumer_leading(c)) {
		int r = port.commit(port.ctx, &c->cur.box);
		if (r == HE_OK) {
			consumer_dep_ok(c, DEP_REDIS);
			return SYNC_OK;
		}
		if (r == HE_EFENCED) {
			consumer_fenced(c, "commit", true);
			return SYNC_LOST;
		}
		if (r == HE_EMOVED)
			return SYNC_AGAIN;
		consumer_dep_failed(c, DEP_REDIS, r,
				    he_stream_redis_err(&c->rs));
		consumer_backoff(c);
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
	while (he_stream_id_text_cmp(at, to) < 0) {
		if (consumer_stopping(c) || !consumer_leading(c))
			return SYNC_LOST;
		const he_stream_entry *e;
		size_t n, g = 0;
		int r = he_stream_redis_read_now(&c->rs, at, &e, &n);
		if (r < 0) {
			consumer_dep_failed(c, DEP_REDIS, r,
					    he_stream_redis_err(&c->rs));
			consumer_backoff(c);
			continue;
		}
		while (n > 0 && he_stream_id_text_cmp(e[n - 1].id, to) > 0)
			n--; /* past the applied position: read as usual */
		he_outbox_clear(&c->cur.box);
		if (n == 0) /* the stream holds no more of them */
			r = he_outbox_set_last_id(&c->cur.box, to);
		else if ((r = he_core_repair(c->core, at, e, n, &store,
					     &c->cur.box, &g)) < 0) {
			consumer_dep_failed(c, DEP_PG, r,
					    he_record_store_pg_err(&c->pg));
			consumer_backoff(c);
			continue;
		}
		enum sync_end end = sync_commit(c);
		if (end != SYNC_OK)
			return end;
		snprintf(at, sizeof(at), "%s", c->cur.box.last_id);
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
	he_record_store_pg_set_fence(&c->pg, c->cfg.lease_name, c->epoch);
	(void)he_record_store_pg_reconnected(&c->pg); /* compared now */
	while (!consumer_stopping(c) && consumer_leading(c)) {
		int r = store.position(store.ctx, out, cap);
		if (r == HE_OK || r == HE_ENOENT) {
			consumer_dep_ok(c, DEP_PG);
			return r;
		}
		consumer_dep_failed(c, DEP_PG, r,
				    he_record_store_pg_err(&c->pg));
		consumer_backoff(c);
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
bool consumer_take_over(he_consumer *c, bool resync, bool *diverged)
{
	char saved[HE_POSITION_MAX], applied[HE_POSITION_MAX];
	*diverged = false;
	while (!consumer_stopping(c) && consumer_leading(c)) {
		int r = he_stream_redis_take_over(&c->rs, saved, sizeof(saved));
		if (r == HE_EFENCED) {
			consumer_fenced(c, "take-over", true);
			return false;
		}
		if (r != HE_OK && r != HE_ENOENT) {
			consumer_dep_failed(c, DEP_REDIS, r,
					    he_stream_redis_err(&c->rs));
			consumer_backoff(c);
			continue;
		}
		consumer_dep_ok(c, DEP_REDIS);
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
		consumer_set_offset(c, applied);
		(void)he_core_set_applied(c->core, applied);
		return true;
	}
	return false;
}

/* Resync after a reconnection or a refused write (take_over). */
bool consumer_resync(he_consumer *c)
{
	bool diverged;
	if (!consumer_take_over(c, true, &diverged))
		return false;
	if (diverged) /* what Lobby last got is not what the cache says */
		he_core_reset(c->core);
	return true;
}
