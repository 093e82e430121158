/*
 * Suite ha: several apphost processes running health_events on the same
 * streams, Redis and PostgreSQL (DESIGN §10). Exactly one consumes; a
 * killed, stopped or paused leader is replaced within the contract's
 * times (measured and printed); a deposed leader writes nothing; epochs
 * only grow; in the end every row equals a model of the stream and each
 * game's last snapshot equals its row.
 */
#include "apphost_proc.h"
#include "real_services.h"
#include "redis_pg.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NINST  3
#define NGAMES 24

static redisContext *redis;
static PGconn *pg;
static th_keys K;
static pid_t pids[NINST];
static char logs[NINST][128];

/* ---- a model of the stream (DESIGN §4–§6), for a single consumer ---- */

static const struct {
	const char *type, *summary, *from, *to;
} types[] = {
    {"probe_failed", "probe_failed", NULL, NULL},
    {"container_oom", "oom", "running", "engine_unreachable"},
    {"probe_recovered", "healthy", "engine_unreachable", "running"},
    {"inspect_unhealthy", "unhealthy", NULL, NULL},
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

static struct game {
	char id[192];
	char status[32], health[32];
	char published[512]; /* the dedupe cache of one instance: payload */
} games[NGAMES];
static int model_snapshots; /* what one instance would publish */

static void model_reset(void)
{
	model_snapshots = 0;
	for (int i = 0; i < NGAMES; i++) {
		snprintf(games[i].id, sizeof(games[i].id), "%s:g%d", K.prefix,
			 i);
		snprintf(games[i].status, sizeof(games[i].status), "running");
		games[i].health[0] = '\0';
		games[i].published[0] = '\0';
		th_insert_game(pg, games[i].id, "running", i);
	}
}

/* Append one entry for game gi of type ti; returns its id (malloc()ed). */
static char *feed(int gi, size_t ti)
{
	struct game *g = &games[gi];
	bool changed = false;
	if (types[ti].to && strcmp(g->status, types[ti].from) == 0) {
		snprintf(g->status, sizeof(g->status), "%s", types[ti].to);
		changed = true;
	}
	snprintf(g->health, sizeof(g->health), "%s", types[ti].summary);
	char payload[512];
	th_payload(payload, sizeof(payload), g->id, g->status, g->health, gi);
	if (changed || strcmp(payload, g->published) != 0) {
		snprintf(g->published, sizeof(g->published), "%s", payload);
		model_snapshots++;
	}
	return th_xadd(redis, K.stream, "game_id", g->id, "event_type",
		       types[ti].type, NULL);
}

/* n random entries, `gap_us` apart; returns the last id (malloc()ed). */
static char *feed_many(int n, int gap_us)
{
	char *last = NULL;
	for (int i = 0; i < n; i++) {
		free(last);
		last = feed(rand() % NGAMES, (size_t)rand() % NTYPES);
		if (gap_us)
			usleep((useconds_t)gap_us);
	}
	return last;
}

/* Every row equals the model; each game's last snapshot equals its row. */
static void expect_converged(void)
{
	redisReply *l = th_xrange(redis, K.lobby);
	for (int i = 0; i < NGAMES; i++) {
		char want[128], payload[512];
		snprintf(want, sizeof(want), "%s/%s/%d", games[i].status,
			 games[i].health, i);
		char *row = th_row(pg, games[i].id);
		cr_expect_str_eq(row, want, "row of %s", games[i].id);
		free(row);
		const char *last = NULL;
		for (size_t k = 0; k < l->elements; k++)
			if (strcmp(th_field(l->element[k], "game_id"),
				   games[i].id) == 0)
				last = th_field(l->element[k], "payload");
		if (!games[i].health[0])
			continue; /* never touched */
		th_payload(payload, sizeof(payload), games[i].id,
			   games[i].status, games[i].health, i);
		cr_expect_str_eq(last ? last : "(none)", payload,
				 "last snapshot of %s", games[i].id);
	}
	freeReplyObject(l);
}

/* ---- instances ---- */

static void setup(void)
{
	rs_connect(&redis, &pg);
	th_keys_init(&K, "ha");
	srand((unsigned)getpid());
	for (int i = 0; i < NINST; i++) {
		pids[i] = 0;
		snprintf(logs[i], sizeof(logs[i]), "/tmp/apphost-ha-%d-%d.log",
			 (int)getpid(), i);
		unlink(logs[i]);
	}
	model_reset();
}

static void teardown(void)
{
	for (int i = 0; i < NINST; i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGCONT);
			ap_kill9(pids[i]);
		}
	rs_disconnect(&redis, &pg);
}

