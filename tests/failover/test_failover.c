/*
 * test_failover.c -- suite 'failover': apphost with health_events.so
 * against replicated servers the test starts itself (tests/failover/
 * cluster): a Redis primary, a replica and three Sentinels (which
 * require a password); a PostgreSQL primary and a synchronous standby.
 * DESIGN §11.
 *
 * One test runs the steps in turn on one cluster (starting it costs
 * seconds), with a writer adding entries all along except where a step
 * needs the stream still:
 *   0. The host's Sentinel pool in this process (discovery, the Sentinel
 *      that answered asked first, unknown master, wrong password,
 *      /readyz); apphost pointed at the replica redials after -READONLY.
 *   1. SIGKILL the Redis primary: Sentinel promotes the replica; the old
 *      primary, started again, comes back as a replica.
 *   2. The PostgreSQL primary is fenced read-only (SQLSTATE 25006 must
 *      make the consumer let go), stopped, and the standby promoted
 *      (libpq's target_session_attrs=read-write finds it).
 *   3. A switchover (SENTINEL FAILOVER) with the old primary alive, while
 *      the Sentinel apphost listens to for switches hangs.
 *   4. Redis loses the consumer's last writes: the replica's link is cut
 *      (its ACL user switched off on the primary) after it has the input
 *      but before the consumer commits; then the primary is killed and
 *      the replica, without those snapshots and that offset, promoted.
 * After each, the offset must move again on the new primary within 5 s;
 * in the end the rows equal a model of the stream as the last primary
 * holds it, and each game's last snapshot there equals its row. The
 * promotion and resume times are printed ("failover: ..." lines).
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apphost_proc.h"
#include "metrics.h"
#include "pool_redis.h"
#include "redis_pg.h"
#include "status.h"

#define NGAMES	    16 /* the writer's games */
#define NLOST	    4  /* games only step 4 touches */
#define RESUME_MS   5000
#define FAILOVER_MS 20000 /* Sentinel's own promotion, generously */

static struct {
	char dir[512];
	char cluster[600];
	int redis[2];
	int sentinels[3];
	int pg[2];
	char sentinel_list[128];
	char sentinel_password[64];
	char dsn[256];
	th_keys k;
	char log[700];
	pid_t apphost;
} C;

/* ---- the cluster ------------------------------------------------------- */

