/*
 * stream_redis.h -- the Redis side of health_events on one leased hiredis
 * context: XREAD of the input stream, taking over as leader (fence and
 * offset), and he_stream_port (commit: one fenced script that XADDs the
 * batch and SETs the offset last). Every command is sent with argv;
 * nothing above this file sees a redisReply.
 */
#ifndef HE_STREAM_REDIS_H
#define HE_STREAM_REDIS_H

#include "he_batch.h"
#include "he_config.h"
#include "he_deadletter.h"
#include "he_lease.h"
#include "he_stream_id.h"
#include "he_xread.h"
#include "ports.h"

#include <apphost/component.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Reads whose entries stay valid at once; the byte budget is shared. */
#define HE_READ_SLOTS 3

typedef struct he_stream_redis {
	/* private, like every field: others read the functions at the end */
	const apphost_services *svc;
	const he_config *cfg;
	struct redisContext *c; /* leased lazily; NULL when not held */
	atomic_llong client_id; /* CLIENT ID of c, 0 when none */
	char err[256];		/* text of the last error */
	/* The last HE_READ_SLOTS XREAD replies and their entries, which
	 * borrow them: a pipelined consumer commits one batch and applies
	 * the next while it reads a third. */
	void *reply[HE_READ_SLOTS];
	he_xread_entries parsed[HE_READ_SLOTS];
	unsigned slot;	   /* of the last read */
	const char **argv; /* commit scratch */
	size_t *argvlen;
	size_t argv_cap;
	struct {
		char s[24];
	} * counts; /* item counts of the dead letters, as text */
	size_t counts_cap;
	char nsnap[24];
	char sha[48];		/* SHA1 of the commit script, once loaded */
	char epoch[24];		/* this leader's epoch, decimal */
	char token[40];		/* this instance's token, "" for none */
	char fence_arg[72];	/* "<epoch> <token>": the scripts' ARGV[1] */
	char saved[48];		/* the offset Redis holds, as last read or set
				 * ("" when none is saved) */
	const char *committing; /* last_id of the commit in flight */
	unsigned long long fence_seen; /* fence of the last FENCED refusal */
	bool had_conn;		       /* a connection was leased before */
	he_heard *heard;	       /* answers and waits noted, or NULL */
	bool reconnected; /* the current one replaced an earlier one */

	he_dead_fields dead; /* commit scratch: the dead letters' fields */
	he_batch_ctl batch;  /* XREAD COUNT within HE_BATCH_BYTES / slots */
	unsigned asked;	     /* COUNT of the last read that succeeded */
	unsigned long long overflows; /* reads abandoned over the budget */
	uint64_t time_us;    /* Redis TIME after the last read, 0: none yet */
	uint64_t time_at_ns; /* svc->now_ns when that TIME arrived */
} he_stream_redis;

/* Set up (no I/O). The stream is then used by one thread. */
void he_stream_redis_init(he_stream_redis *s, const apphost_services *svc,
			  const he_config *cfg);
/*
 * Note in *heard (he_lease.h; he_clock.h) each time Redis answers, an
 * error reply included, and while a command waits for its answer:
 * leadership follows the ability to reach it (DESIGN §10). NULL: nowhere.
 */
void he_stream_redis_set_heard(he_stream_redis *s, he_heard *heard);
/* Free the last replies, return the lease (if held). */
void he_stream_redis_close(he_stream_redis *s);

/*
 * XREAD COUNT <he_batch_count> BLOCK block_ms STREAMS <stream> <after>.
 * On success sets *entries and *n (n == 0 on timeout or CLIENT UNBLOCK);
 * they stay valid for HE_READ_SLOTS - 1 more reads, until the one after
 * those, or close; s->asked is the COUNT
 * asked (n < s->asked: the end was reached). Each XREAD is followed by
 * a TIME in the same round trip: s->time_us and s->time_at_ns date it. A
 * reply that outgrows s->batch's budget after a whole entry is abandoned
 * (the connection given back as broken, s->overflows counted) and read
 * again with the COUNT that fits.
 * 0 or a negative HE_E* (s->err says why).
 */
