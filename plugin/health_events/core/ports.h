/*
 * ports.h -- the data the decision core works on and the ports (tables of
 * function pointers) through which it reaches storage. The core
 * (decoder, events, dedupe, snapshot, handler) does no I/O; the Redis and
 * PostgreSQL adapters implement these ports in production and the
 * in-memory ports in tests/ implement them for the unit suite.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_PORTS_H
#define HE_PORTS_H

#include <apphost/component.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- error codes: the host's (component.h), plus our own ------------- */

/* XX(name, value, text) of the codes only health_events has. */
#define HE_ERRNO_MAP(XX)                                                       \
	XX(ENOENT, -20, "not found")	       /* offset not saved yet */      \
	XX(EREFUSED, -21, "refused by server") /* e.g. WRONGTYPE */            \
	XX(EFENCED, -22, "fenced by a newer leader") /* write refused */       \
	XX(EMOVED, -23, "saved offset moved") /* lost by a failover, reset */  \
	XX(EDATA, -24, "data refused by the store")  /* SQLSTATE 22, 23 */     \
	XX(EPOSITION, -25, "applied position moved") /* resync first */

enum {
#define HE_FROM_HOST_(name, value, text) HE_##name = APPHOST_##name,
	APPHOST_ERRNO_MAP(HE_FROM_HOST_)
#undef HE_FROM_HOST_
#define HE_OWN_(name, value, text) HE_##name = (value),
	    HE_ERRNO_MAP(HE_OWN_)
#undef HE_OWN_
};
/* Text for an HE_E* code. Static string; any thread. */
const char *he_strerror(int code);
/* An HE_E* code as the host's: ours become APPHOST_EIO. */
static inline int he_to_apphost(int code)
{
	return code > HE_ENOENT ? code : APPHOST_EIO;
}
/* A host's refusal to lease a connection, as ours: a timeout, a refused
 * permission or credentials keep their names (said apart in logs and
 * readiness); anything else is an unreachable server. */
static inline int he_from_lease(int code)
{
	return code == APPHOST_ETIMEDOUT || code == APPHOST_EPERM ||
		       code == APPHOST_EAUTH
		   ? code
		   : HE_ECONN;
}

/*
 * Grow the malloc()ed array *arr (elements of `sz` bytes, capacity *cap)
 * to hold at least `need`, doubling. 0, or HE_ENOMEM with *arr and *cap
 * unchanged. The one growth helper of the plugin's scratch buffers.
 */
int he_grow(void **arr, size_t *cap, size_t need, size_t sz);

/* ---- one entry of the input stream, as read ---------------------------- */

/* Room for a stream id ("ms-seq", two 20-digit numbers) and its NUL. */
#define HE_POSITION_MAX 48

/*
 * A stream entry: its id and the flat field/value list exactly as the
 * server returned it (binary-safe: each item has a length; nitems may be
 * odd for a hand-made entry). All pointers are borrowed from the reader's
 * reply and stay valid until the batch has been committed.
 */
typedef struct he_stream_entry {
	const char *id; /* "1700000000000-0", NUL-terminated */
	size_t nitems;
	const char *const *items;
	const size_t *lens;
} he_stream_entry;

/* ---- runtime_records row and the mutation the core asks for ------------ */

#define HE_STATUS_MAX 32  /* longest status name + NUL */
#define HE_HEALTH_MAX 128 /* longest engine_health we carry + NUL */

typedef struct he_row {
	char status[HE_STATUS_MAX];
	char engine_health[HE_HEALTH_MAX];
	int32_t current_turn;
} he_row;

/*
 * One mutation: set engine_health = summary on game_id's row and, when
 * `to` is non-NULL, atomically move status `expected` -> `to` in the same
 * statement (compare-and-set). When `to` is NULL the update is
 * health-only and unguarded by status (D3).
 */
typedef struct he_mutation {
	const char *game_id; /* not NUL-terminated: use game_id_len */
	size_t game_id_len;
	const char *summary;  /* NUL-terminated */
	const char *expected; /* NULL: health-only */
	const char *to;	      /* NULL: health-only */
} he_mutation;

typedef enum he_apply_outcome {
	HE_APPLY_TRANSITIONED = 1, /* CAS won: status and summary written */
	HE_APPLY_CONFLICT,  /* CAS lost: summary written health-only (D2) */
	HE_APPLY_HEALTH,    /* health-only as asked */
	HE_APPLY_NOT_FOUND, /* no row for game_id: nothing written */
} he_apply_outcome;

typedef struct he_mutation_result {
	he_apply_outcome outcome;
	he_row row; /* the row after the mutation (D5); unset if NOT_FOUND */
} he_mutation_result;

