/*
 * Suite partition: leadership follows the ability to work (DESIGN §10).
 * Three apphost processes run health_events, each reaching Redis and
 * PostgreSQL through TCP proxies of its own on 127.0.0.1 (tcp_proxy.h),
 * under a steady load. A link is cut (bytes ACKed and held, no RST: a
 * partition or a frozen flow as TCP sees it), healed late, or reset; then
 * the entries produced after the fault must be consumed, by an instance
 * that can work, and the deposed leader's late bytes must change nothing.
 * The times are printed ("partition: ..."), not asserted tightly: the box
 * is shared.
 */
#include "apphost_proc.h"
#include "real_services.h"
#include "redis_pg.h"
#include "tcp_proxy.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NINST  3
#define NGAMES 8
/* Generous: what must happen within a few seconds may take longer on a
 * loaded box; the figures printed are what counts. */
#define RESUME_WAIT_MS 30000

enum { REDIS, PG };

static redisContext *redis;
static PGconn *pg;
static th_keys K;
static pid_t pids[NINST];
static char logs[NINST][128];
static tp_proxy *proxy[NINST][2];
static char game[NGAMES][160];

/* ---- the steady load: an entry every 10 ms, on a thread of its own ---- */

static pthread_t feeder;
static atomic_bool feeding;
static atomic_ulong fed;

static void *feed_loop(void *arg)
{
	(void)arg;
	redisContext *c = rs_redis();
	cr_assert_not_null(c);
	static const char *const types[] = {"probe_failed", "container_oom",
					    "probe_recovered",
					    "inspect_unhealthy"};
	for (unsigned long n = 0; atomic_load(&feeding); n++) {
		free(th_xadd(c, K.stream, "game_id", game[n % NGAMES],
			     "event_type", types[(n / NGAMES) % 4], NULL));
		atomic_fetch_add(&fed, 1);
		usleep(10000);
	}
	redisFree(c);
	return NULL;
}

static void load_start(void)
{
	atomic_store(&feeding, true);
	cr_assert_eq(pthread_create(&feeder, NULL, feed_loop, NULL), 0);
}

static void load_stop(void)
{
	if (!atomic_exchange(&feeding, false))
		return;
	pthread_join(feeder, NULL);
}

/* ---- fixture ---- */

static void setup(void)
{
	rs_connect(&redis, &pg);
	th_keys_init(&K, "part");
	const char *rport = getenv("APPHOST_REDIS_PORT"),
		   *pport = getenv("APPHOST_PG_PORT");
	cr_assert(rport && pport, "scripts/services env sets the ports");
	for (int i = 0; i < NINST; i++) {
		pids[i] = 0;
		snprintf(logs[i], sizeof(logs[i]),
			 "/tmp/apphost-partition-%d-%d.log", (int)getpid(), i);
		unlink(logs[i]);
		proxy[i][REDIS] = tp_start("127.0.0.1", (unsigned)atoi(rport));
		proxy[i][PG] = tp_start("127.0.0.1", (unsigned)atoi(pport));
	}
	for (int g = 0; g < NGAMES; g++) {
		snprintf(game[g], sizeof(game[g]), "%s:g%d", K.prefix, g);
		th_insert_game(pg, game[g], "running", g);
	}
}

static void teardown(void)
{
	load_stop();
	for (int i = 0; i < NINST; i++) {
		if (pids[i] > 0)
			ap_kill9(pids[i]);
		for (int k = 0; k < 2; k++)
			tp_stop(proxy[i][k]);
	}
	rs_disconnect(&redis, &pg);
}

TestSuite(partition, .init = setup, .fini = teardown, .timeout = 150);

/* APPHOST_POSTGRES_DSN with the server's port replaced by `port`. */
static void dsn_via(char *out, size_t cap, unsigned port)
{
	const char *dsn = getenv("APPHOST_POSTGRES_DSN"),
		   *pport = getenv("APPHOST_PG_PORT");
	char from[16];
	snprintf(from, sizeof(from), ":%s", pport);
	const char *at = strstr(dsn, from);
	cr_assert_not_null(at, "the DSN names port %s: %s", pport, dsn);
	snprintf(out, cap, "%.*s:%u%s", (int)(at - dsn), dsn, port,
		 at + strlen(from));
}

