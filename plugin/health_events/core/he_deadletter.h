/*
 * he_deadletter.h -- the fields of dead letters, as the stream adapter
 * XADDs them. No I/O; the builder is used by one thread at a time.
 *
 * A dead letter is the entry's own fields, then the consumer's:
 * `source_id` (the input entry id) and `reason`. The consumer's names are
 * reserved: an entry field named `source_id`, `reason`, `entry_fields` or
 * `entry_bytes`, or whose name starts with `orig_`, is kept as `orig_`
 * followed by its name (so `reason` -> `orig_reason`, `orig_x` ->
 * `orig_orig_x`: one `orig_` off gives the entry's name back). A reader
 * can trust that the consumer's fields are the only ones of their names.
 *
 * An oversized entry (he_entry_oversized) is never copied whole: its
 * first HE_DEAD_HEAD_MAX bytes of names and values, in at most
 * HE_DEAD_HEAD_ITEMS items (the field where the cut falls is cut, values
 * binary as they came; the item cap keeps a letter of empty fields small
 * enough for the commit script's unpack), then `entry_fields` (its
 * number of fields) and `entry_bytes` (its bytes of names and values),
 * then `source_id` and `reason`.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_DEADLETTER_H
#define HE_DEADLETTER_H

#include "ports.h"

#define HE_DEAD_HEAD_MAX   1024 /* bytes of an oversized entry kept */
#define HE_DEAD_HEAD_ITEMS 64	/* and at most this many of its items */
#define HE_DEAD_ESCAPE	   "orig_"

/* One name or value: borrowed from the entry, or in the builder. */
typedef struct he_dead_item {
	const char *p;
	size_t len;
} he_dead_item;

/*
 * The fields of the dead letters of one commit: items[0..n) is every
 * letter's name, value, name, value..., letter k from starts[k]. Reusable
 * scratch; zero-initialise, free with he_dead_fields_free.
 */
typedef struct he_dead_fields {
	he_dead_item *items;
	size_t n, cap;
	size_t *off; /* per item: its offset in buf, or SIZE_MAX: borrowed */
	size_t off_cap;
	size_t *starts; /* first item of each letter */
	size_t nletters, starts_cap;
	char *buf; /* escaped names and numbers of every letter */
	size_t buf_len, buf_cap;
} he_dead_fields;

/* Forget every letter (keeps the scratch). */
void he_dead_fields_reset(he_dead_fields *f);

/*
 * Append the dead letter of entry `e` (`reason` NUL-terminated): an even
 * number of items, borrowing from `e` and `reason`. 0 or HE_ENOMEM
 * (nothing appended).
 */
int he_dead_fields_add(he_dead_fields *f, const he_stream_entry *e,
		       const char *reason);

/*
 * Letter k (< f->nletters): its items and their count. Valid until the
 * next add, reset or free.
 */
void he_dead_fields_letter(he_dead_fields *f, size_t k,
			   const he_dead_item **items, size_t *n);

/* reset + add: one letter, in f->items[0..f->n). 0 or HE_ENOMEM. */
int he_dead_fields_build(he_dead_fields *f, const he_stream_entry *e,
			 const char *reason);

/* Free the scratch and zero it; NULL is a no-op. */
void he_dead_fields_free(he_dead_fields *f);

#endif /* HE_DEADLETTER_H */
