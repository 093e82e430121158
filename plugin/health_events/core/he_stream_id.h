/*
 * he_stream_id.h -- Redis Stream entry ids ("ms-seq"), parsed and
 * compared without I/O.
 */
#ifndef HE_STREAM_ID_H
#define HE_STREAM_ID_H

#include <stddef.h>

/* An XREAD id, split for comparisons. */
typedef struct he_stream_id {
	unsigned long long ms, seq;
} he_stream_id;

/* Parse "ms-seq" (or "ms"); 0 or HE_EINVAL. No I/O, any thread. */
int he_stream_id_parse(const char *s, he_stream_id *out);
/* <0, 0, >0 as a is before, equal to, after b. */
int he_stream_id_cmp(he_stream_id a, he_stream_id b);
/* id as "ms-seq" into out (cap bytes, NUL-terminated). Any thread. */
void he_stream_id_format(char *out, size_t cap, he_stream_id id);
/* he_stream_id_cmp of two ids as text; one that does not parse counts as
 * 0-0 (the beginning). Any thread. */
int he_stream_id_text_cmp(const char *a, const char *b);

#endif
