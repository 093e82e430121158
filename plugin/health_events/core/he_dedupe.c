/*
 * he_dedupe.c -- the D4 cache: linear probing with backward-shift
 * deletion (no tombstones, so removals keep probes short), 16-byte
 * slots, one allocation per game holding the key and, only for a
 * summary outside the event table, the summary after it.
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

#define SUM_CUSTOM     0xFF /* summary stored after the key */
#define MIN_CAP	       64
#define EXPORT_MAGIC   "HEDD"
#define EXPORT_VERSION 1
#define EXPORT_HEADER  12

typedef struct slot {
	char *key; /* NULL: empty slot */
	uint32_t hash;
	uint16_t key_len;
	uint8_t sum; /* index into he_summary_at(), or SUM_CUSTOM */
} slot;

struct he_dedupe {
	uv_rwlock_t lock;
	slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t count;
};

static uint32_t hash_bytes(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u; /* FNV-1a 64, folded */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3u;
	}
	return (uint32_t)(h ^ (h >> 32));
}

static const char *slot_summary(const slot *s)
{
	return s->sum == SUM_CUSTOM ? s->key + s->key_len
				    : he_summary_at(s->sum);
}

/* Index of the game's slot, or SIZE_MAX. Caller holds a lock. */
static size_t find(const he_dedupe *d, const char *k, size_t n, uint32_t h)
{
	if (d->cap == 0)
		return SIZE_MAX;
	size_t mask = d->cap - 1;
	for (size_t i = h & mask; d->slots[i].key != NULL; i = (i + 1) & mask) {
		const slot *s = &d->slots[i];
		if (s->hash == h && s->key_len == n &&
		    memcmp(s->key, k, n) == 0)
			return i;
	}
	return SIZE_MAX;
}

/* Place a slot known to be absent. Caller holds the write lock. */
static void place(slot *slots, size_t cap, const slot *s)
{
	size_t mask = cap - 1, i = s->hash & mask;
	while (slots[i].key != NULL)
		i = (i + 1) & mask;
	slots[i] = *s;
}

/* Make room for `want` entries under 3/4 load. 0 or HE_ENOMEM. */
static int reserve(he_dedupe *d, size_t want)
{
	size_t cap = d->cap ? d->cap : MIN_CAP;

	while (want > cap / 4 * 3)
		cap *= 2;
	if (cap == d->cap)
		return 0;
	slot *ns = calloc(cap, sizeof(*ns));
	if (ns == NULL)
		return HE_ENOMEM;
	for (size_t i = 0; i < d->cap; i++)
		if (d->slots[i].key != NULL)
			place(ns, cap, &d->slots[i]);
	free(d->slots);
	d->slots = ns;
	d->cap = cap;
	return 0;
}

/* Remove slot i, shifting later members of its cluster back. */
static void remove_at(he_dedupe *d, size_t i)
{
	size_t mask = d->cap - 1, j = i;

	free(d->slots[i].key);
	for (;;) {
		j = (j + 1) & mask;
		if (d->slots[j].key == NULL)
			break;
		size_t k = d->slots[j].hash & mask;
		/* Slot j stays when its home k lies cyclically in (i, j]. */
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (stays)
			continue;
		d->slots[i] = d->slots[j];
		i = j;
	}
	memset(&d->slots[i], 0, sizeof(d->slots[i]));
	d->count--;
}

/* A key block for (k, summary): 0 and *out, or HE_ENOMEM. */
static int make_key(const char *k, size_t n, const char *summary, char **out,
		    uint8_t *sum)
{
	int idx = he_summary_index(summary);
	size_t sl = idx < 0 ? strlen(summary) + 1 : 0;
	char *b = malloc(n + sl);

	if (b == NULL)
		return HE_ENOMEM;
	memcpy(b, k, n);
	if (idx < 0)
		memcpy(b + n, summary, sl);
	*out = b;
	*sum = idx < 0 ? SUM_CUSTOM : (uint8_t)idx;
	return 0;
}

int he_dedupe_new(he_dedupe **out)
{
	he_dedupe *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return HE_ENOMEM;
	if (uv_rwlock_init(&d->lock) != 0) {
		free(d);
		return HE_ENOMEM;
	}
	*out = d;
	return 0;
}

void he_dedupe_free(he_dedupe *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->cap; i++)
		free(d->slots[i].key);
	free(d->slots);
	uv_rwlock_destroy(&d->lock);
	free(d);
}

bool he_dedupe_get(he_dedupe *d, const char *game_id, size_t len, char *out,
		   size_t cap)
{
	uint32_t h = hash_bytes(game_id, len);
	bool found = false;

	uv_rwlock_rdlock(&d->lock);
	size_t i = find(d, game_id, len, h);
	if (i != SIZE_MAX) {
		const char *s = slot_summary(&d->slots[i]);
		size_t sl = strlen(s);
		if (cap > 0) {
			if (sl >= cap)
				sl = cap - 1;
			memcpy(out, s, sl);
			out[sl] = '\0';
		}
		found = true;
	}
	uv_rwlock_rdunlock(&d->lock);
	return found;
}

