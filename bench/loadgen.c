/*
 * loadgen.c -- the load generator and probes of bench/run.
 *
 *   he-loadgen preload URL STREAM GAMES ENTRIES [SEED]
 *       XADD ENTRIES entries, pipelined, with ids <now_ms>-<i> (i = 1..),
 *       so an offset's sequence number is the count of entries up to it.
 *       Entry i < GAMES is a valid event for game i (every game is seen
 *       once, so the dedupe cache ends up holding all of them); the rest
 *       follow the mix below over random games. Prints the last id.
 *   he-loadgen offer URL STREAM GAMES RATE SECONDS [SEED]
 *       XADD at RATE entries/s for SECONDS (ids `*`: Redis's clock),
 *       pipelining what is due each millisecond. Prints the count and
 *       the last id.
 *   he-loadgen progress URL OFFSET_KEY ENTRIES WINDOW_S [START_TIMEOUT_S]
 *       Poll the offset key (preload ids) every millisecond; the rate from
 *       the first offset at or past 10% of ENTRIES to the last entry, or
 *       to the offset WINDOW_S later when that comes first. Fails when the
 *       10% offset takes longer than START_TIMEOUT_S (default 600).
 *   he-loadgen wait URL OFFSET_KEY ID TIMEOUT_S
 *       Wait until the offset key holds ID.
 *   he-loadgen big URL STREAM GAMES COUNT MAX_BYTES WIDE FIELDS
 *       XADD COUNT entries whose `details` value takes, in turn, 60 KiB
 *       (still decodable), 512 KiB, 1 MiB and MAX_BYTES, each fourth a
 *       plain entry instead (small and large alternate), then WIDE
 *       entries of FIELDS fields each. Prints the count and the last id.
 *   he-loadgen latency URL LOBBY_STREAM
 *       Per lobby entry: its id's ms minus its source_id's ms; prints the
 *       count, p50, p99 and max.
 *
 * Output is `key=value` words on one line, for bench/run to pick up.
 * Exit status: 0, 1 on a failure (message on stderr), 2 on usage.
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PIPELINE 1000 /* XADDs in flight per round trip */
#define GAME_FMT "game-%06u"

/* ---- small helpers ------------------------------------------------------ */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("he-loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static unsigned long parse_num(const char *s, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0')
		fail("%s: not a number: \"%s\"", what, s);
	return v;
}

/* xorshift64*: deterministic for a seed, good enough for a mix. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* redis://[:password@]host:port/db, the subset scripts/services emits. */
static redisContext *connect_url(const char *url)
{
	char host[256] = "127.0.0.1";
	unsigned port = 6379, db = 0;

	if (strncmp(url, "redis://", 8) != 0 ||
	    sscanf(url + 8, "%255[^:/]:%u/%u", host, &port, &db) < 2)
		fail("URL: expected redis://host:port[/db], got \"%s\"", url);
	redisContext *c = redisConnect(host, (int)port);
	if (c == NULL || c->err)
		fail("connect %s:%u: %s", host, port,
		     c ? c->errstr : "out of memory");
	if (db != 0) {
		redisReply *r = redisCommand(c, "SELECT %u", db);
		if (r == NULL || r->type == REDIS_REPLY_ERROR)
			fail("SELECT %u failed", db);
		freeReplyObject(r);
	}
	return c;
}

/* ---- the mix ------------------------------------------------------------- */

/*
 * Per mille: mostly probes and starts, some terminal container events, a
 * few malformed entries and a few for games without a row.
 */
static const struct {
	const char *type; /* NULL: malformed */
	unsigned weight;
} mix[] = {
    {"probe_failed", 300},
    {"probe_recovered", 250},
    {"container_started", 250},
    {"inspect_unhealthy", 80},
    {"container_exited", 40},
    {"container_oom", 30},
    {"container_disappeared", 30},
    {NULL, 10},
    {"", 10}, /* a valid type for a game without a row */
};

/* The argv of one XADD; strings live in the caller's buffers. */
typedef struct entry_buf {
	const char *argv[16];
	size_t lens[16];
	int argc;
	char id[48], game[32], occurred[32], container[24];
} entry_buf;

static void add_arg(entry_buf *b, const char *s)
{
	b->argv[b->argc] = s;
	b->lens[b->argc] = strlen(s);
	b->argc++;
}

/*
 * Fill b with an XADD of entry i (1-based) to `stream`: event `type` for
 * game `game` (type NULL: one of three malformed shapes).
 */
