/*
 * Suite e2e: build/host/apphost as a subprocess with health_events.so,
 * against the real servers; a scenario covering every row of DESIGN §4,
 * a missing game, another flow owning rows, malformed entries, and a
 * restart.
 */
#include "apphost_proc.h"
#include "real_services.h"
#include "redis_pg.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static redisContext *redis;
static PGconn *pg;
static th_keys K;
static char logfile[256];

static void setup(void)
{
	rs_connect(&redis, &pg);
	th_keys_init(&K, "e2e");
	snprintf(logfile, sizeof(logfile), "/tmp/apphost-e2e-%d.log",
		 (int)getpid());
}

static void teardown(void)
{
	rs_disconnect(&redis, &pg);
}

TestSuite(e2e, .init = setup, .fini = teardown, .timeout = 120);

/* Start apphost with health_events.so on this test's streams. */
static pid_t spawn(void)
{
	static const char *const env[] = {"APPHOST_LOG_LEVEL=debug", NULL};

	return ap_spawn_he(&K, logfile, env);
}

static const char *g(const char *name)
{
	static char buf[16][192];
	static int k;
	char *b = buf[k++ % 16];
	snprintf(b, 192, "%s:%s", K.prefix, name);
	return b;
}

static char *ev(const char *game, const char *type)
{
	return th_xadd(redis, K.stream, "game_id", game, "event_type", type,
		       "occurred_at", "2026-11-26T00:00:00Z", NULL);
}

static void expect_row(const char *game, const char *want)
{
	char *r = th_row(pg, game);
	cr_expect_str_eq(r ? r : "(none)", want, "row of %s", game);
	free(r);
}

/* The lobby entries' payloads for one game, in order. */
static int lobby_payloads(const char *game, const char **out, int max,
			  redisReply **keep)
{
	redisReply *l = th_xrange(redis, K.lobby);
	int n = 0;
	for (size_t i = 0; i < l->elements && n < max; i++)
		if (strcmp(th_field(l->element[i], "game_id"), game) == 0) {
			cr_assert_str_eq(th_field(l->element[i], "event_type"),
					 "runtime_snapshot_update");
			out[n++] = th_field(l->element[i], "payload");
		}
	*keep = l;
	return n;
}

static void expect_last_payload(const char *game, const char *status,
				const char *health, int turn, int count)
{
	const char *p[8];
	redisReply *keep;
	int n = lobby_payloads(game, p, 8, &keep);
	char want[512];
	th_payload(want, sizeof(want), game, status, health, turn);
	cr_expect_eq(n, count, "snapshots for %s", game);
	if (n)
		cr_expect_str_eq(p[n - 1], want, "last snapshot of %s", game);
	freeReplyObject(keep);
}

