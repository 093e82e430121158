/* log.c -- see log.h. */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = APPHOST_LOG_INFO;
static atomic_int log_fd = 2;

int apphost_log_level_parse(const char *s)
{
	if (s == NULL)
		return APPHOST_EINVAL;
	if (strcasecmp(s, "debug") == 0)
		return APPHOST_LOG_DEBUG;
	if (strcasecmp(s, "info") == 0)
		return APPHOST_LOG_INFO;
	if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
		return APPHOST_LOG_WARN;
	if (strcasecmp(s, "error") == 0)
		return APPHOST_LOG_ERROR;
	return APPHOST_EINVAL;
}

const char *apphost_log_level_name(int level)
{
	switch (level) {
	case APPHOST_LOG_DEBUG: return "debug";
	case APPHOST_LOG_INFO: return "info";
	case APPHOST_LOG_WARN: return "warn";
	case APPHOST_LOG_ERROR: return "error";
	default: return "?";
	}
}

void apphost_log_set_level(int level)
{
	if (level < APPHOST_LOG_DEBUG)
		level = APPHOST_LOG_DEBUG;
	if (level > APPHOST_LOG_ERROR)
		level = APPHOST_LOG_ERROR;
	atomic_store(&log_level, level);
}

bool apphost_log_enabled(int level)
{
	return level >= atomic_load(&log_level);
}

int apphost_log_set_fd(int fd)
{
	return atomic_exchange(&log_fd, fd);
}

/* Line buffer: long lines are truncated and end with "...". */
#define LINE_MAX_BYTES 8192

struct line {
	char buf[LINE_MAX_BYTES];
	size_t len;
	bool truncated;
};

static void line_putc(struct line *l, char c)
{
	if (l->len + 1 >= sizeof(l->buf) - 4) {
		l->truncated = true;
		return;
	}
	l->buf[l->len++] = c;
}

/* Append text, escaping control characters so the event stays on one line. */
static void line_puts_escaped(struct line *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n') {
			line_putc(l, '\\');
			line_putc(l, 'n');
		} else if (c == '\r') {
			line_putc(l, '\\');
			line_putc(l, 'r');
		} else if (c == '\t') {
			line_putc(l, '\\');
			line_putc(l, 't');
		} else if (c < 0x20 || c == 0x7f) {
			line_putc(l, '\\');
			line_putc(l, 'x');
			line_putc(l, hex[c >> 4]);
			line_putc(l, hex[c & 0xf]);
		} else {
			line_putc(l, (char)c);
		}
	}
}

static void line_time(struct line *l)
{
	struct timespec ts;
	struct tm tm;
	char tbuf[80];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(tbuf, sizeof(tbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000L) % 1000);
	line_puts_escaped(l, tbuf);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report it */
		}
		p += w;
		n -= (size_t)w;
	}
}

void apphost_logv(int level, const char *component, const char *msg,
		  const char *fields_fmt, va_list ap)
{
	struct line *l;
	char padded[8];

	if (!apphost_log_enabled(level))
		return;
	l = malloc(sizeof(*l));
	if (l == NULL)
		return;
	l->len = 0;
	l->truncated = false;

	line_time(l);
	snprintf(padded, sizeof(padded), " %-5s ",
		 apphost_log_level_name(level));
	line_puts_escaped(l, padded);
	line_puts_escaped(l, component != NULL && component[0] != '\0'
				 ? component
				 : APPHOST_LOG_SELF);
	line_putc(l, ' ');
	line_puts_escaped(l, msg != NULL && msg[0] != '\0' ? msg : "-");
	if (fields_fmt != NULL && fields_fmt[0] != '\0') {
		char fields[LINE_MAX_BYTES];
		int n = vsnprintf(fields, sizeof(fields), fields_fmt, ap);

		if (n < 0)
			snprintf(fields, sizeof(fields),
				 "fields=unformattable");
		else if ((size_t)n >= sizeof(fields))
			l->truncated = true;
		if (fields[0] != '\0') {
			line_putc(l, ' ');
			line_puts_escaped(l, fields);
		}
	}
	if (l->truncated) {
		memcpy(l->buf + l->len, "...", 3);
		l->len += 3;
	}
	l->buf[l->len++] = '\n';
	write_all(atomic_load(&log_fd), l->buf, l->len);
	free(l);
}

void apphost_log(int level, const char *component, const char *msg,
		 const char *fields_fmt, ...)
{
	va_list ap;

	va_start(ap, fields_fmt);
	apphost_logv(level, component, msg, fields_fmt, ap);
	va_end(ap);
}

/* ---- async-signal-safe variant ------------------------------------------ */

static char *put_str(char *p, const char *s)
{
	while (*s != '\0')
		*p++ = *s++;
	return p;
}

static char *put_num(char *p, long v, int width)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0 && n < (int)sizeof(tmp));
	while (n < width && n < (int)sizeof(tmp))
		tmp[n++] = '0';
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

void apphost_log_signal_safe(int level, const char *msg)
{
	char buf[512], *p = buf;
	struct timespec ts;
	long days, secs, y, m, d, era, doe, yoe, doy, mp;
	const char *lv;
	size_t room;

	if (!apphost_log_enabled(level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	days = (long)(ts.tv_sec / 86400);
	secs = (long)(ts.tv_sec % 86400);
	/* civil_from_days (H. Hinnant), valid for the Unix era. */
	days += 719468;
	era = days / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	if (m <= 2)
		y++;
	p = put_num(p, y, 4);
	*p++ = '-';
	p = put_num(p, m, 2);
	*p++ = '-';
	p = put_num(p, d, 2);
	*p++ = 'T';
	p = put_num(p, secs / 3600, 2);
	*p++ = ':';
	p = put_num(p, secs / 60 % 60, 2);
	*p++ = ':';
	p = put_num(p, secs % 60, 2);
	*p++ = '.';
	p = put_num(p, ts.tv_nsec / 1000000L, 3);
	*p++ = 'Z';
	*p++ = ' ';
	lv = apphost_log_level_name(level);
	p = put_str(p, lv);
	for (size_t i = strlen(lv); i < 5; i++)
		*p++ = ' ';
	*p++ = ' ';
	p = put_str(p, APPHOST_LOG_SELF " ");
	room = sizeof(buf) - (size_t)(p - buf) - 1;
	for (size_t i = 0; msg[i] != '\0' && room > 0; i++, room--)
		*p++ = msg[i];
	*p++ = '\n';
	write_all(atomic_load(&log_fd), buf, (size_t)(p - buf));
}
