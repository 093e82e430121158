/*
 * he_deadletter.c -- a dead letter's fields: the entry's own (reserved
 * names escaped, an oversized entry cut to its head) and the consumer's.
 */
#include "he_deadletter.h"

#include "he_decoder.h"

#include <stdint.h>
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

/* Append an item: borrowed (off SIZE_MAX) or at buf + off. */
static void add(he_dead_fields *f, const char *p, size_t len, size_t off)
{
	f->off[f->n] = off;
	f->items[f->n++] = (he_dead_item){p, len};
}

/* Append bytes to f->buf (capacity reserved); returns their offset. */
static size_t put(he_dead_fields *f, const char *p, size_t n)
{
	size_t at = f->buf_len;
	memcpy(f->buf + at, p, n);
	f->buf_len += n;
	return at;
}

void he_dead_fields_reset(he_dead_fields *f)
{
	f->n = f->nletters = f->buf_len = 0;
}

int he_dead_fields_add(he_dead_fields *f, const he_stream_entry *e,
		       const char *reason)
{
	size_t bytes;
	bool cut = he_entry_oversized(e, &bytes);

	/* Which items go in: all, or those that start in the first KiB. */
	size_t keep = e->nitems, used = 0;
	if (cut)
		for (keep = 0; keep < e->nitems && keep < HE_DEAD_HEAD_ITEMS &&
			       used < HE_DEAD_HEAD_MAX;
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
	size_t icap = f->cap, ocap = f->off_cap;
	if (he_grow((void **)&f->items, &icap, f->n + 2 * pairs + 8,
		    sizeof(*f->items)) < 0 ||
	    he_grow((void **)&f->off, &ocap, f->n + 2 * pairs + 8,
		    sizeof(*f->off)) < 0 ||
	    he_grow((void **)&f->starts, &f->starts_cap, f->nletters + 1,
		    sizeof(*f->starts)) < 0 ||
	    he_grow((void **)&f->buf, &f->buf_cap, f->buf_len + need, 1) < 0) {
		f->cap = icap < ocap ? icap : ocap;
		return HE_ENOMEM;
	}
	f->cap = icap < ocap ? icap : ocap;

	f->starts[f->nletters++] = f->n;
	size_t left = HE_DEAD_HEAD_MAX;
	for (size_t i = 0; i < 2 * pairs; i++) {
		const char *p = i < keep ? e->items[i] : "";
		size_t len = i < keep ? e->lens[i] : 0; /* odd: empty value */
		if (cut) {
			if (len > left)
				len = left;
			left -= len;
		}
		if (i % 2 == 0 && needs_escape(p, len)) {
			size_t at = put(f, HE_DEAD_ESCAPE, ESC_LEN);
			(void)put(f, p, len);
			add(f, NULL, len + ESC_LEN, at);
		} else {
			add(f, p, len, SIZE_MAX);
		}
	}
	if (cut) {
		char num[24];
		int k = snprintf(num, sizeof(num), "%zu", (e->nitems + 1) / 2);
		add(f, "entry_fields", 12, SIZE_MAX);
		add(f, NULL, (size_t)k, put(f, num, (size_t)k));
		k = snprintf(num, sizeof(num), "%zu", bytes);
		add(f, "entry_bytes", 11, SIZE_MAX);
		add(f, NULL, (size_t)k, put(f, num, (size_t)k));
	}
	add(f, "source_id", 9, SIZE_MAX);
	add(f, e->id, strlen(e->id), SIZE_MAX);
	add(f, "reason", 6, SIZE_MAX);
	add(f, reason, strlen(reason), SIZE_MAX);
	return 0;
}

/* Point the items of [from, to) that live in buf at it (buf may move). */
static void resolve(he_dead_fields *f, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (f->off[i] != SIZE_MAX)
			f->items[i].p = f->buf + f->off[i];
}

void he_dead_fields_letter(he_dead_fields *f, size_t k,
			   const he_dead_item **items, size_t *n)
{
	size_t from = f->starts[k];
	size_t to = k + 1 < f->nletters ? f->starts[k + 1] : f->n;
	resolve(f, from, to);
	*items = f->items + from;
	*n = to - from;
}

int he_dead_fields_build(he_dead_fields *f, const he_stream_entry *e,
			 const char *reason)
{
	he_dead_fields_reset(f);
	int rc = he_dead_fields_add(f, e, reason);
	if (rc == 0)
		resolve(f, 0, f->n);
	return rc;
}

void he_dead_fields_free(he_dead_fields *f)
{
	if (f == NULL)
		return;
	free(f->items);
	free(f->off);
	free(f->starts);
	free(f->buf);
	memset(f, 0, sizeof(*f));
}
