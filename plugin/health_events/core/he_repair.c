/*
 * he_repair.c -- what a lost commit held, rebuilt without applying
 * anything (DESIGN §13, Redis behind the applied position).
 *
 * The rows already hold the entries' effects, and may hold newer writes
 * of other flows since: applying again would override those. What Lobby
 * missed is the state, so every game the entries touched gets a snapshot
 * of its current row (D5), with the id of the last entry that touched it
 * as source_id; the dead letters are sent again, undecodable entries with
 * their reasons decoded anew, the entries the database refused with the
 * reason recorded when it refused them.
 */
#include "core.h"

#include "he_decoder.h"
#include "he_outbox.h"
#include "he_snapshot.h"
#include "he_text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Entries recorded refused in the span, by id. */
typedef struct refusals {
	size_t n, cap;
	struct refused {
		char *id, *reason;
	} * v;
	int rc;
} refusals;

static void add_refused(void *arg, const char *id, const char *reason)
{
	refusals *r = arg;
	if (r->rc != 0)
		return;
	if (he_grow((void **)&r->v, &r->cap, r->n + 1, sizeof(*r->v)) < 0) {
		r->rc = HE_ENOMEM;
		return;
	}
	struct refused *e = &r->v[r->n];
	e->id = strdup(id);
	e->reason = strdup(reason);
	if (!e->id || !e->reason) {
		free(e->id);
		free(e->reason);
		r->rc = HE_ENOMEM;
		return;
	}
	r->n++;
}

static void refusals_free(refusals *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].id);
		free(r->v[i].reason);
	}
	free(r->v);
}

static const char *refused_reason(const refusals *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].id, id) == 0)
			return r->v[i].reason;
	return NULL;
}

/* Scratch of one repair: per entry its decoding, per game its last entry. */
typedef struct scratch {
	he_decoded *d;	  /* per entry; type NULL: a dead letter */
	char **reason;	  /* per entry: its dead-letter reason, or NULL */
	int32_t *idx;	  /* open addressing: game -> ops index, -1 empty */
	size_t mask;	  /* idx size - 1 */
	he_mutation *ops; /* one per game, in the order of its last entry */
	int32_t *src;	  /* ops index -> entry index of its last entry */
	he_mutation_result *rows;
} scratch;

static void scratch_free(scratch *s, size_t n)
{
	for (size_t i = 0; s->reason && i < n; i++)
		free(s->reason[i]);
	free(s->d);
	free(s->reason);
	free(s->idx);
	free(s->ops);
	free(s->src);
	free(s->rows);
}

static int scratch_new(scratch *s, size_t n)
{
	size_t cap = 16;
	while (cap < 2 * n)
		cap *= 2;
	*s = (scratch){
	    .d = calloc(n, sizeof(*s->d)),
	    .reason = calloc(n, sizeof(*s->reason)),
	    .idx = malloc(cap * sizeof(*s->idx)),
	    .mask = cap - 1,
	    .ops = calloc(n, sizeof(*s->ops)),
	    .src = calloc(n, sizeof(*s->src)),
	    .rows = calloc(n, sizeof(*s->rows)),
	};
	if (!s->d || !s->reason || !s->idx || !s->ops || !s->src || !s->rows)
		return HE_ENOMEM;
	memset(s->idx, 0xff, cap * sizeof(*s->idx));
	return 0;
}

/* The game's slot in ops (added when new); its last entry is entry i. */
static void touch(scratch *s, size_t *ngames, size_t i)
{
	const he_decoded *d = &s->d[i];
	size_t h = he_text_hash(d->game_id, d->game_id_len) & s->mask;
	for (;; h = (h + 1) & s->mask) {
		int32_t k = s->idx[h];
		if (k < 0)
			break;
		const he_mutation *m = &s->ops[k];
		if (m->game_id_len == d->game_id_len &&
		    memcmp(m->game_id, d->game_id, d->game_id_len) == 0) {
			s->src[k] = (int32_t)i;
			return;
		}
	}
	s->idx[h] = (int32_t)*ngames;
	s->ops[*ngames] = (he_mutation){.game_id = d->game_id,
					.game_id_len = d->game_id_len,
					.summary = ""};
	s->src[*ngames] = (int32_t)i;
	(*ngames)++;
}

/* Snapshots of games ordered by their last entry: sort ops by src. */
static int by_src(const void *a, const void *b, void *arg)
{
	const int32_t *src = arg;
	int32_t x = src[*(const int32_t *)a], y = src[*(const int32_t *)b];
	return (x > y) - (x < y);
}

static int fill(he_core *c, const he_stream_entry *e, size_t n, scratch *s,
		size_t ngames, he_outbox *box)
{
	int32_t *order = malloc((ngames ? ngames : 1) * sizeof(*order));
	if (!order)
		return HE_ENOMEM;
	for (size_t k = 0; k < ngames; k++)
		order[k] = (int32_t)k;
	qsort_r(order, ngames, sizeof(*order), by_src, s->src);
	int rc = 0;
	for (size_t j = 0; j < ngames && rc == 0; j++) {
		int32_t k = order[j];
		const he_mutation_result *r = &s->rows[k];
		if (r->outcome == HE_APPLY_NOT_FOUND)
			continue;
		char *payload;
		size_t len;
		rc = he_snapshot_build(s->ops[k].game_id, s->ops[k].game_id_len,
				       &r->row, &payload, &len);
		if (rc == 0)
			(void)he_outbox_add_snapshot(
			    box, s->ops[k].game_id, s->ops[k].game_id_len,
			    e[s->src[k]].id, payload, len); /* reserved */
	}
	free(order);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (s->reason[i]) {
			(void)he_outbox_add_dead(box, &e[i], s->reason[i]);
			s->reason[i] = NULL; /* owned by the outbox now */
		}
	if (rc == 0) {
		he_core_forget(c, box);
		rc = he_outbox_set_last_id(box, e[n - 1].id);
	}
	return rc;
}

int he_core_repair(he_core *c, const char *after, const he_stream_entry *e,
		   size_t n, const he_record_store *store, he_outbox *box,
		   size_t *ngames_out)
{
	if (c == NULL || after == NULL || store == NULL ||
	    store->rows == NULL || box == NULL || n == 0 || e == NULL)
		return HE_EINVAL;
	refusals rf = {0};
	scratch s;
	size_t ngames = 0, ndead = 0;
	int rc = scratch_new(&s, n);
	if (rc == 0 && store->refused)
		rc = store->refused(store->ctx, after, e[n - 1].id, add_refused,
				    &rf);
	if (rc == 0)
		rc = rf.rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char why[HE_REASON_MAX];
		const char *refused;
		if (he_decode(&e[i], &s.d[i], why) != 0)
			s.reason[i] = strdup(why);
		else if ((refused = refused_reason(&rf, e[i].id)) != NULL)
			s.reason[i] = strdup(refused);
		else {
			touch(&s, &ngames, i);
			continue;
		}
		if (!s.reason[i])
			rc = HE_ENOMEM;
		ndead++;
	}
	if (rc == 0 && ngames > 0)
		rc = store->rows(store->ctx, s.ops, ngames, s.rows);
	if (rc == 0)
		rc = he_outbox_reserve(box, ngames, ndead);
	if (rc == 0)
		rc = fill(c, e, n, &s, ngames, box);
	if (rc == 0 && ngames_out)
		*ngames_out = ngames;
	scratch_free(&s, n);
	refusals_free(&rf);
	return rc;
}