static int cluster(const char *cmd, const char *arg)
{
	char line[2048];
	int st;

	snprintf(line, sizeof(line), "'%s' %s '%s' %s >>'%s/cluster.log' 2>&1",
		 C.cluster, cmd, C.dir, arg != NULL ? arg : "", C.dir);
	st = system(line);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void read_env(void)
{
	char path[700], *env;

	snprintf(path, sizeof(path), "%s/env", C.dir);
	env = ap_read_file(path);
	cr_assert_not_null(env, "no %s", path);
	cr_assert_eq(sscanf(strstr(env, "REDIS_PORTS="), "REDIS_PORTS='%d %d'",
			    &C.redis[0], &C.redis[1]),
		     2);
	cr_assert_eq(sscanf(strstr(env, "SENTINEL_PORTS="),
			    "SENTINEL_PORTS='%d %d %d'", &C.sentinels[0],
			    &C.sentinels[1], &C.sentinels[2]),
		     3);
	cr_assert_eq(sscanf(strstr(env, "PG_PORTS="), "PG_PORTS='%d %d'",
			    &C.pg[0], &C.pg[1]),
		     2);
	cr_assert_eq(sscanf(strstr(env, "SENTINEL_PASSWORD="),
			    "SENTINEL_PASSWORD='%63[^']'", C.sentinel_password),
		     1);
	free(env);
	snprintf(C.sentinel_list, sizeof(C.sentinel_list),
		 "127.0.0.1:%d, 127.0.0.1:%d,127.0.0.1:%d", C.sentinels[0],
		 C.sentinels[1], C.sentinels[2]);
	snprintf(C.dsn, sizeof(C.dsn),
		 "host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres "
		 "dbname=apphost target_session_attrs=read-write",
		 C.pg[0], C.pg[1]);
}

static void setup(void)
{
	const char *run = getenv("APPHOST_RUN_DIR");
	const char *src = getenv("FAILOVER_CLUSTER");

	cr_assert_not_null(src, "FAILOVER_CLUSTER must be set by meson");
	snprintf(C.cluster, sizeof(C.cluster), "%s", src);
	if (run != NULL && run[0] != '\0') {
		snprintf(C.dir, sizeof(C.dir), "%s/failover.%ld", run,
			 (long)getpid());
	} else {
		snprintf(C.dir, sizeof(C.dir), "/tmp/apphost-failover.XXXXXX");
		cr_assert_not_null(mkdtemp(C.dir));
	}
	char mk[700];

	snprintf(mk, sizeof(mk), "mkdir -p '%s'", C.dir);
	cr_assert_eq(system(mk), 0);
	double t0 = th_now_ms();

	cr_assert_eq(cluster("start", NULL), 0,
		     "the cluster did not start: see %s/cluster.log", C.dir);
	cr_log_info("cluster up in %.0f ms", th_now_ms() - t0);
	read_env();
	snprintf(C.log, sizeof(C.log), "%s/apphost.log", C.dir);
}

static void teardown(void)
{
	if (C.apphost > 0)
		ap_kill9(C.apphost);
	if (C.dir[0] != '\0' && getenv("FAILOVER_KEEP") == NULL)
		(void)cluster("stop", NULL);
}

/* ---- Redis ------------------------------------------------------------- */

static redisContext *rconnect(int port)
{
	struct timeval tv = {.tv_sec = 0, .tv_usec = 500000};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

	if (c == NULL || c->err) {
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, (struct timeval){.tv_sec = 2});
	return c;
}

/* A connection to Sentinel i, authenticated; NULL when down. */
static redisContext *sconnect(int i)
{
	redisContext *c = rconnect(C.sentinels[i]);
	redisReply *r;

	if (c == NULL)
		return NULL;
	r = redisCommand(c, "AUTH %s", C.sentinel_password);
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		if (r != NULL)
			freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(r);
	return c;
}

/* SIGSTOP or SIGCONT Sentinel i (a Sentinel that hangs). */
static void sentinel_signal(int i, int sig)
{
	char path[700], *pid;

	snprintf(path, sizeof(path), "%s/sentinel-%d/sentinel.pid", C.dir,
		 C.sentinels[i]);
	pid = ap_read_file(path);
	cr_assert_not_null(pid, "no %s", path);
	cr_assert_eq(kill((pid_t)atol(pid), sig), 0);
	free(pid);
}

/* The primary's port as the first Sentinel that answers names it; 0.
 * Asked last to first: step 3 hangs the first. */
static int sentinel_primary(void)
{
	for (int i = 2; i >= 0; i--) {
		redisContext *c = sconnect(i);
		redisReply *r;
		int port = 0;

		if (c == NULL)
			continue;
		r = redisCommand(c,
				 "SENTINEL get-master-addr-by-name fomaster");
		if (r != NULL && r->type == REDIS_REPLY_ARRAY &&
		    r->elements == 2)
			port = atoi(r->element[1]->str);
		if (r != NULL)
			freeReplyObject(r);
		redisFree(c);
		if (port)
			return port;
	}
	return 0;
}

/* INFO replication's role and link lines of `port` (static buffer). */
static const char *replication_of(int port)
{
	static char out[512];
	redisContext *c = rconnect(port);
	redisReply *r = c != NULL ? redisCommand(c, "INFO replication") : NULL;

	out[0] = '\0';
	if (r != NULL && r->type == REDIS_REPLY_STRING)
		for (char *l = strtok(r->str, "\r\n"); l;
		     l = strtok(NULL, "\r\n"))
			if (!strncmp(l, "role:", 5) ||
			    !strncmp(l, "master_", 7))
				snprintf(out + strlen(out),
					 sizeof(out) - strlen(out), "%s ", l);
	if (r != NULL)
		freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
	return out;
}

/* ROLE's first word on port ("master", "slave"), or "" when down. */
static void role(int port, char *out, size_t cap)
{
	redisContext *c = rconnect(port);
	redisReply *r = c != NULL ? redisCommand(c, "ROLE") : NULL;

	snprintf(out, cap, "%s",
		 r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0
		     ? r->element[0]->str
		     : "");
	if (r != NULL)
		freeReplyObject(r);
	if (c != NULL)
		redisFree(c);
}

/* Ms until the Sentinels name `port` and it says master, -1 when that
 * took longer than within_ms. */
static double promoted_within(int port, double within_ms)
{
	double t0 = th_now_ms();
	char r[16];

	for (;;) {
		role(port, r, sizeof(r));
		if (sentinel_primary() == port && strcmp(r, "master") == 0)
			return th_now_ms() - t0;
		if (th_now_ms() - t0 >= within_ms)
			return -1;
		usleep(20 * 1000);
	}
}

/* Wait until the Sentinels name `port` and it says master; ms waited. */
static double await_promotion(int port)
{
	double ms = promoted_within(port, FAILOVER_MS);

	cr_assert_geq(ms, 0, "no promotion of redis on %d", port);
	return ms;
}

static char *offset_at(int port)
{
	redisContext *c = rconnect(port);
	char *v;

	if (c == NULL)
		return NULL;
	v = th_get(c, C.k.offset_key);
	redisFree(c);
	return v;
}

/* Wait until the offset on port is set and differs from `was` (NULL:
 * any value); ms waited, asserting RESUME_MS. */
static double await_offset_moves(int port, const char *was, const char *what)
{
	double t0 = th_now_ms();

	for (;;) {
		char *now = offset_at(port);
		bool moved = now != NULL && (was == NULL || strcmp(now, was));

		free(now);
		if (moved)
			return th_now_ms() - t0;
		cr_assert_lt(th_now_ms() - t0, RESUME_MS,
			     "%s: the offset did not move on the new primary "
			     "within %d ms (see %s)",
			     what, RESUME_MS, C.log);
		usleep(10 * 1000);
	}
}

static void await_offset_is(int port, const char *want)
{
	double t0 = th_now_ms();

	for (;;) {
		char *now = offset_at(port);
		bool same = now != NULL && strcmp(now, want) == 0;

		free(now);
		if (same)
			return;
		cr_assert_lt(th_now_ms() - t0, 15000,
			     "the consumer did not reach %s (see %s)", want,
			     C.log);
		usleep(10 * 1000);
	}
}

/*
 * WAIT until the primary's writes reached its replica. WAIT covers what
 * its own connection wrote, so write first: the replication offset is
 * one for all clients, and reaching ours covers everyone's before it.
 */
static void await_replicated(int primary)
{
	redisContext *c = rconnect(primary);
	redisReply *r;

	cr_assert_not_null(c);
	freeReplyObject(th_cmd(c, "INCR", "failover:wait", NULL));
	r = redisCommand(c, "WAIT 1 5000");
	cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER &&
		      r->integer == 1,
		  "the replica of %d did not acknowledge", primary);
	freeReplyObject(r);
	redisFree(c);
}

