/*
 * he_ops.h -- what health_events tells the operator: its metrics (through the
 * host's ABI 1.1 metric services) and its readiness (set_ready).
 *
 *   health_events_entries_total{event_type,outcome}  entries committed
 *   health_events_snapshots_published_total          snapshots committed
 *   health_events_snapshots_suppressed_total         unchanged, not sent (D4)
 *   health_events_dead_letters_total                 undecodable entries
 *   health_events_lag_entries                        entries after the offset
 *   health_events_lag_seconds                        oldest uncommitted's age
 *   health_events_event_age_seconds                  age at commit (histogram)
 *   health_events_dedupe_evictions_total             games the cache forgot
 *   health_events_reads_abandoned_total              reads over the budget
 *   health_events_batch_seconds                      read-to-commit time
 *   health_events_reconnects_total                   recoveries of Redis/PG
 *   health_events_offset_gaps_total                  offset older than stream
 *
 * Ready means: both Redis and PostgreSQL answered since start and neither
 * is failing now. With a host older than ABI 1.1 (or a test double that
 * leaves the functions NULL) everything here is a no-op.
 *
 * One he_ops belongs to the consumer thread: every function below is
 * called from that thread only (he_ops_init from the main thread, before
 * the thread starts).
 */
#ifndef HE_OPS_H
#define HE_OPS_H

#include "core.h"
#include "he_events.h"

#include <apphost/component.h>

/* outcome slots: he_entry_outcome values 1..HE_ENTRY_DEAD_LETTERED */
#define HE_OPS_OUTCOMES (HE_ENTRY_DEAD_LETTERED + 1)

typedef struct he_ops {
	const apphost_services *svc; /* NULL: no metrics, no readiness */
	/* [type index or HE_EVENT_TYPE_COUNT for none][outcome], on first use
	 */
	struct apphost_metric
	    *entries[HE_EVENT_TYPE_COUNT + 1][HE_OPS_OUTCOMES];
	struct apphost_metric *published, *suppressed, *dead, *lag, *batch,
	    *reconnects, *gaps, *lag_s, *age, *evictions, *abandoned;
	he_core_stats last;		   /* core counters already exported */
	unsigned long long last_abandoned; /* abandoned reads exported */
	int ready;	  /* last readiness sent: -1 none, 0, 1 */
	char reason[256]; /* last reason sent */
} he_ops;

/*
 * svc when its table has the metric and readiness calls (ABI 1.1, all
 * set), else NULL: the one check before any of them. Any thread.
 */
const apphost_services *he_ops_services(const apphost_services *svc);
/*
 * One series (labels NULL-terminated or NULL; buckets b[nb] for a
 * histogram), NULL when svc is NULL or the host refuses it (logged).
 * svc comes from he_ops_services. Main thread, before start.
 */
struct apphost_metric *he_ops_metric(const apphost_services *svc, int type,
				     const char *name, const char *help,
				     const char *const *labels, const double *b,
				     size_t nb);
/* Add v to, or set, series m; no-ops when svc or m is NULL. Any thread. */
void he_ops_metric_add(const apphost_services *svc, struct apphost_metric *m,
		       double v);
void he_ops_metric_set(const apphost_services *svc, struct apphost_metric *m,
		       double v);

/*
 * Bind to svc (ignored unless it has the ABI 1.1 functions) and look up
 * the series that always exist. Never fails: a series the host refuses
 * stays NULL (its updates are dropped). Main thread, before start.
 */
void he_ops_init(he_ops *o, const apphost_services *svc);

/*
 * A batch of n entries was committed after `seconds`: count its entries
 * by type and outcome from `reports`, and the core's published,
 * suppressed and dead-lettered counters since the last call.
 */
void he_ops_batch(he_ops *o, he_core *core, const he_entry_report *reports,
		  size_t n, double seconds);

/* Entries after the saved offset (health_events_lag_entries). */
void he_ops_lag(he_ops *o, unsigned long long entries);

/* The age of the oldest entry not committed (health_events_lag_seconds). */
void he_ops_lag_seconds(he_ops *o, double seconds);

/* One committed entry was this old at its commit. */
void he_ops_age(he_ops *o, double seconds);

/* Reads abandoned over the byte budget, `total` since start (counted up
 * to it). */
void he_ops_abandoned(he_ops *o, unsigned long long total);

/* A failing Redis or PostgreSQL answers again. */
void he_ops_reconnected(he_ops *o);

/* The saved offset is older than the stream's first entry. */
void he_ops_gap(he_ops *o);

/*
 * Report readiness if it changed: ready or not, with `reason` (copied;
 * when ready, a note such as "standby" for /readyz).
 */
void he_ops_ready(he_ops *o, bool ready, const char *reason);

#endif
