/*
 * he_process.c -- DESIGN §6 steps 1-4 for a batch: decode, plan, one
 * store apply, then per entry the publish decision (D4) and the snapshot
 * from the stored row (D5).
 *
 * Failure atomicity: everything that can fail before the store is asked
 * (scratch space, outbox capacity, dead-letter reasons) is done first,
 * so a failed apply leaves the outbox and the dedupe cache untouched.
 * After a successful apply only the snapshot payloads are allocated; if
 * one fails the batch is rolled back (HE_ENOMEM, outbox and cache as
 * before) and the retry sees the already-applied rows, which is benign
 * except that a transition already taken is then seen as a conflict.
 * The dedupe update itself cannot fail the batch: if the cache cannot
 * grow the game is dropped from it, which only costs a repeat publish.
 */
#include "core.h"

#include "he_decoder.h"
#include "he_dedupe.h"
#include "he_outbox.h"
#include "he_snapshot.h"
#include "he_split.h"
#include "he_stream_id.h"
#include "he_text.h"
#include "he_transitions.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FINISHED	"finished"
#define LOG_GAME_ID_MAX (HE_GAME_ID_MAX * 4 + 8)
#define LOG_ID_MAX	64 /* bytes of an entry id echoed */

/* What the last published summary of an entry's game is, in the batch. */
enum last_kind {
	LAST_CACHE, /* as in the dedupe cache */
	LAST_NONE,  /* none (dropped in this batch: finished or no row) */
	LAST_ROW,   /* results[last_op].row.engine_health */
};

typedef struct item {
	he_decoded d;
	int32_t op;   /* index into ops/results, -1: dead letter */
	int32_t prev; /* earlier decodable item of the same game, or -1 */
	bool invalid; /* the transition check refused the CAS */
	bool refused; /* the store refused its data: a dead letter */
	bool publish;
	bool finished;	    /* row finished or gone: drop the game */
	uint8_t last_after; /* enum last_kind after this entry */
	int32_t last_op;    /* for LAST_ROW */
	char *reason;	    /* dead letter reason (malloc) until moved */
	char *payload;	    /* snapshot (malloc) until moved */
	size_t payload_len;
} item;

/*
 * A batch from begin to end, with its scratch, grown on demand and reused:
 * no per-entry allocation on the hot path.
 */
typedef struct plan {
	size_t cap;
	item *items;
	he_mutation *ops;
	he_mutation_result *results;
	int32_t *op_item; /* op -> index of its item (entry) */
	size_t nops;
	const he_stream_entry *entries; /* begun on these; NULL: free */
	size_t n;
	char after[HE_POSITION_MAX]; /* the position the batch follows */
} plan;

struct he_core {
	const apphost_services *svc;
	he_dedupe *cache;
	he_core_transition_fn allowed;
	/* Two, so the next batch can be begun and sent before the one whose
	 * apply came back is ended (he_core_begin). */
	plan plans[2];
	unsigned first; /* the oldest begun */
	unsigned begun; /* begun and not ended: 0, 1 or 2 */
	size_t idx_cap; /* power of two >= 2 * every plan's cap */
	int32_t *idx;	/* game id -> latest item index, -1 empty */
	/* The applied position the next batch follows (DESIGN §13). */
	char applied[HE_POSITION_MAX];
	struct {
		_Atomic uint64_t entries, transitioned, conflicts, health_only,
		    not_found, dead_lettered, published, suppressed;
	} st;
};

/* ---- logging ------------------------------------------------------------ */

static bool log_on(const he_core *c, int level)
{
	const apphost_services *s = c->svc;
	if (s == NULL || s->log == NULL)
		return false;
	return s->log_enabled == NULL || s->log_enabled(s->host, level);
}

/* Log-safe renderings of an entry id and a game id. */
static void echo_id(char out[LOG_ID_MAX * 4 + 8], const char *id)
{
	he_text_echo(out, LOG_ID_MAX * 4 + 8, id, id ? strlen(id) : 0,
		     LOG_ID_MAX);
}

static void echo_game(char out[LOG_GAME_ID_MAX], const he_decoded *d)
{
	he_text_echo(out, LOG_GAME_ID_MAX, d->game_id, d->game_id_len,
		     HE_GAME_ID_MAX);
}

/* ---- lifecycle ---------------------------------------------------------- */