static int other(int port)
{
	return port == C.redis[0] ? C.redis[1] : C.redis[0];
}

/* ---- the writer ---------------------------------------------------------- */

static struct {
	pthread_t thread;
	atomic_bool stop, pause, paused;
	atomic_bool rediscover; /* ask the Sentinels before the next write */
	pthread_mutex_t mu;
	char last_id[48]; /* last entry written (under mu) */
	unsigned long written;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void game_id(char *out, size_t cap, const char *kind, int i)
{
	snprintf(out, cap, "%s:%s%d", C.k.prefix, kind, i);
}

/* XADD one entry on the current primary; true when it was written. */
static bool xadd(redisContext **c, const char *game, const char *type)
{
	const char *argv[] = {"XADD", C.k.stream,   "*", "game_id",
			      game,   "event_type", type};
	redisReply *r;
	bool ok;

	if (*c == NULL) {
		int p = sentinel_primary();
		char ro[16];

		if (p == 0)
			return false;
		role(p, ro, sizeof(ro));
		if (strcmp(ro, "master") != 0 || (*c = rconnect(p)) == NULL)
			return false;
	}
	r = redisCommandArgv(*c, 7, argv, NULL);
	ok = r != NULL && r->type == REDIS_REPLY_STRING;
	if (ok) {
		pthread_mutex_lock(&W.mu);
		snprintf(W.last_id, sizeof(W.last_id), "%s", r->str);
		W.written++;
		pthread_mutex_unlock(&W.mu);
	}
	if (r != NULL)
		freeReplyObject(r);
	if (!ok) { /* a dead or demoted primary: find the new one */
		redisFree(*c);
		*c = NULL;
	}
	return ok;
}

static void *writer(void *arg)
{
	redisContext *c = NULL;
	unsigned seed = 7;
	char game[160];

	(void)arg;
	while (!atomic_load(&W.stop)) {
		if (atomic_load(&W.pause)) {
			atomic_store(&W.paused, true);
			usleep(2000);
			continue;
		}
		atomic_store(&W.paused, false);
		if (atomic_exchange(&W.rediscover, false) && c != NULL) {
			/* A switchover leaves the old primary up for a while:
			 * like any Sentinel client, follow the switch. */
			redisFree(c);
			c = NULL;
		}
		int g = (int)(rand_r(&seed) % NGAMES);
		const char *type =
		    th_events[rand_r(&seed) % TH_EVENT_COUNT].name;

		game_id(game, sizeof(game), "g", g);
		while (!xadd(&c, game, type) && !atomic_load(&W.stop))
			usleep(20 * 1000);
		usleep(4000); /* about 200 entries a second */
	}
	if (c != NULL)
		redisFree(c);
	return NULL;
}

/* Stop writing; returns the last id written (static buffer). */
static const char *writer_pause(void)
{
	static char id[48];

	atomic_store(&W.paused, false);
	atomic_store(&W.pause, true);
	while (!atomic_load(&W.paused))
		usleep(1000);
	pthread_mutex_lock(&W.mu);
	snprintf(id, sizeof(id), "%s", W.last_id);
	pthread_mutex_unlock(&W.mu);
	return id;
}

static void writer_resume(void)
{
	atomic_store(&W.rediscover, true);
	atomic_store(&W.pause, false);
}

/* ---- the model ------------------------------------------------------------
 */

struct mrow {
	char id[160];
	char status[32];
	char health[32];
};

/* Apply the stream as the primary on port holds it to rows[0..n). */
static void model(int port, struct mrow *rows, size_t n)
{
	redisContext *c = rconnect(port);
	redisReply *r;

	cr_assert_not_null(c);
	r = th_xrange(c, C.k.stream);
	for (size_t i = 0; i < r->elements; i++) {
		const char *g = th_field(r->element[i], "game_id");
		const char *t = th_field(r->element[i], "event_type");
		const th_event *e = NULL;
		struct mrow *row = NULL;

		for (size_t k = 0; k < TH_EVENT_COUNT; k++)
			if (strcmp(th_events[k].name, t) == 0)
				e = &th_events[k];
		for (size_t k = 0; k < n; k++)
			if (strcmp(rows[k].id, g) == 0)
				row = &rows[k];
		cr_assert(e != NULL && row != NULL, "entry %zu: %s %s", i, g,
			  t);
		if (e->to != NULL && strcmp(row->status, e->from) == 0)
			snprintf(row->status, sizeof(row->status), "%s", e->to);
		snprintf(row->health, sizeof(row->health), "%s", e->summary);
	}
	freeReplyObject(r);
	redisFree(c);
}

/* Rows and last snapshots against the model. */
static void check_final(int redis_port, int pg_port)
{
	struct mrow rows[NGAMES + NLOST];
	char conninfo[256], want[512], pay[512];
	redisContext *c = rconnect(redis_port);
	redisReply *lobby;
	PGconn *pg;

	for (int i = 0; i < NGAMES + NLOST; i++) {
		game_id(rows[i].id, sizeof(rows[i].id), i < NGAMES ? "g" : "l",
			i < NGAMES ? i : i - NGAMES);
		snprintf(rows[i].status, sizeof(rows[i].status), "running");
		rows[i].health[0] = '\0';
	}
	model(redis_port, rows, NGAMES + NLOST);
	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d user=postgres dbname=apphost",
		 pg_port);
	pg = PQconnectdb(conninfo);
	cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
	cr_assert_not_null(c);
	lobby = th_xrange(c, C.k.lobby);
	for (int i = 0; i < NGAMES + NLOST; i++) {
		char *row = th_row(pg, rows[i].id);
		char expect[96];
		const char *last = NULL;

		snprintf(expect, sizeof(expect), "%s/%s/0", rows[i].status,
			 rows[i].health);
		cr_expect_str_eq(row, expect, "row of %s", rows[i].id);
		for (size_t k = 0; k < lobby->elements; k++)
			if (strcmp(th_field(lobby->element[k], "game_id"),
				   rows[i].id) == 0)
				last = th_field(lobby->element[k], "payload");
		th_payload(want, sizeof(want), rows[i].id, rows[i].status,
			   rows[i].health, 0);
		snprintf(pay, sizeof(pay), "%s",
			 last != NULL ? last : "(none)");
		if (rows[i].health[0] != '\0')
			cr_expect_str_eq(pay, want, "last snapshot of %s",
					 rows[i].id);
		free(row);
	}
	freeReplyObject(lobby);
	redisFree(c);
	PQfinish(pg);
}

