/* he_config.c -- HEALTH_EVENTS_* keys: defaults, parsing, validation. */
#include "he_config.h"

#include "ports.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *get(const apphost_services *svc, const char *key,
		       const char *def)
{
	const char *v = svc->config_get(svc->host, key);
	return v && *v ? v : def;
}

static int load_string(const apphost_services *svc, const char *key,
		       const char *def, const char *prefix, char *out)
{
	const char *v = get(svc, key, def);
	int n = snprintf(out, HE_KEY_MAX, "%s%s", prefix, v);
	if (n < 0 || n >= HE_KEY_MAX) {
		svc->log(svc->host, APPHOST_LOG_ERROR, "invalid configuration",
			 "key=%s error=\"longer than %d bytes\"", key,
			 HE_KEY_MAX - 1 - (int)strlen(prefix));
		return HE_EINVAL;
	}
	return HE_OK;
}

static int load_uint(const apphost_services *svc, const char *key,
		     const char *def, unsigned min, unsigned max, unsigned *out)
{
	const char *v = get(svc, key, def);
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno || end == v || *end || *v == '-' || n < min || n > max) {
		svc->log(svc->host, APPHOST_LOG_ERROR, "invalid configuration",
			 "key=%s value=\"%.64s\" error=\"want an integer in "
			 "%u..%u\"",
			 key, v, min, max);
		return HE_EINVAL;
	}
	*out = (unsigned)n;
	return HE_OK;
}

/* An on/off key: exactly "on" or "off"; *off set for "off". */
static int load_on_off(const apphost_services *svc, const char *key,
		       const char *def, bool *off)
{
	const char *v = get(svc, key, def);
	if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
		svc->log(svc->host, APPHOST_LOG_ERROR, "invalid configuration",
			 "key=%s value=\"%.64s\" error=\"want on or off\"", key,
			 v);
		return HE_EINVAL;
	}
	*off = strcmp(v, "off") == 0;
	return HE_OK;
}

/* HEALTH_EVENTS_INSTANCE_ID, by default <hostname>:<pid>: printable
 * ASCII only, since it goes into log lines and the lease row as is. */
static int load_instance_id(const apphost_services *svc, char *out, size_t cap)
{
	const char *v = svc->config_get(svc->host, "HEALTH_EVENTS_INSTANCE_ID");
	if (!v || !*v) {
		char host[128] = "localhost";
		if (gethostname(host, sizeof(host)) < 0 || !host[0])
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(out, cap, "%s:%ld", host, (long)getpid());
		return HE_OK;
	}
	size_t n = strlen(v);
	bool ok = n < cap;
	for (size_t i = 0; ok && i < n; i++)
		ok = v[i] > 0x20 && v[i] < 0x7f && v[i] != '"';
	if (!ok) {
		svc->log(svc->host, APPHOST_LOG_ERROR, "invalid configuration",
			 "key=HEALTH_EVENTS_INSTANCE_ID value=\"%.64s\" "
			 "error=\"want 1..%zu printable ASCII characters, no "
			 "space or quote\"",
			 v, cap - 1);
		return HE_EINVAL;
	}
	memcpy(out, v, n + 1);
	return HE_OK;
}

int he_config_load(const apphost_services *svc, he_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	int r = 0;
	r |= load_string(svc, "HEALTH_EVENTS_STREAM", "runtime:health_events",
			 "", cfg->stream);
	r |= load_string(svc, "HEALTH_EVENTS_LOBBY_STREAM", "gm:lobby_events",
			 "", cfg->lobby_stream);
	r |= load_string(svc, "HEALTH_EVENTS_DEAD_LETTER_STREAM",
			 "runtime:health_events:dead", "", cfg->dead_stream);
	r |= load_string(svc, "HEALTH_EVENTS_OFFSET_LABEL", "health_events",
			 "gamemaster:stream_offsets:", cfg->offset_key);
	/* The BLOCK upper bound keeps the socket timeout (BLOCK + 5 s) sane. */
	r |= load_uint(svc, "HEALTH_EVENTS_BLOCK_MS", "2000", 1, 600000,
		       &cfg->block_ms);
	r |=
	    load_uint(svc, "HEALTH_EVENTS_BATCH", "256", 1, 10000, &cfg->batch);
	r |= load_uint(svc, "HEALTH_EVENTS_LEASE_MS", HE_LEASE_MS_DEFAULT, 500,
		       60000, &cfg->lease_ms);
	r |= load_string(svc, "HEALTH_EVENTS_OFFSET_LABEL", "health_events", "",
			 cfg->lease_name);
	if (!r && snprintf(cfg->fence_key, sizeof(cfg->fence_key), "%s:fence",
			   cfg->offset_key) >= (int)sizeof(cfg->fence_key)) {
		svc->log(svc->host, APPHOST_LOG_ERROR, "invalid configuration",
			 "key=HEALTH_EVENTS_OFFSET_LABEL error=\"longer than "
			 "%d bytes\"",
			 HE_KEY_MAX - 1 -
			     (int)strlen("gamemaster:stream_offsets::fence"));
		r = 1;
	}
	r |= load_instance_id(svc, cfg->instance_id, sizeof(cfg->instance_id));
	r |= load_on_off(svc, "HEALTH_EVENTS_SYNCHRONOUS_COMMIT", "on",
			 &cfg->async_commit);
	return r ? HE_EINVAL : HE_OK;
}