int he_core_new(const apphost_services *svc, he_core **out)
{
	he_core *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return HE_ENOMEM;
	if (he_dedupe_new(&c->cache) != 0) {
		free(c);
		return HE_ENOMEM;
	}
	c->svc = svc;
	c->allowed = he_transition_allowed;
	snprintf(c->applied, sizeof(c->applied), "0-0");
	*out = c;
	return 0;
}

void he_core_free(he_core *c)
{
	if (c == NULL)
		return;
	he_dedupe_free(c->cache);
	for (int i = 0; i < 2; i++) {
		plan *p = &c->plans[i];
		free(p->items);
		free(p->ops);
		free(p->results);
		free(p->op_item);
	}
	free(c->idx);
	free(c);
}

void he_core_set_transition_fn(he_core *c, he_core_transition_fn fn)
{
	c->allowed = fn != NULL ? fn : he_transition_allowed;
}

/* Scratch for n entries in p. 0 or HE_ENOMEM (old scratch kept). */
static int ensure_scratch(he_core *c, plan *p, size_t n)
{
	if (n > INT32_MAX / 4)
		return HE_EINVAL;
	if (n > p->cap) {
		size_t cap = p->cap ? p->cap : 64;
		while (cap < n)
			cap *= 2;
		item *it = malloc(cap * sizeof(*it));
		he_mutation *ops = malloc(cap * sizeof(*ops));
		he_mutation_result *res = malloc(cap * sizeof(*res));
		int32_t *oi = malloc(cap * sizeof(*oi));
		if (it == NULL || ops == NULL || res == NULL || oi == NULL) {
			free(it);
			free(ops);
			free(res);
			free(oi);
			return HE_ENOMEM;
		}
		free(p->items);
		free(p->ops);
		free(p->results);
		free(p->op_item);
		p->items = it;
		p->ops = ops;
		p->results = res;
		p->op_item = oi;
		p->cap = cap;
	}
	if (2 * p->cap > c->idx_cap) {
		int32_t *idx = malloc(2 * p->cap * sizeof(*idx));
		if (idx == NULL)
			return HE_ENOMEM;
		free(c->idx);
		c->idx = idx;
		c->idx_cap = 2 * p->cap;
	}
	return 0;
}

/* ---- the batch ---------------------------------------------------------- */

/* Link each decodable item to the previous one of the same game. */
static void link_games(he_core *c, plan *p, size_t n)
{
	size_t mask = c->idx_cap - 1;

	memset(c->idx, 0xff, c->idx_cap * sizeof(*c->idx)); /* all -1 */
	for (size_t i = 0; i < n; i++) {
		item *it = &p->items[i];
		if (it->op < 0)
			continue;
		size_t h =
		    he_text_hash(it->d.game_id, it->d.game_id_len) & mask;
		for (;; h = (h + 1) & mask) {
			int32_t j = c->idx[h];
			if (j < 0) {
				it->prev = -1;
				break;
			}
			const he_decoded *o = &p->items[j].d;
			if (o->game_id_len == it->d.game_id_len &&
			    memcmp(o->game_id, it->d.game_id, o->game_id_len) ==
				0) {
				it->prev = j;
				break;
			}
		}
		c->idx[h] = (int32_t)i;
	}
}

/* Free what items[0..n) still own (rollback). */
static void drop_owned(plan *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p->items[i].reason);
		free(p->items[i].payload);
		p->items[i].reason = NULL;
		p->items[i].payload = NULL;
	}
}

/* Decode entries and plan the mutations. 0 or HE_ENOMEM (rolled back). */
static int plan_batch(he_core *c, plan *p, const he_stream_entry *entries,
		      size_t n, size_t *nops, size_t *ndead)
{
	char reason[HE_REASON_MAX];

	*nops = *ndead = 0;
	for (size_t i = 0; i < n; i++) {
		item *it = &p->items[i];
		memset(it, 0, sizeof(*it));
		it->op = -1;
		it->prev = -1;
		if (he_decode(&entries[i], &it->d, reason) != 0) {
			it->reason = strdup(reason);
			if (it->reason == NULL) {
				drop_owned(p, i);
				return HE_ENOMEM;
			}
			(*ndead)++;
			continue;
		}
		const he_event_type *t = it->d.type;
		he_mutation *op = &p->ops[*nops];
		*op = (he_mutation){
		    .game_id = it->d.game_id,
		    .game_id_len = it->d.game_id_len,
		    .summary = t->summary,
		};
		if (t->to != NULL) {
			if (c->allowed(t->expected, t->to)) {
				op->expected = t->expected;
				op->to = t->to;
			} else {
				it->invalid = true;
			}
		}
		p->op_item[*nops] = (int32_t)i;
		it->op = (int32_t)(*nops)++;
	}
	return 0;
}

