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
static atomic_int log_format = APPHOST_LOG_TEXT;

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

static void format_time(char *tbuf, size_t cap)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(tbuf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000L) % 1000);
}

static void line_time(struct line *l)
{
	char tbuf[80];

	format_time(tbuf, sizeof(tbuf));
	line_puts_escaped(l, tbuf);
}

/* ---- JSON -----------------------------------------------------------------
 */

int apphost_log_format_parse(const char *s)
{
	if (s == NULL)
		return APPHOST_EINVAL;
	if (strcasecmp(s, "text") == 0)
		return APPHOST_LOG_TEXT;
	if (strcasecmp(s, "json") == 0)
		return APPHOST_LOG_JSON;
	return APPHOST_EINVAL;
}

void apphost_log_set_format(int format)
{
	atomic_store(&log_format, format == APPHOST_LOG_JSON
				      ? APPHOST_LOG_JSON
				      : APPHOST_LOG_TEXT);
}

/* Write s[0..n) as the inside of a JSON string. */
static void json_chars(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

static void json_str(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	json_chars(f, s, n);
	fputc('"', f);
}

static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-' ||
	       c == ':';
}

/*
 * A quoted value starting after its opening quote: up to the quote that
 * is followed by a space or the end (so a stray quote inside survives);
 * \" and \\ are unescaped. Writes it as a JSON string; returns the
 * position after the closing quote.
 */
static const char *json_quoted(FILE *f, const char *p)
{
	fputc('"', f);
	while (*p != '\0') {
		if (p[0] == '\\' && (p[1] == '"' || p[1] == '\\')) {
			json_chars(f, p + 1, 1);
			p += 2;
			continue;
		}
		if (p[0] == '"' && (p[1] == ' ' || p[1] == '\0')) {
			p++;
			break;
		}
		json_chars(f, p, 1);
		p++;
	}
	fputc('"', f);
	return p;
}

/* The "fields" object for a key=value string. */
static void json_fields(FILE *f, const char *p)
{
	char *rest = NULL;
	size_t restlen = 0;
	FILE *r = open_memstream(&rest, &restlen);
	bool first = true;

	fputc('{', f);
	while (p != NULL && *p != '\0') {
		const char *k = p, *v;
		size_t kl = 0;

		if (*p == ' ') {
			p++;
			continue;
		}
		while (key_char(k[kl]))
			kl++;
		if (kl == 0 || k[kl] != '=') {
			/* not key=value: keep the word under "_" */
			size_t wl = strcspn(p, " ");

			if (r != NULL) {
				if (ftell(r) > 0)
					fputc(' ', r);
				fwrite(p, 1, wl, r);
			}
			p += wl;
			continue;
		}
		if (!first)
			fputc(',', f);
		first = false;
		json_str(f, k, kl);
		fputc(':', f);
		v = k + kl + 1;
		if (*v == '"') {
			p = json_quoted(f, v + 1);
		} else {
			size_t vl = strcspn(v, " ");

			json_str(f, v, vl);
			p = v + vl;
		}
	}
	if (r != NULL) {
		fclose(r);
		if (restlen > 0) {
			if (!first)
				fputc(',', f);
			fputs("\"_\":", f);
			json_str(f, rest, restlen);
		}
		free(rest);
	}
	fputc('}', f);
}

char *apphost_log_format_json(const char *ts, int level, const char *component,
			      const char *msg, const char *fields)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (f == NULL)
		return NULL;
	if (component == NULL || component[0] == '\0')
		component = APPHOST_LOG_SELF;
	fputs("{\"ts\":", f);
	json_str(f, ts != NULL ? ts : "", ts != NULL ? strlen(ts) : 0);
	fputs(",\"level\":", f);
	json_str(f, apphost_log_level_name(level),
		 strlen(apphost_log_level_name(level)));
	fputs(",\"component\":", f);
	json_str(f, component, strlen(component));
	fputs(",\"msg\":", f);
	json_str(f, msg != NULL ? msg : "", msg != NULL ? strlen(msg) : 0);
	fputs(",\"fields\":", f);
	json_fields(f, fields);
	fputs("}\n", f);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
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

APPHOST_PRINTF(4, 0)
static void log_json(int level, const char *component, const char *msg,
		     const char *fields_fmt, va_list ap)
{
	char tbuf[80], *fields = NULL, *line;

	format_time(tbuf, sizeof(tbuf));
	if (fields_fmt != NULL && fields_fmt[0] != '\0' &&
	    vasprintf(&fields, fields_fmt, ap) < 0)
		fields = NULL;
	line = apphost_log_format_json(tbuf, level, component, msg, fields);
	free(fields);
	if (line != NULL)
		write_all(atomic_load(&log_fd), line, strlen(line));
	free(line);
}

void apphost_logv(int level, const char *component, const char *msg,
		  const char *fields_fmt, va_list ap)
{
	struct line *l;
	char padded[8];

	if (!apphost_log_enabled(level))
		return;
	if (atomic_load(&log_format) == APPHOST_LOG_JSON) {
		log_json(level, component, msg, fields_fmt, ap);
		return;
	}
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
	lv = apphost_log_level_name(level);
	if (atomic_load(&log_format) == APPHOST_LOG_JSON) {
		/* msg is a constant: no quote, backslash or control char */
		memmove(buf + 7, buf, (size_t)(p - buf));
		memcpy(buf, "{\"ts\":\"", 7);
		p += 7;
		p = put_str(p, "\",\"level\":\"");
		p = put_str(p, lv);
		p = put_str(p, "\",\"component\":\"" APPHOST_LOG_SELF
			       "\",\"msg\":\"");
		room = sizeof(buf) - (size_t)(p - buf) - 20;
		for (size_t i = 0; msg[i] != '\0' && room > 0; i++, room--)
			*p++ = msg[i];
		p = put_str(p, "\",\"fields\":{}}\n");
		write_all(atomic_load(&log_fd), buf, (size_t)(p - buf));
		return;
	}
	*p++ = ' ';
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
