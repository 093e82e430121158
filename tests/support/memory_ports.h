/*
 * memory_ports.h -- in-memory implementations of the he_record_store and
 * he_stream_port ports (plugin/health_events/core/ports.h) for the unit
 * suite, with switches for failures and hooks that play a concurrent
 * flow. Not thread-safe: one test thread drives each instance.
 */
#ifndef TEST_MEMORY_PORTS_H
#define TEST_MEMORY_PORTS_H

#include "ports.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- record store ---------------------------------------------------- */

typedef struct mem_store mem_store;

/* New empty store; NULL on ENOMEM. Free with mem_store_free (NULL ok). */
mem_store *mem_store_new(void);
void mem_store_free(mem_store *s);

/* The port; ctx is s. Valid while s lives. */
he_record_store mem_store_port(mem_store *s);

/*
 * Insert or replace the row of a NUL-terminated game id (use
 * mem_store_put_n for binary ids). 0 or HE_ENOMEM.
 */
int mem_store_put(mem_store *s, const char *game_id, const char *status,
		  const char *engine_health, int current_turn);
int mem_store_put_n(mem_store *s, const char *game_id, size_t len,
		    const char *status, const char *engine_health,
		    int current_turn);
/* Set only the status of an existing row; false when there is none. */
bool mem_store_set_status(mem_store *s, const char *game_id,
			  const char *status);
/* Delete a row (never inside an apply); false when there is none. */
bool mem_store_delete(mem_store *s, const char *game_id);
/* Copy a row out; false when there is none. */
bool mem_store_get(mem_store *s, const char *game_id, he_row *out);
bool mem_store_get_n(mem_store *s, const char *game_id, size_t len,
		     he_row *out);
/* Number of rows. */
size_t mem_store_rows(mem_store *s);

/* apply returns `code` (!= 0) before touching anything; 0 disables. */
void mem_store_fail(mem_store *s, int code);
/*
 * apply performs ops[0..k) and then fails with `code`, rolling every
 * change back (all or nothing). k < 0 disables.
 */
void mem_store_fail_after(mem_store *s, int k, int code);

/*
 * Every apply holding an op on game_id (up to 8 games) rolls back and
 * fails with `code` (HE_EDATA: a data error; refusal() then names the
 * game, on two lines).
 */
void mem_store_refuse(mem_store *s, const char *game_id, int code);

/*
 * A concurrent flow. `before_apply` runs at the start of every apply
 * (op == NULL, index == -1); `on_conflict` runs for a status op whose
 * CAS check just failed, before the health-only fallback writes and the
 * row is read back (the window D5 is about).
 */
typedef void (*mem_store_hook)(mem_store *s, const he_mutation *op, long index,
			       void *ud);
void mem_store_set_before_apply(mem_store *s, mem_store_hook fn, void *ud);
void mem_store_set_on_conflict(mem_store *s, mem_store_hook fn, void *ud);

/* Number of apply calls, and of ops they received in total. */
size_t mem_store_apply_calls(mem_store *s);
size_t mem_store_ops_seen(mem_store *s);
/*
 * The ops of the last apply that got past the failure switch (shallow
 * copies: their strings borrow from the caller of apply). NULL if none.
 */
const he_mutation *mem_store_last_ops(mem_store *s, size_t *n);

/*
 * The applied position (DESIGN §13), "" when none is stored yet: apply
 * is a compare-and-set on it (HE_EPOSITION when span->after differs; any
 * span->after while none), as schema/004 is. set_position plays a store
 * that lost its last writes (or an operator); NULL or "" clears it.
 */
const char *mem_store_position(mem_store *s);
void mem_store_set_position(mem_store *s, const char *position);

/* ---- stream port ------------------------------------------------------ */

typedef struct mem_snapshot {
	char *game_id;
	size_t game_id_len;
	char *source_id;
	char *payload;
	size_t payload_len;
} mem_snapshot;

typedef struct mem_dead {
	char *id;
	char *reason;
	size_t nitems;
	char **items;
	size_t *lens;
} mem_dead;

/* One committed outbox, deep-copied. */
typedef struct mem_commit {
	mem_snapshot *snapshots;
	size_t nsnapshots;
	mem_dead *dead;
	size_t ndead;
	char last_id[48];
} mem_commit;

typedef struct mem_stream mem_stream;

/* New empty stream side; NULL on ENOMEM. mem_stream_free(NULL) is ok. */
mem_stream *mem_stream_new(void);
void mem_stream_free(mem_stream *s);
he_stream_port mem_stream_port(mem_stream *s);

/* commit returns `code` (!= 0) and records nothing; 0 disables. */
void mem_stream_fail(mem_stream *s, int code);
/* The saved offset, "" when none. */
const char *mem_stream_offset(mem_stream *s);

size_t mem_stream_commits(mem_stream *s);
/* Commit i (0-based), or NULL. Owned by s. */
const mem_commit *mem_stream_commit_at(mem_stream *s, size_t i);
/* Snapshots over all commits. */
size_t mem_stream_snapshots(mem_stream *s);

#endif /* TEST_MEMORY_PORTS_H */