Test(e2e, every_event_type_missing_game_other_flows_and_malformed)
{
	static const struct {
		const char *game, *status, *type, *want_row;
		int turn;
	} cases[] = {
	    {"oom", "running", "container_oom", "engine_unreachable/oom", 7},
	    {"exited", "running", "container_exited",
	     "engine_unreachable/exited", 1},
	    {"gone", "running", "container_disappeared",
	     "engine_unreachable/disappeared", 2},
	    {"back", "engine_unreachable", "probe_recovered", "running/healthy",
	     3},
	    {"started", "starting", "container_started", "starting/healthy", 0},
	    {"unhealthy", "running", "inspect_unhealthy", "running/unhealthy",
	     4},
	    {"probe", "running", "probe_failed", "running/probe_failed", 5},
	    {"stopped", "stopped", "probe_failed", "stopped/probe_failed", 6},
	    {"finished", "finished", "container_oom", "finished/oom", 8},
	    {"busy", "running", "container_oom", "generation_in_progress/oom",
	     9},
	};
	size_t ncases = sizeof(cases) / sizeof(cases[0]);
	for (size_t i = 0; i < ncases; i++)
		th_insert_game(pg, g(cases[i].game), cases[i].status,
			       cases[i].turn);
	/* another flow (turn generation) takes "busy" before its event */
	th_sql(pg,
	       "UPDATE runtime_records SET status = 'generation_in_progress' "
	       "WHERE game_id = $1",
	       g("busy"), NULL);

	pid_t pid = spawn();
	for (size_t i = 0; i < ncases; i++)
		free(ev(g(cases[i].game), cases[i].type));
	free(ev(g("probe"), "probe_failed"));	/* a repeat: suppressed */
	/* stopped is not final: its repeat is suppressed too */
	free(ev(g("stopped"), "probe_failed"));
	free(ev(g("nobody"), "container_oom")); /* no row */
	free(th_xadd(redis, K.stream, "event_type", "container_oom", NULL));
	free(th_xadd(redis, K.stream, "game_id", "", "event_type",
		     "container_oom", NULL));
	free(th_xadd(redis, K.stream, "game_id", g("oom"), "event_type",
		     "container_melted", NULL));
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char *last = th_xadd(redis, K.stream, "game_id", big, "event_type",
			     "probe_failed", NULL);
	cr_assert(th_wait_offset(redis, K.offset_key, last, 20000),
		  "the offset reached the last entry (log: %s)", logfile);

	for (size_t i = 0; i < ncases; i++) {
		char want[96];
		snprintf(want, sizeof(want), "%s/%d", cases[i].want_row,
			 cases[i].turn);
		expect_row(g(cases[i].game), want);
	}
	expect_row(g("nobody"), "(none)");
	expect_last_payload(g("oom"), "engine_unreachable", "oom", 7, 1);
	expect_last_payload(g("back"), "running", "healthy", 3, 1);
	expect_last_payload(g("busy"), "generation_in_progress", "oom", 9, 1);
	expect_last_payload(g("stopped"), "stopped", "probe_failed", 6, 1);
	expect_last_payload(g("probe"), "running", "probe_failed", 5, 1);
	expect_last_payload(g("nobody"), "", "", 0, 0);

	redisReply *l = th_xrange(redis, K.lobby);
	cr_expect_eq(l->elements, ncases, "one snapshot per game, no more");
	freeReplyObject(l);
	redisReply *d = th_xrange(redis, K.dead);
	cr_assert_eq(d->elements, 4, "four malformed entries dead-lettered");
	const char *reasons[] = {"missing game_id", "empty game_id",
				 "unknown event_type", "longer than 256"};
	for (int i = 0; i < 4; i++) {
		const char *r = th_field(d->element[i], "reason");
		cr_expect(r && strstr(r, reasons[i]), "reason %d: %s", i, r);
		cr_expect_not_null(th_field(d->element[i], "source_id"));
	}
	freeReplyObject(d);

	/* a concurrent change mid-stream: the snapshot shows the row (D5) */
	th_sql(pg,
	       "UPDATE runtime_records SET status = 'generation_in_progress', "
	       "current_turn = 10 WHERE game_id = $1",
	       g("back"), NULL);
	free(last);
	last = ev(g("back"), "container_exited");
	cr_assert(th_wait_offset(redis, K.offset_key, last, 20000));
	expect_last_payload(g("back"), "generation_in_progress", "exited", 10,
			    2);

	cr_assert_eq(ap_terminate(pid), 0, "SIGTERM exits 0 (log: %s)",
		     logfile);
	free(last);
}

Test(e2e, a_restart_resumes_after_the_saved_offset)
{
	th_insert_game(pg, g("r"), "running", 1);
	pid_t pid = spawn();
	char *id = ev(g("r"), "container_oom");
	cr_assert(th_wait_offset(redis, K.offset_key, id, 20000));
	cr_assert_eq(ap_terminate(pid), 0);
	free(id);

	pid = spawn();
	id = ev(g("r"), "container_oom"); /* CAS lost; summary unchanged */
	cr_assert(th_wait_offset(redis, K.offset_key, id, 20000));
	free(id);
	id = ev(g("r"), "container_oom");
	cr_assert(th_wait_offset(redis, K.offset_key, id, 20000));
	cr_assert_eq(ap_terminate(pid), 0);
	/*
	 * 1 before the restart; the first entry was not replayed; the empty
	 * cache after the restart gives exactly one extra snapshot (D4).
	 */
	expect_last_payload(g("r"), "engine_unreachable", "oom", 1, 2);
	free(id);
}
