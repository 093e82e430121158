/* strbuf.c -- see strbuf.h. */
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

void apphost_strbuf_put(struct apphost_strbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

char *apphost_strbuf_take(struct apphost_strbuf *b, size_t *len)
{
	char *p = b->oom ? NULL : b->p;

	if (b->oom)
		free(b->p);
	if (len != NULL)
		*len = p != NULL ? b->len : 0;
	*b = (struct apphost_strbuf){0};
	return p;
}
