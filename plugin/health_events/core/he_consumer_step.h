/*
 * he_consumer_step.h -- the consumer's leadership and resume decisions
 * as a pure state machine (DESIGN §6 step 5, §10, §11, §13): when to
 * stand aside, when to take over and resync, how to converge the applied
 * position PostgreSQL holds with the offset Redis holds, when to read,
 * apply, commit, ping an idle server, back off.
 *
 * No I/O and no clock of its own, like the decoder: he_cs_next takes the
 * time and the epoch this instance may write with now (the lease
 * machine's, he_lease_step.h) and says which call to make; he_cs_done
 * takes its result. The data a call carries (the entries read, the
 * outbox) stays with the caller; the machine keeps the positions.
 *
 * One thread drives one machine (the consumer thread). Private to
 * plugin/health_events, its tests and the simulation.
 */
#ifndef HE_CONSUMER_STEP_H
#define HE_CONSUMER_STEP_H

#include "he_stream_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How the applied position and the Redis offset converge (DESIGN §13). */
typedef enum he_converge {
	HE_CONVERGE_RESUME = 1, /* they agree: read after it */
	HE_CONVERGE_REPAIR,	/* Redis behind: publish again what the
				 * lost commits held, move the offset up */
	HE_CONVERGE_REAPPLY,	/* Redis ahead: apply again from the applied
				 * position; the offset stays */
} he_converge;

/*
 * The decision alone: the applied position (has_applied false: none yet,
 * a deployment upgrading) and the saved offset (has_saved false: none or
 * gone). *resume is where reading goes on: the applied position, or
 * without one the saved offset, or 0-0.
 */
he_converge he_converge_decide(bool has_applied, he_stream_id applied,
			       bool has_saved, he_stream_id saved,
			       he_stream_id *resume);

typedef enum he_cs_do {
	HE_CS_WAIT = 0,	   /* no call before at_ns (UINT64_MAX: a change) */
	HE_CS_PING,	   /* ping `server` (HE_HEARD_*): it went idle (half
			    * of check_ms without an answer) */
	HE_CS_TAKE_OVER,   /* Redis: raise the fence to epoch, read the
			    * saved offset */
	HE_CS_POSITION,	   /* PostgreSQL: the applied position */
	HE_CS_REPAIR_READ, /* Redis: entries after `from`, none past `to`,
			    * without blocking */
	HE_CS_REPAIR,	   /* PostgreSQL: rebuild what the entries in hand
			    * held (he_core_repair after `from`; none in
			    * hand: an outbox moving the offset to `to`) */
	HE_CS_READ,	   /* Redis: XREAD after `from` */
	HE_CS_APPLY,	   /* PostgreSQL: apply the batch in hand, which
			    * follows `from` and ends at `to` */
	HE_CS_COMMIT,	   /* Redis: commit the outbox in hand; the saved
			    * offset it follows is `from` (has_from false:
			    * none), the new one `to` */
} he_cs_do;

/* Before the call: what to do to the dedupe cache. */
enum {
	HE_CS_RESET = 1,  /* drop it: what Lobby got is not what it says */
	HE_CS_FORGET = 2, /* forget the games of every outbox in hand (the
			   * batch applied, and the pending one): none of
			   * them will be committed */
};

typedef struct he_cs_next {
	he_cs_do what;
	uint64_t at_ns; /* WAIT: until */
	int server;	/* the server the call goes to (HE_HEARD_*) */
	uint64_t epoch; /* the epoch the call writes with */
	bool has_from;
	he_stream_id from, to;
	bool now_only;	/* READ: without blocking (a batch is pending) */
	unsigned flags; /* HE_CS_RESET | HE_CS_FORGET */
} he_cs_next;

/* A call's result: rc (0, HE_ENOENT, HE_EFENCED, HE_EMOVED, HE_EPOSITION,
 * or an infrastructure error) and what it read. */
typedef struct he_cs_result {
	int rc;
	size_t n;		  /* READ, REPAIR_READ: entries in hand */
	he_stream_id id;	  /* TAKE_OVER: saved offset; POSITION: applied
				   * position; READ, REPAIR_READ: the last entry */
	unsigned long long fence; /* HE_EFENCED: the fence it named, 0:
				   * none (PostgreSQL's refusal); a PING of
				   * Redis: the fence it read */
} he_cs_result;

