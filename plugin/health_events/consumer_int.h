/*
 * consumer_int.h -- the consumer's state and what its files lend each
 * other: consumer.c (the threads, the loop, the hot swap),
 * consumer_health.c (dependency failures, readiness, lag, backoff),
 * consumer_sync.c (take-over and resync: converging the two positions)
 * and consumer_batch.c (applying and committing batches, pipelined).
 * Private to those files. Every function here runs on the consumer
 * thread.
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
 * One batch from its apply to its commit: its outbox, the reports for the
 * metrics, its entries (borrowed from a read slot of the stream) and when
 * it began.
 */
typedef struct consumer_stage {
	he_outbox box;
	he_entry_report *reports;
	size_t reports_cap;
	const he_stream_entry *e;
	size_t n;
	uint64_t t0;
} consumer_stage;

struct he_consumer {
	const apphost_services *svc; /* immutable */
	he_config cfg;		     /* immutable once loaded */
	/* immutable: check_ms: a server silent this long is pinged (the
	 * leader's XREADs answer for Redis); a standby pings both this
	 * often. So an idle instance that can work stays able to. */
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
	consumer_stage cur; /* the batch being applied */
	/* The batch before it, applied and waiting for its commit while the
	 * next one applies (pipelined), when pending. */
	consumer_stage pend;
	bool pending;
	unsigned backoff_ms;
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
/* Whether dependency d is due a check: silent for half of check_ms. */
bool consumer_check_due(const he_consumer *c, enum dep d, uint64_t now);
/* Ping dependency d when a check is due (twice, when the first found the
 * connection broken). */
void consumer_check_dep(he_consumer *c, enum dep d, uint64_t now);
/* consumer_check_dep(d) now, while the other server's call is retried. */
void consumer_keep_fresh(he_consumer *c, enum dep d);
/* Export the lag now. */
void consumer_lag_export(he_consumer *c);
/* A read returned n entries. */
void consumer_lag_read(he_consumer *c, const he_stream_entry *e, size_t n);
/* A batch of n (> 0) was committed. */
void consumer_lag_committed(he_consumer *c, const he_stream_entry *e, size_t n);
/* Sleep the next backoff (he_cs_backoff_next) unless stop comes first. */
void consumer_backoff(he_consumer *c);
bool consumer_stopping(he_consumer *c);
/* A write with c->epoch was refused (what; in Redis or PostgreSQL). */
void consumer_fenced(he_consumer *c, const char *what, bool in_redis);
/* Whether we may still write with c->epoch. */
bool consumer_leading(he_consumer *c);

/* ---- consumer_sync.c -------------------------------------------------------
 */

/* Take over (resync false) or compare again (true); false: leadership
 * ended, or stop. *diverged: the two positions disagreed. */
bool consumer_take_over(he_consumer *c, bool resync, bool *diverged);
/* Resync after a reconnection or a refused write. */
bool consumer_resync(he_consumer *c);

/* ---- consumer_batch.c ------------------------------------------------------
 */

enum batch_end {
	BATCH_DONE,	 /* applied, committed, offset saved */
	BATCH_ABANDONED, /* stop while a dependency failed */
	BATCH_LOST,	 /* leadership ended: nothing more is written */
	BATCH_MOVED,	 /* the saved offset moved: resync first */
};

/* Apply e[0..n) while the pending batch commits and the next is read. */
enum batch_end consumer_overlap(he_consumer *c, const he_stream_entry *e,
				size_t n, const he_stream_entry **next,
				size_t *nnext);
/* Commit the pending batch, if any. */
enum batch_end consumer_drain(he_consumer *c);
/* Free both stages' buffers. */
void consumer_stages_free(he_consumer *c);

#endif
