/*
 * redis_pg.h -- Redis and PostgreSQL helpers for the server-backed suites:
 * commands, queries, rows, offsets, snapshot payloads and this test's keys.
 *
 * Every function asserts (Criterion) on a failed command instead of
 * returning an error, so it may only be called from a test or its
 * .init/.fini, on the thread that owns the connection passed in.
 */
#ifndef TEST_SERVER_REDIS_PG_H
#define TEST_SERVER_REDIS_PG_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- Redis ---- */

/* XADD stream * f1 v1 ... (NULL-terminated pairs); returns a malloc()ed id. */
char *th_xadd(redisContext *c, const char *stream, ...);
/* GET key as a malloc()ed string, or NULL. */
char *th_get(redisContext *c, const char *key);
/* XRANGE stream - +: the whole reply (caller frees). */
redisReply *th_xrange(redisContext *c, const char *stream);
/* XLEN stream (0 when it does not exist). */
size_t th_xlen(redisContext *c, const char *stream);
/* Value of `field` in an XRANGE entry's field list, or NULL. */
const char *th_field(const redisReply *entry, const char *field);
/* Run a command with argv from NULL-terminated strings; returns reply. */
redisReply *th_cmd(redisContext *c, ...);

/* ---- PostgreSQL ---- */

/* Execute SQL with text params (NULL-terminated); aborts on error. */
void th_sql(PGconn *c, const char *sql, ...);
/* One-row query: value of column col as malloc()ed string, or NULL. */
char *th_sql_value(PGconn *c, const char *sql, const char *param);
/* Insert a runtime_records row. */
void th_insert_game(PGconn *c, const char *game_id, const char *status,
		    int current_turn);
/* The instance holding lease `name` now, as the N of holder "<tag>-N";
 * -1 when nobody holds it. */
int th_lease_holder(PGconn *c, const char *name, const char *tag);
/* One call of health_events_lease (schema/003), asserted to answer: the
 * epoch held after it, 0 when another holds the lease. */
unsigned long long th_lease(PGconn *c, const char *name, const char *holder,
			    const char *token, const char *ms,
			    const char *min_epoch);
/* Take lease `name` (schema/003) for holder `token`, 60 s: its epoch. */
unsigned long long th_take_lease(PGconn *c, const char *name,
				 const char *token);
/* The row of game_id as "status/engine_health/current_turn" (malloc()ed),
 * or NULL when there is none. */
char *th_row(PGconn *c, const char *game_id);

/* ---- health_events ---- */

/*
 * The snapshot payload health_events publishes for a row (DESIGN §6 step
 * 4), written to out (cap bytes; asserts it fits).
 */
void th_payload(char *out, size_t cap, const char *game, const char *status,
		const char *health, int turn);

/* One test's keys: a unique prefix and the streams named after it. */
typedef struct th_keys {
	char prefix[96];      /* th_unique(tag); game ids start with it */
	char stream[128];     /* HEALTH_EVENTS_STREAM: <prefix>:in */
	char lobby[128];      /* HEALTH_EVENTS_LOBBY_STREAM: <prefix>:lobby */
	char dead[128];	      /* HEALTH_EVENTS_DEAD_LETTER_STREAM: ...:dead */
	char offset_key[160]; /* gamemaster:stream_offsets:<prefix> (the
				 offset label is the prefix) */
} th_keys;

/* Fill k with fresh names for tag ("e2e", "faults", ...). */
void th_keys_init(th_keys *k, const char *tag);

/*
 * What health_events has written for k, as one malloc()ed line to compare
 * before and after: lobby and dead-letter lengths, the offset, and every
 * row of k's games with its updated_at and row version (xmin).
 */
char *th_world(redisContext *redis, PGconn *pg, const th_keys *k);

/* ---- the event table ---- */

/* DESIGN §4, row by row: name, summary, CAS from, CAS to (NULL: none),
 * as the suites' models of the stream use it. */
typedef struct th_event {
	const char *name, *summary, *from, *to;
} th_event;
enum { TH_EVENT_COUNT = 7 };
extern const th_event th_events[TH_EVENT_COUNT];

/* ---- waiting ---- */

/* Poll until GET key equals want, up to timeout_ms; true when it does. */
bool th_wait_offset(redisContext *c, const char *key, const char *want,
		    int timeout_ms);
/* XADD a container_oom for game to k's stream and wait up to timeout_ms
 * until the offset reaches it (committed); asserts it does. */
void th_oom_committed(redisContext *c, const th_keys *k, const char *game,
		      int timeout_ms);
/* Wait up to timeout_ms until a health_events_apply call waits on a lock
 * (a row the test holds); true when one does. */
bool th_wait_apply_blocked(PGconn *c, int timeout_ms);
/* Milliseconds on the monotonic clock. */
double th_now_ms(void);
/* A unique prefix for keys/rows of one test: "<tag>:<pid>:<ns>:<n>" (a
 * static buffer, overwritten by the next call). */
const char *th_unique(const char *tag);

#endif
