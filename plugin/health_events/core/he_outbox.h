/*
 * he_outbox.h -- building an he_outbox (ports.h declares the type and
 * he_outbox_clear / he_outbox_free). Used by the core on its thread; an
 * outbox is not shared between threads while it is being built.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_OUTBOX_H
#define HE_OUTBOX_H

#include "ports.h"

/*
 * Grow the arrays so that `more_snapshots` and `more_dead` appends
 * cannot fail. Contents are unchanged either way. 0 or HE_ENOMEM.
 */
int he_outbox_reserve(he_outbox *box, size_t more_snapshots, size_t more_dead);

/*
 * Append a snapshot; the outbox takes ownership of `payload` (malloc()ed)
 * on success only. game_id and source_id stay borrowed. 0 or HE_ENOMEM.
 */
int he_outbox_add_snapshot(he_outbox *box, const char *game_id,
			   size_t game_id_len, const char *source_id,
			   char *payload, size_t payload_len);

/*
 * Append a dead letter: `entry` stays borrowed; the outbox takes
 * ownership of the malloc()ed `reason` on success only.
 * 0 or HE_ENOMEM (nothing appended).
 */
int he_outbox_add_dead(he_outbox *box, const he_stream_entry *entry,
		       char *reason);

/*
 * Set box->last_id; HE_EINVAL (unchanged) when `id` does not fit.
 */
int he_outbox_set_last_id(he_outbox *box, const char *id);

#endif /* HE_OUTBOX_H */
