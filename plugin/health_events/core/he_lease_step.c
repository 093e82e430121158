/* he_lease_step.c -- see he_lease_step.h. */
#include "he_lease_step.h"

#define MS 1000000ull

const char *he_lease_why_name(he_lease_why w)
{
	static const char *const names[] = {
	    "none",  "fenced", "renew_failed", "lapsed",
	    "taken", "silent", "stopping",
	};
	return (unsigned)w < sizeof(names) / sizeof(names[0]) ? names[w] : "?";
}

void he_lease_sm_init(he_lease_sm *s, unsigned lease_ms)
{
	*s = (he_lease_sm){.t = he_lease_timing_for(lease_ms)};
	s->heard_ms = lease_ms / 2;
	s->aside_ms = lease_ms;
}

/* Heard within heard_ms of now (a stamp after now is fresh). */
static bool fresh(const he_lease_sm *s, uint64_t now, uint64_t at)
{
	return at && (at >= now || now - at < s->heard_ms * MS);
}

bool he_lease_sm_able(const he_lease_sm *s, uint64_t now)
{
	return fresh(s, now, s->heard[HE_HEARD_REDIS]) &&
	       fresh(s, now, s->heard[HE_HEARD_PG]);
}

uint64_t he_lease_sm_writable(const he_lease_sm *s, uint64_t now)
{
	return s->epoch && s->fenced != s->epoch && now < s->valid_until &&
		       he_lease_sm_able(s, now)
		   ? s->epoch
		   : 0;
}

/* Leadership ends; the epoch is let go at the next step. */
static void lose(he_lease_sm *s, he_lease_why why)
{
	s->news.lost = s->epoch;
	s->news.why = why;
	s->release = s->epoch;
	s->epoch = 0;
	s->valid_until = 0;
	s->fenced = 0;
}

he_lease_next he_lease_sm_next(he_lease_sm *s, uint64_t now)
{
	he_lease_next n = {.what = HE_LEASE_DO_WAIT, .at_ns = UINT64_MAX};
	if (s->epoch && s->stop)
		lose(s, HE_LEASE_WHY_STOPPING);
	else if (s->epoch && s->fenced == s->epoch) {
		lose(s, HE_LEASE_WHY_FENCED);
		s->next_ns = now + s->t.poll_ms * MS;
	} else if (s->epoch && now >= s->next_ns && !he_lease_sm_able(s, now)) {
		/* Leadership is the ability to do the work: at the renewal,
		 * let it go to one that can, and do not take it straight
		 * back (writes stopped already: he_lease_sm_writable). */
		lose(s, HE_LEASE_WHY_SILENT);
		s->aside_until = now + s->aside_ms * MS;
	} else if (s->epoch && now >= s->valid_until) {
		lose(s, HE_LEASE_WHY_RENEW_FAILED);
		s->aside_until = now + s->aside_ms * MS;
	}
	if (s->release) {
		n.what = HE_LEASE_DO_RELEASE;
		n.epoch = s->release;
		n.at_ns = now + s->t.call_ms * MS;
		return n;
	}
	if (s->stop)
		return n;
	if (now < s->next_ns) {
		n.at_ns = s->next_ns;
		if (s->epoch && s->valid_until > now &&
		    s->valid_until < n.at_ns) /* step down when it is due */
			n.at_ns = s->valid_until;
		return n;
	}
	if (!s->epoch && (!he_lease_sm_able(s, now) || now < s->aside_until)) {
		s->next_ns = now + s->t.poll_ms * MS;
		n.at_ns = s->next_ns;
		return n;
	}
	n.what = HE_LEASE_DO_ASK;
	n.min_epoch = s->min_epoch;
	n.at_ns = now + s->t.call_ms * MS;
	return n;
}

void he_lease_sm_asked(he_lease_sm *s, uint64_t now, uint64_t sent, int rc,
		       uint64_t got)
{
	uint64_t held = s->epoch;
	if (held && s->fenced == held)
		return; /* fenced meanwhile: the next step steps down */
	if (rc < 0) {
		/* A leader retries at once, within its time. */
		s->next_ns =
		    now + (held ? s->t.renew_ms / 4 : s->t.poll_ms) * MS;
		return;
	}
	if (held && got == held) {
		s->valid_until = sent + s->t.valid_ms * MS;
		s->next_ns = sent + s->t.renew_ms * MS;
		return;
	}
	if (held) {
		lose(s, got ? HE_LEASE_WHY_LAPSED : HE_LEASE_WHY_TAKEN);
		s->release = 0; /* no longer ours to let go */
	}
	if (!got || s->stop || got < s->min_epoch) {
		/* An epoch below what we must ask for (one a write was
		 * refused with, renewed from a row that still names us):
		 * let it lapse now, and ask again for a higher one. */
		if (got)
			s->release = got;
		s->next_ns = now + s->t.poll_ms * MS;
		return;
	}
	s->epoch = got;
	s->fenced = 0;
	s->valid_until = sent + s->t.valid_ms * MS;
	s->next_ns = sent + s->t.renew_ms * MS;
	s->news.acquired = got;
}

void he_lease_sm_released(he_lease_sm *s, uint64_t now, int rc)
{
	(void)now;
	(void)rc;
	s->release = 0;
}

void he_lease_sm_heard(he_lease_sm *s, int which, uint64_t at)
{
	if (which >= 0 && which < HE_HEARD_COUNT && at > s->heard[which])
		s->heard[which] = at;
}

void he_lease_sm_fenced(he_lease_sm *s, uint64_t epoch,
			unsigned long long fence)
{
	/* Strictly above: the fence's own epoch may still be in use; and
	 * never the refused one again (a lease row that still names us
	 * would renew it). */
	if (fence && fence + 1 > s->min_epoch)
		s->min_epoch = fence + 1;
	if (epoch && epoch + 1 > s->min_epoch)
		s->min_epoch = epoch + 1;
	if (epoch && s->epoch == epoch)
		s->fenced = epoch;
}

void he_lease_sm_saw_fence(he_lease_sm *s, unsigned long long fence)
{
	if (!s->epoch && fence && fence + 1 > s->min_epoch)
		s->min_epoch = fence + 1;
}

void he_lease_sm_stop(he_lease_sm *s)
{
	s->stop = true;
}