TestSuite(ha, .init = setup, .fini = teardown, .timeout = 120);

static void spawn(int i)
{
	char id[64];
	snprintf(id, sizeof(id), "HEALTH_EVENTS_INSTANCE_ID=ha-%d", i);
	const char *const env[] = {id, "APPHOST_HTTP_ADDR=", NULL};
	pids[i] = ap_spawn_he(&K, logs[i], env);
}

/* The lease's holder as an instance index, and its epoch; -1 if none. */
static int leader(long long *epoch)
{
	const char *p[] = {K.prefix};
	PGresult *r = PQexecParams(pg,
				   "SELECT holder, epoch FROM "
				   "health_events_leader WHERE name = $1 AND "
				   "expires_at > now()",
				   1, NULL, p, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s",
		     PQresultErrorMessage(r));
	int who = -1;
	if (PQntuples(r) == 1) {
		sscanf(PQgetvalue(r, 0, 0), "ha-%d", &who);
		if (epoch)
			*epoch = atoll(PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return who;
}

/* Wait until an instance other than `not` leads; returns it. */
static int wait_leader(int not, int timeout_ms)
{
	double t0 = th_now_ms();
	do {
		int w = leader(NULL);
		if (w >= 0 && w != not )
			return w;
		usleep(20000);
	} while (th_now_ms() - t0 < timeout_ms);
	cr_assert_fail("no new leader within %d ms", timeout_ms);
	return -1;
}

/* Lines with needle over every instance's log. */
static size_t count_all(const char *needle)
{
	size_t n = 0;
	for (int i = 0; i < NINST; i++)
		n += ap_log_count(logs[i], needle, NULL);
	return n;
}

static void start_all(void)
{
	for (int i = 0; i < NINST; i++)
		spawn(i);
	for (int i = 0; i < NINST; i++)
		free(ap_wait_log(logs[i], "consumer starting", 1, pids[i],
				 20000));
}

/* Milliseconds until the saved offset is `id`, after t0. */
static double offset_reached_ms(const char *id, double t0, int timeout_ms)
{
	cr_assert(th_wait_offset(redis, K.offset_key, id, timeout_ms),
		  "offset did not reach %s", id);
	return th_now_ms() - t0;
}

/* Feed n entries gap_us apart and wait until they are committed. */
static void feed_and_wait(int n, int gap_us)
{
	char *last = feed_many(n, gap_us);
	offset_reached_ms(last, th_now_ms(), 20000);
	free(last);
}

/* ---- tests ---- */

Test(ha, exactly_one_of_three_consumes)
{
	start_all();
	feed_and_wait(600, 2000);
	int w = leader(NULL);
	cr_assert_geq(w, 0, "someone leads");
	cr_assert_eq(count_all("leadership acquired"), 1,
		     "exactly one instance ever led");
	cr_assert_eq(th_xlen(redis, K.lobby), (size_t)model_snapshots,
		     "Lobby receives what one instance publishes");
	expect_converged();
	for (int i = 0; i < NINST; i++)
		if (i != w)
			cr_expect_eq(
			    ap_log_count(logs[i], "batch committed", NULL), 0,
			    "standby ha-%d committed", i);
}

/* Feed while the old leader dies; returns the time the offset resumed. */
static double resume_after(int old, void (*how)(int), const char *what)
{
	long long e0 = 0;
	cr_assert_eq(leader(&e0), old);
	double t0 = th_now_ms();
	how(old);
	char *id = feed_many(1, 0);
	double ms = offset_reached_ms(id, t0, 15000);
	free(id);
	int w = wait_leader(old, 1000);
	long long e1 = 0;
	cr_assert_eq(leader(&e1), w);
	cr_assert_gt(e1, e0, "epochs strictly increase: %lld then %lld", e0,
		     e1);
	cr_log_info("%s: ha-%d -> ha-%d (epoch %lld -> %lld), work resumed "
		    "after %.0f ms",
		    what, old, w, e0, e1, ms);
	printf("ha: %s: work resumed on a standby after %.0f ms\n", what, ms);
	fflush(stdout);
	return ms;
}

static void do_kill9(int i)
{
	ap_kill9(pids[i]);
	pids[i] = 0;
}

Test(ha, a_killed_or_stopped_leader_is_replaced_in_time)
{
	start_all();
	feed_and_wait(200, 1000);

	int old = leader(NULL);
	double killed = resume_after(old, do_kill9, "SIGKILL");
	cr_expect_lt(killed, 5000, "SIGKILL failover took %.0f ms", killed);

	old = leader(NULL);
	/* SIGTERM: from the old process's exit (it finishes its batch) */
	long long e0 = 0;
	leader(&e0);
	cr_assert_eq(ap_terminate(pids[old]), 0);
	pids[old] = 0;
	double t0 = th_now_ms();
	char *id = feed_many(1, 0);
	double termed = offset_reached_ms(id, t0, 15000);
	free(id);
	cr_log_info("SIGTERM: work resumed %.0f ms after the old leader exited",
		    termed);
	printf("ha: SIGTERM: work resumed on a standby %.0f ms after the "
	       "leader exited\n",
	       termed);
	cr_expect_lt(termed, 1000, "SIGTERM handover took %.0f ms", termed);
	long long e1 = 0;
	cr_assert_neq(leader(&e1), old);
	cr_assert_gt(e1, e0);

	feed_and_wait(100, 500);
	expect_converged();
}

/*
 * SIGCONT the paused ex-leader `old` while no input arrives: it notices
 * it lost the lease, and nothing changes: no row, lobby or dead-letter
 * entry, no offset.
 */
static void wake_deposed(int old)
{
	char *before = th_world(redis, pg, &K);
	cr_assert_eq(kill(pids[old], SIGCONT), 0);
	free(ap_wait_log(logs[old], "leadership lost", 1, pids[old], 10000));
	usleep(1500 * 1000);
	char *after = th_world(redis, pg, &K);
	cr_expect_str_eq(after, before, "the deposed leader wrote");
	free(before);
	free(after);
}

Test(ha, a_paused_leader_is_replaced_and_writes_nothing_when_it_wakes)
{
	start_all();
	feed_and_wait(100, 1000);
	int old = leader(NULL);
	long long e0 = 0;
	leader(&e0);

	cr_assert_eq(kill(pids[old], SIGSTOP), 0);
	double t0 = th_now_ms();
	char *id = feed_many(1, 0);
	double ms = offset_reached_ms(id, t0, 15000);
	free(id);
	printf("ha: SIGSTOP: work resumed on a standby after %.0f ms\n", ms);
	cr_expect_lt(ms, 5000, "SIGSTOP failover took %.0f ms", ms);
	feed_and_wait(50, 1000);

	/* No input now: after SIGCONT the old leader must write nothing. */
	wake_deposed(old);
	long long e1 = 0;
	cr_assert_neq(leader(&e1), old);
	cr_assert_gt(e1, e0);

	feed_and_wait(50, 500);
	expect_converged();
}

Test(ha, a_leader_paused_with_its_batch_in_flight_writes_nothing_after)
{
	start_all();
	feed_and_wait(50, 1000);
	int old = leader(NULL);

	/* Hold game 0's row: the leader's next apply waits on it. */
	PGconn *locker = PQconnectdb(getenv("APPHOST_POSTGRES_DSN"));
	cr_assert_eq(PQstatus(locker), CONNECTION_OK);
	th_sql(locker, "BEGIN", NULL);
	th_sql(locker,
	       "SELECT 1 FROM runtime_records WHERE game_id = $1 FOR "
	       "UPDATE",
	       games[0].id, NULL);
	char *held = feed(0, 0);
	cr_assert(th_wait_apply_blocked(pg, 10000),
		  "the batch's apply is in flight");
	cr_assert_eq(kill(pids[old], SIGSTOP), 0);
	/* The apply in flight keeps the takeover waiting while it runs. */
	usleep(1000 * 1000);
	th_sql(locker, "COMMIT", NULL);
	PQfinish(locker);
	double t0 = th_now_ms();
	double ms = offset_reached_ms(held, t0, 15000);
	printf("ha: SIGSTOP mid-batch: work resumed %.0f ms after the row "
	       "lock was released\n",
	       ms);
	cr_expect_lt(ms, 5000);

	wake_deposed(old);

	/* The entry in flight was published once, by the new leader. */
	redisReply *l = th_xrange(redis, K.lobby);
	int n = 0;
	for (size_t k = 0; k < l->elements; k++)
		n += strcmp(th_field(l->element[k], "source_id"), held) == 0;
	freeReplyObject(l);
	cr_expect_eq(n, 1, "snapshots of the entry in flight: %d", n);
	free(held);
	feed_and_wait(30, 500);
	expect_converged();
}
