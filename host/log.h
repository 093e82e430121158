/*
 * log.h -- one line per event on stderr.
 *
 *   2026-11-26T20:31:02.123Z info  health_events msg key=value ...
 *
 * UTC time with milliseconds, level padded to five columns, component
 * name ("apphost" for the host), message, then space-separated fields.
 * Control characters are escaped so an event is always one line. With
 * APPHOST_LOG_FORMAT=json each line is one JSON object instead (see
 * apphost_log_format_json). Each
 * line is written with a single write(2), so lines from several threads
 * never interleave.
 */
#ifndef APPHOST_HOST_LOG_H
#define APPHOST_HOST_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include <apphost/component.h>

/* Component name the host uses for its own lines. */
#define APPHOST_LOG_SELF "apphost"

/*
 * Parse "debug" / "info" / "warn" / "error" (case-insensitive; "warning"
 * too). Returns the APPHOST_LOG_* level, or APPHOST_EINVAL. Any thread.
 */
int apphost_log_level_parse(const char *s);

/* Name of a level ("info"), "?" when out of range. Static; any thread. */
const char *apphost_log_level_name(int level);

/* Set the minimum level written (default APPHOST_LOG_INFO). Any thread. */
void apphost_log_set_level(int level);

/* true when a line at `level` would be written. Any thread. */
bool apphost_log_enabled(int level);

/* Output formats (APPHOST_LOG_FORMAT): text (the default) and json. */
enum apphost_log_format {
	APPHOST_LOG_TEXT = 0,
	APPHOST_LOG_JSON = 1,
};

/* Parse "text" / "json" (case-insensitive). Returns the format or
 * APPHOST_EINVAL. Any thread. */
int apphost_log_format_parse(const char *s);

/* Set the output format (default APPHOST_LOG_TEXT). Any thread. */
void apphost_log_set_format(int format);

/*
 * One JSON log line, newline included:
 *   {"ts":"...","level":"info","component":"apphost","msg":"...",
 *    "fields":{"key":"value",...}}
 * `fields` is parsed as space-separated key=value pairs (a value may be
 * "quoted", with \" and \\ inside); every value is a JSON string; words
 * that are not key=value are kept, space-joined, under the key "_".
 * Control characters and quotes are escaped. Returns a malloc()ed string
 * the caller frees, or NULL when out of memory. Any thread.
 */
char *apphost_log_format_json(const char *ts, int level, const char *component,
			      const char *msg, const char *fields);

/*
 * Redirect output to `fd` (default 2); for tests. Returns the previous fd.
 * Not synchronised with concurrent logging: call before threads start.
 */
int apphost_log_set_fd(int fd);

/*
 * Write one line. `component` NULL means the host; `msg` may be NULL;
 * `fields_fmt` (may be NULL) is a printf format for key=value fields.
 * Never fails (a line that cannot be formatted is truncated). Any thread.
 */
void apphost_log(int level, const char *component, const char *msg,
		 const char *fields_fmt, ...) APPHOST_PRINTF(4, 5);

/* As apphost_log with a va_list. Any thread. */
void apphost_logv(int level, const char *component, const char *msg,
		  const char *fields_fmt, va_list ap) APPHOST_PRINTF(4, 0);

/*
 * Write one host line with a constant message using only
 * async-signal-safe calls (clock_gettime, write). For signal handlers.
 */
void apphost_log_signal_safe(int level, const char *msg);

#endif
