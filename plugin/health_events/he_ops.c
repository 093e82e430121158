/* he_ops.c -- see he_ops.h. */
#include "he_ops.h"

#include <stdio.h>
#include <string.h>

/* An entry's age at commit, RTM to Lobby: tens of ms when caught up, up
 * to an hour behind an outage. */
static const double age_buckets[] = {
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};

/* Batch times from 1 ms to 10 s (one apply round trip plus one commit). */
static const double batch_buckets[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

const apphost_services *he_ops_services(const apphost_services *svc)
{
	/* A test double may leave them NULL in a table long enough. */
	if (!svc || !APPHOST_SVC_HAS(svc, set_ready) || !svc->metric_get ||
	    !svc->metric_add || !svc->metric_set || !svc->metric_observe ||
	    !svc->set_ready)
		return NULL;
	return svc;
}

struct apphost_metric *he_ops_metric(const apphost_services *svc, int type,
				     const char *name, const char *help,
				     const char *const *labels, const double *b,
				     size_t nb)
{
	struct apphost_metric *m = NULL;
	if (svc && svc->metric_get(svc->host, type, name, help, labels, b, nb,
				   &m) < 0) {
		svc->log(svc->host, APPHOST_LOG_WARN,
			 "metric refused by the host", "metric=%s", name);
		m = NULL;
	}
	return m;
}

void he_ops_metric_add(const apphost_services *svc, struct apphost_metric *m,
		       double v)
{
	if (svc && m)
		svc->metric_add(svc->host, m, v);
}

void he_ops_metric_set(const apphost_services *svc, struct apphost_metric *m,
		       double v)
{
	if (svc && m)
		svc->metric_set(svc->host, m, v);
}

static struct apphost_metric *get(he_ops *o, int type, const char *name,
				  const char *help, const char *const *labels,
				  const double *b, size_t nb)
{
	return he_ops_metric(o->svc, type, name, help, labels, b, nb);
}

static void add(he_ops *o, struct apphost_metric *m, double v)
{
	he_ops_metric_add(o->svc, m, v);
}

void he_ops_init(he_ops *o, const apphost_services *svc)
{
	memset(o, 0, sizeof(*o));
	o->ready = -1;
	if (!(o->svc = he_ops_services(svc)))
		return;
	/* The series without labels, each in its he_ops slot. */
	const struct {
		struct apphost_metric **slot;
		int type;
		const char *name, *help;
	} fixed[] = {
	    {&o->published, APPHOST_METRIC_COUNTER,
	     "health_events_snapshots_published_total",
	     "Snapshots committed to the lobby stream."},
	    {&o->suppressed, APPHOST_METRIC_COUNTER,
	     "health_events_snapshots_suppressed_total",
	     "Entries whose snapshot equalled the last one published for the "
	     "game (not sent)."},
	    {&o->dead, APPHOST_METRIC_COUNTER,
	     "health_events_dead_letters_total",
	     "Undecodable entries sent to the dead-letter stream."},
	    {&o->lag, APPHOST_METRIC_GAUGE, "health_events_lag_entries",
	     "Entries in the input stream after the saved offset (refreshed "
	     "every few seconds, capped at 100000)."},
	    {&o->reconnects, APPHOST_METRIC_COUNTER,
	     "health_events_reconnects_total",
	     "Times a failing Redis or PostgreSQL answered again."},
	    {&o->lag_s, APPHOST_METRIC_GAUGE, "health_events_lag_seconds",
	     "Age of the oldest input entry not yet committed, by Redis's "
	     "clock (0 when caught up and on a standby)."},
	    {&o->evictions, APPHOST_METRIC_COUNTER,
	     "health_events_dedupe_evictions_total",
	     "Games the dedupe cache forgot to stay within its memory budget "
	     "(their next snapshot is sent even if unchanged)."},
	    {&o->abandoned, APPHOST_METRIC_COUNTER,
	     "health_events_reads_abandoned_total",
	     "Reads abandoned because the reply outgrew the byte budget (read "
	     "again with a smaller COUNT)."},
	    {&o->gaps, APPHOST_METRIC_COUNTER,
	     "health_events_offset_gaps_total",
	     "Start-ups whose saved offset was older than the stream's first "
	     "entry (entries may have been trimmed unread)."},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		*fixed[i].slot = get(o, fixed[i].type, fixed[i].name,
				     fixed[i].help, NULL, NULL, 0);
	o->batch =
	    get(o, APPHOST_METRIC_HISTOGRAM, "health_events_batch_seconds",
		"Time from reading a batch to committing its effects, "
		"snapshots and offset.",
		NULL, batch_buckets,
		sizeof(batch_buckets) / sizeof(batch_buckets[0]));
	o->age = get(
	    o, APPHOST_METRIC_HISTOGRAM, "health_events_event_age_seconds",
	    "Age of each committed entry at its commit, by Redis's "
	    "clock: the delay from RTM to Lobby.",
	    NULL, age_buckets, sizeof(age_buckets) / sizeof(age_buckets[0]));
}

/* The series for one report, looked up on first use. */
static struct apphost_metric *entry_series(he_ops *o, const he_entry_report *r)
{
	size_t t = HE_EVENT_TYPE_COUNT;
	for (size_t i = 0; i < HE_EVENT_TYPE_COUNT && r->event_type; i++)
		if (strcmp(he_event_at(i)->name, r->event_type) == 0)
			t = i;
	if (r->outcome < 1 || r->outcome >= HE_OPS_OUTCOMES)
		return NULL;
	struct apphost_metric **m = &o->entries[t][r->outcome];
	if (!*m) {
		const char *labels[] = {
		    "event_type",
		    t < HE_EVENT_TYPE_COUNT ? he_event_at(t)->name : "none",
		    "outcome", he_entry_outcome_name(r->outcome), NULL};
		*m = get(o, APPHOST_METRIC_COUNTER,
			 "health_events_entries_total",
			 "Entries committed, by event_type (none: "
			 "undecodable) and outcome.",
			 labels, NULL, 0);
	}
	return *m;
}

void he_ops_batch(he_ops *o, he_core *core, const he_entry_report *reports,
		  size_t n, double seconds)
{
	if (!o->svc)
		return;
	for (size_t i = 0; i < n; i++)
		add(o, entry_series(o, &reports[i]), 1);
	he_core_stats s;
	he_core_get_stats(core, &s);
	add(o, o->published, (double)(s.published - o->last.published));
	add(o, o->suppressed, (double)(s.suppressed - o->last.suppressed));
	add(o, o->dead, (double)(s.dead_lettered - o->last.dead_lettered));
	add(o, o->evictions, (double)(s.evictions - o->last.evictions));
	o->last = s;
	if (o->batch)
		o->svc->metric_observe(o->svc->host, o->batch, seconds);
}

void he_ops_lag(he_ops *o, unsigned long long entries)
{
	he_ops_metric_set(o->svc, o->lag, (double)entries);
}

void he_ops_lag_seconds(he_ops *o, double seconds)
{
	he_ops_metric_set(o->svc, o->lag_s, seconds);
}

void he_ops_age(he_ops *o, double seconds)
{
	if (o->svc && o->age)
		o->svc->metric_observe(o->svc->host, o->age, seconds);
}

void he_ops_abandoned(he_ops *o, unsigned long long total)
{
	add(o, o->abandoned, (double)(total - o->last_abandoned));
	o->last_abandoned = total;
}

void he_ops_reconnected(he_ops *o)
{
	add(o, o->reconnects, 1);
}

void he_ops_gap(he_ops *o)
{
	add(o, o->gaps, 1);
}

void he_ops_ready(he_ops *o, bool ready, const char *reason)
{
	if (!o->svc)
		return;
	if (!reason)
		reason = "";
	if (o->ready == (int)ready && strcmp(o->reason, reason) == 0)
		return;
	o->ready = ready;
	snprintf(o->reason, sizeof(o->reason), "%s", reason);
	o->svc->set_ready(o->svc->host, ready, reason);
}
