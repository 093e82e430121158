/* config.c -- see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

const struct apphost_config_key apphost_config_keys[] = {
    {"APPHOST_COMPONENTS", NULL,
     "comma-separated .so paths, initialised and started in order"},
    {"APPHOST_REDIS_URL", "redis://127.0.0.1:6379/0",
     "shared Redis, redis://[[user]:password@]host:port/db"},
    {"APPHOST_REDIS_SENTINELS", "",
     "comma-separated host:port of Redis Sentinels; set: the primary comes "
     "from them and APPHOST_REDIS_URL gives only password and db"},
    {"APPHOST_REDIS_SENTINEL_MASTER", "",
     "the master name the Sentinels monitor (required with "
     "APPHOST_REDIS_SENTINELS)"},
    {"APPHOST_REDIS_SENTINEL_PASSWORD", "",
     "password for AUTH to each Sentinel (empty: none)"},
    {"APPHOST_POSTGRES_DSN", "",
     "shared PostgreSQL, libpq conninfo or URI (empty: libpq defaults "
     "and PG* variables)"},
    {"APPHOST_LOG_LEVEL", "info", "debug, info, warn or error"},
    {"APPHOST_SHUTDOWN_TIMEOUT_MS", "10000",
     "deadline for stopping all components"},
    {"APPHOST_HOT_SWAP", "0",
     "1: watch component files and swap on change, SIGHUP swaps (dev)"},
    {"APPHOST_POOL_SIZE", "8",
     "connections per pool (one Redis, one PostgreSQL), 1..1024"},
    {"APPHOST_HTTP_ADDR", "127.0.0.1:9464",
     "host:port of /healthz, /readyz, /metrics; set but empty: off"},
    {"APPHOST_LOG_FORMAT", "text",
     "text, or json: one object per line {ts,level,component,msg,fields}"},
    {"HEALTH_EVENTS_STREAM", "runtime:health_events", "input stream"},
    {"HEALTH_EVENTS_LOBBY_STREAM", "gm:lobby_events", "output stream"},
    {"HEALTH_EVENTS_OFFSET_LABEL", "health_events",
     "offset key is gamemaster:stream_offsets:<label>"},
    {"HEALTH_EVENTS_BLOCK_MS", "2000", "XREAD BLOCK"},
    {"HEALTH_EVENTS_BATCH", "256", "XREAD COUNT"},
    {"HEALTH_EVENTS_DEAD_LETTER_STREAM", "runtime:health_events:dead",
     "where undecodable entries go"},
    {"HEALTH_EVENTS_LEASE_MS", "3000", "leadership lease, 500..60000"},
    {"HEALTH_EVENTS_INSTANCE_ID", "<hostname>:<pid>",
     "this instance in logs and in the lease row"},
    {"HEALTH_EVENTS_SYNCHRONOUS_COMMIT", "on",
     "off: applies do not wait for their WAL flush"},
    {NULL, NULL, NULL},
};

struct kv {
	char *key;
	char *value;
};

struct kvs {
	struct kv *v;
	size_t n, cap;
};

struct apphost_config {
	struct kvs env;
	struct kvs file;
};

static void kvs_clear(struct kvs *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].key);
		if (s->v[i].value != NULL) {
			explicit_bzero(s->v[i].value, strlen(s->v[i].value));
			free(s->v[i].value);
		}
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static struct kv *kvs_find(const struct kvs *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].key, key) == 0)
			return &s->v[i];
	return NULL;
}

/* Set key to value (copies both; replaces an existing value). */
static int kvs_set(struct kvs *s, const char *key, size_t keylen,
		   const char *value, size_t valuelen)
{
	char *k = strndup(key, keylen);
	char *v = strndup(value, valuelen);
	struct kv *old;

	if (k == NULL || v == NULL) {
		free(k);
		free(v);
		return APPHOST_ENOMEM;
	}
	old = kvs_find(s, k);
	if (old != NULL) {
		free(k);
		free(old->value);
		old->value = v;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		struct kv *nv = realloc(s->v, cap * sizeof(*nv));

		if (nv == NULL) {
			free(k);
			free(v);
			return APPHOST_ENOMEM;
		}
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n].key = k;
	s->v[s->n].value = v;
	s->n++;
	return 0;
}

int apphost_config_new(struct apphost_config **out)
{
	struct apphost_config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return APPHOST_ENOMEM;
	for (char **e = environ; e != NULL && *e != NULL; e++) {
		const char *eq = strchr(*e, '=');

		if (eq == NULL || eq == *e)
			continue;
		if (kvs_set(&cfg->env, *e, (size_t)(eq - *e), eq + 1,
			    strlen(eq + 1)) < 0) {
			apphost_config_free(cfg);
			return APPHOST_ENOMEM;
		}
	}
	*out = cfg;
	return 0;
}

