/*
 * strbuf.h -- a growable, always NUL-terminated byte buffer for building
 * text (metrics exposition, redacted strings). Allocation failure is
 * sticky: later appends are no-ops and `oom` says the text is incomplete.
 */
#ifndef APPHOST_STRBUF_H
#define APPHOST_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct apphost_strbuf {
	char *p; /* malloc()ed; owned by the caller once built */
	size_t len, cap;
	bool oom;
};

/* Append n bytes of s (growing by doubling). Any thread, one at a time. */
void apphost_strbuf_put(struct apphost_strbuf *b, const char *s, size_t n);

/*
 * Finish: returns the text (the caller free()s it) and its length in
 * *len (may be NULL), or NULL after an allocation failure (the buffer
 * is freed). The buffer is empty afterwards.
 */
char *apphost_strbuf_take(struct apphost_strbuf *b, size_t *len);

#endif