static void spawn(int i)
{
	char id[64], url[128], dsn[512];
	snprintf(id, sizeof(id), "HEALTH_EVENTS_INSTANCE_ID=pt-%d", i);
	snprintf(url, sizeof(url), "APPHOST_REDIS_URL=redis://127.0.0.1:%u/0",
		 tp_port(proxy[i][REDIS]));
	strcpy(dsn, "APPHOST_POSTGRES_DSN=");
	dsn_via(dsn + strlen(dsn), sizeof(dsn) - strlen(dsn),
		tp_port(proxy[i][PG]));
	const char *const env[] = {id, url, dsn, "APPHOST_HTTP_ADDR=", NULL};
	pids[i] = ap_spawn_he(&K, logs[i], env);
}

/* The lease's unexpired holder as an instance index, -1 if none. */
static int leader(void)
{
	char *h = th_sql_value(pg,
			       "SELECT holder FROM health_events_leader "
			       "WHERE name = $1 AND expires_at > now()",
			       K.prefix);
	int who = -1;
	if (h)
		sscanf(h, "pt-%d", &who);
	free(h);
	return who;
}

/* Wait until someone other than `not` leads; returns it. */
static int wait_leader(int not, int timeout_ms)
{
	double t0 = th_now_ms();
	do {
		int w = leader();
		if (w >= 0 && w != not )
			return w;
		usleep(20000);
	} while (th_now_ms() - t0 < timeout_ms);
	cr_assert_fail("no leader other than pt-%d within %d ms", not,
		       timeout_ms);
	return -1;
}

static int start_all(void)
{
	for (int i = 0; i < NINST; i++)
		spawn(i);
	int w = wait_leader(-1, 20000);
	load_start();
	return w;
}

/* Whether the offset Redis holds is at or after stream id `id`. */
static bool offset_at_least(const char *id)
{
	char *off = th_get(redis, K.offset_key);
	unsigned long long a = 0, b = 0, x = 0, y = 0;
	bool yes = off && sscanf(off, "%llu-%llu", &a, &b) == 2 &&
		   sscanf(id, "%llu-%llu", &x, &y) == 2 &&
		   (a > x || (a == x && b >= y));
	free(off);
	return yes;
}

/*
 * Milliseconds from t0 until an entry produced now (after the fault) is
 * consumed: applied, published and its offset saved.
 */
static double resumed_ms(double t0, const char *what)
{
	char *id = th_xadd(redis, K.stream, "game_id", game[0], "event_type",
			   "probe_failed", NULL);
	while (!offset_at_least(id)) {
		cr_assert_lt(th_now_ms() - t0, RESUME_WAIT_MS,
			     "%s: entry %s not consumed within %d ms", what, id,
			     RESUME_WAIT_MS);
		usleep(20000);
	}
	free(id);
	double ms = th_now_ms() - t0;
	printf("partition: %s: work resumed after %.0f ms\n", what, ms);
	fflush(stdout);
	return ms;
}

/*
 * The load stops, the survivors converge; then the deposed leader's links
 * heal and everything it had sent arrives late: nothing may change.
 */
static void late_bytes_change_nothing(int old)
{
	load_stop();
	resumed_ms(th_now_ms(), "converge before the heal");
	char *before = th_world(redis, pg, &K);
	for (int k = 0; k < 2; k++)
		tp_heal(proxy[old][k]);
	/* Long enough for held requests to arrive and be answered, and for
	 * the old leader to notice it does not lead. */
	usleep(3000 * 1000);
	char *after = th_world(redis, pg, &K);
	cr_expect_str_eq(after, before, "the deposed pt-%d's late bytes wrote",
			 old);
	free(before);
	free(after);
	cr_expect_neq(leader(), old, "pt-%d leads again on stale bytes", old);
}

