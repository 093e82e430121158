/*
 * stream_redis.c -- the Redis connection and the reads over hiredis: XREAD
 * under a byte budget, the lag and the gap, the fence a standby reads.
 * The leader's fenced writes (take-over, commit) are in
 * stream_redis_write.c.
 */
#include "stream_redis.h"

#include "clock.h" /* host/clock.c: hiredis's timeouts as timeval */
#include "he_clock.h"
#include "stream_redis_io.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LEASE_TIMEOUT_MS 1000

void he_stream_redis_init(he_stream_redis *s, const apphost_services *svc,
			  const he_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->svc = svc;
	s->cfg = cfg;
	atomic_init(&s->client_id, 0);
	/* Every batch in flight within the one budget. */
	he_batch_init(&s->batch, cfg->batch, HE_BATCH_BYTES / HE_READ_SLOTS);
}

void he_stream_redis_set_heard(he_stream_redis *s, he_heard *heard)
{
	s->heard = heard;
}

/* A command is sent: we wait on Redis from now, unless from earlier. */
static void waiting(he_stream_redis *s)
{
	unsigned long long none = 0;
	if (s->heard)
		(void)atomic_compare_exchange_strong(&s->heard->waiting, &none,
						     he_now_ns(s->svc));
}

/* The wait ended. Without an answer it goes on (reconnects included)
 * until Redis answers anything, an error too. */
static void wait_over(he_stream_redis *s, bool answer)
{
	if (!s->heard || !answer)
		return;
	atomic_store(&s->heard->at, he_now_ns(s->svc));
	atomic_store(&s->heard->waiting, 0);
}

/* A command's socket timeout: a quarter of the lease beyond the XREAD
 * BLOCK (itself at most a quarter), so a silent server is given up within
 * half a lease, the time a leader may go without an answer. */
static unsigned io_timeout_ms(const he_stream_redis *s)
{
	unsigned q = s->cfg->lease_ms / 4;
	return he_config_read_block_ms(s->cfg) + (q ? q : 1000);
}

static void drop(he_stream_redis *s, bool broken)
{
	atomic_store(&s->client_id, 0);
	if (s->c)
		s->svc->redis_release(s->svc->host, s->c, broken);
	s->c = NULL;
}

void he_stream_redis_close(he_stream_redis *s)
{
	for (unsigned i = 0; i < HE_READ_SLOTS; i++) {
		if (s->reply[i])
			freeReplyObject(s->reply[i]);
		s->reply[i] = NULL;
		he_xread_free(&s->parsed[i]);
	}
	drop(s, false);
	free(s->argv);
	free(s->argvlen);
	free(s->counts);
	s->counts = NULL;
	s->counts_cap = 0;
	he_dead_fields_free(&s->dead);
	s->argv = NULL;
	s->argvlen = NULL;
	s->argv_cap = 0;
}

/* A failed command: lost connection -> lease back as broken. */
static int io_fail(he_stream_redis *s, const char *what)
{
	snprintf(s->err, sizeof(s->err), "%s: %s", what,
		 s->c && s->c->errstr[0] ? s->c->errstr : "no reply");
	drop(s, true);
	return HE_ECONN;
}

/* Refused. A server that is not (or no longer) the primary is a broken
 * connection: given back, so that the next lease finds the primary. */
int he_sr_refused(he_stream_redis *s, const char *what, const redisReply *r)
{
	static const char *const gone[] = {"READONLY ", "LOADING ",
					   "MASTERDOWN ", "UNBLOCKED "};
	snprintf(s->err, sizeof(s->err), "%s: %.*s", what,
		 r && r->str ? (int)r->len : 0, r && r->str ? r->str : "");
	for (size_t i = 0; r && r->type == REDIS_REPLY_ERROR && i < 4; i++)
		if (strncmp(r->str, gone[i], strlen(gone[i])) == 0) {
			drop(s, true);
			return HE_ECONN;
		}
	/* An ACL refusal keeps the connection: it is not broken. Inside a
	 * script Redis says so without NOPERM (and names no command). */
	if (r && r->type == REDIS_REPLY_ERROR &&
	    ((r->len >= 6 && strncmp(r->str, "NOPERM", 6) == 0) ||
	     strstr(r->str, "can't run this command or subcommand")))
		return HE_EPERM;
	return HE_EREFUSED;
}

/* Run one argv command; *out is owned by the caller. */
int he_sr_command(he_stream_redis *s, const char *what, int argc,
		  const char **argv, const size_t *lens, redisReply **out)
{
	waiting(s);
	*out = redisCommandArgv(s->c, argc, argv, lens);
	wait_over(s, *out != NULL);
	return *out ? HE_OK : io_fail(s, what);
}