static void build_entry(entry_buf *b, const char *stream, const char *id,
			const char *type, unsigned game, bool no_row,
			uint64_t i)
{
	b->argc = 0;
	add_arg(b, "XADD");
	add_arg(b, stream);
	snprintf(b->id, sizeof(b->id), "%s", id);
	add_arg(b, b->id);
	if (no_row)
		snprintf(b->game, sizeof(b->game), "no-row-%06u", game);
	else
		snprintf(b->game, sizeof(b->game), GAME_FMT, game);
	time_t t = time(NULL);
	strftime(b->occurred, sizeof(b->occurred), "%Y-%m-%dT%H:%M:%SZ",
		 gmtime(&t));
	snprintf(b->container, sizeof(b->container), "%012" PRIx64,
		 (uint64_t)game * 2654435761u);
	if (type == NULL) {
		switch (i % 3) {
		case 0: /* no game_id */
			add_arg(b, "event_type");
			add_arg(b, "container_oom");
			break;
		case 1: /* unknown type */
			add_arg(b, "game_id");
			add_arg(b, b->game);
			add_arg(b, "event_type");
			add_arg(b, "container_melted");
			break;
		default: /* empty type */
			add_arg(b, "game_id");
			add_arg(b, b->game);
			add_arg(b, "event_type");
			add_arg(b, "");
		}
		return;
	}
	add_arg(b, "game_id");
	add_arg(b, b->game);
	add_arg(b, "event_type");
	add_arg(b, type);
	add_arg(b, "occurred_at");
	add_arg(b, b->occurred);
	add_arg(b, "container_id");
	add_arg(b, b->container);
	if (i % 4 == 0) {
		add_arg(b, "details");
		add_arg(b, "{\"exit_code\":137,\"source\":\"docker\"}");
	}
}

/* Pick entry i's event: a valid one for game i while i < games. */
static void pick(uint64_t *seed, unsigned games, uint64_t i, const char **type,
		 unsigned *game, bool *no_row)
{
	unsigned total = 0;

	for (size_t k = 0; k < sizeof(mix) / sizeof(mix[0]); k++)
		total += mix[k].weight;
	uint64_t r = rnd(seed);
	*no_row = false;
	if (i < games) {
		*game = (unsigned)i;
		*type = mix[r % 7].type; /* the first seven are valid */
		return;
	}
	*game = (unsigned)(r % games);
	unsigned w = (unsigned)((r >> 32) % total);
	for (size_t k = 0; k < sizeof(mix) / sizeof(mix[0]); k++) {
		if (w < mix[k].weight) {
			*type = mix[k].type;
			if (*type != NULL && **type == '\0') {
				*type = "probe_failed";
				*no_row = true;
			}
			return;
		}
		w -= mix[k].weight;
	}
	*type = "probe_failed";
}

/* Read `n` pipelined XADD replies; keep the last id in last. */
static void drain(redisContext *c, size_t n, char *last, size_t cap)
{
	for (size_t k = 0; k < n; k++) {
		redisReply *r;
		if (redisGetReply(c, (void **)&r) != REDIS_OK)
			fail("XADD: %s", c->errstr);
		if (r->type != REDIS_REPLY_STRING)
			fail("XADD refused: %s",
			     r->type == REDIS_REPLY_ERROR ? r->str : "?");
		snprintf(last, cap, "%s", r->str);
		freeReplyObject(r);
	}
}

/* ---- commands ------------------------------------------------------------ */

static int cmd_preload(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	redisContext *c = connect_url(argv[0]);
	const char *stream = argv[1];
	unsigned games = (unsigned)parse_num(argv[2], "GAMES");
	uint64_t entries = parse_num(argv[3], "ENTRIES");
	uint64_t seed = argc > 4 ? parse_num(argv[4], "SEED") : 42;
	struct timespec ts;
	char id[48], last[48] = "";
	entry_buf b;
	size_t inflight = 0;

	if (games == 0)
		fail("GAMES must be > 0");
	seed = seed * 0x9E3779B97F4A7C15ull + 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms =
	    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (uint64_t i = 0; i < entries; i++) {
		const char *type;
		unsigned game;
		bool no_row;
		pick(&seed, games, i, &type, &game, &no_row);
		snprintf(id, sizeof(id), "%" PRIu64 "-%" PRIu64, ms, i + 1);
		build_entry(&b, stream, id, type, game, no_row, i);
		redisAppendCommandArgv(c, b.argc, b.argv, b.lens);
		if (++inflight == PIPELINE) {
			drain(c, inflight, last, sizeof(last));
			inflight = 0;
		}
	}
	drain(c, inflight, last, sizeof(last));
	printf("entries=%" PRIu64 " last_id=%s\n", entries, last);
	redisFree(c);
	return 0;
}

