/*
 * he_dedupe.c -- the D4 cache: a dense entry array (24 bytes a game,
 * short ids inline) under an open-addressing index of entry numbers
 * (linear probing, backward-shift deletion: no tombstones), within a
 * byte budget kept by CLOCK eviction.
 */
#include "he_dedupe.h"

#include "he_decoder.h"
#include "he_events.h"
#include "he_text.h"
#include "ports.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define SUM_CUSTOM     0xFF /* summary stored in the block, after the key */
#define INLINE_MAX     16   /* longest game id kept inside its entry */
#define MIN_ENTS       64
#define MIN_IDX	       128
#define EXPORT_MAGIC   "HEDD"
#define EXPORT_VERSION 1
#define EXPORT_HEADER  12

typedef struct ent {
	uint32_t hash;
	uint16_t len; /* key length */
	uint8_t sum;  /* index into he_summary_at(), or SUM_CUSTOM */
	uint8_t ref;  /* CLOCK bit: set on use (atomically under the read
		       * lock), cleared by the eviction hand */
	union {
		char inl[INLINE_MAX]; /* short key, interned summary */
		char *ext; /* malloc(): key, then a custom summary + NUL */
	} k;
} ent;

_Static_assert(sizeof(ent) == 24, "an entry is 24 bytes");

struct he_dedupe {
	uv_rwlock_t lock;
	ent *ents; /* ents[0..count) dense */
	size_t count, ents_cap;
	uint32_t *idx;	  /* entry number + 1, 0: empty */
	size_t idx_cap;	  /* 0 or a power of two */
	size_t ext_bytes; /* blocks, as allocated (estimated) */
	size_t budget;
	size_t hand; /* CLOCK hand into ents */
	size_t evictions;
};

static uint32_t hash_bytes(const char *p, size_t n)
{
	uint64_t h = he_text_hash(p, n);
	return (uint32_t)(h ^ (h >> 32));
}

static bool is_ext(const ent *e)
{
	return e->len > INLINE_MAX || e->sum == SUM_CUSTOM;
}

static const char *key_of(const ent *e)
{
	return is_ext(e) ? e->k.ext : e->k.inl;
}

static const char *summary_of(const ent *e)
{
	return e->sum == SUM_CUSTOM ? e->k.ext + e->len : he_summary_at(e->sum);
}

/* What malloc(n) takes from the heap (glibc: 16-byte chunks, 32 min). */
static size_t blk_cost(size_t n)
{
	size_t c = (n + 8 + 15) & ~(size_t)15;
	return c < 32 ? 32 : c;
}

static size_t total(size_t ecap, size_t icap, size_t ext)
{
	return ecap * sizeof(ent) + icap * sizeof(uint32_t) + ext;
}

/* Index slot of the game, or SIZE_MAX. Caller holds a lock. */
static size_t find(const he_dedupe *d, const char *k, size_t n, uint32_t h)
{
	if (d->idx_cap == 0)
		return SIZE_MAX;
	size_t mask = d->idx_cap - 1;
	for (size_t i = h & mask; d->idx[i] != 0; i = (i + 1) & mask) {
		const ent *e = &d->ents[d->idx[i] - 1];
		if (e->hash == h && e->len == n && memcmp(key_of(e), k, n) == 0)
			return i;
	}
	return SIZE_MAX;
}

/* Index slot holding entry `pos` (which is in the index). */
static size_t slot_of(const he_dedupe *d, size_t pos)
{
	size_t mask = d->idx_cap - 1, i = d->ents[pos].hash & mask;
	while (d->idx[i] != pos + 1)
		i = (i + 1) & mask;
	return i;
}

/* Put entry `pos` (absent from the index) into idx[0..cap). */
static void place(uint32_t *idx, size_t cap, const ent *ents, size_t pos)
{
	size_t mask = cap - 1, i = ents[pos].hash & mask;
	while (idx[i] != 0)
		i = (i + 1) & mask;
	idx[i] = (uint32_t)(pos + 1);
}

/* Empty index slot i, shifting later members of its cluster back. */
static void unindex(he_dedupe *d, size_t i)
{
	size_t mask = d->idx_cap - 1, j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (d->idx[j] == 0)
			break;
		size_t k = d->ents[d->idx[j] - 1].hash & mask;
		/* Slot j stays when its home k lies cyclically in (i, j]. */
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		d->idx[i] = d->idx[j];
		i = j;
	}
	d->idx[i] = 0;
}

