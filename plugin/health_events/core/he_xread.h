/*
 * he_xread.h -- an XREAD reply (one stream) as he_stream_entry items,
 * without copies and without I/O: the entries point into the reply.
 */
#ifndef HE_XREAD_H
#define HE_XREAD_H

#include "ports.h"

#include <hiredis/hiredis.h>

/* Scratch arrays reused from one reply to the next. */
typedef struct he_xread_entries {
	he_stream_entry *entries;
	size_t entries_cap;
	const char **items; /* flat field items of all entries */
	size_t *lens;
	size_t items_cap;
} he_xread_entries;

/*
 * Parse `rep` (nil: none, BLOCK ran out or CLIENT UNBLOCK) into b->entries
 * and *n; they borrow the reply's strings and stay valid while it lives
 * and b is not parsed into again. A deleted entry's nil fields read as an
 * entry without items. 0, HE_EPROTO for an unexpected shape (err says
 * where), or HE_ENOMEM.
 */
int he_xread_parse(he_xread_entries *b, const redisReply *rep, size_t *n,
		   char *err, size_t errlen);

/* Free the scratch arrays (the struct may be parsed into again). */
void he_xread_free(he_xread_entries *b);

#endif
