/*
 * he_decoder.h -- decode one runtime:health_events entry (DESIGN §4,
 * §6 step 1). No I/O, no allocation; any thread.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_DECODER_H
#define HE_DECODER_H

#include "he_events.h"
#include "ports.h"

#define HE_GAME_ID_MAX 256   /* bytes; game_id must be 1..256 */
#define HE_FIELD_MAX   65536 /* bytes; longest field name or value */
#define HE_REASON_MAX  192   /* bytes with NUL; longest rejection reason */
#define HE_ECHO_MAX    64    /* bytes of an untrusted value echoed back */
/* An entry over either limit is oversized: dead-lettered cut down. */
#define HE_ENTRY_FIELDS_MAX 256		/* field/value pairs */
#define HE_ENTRY_BYTES_MAX  (128 << 10) /* every name and value together */

typedef struct he_decoded {
	const he_event_type *type; /* static table row */
	const char *game_id;	   /* borrowed from the entry; valid UTF-8 */
	size_t game_id_len;	   /* 1..HE_GAME_ID_MAX, no NUL byte */
} he_decoded;

/*
 * Decode entry `e`. Returns 0 and fills *out, or HE_EINVAL and writes a
 * NUL-terminated reason naming the problem (and an echo of the value,
 * truncated to HE_ECHO_MAX bytes with control bytes escaped) into
 * reason[0..HE_REASON_MAX). Rules: at most HE_ENTRY_FIELDS_MAX fields;
 * an even number of items; game_id and
 * event_type present once; game_id 1..HE_GAME_ID_MAX bytes of valid
 * UTF-8 without NUL; event_type in the table; no field name or value
 * longer than HE_FIELD_MAX; at most HE_ENTRY_BYTES_MAX bytes in all;
 * unknown fields ignored. out and reason are
 * owned by the caller; pointers in *out borrow from `e`.
 */
int he_decode(const he_stream_entry *e, he_decoded *out,
	      char reason[HE_REASON_MAX]);

/*
 * true when `e` has more than HE_ENTRY_FIELDS_MAX fields (2 x items, an
 * odd one counting whole) or more than HE_ENTRY_BYTES_MAX bytes of names
 * and values; *bytes (may be NULL) gets the byte total either way.
 */
bool he_entry_oversized(const he_stream_entry *e, size_t *bytes);

#endif /* HE_DECODER_H */