static int cmd_big(int argc, char **argv)
{
	if (argc < 7)
		return 2;
	redisContext *c = connect_url(argv[0]);
	const char *stream = argv[1];
	unsigned games = (unsigned)parse_num(argv[2], "GAMES");
	uint64_t count = parse_num(argv[3], "COUNT");
	size_t max = parse_num(argv[4], "MAX_BYTES");
	uint64_t wide = parse_num(argv[5], "WIDE");
	size_t fields = parse_num(argv[6], "FIELDS");
	const size_t sizes[] = {60 << 10, 512 << 10, 1 << 20, max};
	char *value = malloc(max > (1 << 20) ? max : (1 << 20));
	const char **av = malloc((2 * fields + 32) * sizeof(*av));
	size_t *al = malloc((2 * fields + 32) * sizeof(*al));
	char last[48] = "";
	entry_buf b;
	size_t inflight = 0, pending = 0;

	if (games == 0 || value == NULL || av == NULL || al == NULL)
		fail("GAMES must be > 0 (or out of memory)");
	memset(value, 'd', max > (1 << 20) ? max : (1 << 20));
	for (uint64_t i = 0; i < count + wide; i++) {
		build_entry(&b, stream, "*", "probe_failed",
			    (unsigned)(i % games), false, 1);
		int n = b.argc;
		memcpy(av, b.argv, (size_t)n * sizeof(*av));
		memcpy(al, b.lens, (size_t)n * sizeof(*al));
		if (i >= count) {
			for (size_t k = 0; k < fields; k++) {
				av[n] = k % 2 ? "value" : "field";
				al[n++] = 5;
				av[n] = "v";
				al[n++] = 1;
			}
		} else if (i % 4 != 3) {
			av[n] = "details";
			al[n++] = 7;
			av[n] = value;
			al[n++] = sizes[(i - i / 4) % 4];
		}
		if (redisAppendCommandArgv(c, n, av, al) != REDIS_OK)
			fail("XADD: %s", c->errstr);
		pending += i < count && i % 4 != 3 ? sizes[(i - i / 4) % 4]
						   : 12 * fields;
		/* Bound the client's own output buffer: drain every 16 MiB. */
		if (++inflight == PIPELINE || pending > (16u << 20)) {
			drain(c, inflight, last, sizeof(last));
			inflight = pending = 0;
		}
	}
	drain(c, inflight, last, sizeof(last));
	printf("entries=%" PRIu64 " last_id=%s\n", count + wide, last);
	free(value);
	free(av);
	free(al);
	redisFree(c);
	return 0;
}

static int cmd_offer(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	redisContext *c = connect_url(argv[0]);
	const char *stream = argv[1];
	unsigned games = (unsigned)parse_num(argv[2], "GAMES");
	double rate = (double)parse_num(argv[3], "RATE");
	double seconds = (double)parse_num(argv[4], "SECONDS");
	uint64_t seed = argc > 5 ? parse_num(argv[5], "SEED") : 7;
	uint64_t total = (uint64_t)(rate * seconds), sent = 0;
	char last[48] = "";
	entry_buf b;

	if (games == 0 || rate <= 0)
		fail("GAMES and RATE must be > 0");
	seed = seed * 0x9E3779B97F4A7C15ull + 1;
	double t0 = now_s();
	while (sent < total) {
		double due = (now_s() - t0) * rate;
		uint64_t want = due > (double)total ? total : (uint64_t)due;
		size_t n = 0;
		for (; sent < want; sent++, n++) {
			const char *type;
			unsigned game;
			bool no_row;
			/* i >= games: the mix over random games */
			pick(&seed, games, games + sent, &type, &game, &no_row);
			build_entry(&b, stream, "*", type, game, no_row, sent);
			redisAppendCommandArgv(c, b.argc, b.argv, b.lens);
		}
		drain(c, n, last, sizeof(last));
		sleep_ms(1);
	}
	printf("entries=%" PRIu64 " seconds=%.2f last_id=%s\n", sent,
	       now_s() - t0, last);
	redisFree(c);
	return 0;
}

/* GET key: the sequence part of a <ms>-<seq> offset, 0 if none. */
static uint64_t offset_seq(redisContext *c, const char *key)
{
	redisReply *r = redisCommand(c, "GET %s", key);
	uint64_t seq = 0;

	if (r == NULL)
		fail("GET %s: %s", key, c->errstr);
	if (r->type == REDIS_REPLY_STRING) {
		const char *dash = strchr(r->str, '-');
		seq = dash ? strtoull(dash + 1, NULL, 10) : 0;
	}
	freeReplyObject(r);
	return seq;
}