static bool key_valid(const char *k, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)k[0]) || k[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)k[i]) || k[i] == '_'))
			return false;
	return true;
}

static bool key_known(const char *k, size_t n)
{
	for (const struct apphost_config_key *d = apphost_config_keys;
	     d->key != NULL; d++)
		if (strlen(d->key) == n && memcmp(d->key, k, n) == 0)
			return true;
	return false;
}

int apphost_config_load_file(struct apphost_config *cfg, const char *path,
			     char *err, size_t errlen,
			     void (*warn)(const char *text))
{
	struct kvs staged = {0};
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned lineno = 0;
	int rc = 0;

	f = fopen(path, "re");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return APPHOST_EIO;
	}
	/* Keep the values already loaded from an earlier file. */
	for (size_t i = 0; i < cfg->file.n && rc == 0; i++)
		rc = kvs_set(&staged, cfg->file.v[i].key,
			     strlen(cfg->file.v[i].key), cfg->file.v[i].value,
			     strlen(cfg->file.v[i].value));
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		char *s = line, *e = line + len, *eq, *ke, *vs;

		lineno++;
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (s == e || *s == '#')
			continue;
		if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
			snprintf(err, errlen, "%s:%u: NUL byte in line", path,
				 lineno);
			rc = APPHOST_EINVAL;
			break;
		}
		eq = memchr(s, '=', (size_t)(e - s));
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%u: expected KEY=VALUE", path,
				 lineno);
			rc = APPHOST_EINVAL;
			break;
		}
		ke = eq;
		while (ke > s && isspace((unsigned char)ke[-1]))
			ke--;
		if (!key_valid(s, (size_t)(ke - s))) {
			snprintf(err, errlen,
				 "%s:%u: bad key \"%.*s\" (letters, digits, _)",
				 path, lineno, (int)(ke - s > 64 ? 64 : ke - s),
				 s);
			rc = APPHOST_EINVAL;
			break;
		}
		vs = eq + 1;
		while (vs < e && isspace((unsigned char)*vs))
			vs++;
		if (e - vs >= 2 && (*vs == '"' || *vs == '\'') &&
		    e[-1] == *vs) {
			vs++;
			e--;
		}
		if (warn != NULL && strncmp(s, "APPHOST_", 8) == 0 &&
		    !key_known(s, (size_t)(ke - s))) {
			char text[256];

			snprintf(text, sizeof(text),
				 "%s:%u: unknown key %.*s (typo?)", path,
				 lineno, (int)(ke - s > 64 ? 64 : ke - s), s);
			warn(text);
		}
		rc =
		    kvs_set(&staged, s, (size_t)(ke - s), vs, (size_t)(e - vs));
		if (rc < 0)
			snprintf(err, errlen, "%s: out of memory", path);
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = APPHOST_EIO;
	}
	free(line);
	fclose(f);
	if (rc < 0) {
		kvs_clear(&staged);
		return rc;
	}
	kvs_clear(&cfg->file);
	cfg->file = staged;
	return 0;
}

const char *apphost_config_get(const struct apphost_config *cfg,
			       const char *key)
{
	const struct kv *kv;

	if (cfg == NULL || key == NULL)
		return NULL;
	kv = kvs_find(&cfg->env, key);
	if (kv == NULL)
		kv = kvs_find(&cfg->file, key);
	return kv != NULL ? kv->value : NULL;
}

int apphost_config_get_u32(const struct apphost_config *cfg, const char *key,
			   uint32_t def, uint32_t min, uint32_t max,
			   uint32_t *out, char *err, size_t errlen)
{
	const char *v = apphost_config_get(cfg, key);
	unsigned long long n = 0;
	const char *p;

	if (v == NULL || v[0] == '\0') {
		*out = def;
		return 0;
	}
	p = v;
	while (isspace((unsigned char)*p))
		p++;
	if (*p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (unsigned)(*p - '0');
		if (n > max)
			goto bad;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '\0' || n < min)
		goto bad;
	*out = (uint32_t)n;
	return 0;
bad:
	snprintf(err, errlen, "%s=%.64s: expected a whole number %u..%u", key,
		 v, min, max);
	return APPHOST_EINVAL;
}

void apphost_config_free(struct apphost_config *cfg)
{
	if (cfg == NULL)
		return;
	kvs_clear(&cfg->env);
	kvs_clear(&cfg->file);
	free(cfg);
}
