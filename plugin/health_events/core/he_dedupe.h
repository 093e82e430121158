/*
 * he_dedupe.h -- D4: per game, the last engine_health summary this
 * process published, so a repeat is suppressed.
 *
 * An open-addressing hash table keyed by the game id bytes. The known
 * summaries of the event table are interned (a one-byte index per
 * entry); any other summary (written by another flow) is stored after
 * the key in the entry's single allocation. About 16 bytes of table plus
 * one key block per game: 100,000 games take a few MiB.
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

/* Create an empty cache: 0 and *out, or HE_ENOMEM. */
int he_dedupe_new(he_dedupe **out);

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
 * HE_ENOMEM with the cache as it was.
 */
int he_dedupe_set(he_dedupe *d, const char *game_id, size_t len,
		  const char *summary);

/* Drop the game's entry, if any. Never allocates. */
void he_dedupe_remove(he_dedupe *d, const char *game_id, size_t len);

/* Drop every entry (the table keeps its size). */
void he_dedupe_clear(he_dedupe *d);

/* Number of games with an entry. */
size_t he_dedupe_size(he_dedupe *d);

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
 * trailing bytes): HE_EINVAL leaves the cache unchanged, as does
 * HE_ENOMEM. Games already in the cache keep their entry (the running
 * process published later than the exporter).
 */
int he_dedupe_import(he_dedupe *d, const void *buf, size_t len);

#endif /* HE_DEDUPE_H */
