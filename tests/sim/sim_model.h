/*
 * sim_model.h -- in-memory models of what the servers decide for
 * health_events, written from the scripts themselves:
 *   PostgreSQL: health_events_lease, health_events_lease_release and the
 *     fenced health_events_apply with its compare-and-set on the applied
 *     position and the holder's token (schema/003, 004, 005), and the
 *     rows;
 *   Redis: the take-over and commit scripts of redis_scripts.c (fence,
 *     saved offset, lobby), with the fence holding epoch and token
 *     (`tokens`; false: the epoch alone, as before schema/005 and the
 *     token fence).
 * The simulation (sim.c) runs the core steps against them; test_models.c
 * gives the same inputs to the real servers and compares the answers, so
 * a change to a script or to its model shows.
 *
 * Plain values, no I/O, no allocation: a store's state is copied whole
 * to roll it back.
 */
#ifndef SIM_MODEL_H
#define SIM_MODEL_H

#include "he_stream_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_GAMES 6

/* runtime_records as far as the events touch it. */
enum { SIM_RUNNING, SIM_UNREACHABLE };
typedef struct sim_row {
	uint8_t status; /* SIM_RUNNING or SIM_UNREACHABLE */
	uint8_t health; /* index into sim_health_name, 0: '' */
} sim_row;

/* Five of the seven event types: one of each kind of effect. */
enum {
	SIM_STARTED,	  /* healthy, no transition */
	SIM_RECOVERED,	  /* healthy, unreachable -> running */
	SIM_EXITED,	  /* exited, running -> unreachable */
	SIM_OOM,	  /* oom, running -> unreachable */
	SIM_PROBE_FAILED, /* probe_failed, no transition */
	SIM_KINDS
};
extern const char *const sim_kind_name[SIM_KINDS];
extern const char *const sim_health_name[SIM_KINDS + 1];

typedef struct sim_entry {
	he_stream_id id;
	uint8_t game, kind;
} sim_entry;

/* One entry applied to its row (DESIGN §6): *changed when the status
 * moved now. */
void sim_row_apply(sim_row *r, uint8_t kind, bool *changed);

/* ---- PostgreSQL ---------------------------------------------------- */

typedef struct sim_pg {
	bool lease; /* the lease row exists */
	uint64_t epoch, token, expires;
	bool progress; /* the progress row exists */
	he_stream_id applied;
	sim_row rows[SIM_GAMES];
} sim_pg;

/* health_events_lease at the database's time `now`: *epoch the caller
 * holds after it, 0: another does (*left its ms left). */
void sim_pg_lease(sim_pg *pg, uint64_t now, uint64_t token, unsigned ms,
		  uint64_t min_epoch, uint64_t *epoch, uint64_t *left_ms);
/* health_events_lease_release: whether the caller still held it. */
bool sim_pg_release(sim_pg *pg, uint64_t now, uint64_t token, uint64_t epoch);
/*
 * health_events_apply of e[0..n) following `after`, ending at `last`:
 * HE_OK (rows_after[i] the row after entry i; may be NULL), HE_EFENCED
 * (HE001: the epoch is not the lease's, or with `tokens`, as
 * schema/005 has it, the lease row does not hold `token` too),
 * HE_EPOSITION (HE002) or HE_EINVAL (22023: last not after after);
 * nothing written on a refusal.
 */
int sim_pg_apply(sim_pg *pg, bool tokens, uint64_t epoch, uint64_t token,
		 he_stream_id after, he_stream_id last, const sim_entry *e,
		 size_t n, sim_row *rows_after);
/* The applied position: HE_OK or HE_ENOENT. */
int sim_pg_position(const sim_pg *pg, he_stream_id *out);

/* ---- Redis ------------------------------------------------------------- */

typedef struct sim_snap {
	bool present;
	sim_row row;
	he_stream_id source;
	uint32_t row_at; /* as sim_pub's */
} sim_snap;

typedef struct sim_redis {
	uint64_t fence, fence_token; /* 0: no fence key */
	bool has_offset;
	he_stream_id offset;
	sim_snap lobby[SIM_GAMES]; /* each game's last snapshot */
	uint64_t published;	   /* snapshots XADDed, ever */
} sim_redis;

/* One snapshot of a commit. */
typedef struct sim_pub {
	uint8_t game;
	sim_row row;
	he_stream_id source;
	uint32_t row_at; /* the row after this many entries (the checker's) */
} sim_pub;

/*
 * The take-over script: HE_OK (*saved), HE_ENOENT (no offset) or
 * HE_EFENCED (*fence: the fence it met).
 */
int sim_redis_take_over(sim_redis *r, bool tokens, uint64_t epoch,
			uint64_t token, he_stream_id *saved, uint64_t *fence);
/*
 * The commit script: the batch follows the saved offset `expect`
 * (has_expect false: none) and moves it to `last` (never lower): HE_OK,
 * HE_EFENCED (*fence), or HE_EMOVED (*has_saved, *saved: what it holds).
 */
int sim_redis_commit(sim_redis *r, bool tokens, uint64_t epoch, uint64_t token,
		     bool has_expect, he_stream_id expect, he_stream_id last,
		     const sim_pub *pubs, size_t n, uint64_t *fence,
		     bool *has_saved, he_stream_id *saved);

#endif