bool he_dedupe_same(he_dedupe *d, const char *game_id, size_t len,
		    const char *summary)
{
	uint32_t h = hash_bytes(game_id, len);
	bool same = false;

	uv_rwlock_rdlock(&d->lock);
	size_t i = find(d, game_id, len, h);
	if (i != SIZE_MAX)
		same = strcmp(slot_summary(&d->slots[i]), summary) == 0;
	uv_rwlock_rdunlock(&d->lock);
	return same;
}

int he_dedupe_set(he_dedupe *d, const char *game_id, size_t len,
		  const char *summary)
{
	char *key;
	uint8_t sum;
	int rc;

	if (len == 0 || len > HE_GAME_ID_MAX ||
	    strnlen(summary, HE_HEALTH_MAX) >= HE_HEALTH_MAX)
		return HE_EINVAL;
	uint32_t h = hash_bytes(game_id, len);
	uv_rwlock_wrlock(&d->lock);
	size_t i = find(d, game_id, len, h);
	if (i != SIZE_MAX && he_summary_index(summary) >= 0) {
		/* Interned: no allocation; a stale custom tail is ignored. */
		d->slots[i].sum = (uint8_t)he_summary_index(summary);
		uv_rwlock_wrunlock(&d->lock);
		return 0;
	}
	rc = make_key(game_id, len, summary, &key, &sum);
	if (rc != 0) {
		uv_rwlock_wrunlock(&d->lock);
		return rc;
	}
	if (i == SIZE_MAX && (rc = reserve(d, d->count + 1)) != 0) {
		uv_rwlock_wrunlock(&d->lock);
		free(key);
		return rc;
	}
	if (i != SIZE_MAX) {
		free(d->slots[i].key);
		d->slots[i].key = key;
		d->slots[i].sum = sum;
	} else {
		slot s = {key, h, (uint16_t)len, sum};
		place(d->slots, d->cap, &s);
		d->count++;
	}
	uv_rwlock_wrunlock(&d->lock);
	return 0;
}

void he_dedupe_remove(he_dedupe *d, const char *game_id, size_t len)
{
	uint32_t h = hash_bytes(game_id, len);

	uv_rwlock_wrlock(&d->lock);
	size_t i = find(d, game_id, len, h);
	if (i != SIZE_MAX)
		remove_at(d, i);
	uv_rwlock_wrunlock(&d->lock);
}

void he_dedupe_clear(he_dedupe *d)
{
	uv_rwlock_wrlock(&d->lock);
	for (size_t i = 0; i < d->cap; i++)
		free(d->slots[i].key);
	if (d->cap > 0)
		memset(d->slots, 0, d->cap * sizeof(*d->slots));
	d->count = 0;
	uv_rwlock_wrunlock(&d->lock);
}

size_t he_dedupe_size(he_dedupe *d)
{
	uv_rwlock_rdlock(&d->lock);
	size_t n = d->count;
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
	size_t total = EXPORT_HEADER;
	for (size_t i = 0; i < d->cap; i++) {
		const slot *s = &d->slots[i];
		if (s->key != NULL)
			total += 4 + s->key_len + strlen(slot_summary(s));
	}
	unsigned char *b = malloc(total);
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
	for (size_t i = 0; i < d->cap; i++) {
		const slot *s = &d->slots[i];
		if (s->key == NULL)
			continue;
		const char *sum = slot_summary(s);
		size_t sl = strlen(sum);
		put_u16(b + o, s->key_len);
		memcpy(b + o + 2, s->key, s->key_len);
		o += 2 + s->key_len;
		put_u16(b + o, sl);
		memcpy(b + o + 2, sum, sl);
		o += 2 + sl;
	}
	uv_rwlock_rdunlock(&d->lock);
	*buf = b;
	*len = total;
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
	rc = he_dedupe_new(&tmp);
	if (rc != 0)
		return rc;
	/* Stage everything in a private table first: duplicates and
	 * allocation failures are found before the cache is touched. */
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
	rc = reserve(d, d->count + tmp->count);
	if (rc == 0) {
		for (size_t i = 0; i < tmp->cap; i++) {
			slot *s = &tmp->slots[i];
			if (s->key == NULL ||
			    find(d, s->key, s->key_len, s->hash) != SIZE_MAX)
				continue; /* the running cache wins */
			place(d->slots, d->cap, s);
			d->count++;
			s->key = NULL; /* moved */
		}
	}
	uv_rwlock_wrunlock(&d->lock);
	he_dedupe_free(tmp);
	return rc;
}
