/*
 * SIGKILL of apphost at random points of a 20,000-entry run over 1,000
 * games, 10 times, restarting each time (DESIGN §6 step 5: a crash
 * replays, never skips).
 */
#include "faults.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(faults_kill, .init = fx_setup, .fini = fx_teardown, .timeout = 240);

#define GAMES	1000
#define ENTRIES 20000
#define KILLS	10

Test(faults_kill, sigkill_ten_times_replays_and_never_skips)
{
	static mgame model[GAMES];
	static fx_entry e[ENTRIES];
	unsigned seed = (unsigned)getpid() ^ (unsigned)th_now_ms();
	srand(seed);
	cr_log_info("seed %u, log %s", seed, F.log);

	fx_insert_games(GAMES, true, model);
	for (int i = 0; i < ENTRIES; i++) {
		e[i].game = i < GAMES ? i : rand() % GAMES; /* each game once */
		e[i].ev = rand() % TH_EVENT_COUNT;
	}
	fx_write_entries(e, ENTRIES);
	const char *last = e[ENTRIES - 1].id;

	/* Small batches: a kill lands between a batch's apply and commit. */
	static const char *const env[] = {"HEALTH_EVENTS_BATCH=8", NULL};
	char prev[64] = "", cur[64];
	int mid_run = 0;
	for (int k = 0; k < KILLS; k++) {
		pid_t pid = fx_spawn(env);
		/* Kill at a random point after the run resumed. */
		(void)fx_wait_offset_past(prev, 20000);
		usleep((useconds_t)(rand() % 150000));
		fx_kill9(pid);
		fx_offset(cur, sizeof(cur));
		cr_assert_geq(fx_id_cmp(cur, prev), 0,
			      "kill %d: offset moved backwards: %s after %s", k,
			      cur, prev);
		mid_run += fx_id_cmp(cur, last) < 0;
		cr_log_info("kill %d at offset %s", k, cur);
		snprintf(prev, sizeof(prev), "%s", cur);
	}
	cr_expect_geq(mid_run, KILLS / 2,
		      "only %d of %d kills landed before the end of the run",
		      mid_run, KILLS);

	pid_t pid = fx_spawn(env);
	cr_assert(th_wait_offset(F.redis, F.keys.offset_key, last, 120000),
		  "the offset reached the last entry (log: %s)", F.log);
	cr_expect_eq(fx_terminate(pid, 15000, NULL), 0, "SIGTERM exits 0");

	for (int i = 0; i < ENTRIES; i++)
		(void)model_apply(&model[e[i].game], e[i].ev);
	fx_expect_rows(model, GAMES);
	fx_expect_last_snapshots(model, GAMES);
	redisReply *d = th_xrange(F.redis, F.keys.dead);
	cr_expect_eq(d->elements, 0, "nothing dead-lettered");
	freeReplyObject(d);
}