/* Drop entry pos: the last entry moves into its place. */
static void remove_at(he_dedupe *d, size_t pos)
{
	ent *e = &d->ents[pos];
	size_t last = d->count - 1;

	unindex(d, slot_of(d, pos));
	if (is_ext(e)) {
		d->ext_bytes -= blk_cost(
		    e->len +
		    (e->sum == SUM_CUSTOM ? strlen(summary_of(e)) + 1 : 0));
		free(e->k.ext);
	}
	if (pos != last) {
		d->idx[slot_of(d, last)] = (uint32_t)(pos + 1);
		*e = d->ents[last];
	}
	d->count--;
}

/* Evict the first entry the CLOCK hand finds unused since its last pass. */
static void evict_one(he_dedupe *d)
{
	for (;;) {
		if (d->hand >= d->count)
			d->hand = 0;
		ent *e = &d->ents[d->hand];
		if (e->ref) {
			e->ref = 0;
			d->hand++;
			continue;
		}
		remove_at(d, d->hand);
		d->evictions++;
		return;
	}
}

static int rehash(he_dedupe *d, size_t cap)
{
	uint32_t *ni = calloc(cap, sizeof(*ni));

	if (ni == NULL)
		return HE_ENOMEM;
	for (size_t pos = 0; pos < d->count; pos++)
		place(ni, cap, d->ents, pos);
	free(d->idx);
	d->idx = ni;
	d->idx_cap = cap;
	return 0;
}

/*
 * Room for one more entry whose block costs `ext` bytes: grow the arrays
 * while the budget allows (doubling, then as far as it goes), else evict.
 * 0, or HE_ENOMEM (allocation failed, or one game exceeds the budget).
 */
static int make_room(he_dedupe *d, size_t ext)
{
	for (;;) {
		size_t need = d->count + 1;
		size_t ecap = d->ents_cap, icap = d->idx_cap;
		size_t ext_after = d->ext_bytes + ext;

		if (need > ecap)
			ecap = ecap ? ecap * 2 : MIN_ENTS;
		if (icap == 0)
			icap = MIN_IDX;
		while (need > icap / 4 * 3)
			icap *= 2;
		if (need > d->ents_cap &&
		    total(ecap, icap, ext_after) > d->budget) {
			size_t other = total(0, icap, ext_after);
			ecap = other < d->budget
				   ? (d->budget - other) / sizeof(ent)
				   : 0;
		}
		if (ecap >= need && total(ecap, icap, ext_after) <= d->budget) {
			if (ecap > d->ents_cap) {
				ent *ne = realloc(d->ents, ecap * sizeof(*ne));
				if (ne == NULL)
					return HE_ENOMEM;
				d->ents = ne;
				d->ents_cap = ecap;
			}
			if (icap > d->idx_cap && rehash(d, icap) != 0)
				return HE_ENOMEM;
			return 0;
		}
		if (d->count == 0)
			return HE_ENOMEM;
		evict_one(d);
	}
}

/* Add a game known to be absent. Caller holds the write lock. */
static int insert(he_dedupe *d, const char *k, size_t n, uint32_t h,
		  const char *summary)
{
	int si = he_summary_index(summary);
	uint8_t sum = si < 0 ? SUM_CUSTOM : (uint8_t)si;
	ent e = {.hash = h, .len = (uint16_t)n, .sum = sum, .ref = 1};
	size_t cost = 0;

	if (is_ext(&e)) {
		size_t sl = sum == SUM_CUSTOM ? strlen(summary) + 1 : 0;
		char *b = malloc(n + sl);
		if (b == NULL)
			return HE_ENOMEM;
		memcpy(b, k, n);
		memcpy(b + n, summary, sl);
		e.k.ext = b;
		cost = blk_cost(n + sl);
	} else {
		memcpy(e.k.inl, k, n);
	}
	int rc = make_room(d, cost);
	if (rc != 0) {
		if (is_ext(&e))
			free(e.k.ext);
		return rc;
	}
	d->ents[d->count] = e;
	place(d->idx, d->idx_cap, d->ents, d->count);
	d->count++;
	d->ext_bytes += cost;
	return 0;
}

int he_dedupe_new_budget(size_t max_bytes, he_dedupe **out)
{
	he_dedupe *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return HE_ENOMEM;
	if (uv_rwlock_init(&d->lock) != 0) {
		free(d);
		return HE_ENOMEM;
	}
	d->budget = max_bytes;
	*out = d;
	return 0;
}

int he_dedupe_new(he_dedupe **out)
{
	return he_dedupe_new_budget(HE_DEDUPE_BUDGET, out);
}