/* ---- the host's own view: the pool ----------------------------------------
 */

/* errorstat_ERR of the node on port: how many -ERR replies it sent. */
static long err_replies(int port)
{
	redisContext *c = rconnect(port);
	redisReply *r;
	const char *at;
	long n = 0;

	cr_assert_not_null(c);
	r = th_cmd(c, "INFO", "errorstats", NULL);
	at = strstr(r->str, "errorstat_ERR:count=");
	if (at != NULL)
		n = atol(at + strlen("errorstat_ERR:count="));
	freeReplyObject(r);
	redisFree(c);
	return n;
}

/*
 * The Sentinel-backed pool in this process, outside apphost: it finds
 * the primary past an entry that is no Sentinel (the primary itself,
 * which answers SENTINEL with -ERR), asks the one that answered first
 * next time, authenticates to the Sentinels, refuses an unknown master
 * or a wrong password, and keeps /readyz not ready without a primary.
 */
static void pool_checks(struct apphost_redis_pool **pool)
{
	struct apphost_redis_pool *bad;
	struct apphost_redis_sentinel sen = {C.sentinel_list, "fomaster",
					     C.sentinel_password};
	struct apphost_redis_sentinel wrong = {C.sentinel_list, "nosuch",
					       C.sentinel_password};
	struct apphost_redis_sentinel nopw = {C.sentinel_list, "fomaster",
					      "wrong-password"};
	char list[160], err[512], r[16], ready[512];
	redisContext *c;
	long errs;

	snprintf(list, sizeof(list), "127.0.0.1:%d,%s", C.redis[0],
		 C.sentinel_list);
	sen.sentinels = list;
	cr_assert_eq(apphost_redis_pool_new_sentinel("redis://127.0.0.1:9/0",
						     &sen, 2, pool, err,
						     sizeof(err)),
		     0, "%s", err);
	cr_assert(strncmp(apphost_redis_pool_addr(*pool),
			  "sentinel:fomaster@127.0.0.1:", 28) == 0,
		  "%s", apphost_redis_pool_addr(*pool));
	errs = err_replies(C.redis[0]);
	for (int i = 0; i < 3; i++) { /* three new connections */
		cr_assert_eq(apphost_redis_pool_lease(*pool, 3000, "t", &c), 0);
		cr_assert_eq(c->tcp.port, C.redis[0],
			     "the primary, not the URL's");
		redisReply *rr = redisCommand(c, "ROLE");

		cr_assert_str_eq(rr->element[0]->str, "master");
		freeReplyObject(rr);
		apphost_redis_pool_release(*pool, c, "t", true);
	}
	cr_expect_eq(err_replies(C.redis[0]) - errs, 1,
		     "the first entry was asked again, not the Sentinel that "
		     "answered");
	role(C.redis[1], r, sizeof(r));
	cr_assert_str_eq(r, "slave");

	cr_assert_eq(apphost_redis_pool_new_sentinel("redis://x/0", &wrong, 1,
						     &bad, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_redis_pool_lease(bad, 2000, "t", &c),
		     APPHOST_ECONN);
	cr_assert_not(apphost_status_ready(ready, sizeof(ready)));
	cr_assert(strstr(ready, "redis: no primary known") != NULL, "%s",
		  ready);
	apphost_redis_pool_free(bad);
	cr_assert_eq(apphost_redis_pool_new_sentinel("redis://x/0", &nopw, 1,
						     &bad, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_redis_pool_lease(bad, 2000, "t", &c),
		     APPHOST_ECONN);
	apphost_redis_pool_free(bad);
}

/*
 * A pool told of one Sentinel learns the others (SENTINEL sentinels, as
 * the client guidelines allow), and finds the primary through them once
 * the one it was told of hangs.
 */
static void sentinels_are_discovered(void)
{
	struct apphost_redis_pool *pool;
	char one[64], err[512];
	struct apphost_redis_sentinel sen = {one, "fomaster",
					     C.sentinel_password};
	redisContext *c;

	snprintf(one, sizeof(one), "127.0.0.1:%d", C.sentinels[0]);
	cr_assert_eq(apphost_redis_pool_new_sentinel("redis://127.0.0.1:9/0",
						     &sen, 2, &pool, err,
						     sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(apphost_redis_pool_lease(pool, 3000, "t", &c), 0);
	apphost_redis_pool_release(pool, c, "t", true);
	for (int i = 0; i < 100 && apphost_redis_pool_sentinels(pool) < 3; i++)
		usleep(50000);
	cr_assert_eq(apphost_redis_pool_sentinels(pool), 3,
		     "the other two Sentinels were discovered");
	sentinel_signal(0, SIGSTOP);
	int r = apphost_redis_pool_lease(pool, 3000, "t", &c);
	sentinel_signal(0, SIGCONT);
	cr_assert_eq(r, 0, "a lease through a discovered Sentinel");
	apphost_redis_pool_release(pool, c, "t", true);
	apphost_redis_pool_free(pool);
}

static double primary_changes(void)
{
	struct apphost_metric *m;
	const char *labels[] = {NULL};

	cr_assert_eq(apphost_metrics_get(
			 apphost_metrics_default(), APPHOST_METRIC_COUNTER,
			 "apphost_redis_primary_changes_total",
			 "Times the Sentinels named another Redis primary than "
			 "before.",
			 labels, NULL, 0, &m),
		     0);
	return apphost_metric_value(m);
}

/* ---- the scenarios ---------------------------------------------------------
 */

static void insert_games(int pg_port)
{
	char conninfo[256], id[160];
	PGconn *pg;

	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d user=postgres dbname=apphost",
		 pg_port);
	pg = PQconnectdb(conninfo);
	cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
	for (int i = 0; i < NGAMES + NLOST; i++) {
		game_id(id, sizeof(id), i < NGAMES ? "g" : "l",
			i < NGAMES ? i : i - NGAMES);
		th_insert_game(pg, id, "running", 0);
	}
	PQfinish(pg);
}

static void migrate(void)
{
	char line[1024];

	snprintf(line, sizeof(line),
		 "APPHOST_POSTGRES_DSN='host=127.0.0.1 port=%d user=postgres "
		 "dbname=apphost' '%s' >>'%s/cluster.log' 2>&1",
		 C.pg[0], getenv("APPHOST_MIGRATE"), C.dir);
	cr_assert_eq(system(line), 0, "migrate failed: see %s/cluster.log",
		     C.dir);
}

static pid_t spawn_apphost(void)
{
	char sentinels[200], dsn[300], pw[100];
	const char *extra[] = {
	    "APPHOST_REDIS_URL=redis://127.0.0.1:1/0", /* host:port unused */
	    sentinels,
	    "APPHOST_REDIS_SENTINEL_MASTER=fomaster",
	    pw,
	    dsn,
	    "APPHOST_HTTP_ADDR=",
	    "APPHOST_LOG_LEVEL=info",
	    "HEALTH_EVENTS_BLOCK_MS=500",
	    NULL,
	};

	snprintf(sentinels, sizeof(sentinels), "APPHOST_REDIS_SENTINELS=%s",
		 C.sentinel_list);
	snprintf(dsn, sizeof(dsn), "APPHOST_POSTGRES_DSN=%s", C.dsn);
	snprintf(pw, sizeof(pw), "APPHOST_REDIS_SENTINEL_PASSWORD=%s",
		 C.sentinel_password);
	return ap_spawn_he(&C.k, C.log, extra);
}

/* 1. The Redis primary dies under load. */
static void kill_redis_primary(struct apphost_redis_pool *pool)
{
	int old = sentinel_primary(), next = other(old);
	char port[16];
	const char *last = writer_pause();
	redisContext *c;

	/* Nothing acknowledged may be lost here: that is step 4. */
	await_offset_is(old, last);
	await_replicated(old);
	snprintf(port, sizeof(port), "%d", old);
	cr_assert_eq(cluster("redis-kill", port), 0);
	writer_resume();
	double promote = await_promotion(next);
	double resume = await_offset_moves(next, last, "redis failover");

	cr_log_info("redis primary killed: promoted after %.0f ms, consumer "
		    "resumed %.0f ms after the promotion",
		    promote, resume);
	printf("failover: redis primary kill: promotion %.0f ms, resume "
	       "%.0f ms\n",
	       promote, resume);
	/* The host's pool follows too, and counts the change. */
	cr_assert_eq(apphost_redis_pool_lease(pool, 3000, "t", &c), 0);
	cr_assert_eq(c->tcp.port, next);
	apphost_redis_pool_release(pool, c, "t", false);
	cr_assert_eq(primary_changes(), 1);
	/* Back as a plain node: the Sentinels turn it into a replica (step
	 * 3 waits for that while step 2 runs). */
	cr_assert_eq(cluster("redis-start", port), 0);
}

static PGconn *pg_at(int port)
{
	char conninfo[256];
	PGconn *pg;

	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d user=postgres dbname=apphost", port);
	pg = PQconnectdb(conninfo);
	cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
	return pg;
}

/*
 * 2. The PostgreSQL primary is fenced read-only, as a managed failover
 * does first, then stopped; the standby is promoted. Fenced, the
 * consumer must give its connection up (SQLSTATE 25006 marks it broken)
 * rather than retry on it: libpq's target_session_attrs=read-write then
 * refuses both servers until the promotion.
 */
static void promote_pg_standby(int redis_port)
{
	PGconn *pg = pg_at(C.pg[0]);
	double t0 = th_now_ms();
	char *n = NULL;

	th_sql(pg, "ALTER SYSTEM SET default_transaction_read_only = on", NULL);
	free(th_sql_value(pg, "SELECT pg_reload_conf()::text", NULL));
	for (;;) {
		free(n);
		n = th_sql_value(pg,
				 "SELECT count(*)::text FROM pg_stat_activity "
				 "WHERE query LIKE '%health_events_apply(%' "
				 "AND pid <> pg_backend_pid()",
				 NULL);
		if (strcmp(n, "0") == 0)
			break;
		cr_assert_lt(th_now_ms() - t0, RESUME_MS,
			     "the consumer kept its session on the read-only "
			     "primary (see %s)",
			     C.log);
		usleep(20 * 1000);
	}
	free(n);
	PQfinish(pg);
	cr_log_info("consumer left the read-only primary after %.0f ms",
		    th_now_ms() - t0);
	cr_assert_eq(cluster("pg-stop", "0"), 0);
	char *before = offset_at(redis_port);

	t0 = th_now_ms();
	cr_assert_eq(cluster("pg-promote", "1"), 0);
	double promote = th_now_ms() - t0;
	double resume = await_offset_moves(redis_port, before, "pg failover");

	/* The consumer may be back before pg_ctl promote -w returns. */
	printf("failover: postgres promotion: promotion %.0f ms, resume %.0f "
	       "ms\n",
	       promote, resume);
	cr_log_info("postgres standby promoted: consumer resumed %.0f ms "
		    "after",
		    resume);
	free(before);
}

/* Wait until the node on port replicates its primary, link up. */
static void await_replica(int port)
{
	double t0 = th_now_ms();

	for (;;) {
		const char *info = replication_of(port);

		if (strstr(info, "role:slave") != NULL &&
		    strstr(info, "master_link_status:up") != NULL)
			return;
		cr_assert_lt(th_now_ms() - t0, 30000,
			     "redis on %d did not become a replica", port);
		usleep(50 * 1000);
	}
}

/*
 * 3. A switchover (SENTINEL FAILOVER) while the first Sentinel hangs
 * (SIGSTOP): the primary, alive, is demoted.
 * The consumer's blocked XREAD gets -UNBLOCKED and any write -READONLY:
 * both mark the connection broken, so the next lease asks the Sentinels
 * (retried on the same connection, it would read a replica forever).
 */
static void switchover(void)
{
	int old = sentinel_primary(), next = other(old);
	const char *last = writer_pause();
	redisContext *s;
	redisReply *r;

	double t0 = th_now_ms();

	await_replica(next); /* the primary killed in 1 is back */
	cr_log_info("old primary back as a replica after %.0f ms more",
		    th_now_ms() - t0);
	await_offset_is(old, last);
	await_replicated(old);
	/* The Sentinel apphost listens to (the first in its list) hangs: it
	 * must notice and listen to another. */
	sentinel_signal(0, SIGSTOP);
	s = sconnect(1);
	cr_assert_not_null(s);
	/*
	 * Refused (-NOGOODSLAVE) until this Sentinel's own view of the
	 * replica, refreshed by INFO every few seconds, is healthy. A
	 * failover it started can still be aborted (the promoted replica
	 * not seen as master within failover-timeout, 4 s): then, as an
	 * operator would, ask again.
	 */
	double asked = th_now_ms(), promote = -1;

	while (promote < 0) {
		r = th_cmd(s, "SENTINEL", "FAILOVER", "fomaster", NULL);
		bool ok = r->type == REDIS_REPLY_STATUS;

		cr_assert(ok || th_now_ms() - asked < 2 * FAILOVER_MS,
			  "SENTINEL FAILOVER: %s", r->str);
		freeReplyObject(r);
		/* Refused (or one already in progress): look, and ask again. */
		promote = promoted_within(next, ok ? 10000 : 100);
		if (ok && promote < 0)
			cr_log_warn("switchover: redis on %d not promoted "
				    "within 10 s; asking again",
				    next);
		cr_assert(promote >= 0 || th_now_ms() - asked < 2 * FAILOVER_MS,
			  "no promotion of redis on %d", next);
	}
	promote = th_now_ms() - asked;
	redisFree(s);

	writer_resume();
	double resume = await_offset_moves(next, last, "switchover");

	sentinel_signal(0, SIGCONT);

	printf("failover: redis switchover: promotion %.0f ms, resume %.0f "
	       "ms\n",
	       promote, resume);
	cr_log_info("switchover: promoted after %.0f ms, resumed %.0f ms "
		    "after",
		    promote, resume);
	await_replica(old);
}

/* INFO stats' total_connections_received, on an open connection (a new
 * one would count itself). */
static long connections_received(redisContext *c)
{
	redisReply *r = th_cmd(c, "INFO", "stats", NULL);
	const char *at = strstr(r->str, "total_connections_received:");
	long n;

	cr_assert_not_null(at);
	n = atol(at + strlen("total_connections_received:"));
	freeReplyObject(r);
	return n;
}

/*
 * Without Sentinel (a DNS name that moved, say), a replica's -READONLY
 * is a broken connection too: apphost pointed at the replica gives each
 * refused connection back and dials anew, rather than retry on it.
 */
static void readonly_is_broken(void)
{
	char url[64], log[800], dsn[300];
	const char *extra[] = {url, dsn, "APPHOST_HTTP_ADDR=", NULL};
	redisContext *c = rconnect(C.redis[0]);
	th_keys k;
	pid_t pid;
	long before;

	th_keys_init(&k, "readonly");
	snprintf(url, sizeof(url), "APPHOST_REDIS_URL=redis://127.0.0.1:%d/0",
		 C.redis[1]);
	snprintf(log, sizeof(log), "%s/readonly.log", C.dir);
	snprintf(dsn, sizeof(dsn), "APPHOST_POSTGRES_DSN=%s", C.dsn);
	cr_assert_not_null(c);
	free(th_xadd(c, k.stream, "game_id", "no-such-game", "event_type",
		     "probe_failed", NULL));
	redisFree(c);
	await_replicated(C.redis[0]);
	c = rconnect(C.redis[1]);
	cr_assert_not_null(c);
	before = connections_received(c);
	pid = ap_spawn_he(&k, log, extra);
	free(ap_wait_log(log, "READONLY", 1, pid, 10000));
	/* Retried with backoff (50 ms doubling): each try on a new
	 * connection. Kept, the one connection would serve them all. */
	double t0 = th_now_ms();
	long dialled;

	while ((dialled = connections_received(c) - before) < 4 &&
	       th_now_ms() - t0 < 5000)
		usleep(50 * 1000);
	cr_assert_eq(ap_terminate(pid), 0);
	redisFree(c);
	cr_expect_geq(dialled, 4, "refused connections were kept (see %s)",
		      log);
}

/* Wait until the replica on `port` says its link to the primary is down. */
static void await_link_down(int port)
{
	double t0 = th_now_ms();

	while (strstr(replication_of(port), "master_link_status:down") ==
	       NULL) {
		cr_assert_lt(th_now_ms() - t0, 5000,
			     "the replica on %d kept its link: %s", port,
			     replication_of(port));
		usleep(10 * 1000);
	}
}

/*
 * 4. The promoted replica lacks the consumer's last commit: its link is
 * cut (the replication user switched off on the primary) after the input
 * reached it but before the consumer commits, then the primary is
 * killed. The consumer must resume from the offset the new primary holds
 * and publish again what was lost, its dedupe entries forgotten.
 */
static void lose_consumer_writes(void)
{
	int primary = sentinel_primary(), replica = other(primary);
	const char *last = writer_pause();
	char port[16], id[160], *saved;
	redisContext *c;

	await_replica(replica);
	await_offset_is(primary, last);
	await_replicated(primary);
	saved = offset_at(replica);
	cr_assert_str_eq(saved, last);
	/* The input reaches the replica; the consumer's commit must not. */
	cr_assert_eq(kill(C.apphost, SIGSTOP), 0);
	c = rconnect(primary);
	cr_assert_not_null(c);
	for (int i = 0; i < NLOST; i++) {
		game_id(id, sizeof(id), "l", i);
		free(th_xadd(c, C.k.stream, "game_id", id, "event_type",
			     "container_exited", NULL));
	}
	char *input_last = th_xadd(c, C.k.stream, "game_id", id, "event_type",
				   "probe_failed", NULL);

	await_replicated(primary);
	redisReply *r = th_cmd(c, "ACL", "SETUSER", "repl", "off", NULL);

	cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS,
		  "ACL SETUSER on %d refused", primary);
	freeReplyObject(r);
	r = th_cmd(c, "CLIENT", "KILL", "TYPE", "replica", NULL);
	cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER &&
		      r->integer >= 1,
		  "no replica link on %d to cut", primary);
	freeReplyObject(r);
	await_link_down(replica);
	cr_assert_eq(kill(C.apphost, SIGCONT), 0);
	await_offset_is(primary, input_last);
	redisFree(c);
	char *kept = offset_at(replica);

	cr_assert(kept != NULL && strcmp(kept, saved) == 0,
		  "the replica got the commit after all: %s on %d (was %s, "
		  "the primary %d has %s); %s",
		  kept ? kept : "(none)", replica, saved, primary, input_last,
		  replication_of(replica));
	free(kept);

	snprintf(port, sizeof(port), "%d", primary);
	cr_assert_eq(cluster("redis-kill", port), 0);
	double promote = await_promotion(replica);

	writer_resume();
	double resume = await_offset_moves(replica, saved, "lost writes");

	printf("failover: redis lost the consumer's writes: promotion %.0f "
	       "ms, resume %.0f ms\n",
	       promote, resume);
	cr_log_info("lost writes: promoted after %.0f ms, resumed %.0f ms "
		    "after",
		    promote, resume);
	free(saved);
	free(input_last);
}

Test(failover, redis_sentinel_and_postgres_standby, .init = setup,
     .fini = teardown, .timeout = 170)
{
	struct apphost_redis_pool *pool;

	th_keys_init(&C.k, "failover");
	pool_checks(&pool);
	sentinels_are_discovered();
	migrate();
	readonly_is_broken();
	insert_games(C.pg[0]);
	C.apphost = spawn_apphost();
	free(ap_wait_log(C.log, "consumer starting", 1, C.apphost, 10000));
	pthread_create(&W.thread, NULL, writer, NULL);
	await_offset_moves(C.redis[0], NULL, "start");

	kill_redis_primary(pool);
	promote_pg_standby(sentinel_primary());
	switchover();
	lose_consumer_writes();

	const char *last = writer_pause();
	int primary = sentinel_primary();

	atomic_store(&W.stop, true);
	pthread_join(W.thread, NULL);
	await_offset_is(primary, last);
	cr_assert_eq(ap_terminate(C.apphost), 0);
	C.apphost = 0;
	cr_log_info("%lu entries written", W.written);
	check_final(primary, C.pg[1]);
	cr_expect_eq(ap_log_count(C.log, "redis primary changed", NULL), 3);
	/* One line per change of state, however many leases failed: at
	 * most once for each of the two kills. */
	size_t unknown = ap_log_count(C.log, "redis primary unknown", NULL);

	cr_expect(unknown >= 1 && unknown <= 2, "%zu \"primary unknown\" lines",
		  unknown);
	apphost_redis_pool_free(pool);
}
