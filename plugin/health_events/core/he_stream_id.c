/* he_stream_id.c -- see he_stream_id.h. */
#include "he_stream_id.h"

#include "ports.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int he_stream_id_parse(const char *s, he_stream_id *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return HE_EINVAL;
	errno = 0;
	out->ms = strtoull(s, &end, 10);
	out->seq = 0;
	if (!errno && *end == '-') {
		const char *q = end + 1;
		if (*q < '0' || *q > '9')
			return HE_EINVAL;
		out->seq = strtoull(q, &end, 10);
	}
	return errno || *end ? HE_EINVAL : HE_OK;
}

int he_stream_id_cmp(he_stream_id a, he_stream_id b)
{
	if (a.ms != b.ms)
		return a.ms < b.ms ? -1 : 1;
	if (a.seq != b.seq)
		return a.seq < b.seq ? -1 : 1;
	return 0;
}

int he_stream_id_text_cmp(const char *a, const char *b)
{
	he_stream_id x = {0, 0}, y = {0, 0};
	(void)he_stream_id_parse(a, &x);
	(void)he_stream_id_parse(b, &y);
	return he_stream_id_cmp(x, y);
}

void he_stream_id_format(char *out, size_t cap, he_stream_id id)
{
	snprintf(out, cap, "%llu-%llu", id.ms, id.seq);
}
