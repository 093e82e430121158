/*
 * sim_internal.h -- what the simulation's world (sim_world.c) and its
 * checker (sim_check.c) share: the run's constants, messages, instances
 * and the one world of the run in hand. Single-threaded, like the run.
 */
#ifndef SIM_INTERNAL_H
#define SIM_INTERNAL_H

#include "he_consumer_step.h"
#include "he_lease_step.h"
#include "ports.h"
#include "sim_model.h"
#include "sim_world.h"

#include <stdbool.h>
#include <stdint.h>

#define MS	    1000000ull
#define LEASE_MS    3000u
#define CALL_MS	    (LEASE_MS / 4)
#define BLOCK_MS    (LEASE_MS / 4) /* XREAD BLOCK */
#define MAX_INST    5
#define MAX_ENTRIES 3000
#define BATCH_MAX   8
#define MAX_EVENTS  4096
#define MAX_MSGS    1024
#define MAX_EPOCHS  8192
#define RING	    256 /* checkpoints, every CK_MS */
#define CK_MS	    100
/* After the heal, the work resumes and converges within this. */
#define BOUND_MS (6u * LEASE_MS)

enum { REDIS = HE_HEARD_REDIS, PG = HE_HEARD_PG };
enum { LEASE_CONN, CONS_CONN };

/* ---- messages and events ------------------------------------------------- */

enum call_kind { /* consumer calls are he_cs_do; the lease's: */
		 K_ASK = 100,
		 K_RELEASE,
};

typedef struct msg {
	bool used;
	bool resolved; /* the caller had its result (or its timeout) */
	unsigned refs; /* deliveries and replies on their way */
	uint64_t gen;  /* a timeout names it with this */
	int inst, inc, actor, server;
	int kind;
	bool dup;	 /* a late duplicate: executes, its reply is lost */
	bool now_only;	 /* READ: reply at once, even with nothing */
	bool batch;	 /* COMMIT: of a batch applied (not a repair) */
	uint32_t row_at; /* REPAIR: the rows read are as of this entry */
	uint64_t sent, deadline, epoch, token, min_epoch;
	bool has_from;
	he_stream_id from, to;
	uint32_t lo, hi; /* stream entries the call carries or read */
	sim_pub pubs[SIM_GAMES + BATCH_MAX];
	uint8_t npubs;
	/* the result */
	bool replied; /* a reply is on its way, arriving by the deadline */
	int rc;
	uint64_t r_epoch, r_fence;
	bool r_has;
	he_stream_id r_id;
	sim_row rows[BATCH_MAX];
	bool moved_now[BATCH_MAX];
} msg;

enum ev_kind {
	EV_WAKE,    /* a = instance, b = actor, c = incarnation */
	EV_DELIVER, /* m */
	EV_REPLY,   /* m */
	EV_TIMEOUT, /* m */
	EV_APPEND,
	EV_FAULT,
	EV_LINK_UP, /* a = instance, b = server, c = connection */
	EV_RESTART, /* a */
	EV_CRASH,   /* a, c = incarnation (after a graceful stop) */
	EV_CHECKPOINT,
	EV_HEAL,
};

typedef struct event {
	uint64_t t, seq;
	uint8_t kind;
	int a, b, c;
	int m;
} event;

/* ---- instances ----------------------------------------------------------- */