/* Is `summary` what the game's last publish was, as of before item i? */
static bool same_as_last(he_core *c, const plan *p, const item *it,
			 const char *summary)
{
	if (it->prev < 0)
		return he_dedupe_same(c->cache, it->d.game_id,
				      it->d.game_id_len, summary);
	const item *pr = &p->items[it->prev];
	switch (pr->last_after) {
	case LAST_NONE: return false;
	case LAST_ROW:
		return strcmp(p->results[pr->last_op].row.engine_health,
			      summary) == 0;
	default:
		/* Unchanged by the batch so far: ask the cache. */
		return he_dedupe_same(c->cache, it->d.game_id,
				      it->d.game_id_len, summary);
	}
}

/* Decide publishing and build payloads. 0 or HE_ENOMEM (rolled back). */
static int decide(he_core *c, plan *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		item *it = &p->items[i];
		if (it->op < 0)
			continue;
		const he_mutation_result *r = &p->results[it->op];
		uint8_t before =
		    it->prev < 0 ? LAST_CACHE : p->items[it->prev].last_after;
		int32_t before_op =
		    it->prev < 0 ? -1 : p->items[it->prev].last_op;

		it->last_after = before;
		it->last_op = before_op;
		if (r->outcome == HE_APPLY_NOT_FOUND) {
			/* The row is gone (or never was): forget the game. */
			it->finished = true;
			it->last_after = LAST_NONE;
			continue;
		}
		/* Bound the row's strings: the store is outside our control. */
		he_mutation_result *w = &p->results[it->op];
		w->row.status[HE_STATUS_MAX - 1] = '\0';
		w->row.engine_health[HE_HEALTH_MAX - 1] = '\0';

		it->publish = r->outcome == HE_APPLY_TRANSITIONED ||
			      !same_as_last(c, p, it, r->row.engine_health);
		if (it->publish) {
			int rc = he_snapshot_build(
			    it->d.game_id, it->d.game_id_len, &r->row,
			    &it->payload, &it->payload_len);
			if (rc != 0) {
				drop_owned(p, n);
				return rc;
			}
			it->last_after = LAST_ROW;
			it->last_op = it->op;
		}
		/* Only `finished` is terminal: a stopped game may start
		 * again, so its last summary keeps suppressing repeats. */
		it->finished = strcmp(r->row.status, FINISHED) == 0;
		if (it->finished)
			it->last_after = LAST_NONE;
	}
	return 0;
}

static he_entry_outcome outcome_of(const item *it, const he_mutation_result *r)
{
	switch (r->outcome) {
	case HE_APPLY_TRANSITIONED: return HE_ENTRY_TRANSITIONED;
	case HE_APPLY_CONFLICT: return HE_ENTRY_CONFLICT;
	case HE_APPLY_NOT_FOUND: return HE_ENTRY_NOT_FOUND;
	case HE_APPLY_HEALTH: break;
	}
	return it->invalid ? HE_ENTRY_INVALID_TRANSITION : HE_ENTRY_HEALTH_ONLY;
}

/* Log what happened to a decodable entry (never above warn). */
static void log_entry(he_core *c, const he_stream_entry *e, const item *it,
		      he_entry_outcome o, const he_row *row)
{
	char gid[LOG_GAME_ID_MAX], id[LOG_ID_MAX * 4 + 8];
	const he_event_type *t = it->d.type;
	int level;

	if (o == HE_ENTRY_NOT_FOUND)
		level = APPHOST_LOG_WARN;
	else if (o == HE_ENTRY_CONFLICT || o == HE_ENTRY_INVALID_TRANSITION)
		level = APPHOST_LOG_DEBUG;
	else
		return;
	if (!log_on(c, level))
		return;
	echo_game(gid, &it->d);
	echo_id(id, e->id);
	if (o == HE_ENTRY_NOT_FOUND)
		c->svc->log(c->svc->host, level, "no runtime record for game",
			    "game_id=\"%s\" entry=%s event_type=%s", gid, id,
			    t->name);
	else if (o == HE_ENTRY_CONFLICT)
		c->svc->log(c->svc->host, level,
			    "status CAS lost, health-only update",
			    "game_id=\"%s\" entry=%s event_type=%s expected=%s "
			    "to=%s status=%s",
			    gid, id, t->name, t->expected, t->to, row->status);
	else
		c->svc->log(
		    c->svc->host, level,
		    "transition not allowed, health-only update",
		    "game_id=\"%s\" entry=%s event_type=%s from=%s to=%s", gid,
		    id, t->name, t->expected, t->to);
}

