/* config.c -- HEALTH_EVENTS_* keys: defaults, parsing, validation. */
#include "config.h"

#include "ports.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	return r ? HE_EINVAL : HE_OK;
}