/*
 * Where one apply stands in the stream (DESIGN §13): the applied position
 * its ops follow and the id of the last entry they cover. Every entry
 * moves the position, so an apply may have no ops (undecodable entries,
 * or stepping over an entry the store refused, named by refused_id with
 * the store's reason). Ids are "ms-seq" strings, compared as numbers.
 */
typedef struct he_apply_span {
	const char *after; /* "0-0": the stream's beginning */
	const char *last;
	const char *refused_id;	    /* NULL: none */
	const char *refused_reason; /* with refused_id */
} he_apply_span;

/*
 * The runtime record store.
 *
 * apply: perform ops[0..n) in order, in one transaction: all or nothing,
 * together with moving the applied position from span->after to
 * span->last. For each op with `to` set: if the row's status is `expected`, set
 * status=to and engine_health=summary (TRANSITIONED); otherwise, if the
 * row exists, set engine_health=summary only (CONFLICT); otherwise
 * NOT_FOUND. For each op without `to`: set engine_health only (HEALTH) or
 * NOT_FOUND. results[i].row is the row as stored right after op i (a
 * later op on the same game in the same batch sees op i's effect).
 * Returns 0, or a negative HE_E* code when nothing was applied (the
 * caller retries the same ops later). HE_EDATA: the data of some op is
 * refused whatever the retry (the caller splits the batch to find it).
 * HE_EPOSITION: the stored position is not span->after (the caller
 * resyncs; with no position stored yet any span->after is taken).
 * Called from one thread at a time.
 *
 * refusal (may be NULL): after HE_EDATA, a short one-line text of why,
 * safe to put in a dead letter (no connection details); owned by the
 * store, valid until its next apply.
 *
 * position: the applied position into out ("ms-seq"), HE_ENOENT when none
 * is stored yet, or a negative HE_E*.
 *
 * rows: the current row of each game of ops[0..n) (only game_id is read)
 * into results (HE_APPLY_HEALTH with the row, or HE_APPLY_NOT_FOUND),
 * writing nothing; 0 or a negative HE_E*.
 *
 * refused: call fn for every entry recorded refused with an id in
 * (after, last], in id order; 0 or a negative HE_E*.
 */
typedef void (*he_refused_fn)(void *arg, const char *id, const char *reason);
typedef struct he_record_store {
	void *ctx;
	int (*apply)(void *ctx, const he_apply_span *span,
		     const he_mutation *ops, size_t n,
		     he_mutation_result *results);
	const char *(*refusal)(void *ctx);
	int (*position)(void *ctx, char *out, size_t cap);
	int (*rows)(void *ctx, const he_mutation *ops, size_t n,
		    he_mutation_result *results);
	int (*refused)(void *ctx, const char *after, const char *last,
		       he_refused_fn fn, void *arg);
} he_record_store;

/* ---- what a processed batch produces ----------------------------------- */

/* A runtime_snapshot_update for gm:lobby_events. */
typedef struct he_snapshot_msg {
	const char *game_id; /* borrowed from the entry */
	size_t game_id_len;
	const char *source_id; /* the input entry id, borrowed */
	char *payload;	       /* owned by the outbox, NUL-terminated JSON */
	size_t payload_len;
} he_snapshot_msg;

/* An undecodable entry for the dead-letter stream. */
typedef struct he_dead_letter {
	const he_stream_entry *entry; /* borrowed: its original fields */
	const char *reason;	      /* owned by the outbox */
} he_dead_letter;

/*
 * Everything a batch publishes, in stream order, plus the offset to save
 * with it. Built by the core, consumed by he_stream_port.commit.
 */
typedef struct he_outbox {
	he_snapshot_msg *snapshots;
	size_t nsnapshots, snapshots_cap;
	he_dead_letter *dead;
	size_t ndead, dead_cap;
	char last_id[HE_POSITION_MAX]; /* the batch's last entry: new offset */
} he_outbox;

/* Frees what the outbox owns and empties it (keeps it reusable). */
void he_outbox_clear(he_outbox *box);
/* Frees everything; NULL is a no-op. */
void he_outbox_free(he_outbox *box);

/*
 * The stream side (Redis in production).
 *
 * commit: publish every snapshot to the lobby stream and every dead
 * letter to the dead-letter stream, and save box->last_id as the offset,
 * the offset last (one fenced script in Redis). 0 or a negative error; on
 * error the caller retries the same outbox (a repeat is benign). The
 * offset is read by the adapter itself when a leader takes over.
 */
typedef struct he_stream_port {
	void *ctx;
	int (*commit)(void *ctx, const he_outbox *box);
} he_stream_port;

#endif /* HE_PORTS_H */
