/*
 * memory_ports.c -- in-memory record store and stream port.
 */
#include "memory_ports.h"

#include "he_decoder.h"
#include "he_stream_id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- record store ------------------------------------------------------ */

typedef struct row_node {
	struct row_node *next;
	char *game_id;
	size_t len;
	he_row row;
} row_node;

typedef struct undo {
	row_node *node;
	he_row before;
} undo;

struct mem_store {
	row_node **buckets;
	size_t nbuckets, nrows;
	int fail_code;
	int fail_after, fail_after_code;
	mem_store_hook before_apply, on_conflict;
	void *before_ud, *conflict_ud;
	size_t apply_calls, ops_seen;
	he_mutation *last_ops;
	size_t nlast;
	undo *undo;
	size_t nundo, undo_cap;
	char refuse[8][64]; /* games whose ops fail the apply */
	int refuse_code[8];
	size_t nrefuse;
	char refusal[128];
	char position[HE_POSITION_MAX]; /* applied position, "" none yet */
	struct {
		char id[HE_POSITION_MAX], reason[HE_REASON_MAX];
	} refused[16]; /* the first 16 recorded */
	size_t nrefused;
};

static size_t hash_n(const char *p, size_t n)
{
	size_t h = 5381;
	for (size_t i = 0; i < n; i++)
		h = h * 33 + (unsigned char)p[i];
	return h;
}

static row_node *find(mem_store *s, const char *g, size_t n)
{
	row_node *r = s->buckets[hash_n(g, n) % s->nbuckets];
	for (; r != NULL; r = r->next)
		if (r->len == n && memcmp(r->game_id, g, n) == 0)
			return r;
	return NULL;
}

static void set_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

static int grow(mem_store *s)
{
	size_t nb = s->nbuckets * 2;
	row_node **b = calloc(nb, sizeof(*b));
	if (b == NULL)
		return HE_ENOMEM;
	for (size_t i = 0; i < s->nbuckets; i++) {
		row_node *r = s->buckets[i];
		while (r != NULL) {
			row_node *next = r->next;
			size_t h = hash_n(r->game_id, r->len) % nb;
			r->next = b[h];
			b[h] = r;
			r = next;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = nb;
	return 0;
}

mem_store *mem_store_new(void)
{
	mem_store *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->nbuckets = 64;
	s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
	if (s->buckets == NULL) {
		free(s);
		return NULL;
	}
	s->fail_after = -1;
	return s;
}

void mem_store_free(mem_store *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		row_node *r = s->buckets[i];
		while (r != NULL) {
			row_node *next = r->next;
			free(r->game_id);
			free(r);
			r = next;
		}
	}
	free(s->buckets);
	free(s->last_ops);
	free(s->undo);
	free(s);
}

int mem_store_put_n(mem_store *s, const char *game_id, size_t len,
		    const char *status, const char *engine_health,
		    int current_turn)
{
	row_node *r = find(s, game_id, len);
	if (r == NULL) {
		if (s->nrows + 1 > s->nbuckets && grow(s) != 0)
			return HE_ENOMEM;
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return HE_ENOMEM;
		r->game_id = malloc(len ? len : 1);
		if (r->game_id == NULL) {
			free(r);
			return HE_ENOMEM;
		}
		memcpy(r->game_id, game_id, len);
		r->len = len;
		size_t h = hash_n(game_id, len) % s->nbuckets;
		r->next = s->buckets[h];
		s->buckets[h] = r;
		s->nrows++;
	}
	set_str(r->row.status, sizeof(r->row.status), status);
	set_str(r->row.engine_health, sizeof(r->row.engine_health),
		engine_health);
	r->row.current_turn = current_turn;
	return 0;
}

int mem_store_put(mem_store *s, const char *game_id, const char *status,
		  const char *engine_health, int current_turn)
{
	return mem_store_put_n(s, game_id, strlen(game_id), status,
			       engine_health, current_turn);
}

bool mem_store_set_status(mem_store *s, const char *game_id, const char *status)
{
	row_node *r = find(s, game_id, strlen(game_id));
	if (r == NULL)
		return false;
	set_str(r->row.status, sizeof(r->row.status), status);
	return true;
}

bool mem_store_delete(mem_store *s, const char *game_id)
{
	size_t len = strlen(game_id);
	row_node **p = &s->buckets[hash_n(game_id, len) % s->nbuckets];
	for (; *p != NULL; p = &(*p)->next) {
		row_node *r = *p;
		if (r->len == len && memcmp(r->game_id, game_id, len) == 0) {
			*p = r->next;
			free(r->game_id);
			free(r);
			s->nrows--;
			return true;
		}
	}
	return false;
}

bool mem_store_get_n(mem_store *s, const char *game_id, size_t len, he_row *out)
{
	row_node *r = find(s, game_id, len);
	if (r == NULL)
		return false;
	*out = r->row;
	return true;
}

bool mem_store_get(mem_store *s, const char *game_id, he_row *out)
{
	return mem_store_get_n(s, game_id, strlen(game_id), out);
}

size_t mem_store_rows(mem_store *s)
{
	return s->nrows;
}

void mem_store_fail(mem_store *s, int code)
{
	s->fail_code = code;
}

void mem_store_fail_after(mem_store *s, int k, int code)
{
	s->fail_after = k;
	s->fail_after_code = code;
}

void mem_store_set_before_apply(mem_store *s, mem_store_hook fn, void *ud)
{
	s->before_apply = fn;
	s->before_ud = ud;
}

void mem_store_set_on_conflict(mem_store *s, mem_store_hook fn, void *ud)
{
	s->on_conflict = fn;
	s->conflict_ud = ud;
}

size_t mem_store_apply_calls(mem_store *s)
{
	return s->apply_calls;
}

size_t mem_store_ops_seen(mem_store *s)
{
	return s->ops_seen;
}

const he_mutation *mem_store_last_ops(mem_store *s, size_t *n)
{
	*n = s->nlast;
	return s->last_ops;
}

/*
 * Makes room for one more element in a doubling array (*arr, *cap of elem
 * bytes each) holding n, starting at first; the undo journal and the
 * commit log grow the same way.
 */
static int reserve_one(void **arr, size_t *cap, size_t n, size_t elem,
		       size_t first)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : first;
	void *p = realloc(*arr, nc * elem);
	if (p == NULL)
		return HE_ENOMEM;
	*arr = p;
	*cap = nc;
	return 0;
}

