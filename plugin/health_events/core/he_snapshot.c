/*
 * he_snapshot.c -- payload JSON. Two passes over the same code (measure,
 * then write) so the buffer is allocated once at its exact size.
 */
#include "he_snapshot.h"

#include "he_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A writer that only counts when dst is NULL. */
typedef struct out {
	char *dst;
	size_t n;
} out;

static void put(out *o, const char *s, size_t len)
{
	if (o->dst != NULL)
		memcpy(o->dst + o->n, s, len);
	o->n += len;
}

static void put_lit(out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_json_string(out *o, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	/* the characters JSON escapes with a backslash and one letter */
	static const char short_esc[0x80] = {
	    ['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
	    ['\n'] = 'n', ['\r'] = 'r',	 ['\t'] = 't',
	};
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0; /* run: bytes copied verbatim, pending */

	put(o, "\"", 1);
	while (i < len) {
		unsigned char c = p[i];
		char esc[6];
		size_t el = 0, k;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			run++;
			i++;
			continue;
		}
		if (c >= 0x80 && (k = he_utf8_seq_len(p + i, len - i)) > 0) {
			run += k;
			i += k;
			continue;
		}
		put(o, s + i - run, run);
		run = 0;
		if (c < 0x80 && short_esc[c] != 0) { /* \" \\ \b \f \n \r \t */
			esc[0] = '\\';
			esc[1] = short_esc[c];
			el = 2;
		} else if (c < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			el = 6;
		} else { /* malformed UTF-8 byte */
			memcpy(esc, "\\ufffd", 6);
			el = 6;
		}
		put(o, esc, el);
		i++;
	}
	put(o, s + i - run, run);
	put(o, "\"", 1);
}

static void emit(out *o, const char *gid, size_t gid_len, const he_row *row)
{
	char num[16];
	int nl = snprintf(num, sizeof(num), "%" PRId32, row->current_turn);

	put_lit(o, "{\"game_id\":");
	put_json_string(o, gid, gid_len);
	put_lit(o, ",\"runtime_status\":");
	put_json_string(o, row->status, strnlen(row->status, HE_STATUS_MAX));
	put_lit(o, ",\"engine_health_summary\":");
	put_json_string(o, row->engine_health,
			strnlen(row->engine_health, HE_HEALTH_MAX));
	put_lit(o, ",\"current_turn\":");
	put(o, num, (size_t)nl);
	put_lit(o, ",\"player_turn_stats\":null}");
}

size_t he_snapshot_len(const char *game_id, size_t game_id_len,
		       const he_row *row)
{
	out o = {NULL, 0};
	emit(&o, game_id, game_id_len, row);
	return o.n;
}

size_t he_snapshot_write(char *dst, const char *game_id, size_t game_id_len,
			 const he_row *row)
{
	out o = {dst, 0};
	emit(&o, game_id, game_id_len, row);
	dst[o.n] = '\0';
	return o.n;
}

int he_snapshot_build(const char *game_id, size_t game_id_len,
		      const he_row *row, char **out_buf, size_t *out_len)
{
	size_t n = he_snapshot_len(game_id, game_id_len, row);
	char *buf = malloc(n + 1);

	if (buf == NULL)
		return HE_ENOMEM;
	*out_len = he_snapshot_write(buf, game_id, game_id_len, row);
	*out_buf = buf;
	return 0;
}