static void log_dead(he_core *c, const he_stream_entry *e, const item *it)
{
	char id[LOG_ID_MAX * 4 + 8], r[HE_REASON_MAX * 2];

	if (!log_on(c, APPHOST_LOG_WARN))
		return;
	echo_id(id, e->id);
	he_text_echo(r, sizeof(r), it->reason, strlen(it->reason),
		     HE_REASON_MAX);
	c->svc->log(c->svc->host, APPHOST_LOG_WARN,
		    it->refused ? "entry refused by the database sent to dead "
				  "letters"
				: "undecodable entry sent to dead letters",
		    "entry=%s reason=\"%s\"", id, r);
}

/* The refused op's entry becomes a dead letter. 0 or HE_ENOMEM. */
static int refuse(plan *p, const he_record_store *store, size_t op)
{
	static const char prefix[] = "refused by the database: ";
	char echo[HE_REASON_MAX - sizeof(prefix) + 1], reason[HE_REASON_MAX];
	const char *why = store->refusal ? store->refusal(store->ctx) : NULL;

	if (why == NULL || *why == '\0')
		why = he_strerror(HE_EDATA);
	he_text_echo(echo, sizeof(echo), why, strlen(why), sizeof(echo));
	snprintf(reason, sizeof(reason), "%s%s", prefix, echo);
	item *it = &p->items[p->op_item[op]];
	if ((it->reason = strdup(reason)) == NULL)
		return HE_ENOMEM;
	it->op = -1;
	it->refused = true;
	return 0;
}

/*
 * The applied positions around ops[a..b): the first range starts where
 * the batch does (leading undecodable entries included), each later one
 * right after the entry before its first op; the last range ends at the
 * batch's last entry, each other one at the entry before the next op.
 */
static he_apply_span span_of(const plan *p, const he_stream_entry *e,
			     size_t n, size_t nops, size_t a, size_t b)
{
	return (he_apply_span){
	    .after = a == 0 ? p->after : e[p->op_item[a] - 1].id,
	    .last = b == nops ? e[n - 1].id : e[p->op_item[b] - 1].id,
	};
}

/*
 * Run the planned ops through the store in stream order, each apply a
 * compare-and-set on the applied position (he_apply_span). A data error
 * (HE_EDATA) is not retried: the batch is split until the refused op
 * stands alone (he_split.h), its entry becomes a dead letter with the
 * store's text, an apply without ops moves the position over it and
 * records why, and the rest applies. A batch of undecodable entries only
 * moves the position. Returns 0, or the store's other error: the caller
 * retries the batch, whose first apply then finds the position moved by
 * the ranges that had applied (HE_EPOSITION), and resyncs.
 */
static int apply_split(plan *p, const he_record_store *store,
		       const he_stream_entry *e, size_t n, size_t nops,
		       int first_rc)
{
	he_split sp;

	if (nops == 0)
		return first_rc;
	he_split_init(&sp, nops);
	for (bool first = true; he_split_more(&sp); first = false) {
		size_t off, len, op;
		he_split_range(&sp, &off, &len);
		he_apply_span span = span_of(p, e, n, nops, off, off + len);
		int rc = first ? first_rc
			       : store->apply(store->ctx, &span, p->ops + off,
					      len, p->results + off);
		if (rc != 0 && rc != HE_EDATA)
			return rc;
		if (he_split_result(&sp, rc == HE_EDATA, &op) !=
		    HE_SPLIT_REFUSED)
			continue;
		if ((rc = refuse(p, store, op)) != 0)
			return rc;
		span = span_of(p, e, n, nops, op, op + 1);
		const item *it = &p->items[p->op_item[op]];
		span.refused_id = e[p->op_item[op]].id;
		span.refused_reason = it->reason;
		if ((rc = store->apply(store->ctx, &span, p->ops, 0,
				       p->results)) != 0)
			return rc;
	}
	return 0;
}

