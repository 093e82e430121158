/*
 * he_text.h -- byte-level text helpers shared by the decoder, the snapshot
 * and the log lines: UTF-8 validation and a safe, truncated echo of
 * untrusted bytes. Pure functions, no allocation, any thread.
 *
 * Private to plugin/health_events and its tests.
 */
#ifndef HE_TEXT_H
#define HE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Length (1..4) of the well-formed UTF-8 sequence starting at p[0], given
 * n > 0 bytes available; 0 when the bytes there are not well-formed
 * (stray continuation byte, overlong form, surrogate, > U+10FFFF,
 * truncated sequence).
 */
size_t he_utf8_seq_len(const unsigned char *p, size_t n);

/* true when s[0..n) is well-formed UTF-8 (n == 0 is valid). */
bool he_utf8_valid(const char *s, size_t n);

/*
 * Render at most `max` bytes of the untrusted s[0..n) into dst (cap > 0
 * bytes, always NUL-terminated) so it can go into a log line or a
 * reason: printable ASCII as is, `"` and `\` backslash-escaped,
 * well-formed non-ASCII UTF-8 as is, every other byte as \xNN; "..."
 * follows when the source was cut (by `max` or by `cap`). Returns the
 * length written (excluding the NUL).
 */
size_t he_text_echo(char *dst, size_t cap, const char *s, size_t n, size_t max);

/*
 * Make the NUL-terminated s one line for a log field or a reason, in
 * place: every control character (newlines, tabs, DEL) becomes a space.
 * A server's error text may span lines. Any thread.
 */
void he_text_one_line(char *s);

/* FNV-1a 64 of s[0..n): game-id tables, statement names. Any thread. */
uint64_t he_text_hash(const char *s, size_t n);

#endif /* HE_TEXT_H */