/* Lines of instance i's log with all of the needles. */
#define LOGGED(i, ...) ap_log_count(logs[i], __VA_ARGS__, NULL)

/* Give a cut standby time to notice (its log says so; at most 5 s). */
static void wait_aside(int i)
{
	for (int k = 0; k < 50; k++, usleep(100000))
		if (LOGGED(i, "standing aside from the lease"))
			return;
}

/* ---- the proxy itself ---- */

Test(partition, the_proxy_cuts_heals_late_and_resets)
{
	tp_proxy *p = proxy[0][REDIS];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)tp_port(p))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char buf[64];
	cr_assert_eq(write(fd, "PING\r\n", 6), 6);
	cr_assert_eq(read(fd, buf, sizeof(buf)), 7, "+PONG through it");

	tp_cut(p);
	cr_assert_eq(write(fd, "PING\r\n", 6), 6, "a cut link takes bytes");
	cr_assert_eq(read(fd, buf, sizeof(buf)), -1, "and answers nothing");
	tp_heal(p);
	tv.tv_sec = 5;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(read(fd, buf, sizeof(buf)), 7, "healed: late +PONG");
	cr_assert_eq(memcmp(buf, "+PONG\r\n", 7), 0);

	cr_assert_eq(tp_connections(p), 1);
	tp_reset(p);
	/* A FIN, then the RST: the read ends at once, the link is gone. */
	ssize_t r = read(fd, buf, sizeof(buf));
	cr_assert_eq(r, 0, "reset: the stream ends at once, got %zd", r);
	r = send(fd, "PING\r\n", 6, MSG_NOSIGNAL);
	cr_assert(r == -1 && (errno == ECONNRESET || errno == EPIPE),
		  "reset: and aborted (RST), got %zd", r);
	close(fd);
}

/* ---- the table's rows ---- */

/*
 * Cut the leader's links (bit REDIS, bit PG): another instance resumes
 * the work, the cut one says why it stepped down (`reason`), and its late
 * bytes change nothing once healed.
 */
static void leader_cut(unsigned links, const char *reason, const char *what)
{
	int old = start_all();
	usleep(500 * 1000);
	double t0 = th_now_ms();
	for (int k = 0; k < 2; k++)
		if (links & (1u << k))
			tp_cut(proxy[old][k]);
	double ms = resumed_ms(t0, what);
	cr_expect_neq(leader(), old, "the cut leader still holds the lease");
	cr_expect_lt(ms, 6000 * 2, "took %.0f ms", ms);
	cr_expect_geq(LOGGED(old, "leadership lost", reason), 1,
		      "it says why it stepped down (log: %s)", logs[old]);
	late_bytes_change_nothing(old);
}

Test(partition, a_leader_cut_from_redis_hands_over)
{
	leader_cut(1u << REDIS, "redis_silent", "leader cut from Redis");
}

Test(partition, a_leader_cut_from_postgres_hands_over)
{
	/* its lease calls fail too: whichever it notices first */
	leader_cut(1u << PG, "reason=", "leader cut from PostgreSQL");
}

Test(partition, a_leader_frozen_on_both_hands_over)
{
	leader_cut(1u << REDIS | 1u << PG,
		   "reason=", "leader cut from both (frozen)");
}

/*
 * A standby that cannot reach one server, and the leader SIGKILLed: the
 * standby must not take the lease (it could not work). Two instances
 * first, so nobody else could take it either; then a third that can
 * work, which must resume the work.
 */