static int cmd_progress(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	redisContext *c = connect_url(argv[0]);
	const char *key = argv[1];
	uint64_t entries = parse_num(argv[2], "ENTRIES");
	double window = (double)parse_num(argv[3], "WINDOW_S");
	double timeout =
	    argc > 4 ? (double)parse_num(argv[4], "START_TIMEOUT_S") : 600;
	uint64_t from = entries / 10, seq10 = 0, seq = 0;
	double t0 = now_s(), t10 = 0, t = t0;

	while (seq < entries) {
		t = now_s();
		seq = offset_seq(c, key);
		if (t10 == 0 && seq >= from && seq > 0) {
			t10 = t;
			seq10 = seq;
		}
		if (t10 != 0 && t - t10 >= window)
			break;
		if (t10 == 0 && t - t0 >= timeout)
			fail("offset did not reach 10%% (%" PRIu64
			     ") within %.0f s: at %" PRIu64,
			     from, timeout, seq);
		sleep_ms(1);
	}
	double span = t - t10;
	double rate = span > 0 ? (double)(seq - seq10) / span : 0;
	printf("entries_per_s=%.0f measured=%" PRIu64 " seconds=%.3f "
	       "complete=%d\n",
	       rate, seq - seq10, span, seq >= entries);
	redisFree(c);
	return 0;
}

static int cmd_wait(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	redisContext *c = connect_url(argv[0]);
	double timeout = (double)parse_num(argv[3], "TIMEOUT_S");
	double t0 = now_s();

	for (;;) {
		redisReply *r = redisCommand(c, "GET %s", argv[1]);
		if (r == NULL)
			fail("GET %s: %s", argv[1], c->errstr);
		bool done = r->type == REDIS_REPLY_STRING &&
			    strcmp(r->str, argv[2]) == 0;
		freeReplyObject(r);
		if (done)
			break;
		if (now_s() - t0 > timeout)
			fail("offset %s not reached within %.0f s", argv[2],
			     timeout);
		sleep_ms(5);
	}
	printf("waited_s=%.3f\n", now_s() - t0);
	redisFree(c);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The value of `field` in a stream entry's field array, or NULL. */
static const char *field_of(const redisReply *fields, const char *field)
{
	for (size_t k = 0; k + 1 < fields->elements; k += 2)
		if (strcmp(fields->element[k]->str, field) == 0)
			return fields->element[k + 1]->str;
	return NULL;
}

static int cmd_latency(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	redisContext *c = connect_url(argv[0]);
	size_t n = 0, cap = 4096;
	uint64_t *lat = malloc(cap * sizeof(*lat));
	char start[64] = "-";

	if (lat == NULL)
		fail("out of memory");
	for (;;) {
		redisReply *r = redisCommand(c, "XRANGE %s %s + COUNT 10000",
					     argv[1], start);
		if (r == NULL || r->type != REDIS_REPLY_ARRAY)
			fail("XRANGE %s failed", argv[1]);
		if (r->elements == 0) {
			freeReplyObject(r);
			break;
		}
		for (size_t i = 0; i < r->elements; i++) {
			const redisReply *e = r->element[i];
			const char *src = field_of(e->element[1], "source_id");
			if (src == NULL)
				fail("lobby entry %s has no source_id",
				     e->element[0]->str);
			uint64_t out = strtoull(e->element[0]->str, NULL, 10);
			uint64_t in = strtoull(src, NULL, 10);
			if (n == cap) {
				cap *= 2;
				uint64_t *l = realloc(lat, cap * sizeof(*lat));
				if (l == NULL)
					fail("out of memory");
				lat = l;
			}
			lat[n++] = out >= in ? out - in : 0;
		}
		/* Next page: strictly after the last id (exclusive '('). */
		snprintf(start, sizeof(start), "(%s",
			 r->element[r->elements - 1]->element[0]->str);
		freeReplyObject(r);
	}
	if (n == 0)
		fail("no entries in %s", argv[1]);
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("published=%zu p50_ms=%" PRIu64 " p99_ms=%" PRIu64
	       " max_ms=%" PRIu64 "\n",
	       n, lat[(n - 1) / 2], lat[(size_t)((double)(n - 1) * 0.99)],
	       lat[n - 1]);
	free(lat);
	redisFree(c);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
	    {"preload", cmd_preload},	{"offer", cmd_offer},
	    {"progress", cmd_progress}, {"wait", cmd_wait},
	    {"latency", cmd_latency},	{"big", cmd_big},
	};

	for (size_t i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			int rc = cmds[i].fn(argc - 2, argv + 2);
			if (rc == 2)
				fprintf(stderr,
					"he-loadgen %s: missing arguments (see "
					"bench/loadgen.c)\n",
					argv[1]);
			return rc;
		}
	fprintf(stderr,
		"usage: he-loadgen preload|offer|progress|wait|latency|big "
		"ARGS... (see bench/loadgen.c)\n");
	return 2;
}
