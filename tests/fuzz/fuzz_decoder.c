/*
 * fuzz_decoder.c -- libFuzzer harness for he_decode (DESIGN §6 step 1).
 *
 * The input is split into the items of one he_stream_entry, each item
 * prefixed by its length: a byte b < 0xfe is the length itself, 0xfe is
 * followed by a 2-byte and 0xff by a 3-byte little-endian length (so
 * values beyond HE_FIELD_MAX are reachable). A length running past the
 * end is cut to what is left. The item count may be odd, as a hand-made
 * entry's can.
 *
 * Besides the sanitizers, the harness checks the decoder's contract and
 * aborts when it is broken: an accepted entry has a known type and a
 * game_id of 1..HE_GAME_ID_MAX bytes of valid UTF-8 without NUL that
 * points into the input; a rejected one has a non-empty, NUL-terminated
 * reason of valid UTF-8 (it is written to the dead-letter stream and the
 * log) without control bytes.
 */
#include "he_decoder.h"
#include "he_text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t item_len(const uint8_t *d, size_t n, size_t *at)
{
	size_t b = d[(*at)++], len = b,
	       extra = b == 0xfe   ? 2
		       : b == 0xff ? 3
				   : 0;

	if (extra) {
		len = 0;
		for (size_t k = 0; k < extra && *at < n; k++)
			len |= (size_t)d[(*at)++] << (8 * k);
	}
	return len < n - *at ? len : n - *at;
}

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_decoder: contract broken: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *items[MAX_ITEMS];
	static size_t lens[MAX_ITEMS];
	size_t n = 0, at = 0;

	while (at < size && n < MAX_ITEMS) {
		size_t len = item_len(data, size, &at);
		items[n] = (const char *)data + at;
		lens[n++] = len;
		at += len;
	}
	he_stream_entry e = {
	    .id = "1700000000000-0", .nitems = n, .items = items, .lens = lens};
	he_decoded out;
	char reason[HE_REASON_MAX];
	memset(reason, 0x55, sizeof(reason));
	int r = he_decode(&e, &out, reason);
	if (r == 0) {
		check(out.type != NULL, "accepted without a type");
		check(out.game_id_len >= 1 && out.game_id_len <= HE_GAME_ID_MAX,
		      "game_id length out of 1..256");
		check(out.game_id >= (const char *)data &&
			  out.game_id + out.game_id_len <=
			      (const char *)data + size,
		      "game_id does not point into the entry");
		check(he_utf8_valid(out.game_id, out.game_id_len),
		      "game_id is not valid UTF-8");
		check(memchr(out.game_id, '\0', out.game_id_len) == NULL,
		      "game_id holds a NUL byte");
		return 0;
	}
	check(r == HE_EINVAL, "rejection code is not HE_EINVAL");
	size_t rl = strnlen(reason, sizeof(reason));
	check(rl > 0 && rl < sizeof(reason), "reason empty or unterminated");
	check(he_utf8_valid(reason, rl), "reason is not valid UTF-8");
	for (size_t i = 0; i < rl; i++)
		check((unsigned char)reason[i] >= 0x20 && reason[i] != 0x7f,
		      "reason holds a control byte");
	return 0;
}