int he_sr_connect(he_stream_redis *s)
{
	if (s->c)
		return HE_OK;
	/* A connect is one of the calls a silent server must not stretch. */
	unsigned q = s->cfg->lease_ms / 4;
	int r = s->svc->redis_lease(
	    s->svc->host, q && q < LEASE_TIMEOUT_MS ? q : LEASE_TIMEOUT_MS,
	    &s->c);
	if (r < 0) {
		s->c = NULL;
		snprintf(s->err, sizeof(s->err), "redis lease: %s",
			 apphost_strerror(r));
		return he_from_lease(r);
	}
	/* Any new connection may reach another server (a failover): the
	 * consumer re-reads the offset before it goes on. */
	s->reconnected = s->had_conn;
	s->had_conn = true;
	/* A socket timeout shorter than BLOCK would read as an I/O error. */
	redisSetTimeout(s->c, apphost_ms_timeval(io_timeout_ms(s)));
	const char *argv[] = {"CLIENT", "ID"};
	redisReply *rep;
	if ((r = he_sr_command(s, "CLIENT ID", 2, argv, NULL, &rep)) < 0)
		return r;
	if (rep->type != REDIS_REPLY_INTEGER) {
		r = he_sr_refused(s, "CLIENT ID", rep);
		freeReplyObject(rep);
		drop(s, true);
		return r;
	}
	atomic_store(&s->client_id, rep->integer);
	freeReplyObject(rep);
	return HE_OK;
}

int he_stream_redis_ping(he_stream_redis *s)
{
	int r = he_sr_connect(s);
	if (r < 0)
		return r;
	const char *argv[] = {"PING"};
	redisReply *rep;
	if ((r = he_sr_command(s, "PING", 1, argv, NULL, &rep)) < 0)
		return r;
	r = rep->type == REDIS_REPLY_STATUS ? HE_OK
					    : he_sr_refused(s, "PING", rep);
	freeReplyObject(rep);
	return r;
}

/* ---- XREAD ----------------------------------------------------------- */

/*
 * The reply's objects are built by hiredis's own functions; these
 * wrappers count what they cost and refuse (NULL: the reader fails as out
 * of memory and frees what it built) once the reply outgrows the budget
 * after at least one whole entry. An XREAD reply nests as
 * [[stream, [[id, [field, value, ...]], ...]]]: an entry id is the first
 * string at depth 4.
 */
typedef struct read_guard {
	redisReplyObjectFunctions fn;
	redisReplyObjectFunctions *orig;
	size_t bytes, limit, ids;
	bool over;
} read_guard;

static bool charge(const redisReadTask *t, size_t n)
{
	read_guard *g = t->privdata;
	g->bytes += n + HE_BATCH_ITEM_OVERHEAD;
	g->over = g->bytes > g->limit && g->ids >= 2;
	return !g->over;
}

static void *guard_string(const redisReadTask *t, char *str, size_t len)
{
	read_guard *g = t->privdata;
	int depth = 0;
	for (const redisReadTask *p = t->parent; p; p = p->parent)
		depth++;
	if (depth == 4 && t->idx == 0)
		g->ids++;
	return charge(t, len) ? g->orig->createString(t, str, len) : NULL;
}

static void *guard_array(const redisReadTask *t, int n)
{
	read_guard *g = t->privdata;
	return charge(t, (size_t)(n > 0 ? n : 0) * sizeof(void *))
		   ? g->orig->createArray(t, n)
		   : NULL;
}

static void *guard_integer(const redisReadTask *t, long long v)
{
	read_guard *g = t->privdata;
	return charge(t, 0) ? g->orig->createInteger(t, v) : NULL;
}

static void *guard_nil(const redisReadTask *t)
{
	read_guard *g = t->privdata;
	return charge(t, 0) ? g->orig->createNil(t) : NULL;
}

/* The TIME reply that follows each XREAD: s->time_us, s->time_at_ns. */
static int read_time(he_stream_redis *s)
{
	void *got = NULL;
	if (redisGetReply(s->c, &got) != REDIS_OK || !got)
		return io_fail(s, "TIME");
	const redisReply *t = got;
	if (t->type == REDIS_REPLY_ARRAY && t->elements == 2 &&
	    t->element[0]->type == REDIS_REPLY_STRING &&
	    t->element[1]->type == REDIS_REPLY_STRING) {
		s->time_us = strtoull(t->element[0]->str, NULL, 10) * 1000000u +
			     strtoull(t->element[1]->str, NULL, 10);
		s->time_at_ns = he_now_ns(s->svc);
	}
	/* A TIME refused (an ACL without it) only leaves the lag unknown. */
	freeReplyObject(got);
	return HE_OK;
}

