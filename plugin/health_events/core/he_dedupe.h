/*
 * he_dedupe.h -- D4: per game, the last engine_health summary this
 * process published, so a repeat is suppressed.
 *
 * A dense array of 24-byte entries and an open-addressing index of
 * 32-bit entry numbers over it, keyed by the game id bytes. A game id of
 * up to 16 bytes lives inside its entry; a longer one, or a summary
 * outside the event table (written by another flow), in one block of its
 * own. The known summaries are interned (a one-byte index). About 32
 * bytes per game with short ids: 1,000,000 games take 32 MiB.
 *
 * Bounded: the cache never holds more than its byte budget (arrays and
 * blocks, counted as allocated). When a new game would not fit, the
 * game least recently used (CLOCK: a bit set by every lookup and
 * publish, cleared by the sweeping hand) is evicted. An evicted game
 * costs at most one redundant snapshot (D4), never a missed one.
 *
 * Threads: guarded by a uv_rwlock_t, so every function may be called
 * from any thread; lookups take the read lock, changes the write lock.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_DEDUPE_H
#define HE_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct he_dedupe he_dedupe;

/* Byte budget of he_dedupe_new: 1,000,000 games of short ids fit. */
#define HE_DEDUPE_BUDGET (40u << 20)

/* Create an empty cache of HE_DEDUPE_BUDGET: 0 and *out, or HE_ENOMEM. */
int he_dedupe_new(he_dedupe **out);

/*
 * The same with a budget of `max_bytes` (at least 64 KiB is sensible;
 * less still works, holding few games). 0 and *out, or HE_ENOMEM.
 */
int he_dedupe_new_budget(size_t max_bytes, he_dedupe **out);

/* Free the cache and every entry. NULL is a no-op. */
void he_dedupe_free(he_dedupe *d);

/*
 * Copy the last published summary of game_id[0..len) into out
 * (cap bytes, NUL-terminated, truncated to fit) and return true, or
 * return false when the game has no entry.
 */
bool he_dedupe_get(he_dedupe *d, const char *game_id, size_t len, char *out,
		   size_t cap);

/*
 * true when the game has an entry equal to the NUL-terminated summary
 * (the publish test of D4, without copying).
 */
bool he_dedupe_same(he_dedupe *d, const char *game_id, size_t len,
		    const char *summary);

/*
 * Record the NUL-terminated `summary` (interned or copied) as the last
 * one published for game_id[0..len). 0; HE_EINVAL when len is not
 * 1..HE_GAME_ID_MAX or the summary is HE_HEALTH_MAX bytes or longer;
 * HE_ENOMEM, after which the game may have no entry (never a wrong
 * one: a later publish is at worst redundant). A new game may evict
 * others to stay within the budget.
 */
int he_dedupe_set(he_dedupe *d, const char *game_id, size_t len,
		  const char *summary);

/* Drop the game's entry, if any. Never allocates. */
void he_dedupe_remove(he_dedupe *d, const char *game_id, size_t len);

/* Drop every entry (the table keeps its size). */
void he_dedupe_clear(he_dedupe *d);

/* Number of games with an entry. */
size_t he_dedupe_size(he_dedupe *d);

/* Bytes the cache holds now (arrays and blocks), at most its budget. */
size_t he_dedupe_bytes(he_dedupe *d);

/* Games evicted to stay within the budget, since creation. */
size_t he_dedupe_evictions(he_dedupe *d);

/*
 * Serialise every entry into a fresh malloc()ed buffer (*buf, *len) the
 * caller free()s. Format, little-endian: "HEDD", u8 version (1),
 * 3 zero bytes, u32 count, then count x (u16 key_len, key bytes,
 * u16 summary_len, summary bytes). 0 or HE_ENOMEM.
 */
int he_dedupe_export(he_dedupe *d, void **buf, size_t *len);

/*
 * Merge a buffer produced by he_dedupe_export. Everything is checked
 * first (magic, version, reserved bytes, count, every length, no
 * duplicate game, no NUL in a summary, summaries shorter than
 * HE_HEALTH_MAX, game ids valid UTF-8 up to HE_GAME_ID_MAX bytes, no
 * trailing bytes): HE_EINVAL leaves the cache unchanged; HE_ENOMEM may
 * leave part of the buffer merged. Games already in the cache keep their entry (the running
 * process published later than the exporter); beyond the budget, games
 * are evicted as by he_dedupe_set.
 */
int he_dedupe_import(he_dedupe *d, const void *buf, size_t len);

#endif /* HE_DEDUPE_H */