/* Remember a publish; on allocation failure forget the game instead. */
static void remember(he_core *c, const item *it, const char *summary)
{
	if (he_dedupe_set(c->cache, it->d.game_id, it->d.game_id_len,
			  summary) == 0)
		return;
	he_dedupe_remove(c->cache, it->d.game_id, it->d.game_id_len);
	if (log_on(c, APPHOST_LOG_WARN)) {
		char gid[LOG_GAME_ID_MAX];
		echo_game(gid, &it->d);
		c->svc->log(c->svc->host, APPHOST_LOG_WARN,
			    "dedupe cache full, game not remembered",
			    "game_id=\"%s\"", gid);
	}
}

int he_core_begin(he_core *c, const he_stream_entry *entries, size_t n,
		  he_outbox *box, he_core_apply *out)
{
	size_t nops, ndead;
	int rc;

	if (c == NULL || box == NULL || out == NULL || n == 0 ||
	    entries == NULL)
		return HE_EINVAL;
	if (entries[n - 1].id == NULL ||
	    strlen(entries[n - 1].id) >= sizeof(box->last_id))
		return HE_EINVAL;
	if (c->begun == 2)
		return HE_ESTATE;
	plan *p = &c->plans[(c->first + c->begun) % 2];
	if ((rc = ensure_scratch(c, p, n)) != 0)
		return rc;
	if ((rc = plan_batch(c, p, entries, n, &nops, &ndead)) != 0)
		return rc;
	/* Any decodable entry may turn out refused: room for all as dead. */
	if ((rc = he_outbox_reserve(box, nops, ndead + nops)) != 0) {
		drop_owned(p, n);
		return rc;
	}
	/* A batch begun before the one ahead of it ended follows it. */
	const plan *ahead = c->begun ? &c->plans[c->first] : NULL;
	snprintf(p->after, sizeof(p->after), "%s",
		 ahead ? ahead->entries[ahead->n - 1].id : c->applied);
	p->nops = nops;
	p->entries = entries;
	p->n = n;
	c->begun++;
	*out = (he_core_apply){
	    .span = span_of(p, entries, n, nops, 0, nops),
	    .ops = p->ops,
	    .nops = nops,
	    .results = p->results,
	};
	return 0;
}

int he_core_process(he_core *c, const he_stream_entry *entries, size_t n,
		    const he_record_store *store, he_outbox *box,
		    he_entry_report *reports)
{
	he_core_apply a;

	if (c == NULL || store == NULL || store->apply == NULL || box == NULL ||
	    (n > 0 && entries == NULL))
		return HE_EINVAL;
	if (n == 0)
		return 0;
	int rc = he_core_begin(c, entries, n, box, &a);
	if (rc != 0)
		return rc;
	rc = store->apply(store->ctx, &a.span, a.ops, a.nops, a.results);
	return he_core_end(c, entries, n, rc, store, box, reports);
}

/* The oldest batch begun ends (whether or not it applied). */
static void end_plan(he_core *c, plan *p)
{
	p->entries = NULL;
	c->first = (c->first + 1) % 2;
	c->begun--;
}

