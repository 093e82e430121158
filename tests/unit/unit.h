/*
 * unit.h -- shared fixture and entry builders for the unit suite.
 */
#ifndef TEST_UNIT_H
#define TEST_UNIT_H

#include "core.h"
#include "index_params.h"
#include "memory_ports.h"
#include "mock_host.h"

#include <stddef.h>

#define B_MAX	32 /* entries per test batch */
#define B_ITEMS 12 /* field items per entry */

/* A batch of hand-made stream entries with ids "100-0", "100-1", ... */
typedef struct batch {
	he_stream_entry e[B_MAX];
	const char *items[B_MAX][B_ITEMS];
	size_t lens[B_MAX][B_ITEMS];
	char ids[B_MAX][32];
	size_t n;
} batch;

/* Empty the batch (ids restart at base-0). */
void b_init(batch *b, unsigned base);
/* Append {game_id, event_type}; returns the entry index. */
size_t b_add(batch *b, const char *game_id, const char *event_type);
/* Append an entry of `nitems` C strings given as varargs. */
size_t b_fields(batch *b, size_t nitems, ...);
/* Replace item `item` of entry `i` with p[0..len) (borrowed). */
void b_set(batch *b, size_t i, size_t item, const char *p, size_t len);

/* One fixture per test (Criterion runs each test in its own process). */
typedef struct fixture {
	mock_host *mh;
	mem_store *ms;
	mem_stream *stream;
	he_core *core;
	he_outbox box;
	he_record_store store;
	he_entry_report reps[B_MAX];
} fixture;

extern fixture fx;

void fx_setup(void);
void fx_teardown(void);
/* Clear the outbox and process the batch; returns he_core_process's rc. */
int fx_run(batch *b);
/* Snapshot payload for game `g` at index k of the current outbox, or NULL. */
const char *fx_payload(size_t k);
/* Expected payload for a row, built by hand (not by he_snapshot). */
const char *expect_json(char *buf, size_t cap, const char *game_id,
			const char *status, const char *health, int turn);

#endif