typedef struct inst {
	bool up;
	int inc;
	uint64_t token;
	uint64_t paused_until[2]; /* per actor: a pause stops both, a stalled
				   * thread one */
	he_lease_sm L;
	he_cs C;
	/* Its monotonic clock, which the steps see: it runs at `rate`
	 * (within 10% of PostgreSQL's) from `t0` on. */
	double rate;
	uint64_t t0;
	int out[2]; /* the call out per actor (message index), -1: none */
	uint64_t wake_at[2];
	bool down[2][2]; /* link [server][connection] down */
	bool gray[2];	 /* stays down after the heal */
	bool broken[2];	 /* the consumer's connection broke: reconnect */
	uint32_t lo, hi; /* entries in hand */
	/* The outboxes in hand: a batch applied and, pipelined, the one
	 * before it waiting for its commit; told apart by their last id. */
	struct obox {
		bool used;
		he_stream_id last;
		uint8_t n;
		sim_pub pub[SIM_GAMES + BATCH_MAX];
	} box[2];
	bool cached[SIM_GAMES]; /* the dedupe cache (D4) */
	sim_row cache[SIM_GAMES];
	/* What this incarnation was told, kept by the checker: the highest
	 * epoch a write of it was refused for, the highest fence a refusal
	 * named, and when its consumer last had an answer from each server
	 * (its own clock). */
	uint64_t refused, fence_seen, answered[2];
	/* A hot swap (a graceful stop handing its dedupe cache to the next
	 * build): the epoch it led with, and what it committed up to, as
	 * consumer.c's export carries them. */
	bool swapping;
	uint64_t swap_epoch;
	he_stream_id committed;
} inst;

/* ---- the world ----------------------------------------------------------- */

typedef struct ckpt {
	uint64_t t;
	sim_pg pg;
	sim_redis rd;
	uint64_t pg_granted, rd_taken;
} ckpt;

struct world {
	uint64_t now, seq;
	unsigned same_time; /* steps at this virtual time */
	bool trace;
	sim_report *rep;
	bool failed;
	/* parameters of this run */
	int n;
	unsigned batch;
	double p_slow, p_dup, fault_ms;
	uint64_t heal_at, converged_at;
	bool healed;
	/* the servers */
	sim_pg pg;
	sim_redis rd;
	bool tokens;
	bool pipelined;		  /* each commit after the next batch's apply */
	bool reapplying;	  /* a leader took over with Redis ahead */
	he_stream_id republished; /* ... and since, published up to */
	sim_entry stream[MAX_ENTRIES];
	uint32_t nstream;
	/* the checker's own account */
	sim_row model[MAX_ENTRIES + 1][SIM_GAMES]; /* rows after k entries */
	bool touched[SIM_GAMES];
	uint64_t pg_granted;	    /* highest epoch granted, this history */
	uint64_t rd_taken;	    /* highest take-over landed, this history */
	uint64_t owner[MAX_EPOCHS]; /* the token that used each epoch */
	/* the latest expiry granted to each epoch, per token (a rolled back
	 * lease row may grant an epoch twice) */
	uint64_t granted[MAX_EPOCHS][2], grantee[MAX_EPOCHS][2];
	uint64_t top_epoch;
	ckpt ring[RING]; /* the last RING checkpoints: a failover's loss */
	unsigned nring, ring_at;
	ckpt backup[64]; /* every tenth: a restore from an older backup */
	unsigned nbackup, ckpts;
	uint64_t burst_until; /* RTM appends in bursts, idle between */
	uint64_t quiet_until; /* no store fault before */
	int lost;	      /* the store that lost writes last, -1: none */
	inst in[MAX_INST];
	msg msgs[MAX_MSGS];
	unsigned msg_at; /* where the search for a free one starts */
	uint64_t gen;
	event heap[MAX_EVENTS];
	unsigned nheap;
};

extern struct world W;

/* The run fails with this (the first failure stands). */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* With --trace: one line of the run, at its virtual time. */
void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Entry k's id, and the index of the first entry after an id. */
he_stream_id id_of(uint32_t k);
uint32_t after_index(he_stream_id id);

/* ---- the checker (sim_check.c) ---- */
void check_use(uint64_t epoch, uint64_t token, const char *what);
void check_ask_rules(const inst *p, uint64_t now, uint64_t min_epoch);
void check_deadline(const inst *p, uint64_t epoch, const char *what);
void check_landed(const msg *m, const char *what, uint64_t floor,
		  const char *floor_what);
void check_rows(void);
bool converged(void);
void note_reapply(void);
void check_published(const msg *m, bool moved);

#endif