int he_stream_redis_read(he_stream_redis *s, const char *after,
			 const he_stream_entry **entries, size_t *n);
/* The same without BLOCK: what the stream holds now (a resync's reads). */
int he_stream_redis_read_now(he_stream_redis *s, const char *after,
			     const he_stream_entry **entries, size_t *n);

/*
 * Compare the saved offset with the stream's first entry (XINFO STREAM).
 * Returns 1 and fills first_id when the first entry is newer than
 * `offset`: entries after the offset may have been trimmed unread. 0 when
 * not (or no stream yet); negative on error.
 */
int he_stream_redis_check_gap(he_stream_redis *s, const char *offset,
			      char *first_id, size_t cap);

/*
 * Number of entries after `offset` in the input stream, counted by a Lua
 * XRANGE inside Redis and capped at `cap` (cost O(min(lag, cap)) on the
 * server). 0 and *out, or a negative HE_E* (s->err says why).
 */
int he_stream_redis_lag(he_stream_redis *s, const char *offset,
			unsigned long long cap, unsigned long long *out);

/* Lease and PING now (readiness). 0 or a negative HE_E*. */
int he_stream_redis_ping(he_stream_redis *s);

/* Fence every following write with this leader's epoch. */
void he_stream_redis_set_epoch(he_stream_redis *s, uint64_t epoch);
/*
 * ... and with this instance's token (copied; at most 39 bytes, no
 * space): the fence key stores both, and a write with the fence's epoch
 * but another token is refused (DESIGN §10). NULL or "": none.
 */
void he_stream_redis_set_token(he_stream_redis *s, const char *token);
/*
 * GET the fence key: the epoch it holds (0: none) into *epoch, so that a
 * standby asks the lease for an epoch above it. 0 or a negative HE_E*.
 */
int he_stream_redis_read_fence(he_stream_redis *s, unsigned long long *epoch);

/*
 * Become the writer: raise the fence key to our epoch and read the saved
 * offset, atomically. 0 and out, HE_ENOENT (none saved), HE_EFENCED (the
 * fence is higher: s->fence_seen), or another negative HE_E*. The commits
 * that follow expect the offset read here.
 */
int he_stream_redis_take_over(he_stream_redis *s, char *out, size_t cap);

/*
 * Whether the connection was replaced since the last take-over or call
 * (clears the flag): the server behind it may have failed over.
 */
bool he_stream_redis_reconnected(he_stream_redis *s);

/*
 * The port for the consumer; ctx is s. commit returns HE_EFENCED (a newer
 * epoch raised the fence) or HE_EMOVED (the saved offset is not the one
 * this batch follows), writing nothing, besides the usual errors.
 */
he_stream_port he_stream_redis_port(he_stream_redis *s);

/*
 * From another thread (stop): wake the connection blocked in XREAD with
 * CLIENT UNBLOCK on a second leased connection. Returns 1 when a blocked
 * client was woken, 0 when none was blocked, negative on error.
 */
int he_stream_redis_unblock(const apphost_services *svc, long long client_id);

/* ---- what others may read ---------------------------------------------- */

/* The last error's text, for the caller's log (owned by s, valid until
 * its next call). Its thread, like everything below but client_id. */
const char *he_stream_redis_err(const he_stream_redis *s);
/* The fence named by the last HE_EFENCED refusal (0: none named). */
unsigned long long he_stream_redis_fence_seen(const he_stream_redis *s);
/* The COUNT of the last read that succeeded: fewer entries came back
 * when the stream's end was reached. */
unsigned he_stream_redis_asked(const he_stream_redis *s);
/* Reads abandoned over the byte budget since init. */
unsigned long long he_stream_redis_overflows(const he_stream_redis *s);
/* Redis's TIME after the last read (*redis_us) and he_now_ns when it came
 * (*at_ns); false before any. */
bool he_stream_redis_time(const he_stream_redis *s, uint64_t *redis_us,
			  uint64_t *at_ns);
/* CLIENT ID of the connection held, 0 when none: for
 * he_stream_redis_unblock. Any thread. */
long long he_stream_redis_client_id(he_stream_redis *s);

#endif
