/*
 * core.h -- the health_events decision core: DESIGN §6 applied to a batch
 * of stream entries, with no I/O of its own (storage through the ports of
 * ports.h, logging through the host's services table).
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_CORE_H
#define HE_CORE_H

#include "ports.h"

#include <apphost/component.h>

/* What happened to one entry. */
typedef enum he_entry_outcome {
	HE_ENTRY_TRANSITIONED = 1,   /* CAS won */
	HE_ENTRY_CONFLICT,	     /* CAS lost -> health-only fallback (D2) */
	HE_ENTRY_INVALID_TRANSITION, /* transition table refused -> fallback */
	HE_ENTRY_HEALTH_ONLY,	     /* type without transition (D3) */
	HE_ENTRY_NOT_FOUND,	     /* no row: warned, nothing published */
	HE_ENTRY_DEAD_LETTERED, /* undecodable or refused by the store: sent
				 * to the dead letters */
} he_entry_outcome;

/* Stable lower-case name of an outcome ("transitioned", ...). */
const char *he_entry_outcome_name(he_entry_outcome o);

typedef struct he_entry_report {
	he_entry_outcome outcome;
	bool published;		/* a snapshot went into the outbox */
	const char *event_type; /* table name of the type, or NULL if dead */
	const char *reason;	/* dead-letter reason, or NULL; owned by the
				 * outbox: valid until it is cleared */
} he_entry_report;

typedef struct he_core he_core;

/*
 * Create a core. `svc` is used for logging only and must outlive the
 * core (NULL: no logging). Returns 0 and *out, or HE_ENOMEM. Free with
 * he_core_free. Any thread.
 */
int he_core_new(const apphost_services *svc, he_core **out);
void he_core_free(he_core *c); /* NULL is a no-op */

/*
 * Process entries[0..n) in stream order (DESIGN §6 steps 1-4): decode,
 * plan the mutations, run them through `store` in one apply, then decide
 * per entry whether to publish (D4 dedupe, updated here) and append
 * snapshots and dead letters to `box` (which the caller cleared). Sets
 * box->last_id to entries[n-1].id. reports may be NULL, else has n slots.
 *
 * An entry whose data the store refuses (HE_EDATA) is found by splitting
 * the batch (he_split.h) and dead-lettered with the store's text; the
 * rest applies in order.
 *
 * Every apply is a compare-and-set on the applied position
 * (he_core_applied: the batch must follow it; it ends at the batch's last
 * entry), so no entry applies twice.
 *
 * Returns 0, or the store's negative error: then nothing was added to
 * box and the dedupe cache is unchanged, so the caller retries the same
 * entries; if the error came while splitting, the ranges applied before
 * it make the retry fail with HE_EPOSITION, and the caller resyncs
 * (he_core_repair). Call from one thread at a time.
 */
int he_core_process(he_core *c, const he_stream_entry *entries, size_t n,
		    const he_record_store *store, he_outbox *box,
		    he_entry_report *reports);

/*
 * he_core_process in two halves, for a caller that overlaps the store's
 * work with its own (the pipelined consumer): begin decodes and plans
 * entries[0..n) and says what to apply (*out: the span and the ops, which
 * stay valid, with the scratch they point into, until end); the caller
 * applies them (the whole batch in one call) and passes the result to
 * end, which on HE_EDATA splits the batch through store->apply as
 * he_core_process does, then decides and fills box (reserved by begin:
 * the same box). Both return 0 or a negative HE_E* as he_core_process
 * does.
 *
 * A second batch may be begun before the first ends (HE_ESTATE beyond
 * two): it follows the first's last entry, so its apply can be sent while
 * the first is ended. Batches end in the order begun (HE_EINVAL
 * otherwise), each whether or not it applied; a second batch whose first
 * did not apply is refused by the store (HE_EPOSITION). The entries stay
 * the caller's, unchanged, until their batch ends; he_core_set_applied
 * is for when no batch is begun.
 */
