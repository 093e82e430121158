/*
 * he_snapshot.h -- the runtime_snapshot_update payload (DESIGN §6.4):
 *
 *   {"game_id":"g1","runtime_status":"engine_unreachable",
 *    "engine_health_summary":"oom","current_turn":7,
 *    "player_turn_stats":null}
 *
 * (one line, no spaces). Fixed key order, nothing from the clock: the
 * same row gives the same bytes. Strings are JSON-escaped: `"` and `\`
 * backslashed, \b \f \n \r \t, other control bytes \u00XX; well-formed
 * UTF-8 passes through as is, a malformed byte becomes \ufffd.
 * Any thread.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_SNAPSHOT_H
#define HE_SNAPSHOT_H

#include "ports.h"

/*
 * Exact payload length (without NUL) for game_id[0..len) and `row`.
 */
size_t he_snapshot_len(const char *game_id, size_t game_id_len,
		       const he_row *row);

/*
 * Write the payload into dst, which has at least
 * he_snapshot_len(...) + 1 bytes; NUL-terminates. Returns the length.
 */
size_t he_snapshot_write(char *dst, const char *game_id, size_t game_id_len,
			 const he_row *row);

/*
 * Build the payload into a fresh malloc()ed, NUL-terminated buffer the
 * caller free()s: returns 0 with *out and *out_len, or HE_ENOMEM.
 */
int he_snapshot_build(const char *game_id, size_t game_id_len,
		      const he_row *row, char **out, size_t *out_len);

#endif /* HE_SNAPSHOT_H */
