/* redis_needs.c -- see redis_needs.h. */
#include "redis_needs.h"

#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * In the order a consumer first needs them. The argument lists are whole
 * (redis.acl_check_cmd judges keys and subcommands from them), with
 * harmless values: nothing here is ever executed.
 */
const he_redis_need he_redis_needs[] = {
    /* the pool, at every connect and lease */
    {"select", {"SELECT", "0", NULL}, HE_NEED_NOKEY, true, false, NULL},
    {"unwatch", {"UNWATCH", NULL}, HE_NEED_NOKEY, true, false, NULL},
    {"echo", {"ECHO", "x", NULL}, HE_NEED_NOKEY, true, false, NULL},
    {"role", {"ROLE", NULL}, HE_NEED_NOKEY, true, true, NULL},
    /* the consumer */
    {"ping", {"PING", NULL}, HE_NEED_NOKEY, true, false, NULL},
    {"client|id", {"CLIENT", "ID", NULL}, HE_NEED_NOKEY, true, false, NULL},
    {"xread",
     {"XREAD", "COUNT", "1", "BLOCK", "1", "STREAMS", "$KEY", "0-0"},
     HE_NEED_STREAM,
     true,
     false,
     NULL},
    {"get", {"GET", "$KEY", NULL}, HE_NEED_OFFSET, true, false, NULL},
    {"eval", {"EVAL", "return 1", "0", NULL}, HE_NEED_NOKEY, true, false, NULL},
    {"evalsha",
     {"EVALSHA", "0000000000000000000000000000000000000000", "0", NULL},
     HE_NEED_NOKEY,
     true,
     false,
     NULL},
    {"script|load",
     {"SCRIPT", "LOAD", "return 1", NULL},
     HE_NEED_NOKEY,
     true,
     false,
     NULL},
    /* inside the take-over and commit scripts */
    {"get", {"GET", "$KEY", NULL}, HE_NEED_FENCE, true, false, NULL},
    {"set", {"SET", "$KEY", "1", NULL}, HE_NEED_FENCE, true, false, NULL},
    {"set", {"SET", "$KEY", "0-0", NULL}, HE_NEED_OFFSET, true, false, NULL},
    {"xadd",
     {"XADD", "$KEY", "*", "f", "v", NULL},
     HE_NEED_LOBBY,
     true,
     false,
     NULL},
    {"xadd",
     {"XADD", "$KEY", "*", "f", "v", NULL},
     HE_NEED_DEAD,
     true,
     false,
     NULL},
    /* what it can do without */
    {"client|unblock",
     {"CLIENT", "UNBLOCK", "1", NULL},
     HE_NEED_NOKEY,
     false,
     false,
     "a stop or a lost lease waits for the XREAD in hand to end (up to "
     "HEALTH_EVENTS_BLOCK_MS, at most 2 s) instead of waking it"},
    {"xinfo|stream",
     {"XINFO", "STREAM", "$KEY", NULL},
     HE_NEED_STREAM,
     false,
     false,
     "a saved offset older than the stream's first entry (entries "
     "trimmed unread) is not noticed"},
    {"xrange",
     {"XRANGE", "$KEY", "-", "+", "COUNT", "1", NULL},
     HE_NEED_STREAM,
     false,
     false,
     "health_events_lag_entries is not counted while behind"},
    {"time",
     {"TIME", NULL},
     HE_NEED_NOKEY,
     false,
     false,
     "entries are not dated: health_events_lag_seconds stays 0 and "
     "health_events_event_age_seconds empty"},
};
const size_t he_redis_nneeds = sizeof(he_redis_needs) / sizeof(*he_redis_needs);

const char *he_need_key_name(const he_config *cfg, int k)
{
	switch (k) {
	case HE_NEED_STREAM: return cfg->stream;
	case HE_NEED_LOBBY: return cfg->lobby_stream;
	case HE_NEED_DEAD: return cfg->dead_stream;
	case HE_NEED_OFFSET: return cfg->offset_key;
	case HE_NEED_FENCE: return cfg->fence_key;
	default: return "";
	}
}

/* Growing text: host/strbuf.c, built into this library too. */
typedef struct apphost_strbuf text;

static void put(text *t, const char *s, size_t n)
{
	apphost_strbuf_put(t, s, n);
}

static void puts_(text *t, const char *s)
{
	apphost_strbuf_put(t, s, strlen(s));
}

/*
 * One argument as redis-cli splits its input: bare when it holds nothing
 * special, else in double quotes with '"' and '\' escaped.
 */
static void put_arg(text *t, const char *a)
{
	bool bare = a[0] != '\0';
	for (const char *p = a; *p && bare; p++)
		bare = *p > ' ' && *p < 0x7f && *p != '"' && *p != '\'' &&
		       *p != '\\';
	puts_(t, " ");
	if (bare) {
		puts_(t, a);
		return;
	}
	puts_(t, "\"");
	for (const char *p = a; *p; p++) {
		char esc[8];
		if (*p == '"' || *p == '\\')
			snprintf(esc, sizeof(esc), "\\%c", *p);
		else if ((unsigned char)*p < ' ' || *p == 0x7f)
			snprintf(esc, sizeof(esc), "\\x%02x",
				 (unsigned)(unsigned char)*p);
		else
			snprintf(esc, sizeof(esc), "%c", *p);
		puts_(t, esc);
	}
	puts_(t, "\"");
}

/* "~" and the key with the glob characters escaped: it names one key. */
static void put_key_pattern(text *t, const char *key)
{
	text pat = {0};
	puts_(&pat, "~");
	for (const char *p = key; *p; p++) {
		/* An ACL rule cannot hold a space: one character of any kind
		 * stands for it, the closest a pattern gets. */
		if (*p == ' ') {
			put(&pat, "?", 1);
			continue;
		}
		if (strchr("*?[]\\", *p))
			put(&pat, "\\", 1);
		put(&pat, p, 1);
	}
	char *p = apphost_strbuf_take(&pat, NULL);
	if (p == NULL)
		t->oom = true;
	else
		put_arg(t, p);
	free(p);
}

char *he_redis_acl_line(const he_config *cfg, const char *user, bool sentinel)
{
	text t = {0};
	puts_(&t, "ACL SETUSER");
	put_arg(&t, user);
	puts_(&t, " on >PASSWORD resetkeys");
	for (int k = HE_NEED_STREAM; k <= HE_NEED_FENCE; k++) {
		bool dup = false;
		for (int j = HE_NEED_STREAM; j < k; j++)
			dup |= strcmp(he_need_key_name(cfg, j),
				      he_need_key_name(cfg, k)) == 0;
		if (!dup)
			put_key_pattern(&t, he_need_key_name(cfg, k));
	}
	puts_(&t, " resetchannels -@all");
	for (size_t i = 0; i < he_redis_nneeds; i++) {
		const he_redis_need *n = &he_redis_needs[i];
		bool dup = n->sentinel_only && !sentinel;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(he_redis_needs[j].acl, n->acl) == 0;
		if (dup)
			continue;
		puts_(&t, " +");
		puts_(&t, n->acl);
	}
	return apphost_strbuf_take(&t, NULL);
}