static void free_blocks(he_dedupe *d)
{
	for (size_t i = 0; i < d->count; i++)
		if (is_ext(&d->ents[i]))
			free(d->ents[i].k.ext);
	d->count = 0;
	d->ext_bytes = 0;
	d->hand = 0;
}

void he_dedupe_free(he_dedupe *d)
{
	if (d == NULL)
		return;
	free_blocks(d);
	free(d->ents);
	free(d->idx);
	uv_rwlock_destroy(&d->lock);
	free(d);
}

/* The game's entry under the read lock (marked used), or NULL. */
static const ent *lookup(he_dedupe *d, const char *k, size_t n)
{
	size_t i = find(d, k, n, hash_bytes(k, n));
	if (i == SIZE_MAX)
		return NULL;
	ent *e = &d->ents[d->idx[i] - 1];
	__atomic_store_n(&e->ref, 1, __ATOMIC_RELAXED);
	return e;
}

bool he_dedupe_get(he_dedupe *d, const char *game_id, size_t len, char *out,
		   size_t cap)
{
	uv_rwlock_rdlock(&d->lock);
	const ent *e = lookup(d, game_id, len);
	if (e != NULL && cap > 0) {
		const char *s = summary_of(e);
		size_t sl = strlen(s);
		if (sl >= cap)
			sl = cap - 1;
		memcpy(out, s, sl);
		out[sl] = '\0';
	}
	uv_rwlock_rdunlock(&d->lock);
	return e != NULL;
}

bool he_dedupe_same(he_dedupe *d, const char *game_id, size_t len,
		    const char *summary)
{
	uv_rwlock_rdlock(&d->lock);
	const ent *e = lookup(d, game_id, len);
	bool same = e != NULL && strcmp(summary_of(e), summary) == 0;
	uv_rwlock_rdunlock(&d->lock);
	return same;
}

int he_dedupe_set(he_dedupe *d, const char *game_id, size_t len,
		  const char *summary)
{
	if (len == 0 || len > HE_GAME_ID_MAX ||
	    strnlen(summary, HE_HEALTH_MAX) >= HE_HEALTH_MAX)
		return HE_EINVAL;
	uint32_t h = hash_bytes(game_id, len);
	int si = he_summary_index(summary);
	uv_rwlock_wrlock(&d->lock);
	size_t i = find(d, game_id, len, h);
	if (i != SIZE_MAX) {
		ent *e = &d->ents[d->idx[i] - 1];
		/* An interned summary on the same kind of storage: in place
		 * (a long key's stale custom tail is ignored). */
		if (si >= 0 && is_ext(e) == (len > INLINE_MAX)) {
			e->sum = (uint8_t)si;
			e->ref = 1;
			uv_rwlock_wrunlock(&d->lock);
			return 0;
		}
		remove_at(d, d->idx[i] - 1);
	}
	int rc = insert(d, game_id, len, h, summary);
	uv_rwlock_wrunlock(&d->lock);
	return rc;
}

void he_dedupe_remove(he_dedupe *d, const char *game_id, size_t len)
{
	uint32_t h = hash_bytes(game_id, len);

	uv_rwlock_wrlock(&d->lock);
	size_t i = find(d, game_id, len, h);
	if (i != SIZE_MAX)
		remove_at(d, d->idx[i] - 1);
	uv_rwlock_wrunlock(&d->lock);
}

void he_dedupe_clear(he_dedupe *d)
{
	uv_rwlock_wrlock(&d->lock);
	free_blocks(d);
	if (d->idx_cap > 0)
		memset(d->idx, 0, d->idx_cap * sizeof(*d->idx));
	uv_rwlock_wrunlock(&d->lock);
}

size_t he_dedupe_size(he_dedupe *d)
{
	uv_rwlock_rdlock(&d->lock);
	size_t n = d->count;
	uv_rwlock_rdunlock(&d->lock);
	return n;
}

size_t he_dedupe_bytes(he_dedupe *d)
{
	uv_rwlock_rdlock(&d->lock);
	size_t n = total(d->ents_cap, d->idx_cap, d->ext_bytes);
	uv_rwlock_rdunlock(&d->lock);
	return n;
}

size_t he_dedupe_evictions(he_dedupe *d)
{
	uv_rwlock_rdlock(&d->lock);
	size_t n = d->evictions;
	uv_rwlock_rdunlock(&d->lock);
	return n;
}

/* ---- export / import ---------------------------------------------------- */

static void put_u16(unsigned char *p, size_t v)
{
	p[0] = (unsigned char)(v & 0xff);
	p[1] = (unsigned char)((v >> 8) & 0xff);
}

