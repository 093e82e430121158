/* sim_model.c -- see sim_model.h; each function follows its script. */
#include "sim_model.h"

#include "ports.h"

const char *const sim_kind_name[SIM_KINDS] = {
    "container_started", "probe_recovered", "container_exited", "container_oom",
    "probe_failed"};
const char *const sim_health_name[SIM_KINDS + 1] = {
    "", "healthy", "exited", "oom", "probe_failed", "?"};

void sim_row_apply(sim_row *r, uint8_t kind, bool *changed)
{
	static const uint8_t health[SIM_KINDS] = {1, 1, 2, 3, 4};
	*changed = false;
	if (kind == SIM_RECOVERED && r->status == SIM_UNREACHABLE) {
		r->status = SIM_RUNNING;
		*changed = true;
	} else if ((kind == SIM_EXITED || kind == SIM_OOM) &&
		   r->status == SIM_RUNNING) {
		r->status = SIM_UNREACHABLE;
		*changed = true;
	}
	r->health = health[kind];
}

/* ---- schema/003: health_events_lease, _release ------------------------- */

void sim_pg_lease(sim_pg *pg, uint64_t now, uint64_t token, unsigned ms,
		  uint64_t min_epoch, uint64_t *epoch, uint64_t *left_ms)
{
	uint64_t until = now + (uint64_t)ms * 1000000u;
	*left_ms = 0;
	if (!pg->lease) { /* INSERT greatest(1, p_min_epoch) */
		pg->lease = true;
		pg->epoch = min_epoch > 1 ? min_epoch : 1;
		pg->token = token;
		pg->expires = until;
		*epoch = pg->epoch;
		return;
	}
	if (pg->token == token && pg->expires > now) { /* renewed */
		pg->expires = until;
		*epoch = pg->epoch;
	} else if (pg->expires <= now) { /* lapsed: taken, epoch + 1 */
		pg->epoch =
		    pg->epoch + 1 > min_epoch ? pg->epoch + 1 : min_epoch;
		pg->token = token;
		pg->expires = until;
		*epoch = pg->epoch;
	} else { /* held by another */
		*epoch = 0;
		*left_ms = (pg->expires - now + 999999) / 1000000;
	}
}

bool sim_pg_release(sim_pg *pg, uint64_t now, uint64_t token, uint64_t epoch)
{
	if (!pg->lease || pg->token != token || pg->epoch != epoch ||
	    pg->expires <= now)
		return false;
	pg->expires = now;
	return true;
}

/* ---- schema/004: the fenced apply, compare-and-set on the position ------ */

int sim_pg_apply(sim_pg *pg, bool tokens, uint64_t epoch, uint64_t token,
		 he_stream_id after, he_stream_id last, const sim_entry *e,
		 size_t n, sim_row *rows_after)
{
	if (he_stream_id_cmp(last, after) <= 0)
		return HE_EINVAL;
	if (!pg->lease || pg->epoch != epoch ||
	    (tokens && pg->token != token)) /* HE001 */
		return HE_EFENCED;
	/* HE002; no row yet: any p_after is taken, once */
	if (pg->progress && he_stream_id_cmp(pg->applied, after) != 0)
		return HE_EPOSITION;
	pg->progress = true;
	pg->applied = last;
	for (size_t i = 0; i < n; i++) {
		bool changed;
		sim_row_apply(&pg->rows[e[i].game], e[i].kind, &changed);
		if (rows_after)
			rows_after[i] = pg->rows[e[i].game];
	}
	return HE_OK;
}

int sim_pg_position(const sim_pg *pg, he_stream_id *out)
{
	if (!pg->progress)
		return HE_ENOENT;
	*out = pg->applied;
	return HE_OK;
}

/* ---- stream_redis.c: the take-over and commit scripts ------------------ */

/* The fence refuses `epoch`: below it, or (with tokens) at it for
 * another holder. */
static bool refused(const sim_redis *r, bool tokens, uint64_t epoch,
		    uint64_t token)
{
	return epoch < r->fence ||
	       (tokens && epoch == r->fence && token != r->fence_token);
}

static void raise_fence(sim_redis *r, uint64_t epoch, uint64_t token)
{
	if (epoch > r->fence) {
		r->fence = epoch;
		r->fence_token = token;
	}
}

int sim_redis_take_over(sim_redis *r, bool tokens, uint64_t epoch,
			uint64_t token, he_stream_id *saved, uint64_t *fence)
{
	if (refused(r, tokens, epoch, token)) {
		*fence = r->fence;
		return HE_EFENCED;
	}
	raise_fence(r, epoch, token);
	if (!r->has_offset)
		return HE_ENOENT;
	*saved = r->offset;
	return HE_OK;
}

int sim_redis_commit(sim_redis *r, bool tokens, uint64_t epoch, uint64_t token,
		     bool has_expect, he_stream_id expect, he_stream_id last,
		     const sim_pub *pubs, size_t n, uint64_t *fence,
		     bool *has_saved, he_stream_id *saved)
{
	if (refused(r, tokens, epoch, token)) {
		*fence = r->fence;
		return HE_EFENCED;
	}
	if (has_expect != r->has_offset ||
	    (has_expect && he_stream_id_cmp(expect, r->offset) != 0)) {
		*has_saved = r->has_offset;
		*saved = r->offset;
		return HE_EMOVED;
	}
	raise_fence(r, epoch, token);
	for (size_t i = 0; i < n; i++) {
		sim_snap *s = &r->lobby[pubs[i].game];
		s->present = true;
		s->row = pubs[i].row;
		s->source = pubs[i].source;
		s->row_at = pubs[i].row_at;
		r->published++;
	}
	if (!r->has_offset || he_stream_id_cmp(last, r->offset) > 0) {
		r->has_offset = true;
		r->offset = last;
	}
	return HE_OK;
}
