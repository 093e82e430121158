/*
 * he_batch.c -- XREAD COUNT from the sizes of recent batches.
 */
#include "he_batch.h"

static unsigned clamp(size_t v, unsigned max)
{
	return v < 1 ? 1 : v > max ? max : (unsigned)v;
}

/* Entries that half the budget holds at the current estimate. */
static size_t fit(const he_batch_ctl *b)
{
	return b->per_entry ? b->budget / 2 / b->per_entry : b->max;
}

void he_batch_init(he_batch_ctl *b, unsigned max, size_t budget)
{
	b->max = max ? max : 1;
	b->budget = budget;
	b->count = clamp(HE_BATCH_START, b->max);
	b->per_entry = 0;
}

unsigned he_batch_count(const he_batch_ctl *b)
{
	return b->count;
}

static void learn(he_batch_ctl *b, size_t per)
{
	size_t decayed = b->per_entry - b->per_entry / 4;
	b->per_entry = per > decayed ? per : decayed;
}

void he_batch_observe(he_batch_ctl *b, size_t n, size_t bytes)
{
	if (n == 0)
		return; /* an empty read says nothing about sizes */
	learn(b, (bytes + n - 1) / n);
	/* Grow only after a full read: a short one reached the end. */
	size_t want = n >= b->count ? 2 * (size_t)b->count : b->count;
	size_t f = fit(b);
	b->count = clamp(want < f ? want : f, b->max);
}

void he_batch_overflow(he_batch_ctl *b, size_t complete, size_t bytes)
{
	learn(b, bytes / (complete + 1)); /* the cut entry counts too */
	size_t f = fit(b);
	b->count = clamp(complete < f ? complete : f, b->max);
}