static size_t get_u16(const unsigned char *p)
{
	return (size_t)p[0] | (size_t)p[1] << 8;
}

int he_dedupe_export(he_dedupe *d, void **buf, size_t *len)
{
	uv_rwlock_rdlock(&d->lock);
	size_t total_len = EXPORT_HEADER;
	for (size_t i = 0; i < d->count; i++)
		total_len +=
		    4 + d->ents[i].len + strlen(summary_of(&d->ents[i]));
	unsigned char *b = malloc(total_len);
	if (b == NULL) {
		uv_rwlock_rdunlock(&d->lock);
		return HE_ENOMEM;
	}
	memcpy(b, EXPORT_MAGIC, 4);
	b[4] = EXPORT_VERSION;
	b[5] = b[6] = b[7] = 0;
	uint32_t n = (uint32_t)d->count;
	for (int k = 0; k < 4; k++)
		b[8 + k] = (unsigned char)(n >> (8 * k));
	size_t o = EXPORT_HEADER;
	for (size_t i = 0; i < d->count; i++) {
		const ent *e = &d->ents[i];
		const char *sum = summary_of(e);
		size_t sl = strlen(sum);
		put_u16(b + o, e->len);
		memcpy(b + o + 2, key_of(e), e->len);
		o += 2 + e->len;
		put_u16(b + o, sl);
		memcpy(b + o + 2, sum, sl);
		o += 2 + sl;
	}
	uv_rwlock_rdunlock(&d->lock);
	*buf = b;
	*len = total_len;
	return 0;
}

/* Check the whole buffer without allocating; 0 and *count or HE_EINVAL. */
static int validate(const unsigned char *b, size_t len, size_t *count)
{
	if (len < EXPORT_HEADER || memcmp(b, EXPORT_MAGIC, 4) != 0 ||
	    b[4] != EXPORT_VERSION || b[5] || b[6] || b[7])
		return HE_EINVAL;
	size_t n = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
		   (size_t)b[11] << 24;
	size_t o = EXPORT_HEADER;
	for (size_t i = 0; i < n; i++) {
		if (len - o < 2)
			return HE_EINVAL;
		size_t kl = get_u16(b + o);
		o += 2;
		if (kl == 0 || kl > HE_GAME_ID_MAX || len - o < kl ||
		    !he_utf8_valid((const char *)b + o, kl) ||
		    memchr(b + o, '\0', kl) != NULL)
			return HE_EINVAL;
		o += kl;
		if (len - o < 2)
			return HE_EINVAL;
		size_t sl = get_u16(b + o);
		o += 2;
		if (sl >= HE_HEALTH_MAX || len - o < sl ||
		    memchr(b + o, '\0', sl) != NULL)
			return HE_EINVAL;
		o += sl;
	}
	if (o != len)
		return HE_EINVAL;
	*count = n;
	return 0;
}

int he_dedupe_import(he_dedupe *d, const void *buf, size_t len)
{
	const unsigned char *b = buf;
	he_dedupe *tmp;
	size_t n;
	int rc;

	if (b == NULL || validate(b, len, &n) != 0)
		return HE_EINVAL;
	/* Stage everything in a private, unbounded table first: duplicates
	 * and allocation failures are found before the cache is touched. */
	rc = he_dedupe_new_budget(SIZE_MAX, &tmp);
	if (rc != 0)
		return rc;
	size_t o = EXPORT_HEADER;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char sum[HE_HEALTH_MAX];
		size_t kl = get_u16(b + o);
		const char *key = (const char *)b + o + 2;
		o += 2 + kl;
		size_t sl = get_u16(b + o);
		memcpy(sum, b + o + 2, sl);
		sum[sl] = '\0';
		o += 2 + sl;
		if (find(tmp, key, kl, hash_bytes(key, kl)) != SIZE_MAX)
			rc = HE_EINVAL;
		else
			rc = he_dedupe_set(tmp, key, kl, sum);
	}
	if (rc != 0) {
		he_dedupe_free(tmp);
		return rc;
	}

	uv_rwlock_wrlock(&d->lock);
	for (size_t i = 0; i < tmp->count && rc == 0; i++) {
		const ent *e = &tmp->ents[i];
		if (find(d, key_of(e), e->len, e->hash) != SIZE_MAX)
			continue; /* the running cache wins */
		rc = insert(d, key_of(e), e->len, e->hash, summary_of(e));
	}
	uv_rwlock_wrunlock(&d->lock);
	he_dedupe_free(tmp);
	return rc;
}