static int journal(mem_store *s, row_node *r)
{
	void *u = s->undo;
	int rc = reserve_one(&u, &s->undo_cap, s->nundo, sizeof(*s->undo), 16);
	s->undo = u;
	if (rc != 0)
		return rc;
	s->undo[s->nundo++] = (undo){r, r->row};
	return 0;
}

static void rollback(mem_store *s)
{
	while (s->nundo > 0) {
		undo *u = &s->undo[--s->nundo];
		u->node->row = u->before;
	}
}

/* Compare stream ids as numbers, as the schema does; ids must parse. */
static int id_cmp(const char *a, const char *b)
{
	he_stream_id x, y;
	if (he_stream_id_parse(a, &x) != 0 || he_stream_id_parse(b, &y) != 0)
		return -2;
	return he_stream_id_cmp(x, y);
}

/* The schema's compare-and-set on the applied position (004). */
static int check_span(const mem_store *s, const he_apply_span *span)
{
	int c = id_cmp(span->last, span->after);
	if (c == -2 || c <= 0)
		return HE_EINVAL; /* the schema's 22023: a caller's bug */
	if (s->position[0] && id_cmp(s->position, span->after) != 0)
		return HE_EPOSITION;
	return 0;
}

static int apply(void *ctx, const he_apply_span *span, const he_mutation *ops,
		 size_t n, he_mutation_result *results)
{
	mem_store *s = ctx;

	s->apply_calls++;
	if (s->before_apply != NULL)
		s->before_apply(s, NULL, -1, s->before_ud);
	if (s->fail_code != 0)
		return s->fail_code;
	int rc = check_span(s, span);
	if (rc != 0)
		return rc;
	s->ops_seen += n;
	he_mutation *copy = malloc((n ? n : 1) * sizeof(*copy));
	if (copy == NULL)
		return HE_ENOMEM;
	if (n > 0)
		memcpy(copy, ops, n * sizeof(*copy));
	free(s->last_ops);
	s->last_ops = copy;
	s->nlast = n;

	s->nundo = 0;
	for (size_t i = 0; i < n; i++) {
		const he_mutation *op = &ops[i];
		if (s->fail_after >= 0 && i == (size_t)s->fail_after) {
			rollback(s);
			return s->fail_after_code;
		}
		for (size_t k = 0; k < s->nrefuse; k++)
			if (strlen(s->refuse[k]) == op->game_id_len &&
			    memcmp(s->refuse[k], op->game_id,
				   op->game_id_len) == 0) {
				rollback(s);
				snprintf(s->refusal, sizeof(s->refusal),
					 "game %s refused\n(line two)",
					 s->refuse[k]);
				return s->refuse_code[k];
			}
		row_node *r = find(s, op->game_id, op->game_id_len);
		he_mutation_result *res = &results[i];
		if (r == NULL) {
			memset(res, 0, sizeof(*res));
			res->outcome = HE_APPLY_NOT_FOUND;
			continue;
		}
		if (journal(s, r) != 0) {
			rollback(s);
			return HE_ENOMEM;
		}
		if (op->to != NULL &&
		    strcmp(r->row.status, op->expected) == 0) {
			set_str(r->row.status, sizeof(r->row.status), op->to);
			res->outcome = HE_APPLY_TRANSITIONED;
		} else if (op->to != NULL) {
			if (s->on_conflict != NULL)
				s->on_conflict(s, op, (long)i, s->conflict_ud);
			r = find(s, op->game_id, op->game_id_len);
			res->outcome = HE_APPLY_CONFLICT;
		} else {
			res->outcome = HE_APPLY_HEALTH;
		}
		set_str(r->row.engine_health, sizeof(r->row.engine_health),
			op->summary);
		res->row = r->row;
	}
	s->nundo = 0;
	snprintf(s->position, sizeof(s->position), "%s", span->last);
	if (span->refused_id && s->nrefused < 16) {
		snprintf(s->refused[s->nrefused].id, HE_POSITION_MAX, "%s",
			 span->refused_id);
		snprintf(s->refused[s->nrefused].reason, HE_REASON_MAX, "%s",
			 span->refused_reason);
		s->nrefused++;
	}
	return 0;
}