static void standby_cut_then_leader_killed(int link, const char *what)
{
	spawn(0);
	spawn(1);
	int old = wait_leader(-1, 20000), cut = 1 - old;
	load_start();
	tp_cut(proxy[cut][link]);
	wait_aside(cut);
	double t0 = th_now_ms();
	ap_kill9(pids[old]);
	pids[old] = 0;
	/* the lease lapses (3 s) and a standby polls: it must not take it */
	usleep(4500 * 1000);
	cr_expect_eq(LOGGED(cut, "leadership acquired"), 0,
		     "the cut standby took the lease (log: %s)", logs[cut]);
	cr_expect_eq(leader(), -1, "someone leads who cannot work");
	spawn(2);
	resumed_ms(t0, what);
	cr_expect_eq(leader(), 2, "the instance that can work leads");
	tp_heal(proxy[cut][link]);
	load_stop();
}

Test(partition, a_standby_cut_from_redis_does_not_win_the_lease)
{
	standby_cut_then_leader_killed(REDIS, "standby cut from Redis, "
					      "leader SIGKILLed, a third "
					      "started 4.5 s later");
}

/*
 * Finding: a standby whose PostgreSQL connections froze (ACKed, never
 * answered; new connections would work) must not sit in a call without a
 * deadline: it reconnects and, the only one left, resumes the work.
 */
Test(partition, a_standby_frozen_on_postgres_recovers_and_takes_over)
{
	spawn(0);
	spawn(1);
	int old = wait_leader(-1, 20000), frozen = 1 - old;
	load_start();
	usleep(1000 * 1000); /* the standby's connections are open */
	tp_freeze(proxy[frozen][PG]);
	double t0 = th_now_ms();
	ap_kill9(pids[old]);
	pids[old] = 0;
	double ms = resumed_ms(t0, "standby's PostgreSQL connections frozen, "
				   "leader SIGKILLed");
	cr_expect_lt(ms, 6000 * 2, "took %.0f ms", ms);
	cr_expect_eq(leader(), frozen);
	tp_heal(proxy[frozen][PG]);
	load_stop();
}

/* The table's row as written: three instances, the work resumes. */
Test(partition, a_standby_cut_from_redis_and_the_leader_killed)
{
	int old = start_all();
	int cut = (old + 1) % NINST;
	tp_cut(proxy[cut][REDIS]);
	wait_aside(cut);
	double t0 = th_now_ms();
	ap_kill9(pids[old]);
	pids[old] = 0;
	double ms = resumed_ms(t0, "standby cut from Redis, leader SIGKILLed");
	cr_expect_lt(ms, 6000 * 2, "took %.0f ms", ms);
	cr_expect_eq(LOGGED(cut, "leadership acquired"), 0);
	tp_heal(proxy[cut][REDIS]);
	load_stop();
}

Test(partition, every_connection_reset_at_once)
{
	start_all();
	usleep(500 * 1000);
	double t0 = th_now_ms();
	for (int i = 0; i < NINST; i++)
		for (int k = 0; k < 2; k++)
			tp_reset(proxy[i][k]);
	double ms = resumed_ms(t0, "every connection reset");
	cr_expect_lt(ms, 6000 * 2, "took %.0f ms", ms);
	load_stop();
}

/*
 * Finding: one broken connection (here all of the leader's PostgreSQL
 * ones, reset) while both servers are fine must not demote a leader: the
 * reconnects fit in the write window.
 */
Test(partition, a_leader_keeps_the_lease_over_a_reset_connection)
{
	int old = start_all();
	usleep(1000 * 1000);
	tp_reset(proxy[old][PG]);
	tp_reset(proxy[old][REDIS]);
	resumed_ms(th_now_ms(), "leader's connections reset");
	usleep(2000 * 1000);
	cr_expect_eq(leader(), old, "the leader lost the lease");
	cr_expect_eq(LOGGED(old, "leadership lost"), 0, "log: %s", logs[old]);
	load_stop();
}

/*
 * Finding: an apply orphaned by a killed leader, waiting on a row another
 * flow holds, must not hold the takeover; and the successor, whose own
 * applies then fail on that lock, keeps leading (a lock wait is not a
 * lost server) and goes on once the row is free.
 */
