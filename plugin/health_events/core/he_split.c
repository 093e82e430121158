/*
 * he_split.c -- isolate refused ops by halving the range in hand.
 */
#include "he_split.h"

void he_split_init(he_split *s, size_t n)
{
	*s = (he_split){.lo = 0, .hi = n, .n = n, .fail_hi = 0};
}

void he_split_range(const he_split *s, size_t *off, size_t *len)
{
	*off = s->lo;
	*len = s->hi - s->lo;
}

bool he_split_more(const he_split *s)
{
	return s->lo < s->n;
}

he_split_step he_split_result(he_split *s, bool refused, size_t *which)
{
	if (!refused) {
		s->lo = s->hi;
		if (s->fail_hi > s->lo) {
			/* The refused op is in ops[lo..fail_hi): bisect on. */
			size_t half = (s->fail_hi - s->lo) / 2;
			s->hi = s->lo + (half ? half : 1);
		} else {
			s->fail_hi = 0;
			s->hi = s->n;
		}
		return he_split_more(s) ? HE_SPLIT_NEXT : HE_SPLIT_DONE;
	}
	if (s->hi - s->lo > 1) {
		s->fail_hi = s->hi;
		s->hi = s->lo + (s->hi - s->lo) / 2;
		return HE_SPLIT_NEXT;
	}
	*which = s->lo;
	s->lo++;
	s->hi = s->n;
	s->fail_hi = 0;
	return HE_SPLIT_REFUSED;
}