int he_core_end(he_core *c, const he_stream_entry *entries, size_t n,
		int apply_rc, const he_record_store *store, he_outbox *box,
		he_entry_report *reports)
{
	if (c == NULL || c->begun == 0 ||
	    c->plans[c->first].entries != entries ||
	    c->plans[c->first].n != n)
		return HE_EINVAL; /* not the oldest batch begun */
	plan *p = &c->plans[c->first];
	size_t nops = p->nops;
	int rc;

	end_plan(c, p);
	if (apply_rc == HE_EDATA && (store == NULL || store->apply == NULL))
		apply_rc = HE_EINVAL;
	if ((rc = apply_split(p, store, entries, n, nops, apply_rc)) != 0) {
		drop_owned(p, n);
		return rc;
	}
	link_games(c, p, n);
	if ((rc = decide(c, p, n)) != 0)
		return rc;

	/* Commit: nothing below can fail. */
	snprintf(c->applied, sizeof(c->applied), "%s", entries[n - 1].id);
	for (size_t i = 0; i < n; i++) {
		item *it = &p->items[i];
		const he_stream_entry *e = &entries[i];
		he_entry_report rep = {0};

		if (it->op < 0) {
			log_dead(c, e, it);
			rep.outcome = HE_ENTRY_DEAD_LETTERED;
			rep.reason = it->reason;
			/* Capacity reserved above: cannot fail. */
			(void)he_outbox_add_dead(box, e, it->reason);
			it->reason = NULL;
			atomic_fetch_add(&c->st.dead_lettered, 1);
		} else {
			const he_mutation_result *r = &p->results[it->op];
			rep.outcome = outcome_of(it, r);
			rep.event_type = it->d.type->name;
			log_entry(c, e, it, rep.outcome, &r->row);
			if (it->publish) {
				(void)he_outbox_add_snapshot(
				    box, it->d.game_id, it->d.game_id_len,
				    e->id, it->payload, it->payload_len);
				it->payload = NULL;
				rep.published = true;
				remember(c, it, r->row.engine_health);
				atomic_fetch_add(&c->st.published, 1);
			} else if (rep.outcome != HE_ENTRY_NOT_FOUND) {
				atomic_fetch_add(&c->st.suppressed, 1);
			}
			if (it->finished)
				he_dedupe_remove(c->cache, it->d.game_id,
						 it->d.game_id_len);
			switch (rep.outcome) {
			case HE_ENTRY_TRANSITIONED:
				atomic_fetch_add(&c->st.transitioned, 1);
				break;
			case HE_ENTRY_CONFLICT:
			case HE_ENTRY_INVALID_TRANSITION:
				atomic_fetch_add(&c->st.conflicts, 1);
				break;
			case HE_ENTRY_NOT_FOUND:
				atomic_fetch_add(&c->st.not_found, 1);
				break;
			default: atomic_fetch_add(&c->st.health_only, 1);
			}
		}
		if (reports != NULL)
			reports[i] = rep;
	}
	atomic_fetch_add(&c->st.entries, n);
	(void)he_outbox_set_last_id(box, entries[n - 1].id);
	return 0;
}

/* ---- cache operations --------------------------------------------------- */

int he_core_set_applied(he_core *c, const char *position)
{
	he_stream_id id;
	if (c == NULL || position == NULL ||
	    strlen(position) >= sizeof(c->applied) ||
	    he_stream_id_parse(position, &id) != 0)
		return HE_EINVAL;
	snprintf(c->applied, sizeof(c->applied), "%s", position);
	return 0;
}

const char *he_core_applied(const he_core *c)
{
	return c->applied;
}

void he_core_forget(he_core *c, const he_outbox *box)
{
	if (c == NULL || box == NULL)
		return;
	for (size_t i = 0; i < box->nsnapshots; i++)
		he_dedupe_remove(c->cache, box->snapshots[i].game_id,
				 box->snapshots[i].game_id_len);
}

void he_core_reset(he_core *c)
{
	if (c != NULL)
		he_dedupe_clear(c->cache);
}

size_t he_core_cache_size(he_core *c)
{
	return c != NULL ? he_dedupe_size(c->cache) : 0;
}

int he_core_export(he_core *c, void **buf, size_t *len)
{
	if (c == NULL || buf == NULL || len == NULL)
		return HE_EINVAL;
	return he_dedupe_export(c->cache, buf, len);
}

int he_core_import(he_core *c, const void *buf, size_t len)
{
	if (c == NULL)
		return HE_EINVAL;
	return he_dedupe_import(c->cache, buf, len);
}

void he_core_get_stats(he_core *c, he_core_stats *out)
{
	*out = (he_core_stats){
	    .entries = atomic_load(&c->st.entries),
	    .transitioned = atomic_load(&c->st.transitioned),
	    .conflicts = atomic_load(&c->st.conflicts),
	    .health_only = atomic_load(&c->st.health_only),
	    .not_found = atomic_load(&c->st.not_found),
	    .dead_lettered = atomic_load(&c->st.dead_lettered),
	    .published = atomic_load(&c->st.published),
	    .suppressed = atomic_load(&c->st.suppressed),
	    .evictions = he_dedupe_evictions(c->cache),
	};
}