static const char *refusal(void *ctx)
{
	return ((mem_store *)ctx)->refusal;
}

static int position(void *ctx, char *out, size_t cap)
{
	mem_store *s = ctx;
	if (s->fail_code != 0)
		return s->fail_code;
	if (!s->position[0])
		return HE_ENOENT;
	snprintf(out, cap, "%s", s->position);
	return 0;
}

static int rows(void *ctx, const he_mutation *ops, size_t n,
		he_mutation_result *results)
{
	mem_store *s = ctx;
	if (s->fail_code != 0)
		return s->fail_code;
	for (size_t i = 0; i < n; i++) {
		row_node *r = find(s, ops[i].game_id, ops[i].game_id_len);
		results[i] = (he_mutation_result){
		    .outcome = r ? HE_APPLY_HEALTH : HE_APPLY_NOT_FOUND};
		if (r)
			results[i].row = r->row;
	}
	return 0;
}

static int refused(void *ctx, const char *after, const char *last,
		   he_refused_fn fn, void *arg)
{
	mem_store *s = ctx;
	if (s->fail_code != 0)
		return s->fail_code;
	for (size_t i = 0; i < s->nrefused; i++)
		if (id_cmp(s->refused[i].id, after) > 0 &&
		    id_cmp(s->refused[i].id, last) <= 0)
			fn(arg, s->refused[i].id, s->refused[i].reason);
	return 0;
}

he_record_store mem_store_port(mem_store *s)
{
	return (he_record_store){.ctx = s,
				 .apply = apply,
				 .refusal = refusal,
				 .position = position,
				 .rows = rows,
				 .refused = refused};
}

const char *mem_store_position(mem_store *s)
{
	return s->position;
}

void mem_store_set_position(mem_store *s, const char *position)
{
	snprintf(s->position, sizeof(s->position), "%s",
		 position ? position : "");
}

void mem_store_refuse(mem_store *s, const char *game_id, int code)
{
	if (s->nrefuse < 8) {
		snprintf(s->refuse[s->nrefuse], sizeof(s->refuse[0]), "%s",
			 game_id);
		s->refuse_code[s->nrefuse++] = code;
	}
}

/* ---- stream port -------------------------------------------------------- */

