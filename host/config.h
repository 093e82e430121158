/*
 * config.h -- configuration: the environment over an optional file of
 * KEY=VALUE lines.
 *
 * File syntax: one KEY=VALUE per line; blank lines and lines whose first
 * non-blank character is '#' are ignored; whitespace around key and value
 * is trimmed; one pair of matching surrounding quotes ("..." or '...') is
 * removed from a value; a later line for the same key replaces an earlier
 * one. '#' later in a line is part of the value (passwords may hold it).
 *
 * A config object is immutable once loaded: apphost_config_get may be
 * called from any thread, and the strings it returns live as long as the
 * object (the environment is copied at apphost_config_new, so a later
 * setenv() does not change or free them).
 */
#ifndef APPHOST_HOST_CONFIG_H
#define APPHOST_HOST_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <apphost/component.h>

struct apphost_config;

/* One documented key, for --help and for typo warnings. */
struct apphost_config_key {
	const char *key;
	const char *def;     /* shown default ("" = empty) or NULL = required */
	const char *meaning; /* one line */
};

/* Keys the host documents (DESIGN §3 plus the host's own); NULL-key ends. */
extern const struct apphost_config_key apphost_config_keys[];

/*
 * Create a config holding a copy of the current environment. Returns 0
 * and sets *out (free with apphost_config_free), or APPHOST_ENOMEM. Main
 * thread, before other threads read the environment.
 */
int apphost_config_new(struct apphost_config **out);

/*
 * Read KEY=VALUE lines from `path`; values from the environment still win.
 * Returns 0, APPHOST_EINVAL with "FILE:LINE: reason" in err for a bad
 * line, APPHOST_EIO with "FILE: strerror" when the file cannot be read, or
 * APPHOST_ENOMEM. On failure the config is unchanged. Not thread-safe: call
 * before the config is shared. An APPHOST_* key the host does not know is
 * reported through `warn` (may be NULL) with the file and line.
 */
int apphost_config_load_file(struct apphost_config *cfg, const char *path,
			     char *err, size_t errlen,
			     void (*warn)(const char *text));

/*
 * Value for `key` (environment first, then file), or NULL when unset.
 * The string belongs to cfg. Any thread.
 */
const char *apphost_config_get(const struct apphost_config *cfg,
			       const char *key);

/*
 * Unsigned number for `key` in [min, max]; `def` when unset or empty.
 * Returns 0 and sets *out, or APPHOST_EINVAL with "KEY=VALUE: reason" in
 * err. Any thread.
 */
int apphost_config_get_u32(const struct apphost_config *cfg, const char *key,
			   uint32_t def, uint32_t min, uint32_t max,
			   uint32_t *out, char *err, size_t errlen);

/* Free cfg and its strings; NULL is a no-op. No concurrent readers. */
void apphost_config_free(struct apphost_config *cfg);

#endif
