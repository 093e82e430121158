/*
 * consumer_int.h -- the consumer's state and what its files lend each
 * other: consumer.c (the threads, the hot swap), consumer_loop.c (the
 * consumer step's loop and its calls), consumer_batch.c (APPLY and
 * COMMIT, pipelined) and consumer_health.c (dependency failures,
 * readiness, lag). Private to those files. Every function here runs on
 * the consumer thread.
 */
#ifndef HE_CONSUMER_INT_H
#define HE_CONSUMER_INT_H

#include "consumer.h"

#include "he_lag.h"
#include "he_ops.h"
#include "leader.h"
#include "preflight.h"
#include "record_store_pg.h"
#include "stream_redis.h"

#include "he_consumer_step.h"
#include "he_outbox.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

enum dep { DEP_REDIS, DEP_PG, DEP_COUNT };

/* Failure state of one dependency, for one log line per change. */
typedef struct dep_state {
	bool failing;
	unsigned attempts;
	char err[256];
	uint64_t last_ok_ns; /* he_now_ns of the last success, 0: never */
} dep_state;

/*
 * One outbox from its apply (or repair) to its commit: the outbox, the
 * reports for the metrics, its entries (borrowed from a read slot of the
 * stream) and when it began.
 */
typedef struct consumer_stage {
	he_outbox box;
	he_entry_report *reports;
	size_t reports_cap;
	const he_stream_entry *e;
	size_t n;
	uint64_t t0;
	bool applied; /* applied (or repaired), not committed */
	bool end_due; /* ... its box not written yet: he_core_end waits
		       * until the next batch's apply is sent */
	bool lost;    /* ... its box could not be written */
	bool repair;  /* ... a repair's (no batch of entries) */
} consumer_stage;

/* A commit made while an apply ran, for the step's next COMMIT. */
struct consumer_spec_commit {
	bool valid;
	consumer_stage *stage;
	int rc;
};

/* A read made while an apply ran, for the step's next READ. */
struct consumer_spec_read {
	bool valid;
	char after[HE_POSITION_MAX];
	int rc;
	const he_stream_entry *e;
	size_t n;
};

/* A repair under way (DESIGN §13), for its logs. */
struct consumer_repair {
	bool on;
	const he_stream_entry *e; /* the entries of the last repair read */
	size_t n;
	size_t entries, games, batches;
};

struct he_consumer {
	const apphost_services *svc; /* immutable */
	he_config cfg;		     /* immutable once loaded */
	/* immutable: the lease's timings: check_ms bounds every statement
	 * and a standby's wait (the step pings an idle server at half of
	 * it), heard_ms every answer awaited. */
	he_lease_timing t;
	he_leader *leader;  /* immutable (its own locking, leader.h) */
	he_ops ops;	    /* consumer thread; main thread before start */
	uv_thread_t thread; /* main thread */
	bool started;	    /* main thread */

	atomic_bool stopping;	/* atomic */
	atomic_bool park_asked; /* atomic: export asked the thread to park */

	/*
	 * The consumer thread's, also read by the main thread's export once
	 * the thread has parked (parked, under mu, orders those reads
	 * after the thread's last writes), or written by the import before
	 * the thread starts.
	 */
	he_core *core;
	uint64_t epoch;		      /* the epoch we lead with, 0: standby */
	char offset[HE_POSITION_MAX]; /* applied and committed up to here */
	uint64_t swap_epoch; /* a hot swap's predecessor led with this one */
	char swap_published[HE_POSITION_MAX]; /* ... and had published to */

	/* consumer thread only */
	he_record_store_pg pg;
	he_stream_redis rs;
	he_cs cs;		 /* the decisions (he_consumer_step.h) */
	consumer_stage stage[2]; /* up to two outboxes in hand */
	consumer_stage *in_hand; /* the batch read, for the next APPLY */
	struct consumer_spec_commit spec_commit;
	struct consumer_spec_read spec_read;
	struct consumer_repair repair;
	char saved[HE_POSITION_MAX]; /* the offset the take-over read */
	bool consuming;		     /* health_events_leader is 1 */
	bool new_lead; /* the take-over in hand is a new leadership's */
	dep_state deps[DEP_COUNT];
	he_preflight pf;    /* permissions, asked at each (re)connection */
	uint64_t lag_at_ns; /* last lag count */
	he_lag lag;	    /* the oldest uncommitted entry's age (he_lag.h) */

	uv_mutex_t mu; /* guards the fields below it; cv signals stop, park,
			* exit and wakes a backoff */
	uv_cond_t cv;
	bool exited; /* mu */
	bool parked; /* mu: parked between batches until stop */
	/* mu: a copy of offset, for the main thread while the consumer
	 * thread runs (a log on an export timeout) */
	char offset_told[HE_POSITION_MAX];
};

#define LOG(c, lvl, msg, ...)                                                  \
	(c)->svc->log((c)->svc->host, lvl, msg, __VA_ARGS__)

/* ---- consumer.c ------------------------------------------------------------
 */

/* The applied and committed position is now `id` (also for the main
 * thread's logs). */
void consumer_set_offset(he_consumer *c, const char *id);

/* ---- consumer_health.c -----------------------------------------------------
 */

/* Readiness from both dependencies' state and the lease's. */
void consumer_readiness(he_consumer *c);
/* Dependency d failed with code and err: logged once per change. */
void consumer_dep_failed(he_consumer *c, enum dep d, int code, const char *err);
/* Dependency d answered (asking the permissions again after a failure). */
void consumer_dep_ok(he_consumer *c, enum dep d);
/* Export the lag now. */
void consumer_lag_export(he_consumer *c);
/* A read returned n entries. */
void consumer_lag_read(he_consumer *c, const he_stream_entry *e, size_t n);
/* A batch of n (> 0) was committed. */
void consumer_lag_committed(he_consumer *c, const he_stream_entry *e, size_t n);
bool consumer_stopping(he_consumer *c);
/* A write with c->epoch was refused (what; in Redis or PostgreSQL):
 * logged (the step tells the lease). */
void consumer_fenced(he_consumer *c, const char *what, bool in_redis);
/* Whether we may still write with c->epoch. */
bool consumer_leading(he_consumer *c);

/* ---- consumer_loop.c ------------------------------------------------------
 */

/* Run the consumer step until it stops (stop, or export's park). */
void consumer_loop(he_consumer *c);

/* ---- consumer_batch.c ------------------------------------------------------
 */

/* A stage with no outbox in hand, NULL when both have one. */
consumer_stage *consumer_stage_free(he_consumer *c);
/* APPLY the batch in hand: its result (HE_E*). Pipelined, it also ends
 * the batch before (consumer_settle), makes its commit and the read
 * after, while PostgreSQL runs the apply. */
int consumer_apply(he_consumer *c);
/* COMMIT the outbox in hand that ends at `to`: its result. */
int consumer_commit(he_consumer *c, he_stream_id to);
/* The read made while the last apply ran, if it was after `after`
 * (true: *e, *n, *rc); it is used once. */
bool consumer_read_ahead(he_consumer *c, const char *after,
			 const he_stream_entry **e, size_t *n, int *rc);
/* Write the box of the batch whose end waited for the next apply. */
void consumer_settle(he_consumer *c);
/* No outbox in hand will be committed: their games are forgotten. */
void consumer_stages_forget(he_consumer *c);
/* Free both stages' buffers. */
void consumer_stages_free(he_consumer *c);

#endif