/* One XREAD of `count` entries under the guard; *g says what it cost. */
static int xread(he_stream_redis *s, const char *after, unsigned count,
		 bool block, read_guard *g, redisReply **rep)
{
	char cnt[16], ms[16];
	snprintf(cnt, sizeof(cnt), "%u", count);
	snprintf(ms, sizeof(ms), "%u", he_config_read_block_ms(s->cfg));
	/* Without BLOCK the same argv reads what is there (BLOCK 0 would
	 * wait for ever): the last two arguments move up. */
	const char *argv[] = {"XREAD",	 "COUNT",	 cnt,  "BLOCK", ms,
			      "STREAMS", s->cfg->stream, after};
	if (!block) {
		argv[3] = argv[5];
		argv[4] = argv[6];
		argv[5] = argv[7];
	}
	redisReader *rd = s->c->reader;
	void *priv = rd->privdata;
	*g = (read_guard){.orig = rd->fn, .limit = s->batch.budget};
	g->fn = *rd->fn;
	g->fn.createString = guard_string;
	g->fn.createArray = guard_array;
	g->fn.createInteger = guard_integer;
	g->fn.createNil = guard_nil;
	/* TIME rides in the same round trip: Redis runs it once XREAD
	 * returns, so it dates the entries as they are read. */
	static const char *const time_argv[] = {"TIME"};
	if (redisAppendCommandArgv(s->c, block ? 8 : 6, argv, NULL) !=
		REDIS_OK ||
	    redisAppendCommandArgv(s->c, 1, (const char **)time_argv, NULL) !=
		REDIS_OK)
		return io_fail(s, "XREAD");
	rd->fn = &g->fn;
	rd->privdata = g;
	waiting(s);
	void *got = NULL;
	if (redisGetReply(s->c, &got) != REDIS_OK)
		got = NULL;
	*rep = got;
	wait_over(s, *rep != NULL || g->over);
	rd->fn = g->orig;
	rd->privdata = priv;
	if (*rep && read_time(s) < 0) {
		freeReplyObject(*rep);
		*rep = NULL;
		return HE_ECONN;
	}
	if (*rep == NULL && g->over) {
		snprintf(s->err, sizeof(s->err),
			 "XREAD: reply over %zu bytes after %zu entries",
			 g->limit, g->ids - 1);
		drop(s, true); /* the rest of the reply is still unread */
		return HE_ENOMEM;
	}
	return *rep ? HE_OK : io_fail(s, "XREAD");
}

static int read_batch(he_stream_redis *s, const char *after, bool block,
		      const he_stream_entry **entries, size_t *n)
{
	*n = 0;
	*entries = NULL;
	/* The oldest slot's entries are no longer anyone's. */
	s->slot = (s->slot + 1) % HE_READ_SLOTS;
	if (s->reply[s->slot])
		freeReplyObject(s->reply[s->slot]);
	s->reply[s->slot] = NULL;
	read_guard g;
	redisReply *rep;
	unsigned count;
	int r;
	do {
		if ((r = he_sr_connect(s)) < 0)
			return r;
		count = he_batch_count(&s->batch);
		r = xread(s, after, count, block, &g, &rep);
		if (r == HE_ENOMEM && g.over) {
			/* Fewer entries fit: COUNT shrinks, so this ends. */
			s->overflows++;
			he_batch_overflow(&s->batch, g.ids - 1, g.bytes);
		} else if (r < 0) {
			return r;
		}
	} while (r < 0);
	if (rep->type == REDIS_REPLY_ERROR) {
		r = he_sr_refused(s, "XREAD", rep);
		freeReplyObject(rep);
		return r;
	}
	s->reply[s->slot] = rep;
	if ((r = he_xread_parse(&s->parsed[s->slot], rep, n, s->err,
				sizeof(s->err))) < 0)
		return r;
	he_batch_observe(&s->batch, *n, g.bytes);
	s->asked = count;
	*entries = s->parsed[s->slot].entries;
	return HE_OK;
}

int he_stream_redis_read(he_stream_redis *s, const char *after,
			 const he_stream_entry **entries, size_t *n)
{
	return read_batch(s, after, true, entries, n);
}

int he_stream_redis_read_now(he_stream_redis *s, const char *after,
			     const he_stream_entry **entries, size_t *n)
{
	return read_batch(s, after, false, entries, n);
}

/* ---- lag and gap -------------------------------------------------------- */

/* Find `key` in a flat key/value array reply. */
static const redisReply *map_get(const redisReply *m, const char *key)
{
	for (size_t i = 0; i + 1 < m->elements; i += 2)
		if (m->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(m->element[i]->str, key) == 0)
			return m->element[i + 1];
	return NULL;
}