typedef struct he_core_apply {
	he_apply_span span;
	const he_mutation *ops;
	size_t nops;
	he_mutation_result *results; /* nops slots, filled by the apply */
} he_core_apply;
int he_core_begin(he_core *c, const he_stream_entry *entries, size_t n,
		  he_outbox *box, he_core_apply *out);
int he_core_end(he_core *c, const he_stream_entry *entries, size_t n,
		int apply_rc, const he_record_store *store, he_outbox *box,
		he_entry_report *reports);

/*
 * Rebuild in `box` (cleared by the caller) what a lost commit of
 * entries[0..n) held, applying nothing (DESIGN §13, Redis behind): a
 * snapshot of the current row (store->rows) of every game the decodable
 * entries touched, with the id of the last entry that touched it as
 * source_id, in that order; the dead letters of the undecodable entries
 * and of those the store recorded refused (store->refused over (after,
 * entries[n-1].id]), with their reasons. The games are forgotten by the
 * dedupe cache (their next entry publishes again); box->last_id is
 * entries[n-1].id; *ngames (may be NULL) the number of games touched.
 * 0, or a negative HE_E* (box then holds a part: clear it). The
 * consumer thread only.
 */
int he_core_repair(he_core *c, const char *after, const he_stream_entry *e,
		   size_t n, const he_record_store *store, he_outbox *box,
		   size_t *ngames);

/*
 * The applied position the next batch follows (DESIGN §13): "0-0" when
 * new, set by whoever knows it (a leader taking over reads it from the
 * store), and moved to each processed batch's last id. A batch that
 * fails leaves it where it was: its retry is then refused by the store
 * (HE_EPOSITION) if part of it had applied, and the caller resyncs.
 * set: 0, or HE_EINVAL for a text that is no stream id. The consumer
 * thread only.
 */
int he_core_set_applied(he_core *c, const char *position);
const char *he_core_applied(const he_core *c);

/*
 * The caller gave up committing `box` (stopping while Redis is down):
 * forget the dedupe entries of its games so a replay publishes again.
 */
void he_core_forget(he_core *c, const he_outbox *box);

/* Drop the whole dedupe cache (as after a restart). */
void he_core_reset(he_core *c);

/* Number of games in the dedupe cache. Any thread. */
size_t he_core_cache_size(he_core *c);

/*
 * Hot swap: serialise the dedupe cache into a malloc()ed buffer the
 * caller free()s / load one produced by he_core_export (merging into the
 * current cache). import returns HE_EINVAL for a buffer it cannot read,
 * leaving the cache as it was.
 */
int he_core_export(he_core *c, void **buf, size_t *len);
int he_core_import(he_core *c, const void *buf, size_t len);

/* ---- for tests and operations -------------------------------------------- */

/*
 * Replace the transition check used for the CAS types (default, and
 * after fn == NULL: he_transition_allowed of he_transitions.h). A pair
 * the check refuses becomes a health-only update reported as
 * HE_ENTRY_INVALID_TRANSITION (D2). For tests; call before processing,
 * from the thread that processes.
 */
typedef bool (*he_core_transition_fn)(const char *from, const char *to);
void he_core_set_transition_fn(he_core *c, he_core_transition_fn fn);

/* Counters since he_core_new (monotonic; read from any thread). */
typedef struct he_core_stats {
	uint64_t entries;	/* entries processed (batches that applied) */
	uint64_t transitioned;	/* HE_ENTRY_TRANSITIONED */
	uint64_t conflicts;	/* HE_ENTRY_CONFLICT + INVALID_TRANSITION */
	uint64_t health_only;	/* HE_ENTRY_HEALTH_ONLY */
	uint64_t not_found;	/* HE_ENTRY_NOT_FOUND */
	uint64_t dead_lettered; /* HE_ENTRY_DEAD_LETTERED */
	uint64_t published;	/* snapshots put into an outbox */
	uint64_t suppressed;	/* decodable, found, not published (D4) */
	uint64_t evictions;	/* games the dedupe cache evicted (budget) */
} he_core_stats;
void he_core_get_stats(he_core *c, he_core_stats *out);

#endif /* HE_CORE_H */