struct mem_stream {
	int fail_code;
	char offset[48];
	mem_commit *commits;
	size_t ncommits, cap;
};

mem_stream *mem_stream_new(void)
{
	return calloc(1, sizeof(mem_stream));
}

static void free_commit(mem_commit *c)
{
	for (size_t i = 0; i < c->nsnapshots; i++) {
		free(c->snapshots[i].game_id);
		free(c->snapshots[i].source_id);
		free(c->snapshots[i].payload);
	}
	free(c->snapshots);
	for (size_t i = 0; i < c->ndead; i++) {
		mem_dead *d = &c->dead[i];
		for (size_t k = 0; k < d->nitems; k++)
			free(d->items[k]);
		free(d->items);
		free(d->lens);
		free(d->id);
		free(d->reason);
	}
	free(c->dead);
}

void mem_stream_free(mem_stream *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->ncommits; i++)
		free_commit(&s->commits[i]);
	free(s->commits);
	free(s);
}

static char *dup_n(const char *p, size_t n)
{
	char *d = malloc(n + 1);
	if (d == NULL)
		return NULL;
	if (n > 0)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

/* Deep copy; on failure frees what it made. 0 or HE_ENOMEM. */
static int copy_box(mem_commit *c, const he_outbox *box)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->last_id, box->last_id, sizeof(c->last_id));
	c->snapshots = calloc(box->nsnapshots + 1, sizeof(*c->snapshots));
	c->dead = calloc(box->ndead + 1, sizeof(*c->dead));
	if (c->snapshots == NULL || c->dead == NULL)
		goto fail;
	for (size_t i = 0; i < box->nsnapshots; i++) {
		const he_snapshot_msg *m = &box->snapshots[i];
		mem_snapshot *o = &c->snapshots[c->nsnapshots++];
		o->game_id = dup_n(m->game_id, m->game_id_len);
		o->game_id_len = m->game_id_len;
		o->source_id = dup_n(m->source_id, strlen(m->source_id));
		o->payload = dup_n(m->payload, m->payload_len);
		o->payload_len = m->payload_len;
		if (!o->game_id || !o->source_id || !o->payload)
			goto fail;
	}
	for (size_t i = 0; i < box->ndead; i++) {
		const he_dead_letter *dl = &box->dead[i];
		mem_dead *o = &c->dead[c->ndead++];
		size_t n = dl->entry->nitems;
		o->id = dup_n(dl->entry->id, strlen(dl->entry->id));
		o->reason = dup_n(dl->reason, strlen(dl->reason));
		o->items = calloc(n + 1, sizeof(*o->items));
		o->lens = calloc(n + 1, sizeof(*o->lens));
		if (!o->id || !o->reason || !o->items || !o->lens)
			goto fail;
		o->nitems = n;
		for (size_t k = 0; k < n; k++) {
			o->items[k] =
			    dup_n(dl->entry->items[k], dl->entry->lens[k]);
			o->lens[k] = dl->entry->lens[k];
			if (o->items[k] == NULL)
				goto fail;
		}
	}
	return 0;
fail:
	free_commit(c);
	return HE_ENOMEM;
}

static int commit(void *ctx, const he_outbox *box)
{
	mem_stream *s = ctx;

	if (s->fail_code != 0)
		return s->fail_code;
	void *c = s->commits;
	int rc = reserve_one(&c, &s->cap, s->ncommits, sizeof(*s->commits), 8);
	s->commits = c;
	if (rc != 0)
		return rc;
	rc = copy_box(&s->commits[s->ncommits], box);
	if (rc != 0)
		return rc;
	s->ncommits++;
	snprintf(s->offset, sizeof(s->offset), "%s", box->last_id);
	return 0;
}

he_stream_port mem_stream_port(mem_stream *s)
{
	return (he_stream_port){s, commit};
}

void mem_stream_fail(mem_stream *s, int code)
{
	s->fail_code = code;
}

const char *mem_stream_offset(mem_stream *s)
{
	return s->offset;
}

size_t mem_stream_commits(mem_stream *s)
{
	return s->ncommits;
}

const mem_commit *mem_stream_commit_at(mem_stream *s, size_t i)
{
	return i < s->ncommits ? &s->commits[i] : NULL;
}

size_t mem_stream_snapshots(mem_stream *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->ncommits; i++)
		n += s->commits[i].nsnapshots;
	return n;
}
