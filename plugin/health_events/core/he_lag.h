/*
 * he_lag.h -- how stale Lobby's view is, in seconds, with no I/O.
 *
 * A stream entry's id carries the milliseconds of Redis's clock when it
 * was added, so its age is Redis's clock now minus those milliseconds:
 * the same clock on both sides, whatever the local clock says. Redis's
 * TIME is sampled with each read and carried forward between reads with
 * the local monotonic clock (a step of either wall clock does not count
 * between samples), so an age stays current while the consumer is held
 * up and cannot ask Redis for anything.
 *
 * he_lag tracks the oldest entry not yet committed: the first of the
 * batch in hand, or after a committed batch that did not reach the end
 * of the stream, its last entry (the next one was added at or after it,
 * so this bounds the next one's age from above until the next read says
 * exactly). A read that reaches the end leaves nothing pending: lag 0.
 *
 * Plain data owned by one thread (the consumer's); no locks.
 */
#ifndef HE_LAG_H
#define HE_LAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct he_lag {
	bool clock_known;      /* a TIME sample was taken */
	uint64_t redis_us;     /* Redis TIME at the sample, microseconds */
	uint64_t mono_ns;      /* local monotonic clock at the sample */
	bool pending;	       /* an entry is read and not committed */
	unsigned long long ms; /* that entry's id milliseconds */
} he_lag;

/* Nothing known, nothing pending (a standby, or a new leader). */
void he_lag_reset(he_lag *l);

/* Redis said TIME = redis_us when the local monotonic clock read mono_ns. */
void he_lag_clock(he_lag *l, uint64_t redis_us, uint64_t mono_ns);

/*
 * A read returned n entries, the first with id milliseconds first_ms;
 * end: the read reached the end of the stream (fewer than asked).
 */
void he_lag_read(he_lag *l, size_t n, unsigned long long first_ms);

/*
 * The batch read last was committed; its last entry had id milliseconds
 * last_ms; end as for he_lag_read.
 */
void he_lag_committed(he_lag *l, bool end, unsigned long long last_ms);

/*
 * Age in seconds at mono_ns of an entry with id milliseconds id_ms, by
 * Redis's clock carried forward: >= 0 (an id ahead of the clock, written
 * with an explicit id, is 0 old), or -1 when no TIME was sampled yet.
 */
double he_lag_age(const he_lag *l, unsigned long long id_ms, uint64_t mono_ns);

/* health_events_lag_seconds at mono_ns: the pending entry's age, else 0. */
double he_lag_seconds(const he_lag *l, uint64_t mono_ns);

#endif
