/*
 * he_deadletter.c -- a dead letter's fields: the entry's own (reserved
 * names escaped, an oversized entry cut to its head) and the consumer's.
 */
#include "he_deadletter.h"

#include "he_decoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESC_LEN (sizeof(HE_DEAD_ESCAPE) - 1)

static const char *const reserved[] = {"source_id", "reason", "entry_fields",
				       "entry_bytes"};

static bool needs_escape(const char *p, size_t n)
{
	if (n >= ESC_LEN && memcmp(p, HE_DEAD_ESCAPE, ESC_LEN) == 0)
		return true;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == n && memcmp(reserved[i], p, n) == 0)
			return true;
	return false;
}

static void add(he_dead_fields *f, const char *p, size_t len)
{
	f->items[f->n++] = (he_dead_item){p, len};
}

/* Append bytes to f->buf at *at (capacity reserved by the caller). */
static const char *put(he_dead_fields *f, size_t *at, const char *p, size_t n)
{
	char *dst = f->buf + *at;
	memcpy(dst, p, n);
	*at += n;
	return dst;
}

int he_dead_fields_build(he_dead_fields *f, const he_stream_entry *e,
			 const char *reason)
{
	size_t bytes;
	bool cut = he_entry_oversized(e, &bytes);

	/* Which items go in: all, or those that start in the first KiB. */
	size_t keep = e->nitems, used = 0;
	if (cut)
		for (keep = 0; keep < e->nitems && used < HE_DEAD_HEAD_MAX;
		     keep++)
			used += e->lens[keep];
	size_t pairs = (keep + 1) / 2;

	/* Scratch: two numbers and the escaped names (a cut name may turn
	 * into a reserved one: count each kept name escaped then). */
	size_t need = 2 * 24;
	if (cut)
		need += HE_DEAD_HEAD_MAX + pairs * ESC_LEN;
	else
		for (size_t i = 0; i < keep; i += 2)
			if (needs_escape(e->items[i], e->lens[i]))
				need += ESC_LEN + e->lens[i];
	if (he_grow((void **)&f->items, &f->cap, 2 * pairs + 8,
		    sizeof(*f->items)) < 0 ||
	    he_grow((void **)&f->buf, &f->buf_cap, need, 1) < 0)
		return HE_ENOMEM;

	f->n = 0;
	size_t at = 0, left = HE_DEAD_HEAD_MAX;
	for (size_t i = 0; i < 2 * pairs; i++) {
		const char *p = i < keep ? e->items[i] : "";
		size_t len = i < keep ? e->lens[i] : 0; /* odd: empty value */
		if (cut) {
			if (len > left)
				len = left;
			left -= len;
		}
		if (i % 2 == 0 && needs_escape(p, len)) {
			const char *q = put(f, &at, HE_DEAD_ESCAPE, ESC_LEN);
			(void)put(f, &at, p, len);
			p = q;
			len += ESC_LEN;
		}
		add(f, p, len);
	}
	if (cut) {
		char num[24];
		int k = snprintf(num, sizeof(num), "%zu", (e->nitems + 1) / 2);
		add(f, "entry_fields", 12);
		add(f, put(f, &at, num, (size_t)k), (size_t)k);
		k = snprintf(num, sizeof(num), "%zu", bytes);
		add(f, "entry_bytes", 11);
		add(f, put(f, &at, num, (size_t)k), (size_t)k);
	}
	add(f, "source_id", 9);
	add(f, e->id, strlen(e->id));
	add(f, "reason", 6);
	add(f, reason, strlen(reason));
	return 0;
}

void he_dead_fields_free(he_dead_fields *f)
{
	if (f == NULL)
		return;
	free(f->items);
	free(f->buf);
	memset(f, 0, sizeof(*f));
}
