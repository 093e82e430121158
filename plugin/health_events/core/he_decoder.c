/*
 * he_decoder.c -- entry decoder. Checks in this order, so a reason names
 * the first problem an operator would fix: number of fields, shape (odd
 * item count), sizes and duplicates of fields, game_id, event_type, the
 * entry's total size.
 */
#include "he_decoder.h"

#include "he_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool name_is(const char *p, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l && memcmp(p, lit, l) == 0;
}

static int reject(char *reason, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int reject(char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, HE_REASON_MAX, fmt, ap);
	va_end(ap);
	return HE_EINVAL;
}

bool he_entry_oversized(const he_stream_entry *e, size_t *bytes)
{
	size_t total = 0;

	for (size_t i = 0; i < e->nitems; i++)
		total += e->lens[i];
	if (bytes != NULL)
		*bytes = total;
	return (e->nitems + 1) / 2 > HE_ENTRY_FIELDS_MAX ||
	       total > HE_ENTRY_BYTES_MAX;
}

int he_decode(const he_stream_entry *e, he_decoded *out,
	      char reason[HE_REASON_MAX])
{
	const char *gid = NULL, *typ = NULL;
	size_t gid_len = 0, typ_len = 0;
	char echo[128]; /* keeps every reason within HE_REASON_MAX */

	reason[0] = '\0';
	size_t bytes;
	bool oversized = he_entry_oversized(e, &bytes);
	if ((e->nitems + 1) / 2 > HE_ENTRY_FIELDS_MAX)
		return reject(reason, "entry has %zu fields, more than %d",
			      (e->nitems + 1) / 2, HE_ENTRY_FIELDS_MAX);
	if (e->nitems % 2 != 0)
		return reject(reason, "odd number of field items (%zu)",
			      e->nitems);
	for (size_t i = 0; i + 1 < e->nitems; i += 2) {
		const char *k = e->items[i], *v = e->items[i + 1];
		size_t kl = e->lens[i], vl = e->lens[i + 1];

		if (kl > HE_FIELD_MAX)
			return reject(reason,
				      "field name longer than %d bytes (%zu)",
				      HE_FIELD_MAX, kl);
		if (name_is(k, kl, "game_id")) {
			if (gid != NULL)
				return reject(reason,
					      "duplicate field game_id");
			gid = v;
			gid_len = vl;
			continue;
		}
		if (name_is(k, kl, "event_type")) {
			if (typ != NULL)
				return reject(reason,
					      "duplicate field event_type");
			typ = v;
			typ_len = vl;
			continue;
		}
		if (vl > HE_FIELD_MAX) {
			he_text_echo(echo, sizeof(echo), k, kl, HE_ECHO_MAX);
			return reject(reason, "field %s longer than %d bytes",
				      echo, HE_FIELD_MAX);
		}
	}

	if (gid == NULL)
		return reject(reason, "missing game_id");
	if (gid_len == 0)
		return reject(reason, "empty game_id");
	if (gid_len > HE_GAME_ID_MAX)
		return reject(reason, "game_id longer than %d bytes (%zu)",
			      HE_GAME_ID_MAX, gid_len);
	if (!he_utf8_valid(gid, gid_len))
		return reject(reason, "game_id is not valid UTF-8");
	if (memchr(gid, '\0', gid_len) != NULL)
		return reject(reason, "game_id contains a NUL byte");

	if (typ == NULL)
		return reject(reason, "missing event_type");
	if (typ_len == 0)
		return reject(reason, "empty event_type");
	const he_event_type *t = he_event_lookup(typ, typ_len);
	if (t == NULL) {
		he_text_echo(echo, sizeof(echo), typ, typ_len, HE_ECHO_MAX);
		return reject(reason, "unknown event_type \"%s\"", echo);
	}
	/* Last: a field named above says more than the total. */
	if (oversized)
		return reject(reason, "entry is %zu bytes, more than %d", bytes,
			      HE_ENTRY_BYTES_MAX);

	out->type = t;
	out->game_id = gid;
	out->game_id_len = gid_len;
	return 0;
}