int he_stream_redis_lag(he_stream_redis *s, const char *offset,
			unsigned long long cap, unsigned long long *out)
{
	/* Counted inside Redis: only the number crosses the wire. */
	static const char script[] =
	    "return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', "
	    "'COUNT', ARGV[2])";
	int r = he_sr_connect(s);
	if (r < 0)
		return r;
	char capbuf[24];
	snprintf(capbuf, sizeof(capbuf), "%llu", cap);
	const char *argv[] = {"EVAL",	      script, "1",
			      s->cfg->stream, offset, capbuf};
	redisReply *rep;
	if ((r = he_sr_command(s, "EVAL lag", 6, argv, NULL, &rep)) < 0)
		return r;
	if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) {
		*out = (unsigned long long)rep->integer;
		r = HE_OK;
	} else {
		r = he_sr_refused(s, "EVAL lag", rep);
	}
	freeReplyObject(rep);
	return r;
}

int he_stream_redis_check_gap(he_stream_redis *s, const char *offset,
			      char *first_id, size_t cap)
{
	int r = he_sr_connect(s);
	if (r < 0)
		return r;
	const char *argv[] = {"XINFO", "STREAM", s->cfg->stream};
	redisReply *rep;
	if ((r = he_sr_command(s, "XINFO STREAM", 3, argv, NULL, &rep)) < 0)
		return r;
	r = 0;
	he_stream_id saved, first;
	const redisReply *fe;
	/*
	 * XTRIM does not record what it removed (max-deleted-entry-id stays
	 * 0-0), so the only sign is a first entry newer than our offset:
	 * everything between them is gone, read or not.
	 */
	if (rep->type == REDIS_REPLY_ARRAY &&
	    he_stream_id_parse(offset, &saved) == 0 &&
	    (fe = map_get(rep, "first-entry")) &&
	    fe->type == REDIS_REPLY_ARRAY && fe->elements == 2 &&
	    fe->element[0]->type == REDIS_REPLY_STRING &&
	    he_stream_id_parse(fe->element[0]->str, &first) == 0 &&
	    he_stream_id_cmp(saved, first) < 0) {
		snprintf(first_id, cap, "%s", fe->element[0]->str);
		r = 1;
	}
	/* An error reply (no such key) means no stream yet: no gap. */
	freeReplyObject(rep);
	return r;
}

int he_stream_redis_read_fence(he_stream_redis *s, unsigned long long *epoch)
{
	int r = he_sr_connect(s);
	if (r < 0)
		return r;
	const char *argv[] = {"GET", s->cfg->fence_key};
	redisReply *rep;
	if ((r = he_sr_command(s, "GET fence", 2, argv, NULL, &rep)) < 0)
		return r;
	*epoch = 0;
	if (rep->type == REDIS_REPLY_STRING)
		*epoch = strtoull(rep->str, NULL, 10);
	else if (rep->type != REDIS_REPLY_NIL)
		r = he_sr_refused(s, "GET fence", rep);
	freeReplyObject(rep);
	return r;
}

bool he_stream_redis_reconnected(he_stream_redis *s)
{
	bool r = s->reconnected;
	s->reconnected = false;
	return r;
}

int he_stream_redis_unblock(const apphost_services *svc, long long client_id)
{
	struct redisContext *c;
	int r = svc->redis_lease(svc->host, 200, &c);
	if (r < 0)
		return r == APPHOST_ETIMEDOUT ? HE_ETIMEDOUT : HE_ECONN;
	char id[24];
	snprintf(id, sizeof(id), "%lld", client_id);
	const char *argv[] = {"CLIENT", "UNBLOCK", id};
	redisReply *rep = redisCommandArgv(c, 3, argv, NULL);
	/* An error reply (an ACL without client|unblock) leaves the
	 * connection sound: only a missing reply breaks it. */
	r = !rep			       ? HE_EIO
	    : rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer
	    : rep->type == REDIS_REPLY_ERROR && rep->len >= 6 &&
		    strncmp(rep->str, "NOPERM", 6) == 0
		? HE_EPERM
		: HE_EREFUSED;
	if (rep)
		freeReplyObject(rep);
	svc->redis_release(svc->host, c, r == HE_EIO);
	return r;
}

const char *he_stream_redis_err(const he_stream_redis *s)
{
	return s->err;
}

unsigned long long he_stream_redis_fence_seen(const he_stream_redis *s)
{
	return s->fence_seen;
}

unsigned he_stream_redis_asked(const he_stream_redis *s)
{
	return s->asked;
}

unsigned long long he_stream_redis_overflows(const he_stream_redis *s)
{
	return s->overflows;
}

bool he_stream_redis_time(const he_stream_redis *s, uint64_t *redis_us,
			  uint64_t *at_ns)
{
	*redis_us = s->time_us;
	*at_ns = s->time_at_ns;
	return s->time_us != 0;
}

long long he_stream_redis_client_id(he_stream_redis *s)
{
	return atomic_load(&s->client_id);
}