typedef enum he_cs_state {
	HE_CS_STANDBY = 0,
	HE_CS_S_TAKE_OVER,
	HE_CS_S_POSITION,
	HE_CS_S_REPAIR_READ,
	HE_CS_S_REPAIR,
	HE_CS_S_READ,
	HE_CS_S_APPLY,
	HE_CS_S_COMMIT,
	HE_CS_STOPPED,
} he_cs_state;

/* What the last step decided, for the caller's logs and the lease. */
typedef struct he_cs_news {
	uint64_t led;		  /* began to lead with this epoch */
	uint64_t stood_down;	  /* stopped leading with this epoch */
	uint64_t fenced;	  /* a write with this epoch was refused: the
				   * caller tells the lease (he_lease_sm_fenced) */
	unsigned long long fence; /* ... naming this fence */
	unsigned long long saw_fence; /* a standby's check read this fence:
				       * he_lease_sm_saw_fence */
	he_converge converged; /* 0, or how the last take-over converged */
	bool moved;	       /* a refused position: resyncing */
	bool dropped;	       /* outboxes in hand will not be committed: forget
				* their games (he_core_forget) */
} he_cs_news;

typedef struct he_cs {
	unsigned check_ms; /* idle ping and XREAD BLOCK: lease / 4 */
	he_cs_state st;
	uint64_t epoch;	       /* leading with, 0: standby */
	uint64_t fenced_epoch; /* a write with it was refused */
	bool has_saved;	       /* the offset Redis holds, as last known */
	he_stream_id saved;
	he_stream_id applied; /* read and applied up to here */
	he_stream_id repair_at, repair_to, repair_last;
	he_stream_id batch_last; /* the batch in hand ends here */
	bool committing_repair;
	/* Pipelined (he_cs_pipeline): a batch's commit follows the next
	 * batch's apply, as consumer_batch.c overlaps them. */
	bool pipelined;
	bool has_pend;		/* an applied batch waits for its commit */
	he_stream_id pend_last; /* ... ending here */
	bool committing_pend;	/* the commit in hand is the pending one */
	bool shift;		/* ... then the batch applied is pending */
	he_cs_state then;	/* ... then this */
	bool new_lead;		/* the take-over in hand is a new leadership */
	bool resync_due;	/* a server reconnected: compare again */
	bool reset_due;		/* the next call drops the dedupe cache first */
	bool stop;
	bool failed; /* the call in hand failed at least once */
	unsigned backoff_ms;
	uint64_t retry_at;
	int retry_server;	     /* the server of the call retried */
	uint64_t heard[2];	     /* last answer per server, 0: never */
	uint64_t ping_at[2];	     /* the last ping was sent then, 0: none */
	uint64_t swap_epoch;	     /* a hot swap's predecessor led with it */
	he_stream_id swap_published; /* ... and had published to */
	he_cs_do pending;	     /* the call out, WAIT: none */
	int pending_server;	     /* ... and its server */
	he_cs_news news;	     /* set by the steps; caller clears */
} he_cs;

/* A standby, for a lease of lease_ms. */
void he_cs_init(he_cs *s, unsigned lease_ms);

/* The next call at `now`, given the epoch we may write with (0: none). */
he_cs_next he_cs_next_call(he_cs *s, uint64_t now, uint64_t writable);

/* The call he_cs_next_call gave came back at `now` with `r`. */
void he_cs_done(he_cs *s, uint64_t now, const he_cs_result *r);

/* A server was reconnected: compare the two positions again. */
void he_cs_reconnected(he_cs *s);

/* A hot swap's predecessor led with `epoch` and published to `at`. */
void he_cs_swap(he_cs *s, uint64_t epoch, he_stream_id at);

/*
 * Commit each batch only after the next one applied (the apply of one and
 * the commit of the one before overlap in consumer_batch.c): the outboxes in
 * hand are then up to two, told apart by COMMIT's `to`. Before a
 * blocking read, a resync, a retried apply or a stop, the pending batch
 * is committed first; a refused commit forgets both.
 */
void he_cs_pipeline(he_cs *s, bool on);

/* Stop: finish the batch in hand unless a server fails, then stop. */
void he_cs_stop(he_cs *s);

/* The backoff after a failed call: 50 ms doubling to 1 s. */
unsigned he_cs_backoff_next(unsigned ms);

#endif