Test(partition, an_orphaned_apply_does_not_hold_the_takeover)
{
	int old = start_all();
	PGconn *locker = rs_pg();
	cr_assert_not_null(locker);
	th_sql(locker, "BEGIN", NULL);
	th_sql(locker,
	       "SELECT 1 FROM runtime_records WHERE game_id = $1 FOR UPDATE",
	       game[1], NULL);
	cr_assert(th_wait_apply_blocked(pg, 10000), "an apply waits");
	double t0 = th_now_ms();
	ap_kill9(pids[old]);
	pids[old] = 0;
	int w = wait_leader(old, RESUME_WAIT_MS);
	double ms = th_now_ms() - t0;
	printf("partition: row held by another flow, leader SIGKILLed: "
	       "pt-%d holds the lease after %.0f ms\n",
	       w, ms);
	cr_expect_lt(ms, 5000 * 2, "took %.0f ms", ms);
	/* The successor keeps the lease while the row stays held. */
	usleep(4000 * 1000);
	cr_expect_eq(leader(), w, "the successor lost the lease to a lock");
	cr_expect_eq(LOGGED(w, "leadership lost"), 0, "log: %s", logs[w]);
	th_sql(locker, "COMMIT", NULL);
	PQfinish(locker);
	resumed_ms(th_now_ms(), "row released");
	load_stop();
}

/*
 * Finding: an idle leader's PostgreSQL connection, reset, failed the
 * next check, and the retry waited for the check after it: the silence
 * then added to time spent waiting on Redis and cost the lease. A broken
 * idle connection is replaced within the check that finds it.
 */
Test(partition, an_idle_leaders_reset_connection_is_replaced_at_once)
{
	for (int i = 0; i < NINST; i++)
		spawn(i);
	int old = wait_leader(-1, 20000);
	usleep(1000 * 1000);
	tp_reset(proxy[old][PG]);
	usleep(3000 * 1000); /* a lease: several checks */
	cr_expect_eq(leader(), old, "the leader lost the lease");
	cr_expect_eq(LOGGED(old, "dependency failing", "dependency=postgres"),
		     0, "a replaced connection reported as failing: %s",
		     logs[old]);
	resumed_ms(th_now_ms(), "idle leader's connections reset");
}

/*
 * Finding: a lease row rolled back by one epoch (a PostgreSQL failover
 * that lost its last update, a restore) must not hand the epoch in use to
 * a second instance: a standby asks for an epoch above the Redis fence,
 * the fence refuses an equal epoch of another holder, and the applies
 * check the token. No epoch is acquired by two instances; work resumes.
 */
Test(partition, a_rolled_back_lease_row_hands_no_epoch_out_twice)
{
	/* a lease with a past, so that its epoch can be rolled back */
	th_sql(pg,
	       "INSERT INTO health_events_leader (name, epoch, holder, token, "
	       "expires_at) VALUES ($1, 5, 'seed', 'seed', now() - interval "
	       "'1 s')",
	       K.prefix, NULL);
	int old = start_all();
	usleep(1000 * 1000);
	char *e = th_sql_value(pg,
			       "SELECT epoch FROM health_events_leader WHERE "
			       "name = $1",
			       K.prefix);
	cr_assert_not_null(e);
	/* as a restore from before this epoch was taken leaves the row */
	th_sql(pg,
	       "UPDATE health_events_leader SET epoch = epoch - 1, holder = "
	       "'restored', token = 'restored', expires_at = now() - "
	       "interval '1 s' WHERE name = $1",
	       K.prefix, NULL);
	double t0 = th_now_ms();
	resumed_ms(t0, "lease row rolled back by one epoch");
	char needle[64];
	snprintf(needle, sizeof(needle), "epoch=%s ", e);
	int holders = 0;
	for (int i = 0; i < NINST; i++)
		holders += LOGGED(i, "leadership acquired", needle) > 0;
	cr_expect_eq(holders, 1, "epoch %s acquired by %d instances", e,
		     holders);
	printf("partition: lease row rolled back: pt-%d led with epoch %s, "
	       "pt-%d leads now\n",
	       old, e, leader());
	free(e);
	load_stop();
}
